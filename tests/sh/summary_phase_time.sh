#!/bin/sh
# summary_phase_time.sh: a phase that took under a millisecond shows its own
# time in the summary, not the whole run's (its wall time of 0 was taken for
# "still running").  Phase 'quick' does nothing; phase 'slow' waits 300 ms
# for the mock: quick's time must be below slow's.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >pt.flow <<'FLOW'
schema R { word: string }
model m { provider: mock }
agent a(n: int) -> R { model: m  max_tokens: 50  prompt: "word {{ n }}" }
workflow pt() -> R {
  phase quick { let n = 1 }
  phase slow { let r = a(n) }
  return r
}
FLOW
"$FLOWC" build pt.flow -o pt >build.err 2>&1 || fail "build: $(cat build.err)"
./pt --mock --mock-latency 300 --no-journal >out 2>err || fail "run: $(cat err)"
quick=$(awk '$1 == "quick" { print $NF }' err | tr -d s)
slow=$(awk '$1 == "slow" { print $NF }' err | tr -d s)
[ -n "$quick" ] && [ -n "$slow" ] || fail "no phase rows: $(cat err)"
awk -v q="$quick" -v s="$slow" 'BEGIN { exit !(q < s && s >= 0.3) }' ||
    fail "phase 'quick' shows ${quick}s, 'slow' ${slow}s: $(cat err)"
echo ok
