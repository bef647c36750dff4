#!/bin/sh
# http.sh: what http operations cost, against the fake CRM on this machine.
#   - 2,000 contacts read in 20 pages of 100, then written back, 64 at once,
#     each write 20 ms on the server: the wall time and writes per second,
#     without the journal, with it (each write's in-flight mark is synced
#     before it leaves, its answer after), and with --dry-run (no write sent)
#   - the floor: what the server's own latency costs at that concurrency
# The variants run interleaved, ROUNDS rounds (default 3); best and median
# are shown (the best is the least disturbed by other load on the machine).
# Timings are printed, never asserted.
cd "$(dirname "$0")/.." || exit 2
make --no-print-directory build/flowc build/libflowrt.a build/tools/fakecrm >/dev/null || exit 1
command -v jq >/dev/null || { echo "(bench http needs jq)"; exit 0; }
out=bench/out/http; rm -rf $out; mkdir -p $out
ROUNDS=${ROUNDS:-3}
N=2000
build/flowc build bench/flows/http_sync.flow -o $out/sync >/dev/null || exit 1
export CRM_TOKEN=bench-token

now_us() { echo $(( $(date +%s%N) / 1000 )); }
srv=""
trap '[ -n "$srv" ] && kill $srv 2>/dev/null' EXIT
fresh() {                          # a fresh server: every write applies
    [ -n "$srv" ] && kill $srv 2>/dev/null && wait $srv 2>/dev/null
    rm -f $out/port
    build/tools/fakecrm --token $CRM_TOKEN --contacts $N --write-latency 20 \
        --port-file $out/port >/dev/null &
    srv=$!
    while [ ! -s $out/port ]; do sleep 0.02; done
    U="http://127.0.0.1:$(cat $out/port)"
}
timed() {                          # variant, flags...: appends microseconds to $out/$1
    v=$1; shift
    fresh
    s=$(now_us); $out/sync --base "$U" --quiet "$@" >/dev/null 2>$out/err ||
        echo "($v: exit $?: $(head -1 $out/err))" >&2
    e=$(now_us)
    echo $((e - s)) >>$out/$v
}
best() { sort -n $out/$1 | head -1; }
median() { sort -n $out/$1 | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }
row() {
    b=$(best $1); m=$(median $1)
    printf '%-52s %7.3f s %7.0f writes/s | median %7.3f s\n' "$2" \
        "$(awk -v t=$b 'BEGIN { print t / 1e6 }')" \
        "$(awk -v t=$b -v n=$N 'BEGIN { print n / (t / 1e6) }')" \
        "$(awk -v t=$m 'BEGIN { print t / 1e6 }')"
}

echo "== http operations ($N contacts, 20 pages, writes 64 at once, 20 ms each on the server)"
i=0
while [ $i -lt $ROUNDS ]; do
    timed off --no-journal
    rm -f $out/j.db*
    timed on --journal $out/j.db
    timed dry --no-journal --dry-run
    i=$((i + 1))
done
row off "read and write back, no journal"
row on "read and write back, journaled"
row dry "read, writes held back (--dry-run)"
printf '%-52s %7.3f s (2000 writes x 20 ms / 64 at once)\n' "the server's own time at best" \
    "$(awk -v n=$N 'BEGIN { print n * 0.020 / 64 }')"
