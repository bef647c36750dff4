#!/bin/sh
# campaign.sh: the long fuzz campaign of the whole compiler (`make fuzz`).
#
# Runs build/asan/tools/fuzz_pipeline (tests/fuzz/fuzz_pipeline.c; FUZZ_BIN) over
# mutants of every .flow in the repository, in chunks of FUZZ_CHUNK (default
# 10,000) mutants with seeds 1, 2, ..., niced, until FUZZ_PIPELINE_MUTANTS
# (default 100,000) have run; after each chunk, the C it generated that
# differs from all the C before (tests/fuzz/compile_c.sh) is compiled with
# -Werror: gcc -fsyntax-only for every file, gcc -O2 and clang for one in
# eight.  Each chunk replays the kept findings of tests/fuzz/pipeline/ first.
#
# Findings go to build/fuzz/pipeline/find/: crash-*, sanitizer-*, hang-*
# (a compilation over a second), schema-*, cg-*, fmt-* and unbuildable-*
# (checks clean, does not compile).  Fix each, then keep it as
# tests/fuzz/pipeline/<what>.flow, which `make test` replays.  Prints the
# totals; exits 1 if there was any finding.
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
bin=${FUZZ_BIN:-$TOP/build/asan/tools/fuzz_pipeline}   # a copy, to rebuild meanwhile
[ -x "$bin" ] || { echo "campaign.sh: $bin is not built (make asan)"; exit 2; }
work=${FUZZ_WORK:-$TOP/build/fuzz/pipeline}
total=${FUZZ_PIPELINE_MUTANTS:-100000}
chunk=${FUZZ_CHUNK:-10000}
first=${FUZZ_FIRST_SEED:-1}
mkdir -p "$work/c" "$work/find"
cd "$work" || exit 2

set --
for f in "$TOP"/tests/fuzz/pipeline/*.flow; do
    [ -f "$f" ] && set -- "$@" -r "$f"
done
seeds=$(find "$TOP" -name '*.flow' -not -path "$TOP/build/*" -not -path "$TOP/bench/out/*" \
             -not -path "$TOP/tests/fuzz/pipeline/*" | sort)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"

done_n=0 clean=0 cfiles=0 cnew=0 compiled=0 least=""
s=$first
start=$(date +%s)
while [ "$done_n" -lt "$total" ]; do
    n=$chunk
    [ $((total - done_n)) -lt "$n" ] && n=$((total - done_n))
    : >c/new.list
    # shellcheck disable=SC2086
    nice -n 10 "$bin" -n "$n" -s "$s" -c c -o find -g "$TOP/grammar/flow.y" -L "$TOP/stdlib" \
        -F "$@" $seeds >chunk.out 2>chunk.err
    st=$?
    line=$(grep '^fuzz_pipeline:' chunk.out | tail -1)
    echo "chunk $s: $line (status $st)"
    [ $st -gt 1 ] && sed -n '1,20p' chunk.err
    # fuzz_pipeline: R replayed, S seeds, N mutants (at least L of each seed), C checked clean, J JSON Schemas, F C files (W new), X findings
    l=$(echo "$line" | sed -n 's/.*at least \([0-9]*\) of each.*/\1/p')
    c=$(echo "$line" | sed -n 's/.* \([0-9]*\) checked clean.*/\1/p')
    f=$(echo "$line" | sed -n 's/.* \([0-9]*\) C files.*/\1/p')
    w=$(echo "$line" | sed -n 's/.*C files (\([0-9]*\) new).*/\1/p')
    done_n=$((done_n + n))
    clean=$((clean + ${c:-0}))
    cfiles=$((cfiles + ${f:-0}))
    cnew=$((cnew + ${w:-0}))
    least="$least ${l:-0}"
    nice -n 10 sh "$TOP/tests/fuzz/compile_c.sh" c c/new.list find | tail -1
    compiled=$((compiled + $(wc -l <c/new.list)))
    s=$((s + 1))
done
count() { ls find/"$1"-* 2>/dev/null | grep -c '\.flow$'; }
crashes=$(( $(count crash) + $(count sanitizer) ))
echo
each=0
for l in $least; do each=$((each + l)); done
echo "fuzz campaign: $done_n mutants of the $(echo "$seeds" | wc -l) .flow files" \
     "(at least $each of each), $(( $(date +%s) - start )) s"
echo "  checked clean $clean; C files generated $cfiles, $cnew different, all compiled ($compiled)"
echo "  crashes $crashes, hangs over 1 s $(count hang), bad JSON Schemas $(count schema)," \
     "failed code generation $(count cg), fmt $(count fmt), unbuildable $(count unbuildable)"
echo "  findings are in $work/find"
[ -z "$(ls find 2>/dev/null)" ]
