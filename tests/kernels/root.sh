#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The root file system of a guest of another architecture than this
# machine's (the arm64 cells on an x86 machine), whose own root the guest
# cannot run: a Debian 12 root of that architecture made with mmdebstrap
# (its binaries run under qemu-user-static through binfmt_misc while it is
# made) and cached; prints its directory. vm.sh --root boots a guest on it.
#
#   tests/kernels/root.sh ARCH
#
# It holds what a cell runs: the agent's shared libraries, busybox-static
# for the initramfs, systemd, python3 with yaml, iproute2, nftables,
# util-linux (setpriv, prlimit) and make. The agent and the tests come from
# the work tree, shared by vm.sh. Cached under
# ${TCPOTEL_ROOT_CACHE:-/var/cache/tcpotel/roots}/bookworm-ARCH; remove that
# directory to make it again. DEBIAN_MIRROR overrides the archive of the
# machine's apt sources.
set -euo pipefail

# shellcheck source=tests/kernels/archive.sh
. "$(dirname "$0")/archive.sh"

die() {
	echo "root.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: root.sh ARCH"
arch=$1
[[ $arch =~ ^[a-z0-9]+$ ]] || die "bad architecture '$arch'"
cache=${TCPOTEL_ROOT_CACHE:-/var/cache/tcpotel/roots}
dir=$cache/bookworm-$arch
packages=(busybox-static systemd systemd-sysv dbus kmod procps util-linux libcap2-bin
	iproute2 nftables python3 python3-yaml make openssl
	libbpf1 libelf1 zlib1g libcurl4 libjson-c5 libyaml-0-2 libmicrohttpd12 libisal2)

if [ -x "$dir/bin/busybox" ] && [ -x "$dir/usr/bin/python3" ]; then
	echo "$dir"
	exit 0
fi
mkdir -p "$cache"
exec 9>"$cache/.lock.$arch"
flock 9
if [ ! -x "$dir/usr/bin/python3" ]; then
	command -v mmdebstrap >/dev/null || die "mmdebstrap is missing (scripts/install-deps.sh cross)"
	[ "$arch" = "$(dpkg --print-architecture)" ] || [ -e "/proc/sys/fs/binfmt_misc/qemu-${arch/arm64/aarch64}" ] ||
		die "binfmt_misc cannot run $arch programs: install qemu-user-static (and mount binfmt_misc)"
	mirror=${DEBIAN_MIRROR:-$(debian_archive)}
	echo "root.sh: making the bookworm $arch root in $dir (a few minutes)" >&2
	rm -rf "$dir.new"
	mmdebstrap --arch="$arch" --variant=minbase --include="$(
		IFS=,
		echo "${packages[*]}"
	)" \
		--aptopt='APT::Install-Recommends "false"' \
		--customize-hook='echo tcpotel-vm >"$1/etc/hostname"' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
		bookworm "$dir.new" "${mirror:-http://deb.debian.org/debian}" >&2 ||
		die "mmdebstrap failed"
	mv "$dir.new" "$dir"
fi
echo "$dir"
