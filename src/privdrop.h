/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Once the BPF programs are attached the agent needs few privileges: it
 * reads BPF maps through file descriptors it already holds, and other
 * processes' /proc entries (exe link, environ: CAP_SYS_PTRACE for
 * processes of other users, CAP_DAC_READ_SEARCH for their files). Every
 * other capability is dropped, and no exec can regain any.
 */
#ifndef TCPOTEL_PRIVDROP_H
#define TCPOTEL_PRIVDROP_H

/*
 * Drops all capabilities but CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, and
 * CAP_BPF when this kernel still asks for it to read a map (before 6.5,
 * found by trying in a child process on `map_fd`). Returns 0 or -errno.
 */
int privdrop_after_attach(int map_fd);

#endif
