// SPDX-License-Identifier: Apache-2.0
/*
 * What each BPF program costs the kernel it runs on, as a proxy for its run
 * time where timings mean nothing (an emulated guest): for every back-end
 * named, loads its programs (as the agent would, with the default
 * configuration) and prints one line per program,
 *
 *   prog BACKEND PROGRAM VERIFIED_INSNS JITED_BYTES XLATED_BYTES
 *
 * or "prog BACKEND - cannot load: REASON". Root.
 *
 *   .output/progstats tracepoint fentry kprobe
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "capture.h"
#include "log.h"

int main(int argc, char **argv)
{
	static const enum capture_backend all[] = { BACKEND_TRACEPOINT, BACKEND_FENTRY,
						    BACKEND_KPROBE };
	int failed = 0;

	for (int a = 1; a < argc; a++) {
		struct capture_opts opts = {
			.max_sockets = 65536,
			.exchange_records = true,
			.idle_timeout_ns = 5000000000ULL,
			.quiet = true,
			.verifier_stats = true,
		};
		struct capture_prog_stats st[32];
		struct capture *c;
		void *old;
		size_t n;

		for (size_t i = 0; i < ARRAY_SIZE(all); i++)
			if (strcmp(argv[a], config_backend_name(all[i])) == 0)
				opts.backend = all[i];
		if (opts.backend == BACKEND_AUTO) {
			fprintf(stderr, "progstats: %s: not a back-end\n", argv[a]);
			return 2;
		}
		old = log_mute_libbpf();
		c = capture__load(&opts);
		log_restore_libbpf(old);
		if (!c) {
			printf("prog %s - cannot load: %s\n", argv[a], strerror(errno));
			failed = 1;
			continue;
		}
		n = capture__prog_stats(c, st, ARRAY_SIZE(st));
		for (size_t i = 0; i < n; i++)
			printf("prog %s %s %u %u %u\n", argv[a], st[i].name, st[i].verified_insns,
			       st[i].jited_bytes, st[i].xlated_bytes);
		capture__destroy(c);
	}
	return failed;
}
