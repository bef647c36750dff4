#!/bin/sh
# sensitive.sh: what @sensitive fields cost a run (issues 14 and 17): the
# runtime notes every sensitive value read, redacts them in every text it
# keeps (--trace-content's prompts and replies) and hashes them wherever the
# journal would hold one (answers, a tool loop's turns and results).  A
# fan-out of N contacts (default 1000, and 4x that), each a tool loop of two
# mocked tool calls, with the journal and --trace-content on; the same flow
# with @sensitive taken out is the floor.  Printed: wall time, user+system
# CPU and peak memory of each run (best of ROUNDS, default 3) and the ratio.
# Timings are printed, never asserted; on a loaded machine they are noisy
# (the load average is printed).
cd "$(dirname "$0")/.." || exit 2
make --no-print-directory build/flowc build/libflowrt.a >/dev/null || exit 1
out=bench/out/sensitive; rm -rf $out; mkdir -p $out
ROUNDS=${ROUNDS:-3}
N=${N:-1000}
build/flowc build bench/flows/sensitive.flow -o $out/with >/dev/null || exit 1
sed 's/ @sensitive//' bench/flows/sensitive.flow >$out/plain.flow
build/flowc build $out/plain.flow -o $out/without >/dev/null || exit 1
gen() {
    i=0
    while [ $i -lt $1 ]; do
        printf '{"id":"c%d","name":"Person %d","email":"person.%d@example%d.org","phone":"+1-555-%07d"}\n' \
            $i $i $i $((i % 97)) $i
        i=$((i + 1))
    done
}
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
# best VARIANT FILE: the best wall ms of ROUNDS runs, with its CPU and memory
best() {
    b=""; r=0
    while [ $r -lt $ROUNDS ]; do
        rm -f $out/j.db* $out/t.jsonl
        s=$(now_ms)
        /usr/bin/time -f '%U %S %M' -o $out/time $out/$1 --file $2 --mock --journal $out/j.db \
            --trace-content --trace $out/t.jsonl >/dev/null 2>$out/err ||
            { echo "($1: $(tail -1 $out/err))"; return; }
        w=$(( $(now_ms) - s ))
        if [ -z "$b" ] || [ $w -lt $b ]; then
            b=$w; cpu=$(awk '{printf "%.2f", $1 + $2}' $out/time); mem=$(awk '{print int($3 / 1024)}' $out/time)
        fi
        r=$((r + 1))
    done
    echo "$b $cpu $mem"
}
echo "sensitive: $N and $((N * 4)) contacts, each a loop of 2 mocked tool calls, journal and --trace-content on"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-8s %-10s %10s %8s %8s\n' items variant wall_ms cpu_s rss_mb
for n in $N $((N * 4)); do
    gen $n >$out/c$n.jsonl
    set -- $(best without $out/c$n.jsonl); w0=$1
    printf '%-8s %-10s %10s %8s %8s\n' $n without "$1" "$2" "$3"
    set -- $(best with $out/c$n.jsonl); w1=$1
    printf '%-8s %-10s %10s %8s %8s\n' $n sensitive "$1" "$2" "$3"
    [ -n "$w0" ] && [ "$w0" -gt 0 ] && echo "  sensitive / without: $(awk "BEGIN{printf \"%.2f\", $w1 / $w0}")x wall"
done
