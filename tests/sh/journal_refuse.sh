#!/bin/sh
# journal_refuse.sh: resuming with a changed workflow (source hash) or
# changed arguments is refused with exit 2 and a message naming what
# changed (--mock counts: a resume never mixes mock and real answers);
# --force resumes anyway; a finished, unknown or unjournaled run is
# not resumed, nor a run another process is running; the trace of a resumed
# run keeps its trace id.
# under the ASan flavour (FLOWC is build/asan/flowc) the ASan build of the
# tool runs when there is one
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_journal" ;;
    *) B="$TOP/build/tools/rt_journal" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_journal"
[ -x "$B" ] || { echo "no $B (make all)"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

"$B" --mock --n 5 --gate --journal j.db --trace t.jsonl >/dev/null 2>err
[ $? -eq 3 ] || fail "first run: $(cat err)"
run=$(sqlite3 j.db "SELECT id FROM runs")

"$B" --mock --n 6 --gate --journal j.db --resume >/dev/null 2>err
[ $? -eq 2 ] || fail "changed args were not refused: $(cat err)"
grep -q "cannot resume run $run: the arguments changed (--n was 5, now 6); use --force" err ||
    fail "message: $(cat err)"

"$B" --n 5 --gate --journal j.db --resume >/dev/null 2>err
[ $? -eq 2 ] || fail "a --mock run was resumed without --mock: $(cat err)"
grep -q -- "--mock was true, now unset" err || fail "message: $(cat err)"

JWF_SOURCE_HASH=jwf-2 "$B" --mock --n 5 --gate --journal j.db --resume >/dev/null 2>err
[ $? -eq 2 ] || fail "a changed workflow was not refused: $(cat err)"
grep -q "the workflow changed since it started (source hash jwf-1 then, jwf-2 now)" err ||
    fail "message: $(cat err)"

"$B" --mock --n 5 --gate --journal j.db --resume nosuchrun >/dev/null 2>err
[ $? -eq 2 ] || fail "an unknown run id was resumed"
grep -q "no run 'nosuchrun'" err || fail "message: $(cat err)"

"$B" --mock --n 5 --gate --no-journal --resume >/dev/null 2>err
[ $? -eq 2 ] || fail "--no-journal --resume was accepted"

# forced: the five journaled calls are answered, the sixth is made
"$B" --mock --n 6 --gate --journal j.db --resume "$run" --force --trace t.jsonl >/dev/null 2>err
[ $? -eq 3 ] || fail "forced resume: $(cat err)"
grep -q "5 calls answered from the journal" err || fail "forced resume paid again: $(cat err)"
[ "$(jq -r .trace_id t.jsonl | sort -u | wc -l)" -eq 1 ] || fail "a resumed run changed its trace id"
[ "$(jq -r .run_id t.jsonl | sort -u)" = "$run" ] || fail "trace run ids: $(jq -r .run_id t.jsonl | sort -u)"

# the forced resume adopted --n 6: no --force needed from now on
"$B" approve "$run" --all --journal j.db >/dev/null || fail "approve"
"$B" --mock --n 6 --gate --journal j.db --resume >out 2>err || fail "final: $(cat err)"
[ "$(wc -l <out)" -eq 6 ] || fail "output: $(cat out)"
"$B" --mock --n 6 --gate --journal j.db --resume "$run" >/dev/null 2>err
[ $? -eq 2 ] || fail "a finished run was resumed"
grep -q "already finished" err || fail "message: $(cat err)"
# a run another process is running is not resumed; once that process is
# killed, `runs` shows the run stopped and it resumes
"$B" --mock --n 2000 --conc 2 --mock-latency 20 --quiet --journal k.db >/dev/null 2>&1 &
pid=$!
i=0
while [ "$(sqlite3 k.db 'SELECT count(*) FROM calls_all' 2>/dev/null || echo 0)" -lt 2 ] && [ $i -lt 100 ]; do
    sleep 0.05; i=$((i + 1))
done
"$B" --mock --n 2000 --conc 2 --mock-latency 20 --quiet --journal k.db --resume >/dev/null 2>err
st=$?
"$B" runs --journal k.db >runs1
kill -9 $pid 2>/dev/null
wait $pid 2>/dev/null
[ $st -eq 2 ] || fail "a live run was resumed (exit $st)"
grep -q "is running in another process" err || fail "message: $(cat err)"
grep -q " running " runs1 || fail "runs while it runs: $(cat runs1)"
"$B" runs --journal k.db | grep -q " stopped " || fail "runs after the kill: $("$B" runs --journal k.db)"
"$B" --mock --n 20 --quiet --journal none.db runs >/dev/null 2>&1
"$B" runs --journal none.db | grep -q "no journal at none.db" || fail "runs without a journal"
[ ! -e none.db ] || fail "runs created a journal"
echo ok
