#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The kernel matrix: every kernel of matrix.conf, each booted in QEMU
# (vm.sh --systemd, so that the shipped unit runs under a real systemd) or,
# for "host", this machine itself, runs its cells (cells.sh); then a table
# of kernel x back-end (and the kernel and container columns) with
# passed/failed/skipped counts, and the suite's
# summary line "N passed, N failed, N skipped". Exit status 1 if any failed.
#
#   tests/kernels/matrix.sh                 the kernels of matrix.conf
#   KERNELS="sid bookworm-backports" tests/kernels/matrix.sh
#
# KERNELS: SPEC[:BACKENDS[:AUTO[:CI]]] words, as in matrix.conf (":" for
# the spaces); without BACKENDS and AUTO, whatever the agent starts with
# there ("-"); without CI, "shared,systemd". Logs: .output/kernels/KERNEL.log.
# One guest at a time.
#
# MATRIX_ARCH (make's ARCH, in Debian's name; default this machine's): the
# rows of matrix.conf of that architecture, and the architecture of the
# KERNELS words. Another architecture than the machine's runs the cross
# build (.output/ARCH, `make ARCH=...`), each kernel booted in its QEMU
# (TCG) on a root of its own (root.sh); its logs go to .output/ARCH/kernels.
#
# MATRIX_PROFILE=ci: CI's shorter pass. Every back-end cell runs as in the
# full pass; a kernel's column "kernel" adds only what matrix.conf's CI
# column names (the shared integration tests, the systemd boot and unit),
# and a kernel booted without systemd checks the DaemonSet's privileges
# under setpriv. The full pass (the default) adds both everywhere.
#
# "containers" in a row's CI column, in every pass: before that kernel's
# guest boots, tests/container/images.sh builds the agent's image and a
# workload image on this machine (its Debian roots cached under
# /var/cache/tcpotel/rootfs), and the guest runs tests/container/podman_check.py
# on them: the table's "container" column. An image that cannot be built
# fails that cell.
set -uo pipefail
cd "$(dirname "$0")/../.."
here=tests/kernels
native=$(dpkg --print-architecture)
arch=${MATRIX_ARCH:-$native}
build=.output
vm_opts=()
if [ "$arch" != "$native" ]; then
	build=.output/$arch
	[ -x "$build/tcpotel" ] || {
		echo "matrix: no $build/tcpotel: make ARCH=${arch/amd64/x86} first (make test-kernels does)" >&2
		exit 1
	}
	root=$($here/root.sh "$arch") || exit 1
	vm_opts=(--root "$root")
	# The guest finds the cross build where the tests look: .output.
	export TCPOTEL_CELLS_OUTPUT=$build
	export TCPOTEL_KERNEL_ARCH=$arch
fi
out=$build/kernels
mkdir -p "$out"

if [ -n "${KERNELS:-}" ]; then
	# What the kernel column adds: everything, but nothing more under emulation.
	all=shared,systemd
	[ "$arch" = "$native" ] || all=-
	rows=$(for k in $KERNELS; do
		IFS=: read -r spec be au ci <<<"$k"
		echo "$spec ${be:--} ${au:--} ${ci:-$all}"
	done)
else
	# This architecture's rows, and host's on the machine's own, without ARCH.
	rows=$(grep -v '^\s*\(#\|$\)' $here/matrix.conf | awk -v a="$arch" -v n="$native" \
		'$2 == a || ($2 == "-" && a == n) { $2 = ""; print }')
fi
[ -n "$rows" ] || {
	echo "matrix: no $arch kernel in $here/matrix.conf" >&2
	exit 1
}

t_start=$(date +%s)
# Fetch first: the downloads are timed apart from the runs.
declare -A kdir
while read -r spec _ _ _; do
	[ "$spec" = host ] && continue
	kdir[$spec]=$($here/fetch.sh "$spec") || kdir[$spec]=
done <<<"$rows"
t_fetched=$(date +%s)
echo "matrix: kernels fetched in $((t_fetched - t_start)) s"

declare -A result label secs
columns="tracepoint fentry kprobe kernel container"
while read -r spec backends auto ci; do
	t0=$(date +%s)
	log=$out/$(tr / _ <<<"$spec").log
	# What the kernel column adds (cells.sh), and how the guest boots.
	extras=shared,systemd
	[[ ,$ci, == *,containers,* ]] && extras+=,containers
	[ "${MATRIX_PROFILE:-full}" = ci ] || [ "$arch" != "$native" ] && extras=${ci:--}
	cells=${backends//,/ }
	[ "$cells" = - ] && cells=
	cells+=" kernel"
	if [[ ,$extras, == *,containers,* ]]; then
		# Built here, run in the guest; without them the cell fails.
		cells+=" container"
		echo "matrix: the container checks' images, built on this machine: tests/container/images.sh"
		if ! tests/container/images.sh 2>&1 | tee "$out/container-images.log"; then
			echo "matrix: $spec: cannot build the container checks' images ($out/container-images.log): its container cell fails"
			extras=$(tr , '\n' <<<"$extras" | grep -vx containers | paste -sd, -)
		fi
	fi
	export TCPOTEL_CELLS_EXTRAS=${extras:--}
	boot=()
	[[ ,$extras, == *,systemd,* ]] && boot=(--systemd)
	if [ "$spec" = host ]; then
		label[$spec]="$(uname -r) (this machine)"
		echo "matrix: ==== ${label[$spec]}"
		$here/cells.sh "$backends" "$auto" 2>&1 | tee "$log"
	elif [ -z "${kdir[$spec]}" ]; then
		label[$spec]="$spec (not fetched)"
		echo "matrix: $spec: cannot fetch its kernel" | tee "$log"
	else
		# shellcheck disable=SC1091
		label[$spec]="$(. "${kdir[$spec]}/kernel.env" && echo "${VERSION%-*} ($SUITE$([ "${ARCH:-$native}" = "$native" ] || echo ", $ARCH"))")"
		echo "matrix: ==== ${label[$spec]}"
		$here/vm.sh "${vm_opts[@]}" "${boot[@]}" --timeout "${TCPOTEL_MATRIX_TIMEOUT:-2400}" "${kdir[$spec]}" -- \
			$here/cells.sh "$backends" "$auto" 2>&1 | tee "$log"
	fi
	secs[$spec]=$(($(date +%s) - t0))
	while read -r _ col p f s; do
		result[$spec.$col]="$p $f $s"
	done < <(grep -E '^cell [a-z]+ [0-9]+ [0-9]+ [0-9]+$' "$log")
	# A back-end the kernel must have, the kernel column, or a container
	# column asked for, with no result failed.
	for col in $cells; do
		[ -n "${result[$spec.$col]:-}" ] || result[$spec.$col]="0 1 0"
	done
done <<<"$rows"

total_p=0 total_f=0 total_s=0
echo
echo "Kernel matrix (passed/failed/skipped per cell; '-': the kernel has no such back-end)"
printf '%-32s' kernel
for col in $columns; do printf ' %-14s' "$col"; done
printf ' %s\n' time
while read -r spec _ _ _; do
	printf '%-32s' "${label[$spec]}"
	for col in $columns; do
		r=${result[$spec.$col]:-}
		if [ -z "$r" ]; then
			printf ' %-14s' -
			continue
		fi
		read -r p f s <<<"$r"
		total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
		printf ' %-14s' "$p/$f/$s$([ "$f" -gt 0 ] && echo ' FAIL')"
	done
	printf ' %ss\n' "${secs[$spec]}"
done <<<"$rows"
# The programs' costs, kernel by kernel: verifier-processed instructions / JIT bytes.
{
	echo "| back-end | program |$(while read -r spec _ _ _; do printf ' %s |' "${label[$spec]}"; done <<<"$rows")"
	echo "|---|---|$(while read -r _ _ _ _; do printf -- '---|'; done <<<"$rows")"
	cat "$out"/*.log | awk '$1 == "prog" && $3 != "-" { print $2, $3 }' | sort -u |
		while read -r be prog; do
			printf '| %s | `%s` |' "$be" "$prog"
			while read -r spec _ _ _; do
				v=$(awk -v b="$be" -v p="$prog" '$1 == "prog" && $2 == b && $3 == p {
					printf "%s / %s", $4, $5; exit }' "$out/$(tr / _ <<<"$spec").log")
				printf ' %s |' "${v:--}"
			done <<<"$rows"
			echo
		done
} >"$out/programs.md"
echo "matrix: each program's verifier instruction count / JIT size: $out/programs.md"
echo "matrix: $(($(date +%s) - t_start)) s in all ($((t_fetched - t_start)) s fetching), profile ${MATRIX_PROFILE:-full}, $arch"
echo "$total_p passed, $total_f failed, $total_s skipped"
[ "$total_f" -eq 0 ]
