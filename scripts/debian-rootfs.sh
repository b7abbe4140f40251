#!/usr/bin/env bash
# Makes the Debian 12 roots of the Containerfile's two stages with mmdebstrap,
# as tarballs that `podman import` turns into base images, so that
# `make image` needs no registry (and, once they are made, no network). The
# package lists are the Containerfile's own (ARG BUILD_PACKAGES and ARG
# RUNTIME_PACKAGES), so each stage finds its packages installed.
#
#   scripts/debian-rootfs.sh [OUTDIR] [build|runtime|both]     (root; OUTDIR: .output/rootfs)
#   podman import OUTDIR/tcpotel-build-base.tar localhost/tcpotel-build-base:12
#   podman import OUTDIR/tcpotel-runtime-base.tar localhost/tcpotel-runtime-base:12
#   make image BUILD_BASE=localhost/tcpotel-build-base:12 RUNTIME_BASE=localhost/tcpotel-runtime-base:12
#
# The archive is the Debian archive this machine's apt already uses
# (tests/kernels/archive.sh); DEBIAN_MIRROR overrides it. Needs mmdebstrap
# (Debian's package) and that archive; about 330 MB of packages for the
# build root, 40 MB for the runtime root.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=tests/kernels/archive.sh
. tests/kernels/archive.sh

out=${1:-.output/rootfs}
which=${2:-both}
mirror=${DEBIAN_MIRROR:-$(debian_archive)}
if [ -z "$mirror" ]; then
	echo "debian-rootfs: no Debian archive in this machine's apt sources: set DEBIAN_MIRROR" >&2
	exit 1
fi

packages() {
	local list
	list=$(sed -n "s/^ARG $1=\"\(.*\)\"\$/\1/p" Containerfile)
	if [ -z "$list" ]; then
		echo "debian-rootfs: no ARG $1=\"...\" line in Containerfile" >&2
		exit 1
	fi
	echo "$list"
}

root() { # NAME PACKAGE-LIST-ARG
	local tar="$out/tcpotel-$1-base.tar" list
	list=$(packages "$2")
	echo "debian-rootfs: $tar with ${list}, from $mirror"
	mmdebstrap --variant=minbase --include="${list// /,}" \
		--aptopt='APT::Install-Recommends "false"' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
		--format=tar bookworm "$tar.tmp" "$mirror" || {
		rm -f "$tar.tmp"
		echo "debian-rootfs: mmdebstrap failed for $tar: is the Debian archive $mirror reachable?" >&2
		exit 1
	}
	mv "$tar.tmp" "$tar"
}

command -v mmdebstrap >/dev/null || {
	echo "debian-rootfs: mmdebstrap is missing: apt-get install mmdebstrap" >&2
	exit 1
}
mkdir -p "$out"
case $which in
build) root build BUILD_PACKAGES ;;
runtime) root runtime RUNTIME_PACKAGES ;;
both)
	root build BUILD_PACKAGES
	root runtime RUNTIME_PACKAGES
	;;
*)
	echo "debian-rootfs: $which: expected build, runtime or both" >&2
	exit 1
	;;
esac
