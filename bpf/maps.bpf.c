// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* The one definition of every map and global (declared in maps.bpf.h). */
#include "maps.bpf.h"

sockets_map_t sockets SEC(".maps");
#ifdef TCPOTEL_KERNEL_6_3
front_map_t sock_front SEC(".maps");
const volatile __u32 cfg_front_shift = 50;
const volatile __s64 cfg_max_sockets = 65536;
__s64 sock_entries = 0;
#endif
untracked_map_t untracked SEC(".maps");
procs_map_t seen_procs SEC(".maps");
listeners_map_t listeners SEC(".maps");
netns_map_t netns_allowed SEC(".maps");
events_map_t events SEC(".maps");
procs_ring_map_t proc_events SEC(".maps");
dirty_map_t dirty SEC(".maps");
closes_lost_map_t closes_lost SEC(".maps");
counters_map_t counters SEC(".maps");
sock_ids_map_t sock_ids SEC(".maps");

const volatile __u32 cfg_self_tgid = 0;
const volatile __u64 cfg_idle_timeout_ns = 5000000000ULL;
const volatile __u64 cfg_response_timeout_ns = 300000000000ULL;
const volatile __u32 cfg_tick_ns = 0;
const volatile __u8 cfg_exchange_records = 1;
const volatile __u64 cfg_sample_threshold = 0;
const volatile __u8 cfg_netns_filter = 0;
const volatile __u16 cfg_exclude_ports[TCPOTEL_MAX_EXCLUDE_PORTS] = {};
const volatile __u32 cfg_n_exclude_ports = 0;

__u32 sweep_gen = 1;
__u64 collect_keys[TCPOTEL_COLLECT_BATCH] = {};
__u32 collect_n_keys = 0;
struct tcpotel_snapshot collect_out[TCPOTEL_COLLECT_BATCH] = {};
__u32 collect_n_out = 0;

const struct tcpotel_sock zero_sock = {};

char LICENSE[] SEC("license") = "Dual BSD/GPL";
