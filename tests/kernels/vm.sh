#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Boots a kernel in QEMU with this machine's own root file system and runs one
# command inside; the command's output comes out on stdout, its exit status is
# this script's.
#
#   tests/kernels/vm.sh [OPTIONS] KERNEL -- COMMAND [ARG...]
#
# KERNEL: a directory unpacked by fetch.sh, or a fetch.sh SPEC (bookworm,
# trixie, bookworm/linux-image-6.1.0-30-amd64, ...), fetched on the way.
#
# The guest sees the machine's root read-only over virtio-9p under a tmpfs
# overlay (the virtme-ng / vmtest method): it may write anywhere, nothing
# reaches the machine. Its kernel modules are the fetched kernel's, at
# /lib/modules/$(uname -r). The command runs as root in the current
# directory with PATH, HOME, TERM, every TCPOTEL_* variable and those named
# by --env. No network device: loopback, namespaces and veth only.
#
# A kernel of another architecture (kernel.env's ARCH, e.g. Debian's arm64
# kernel on an x86 machine) boots in that architecture's QEMU, emulated
# (TCG), on a root of its own architecture (--root, tests/kernels/root.sh):
# the machine's root holds programs the guest cannot run.
#
# Options:
#   --systemd        boot systemd as init (tcpotel-vm.target: basic.target
#                    and one service that runs the command); default: a
#                    shell is PID 1 and runs it directly, which boots faster
#   --timeout SEC    stop the guest after SEC seconds (default 3600; status 124)
#   --mem MIB        guest memory (default 3072)
#   --cpus N         guest CPUs (default 2)
#   --env NAME       pass this environment variable too (repeatable)
#   --console FILE   keep the kernel console here (default: printed on failure)
#   --rw DIR         share this directory of the machine read-write, at the
#                    same path in the guest (repeatable): what the guest
#                    writes there stays (results, logs)
#   --root DIR       the guest's root file system (default /, the machine's);
#                    with another root, the current directory and the
#                    kernel's directory are shared too, at their own paths,
#                    read-only under a tmpfs overlay like the root
#
# Environment: TCPOTEL_VM_ACCEL=tcg|kvm|auto (default auto: KVM only where a
# probe boot with it finished, remembered per host kernel in the cache; it
# hangs on some nested hosts), TCPOTEL_VM_NICE (default 5), and fetch.sh's.
# Exit status: the command's; 124 on timeout; 125 when the guest never ran it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() {
	echo "vm.sh: $*" >&2
	exit 125
}

mode=cmd timeout=3600 mem=3072 cpus=2 console= envs=() rws=() root=/
while [ $# -gt 0 ]; do
	case $1 in
	--systemd) mode=systemd ;;
	--timeout) timeout=$2 && shift ;;
	--mem) mem=$2 && shift ;;
	--cpus) cpus=$2 && shift ;;
	--env) envs+=("$2") && shift ;;
	--console) console=$2 && shift ;;
	--rw)
		[ -d "$2" ] || die "--rw $2: not a directory"
		rws+=("$(cd "$2" && pwd)") && shift
		;;
	--root)
		[ -d "$2" ] || die "--root $2: not a directory"
		root=$(cd "$2" && pwd) && shift
		;;
	--) die "no KERNEL before --" ;;
	-*) die "unknown option $1" ;;
	*) break ;;
	esac
	shift
done
[ $# -ge 3 ] && [ "$2" = -- ] || die "usage: vm.sh [OPTIONS] KERNEL -- COMMAND [ARG...]"
kernel=$1
shift 2

if [ -f "$kernel/kernel.env" ]; then
	kdir=$(cd "$kernel" && pwd)
else
	kdir=$("$here/fetch.sh" "$kernel") || die "cannot fetch kernel $kernel"
fi
# shellcheck disable=SC1091
ARCH= && . "$kdir/kernel.env"
initrd=$("$here/initramfs.sh" "$kdir" "$root")
cache=${TCPOTEL_KERNEL_CACHE:-/var/cache/tcpotel/kernels}

native=$(dpkg --print-architecture)
karch=${ARCH:-$native}
case $karch in
amd64) qemu=qemu-system-x86_64 machine=q35 tty=ttyS0 ;;
arm64) qemu=qemu-system-aarch64 machine=virt tty=ttyAMA0 ;;
*) die "no QEMU set-up for $karch kernels" ;;
esac
command -v "$qemu" >/dev/null || die "$qemu not found (scripts/install-deps.sh kernels)"
if [ "$karch" != "$native" ] && [ "$root" = / ]; then
	die "$KVER is an $karch kernel: give a root of its architecture (--root \$(tests/kernels/root.sh $karch))"
fi

# A POSIX sh word for any string.
q() {
	local s=${1//\'/\'\\\'\'}
	printf "'%s'" "$s"
}

job=$(mktemp -d "${TMPDIR:-/tmp}/tcpotel-vm.XXXXXX")
qpid=
cleanup() {
	[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true
	rm -rf "$job"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# KVM where it boots, TCG elsewhere: decided once per host kernel by a probe boot.
accel=${TCPOTEL_VM_ACCEL:-auto}
[ "$karch" = "$native" ] || accel=tcg
if [ "$accel" = auto ]; then
	accel=tcg
	if [ -w /dev/kvm ]; then
		verdict=$cache/accel.$(uname -r)
		if [ ! -f "$verdict" ]; then
			echo "vm.sh: probing KVM (one boot, at most 60 s; remembered in $verdict)" >&2
			if TCPOTEL_VM_ACCEL=kvm "$0" --timeout 60 "$kdir" -- true >/dev/null 2>&1; then
				echo kvm >"$verdict"
			else
				echo tcg >"$verdict"
			fi
		fi
		accel=$(cat "$verdict")
	fi
fi
case $accel in
kvm) accel_opts=(-accel kvm -cpu host) ;;
tcg) accel_opts=(-accel tcg,thread=multi -cpu max) ;;
*) die "TCPOTEL_VM_ACCEL=$accel: expected tcg, kvm or auto" ;;
esac

{
	echo "#!/bin/sh"
	echo "cat /proc/uptime >/mnt/tcpotel-vm/booted"
	printf 'export PATH=%s HOME=/root TERM=dumb LANG=C.UTF-8\n' "$(q "$PATH")"
	for v in $(compgen -e); do
		pass=0
		case $v in TCPOTEL_*) pass=1 ;; esac
		for e in "${envs[@]}"; do [ "$e" != "$v" ] || pass=1; done
		[ "$pass" = 0 ] || printf 'export %s=%s\n' "$v" "$(q "${!v}")"
	done
	# How the guest runs: cells.sh slows its tests down under TCG.
	printf 'export TCPOTEL_VM_ACCEL=%s\n' "$accel"
	printf 'cd %s || exit 125\n' "$(q "$PWD")"
	printf '%s ' "$(for a in "$@"; do q "$a"; printf ' '; done)"
	echo
	echo 'echo $? >/mnt/tcpotel-vm/rc'
} >"$job/job.sh"

# arm64 under TCG: QEMU's own pointer authentication algorithm rather than
# the architected one (QARMA), which costs much of the emulation's time.
[ "$karch/$accel" != arm64/tcg ] || accel_opts=(-accel tcg,thread=multi -cpu max,pauth-impdef=on)

log=${console:-$job/console.log}
# Another root: the work tree and the kernel's modules are not in it.
shares=() share_paths= share_args=()
[ "$root" = / ] || shares=("$PWD" "$(cd "$kdir" && pwd -P)")
for i in "${!shares[@]}"; do
	[[ ${shares[$i]} =~ ^/[A-Za-z0-9_./+-]*$ ]] || die "${shares[$i]}: only plain path characters"
	share_args+=(-virtfs "local,path=${shares[$i]},mount_tag=sh$i,security_model=none,readonly=on,multidevs=remap")
	share_paths+=${share_paths:+,}${shares[$i]}
done
rw_paths= rw_args=()
for i in "${!rws[@]}"; do
	[[ ${rws[$i]} =~ ^/[A-Za-z0-9_./+-]*$ ]] || die "--rw ${rws[$i]}: only plain path characters"
	rw_args+=(-virtfs "local,path=${rws[$i]},mount_tag=rw$i,security_model=none,multidevs=remap")
	rw_paths+=${rw_paths:+,}${rws[$i]}
done
args=(-machine "$machine" "${accel_opts[@]}" -smp "$cpus" -m "$mem" -nodefaults -no-user-config
	-display none -no-reboot -kernel "$VMLINUZ" -initrd "$initrd"
	-append "console=$tty panic=-1 quiet tcpotel.mode=$mode tcpotel.moddir=$MODDIR tcpotel.rw=$rw_paths tcpotel.shares=$share_paths"
	-serial "file:$log" -device virtio-serial-pci -chardev stdio,id=out,signal=off
	-device virtconsole,chardev=out -device virtio-rng-pci
	-virtfs "local,path=$root,mount_tag=root,security_model=none,readonly=on,multidevs=remap"
	-virtfs "local,path=$job,mount_tag=job,security_model=none,multidevs=remap"
	"${share_args[@]}" "${rw_args[@]}")

t0=$(date +%s)
status=0
# The guest's console is a terminal: it ends lines with CR LF. Line by line,
# so that a long run shows its progress.
nice -n "${TCPOTEL_VM_NICE:-5}" timeout "$timeout" "$qemu" "${args[@]}" </dev/null \
	> >(sed -u 's/\r$//') &
qpid=$!
wait "$qpid" || status=$?
qpid=
wait
t1=$(date +%s)
boot=$(cut -d' ' -f1 "$job/booted" 2>/dev/null || echo "?")
echo "vm.sh: $KVER ($accel, $mode): booted in ${boot}s, ran for $((t1 - t0))s" >&2
if [ -f "$job/rc" ]; then
	status=$(cat "$job/rc")
elif [ "$status" = 124 ]; then
	echo "vm.sh: $KVER: stopped after ${timeout}s" >&2
	status=124
else
	echo "vm.sh: $KVER: the guest ended without running the command" >&2
	status=125
fi
if [ "$status" -ge 124 ] && [ -z "$console" ]; then
	echo "vm.sh: last lines of the kernel console:" >&2
	tail -n 40 "$log" >&2
fi
exit "$status"
