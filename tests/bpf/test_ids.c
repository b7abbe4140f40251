// SPDX-License-Identifier: Apache-2.0
/*
 * Root tier: the kernel's sampling decision (bpf/ids.bpf.h, run on its own
 * through tests/bpf/ids_test.bpf.c with BPF_PROG_TEST_RUN) must be user
 * space's traceid_sampled(traceid_derive()) for every exchange: random IPv4
 * and IPv6 tuples, both roles, random sequence numbers, the thresholds of a
 * few ratios and the thresholds on either side of each exchange's own R.
 * Wrong inputs must make the two disagree (the check can fail), and the cost
 * of one decision is printed (not asserted: it depends on the machine).
 */
#include <linux/types.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "tcpotel.h"
#include "test.h"
#include "traceid.h"
/* The generated skeleton casts away const on its embedded ELF bytes. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wcast-qual"
#include "ids_test.skel.h"
#pragma GCC diagnostic pop

#define IDS_EXCHANGES	 24000
#define IDS_BENCH_REPEAT 100000

static const double ratios[] = { 0.1, 0.25, 0.5, 0.999, 1.0, 0.0 };
#define N_RATIOS (sizeof(ratios) / sizeof(ratios[0]))

static bool need_root(void)
{
	if (geteuid() == 0)
		return true;
	test_skip("needs root (loads BPF programs into the kernel)");
	return false;
}

/* splitmix64, fixed seed: a failure is reproducible. */
static uint64_t rng = 0x7463706f74656cULL;

static uint64_t rnd64(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rnd_bytes(uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)rnd64();
}

/*
 * A random tuple. The bytes past an IPv4 address are random too: both sides
 * must ignore them. Some IPv6 addresses are v4-mapped or mostly zero, the
 * forms whose bytes sit at the edges of the message words.
 */
static void random_tuple(struct tcpotel_tuple *t)
{
	uint64_t kind = rnd64() % 8;

	memset(t, 0, sizeof(*t));
	rnd_bytes(t->saddr, sizeof(t->saddr));
	rnd_bytes(t->daddr, sizeof(t->daddr));
	t->sport = (uint16_t)rnd64();
	t->dport = (uint16_t)rnd64();
	t->family = kind < 4 ? AF_INET : AF_INET6;
	if (kind == 6) {
		memset(t->saddr, 0, 10);
		memset(t->saddr + 10, 0xff, 2);
		memset(t->daddr, 0, 10);
		memset(t->daddr + 10, 0xff, 2);
	} else if (kind == 7) {
		memset(t->saddr, 0, 15);
		memset(t->daddr + 1, 0, 15);
	}
}

/* client_endpoint() of src/exchange.c, then the ids and the decision. */
static bool user_decision(const struct tcpotel_tuple *t, uint8_t role, uint32_t seq,
			  uint64_t threshold, uint64_t *r)
{
	bool client = role == TCPOTEL_ROLE_CLIENT;
	struct exchange_ids ids;
	uint8_t addr[16];

	traceid_canonical_addr(t->family, client ? t->saddr : t->daddr, addr);
	traceid_derive(addr, client ? t->sport : t->dport, seq, &ids);
	*r = 0;
	for (int i = 9; i < 16; i++)
		*r = (*r << 8) | ids.trace_id[i];
	return traceid_sampled(ids.trace_id, threshold);
}

struct kernel {
	struct ids_test_bpf *skel;
	int prog_fd;
};

static bool kernel_open(struct kernel *k)
{
	k->skel = ids_test_bpf__open_and_load();
	if (!ASSERT_NOT_NULL(k->skel))
		return false;
	k->prog_fd = bpf_program__fd(k->skel->progs.ids_decide);
	return ASSERT_GE(k->prog_fd, 0);
}

/* Runs the program `repeat` times; 0 or 1 for the decision, -1 on error. */
static int kernel_run(struct kernel *k, const struct tcpotel_tuple *t, uint8_t role, uint32_t seq,
		      uint64_t threshold, uint32_t repeat, uint32_t *duration_ns)
{
	uint8_t pkt[64] = { 0 };
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = sizeof(pkt),
		    .repeat = repeat);
	struct ids_test_bpf__bss *bss = k->skel->bss;

	bss->in_tuple = *t;
	bss->in_role = role;
	bss->in_request_seq = seq;
	bss->in_threshold = threshold;
	bss->out_sampled = 2;
	if (bpf_prog_test_run_opts(k->prog_fd, &opts) || bss->out_sampled > 1)
		return -1;
	if (duration_ns)
		*duration_ns = opts.duration;
	return (int)bss->out_sampled;
}

static int kernel_decision(struct kernel *k, const struct tcpotel_tuple *t, uint8_t role,
			   uint32_t seq, uint64_t threshold)
{
	return kernel_run(k, t, role, seq, threshold, 1, NULL);
}

/* One comparison; the first few disagreements are printed in full. */
static bool agree(struct kernel *k, const struct tcpotel_tuple *t, uint8_t role, uint32_t seq,
		  uint64_t threshold, int *disagreements)
{
	uint64_t r;
	bool want = user_decision(t, role, seq, threshold, &r);
	int got = kernel_decision(k, t, role, seq, threshold);

	if (got == (int)want)
		return true;
	if ((*disagreements)++ < 5)
		test_fail_at(__FILE__, __LINE__,
			     "family %u role %u port %u/%u seq %u threshold %#" PRIx64
			     " (R %#" PRIx64 "): kernel %d, user space %d",
			     t->family, role, t->sport, t->dport, seq, threshold, r, got, want);
	return false;
}

TEST(bpf_ids_docs_vector)
{
	/* docs/ids.md: 10.0.0.1, port 40000, seq 1000 has trace id
	 * a6ce1571db532975f46dd0c1ed180d5f, so R = 0x6dd0c1ed180d5f. */
	struct tcpotel_tuple client = { .saddr = { 10, 0, 0, 1 },
					.daddr = { 10, 0, 0, 2 },
					.sport = 40000,
					.dport = 80,
					.family = AF_INET };
	struct tcpotel_tuple server = { .saddr = { 10, 0, 0, 2 },
					.daddr = { 10, 0, 0, 1 },
					.sport = 80,
					.dport = 40000,
					.family = AF_INET };
	struct tcpotel_tuple mapped = server;
	const uint64_t r = 0x6dd0c1ed180d5fULL;
	struct kernel k;

	if (!need_root() || !kernel_open(&k))
		return;
	mapped.family = AF_INET6;
	memset(mapped.daddr, 0, 16);
	mapped.daddr[10] = mapped.daddr[11] = 0xff;
	memcpy(mapped.daddr + 12, server.daddr, 4);
	ASSERT_EQ(kernel_decision(&k, &client, TCPOTEL_ROLE_CLIENT, 1000, r), 1);
	ASSERT_EQ(kernel_decision(&k, &client, TCPOTEL_ROLE_CLIENT, 1000, r + 1), 0);
	ASSERT_EQ(kernel_decision(&k, &server, TCPOTEL_ROLE_SERVER, 1000, r), 1);
	ASSERT_EQ(kernel_decision(&k, &server, TCPOTEL_ROLE_SERVER, 1000, r + 1), 0);
	ASSERT_EQ(kernel_decision(&k, &mapped, TCPOTEL_ROLE_SERVER, 1000, r), 1);
	ASSERT_EQ(kernel_decision(&k, &mapped, TCPOTEL_ROLE_SERVER, 1000, r + 1), 0);
	/* Ratios 1 and 0 decide without the hash. */
	ASSERT_EQ(kernel_decision(&k, &client, TCPOTEL_ROLE_CLIENT, 1000, 0), 1);
	ASSERT_EQ(kernel_decision(&k, &client, TCPOTEL_ROLE_CLIENT, 1000, 1ULL << 56), 0);
	ids_test_bpf__destroy(k.skel);
}

TEST(bpf_ids_kernel_decision_matches_user_space)
{
	int disagreements = 0, decisions = 0, v4 = 0, v6 = 0;
	int kept[N_RATIOS] = { 0 }, seen[N_RATIOS] = { 0 };
	uint64_t thresholds[N_RATIOS];
	struct kernel k;

	if (!need_root() || !kernel_open(&k))
		return;
	for (size_t i = 0; i < N_RATIOS; i++)
		thresholds[i] = traceid_threshold(ratios[i]);
	for (int n = 0; n < IDS_EXCHANGES; n++) {
		struct tcpotel_tuple t;
		uint8_t role = rnd64() & 1 ? TCPOTEL_ROLE_CLIENT : TCPOTEL_ROLE_SERVER;
		uint32_t seq = (uint32_t)rnd64();
		size_t ri = rnd64() % N_RATIOS;
		uint64_t r;

		random_tuple(&t);
		if (t.family == AF_INET)
			v4++;
		else
			v6++;
		/* The ratio's threshold, and R and R + 1: the boundary on all 56 bits. */
		seen[ri]++;
		kept[ri] += user_decision(&t, role, seq, thresholds[ri], &r);
		agree(&k, &t, role, seq, thresholds[ri], &disagreements);
		agree(&k, &t, role, seq, r, &disagreements);
		agree(&k, &t, role, seq, r + 1, &disagreements);
		decisions += 3;
	}
	printf("    %d exchanges (%d IPv4, %d IPv6), %d decisions, %d disagreements\n",
	       IDS_EXCHANGES, v4, v6, decisions, disagreements);
	for (size_t i = 0; i < N_RATIOS; i++)
		printf("    ratio %g: kept %d of %d\n", ratios[i], kept[i], seen[i]);
	ASSERT_EQ(disagreements, 0);
	ids_test_bpf__destroy(k.skel);
}

TEST(bpf_ids_wrong_inputs_disagree)
{
	uint64_t half = traceid_threshold(0.5), quarter = traceid_threshold(0.25), r;
	int wrong_threshold = 0, wrong_role = 0, errors = 0;
	struct kernel k;

	if (!need_root() || !kernel_open(&k))
		return;
	for (int n = 0; n < 2000; n++) {
		struct tcpotel_tuple t;
		uint32_t seq = (uint32_t)rnd64();
		int got;

		random_tuple(&t);
		got = kernel_decision(&k, &t, TCPOTEL_ROLE_CLIENT, seq, half);
		errors += got < 0;
		/* User space at another ratio, or with the other end as the client. */
		wrong_threshold += got !=
				   (int)user_decision(&t, TCPOTEL_ROLE_CLIENT, seq, quarter, &r);
		wrong_role += got != (int)user_decision(&t, TCPOTEL_ROLE_SERVER, seq, half, &r);
	}
	ASSERT_EQ(errors, 0);
	ASSERT_GT(wrong_threshold, 0);
	ASSERT_GT(wrong_role, 0);
	ids_test_bpf__destroy(k.skel);
}

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Best of 5 test runs of IDS_BENCH_REPEAT: ns per run, wall clock over the run. */
static double ns_per_run(struct kernel *k, const struct tcpotel_tuple *t, uint64_t threshold,
			 uint32_t *kernel_ns)
{
	double best = 0;

	for (int i = 0; i < 5; i++) {
		double start = now_ns(), ns;
		uint32_t d = 0;

		if (kernel_run(k, t, TCPOTEL_ROLE_CLIENT, 1000, threshold, IDS_BENCH_REPEAT, &d) <
		    0)
			return -1;
		ns = (now_ns() - start) / IDS_BENCH_REPEAT;
		if (i == 0 || ns < best) {
			best = ns;
			*kernel_ns = d;
		}
	}
	return best;
}

TEST(bpf_ids_ns_per_decision)
{
	struct tcpotel_tuple t;
	uint32_t k_hash = 0, k_none = 0;
	double hash, none;
	struct kernel k;

	if (!need_root() || !kernel_open(&k))
		return;
	random_tuple(&t);
	t.family = AF_INET6;
	hash = ns_per_run(&k, &t, traceid_threshold(0.5), &k_hash);
	none = ns_per_run(&k, &t, 0, &k_none); /* ratio 1: no hash, the test run's own cost */
	if (ASSERT_TRUE(hash > 0 && none > 0))
		printf("    exchange_sampled: %.1f ns per decision (%.1f ns per test run with the "
		       "hash, %.1f without; kernel's figures %u and %u ns; %d repeats)\n",
		       hash - none, hash, none, k_hash, k_none, IDS_BENCH_REPEAT);
	ids_test_bpf__destroy(k.skel);
}
