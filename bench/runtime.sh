#!/bin/sh
# runtime.sh: the compiled binaries on the mock provider.
#   - 100,000 items through a parallel for at mock latency 0 (goal <= 2 s, <= 200 MB)
#   - 10,000 items at concurrency 1,000, mock latency 100 ms (goal <= 1.2 s; ideal 1.0)
#   - a one-call binary's whole run, an upper bound on start-up to first call (goal <= 5 ms)
#   - the C compile time of the largest example
cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
out=bench/out; mkdir -p $out
items() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\": %d, \"text\": \"item number %d of the bench\"}\n", i, i }'; }
items 100000 >$out/items100k.jsonl
items 10000 >$out/items10k.jsonl
for f in fanout fanout_wide one; do
    $FLOWC build bench/flows/$f.flow -o $out/$f || { echo "cannot build bench/flows/$f.flow"; exit 1; }
done
measure() { # label, then the command: prints wall seconds and peak RSS
    label=$1; shift
    /usr/bin/time -f "%e %M" -o $out/time.txt "$@" >/dev/null 2>$out/stderr.txt
    st=$?
    read -r secs kb <$out/time.txt
    printf '%-58s %8s s %8d MB  (exit %d)\n' "$label" "$secs" $((kb / 1024)) $st
}
echo "== runtime (mock provider)"
# The runtime alone (--no-journal), then with the journal a run has by
# default (SQLite, synchronous=FULL: every result durable before it is used).
measure "100,000 items, parallel for (concurrency 8), latency 0" \
    $out/fanout --input $out/items100k.jsonl --mock --quiet --no-journal
rm -f $out/j100k.db*
measure "  the same, journaled" \
    $out/fanout --input $out/items100k.jsonl --mock --quiet --journal $out/j100k.db
measure "10,000 items, concurrency 1,000, mock latency 100 ms" \
    $out/fanout_wide --input $out/items10k.jsonl --mock --mock-latency 100 --quiet --no-journal
rm -f $out/j10k.db*
measure "  the same, journaled" \
    $out/fanout_wide --input $out/items10k.jsonl --mock --mock-latency 100 --quiet --journal $out/j10k.db
b=999999
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    s=$(date +%s%N); $out/one --mock --quiet --no-journal >/dev/null 2>&1; e=$(date +%s%N)
    t=$(( (e - s) / 1000 )); [ $t -lt $b ] && b=$t
done
printf '%-58s %5d.%02d ms (best of 20, whole process)\n' "one-call binary: exec to exit" $((b / 1000)) $((b % 1000 / 10))
largest=$(wc -l examples/*.flow | grep -v total | sort -n | tail -1 | awk '{print $2}')
s=$(date +%s%N); $FLOWC build "$largest" -o $out/largest >/dev/null 2>&1; e=$(date +%s%N)
printf '%-58s %5d ms\n' "flowc build $largest (C compile included)" $(( (e - s) / 1000000 ))
s=$(date +%s%N); $FLOWC build "$largest" --emit-c $out/largest.c >/dev/null 2>&1; e=$(date +%s%N)
printf '%-58s %5d ms (%d lines of C)\n' "  of which generating the C" $(( (e - s) / 1000000 )) "$(wc -l <$out/largest.c)"
