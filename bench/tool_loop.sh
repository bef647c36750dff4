#!/bin/sh
# tool_loop.sh: what an agent's tool loop costs (issue 17), on this machine,
# against the fake LLM server (answers after LATENCY ms, default 20) and the
# fake CRM.  A fan-out of N research calls (default 300, 64 at once), each a
# loop of two turns: the model asks for three contacts at once (three reads
# of the CRM, made at once), then answers; against the same fan-out of one
# request each without tools (the floor).  Each with the journal (every turn,
# every read and every result journaled) and without.  Printed: the wall
# time (best and median of ROUNDS rounds, default 3), items a second, the
# requests and reads the servers counted, the CPU time and the peak memory
# of the run, and the journal's size.  Timings are printed, never asserted;
# on a loaded machine they are noisy (the load average is printed).
cd "$(dirname "$0")/.." || exit 2
make --no-print-directory build/flowc build/libflowrt.a build/tools/fakeserver \
    build/tools/fakecrm >/dev/null || exit 1
command -v jq >/dev/null || { echo "(bench tool_loop needs jq)"; exit 0; }
out=bench/out/tool_loop; rm -rf $out; mkdir -p $out
ROUNDS=${ROUNDS:-3}
N=${N:-300}
LATENCY=${LATENCY:-20}
export ANTHROPIC_API_KEY=bench-key-not-secret
unset ANTHROPIC_BASE_URL OPENAI_BASE_URL http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

now_us() { echo $(( $(date +%s%N) / 1000 )); }
llm=""; crm=""
trap '[ -n "$llm" ] && kill $llm 2>/dev/null; [ -n "$crm" ] && kill $crm 2>/dev/null' EXIT
build/tools/fakecrm --port-file $out/crmport --contacts 50 >/dev/null 2>&1 &
crm=$!
fresh() {                          # a fresh model server (the CRM stays: its port is built in)
    [ -n "$llm" ] && kill $llm 2>/dev/null && wait $llm 2>/dev/null
    rm -f $out/port
    build/tools/fakeserver --port-file $out/port --key "$ANTHROPIC_API_KEY" \
        --latency "$LATENCY" >/dev/null 2>&1 &
    llm=$!
    while [ ! -s $out/port ] || [ ! -s $out/crmport ]; do sleep 0.02; done
    export ANTHROPIC_BASE_URL="http://127.0.0.1:$(cat $out/port)"
}
fresh
U="http://127.0.0.1:$(cat $out/crmport)"
sed "s/CRMPORT/$(cat $out/crmport)/" bench/flows/tool_loop.flow >$out/tool_loop.flow
build/flowc build $out/tool_loop.flow -o $out/tl >/dev/null || exit 1
i=0
while [ $i -lt $N ]; do
    a=$((i % 50 + 1)); b=$(((i + 17) % 50 + 1)); c=$(((i + 31) % 50 + 1))
    printf '{"text":"task %d [[fake:tools calls=3 tool=get_contact args={\\"id\\":\\"%d\\"}{\\"id\\":\\"%d\\"}{\\"id\\":\\"%d\\"}]]"}\n' \
        $i $a $b $c
    i=$((i + 1))
done >$out/tasks.jsonl

# run VARIANT FLAGS...: one timed run on fresh servers; appends its wall time
# (microseconds) to $out/VARIANT, keeps the servers' counts, CPU and memory
run() {
    v=$1; shift
    fresh
    rm -f $out/j.db*
    r0=$(curl -s "$U/_stats" | jq .reads)
    s=$(now_us)
    /usr/bin/time -f '%U %S %M' -o $out/time $out/tl --tasks $out/tasks.jsonl "$@" \
        >$out/out 2>$out/err || echo "($v: exit $?: $(head -1 $out/err))" >&2
    e=$(now_us)
    echo $((e - s)) >>$out/$v
    [ "$(wc -l <$out/out)" -eq "$N" ] || echo "($v: $(wc -l <$out/out) answers of $N)" >&2
    echo "$(grep -c . $out/out) $(( $(curl -s "$U/_stats" | jq .reads) - r0 ))" >$out/$v.counts
    awk '{ printf "%d %d\n", ($1 + $2) * 1000, $3 / 1024 }' $out/time >$out/$v.res
    [ -f $out/j.db ] && du -k $out/j.db | cut -f1 >$out/$v.db || echo - >$out/$v.db
}
r=0
while [ $r -lt "$ROUNDS" ]; do
    run tools_journal --journal $out/j.db
    run tools --no-journal
    run plain_journal --no-tools --journal $out/j.db
    run plain --no-tools --no-journal
    r=$((r + 1))
done
best() { sort -n $out/$1 | head -1; }
median() { sort -n $out/$1 | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ms() { echo "$1" | awk '{ printf "%.0f", $1 / 1000 }'; }

echo "== tool loops: $N research calls (64 at once), each 2 turns and 3 reads at once; model latency $LATENCY ms; $ROUNDS rounds; load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %9s %9s %9s %9s %8s %8s %8s\n' variant "best ms" "median ms" "items/s" reads "CPU ms" "peak MB" "db KB"
for v in tools_journal tools plain_journal plain; do
    b=$(best $v); m=$(median $v)
    set -- $(cat $out/$v.counts) ; reads=$2
    set -- $(cat $out/$v.res)
    printf '%-28s %9s %9s %9s %9s %8s %8s %8s\n' "$v" "$(ms $b)" "$(ms $m)" \
        "$(echo "$N $b" | awk '{ printf "%.0f", $1 / ($2 / 1e6) }')" "$reads" "$1" "$2" "$(cat $out/$v.db)"
done
echo "(the floor of a tool loop here: two model turns of $LATENCY ms and a read, a run of $N at 64 at once about $(( (N + 63) / 64 * 2 * LATENCY )) ms; CPU and peak memory are the last round's)"
