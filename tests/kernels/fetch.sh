#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Fetches a stock Debian kernel with apt and unpacks it (never installs it),
# then prints the directory that holds it.
#
#   tests/kernels/fetch.sh SPEC
#
# SPEC is a Debian suite (bullseye, bookworm, trixie, bookworm-backports,
# sid, ...), meaning that suite's current linux-image-ARCH, or SUITE/PACKAGE
# for another package of it: a kernel image, or a metapackage such as
# linux-image-rt-amd64 (its current image).
#
# The archive is the one this machine's apt already uses (its Debian main
# archive, as `apt-get indextargets` reports it); the package lists live in a
# private apt state under the cache, so the machine's own apt is untouched.
# The unpacked kernel (boot/vmlinuz-KVER, lib/modules/KVER with depmod run)
# is cached under ${TCPOTEL_KERNEL_CACHE:-/var/cache/tcpotel/kernels}, one
# directory per package version, with a kernel.env file describing it:
#
#   KVER=6.1.0-37-amd64 VMLINUZ=.../boot/vmlinuz-6.1.0-37-amd64
#   MODDIR=.../lib/modules/6.1.0-37-amd64 PACKAGE=... VERSION=... SUITE=...
#
# Without the archive (offline), the last kernel fetched for SPEC is used.
# Environment: TCPOTEL_KERNEL_CACHE, TCPOTEL_KERNEL_ARCH (default: dpkg's).
set -euo pipefail

die() {
	echo "fetch.sh: $*" >&2
	exit 1
}

[ $# -eq 1 ] || die "usage: fetch.sh SUITE[/PACKAGE]"
spec=$1
suite=${spec%%/*}
pkg=
[ "$spec" = "$suite" ] || pkg=${spec#*/}
[[ $suite =~ ^[a-z][a-z0-9-]*$ ]] || die "bad suite '$suite'"
arch=${TCPOTEL_KERNEL_ARCH:-$(dpkg --print-architecture)}
cache=${TCPOTEL_KERNEL_CACHE:-/var/cache/tcpotel/kernels}
apt_dir=$cache/apt
# Package lists per suite, and per architecture for another one than dpkg's
# (the arm64 cells on an x86 machine): each list names one architecture.
lists=$suite
[ "$arch" = "$(dpkg --print-architecture)" ] || lists=$suite.$arch
mkdir -p "$apt_dir/lists/partial" "$apt_dir/archives/partial" "$apt_dir/etc/preferences.d" \
	"$apt_dir/etc/sources.list.d"

exec 9>"$cache/.lock"
flock 9

# shellcheck source=tests/kernels/archive.sh
. "$(dirname "$0")/archive.sh"

apt_opts=(-o "Dir::State=$apt_dir" -o "Dir::State::Lists=$apt_dir/lists"
	-o "Dir::State::status=/dev/null" -o "Dir::Cache=$apt_dir"
	-o "Dir::Cache::archives=$apt_dir/archives" -o "Dir::Etc::SourceList=$apt_dir/sources.list"
	-o "Dir::Etc::SourceParts=$apt_dir/etc/sources.list.d"
	-o "Dir::Etc::Preferences=$apt_dir/etc/preferences"
	-o "Dir::Etc::PreferencesParts=$apt_dir/etc/preferences.d"
	-o "APT::Architecture=$arch" -o "APT::Architectures=$arch"
	-o "Acquire::Languages=none" -o "Debug::NoLocking=1" -o "APT::Sandbox::User=root" -qq)

resolve_and_download() {
	local uri list ver
	uri=$(debian_archive)
	[ -n "$uri" ] || die "cannot find this machine's Debian archive in apt's sources"
	list="deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $uri $suite main"
	if [ "$(cat "$apt_dir/sources.list.$lists" 2>/dev/null)" != "$list" ] ||
		[ -z "$(find "$apt_dir/lists.$lists.stamp" -mmin -720 2>/dev/null)" ]; then
		echo "$list" >"$apt_dir/sources.list.$lists"
		cp "$apt_dir/sources.list.$lists" "$apt_dir/sources.list"
		apt-get "${apt_opts[@]}" -o "Dir::State::Lists=$apt_dir/lists/$lists" \
			update >&2 || return 1
		touch "$apt_dir/lists.$lists.stamp"
	fi
	cp "$apt_dir/sources.list.$lists" "$apt_dir/sources.list"
	local opts=("${apt_opts[@]}" -o "Dir::State::Lists=$apt_dir/lists/$lists")
	# A metapackage (linux-image-amd64, linux-image-rt-amd64, ...) depends
	# on the suite's current kernel image of its flavour.
	local meta=${pkg:-linux-image-$arch} dep
	dep=$(apt-cache "${opts[@]}" depends "$meta" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
	pkg=${dep:-$meta}
	ver=$(apt-cache "${opts[@]}" show --no-all-versions "$pkg" |
		awk '/^Version:/ { print $2; exit }')
	[ -n "$ver" ] || die "no package $pkg in $suite"
	dir=$cache/${pkg}_${ver//:/%}
	if [ ! -f "$dir/kernel.env" ]; then
		local tmp deb
		tmp=$(mktemp -d "$cache/.dl.XXXXXX")
		(cd "$tmp" && apt-get "${opts[@]}" download "$pkg") >&2 ||
			{ rm -rf "$tmp"; die "cannot download $pkg"; }
		deb=$(ls "$tmp"/*.deb)
		rm -rf "$dir.new"
		dpkg-deb -x "$deb" "$dir.new"
		rm -rf "$tmp"
		unpacked "$dir.new" "$pkg" "$ver"
		rm -rf "$dir"
		mv "$dir.new" "$dir"
		# kernel.env names the paths of its final place.
		sed -i "s|$dir.new|$dir|g" "$dir/kernel.env"
	fi
	ln -sfn "$(basename "$dir")" "$cache/$spec_link"
}

# depmod and kernel.env for a freshly unpacked package.
unpacked() {
	local d=$1 p=$2 v=$3 kver vmlinuz
	# Debian 13 ships modules in usr/lib/modules; depmod looks in lib/modules.
	if [ ! -d "$d/lib/modules" ] && [ -d "$d/usr/lib/modules" ]; then
		ln -s usr/lib "$d/lib"
	fi
	kver=$(ls "$d/lib/modules" | head -n 1)
	[ -n "$kver" ] || die "$p has no lib/modules"
	vmlinuz=$(ls "$d"/boot/vmlinuz-* 2>/dev/null | head -n 1)
	[ -n "$vmlinuz" ] || die "$p has no boot/vmlinuz-*"
	depmod -b "$d" "$kver"
	cat >"$d/kernel.env" <<-ENV
		KVER=$kver
		VMLINUZ=$vmlinuz
		MODDIR=$d/lib/modules/$kver
		PACKAGE=$p
		VERSION=$v
		SUITE=$suite
		ARCH=$arch
	ENV
}

spec_link=$(echo "$spec.$arch" | tr '/' '_')
dir=
if ! resolve_and_download; then
	[ -f "$cache/$spec_link/kernel.env" ] ||
		die "cannot reach the archive for $spec, and no kernel of it is cached"
	echo "fetch.sh: archive unreachable: using the cached $(readlink "$cache/$spec_link")" >&2
	dir=$cache/$(readlink "$cache/$spec_link")
fi
echo "$dir"
