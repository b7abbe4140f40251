#!/usr/bin/env bash
# `make bench`: the overhead benchmark (bench/run.py) and the micro-benchmarks
# (bench/micro.c). Needs root. Environment knobs: see bench/run.py
# (BENCH_QUICK=1 for a two-minute smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
	echo "bench: needs root (BPF, kernel.bpf_stats_enabled): sudo make bench" >&2
	exit 1
fi
scripts/install-bench-deps.sh

# The micro-benchmarks link the agent's modules, as the unit tests do.
if grep -q 'bench/micro' Makefile; then
	make -s --no-print-directory .output/micro
else
	rm -f .output/micro
	libs=$(sed -n 's/^LIBS_PC *:= *//p' Makefile)
	mods=$(ls .output/src/*.o | grep -v '/main\.o$')
	# shellcheck disable=SC2046,SC2086
	${CC:-cc} -O2 -g -std=gnu11 -D_GNU_SOURCE -I.output -Isrc -Ibpf \
		$(pkg-config --cflags $libs) bench/micro.c $mods \
		$(pkg-config --libs $libs) -lisal -lpthread -lm -o .output/micro ||
		echo "bench: cannot build .output/micro: micro-benchmarks skipped" >&2
fi

# The benchmark's receiver (bench/otlp_sink.c) and the hook-only programs of the A/B runs.
make -s --no-print-directory .output/otlp-sink .output/bench-hooks

exec python3 bench/run.py "$@"
