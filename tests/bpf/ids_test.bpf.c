// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * exchange_sampled() (bpf/ids.bpf.h) on its own, for tests/bpf/test_ids.c:
 * user space sets the in_* globals, runs the program with BPF_PROG_TEST_RUN
 * and reads the decision from out_sampled. A tc program because its test
 * runs take `repeat` (raw_tp and syscall ones do not), which times it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "ids.bpf.h"

struct tcpotel_tuple in_tuple;
__u64 in_threshold;
__u32 in_request_seq;
__u8 in_role;

__u32 out_sampled;

SEC("tc")
int ids_decide(struct __sk_buff *skb)
{
	out_sampled = exchange_sampled(&in_tuple, in_role, in_request_seq, in_threshold);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
