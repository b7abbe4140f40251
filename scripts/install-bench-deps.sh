#!/usr/bin/env bash
# Installs, on Debian, the workload programs `make bench` drives (redis,
# nginx, wrk, iperf3) and perf (BENCH_PERF=1), only those that are missing.
# Needs root when something is missing. The servers are not enabled or
# started: the benchmark runs its own instances on loopback and stops them.
set -euo pipefail

# package:command pairs; a command found on PATH counts as installed.
want=(redis-server:redis-server redis-tools:redis-benchmark wrk:wrk iperf3:iperf3
	bpftool:bpftool python3:python3 linux-perf:perf)

missing=()
for pair in "${want[@]}"; do
	pkg=${pair%%:*}
	cmd=${pair#*:}
	command -v "$cmd" >/dev/null 2>&1 && continue
	PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null 2>&1 && continue
	missing+=("$pkg")
done
# nginx: any flavour (nginx-light on older releases, nginx on newer ones).
if ! PATH=$PATH:/usr/sbin:/sbin command -v nginx >/dev/null 2>&1; then
	missing+=(nginx)
fi
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-bench-deps: missing packages: ${missing[*]}" >&2
	echo "install-bench-deps: run as root to install them" >&2
	exit 1
fi
echo "install-bench-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Keep the packaged services from starting (and binding) at install time.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' >"$policy"
	chmod 0755 "$policy"
	made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi' EXIT
apt-get update -qq
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
	# nginx-light was the small build on Debian 11/12; try it if nginx failed.
	alt=()
	for p in "${missing[@]}"; do
		[ "$p" = nginx ] && p=nginx-light
		alt+=("$p")
	done
	apt-get install -y -qq --no-install-recommends "${alt[@]}"
fi
