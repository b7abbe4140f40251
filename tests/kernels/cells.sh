#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs, on the kernel it runs on (a guest of vm.sh, or this machine), the
# matrix cells of that kernel, and prints one result line per cell:
#
#   cell COLUMN PASSED FAILED SKIPPED
#
#   tests/kernels/cells.sh BACKENDS AUTO
#
# BACKENDS: the back-ends whose programs must load and attach here,
# comma-separated, or "-" for whatever the kernel's own answers say; AUTO:
# the back-end capture.backend: auto must choose ("-": the first of them).
#
# Columns: one per back-end (the BPF tier's capture tests and the
# integration tests of integration.list, on that back-end), "kernel": the
# BPF tier's load, choice and fall-back tests, integration-kernel.list on
# the back-end auto chooses, and deployed.py (the systemd unit where systemd
# is PID 1, the DaemonSet's privileges), and, where asked, "container":
# tests/container/podman_check.py on the images matrix.sh built on the
# machine (tests/container/images.sh, into .output/containers).
#
# TCPOTEL_CELLS_EXTRAS (matrix.sh; default "shared,systemd"): "shared" adds
# integration-kernel.list to the kernel column; without "systemd", or where
# systemd is not PID 1, deployed.py checks the DaemonSet's privileges only;
# "containers" adds the container column.
#
# Under QEMU without KVM (TCPOTEL_VM_ACCEL=tcg, set by vm.sh) the
# integration tests run with TCPOTEL_TEST_SLOWDOWN=20 (tests/integration/pace.py).
#
# TCPOTEL_CELLS_OUTPUT (matrix.sh, in a guest of another architecture): the
# build to test, .output/ARCH, bound over .output first, where the tests
# look for the agent and its helpers.
set -uo pipefail
cd "$(dirname "$0")/../.."
here=tests/kernels

[ $# -eq 2 ] || {
	echo "usage: cells.sh BACKENDS AUTO" >&2
	exit 2
}
backends=$1 auto=$2
export TCPOTEL_SRCDIR=$PWD
if [ -n "${TCPOTEL_CELLS_OUTPUT:-}" ] && [ "$TCPOTEL_CELLS_OUTPUT" != .output ]; then
	mount --bind "$TCPOTEL_CELLS_OUTPUT" .output || {
		echo "cells.sh: cannot bind $TCPOTEL_CELLS_OUTPUT over .output"
		exit 1
	}
fi
if [ "${TCPOTEL_VM_ACCEL:-}" = tcg ]; then
	export TCPOTEL_TEST_SLOWDOWN=${TCPOTEL_TEST_SLOWDOWN:-20}
fi
[ "$backends" = - ] || export TCPOTEL_EXPECT_BACKENDS=$backends
[ "$auto" = - ] || export TCPOTEL_EXPECT_AUTO=$auto

# The guest reads everything over 9p: load the interpreters and tools once.
python3 tests/receiver/otlp_receiver.py --help >/dev/null 2>&1
python3 -c 'import json, yaml, http.server, urllib.request, subprocess' 2>/dev/null
.output/tcpload --help >/dev/null 2>&1

# Runs one test command, echoes its output, adds its summary to the cell's counts.
p=0 f=0 s=0
tier() {
	local log summary
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	if [ -z "$summary" ]; then
		echo "cells.sh: no summary line from: $*: counted as one failure"
		f=$((f + 1))
	else
		read -r tp _ tf _ ts _ <<<"${summary//,/}"
		p=$((p + tp)) f=$((f + tf)) s=$((s + ts))
	fi
	rm -f "$log"
}

cell_done() {
	echo "cell $1 $p $f $s"
	p=0 f=0 s=0
}

# Whether the agent starts with back-end $1 here (for BACKENDS "-").
starts_with() {
	local log pid ok=1
	log=$(mktemp)
	.output/tcpotel --backend "$1" --config config/tcpotel.yaml --ui-listen "" \
		--endpoint http://127.0.0.1:9 2>"$log" &
	pid=$!
	for _ in $(seq 200); do
		grep -q " running: backend " "$log" && ok=0 && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	rm -f "$log"
	return $ok
}

if [ "$backends" = - ]; then
	# The cells are the back-ends the agent starts with; the BPF tier checks
	# them against the kernel's answers to its stand-in programs.
	backends=$(for b in tracepoint fentry kprobe; do
		starts_with "$b" && echo "$b"
	done | paste -sd, -)
	echo "cells.sh: the agent starts here with: ${backends:-no back-end}"
fi

for b in ${backends//,/ }; do
	echo "== $b"
	export TCPOTEL_TEST_BACKEND=$b
	tier .output/bpf_tests capture_ sweep_
	tier python3 tests/integration/runner.py $(grep -v '^#' $here/integration.list)
	unset TCPOTEL_TEST_BACKEND
	cell_done "$b"
done

echo "== kernel"
tier .output/bpf_tests bpf_ privileges_
extras=,${TCPOTEL_CELLS_EXTRAS:-shared,systemd},
if [[ $extras == *,shared,* ]]; then
	tier python3 tests/integration/runner.py $(grep -v '^#' $here/integration-kernel.list)
else
	echo "cells.sh: the shared integration tests (integration-kernel.list) run on other kernels in this pass"
fi
if [[ $extras == *,systemd,* ]] && [ "$(basename "$(readlink /proc/1/exe)")" = systemd ]; then
	tier python3 $here/deployed.py
else
	echo "cells.sh: the shipped systemd unit is checked in a guest booted with systemd"
	echo "cells.sh: here (systemd not PID 1, or not in this pass): the DaemonSet's privileges"
	tier python3 $here/deployed.py setpriv
fi
cell_done kernel

if [[ $extras == *,containers,* ]]; then
	echo "== container"
	tier python3 tests/container/podman_check.py .output/containers
	cell_done container
fi

# What each program costs here (docs/PERFORMANCE.md): not a test.
[ -x .output/progstats ] && .output/progstats ${backends//,/ }
exit 0
