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
# DEBIAN_MIRROR overrides http://deb.debian.org/debian. Needs mmdebstrap
# (Debian's package) and the mirror; about 330 MB of packages for the build
# root, 40 MB for the runtime root.
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-.output/rootfs}
which=${2:-both}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

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
	echo "debian-rootfs: $tar with ${list}"
	mmdebstrap --variant=minbase --include="${list// /,}" \
		--aptopt='APT::Install-Recommends "false"' \
		--customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
		--format=tar bookworm "$tar.tmp" "$mirror"
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
