// SPDX-License-Identifier: Apache-2.0
/*
 * Benchmark only: attaches one pair of programs of bench/hooks.bpf.c to the
 * agent's per-call hooks (sock_send_length, sock_recv_length) and holds them
 * until SIGTERM or SIGINT, as an agent would, so that bench/run.py reads
 * their statistics from this process's descriptors.
 *
 *   bench-hooks empty|lookup
 *
 * Prints "attached" once both programs are on their hooks.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <bpf/libbpf.h>

/* The generated skeleton casts its const ELF bytes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "bench_hooks.skel.h"
#pragma GCC diagnostic pop

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void autoload_pair(struct bpf_program *send, struct bpf_program *recv, bool on)
{
	bpf_program__set_autoload(send, on);
	bpf_program__set_autoload(recv, on);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct bench_hooks_bpf *skel;
	const char *kind = argc == 2 ? argv[1] : "";
	int err;

	if (strcmp(kind, "empty") && strcmp(kind, "lookup") && strcmp(kind, "storage") &&
	    strcmp(kind, "hashed")) {
		fprintf(stderr, "usage: bench-hooks empty|lookup|hashed|storage\n");
		return 2;
	}
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	skel = bench_hooks_bpf__open();
	if (!skel) {
		fprintf(stderr, "bench-hooks: open: %s\n", strerror(errno));
		return 1;
	}
	autoload_pair(skel->progs.tp_sock_send_length, skel->progs.tp_sock_recv_length,
		      !strcmp(kind, "empty"));
	autoload_pair(skel->progs.tp_sock_send_length_lookup,
		      skel->progs.tp_sock_recv_length_lookup, !strcmp(kind, "lookup"));
	autoload_pair(skel->progs.tp_sock_send_length_hashed,
		      skel->progs.tp_sock_recv_length_hashed, !strcmp(kind, "hashed"));
	autoload_pair(skel->progs.tp_sock_send_length_storage,
		      skel->progs.tp_sock_recv_length_storage, !strcmp(kind, "storage"));
	err = bench_hooks_bpf__load(skel);
	if (!err)
		err = bench_hooks_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "bench-hooks: load or attach: %s\n", strerror(-err));
		bench_hooks_bpf__destroy(skel);
		return 1;
	}
	printf("attached\n");
	fflush(stdout);
	while (!stop_flag)
		pause();
	bench_hooks_bpf__destroy(skel);
	return 0;
}
