#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Unpacks Debian packages of another architecture into a sysroot for the cross
# build (make ARCH=arm64): those that cannot be installed beside the
# machine's own because they are not Multi-Arch: same (libisal-dev). The
# packages are the machine's apt candidates; a .deb already in apt's cache is
# used as it is, others are downloaded with `apt-get download` (the machine
# needs `dpkg --add-architecture ARCH` and its package lists).
#
#   scripts/cross-sysroot.sh ARCH SYSROOT PACKAGE...
#
# Writes SYSROOT/.stamp last; the libraries are in SYSROOT/usr/lib/TRIPLET.
set -euo pipefail

die() {
	echo "cross-sysroot: $*" >&2
	exit 1
}

[ $# -ge 3 ] || die "usage: cross-sysroot.sh ARCH SYSROOT PACKAGE..."
arch=$1 sysroot=$2
shift 2
dpkg --print-foreign-architectures | grep -qx "$arch" ||
	[ "$(dpkg --print-architecture)" = "$arch" ] ||
	die "dpkg does not know $arch: dpkg --add-architecture $arch && apt-get update (scripts/install-deps.sh cross)"

rm -rf "$sysroot"
mkdir -p "$sysroot/.debs"
for pkg in "$@"; do
	ver=$(apt-cache policy "$pkg:$arch" | awk '$1 == "Candidate:" { print $2 }')
	[ -n "$ver" ] && [ "$ver" != "(none)" ] ||
		die "no $pkg:$arch in apt's lists (apt-get update after dpkg --add-architecture $arch?)"
	deb=/var/cache/apt/archives/${pkg}_${ver//:/%3a}_$arch.deb
	if [ ! -f "$deb" ]; then
		(cd "$sysroot/.debs" && apt-get download -qq "$pkg:$arch=$ver") ||
			die "cannot download $pkg:$arch $ver"
		deb=$(ls "$sysroot/.debs/${pkg}_"*"_$arch.deb")
	fi
	dpkg-deb -x "$deb" "$sysroot"
done
rm -rf "$sysroot/.debs"
touch "$sysroot/.stamp"
