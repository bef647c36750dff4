#!/bin/sh
# rt_values.sh: the runtime's C self-test (tests/tools/rt_values.c): values,
# the pool, operators, JSON output in schema order, validation messages,
# read_jsonl/write_jsonl, the mock provider and the allocation-failure loops.
# The ASan pass of tests/run uses the ASan build of the tool.
case $FLOWC in
    */asan/*) bin="$TOP/build/asan/tools/rt_values" ;;
    *) bin="$TOP/build/tools/rt_values" ;;
esac
if [ ! -x "$bin" ]; then
    echo "rt_values.sh: $bin is not built (make all / make asan)"
    exit 1
fi
exec "$bin" "$TOP" "$(pwd)"
