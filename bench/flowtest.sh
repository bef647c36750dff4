#!/bin/sh
# flowtest.sh: how long `flowc test examples/` takes, cold (every example
# compiled: an empty .flow/test/) and warm (the binaries cached), best of 3
# each, with the CPU time of the whole run (flowc, the C compiler, the
# binaries) (goals: cold < 10 s, warm < 3 s on 2 cores, i.e. "seconds, not
# minutes").  Timings are noisy on a loaded machine: see the load average.
cd "$(dirname "$0")/.." || exit 2
FLOWC=$(pwd)/${FLOWC:-build/flowc}
EX=$(pwd)/examples
work=$(mktemp -d "${TMPDIR:-/tmp}/flowc-bench-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 2
tests=$("$FLOWC" test "$EX" | tail -1)
echo "== flowc test examples/: $tests ($(ls "$EX"/*.flowtest | wc -l) files, $(ls "$EX"/*.flow | wc -l) workflows)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
# best of 3: wall ms and CPU ms (user+sys of flowc and its children)
run() {
    what=$1 goal=$2
    best=999999999; cpu=0
    for i in 1 2 3; do
        [ "$what" = cold ] && rm -rf .flow/test
        /usr/bin/time -f '%e %U %S' -o t "$FLOWC" test "$EX" >/dev/null 2>&1
        w=$(awk '{printf "%d", $1 * 1000}' t)
        c=$(awk '{printf "%d", ($2 + $3) * 1000}' t)
        [ "$w" -lt "$best" ] && best=$w && cpu=$c
    done
    printf '%-6s best wall %6d ms   cpu %6d ms   goal %s\n' "$what" "$best" "$cpu" "$goal"
}
run cold "< 10000 ms"
run warm "< 3000 ms"
