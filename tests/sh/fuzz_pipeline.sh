#!/bin/sh
# fuzz_pipeline.sh: the whole compiler (parser, checker, lint, schema writer,
# code generator, fmt) under ASan and UBSan on a short fixed-seed batch of
# mutants of every .flow in the repository, after replaying every kept
# finding in tests/fuzz/pipeline/; then the C of every replayed finding and
# of a sample of the batch is compiled with -Werror.  No crash, hang over a
# second, bad JSON Schema, failed code generation or unbuildable C may
# remain.  The long campaign is `make fuzz` (tests/fuzz/campaign.sh).
#
# FUZZ_PIPELINE_ITERATIONS (default 1000) and FUZZ_SEED (default 1) change
# the batch.  A finding is left in the test's directory.
# flavour: asan
: "${TOP:?}"
bin=$TOP/build/asan/tools/fuzz_pipeline
case ${FLOWC:-} in
    */asan/*) ;;
    *) [ -x "$bin" ] || bin=$TOP/build/tools/fuzz_pipeline ;;
esac
[ -x "$bin" ] || { echo "fuzz_pipeline.sh: $bin is not built (make asan)"; exit 1; }

set --
for f in "$TOP"/tests/fuzz/pipeline/*.flow; do
    [ -f "$f" ] && set -- "$@" -r "$f"
done
seeds=$(find "$TOP" -name '*.flow' -not -path "$TOP/build/*" -not -path "$TOP/bench/out/*" \
             -not -path "$TOP/tests/fuzz/pipeline/*" | sort)
mkdir -p c find
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
# the kept findings are replayed first, then the seeds run as they are,
# then the batch; new.list names their C in that order
# shellcheck disable=SC2086
"$bin" -n "${FUZZ_PIPELINE_ITERATIONS:-1000}" -s "${FUZZ_SEED:-1}" -c c -o find \
    -g "$TOP/grammar/flow.y" -L "$TOP/stdlib" -F "$@" $seeds
st=$?
[ $st -eq 0 ] || exit 1
# the C of the kept findings and of the seeds, and the batch's first new files
head -n "${FUZZ_PIPELINE_COMPILE:-120}" c/new.list >compile.list 2>/dev/null
sh "$TOP/tests/fuzz/compile_c.sh" c compile.list find
