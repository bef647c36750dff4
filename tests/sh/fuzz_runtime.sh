#!/bin/sh
# fuzz_runtime.sh: the runtime's fuzzer (tests/tools/fuzz_runtime.c) over
# every parser of outside data: model answers (repair, validate), JSONL
# input, and both providers' response bodies.  It replays the seed corpus
# and every kept crasher under tests/fuzz/runtime/, then runs a short
# fixed-seed batch of mutants (the long campaign is `make fuzz`); a broken invariant, a sanitizer report, a leak or a
# hang fails.  The ASan pass of tests/run uses the ASan build of the tool.
# A failing input is saved here as crash-*; FUZZ_RUNTIME_SAVE=DIR keeps it.
# flavour: asan
case $FLOWC in
    */asan/*) bin="$TOP/build/asan/tools/fuzz_runtime" ;;
    *) bin="$TOP/build/tools/fuzz_runtime" ;;
esac
if [ ! -x "$bin" ]; then
    echo "fuzz_runtime.sh: $bin is not built (make all / make asan)"
    exit 1
fi
# make test runs a short batch (2,000 mutants, a few seconds); `make fuzz`
# the long one; FUZZ_RUNTIME_ARGS="-n 200000 -s 7" runs another.
"$bin" "$TOP" "$(pwd)" ${FUZZ_RUNTIME_ARGS:--n 2000}
st=$?
if [ $st -ne 0 ]; then
    echo "fuzz_runtime.sh: exit status $st; the input being run when it died is"
    echo "  fuzz_runtime-last-input under \$FUZZ_RUNTIME_SAVE (rerun with it set)"
fi
exit $st
