#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Writes the BTF of a kernel image (the .BTF section a CONFIG_DEBUG_INFO_BTF
kernel carries) as a raw BTF file, which `bpftool btf dump file` reads.

    scripts/image-btf.py IMAGE OUT

IMAGE: an ELF vmlinux, or a boot image (arm64's Image, gzip-compressed or
not), which has no sections: there the BTF is found by its header (magic
0xeB9F, version 1, a 24-byte header) and its length read from that header.
This is how the arm64 build gets its vmlinux.h from Debian's arm64 kernel on
an x86 machine, whose own BTF describes another architecture.
"""
import gzip
import struct
import sys

HEADER = struct.Struct("<HBBIIIII")  # magic version flags hdr_len type_off type_len str_off str_len
MAGIC = 0xEB9F


def die(msg):
    sys.stderr.write("image-btf: %s\n" % msg)
    sys.exit(1)


def main():
    if len(sys.argv) != 3:
        die("usage: image-btf.py IMAGE OUT")
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    found = []
    at = data.find(struct.pack("<HBB", MAGIC, 1, 0))
    while at >= 0:
        if at + HEADER.size <= len(data):
            _, _, _, hdr_len, type_off, type_len, str_off, str_len = HEADER.unpack_from(data, at)
            end = at + hdr_len + max(type_off + type_len, str_off + str_len)
            # The kernel's BTF: types first, strings right after them, and big.
            if hdr_len == HEADER.size and type_off == 0 and str_off == type_len and end <= len(data) \
                    and type_len > 1 << 20:
                found.append((at, end))
        at = data.find(struct.pack("<HBB", MAGIC, 1, 0), at + 1)
    if len(found) != 1:
        die("%s: %d candidate BTF blobs (want 1): is it a kernel built with "
            "CONFIG_DEBUG_INFO_BTF?" % (sys.argv[1], len(found)))
    start, end = found[0]
    with open(sys.argv[2], "wb") as f:
        f.write(data[start:end])


if __name__ == "__main__":
    main()
