#!/bin/sh
# otlp.sh: what OpenTelemetry export costs a run, OTEL_EXPORTER_OTLP_ENDPOINT
# pointing at tests/tools/fakeotlp on 127.0.0.1 in its --count-only mode (a
# sink that takes a request as fast as it comes: the strict checking mode
# takes about 60 ms for 512 spans and would measure itself, not the exporter).
#   - 10,000 items through a parallel for at mock latency 0, --no-journal:
#     no export, --trace FILE, export, export to a collector that is down.
#     A burst of 10,000 spans in a fraction of a second: the queue (2048)
#     overflows and the rest are dropped, counted (a real run's spans come
#     as calls end, below)
#   - 10,000 items at concurrency 1,000, mock latency 100 ms (spans come as
#     calls end, 10,000 a second): the same (goal: wall time within 10% of
#     no export, no span dropped)
#   - a collector that never answers: how long the run's end is held
#     (goal: the 2 s flush deadline, about 2.1 s)
# Each row: the median wall time and peak RSS of RUNS runs (default 3),
# spans dropped and spans the collector got.  Figures on a loaded machine
# are noisy: the load is printed with them.
cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
OT=${OT:-build/tools/fakeotlp}
RUNS=${RUNS:-3}
out=bench/out; mkdir -p $out
[ -x "$OT" ] || { echo "build $OT first (make)"; exit 1; }
items() { awk -v n="$1" 'BEGIN { for (i = 0; i < n; i++) printf "{\"id\": %d, \"text\": \"item number %d of the bench\"}\n", i, i }'; }
items 10000 >$out/items10k.jsonl
for f in fanout fanout_wide; do
    $FLOWC build bench/flows/$f.flow -o $out/$f || { echo "cannot build bench/flows/$f.flow"; exit 1; }
done
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_SDK_DISABLED
col=
trap '[ -n "$col" ] && kill $col 2>/dev/null' EXIT
start_collector() {
    [ -n "$col" ] && kill $col 2>/dev/null && wait $col 2>/dev/null
    rm -f $out/oport $out/otlp_dump.jsonl
    $OT --port-file $out/oport --dump $out/otlp_dump.jsonl --count-only "$@" 2>/dev/null &
    col=$!
    while [ ! -s $out/oport ]; do sleep 0.05; done
    OPORT=$(cat $out/oport)
}
measure() { # mode, then the command
    mode=$1; shift
    /usr/bin/time -f "%e %M" -o $out/time.txt sh -c 'exec "$@"' sh "$@" >/dev/null 2>$out/stderr.txt
}
row() { # label mode cmd...
    label=$1; mode=$2; shift 2
    : >$out/otlp_rows.txt
    i=0
    while [ $i -lt "$RUNS" ]; do
        rm -f $out/otlp_trace.jsonl
        case $mode in
            none) measure none "$@" ;;
            trace) measure trace "$@" --trace $out/otlp_trace.jsonl ;;
            export) start_collector; measure export env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OPORT "$@" ;;
            down) measure down env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9 "$@" ;;
            slow) start_collector --delay 60000
                  measure slow env OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$OPORT "$@" ;;
        esac
        read -r secs kb <$out/time.txt
        dropped=$(sed -n 's/^otlp: \([0-9]*\) spans\{0,1\} dropped.*/\1/p' $out/stderr.txt)
        got=0
        [ "$mode" = export ] && got=$(sed 's/[^0-9]//g' $out/otlp_dump.jsonl | awk '{ n += $1 } END { print n + 0 }')
        echo "$secs $kb ${dropped:-0} $got" >>$out/otlp_rows.txt
        i=$((i + 1))
    done
    sort -n $out/otlp_rows.txt | awk -v l="$label" -v n="$RUNS" 'NR == int((n + 1) / 2) {
        printf "%-50s %6.2f s %5d MB  dropped %6d  received %6d\n", l, $1, $2 / 1024, $3, $4 }'
    sort -n $out/otlp_rows.txt | awk 'NR == int(('"$RUNS"' + 1) / 2) { print $1 }' >$out/otlp_last.txt
}
echo "== OpenTelemetry export (medians of $RUNS; load: $(cut -d' ' -f1-3 /proc/loadavg))"
F="$out/fanout --input $out/items10k.jsonl --mock --quiet --no-journal"
W="$out/fanout_wide --input $out/items10k.jsonl --mock --mock-latency 100 --quiet --no-journal"
for m in none trace export down; do
    row "10,000 items, latency 0: $m" $m $F
done
for m in none trace export down; do
    row "10,000 items, concurrency 1,000, 100 ms: $m" $m $W
done
row "10,000 items, latency 0: none" none $F >/dev/null
base=$(cat $out/otlp_last.txt)
RUNS=1 row "10,000 items, latency 0: collector never answers" slow $F
slow=$(cat $out/otlp_last.txt)
awk -v b="$base" -v s="$slow" 'BEGIN { printf "the end held by a collector that never answers: %.2f s (goal: the 2 s flush deadline, about 2.1 s)\n", s - b }'
