#!/bin/sh
# cost.sh: cost before it is spent (issue 12's bench).
#
# 1. flowc estimate against what a run spends, on every example, against
#    the fake server (tests/tools/fakeserver.c), each compared like with like.
#    Which calls a run makes depends on its answers (a fan-out over the pages
#    a model calls stale, a loop that ends when a critic approves, a branch by
#    a label), and the fake server's answers are not a model's: so each
#    agent's bound per call is compared with what its calls spent, the
#    estimate scaled to the calls the run made (the sum over agents and
#    models of calls made x the estimate's dollars a call).  The unscaled
#    worst case must hold whatever the path.
#    - every answer at max_tokens (--usage max: its text padded to that
#      length, so what the workflow passes on is as long), valid at once, and
#      enums at their last value (--enum last: here the costlier paths): one
#      attempt a call, against the estimate's worst case for one attempt a
#      call (usd_one_attempt).  Goal: 1 <= estimate / spent <= 2.
#    - the same, every answer invalid until the call's third attempt
#      (--bad-attempts 2; every agent of the examples has retries >= 2):
#      against the full worst case (every retry taken).  Goal: 1 <= x <= 2
#      (an agent with retries 3 or 4 makes 3 of its 4 or 5 attempts here).
#    - typical answers (--usage count: usage counted from the request and the
#      synthesized answer with flowc's own approximation), twice: the second
#      run against the expected spend from the first one's journal (--journal:
#      each agent's mean tokens a call).  Goal: 0.5 <= x <= 2.  The expected
#      spend from type-based answer sizes is shown beside it, not judged: the
#      fake server's answers are much shorter than a model's.
#    - every run: the unscaled worst case >= what it spent.  Goal.
#    A run that waits for an approval (exit 3) or that a budget stops (exit
#    4) is compared on what it spent before.
# 2. a batch fan-out of 2,000 items (tests/data/batch_many.flow) on each
#    provider, the fake server taking --batch-delay BATCH_DELAY_MS (default
#    3000) to end a batch, polled every second (FLOWRT_BATCH_POLL_MS; 60 s by
#    default, as the providers' guides poll): the requests the server
#    received (goal: at most 10 instead of 2,000: an upload, a create, a poll
#    a second, the results), the wall time against the batch delay (goal: at
#    most the delay plus 2 s, median of RUNS runs, default 5), and the
#    dollars against the same tokens at the standard price (goal: 50% +- 1%;
#    both models cost $0.10 in, $0.50 out, $0.01 a cached input token read
#    and $0.125 written a million, stdlib/models.flow), and, shown only,
#    against the same fan-out without batch: true (whose normal calls also
#    write Anthropic's prompt cache).
# Costs are deterministic; times are noisy on a loaded machine.
cd "$(dirname "$0")/.." || exit 2
TOPD=$(pwd)
FLOWC=${FLOWC:-build/flowc}
case $FLOWC in /*) ;; *) FLOWC=$TOPD/$FLOWC ;; esac
T=$TOPD/build/tools
RUNS=${RUNS:-5}
DELAY=${BATCH_DELAY_MS:-3000}
out=$TOPD/bench/out/cost
mkdir -p $out
for b in $T/fakeserver $FLOWC; do
    [ -x $b ] || { echo "missing $b: run make first"; exit 1; }
done
command -v jq >/dev/null && command -v sqlite3 >/dev/null || { echo "needs jq and sqlite3"; exit 1; }
export ANTHROPIC_API_KEY=bench-key-not-secret OPENAI_API_KEY=bench-key-not-secret
unset ANTHROPIC_BASE_URL OPENAI_BASE_URL http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
SERVER=
start_server() {
    stop_server
    rm -f $out/port
    $T/fakeserver --port-file $out/port --log $out/server.log "$@" >/dev/null 2>&1 &
    SERVER=$!
    i=0
    while [ ! -s $out/port ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    export ANTHROPIC_BASE_URL="http://127.0.0.1:$(cat $out/port)"
    export OPENAI_BASE_URL="http://127.0.0.1:$(cat $out/port)/v1"
}
stop_server() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    SERVER=
}
trap stop_server EXIT INT TERM
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
fail=0
: >$out/failed
# judge OK: prints PASS or FAIL, and remembers a failure (in a file: it runs
# in a command substitution's subshell)
judge() { if [ "$1" = 1 ]; then echo PASS; else echo x >>$out/failed; echo FAIL; fi; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b - 1e-9) }' && echo 1 || echo 0; }

# ---- 1. estimate against actual ----------------------------------------------
# made NAME: the calls the run made and what they cost, by agent and model,
# from its trace (one line a call; the journal keeps no model a call)
made() {
    jq -s '[.[] | select(.type == "call")] | group_by([.agent, ."gen_ai.request.model"])
        | map({agent: .[0].agent, model: .[0]."gen_ai.request.model", calls: length,
               usd: (map(.cost_usd) | add)})' "$1.trace" >"$1.made" 2>/dev/null
    [ -s "$1.made" ] || echo '[]' >"$1.made"
}
# run NAME MODE...: the example in $out against a fresh server; sets st and spent
run() {
    n=$1
    shift
    start_server --key "$ANTHROPIC_API_KEY" "$@"
    rm -f $n.db $n.trace
    # shellcheck disable=SC2086
    ./$n $args --journal $n.db --quiet --retry-base-ms 10 --trace $n.trace >$n.out 2>$n.err
    st=$?
    spent=$(sqlite3 $n.db "SELECT printf('%.6f', coalesce(sum(usd), 0)) FROM calls_all")
    made $n
}
# scaled EST FIELD: the estimate per call of each agent (FIELD: once, worst or
# expected) times the calls the run made
scaled() {
    jq -n --slurpfile e "$1" --slurpfile m "$n.made" --arg f "$2" '
        [$e[0].phases[].agents[] | {key: "\(.agent)/\(.model_name)",
                                    calls: (if $f == "expected" then .expected.calls
                                            else .worst.calls end),
                                    usd: (if $f == "once" then .worst.usd_one_attempt
                                          elif $f == "worst" then .worst.usd
                                          else .expected.usd end)}]
        | group_by(.key) | map({key: .[0].key, value:
            ((map(.usd) | add) / ([(map(.calls) | add), 1e-9] | max))}) | from_entries as $per
        | [$m[0][] | .calls * ($per["\(.agent)/\(.model)"] // 0)] | add // 0'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
within() { awk -v r="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }' && echo 1 || echo 0; }
echo "== flowc estimate against the fake server, every example (dollars)"
printf '%-20s | %8s %8s %5s %4s | %8s %8s %5s %4s | %8s %8s %5s %4s %5s | %s\n' example \
    "@max" once x "" "@bad" worst x "" "@typ" "exp(j)" x "" "exp" "total worst >= spent"
cd $out || exit 2
for f in "$TOPD"/examples/*.flow; do
    n=$(basename "$f" .flow)
    "$FLOWC" build "$f" -o $n >$n.build 2>&1 || { echo "$n: build failed"; echo x >>failed; continue; }
    (cd "$TOPD" && "$FLOWC" estimate "examples/$n.flow" --format=json) >$n.est 2>/dev/null ||
        { echo "$n: estimate failed"; echo x >>failed; continue; }
    args=$(./$n --help 2>&1 | sed -n \
        -e 's|^  \(--[a-z-]*\) STRING .*(default "\(examples/[^"]*\)").*|\1 '"$TOPD"'/\2|p' | tr '\n' ' ')
    worst_total=$(jq '.total.worst.usd' $n.est)
    run "$n" --usage max --enum last
    s1=$spent st1=$st e1=$(scaled $n.est once)
    ok_total=$(ge "$worst_total" "$s1")
    run "$n" --usage max --bad-attempts 2 --enum last
    s2=$spent st2=$st e2=$(scaled $n.est worst)
    [ "$(ge "$worst_total" "$s2")" = 1 ] || ok_total=0
    run "$n" --usage count
    s3=$spent st3=$st e3=$(scaled $n.est expected)
    # the expected spend from this typical run's journal, against a second one
    (cd "$TOPD" && "$FLOWC" estimate "examples/$n.flow" --journal "$out/$n.db" \
        --format=json) >$n.estj 2>/dev/null
    run "$n" --usage count
    s4=$spent st4=$st e4=$(scaled $n.estj expected)
    [ "$(ge "$worst_total" "$s4")" = 1 ] || ok_total=0
    r1=$(ratio "$e1" "$s1") r2=$(ratio "$e2" "$s2") r3=$(ratio "$e3" "$s3") r4=$(ratio "$e4" "$s4")
    okst=1
    for x in $st1 $st2 $st3 $st4; do [ "$x" = 0 ] || [ "$x" = 3 ] || [ "$x" = 4 ] || okst=0; done
    v1=$(judge "$(within "$r1" 1 2)")
    v2=$(judge "$(within "$r2" 1 2)")
    v4=$(judge "$(within "$r4" 0.5 2)")
    vt=$(judge $((ok_total * okst)))
    printf '%-20s | %8.4f %8.4f %5s %4s | %8.4f %8.4f %5s %4s | %8.4f %8.4f %5s %4s %5s | %s (worst %.4f; exits %s)\n' \
        "$n" "$s1" "$e1" "$r1" "$v1" "$s2" "$e2" "$r2" "$v2" "$s4" "$e4" "$r4" "$v4" "$r3" \
        "$vt" "$worst_total" "$st1/$st2/$st3/$st4"
done
cd "$TOPD" || exit 2
stop_server
echo "  @max: spent with every answer at max_tokens, each valid at once; once: the estimate's"
echo "  worst case for one attempt a call, scaled to the calls made (goal: 1 <= x <= 2)."
echo "  @bad: every answer at max_tokens and invalid until the call's 3rd attempt; worst: every"
echo "  retry taken, scaled (goal: 1 <= x <= 2; an agent with retries 3 or 4 makes 3 of its"
echo "  4 or 5 attempts here)."
echo "  @typ: a run with typical answers (usage counted from the fake server's answers);"
echo "  exp(j): the expected spend from the per-agent averages of an earlier typical run"
echo "  (--journal), scaled (goal: 0.5 <= x <= 2); exp: the expected spend from type-based"
echo "  answer sizes against the first typical run, shown only: the fake server's answers are"
echo "  much shorter than a model's.  Exit 3 (waiting for an approval) or 4 (a budget stopped it)
  spends what comes before."
echo "  total worst >= spent: the unscaled worst case against every run (goal)."

# ---- 2. a 2,000-item batch fan-out ---------------------------------------------
echo
echo "== batch fan-out of 2,000 items, the fake server ending a batch after ${DELAY} ms"
awk 'BEGIN { for (i = 0; i < 2000; i++) printf "{\"id\": %d, \"text\": \"item %d of the weekly sweep\"}\n", i, i }' \
    >$out/items.jsonl
"$FLOWC" build tests/data/batch_many.flow -o $out/bm >$out/bm.build 2>&1 || { echo "build failed"; exit 1; }
sed 's/(batch: true, on_error: skip)/(on_error: skip)/' tests/data/batch_many.flow >$out/nobatch.flow
"$FLOWC" build $out/nobatch.flow -o $out/nb >$out/nb.build 2>&1 || { echo "build failed"; exit 1; }
export FLOWRT_BATCH_POLL_MS=1000
for prov in anthropic openai; do
    flag=; [ $prov = openai ] && flag=--openai
    : >$out/wall
    for r in $(seq "$RUNS"); do
        start_server --key "$ANTHROPIC_API_KEY" --batch-delay "$DELAY"
        rm -f $out/bm.db
        t0=$(now_ms)
        $out/bm --items-file $out/items.jsonl $flag --journal $out/bm.db >$out/bm.out 2>$out/bm.err
        st=$?
        t1=$(now_ms)
        echo $((t1 - t0)) >>$out/wall
        [ $st = 0 ] && [ "$(wc -l <$out/bm.out)" = 2000 ] || { echo "  run $r: exit $st, $(wc -l <$out/bm.out) answers"; fail=1; }
    done
    reqs=$(wc -l <$out/server.log)
    kinds=$(jq -r .action $out/server.log | sort | uniq -c | awk '{ printf "%s%s %s", s, $1, $2; s = ", " }')
    usd_b=$(sqlite3 $out/bm.db "SELECT printf('%.6f', sum(usd)) FROM calls_all")
    batch_calls=$(sqlite3 $out/bm.db "SELECT count(*) FROM calls_all WHERE tier = 'batch'")
    start_server --key "$ANTHROPIC_API_KEY"
    rm -f $out/nb.db
    t0=$(now_ms)
    $out/nb --items-file $out/items.jsonl $flag --journal $out/nb.db >$out/nb.out 2>$out/nb.err
    t1=$(now_ms)
    nreqs=$(wc -l <$out/server.log)
    usd_n=$(sqlite3 $out/nb.db "SELECT printf('%.6f', sum(usd)) FROM calls_all")
    wall=$(median <$out/wall)
    echo "-- $prov"
    printf '  %-58s %8s   (goal <= 10: %s)\n' "requests the server received (batch)" "$reqs" \
        "$(judge "$(ge 10 "$reqs")")"
    printf '  %-58s %s\n' "  of which" "$kinds"
    printf '  %-58s %8s\n' "requests without batch: true" "$nreqs"
    printf '  %-58s %6s ms   (goal <= %d ms: %s)\n' "wall time (median of $RUNS)" "$wall" \
        $((DELAY + 2000)) "$(judge "$(ge $((DELAY + 2000)) "$wall")")"
    printf '  %-58s %6s ms\n' "the normal fan-out's wall time (one run)" $((t1 - t0))
    list=$(sqlite3 $out/bm.db "SELECT printf('%.6f', sum((tokens_in - cache_read - cache_write) * 0.10
        + cache_read * 0.01 + cache_write * 0.125 + tokens_out * 0.50) / 1e6) FROM calls_all")
    r=$(ratio "$usd_b" "$list")
    printf '  %-58s $%s against $%s: %s   (goal 0.50 +- 0.01: %s)\n' \
        "the $batch_calls batch calls against their tokens at list price" "$usd_b" "$list" "$r" \
        "$(judge "$(within "$r" 0.49 0.51)")"
    printf '  %-58s $%s: %s\n' "  against the fan-out without batch: true" "$usd_n" \
        "$(ratio "$usd_b" "$usd_n")"
done
stop_server
[ -s $out/failed ] && fail=1
exit $fail
