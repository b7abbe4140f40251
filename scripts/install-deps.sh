#!/usr/bin/env bash
# Installs, on Debian 12, the packages tcpotel needs to build, run and test,
# and only those that are missing. Needs root when something is missing.
#
#   scripts/install-deps.sh           build and test (make run, make test)
#   scripts/install-deps.sh kernels   also the kernel matrix's (make test-kernels)
#   scripts/install-deps.sh cross     also the arm64 cross build's and the
#                                     arm64 guests' on an x86 machine
#                                     (make ARCH=arm64, make test-kernels ARCH=arm64)
set -euo pipefail

build=(make gcc clang llvm pkg-config bpftool libbpf-dev libelf-dev zlib1g-dev
	libcurl4-openssl-dev libjson-c-dev libyaml-dev libmicrohttpd-dev libisal-dev)
test=(clang-format python3 python3-yaml iproute2 nftables chromium prometheus openssl postgresql-15)
# tests/kernels: QEMU, the initramfs (busybox-static, cpio, depmod/modprobe
# from kmod, xz and zstd for compressed modules), setpriv and prlimit; its
# container column (tests/container): podman and crun, mmdebstrap for the
# image's Debian roots.
kernels=()
if [[ " $* " == *" kernels "* ]]; then
	case $(dpkg --print-architecture) in
	arm64) kernels=(qemu-system-arm) ;;
	*) kernels=(qemu-system-x86) ;;
	esac
	kernels+=(busybox-static cpio kmod xz-utils zstd util-linux podman crun mmdebstrap)
fi
# The arm64 cross build: Debian's cross compiler and the :arm64 libraries
# (multiarch; ISA-L's are unpacked by scripts/cross-sysroot.sh); the arm64
# guests: QEMU, and mmdebstrap with qemu-user-static for their root
# (tests/kernels/root.sh).
cross=()
if [[ " $* " == *" cross "* ]]; then
	cross=(gcc-aarch64-linux-gnu qemu-system-arm qemu-user-static mmdebstrap)
	for lib in libbpf-dev libelf-dev zlib1g-dev libcurl4-openssl-dev libjson-c-dev libyaml-dev \
		libmicrohttpd-dev; do
		cross+=("$lib:arm64")
	done
	if ! dpkg --print-foreign-architectures | grep -qx arm64; then
		[ "$(id -u)" -eq 0 ] || {
			echo "install-deps: run as root (sudo make ...) to add the arm64 architecture" >&2
			exit 1
		}
		dpkg --add-architecture arm64
	fi
fi

missing=()
for pkg in "${build[@]}" "${test[@]}" "${kernels[@]}" "${cross[@]}"; do
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
