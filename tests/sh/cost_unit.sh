#!/bin/sh
# cost_unit.sh: what a call costs, class by class (tests/tools/rt_cost.c):
# each token class at its own price (input, output, 5-minute and 1-hour
# cache writes, cache reads, reasoning as output), undeclared cache prices
# as input, an answer without usage charged its hold and no answer nothing,
# and both providers' usage as their parsers read it.
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_cost" ;;
    *) B="$TOP/build/tools/rt_cost" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_cost"
[ -x "$B" ] || { echo "no $B (make all)"; exit 77; }
"$B" selftest >out 2>err
st=$?
cat out err
grep -q '^0 failed$' out || exit 1
exit $st
