#!/bin/sh
# journal_budget.sh: SIGKILL at random moments against the fake server
# (tests/tools/fakeserver.c, OpenAI wire format, 20 ms per answer), with a
# workflow budget.  Whatever the moments, the dollars the server billed
# (its request log, priced like the uninterrupted run) never pass the cap,
# and never pass what the journal counts (finished calls plus the holds of
# requests in flight when a process died); no journaled call is requested
# again (from the trace); the journal stays sound.  A run that finishes has
# the uninterrupted run's output; one the budget stops exits 4.
# under the ASan flavour (FLOWC is build/asan/flowc) the ASan build of the
# tool runs when there is one
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_journal" ;;
    *) B="$TOP/build/tools/rt_journal" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_journal"
S="$TOP/build/tools/fakeserver"
[ -x "$B" ] && [ -x "$S" ] || { echo "no $B or $S (make all)"; exit 77; }
command -v jq >/dev/null || { echo "no jq"; exit 77; }
KILLS=${JOURNAL_KILLS:-12}
# the moments come from a fixed seed; JOURNAL_SEED=N replays another,
# JOURNAL_SEED=random draws one (printed, so that a failure can be replayed)
SEED=${JOURNAL_SEED:-1}
[ "$SEED" = random ] && SEED=$(date +%s%N | cut -c10-18)
echo "seed $SEED"
N=600
CAP=0.16
# runs of the workflow in kill.db with status $1 (0 when there is no
# journal yet: a kill can land before the process created it)
runs_with() {
    n=$([ -f kill.db ] && sqlite3 kill.db "SELECT count(*) FROM runs WHERE status $1" 2>/dev/null)
    echo "${n:-0}"
}
fail() { echo "FAIL: $*"; kill "$spid" 2>/dev/null; exit 1; }

start_server() {
    rm -f pf
    "$S" --port-file pf --latency 20 --log "$1" >/dev/null 2>&1 &
    spid=$!
    i=0
    while [ ! -s pf ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s pf ] || fail "the fake server did not start"
    OPENAI_BASE_URL="http://127.0.0.1:$(cat pf)/v1"
    export OPENAI_BASE_URL
}
OPENAI_API_KEY=test-key
export OPENAI_API_KEY
FLAGS="--real --n $N --conc 8 --quiet --retry-base-ms 10"

# the uninterrupted run: its output and the price of one request
start_server ref.log
"$B" $FLAGS --journal ref.db >ref.out 2>ref.err || fail "reference run: $(cat ref.err)"
kill $spid; wait $spid 2>/dev/null
[ "$(wc -l <ref.out)" -eq $N ] || fail "reference output has $(wc -l <ref.out) lines"
[ "$(grep -c '"status":200' ref.log)" -eq $N ] || fail "reference run made $(wc -l <ref.log) requests"
per=$(sqlite3 ref.db "SELECT total(usd) / $N FROM calls_all")
awk -v p="$per" -v n=$N -v c=$CAP 'BEGIN { exit !(p * n < c) }' || fail "the cap $CAP is below one run's cost"

start_server req.log
JWF_BUDGET_USD=$CAP
export JWF_BUDGET_USD
awk -v s="$SEED" -v n="$KILLS" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%.3f\n", 0.05 + rand() * 0.25 }' >moments
kills=0
st=137
while read -r t; do
    resume=""
    if [ "$(runs_with "<> 'done'")" -gt 0 ]; then
        resume="--resume"
    fi
    "$B" $FLAGS --journal kill.db --trace trace.jsonl $resume >run.out 2>run.err &
    pid=$!
    sleep "$t"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid
    st=$?
    # (a kill can land before the process created the journal)
    if [ -f kill.db ] && [ "$(sqlite3 kill.db 'PRAGMA integrity_check')" != ok ]; then
        fail "integrity_check after kill $kills"
    fi
    [ $st -eq 0 ] || [ $st -eq 4 ] && break
    # killed after the run recorded its end (an ASan exit is slow): its
    # output and message were written before that, so the run is over
    case "$([ -f kill.db ] && sqlite3 kill.db "SELECT status FROM runs" 2>/dev/null)" in
        done) st=0; break ;;
        budget) st=4; break ;;
    esac
    [ $st -eq 137 ] || fail "run exited $st: $(cat run.err)"
done <moments
if [ $st -eq 137 ]; then          # resume, or start when no run was begun
    resume=""
    [ "$(runs_with "<> 'done'")" -gt 0 ] && resume="--resume"
    "$B" $FLAGS --journal kill.db --trace trace.jsonl $resume >run.out 2>run.err
    st=$?
fi
kill $spid; wait $spid 2>/dev/null
echo "$kills kills, final status $st"
[ $kills -ge 4 ] || fail "only $kills kills landed"
case $st in
    0) diff ref.out run.out >/dev/null || fail "output differs from the uninterrupted run" ;;
    4) grep -q "stopped by the workflow's usd budget" run.err || fail "budget stop message: $(cat run.err)" ;;
    *) fail "final run exited $st: $(cat run.err)" ;;
esac

billed=$(grep -c '"status":200' req.log)
counted=$(sqlite3 kill.db "SELECT total(usd + held_usd + lost_usd) FROM calls_all")
echo "server answered $billed requests; journal counts \$$counted of \$$CAP"
awk -v b="$billed" -v p="$per" -v c=$CAP 'BEGIN { exit !(b * p <= c + 1e-9) }' ||
    fail "the server billed $billed x $per, over the cap $CAP"
awk -v b="$billed" -v p="$per" -v j="$counted" 'BEGIN { exit !(b * p <= j + 1e-9) }' ||
    fail "the server billed $billed x $per, more than the journal counts ($counted)"
awk -v j="$counted" -v c=$CAP 'BEGIN { exit !(j <= c + 1e-9) }' || fail "the journal counts $counted, over $CAP"

jq -r 'select(.type == "call" and .cached == false and .["error.type"] == null) | .call_key' trace.jsonl | sort >fresh
[ "$(uniq -d fresh | wc -l)" -eq 0 ] || fail "calls requested again after being journaled: $(uniq -d fresh | head -3)"
echo ok
