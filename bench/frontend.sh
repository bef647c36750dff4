#!/bin/sh
# frontend.sh: how fast `flowc check` is on a generated 20,000-line file and
# on each example, with peak memory (goals: < 0.3 s and < 5 ms).
cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
out=bench/out; mkdir -p $out
sh bench/gen_large.sh 20000 >$out/large.flow
echo "== flowc check ($(wc -l <$out/large.flow) lines generated, $(wc -c <$out/large.flow) bytes)"
if ! $FLOWC check $out/large.flow; then echo "large.flow does not check clean"; exit 1; fi
# best of 10 wall times, and the peak RSS from GNU time
best() {
    b=999999
    for i in 1 2 3 4 5 6 7 8 9 10; do
        s=$(date +%s%N); "$@" >/dev/null 2>&1; e=$(date +%s%N)
        t=$(( (e - s) / 1000 )); [ $t -lt $b ] && b=$t
    done
    echo $b
}
rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
printf '%-40s %12s %12s\n' file "best wall" "peak RSS"
us=$(best $FLOWC check $out/large.flow)
printf '%-40s %9d.%01d ms %9s KB\n' large.flow $((us / 1000)) $((us % 1000 / 100)) "$(rss $FLOWC check $out/large.flow)"
for f in examples/*.flow; do
    us=$(best $FLOWC check "$f")
    printf '%-40s %9d.%01d ms %9s KB\n' "$f" $((us / 1000)) $((us % 1000 / 100)) "$(rss $FLOWC check "$f")"
done
