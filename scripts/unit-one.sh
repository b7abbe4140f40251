#!/usr/bin/env bash
# Builds and runs one unit test file against the modules it needs, without the
# rest of the tree: scripts/unit-one.sh TESTNAME MODULE... [-- filter...]
#   e.g. scripts/unit-one.sh test_config config log
# A MODULE ending in .c is taken as a path; a name found only under tests/unit/
# (e.g. http_stub) is taken from there.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1
shift
mods=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
	case $1 in
	*.c) mods+=("$1") ;;
	*) if [ -f "src/$1.c" ] || [ ! -f "tests/unit/$1.c" ]; then mods+=("src/$1.c"); else mods+=("tests/unit/$1.c"); fi ;;
	esac
	shift
done
[ "${1:-}" = "--" ] && shift
mkdir -p .output/one
pcs="libbpf libelf zlib libcurl json-c yaml-0.1"
${CC:-cc} -std=gnu11 -g -O1 -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
	-Wno-unused-parameter -D_GNU_SOURCE -DTCPOTEL_VERSION='"dev"' ${SANITIZE:+-fsanitize=$SANITIZE} \
	-Isrc -Ibpf -Itests/unit -I.output $(pkg-config --cflags $pcs) \
	tests/unit/runner.c "tests/unit/$name.c" "${mods[@]}" \
	$(pkg-config --libs $pcs) -lisal -lpthread -lm -o ".output/one/$name"
TCPOTEL_SRCDIR=$PWD ".output/one/$name" "$@"
