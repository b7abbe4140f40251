#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the small initramfs that boots an unpacked kernel (fetch.sh) with the
# machine's own root file system: Debian's busybox-static, tests/kernels/init,
# and the kernel's own virtio, 9p and overlay modules (decompressed, in load
# order). Prints its path: KDIR/initramfs.cpio.gz, rebuilt when init or this
# script is newer.
#
#   tests/kernels/initramfs.sh KDIR [ROOT]
#
# ROOT: the root file system the guest boots (vm.sh --root; default /, this
# machine's), whose busybox-static goes in: it must run on the kernel's
# architecture.
set -euo pipefail

die() {
	echo "initramfs.sh: $*" >&2
	exit 1
}

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: initramfs.sh KERNEL_DIR [ROOT]"
kdir=$(cd "$1" && pwd)
root=${2:-/}
here=$(cd "$(dirname "$0")" && pwd)
[ -f "$kdir/kernel.env" ] || die "$kdir: no kernel.env (not unpacked by fetch.sh)"
# shellcheck disable=SC1091
. "$kdir/kernel.env"
out=$kdir/initramfs.cpio.gz
if [ -f "$out" ] && [ "$out" -nt "$here/init" ] && [ "$out" -nt "$0" ]; then
	echo "$out"
	exit 0
fi
if [ "$root" = / ]; then
	busybox=$(command -v busybox || true)
	[ -n "$busybox" ] && file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
		busybox=/bin/busybox
else
	# A root of another architecture: its own busybox (tests/kernels/root.sh).
	busybox=$root/bin/busybox
fi
file -L "$busybox" | grep -q 'statically linked' ||
	die "no static busybox at $busybox (install busybox-static)"

# Everything the root share and the overlay need, with what they depend on.
want=(virtio_pci virtio_console virtio-rng 9pnet_virtio 9p overlay)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp"/{bin,dev,proc,sys,lower,rw,newroot,modules}
cp "$busybox" "$tmp/bin/busybox"
cp "$here/init" "$tmp/init"
chmod 0755 "$tmp/init"
: >"$tmp/modules/order"
modprobe -d "$kdir" -S "$KVER" --show-depends -a "${want[@]}" | awk '$1 == "insmod" { print $2 }' |
	while read -r ko; do
		name=$(basename "$ko")
		name=${name%%.ko*}
		grep -qx "$name" "$tmp/modules/order" && continue
		case $ko in
		*.xz) xz -dc "$ko" >"$tmp/modules/$name.ko" ;;
		*.zst) zstd -qdc "$ko" >"$tmp/modules/$name.ko" ;;
		*.gz) gzip -dc "$ko" >"$tmp/modules/$name.ko" ;;
		*) cp "$ko" "$tmp/modules/$name.ko" ;;
		esac
		echo "$name" >>"$tmp/modules/order"
	done
(cd "$tmp" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.new"
mv "$out.new" "$out"
echo "$out"
