#!/usr/bin/env bash
# Installs, on Debian 12, the packages tcpotel needs to build, run and test,
# and only those that are missing. Needs root when something is missing.
#
#   scripts/install-deps.sh           build and test (make run, make test)
#   scripts/install-deps.sh kernels   also the kernel matrix's (make test-kernels)
set -euo pipefail

build=(make gcc clang llvm pkg-config bpftool libbpf-dev libelf-dev zlib1g-dev
	libcurl4-openssl-dev libjson-c-dev libyaml-dev libmicrohttpd-dev libisal-dev)
test=(clang-format python3 python3-yaml iproute2 nftables chromium prometheus openssl postgresql-15)
# tests/kernels: QEMU, the initramfs (busybox-static, cpio, depmod/modprobe
# from kmod, xz and zstd for compressed modules), setpriv and prlimit.
kernels=()
if [ "${1:-}" = kernels ]; then
	case $(dpkg --print-architecture) in
	arm64) kernels=(qemu-system-arm) ;;
	*) kernels=(qemu-system-x86) ;;
	esac
	kernels+=(busybox-static cpio kmod xz-utils zstd util-linux)
fi

missing=()
for pkg in "${build[@]}" "${test[@]}" "${kernels[@]}"; do
	dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$pkg")
done
# The map page's library and the browser test come from the npm registry:
# Debian's npm only when the machine has none of its own.
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}" >&2
	echo "install-deps: run as root (sudo make ...) to install them" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
