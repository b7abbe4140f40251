#!/usr/bin/env bash
# Runs the test tiers and ends with one summary line "N passed, N failed, N skipped".
#   tests/run.sh all | unit | bpf | integration [filter...]
# unit: no root needed. bpf and integration: root (real kernel, real sockets);
# without root their tests are reported as skipped with the reason, never as passed.
set -u
cd "$(dirname "$0")/.."
out=.output
tier=${1:-all}
shift || true
export TCPOTEL_SRCDIR=$PWD

total_pass=0 total_fail=0 total_skip=0
run_tier() {
	local name=$1
	shift
	echo "== $name tier"
	local log
	log=$(mktemp)
	"$@" 2>&1 | tee "$log"
	local rc=${PIPESTATUS[0]}
	local summary
	summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
	rm -f "$log"
	if [ -z "$summary" ]; then
		echo "$name tier: no summary line (exit status $rc): counted as one failure"
		total_fail=$((total_fail + 1))
		return
	fi
	local p f s
	p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$summary")
	f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$summary")
	s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$summary")
	total_pass=$((total_pass + p))
	total_fail=$((total_fail + f))
	total_skip=$((total_skip + ${s:-0}))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		echo "$name tier: exit status $rc with no failed test: counted as one failure"
		total_fail=$((total_fail + 1))
	fi
}

# Each libFuzzer target for FUZZ_TIME seconds from a seed corpus; a crash,
# leak or failed check fails it.
run_fuzzers() {
	local pass=0 fail=0 t=${FUZZ_TIME:-20}
	for f in config otlp; do
		local bin=$out/fuzz/fuzz_$f corpus
		corpus=$(mktemp -d)
		[ "$f" = config ] && cp config/tcpotel.yaml tests/fixtures/config/*.yaml "$corpus"/ 2>/dev/null
		[ "$f" = otlp ] && cp tests/golden/*.json "$corpus"/ 2>/dev/null
		if [ -x "$bin" ] && "$bin" -max_total_time="$t" -print_final_stats=0 \
			-artifact_prefix="$out/fuzz/" "$corpus" >"$out/fuzz/$f.log" 2>&1; then
			echo "ok   fuzz_$f ($(grep -o 'Done [0-9]* runs' "$out/fuzz/$f.log"))"
			pass=$((pass + 1))
		else
			echo "FAIL fuzz_$f (see $out/fuzz/$f.log)"
			tail -n 20 "$out/fuzz/$f.log"
			fail=$((fail + 1))
		fi
		rm -rf "$corpus"
	done
	echo "$pass passed, $fail failed, 0 skipped"
	[ "$fail" -eq 0 ]
}

case $tier in
all | unit) run_tier unit "$out/unit_tests" "$@" ;;&
all | sanitize) run_tier "unit (ASan+UBSan)" "$out/asan/unit_tests" "$@" ;;&
all | bpf) run_tier bpf "$out/bpf_tests" "$@" ;;&
all | fuzz) run_tier fuzz run_fuzzers ;;&
all | integration) run_tier integration python3 tests/integration/runner.py "$@" ;;
esac

echo "$total_pass passed, $total_fail failed, $total_skip skipped"
[ "$total_fail" -eq 0 ]
