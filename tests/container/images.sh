#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds, on this machine, the two images podman_check.py runs, into a podman
# store of their own that podman_check.py (in a guest of the kernel matrix)
# uses read-only, as an additional image store:
#
#   tests/container/images.sh [STORE]          (root; STORE: .output/containers)
#
#   localhost/tcpotel:VERSION           `make image` on the Debian roots of
#                                       scripts/debian-rootfs.sh (no registry)
#   localhost/tcpotel-workload:test     the runtime root and .output/tcpload
#
# The builds use buildah's chroot isolation (BUILDAH_ISOLATION=chroot): their
# RUN steps need no OCI runtime and no cgroups, so they work on a machine
# whose hybrid cgroups make crun refuse to start a container, and at the
# machine's own speed rather than under emulation.
#
# The roots are made once per package lists and cached under
# ${TCPOTEL_ROOTFS_CACHE:-/var/cache/tcpotel/rootfs}/KEY, KEY a hash of the
# Containerfile's ARG BUILD_PACKAGES and ARG RUNTIME_PACKAGES lines (a change
# to either makes them again); making them needs the Debian archive of this
# machine's apt sources. Remove that directory to make them again.
set -euo pipefail
cd "$(dirname "$0")/../.."

die() {
	echo "images.sh: $*" >&2
	exit 1
}
since() { echo "$(($(date +%s) - $1)) s"; }

[ "$(id -u)" = 0 ] || die "run as root"
command -v podman >/dev/null || die "podman is missing (scripts/install-deps.sh kernels)"
[ -x .output/tcpload ] || die "no .output/tcpload: make all first"
mkdir -p "${1:-.output/containers}"
store=$(cd "${1:-.output/containers}" && pwd)
cache=${TCPOTEL_ROOTFS_CACHE:-/var/cache/tcpotel/rootfs}
key=$(grep -E '^ARG (BUILD|RUNTIME)_PACKAGES=' Containerfile | sha256sum | cut -c1-16)
roots=$cache/$key
build_base=localhost/tcpotel-build-base:$key
runtime_base=localhost/tcpotel-runtime-base:$key
log=$store/build.log
: >"$log"

# The roots, once per package lists.
t0=$(date +%s)
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$roots/tcpotel-build-base.tar" ] && [ -f "$roots/tcpotel-runtime-base.tar" ]; then
	echo "images.sh: Debian roots cached in $roots"
else
	echo "images.sh: making the Debian roots in $roots (once for these package lists)"
	rm -rf "$roots.new"
	scripts/debian-rootfs.sh "$roots.new" both >>"$log" 2>&1 || {
		tail -n 20 "$log" >&2
		die "cannot make the Debian roots (above, and $log), and none are cached in $roots for the Containerfile's package lists"
	}
	rm -rf "$roots"
	mv "$roots.new" "$roots"
	echo "images.sh: Debian roots made in $(since "$t0")"
fi
exec 9>&-

# A store of their own: the machine's podman storage is left alone. Its
# runroot (locks, mount state) is under /run, which a reboot empties.
run=/run/tcpotel-containers/$(sha256sum <<<"$store" | cut -c1-12)
cat >"$store/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$store/storage"
runroot = "$run"
EOF
export CONTAINERS_STORAGE_CONF=$store/storage.conf BUILDAH_ISOLATION=chroot

t0=$(date +%s)
for stage in build runtime; do
	tag=localhost/tcpotel-$stage-base:$key
	podman image exists "$tag" ||
		podman import -q "$roots/tcpotel-$stage-base.tar" "$tag" >>"$log" 2>&1 ||
		die "podman import of $roots/tcpotel-$stage-base.tar failed: $log"
done
echo "images.sh: bases imported in $(since "$t0")"

t0=$(date +%s)
make --no-print-directory image BUILD_BASE="$build_base" RUNTIME_BASE="$runtime_base" >>"$log" 2>&1 || {
	tail -n 20 "$log" >&2
	die "make image failed: $log"
}
echo "images.sh: localhost/tcpotel:$(cat VERSION) built in $(since "$t0")"

t0=$(date +%s)
ctx=$(mktemp -d)
trap 'rm -rf "$ctx"' EXIT
cp .output/tcpload "$ctx/tcpload"
printf 'FROM %s\nCOPY tcpload /usr/local/bin/tcpload\n' "$runtime_base" >"$ctx/Containerfile"
podman build -q -t localhost/tcpotel-workload:test "$ctx" >>"$log" 2>&1 ||
	die "the workload image's build failed: $log"
# The previous builds' images, now untagged: the store does not grow run after run.
podman image prune -f >>"$log" 2>&1 || true
echo "images.sh: localhost/tcpotel-workload:test built in $(since "$t0"); store $store"
