#!/bin/sh
# flowtest_examples.sh: every example has its tests (examples/NAME.flowtest
# beside NAME.flow), and `flowc test examples/` passes them all: a router's
# arms, a critic loop's rounds and its escalation, a pipeline's skips, an
# approval resumed.  Each example is compiled once.  Plain only: what the
# examples' tests test is the workflows' logic (flowtest_cli runs flowc test
# itself under ASan, provider_examples the examples' binaries).
# flavour: plain
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
fail() { echo "FAIL: $*"; exit 1; }
for f in "$TOP"/examples/*.flow; do
    [ -f "${f}test" ] || fail "$(basename "$f") has no tests (${f}test)"
done
"$FLOWC" test "$TOP/examples" >out 2>err || fail "flowc test examples: $(cat out err)"
n=$(grep -c '^pass ' out)
[ "$(tail -1 out)" = "$n passed, 0 failed" ] || fail "totals: $(cat out)"
[ "$n" -ge "$(ls "$TOP"/examples/*.flow | wc -l)" ] || fail "fewer tests than examples: $(cat out)"
[ ! -s err ] || fail "stderr: $(cat err)"
# a binary per example, and one per agent tested alone
[ "$(ls .flow/test | wc -l)" = "$(( $(ls "$TOP"/examples/*.flow | wc -l) + $(cat "$TOP"/examples/*.flowtest | grep -c '^ *call ') ))" ] ||
    fail "binaries: $(ls .flow/test)"
echo ok
