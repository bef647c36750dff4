#!/bin/sh
# limit_unit.sh: the rate limiter's self-test on a fake clock
# (tests/tools/rt_limit.c): pacing from rpm:, tpm: and both providers'
# headers (requests, tokens, input and output tokens, remaining and reset),
# the slow start, the rate learned from 429s and its memory, an overload's
# pause, an operation's cap, and a simulated 400-call fan-out against a
# strict 50 req/s server with whole-second retry-after.
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_limit" ;;
    *) B="$TOP/build/tools/rt_limit" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_limit"
[ -x "$B" ] || { echo "no $B (make all)"; exit 77; }
"$B" selftest >out 2>err
st=$?
cat out err
grep -q '^0 failed$' out || exit 1
exit $st
