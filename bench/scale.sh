#!/bin/sh
# scale.sh [CONSTRUCT...]: flowc's time grows linearly with its input, on
# every construct of bench/gen_hostile.sh.  For each, a file with N of it and
# one with 10N are checked (`flowc check`) and, when they check clean, built
# (`flowc build --emit-c`, so code generation and the schema writer run too;
# with FLOWC_CC=true, so that what is measured is flowc's work, not the C
# compiler's);
# the goal is that the 10x file costs at most 12x, in time and in memory
# (peak resident set, one run each, without valgrind; a build's C compiler
# is FLOWC_CC=true there, so the figure is flowc's own): PASS or FAIL per
# construct and measure, and the exit status is the number of FAILs.
# Last, the peak memory of checking and building tests/ok/nesting_at_limits.flow
# (every nesting limit at once), against a goal of SCALE_LIMITS_KB (64 MB).
#
# What is measured (SCALE_MODE):
#   callgrind  instructions executed, counted by valgrind --tool=callgrind:
#              exact and the same on a busy machine (the default when
#              valgrind is installed; about 50x slower to run)
#   wall       wall-clock time (noisy on a shared machine)
# Each figure is the median of SCALE_RUNS runs (default 3 for wall time, 1
# for callgrind, whose counts do not change from run to run).  SCALE_N=NAME=N,...
# overrides a construct's N.  A run that takes longer than SCALE_TIMEOUT
# seconds (default 120; 900 under callgrind) or more than SCALE_MEM_KB of memory (6 GB) counts
# as a FAIL (timeout, crash).
cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
[ -x "$FLOWC" ] || { echo "no $FLOWC: run make first"; exit 2; }
MODE=${SCALE_MODE:-}
[ -n "$MODE" ] || { command -v valgrind >/dev/null 2>&1 && MODE=callgrind || MODE=wall; }
RUNS=${SCALE_RUNS:-$([ "$MODE" = callgrind ] && echo 1 || echo 3)}
TIMEOUT=${SCALE_TIMEOUT:-$([ "$MODE" = callgrind ] && echo 900 || echo 120)}
export FLOWC_CC=true                             # builds: flowc's work, no C compiler
MEM_KB=${SCALE_MEM_KB:-6000000}                  # a run past this much memory fails too
out=bench/out/scale
mkdir -p "$out"

# N per construct: the small input; 10N stays within the nesting limits
sizes="lbrace_prompt=2000 unclosed_interp=2000 triple_braces=500 escapes=2000
long_string=5000 doc_comment=2000 many_decls=100 many_lets=1000 many_errors=1000
errors_one_line=1000 errors_unsorted=500 field_chain=80 narrowed_chain=40
coalesce_chain=80 binary_chain=80 paren_nesting=24 block_nesting=12 generic_nesting=25
else_if_chain=40 blank_lines=100 dup_settings=1000 big_record=500 big_match=100
pipeline_stages=100 agent_params=100 parallel_bodies=100 nested_parallel=6
schema_chain=50 schema_dag=8 shared_schema=30 approval_chain=100"
size_of() {
    for kv in $(echo "${SCALE_N:-}" | tr ',' ' ') $sizes; do
        case $kv in "$1"=*) echo "${kv#*=}"; return ;; esac
    done
    echo 100
}

# One measurement of "$@": instructions or microseconds; "timeout" or
# "crash" instead when it did not end well.
measure() {
    log=$out/run.log
    if [ "$MODE" = callgrind ]; then
        (ulimit -v "$MEM_KB"; exec timeout "$TIMEOUT" valgrind --tool=callgrind \
            --callgrind-out-file=/dev/null --log-file="$log" "$@") >/dev/null 2>&1
        st=$?
        [ $st = 124 ] && { echo timeout; return; }
        [ $st -gt 1 ] && { echo crash; return; }
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$log"
    else
        s=$(date +%s%N)
        (ulimit -v "$MEM_KB"; exec timeout "$TIMEOUT" "$@") >/dev/null 2>&1
        st=$?
        e=$(date +%s%N)
        [ $st = 124 ] && { echo timeout; return; }
        [ $st -gt 1 ] && { echo crash; return; }
        echo $(( (e - s) / 1000 ))
    fi
}

median() {
    vals=""
    for i in $(seq "$RUNS"); do
        v=$(measure "$@")
        case $v in timeout|crash) echo "$v"; return ;; esac
        vals="$vals $v"
    done
    echo "$vals" | tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'
}

# "12.3" = b / a, or the word that stopped it
ratio() {
    case "$1$2" in
        *timeout*) echo timeout; return ;; *crash*) echo crash; return ;; *failed*) echo failed; return ;;
    esac
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (a > 0 ? b / a : 0) }'
}

# Peak resident memory of "$@" in KB, one run (a build runs no C compiler).
# A check may exit 1 (a construct whose large form is an error on purpose);
# a build must succeed, or its memory is that of a build that stopped early.
peak_kb() {
    command -v /usr/bin/time >/dev/null 2>&1 || { echo -; return; }
    (ulimit -v "$MEM_KB"; exec timeout "$TIMEOUT" /usr/bin/time -f '%M' \
        -o "$out/rss" "$@") >/dev/null 2>&1
    st=$?
    [ $st = 124 ] && { echo timeout; return; }
    [ $st -gt 1 ] && { echo crash; return; }
    [ $st = 1 ] && [ "$2" = build ] && { echo failed; return; }
    tail -n 1 "$out/rss"
}

# PASS, or FAIL when a ratio is over 12 or a run did not end well
verdict() {
    result=PASS
    for r in "$@"; do
        case $r in
            -) ;;
            timeout|crash|failed) result="FAIL ($r)" ;;
            *) awk -v r="$r" 'BEGIN { exit !(r > 12) }' && result=FAIL ;;
        esac
    done
    echo "$result"
}

human() {
    case $1 in *[!0-9]*|"") echo "$1"; return ;; esac
    awk -v x="$1" 'BEGIN { if (x >= 1e9) printf "%.2fG", x / 1e9; else if (x >= 1e6) printf "%.1fM", x / 1e6;
                           else if (x >= 1e3) printf "%.1fk", x / 1e3; else printf "%d", x }'
}

unit=$([ "$MODE" = callgrind ] && echo instructions || echo "microseconds (wall)")
echo "flowc scaling: $unit, median of $RUNS, N and 10N; goal: 10N costs <= 12x N"
printf '%-17s %6s %7s  %9s %9s %6s  %9s %9s %6s  %s\n' construct N 10N "check N" "10N" ratio \
    "build N" "10N" ratio result
constructs=${*:-$(sh bench/gen_hostile.sh list | cut -f1)}
fails=0
mem=""
for c in $constructs; do
    n=$(size_of "$c")
    big=$((n * 10))
    sh bench/gen_hostile.sh "$c" "$n" >"$out/$c.small.flow" || { fails=$((fails + 1)); continue; }
    sh bench/gen_hostile.sh "$c" "$big" >"$out/$c.big.flow"
    cs=$(median "$FLOWC" check "$out/$c.small.flow")
    cb=$(median "$FLOWC" check "$out/$c.big.flow")
    cr=$(ratio "$cs" "$cb")
    bs=- bb=- br=-
    if "$FLOWC" check "$out/$c.small.flow" >/dev/null 2>&1 \
       && grep -q '^workflow' "$out/$c.small.flow"; then
        bs=$(median "$FLOWC" build "$out/$c.small.flow" --emit-c "$out/$c.c" --emit-schemas "$out/schemas")
        bb=$(median "$FLOWC" build "$out/$c.big.flow" --emit-c "$out/$c.c" --emit-schemas "$out/schemas")
        br=$(ratio "$bs" "$bb")
    fi
    result=$(verdict "$cr" "$br")
    case $result in FAIL*) fails=$((fails + 1)) ;; esac
    printf '%-17s %6d %7d  %9s %9s %6s  %9s %9s %6s  %s\n' "$c" "$n" "$big" "$(human "$cs")" \
        "$(human "$cb")" "$cr" "$(human "$bs")" "$(human "$bb")" "$br" "$result"
    # memory: the same files, one run each
    ms=$(peak_kb "$FLOWC" check "$out/$c.small.flow")
    mb=$(peak_kb "$FLOWC" check "$out/$c.big.flow")
    mr=$(ratio "$ms" "$mb")
    ns=- nb=- nr=-
    if [ "$bs" != - ]; then
        ns=$(peak_kb "$FLOWC" build "$out/$c.small.flow" -o "$out/$c.exe")
        nb=$(peak_kb "$FLOWC" build "$out/$c.big.flow" -o "$out/$c.exe")
        nr=$(ratio "$ns" "$nb")
    fi
    result=$(verdict "$mr" "$nr")
    case $result in FAIL*) fails=$((fails + 1)) ;; esac
    mem="$mem$(printf '%-17s %6d %7d  %9s %9s %6s  %9s %9s %6s  %s' "$c" "$n" "$big" "$ms" "$mb" \
        "$mr" "$ns" "$nb" "$nr" "$result")
"
done
echo
echo "flowc scaling: peak memory (KB, one run; builds without the C compiler); goal: 10N <= 12x N"
printf '%-17s %6s %7s  %9s %9s %6s  %9s %9s %6s  %s\n' construct N 10N "check N" "10N" ratio \
    "build N" "10N" ratio result
printf '%s' "$mem"
limits=tests/ok/nesting_at_limits.flow
goal=${SCALE_LIMITS_KB:-65536}
lc=$(peak_kb "$FLOWC" check "$limits")
lb=$(peak_kb "$FLOWC" build "$limits" -o "$out/limits.exe")
result=PASS
for v in "$lc" "$lb"; do
    case $v in
        -) ;;
        *[!0-9]*) result="FAIL ($v)" ;;
        *) [ "$v" -gt "$goal" ] && result=FAIL ;;
    esac
done
case $result in FAIL*) fails=$((fails + 1)) ;; esac
echo
echo "$limits: check $lc KB, build $lb KB (goal: <= $goal KB each): $result"
echo "$fails FAIL"
exit "$fails"
