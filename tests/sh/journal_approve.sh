#!/bin/sh
# journal_approve.sh: approve() end to end.  The run queues its items and
# exits 3; `review` lists them, with the escalated items in the same queue;
# `approve` records some approvals and a rejection with who; a resume with
# items still undecided waits again (3); once all are decided the resume
# outputs exactly the approved items, pays for no call again, and the run
# shows as done in `runs`.
# under the ASan flavour (FLOWC is build/asan/flowc) the ASan build of the
# tool runs when there is one
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_journal" ;;
    *) B="$TOP/build/tools/rt_journal" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_journal"
[ -x "$B" ] || { echo "no $B (make all)"; exit 77; }
FLAGS="--mock --n 8 --esc 4 --gate --journal j.db"
fail() { echo "FAIL: $*"; exit 1; }
# the queue number of the approve() item with this id
num() { sqlite3 j.db "SELECT n FROM approvals WHERE kind = 'approve' AND json_extract(item_json, '\$.id') = $1"; }

"$B" $FLAGS >out1 2>err1
st=$?
[ $st -eq 3 ] || fail "first run exited $st, expected 3: $(cat err1)"
[ ! -s out1 ] || fail "a waiting run printed a result"
grep -q "6 items of 'ship these?' wait for a decision" err1 || fail "no waiting message: $(cat err1)"
run=$(sqlite3 j.db "SELECT id FROM runs")

"$B" review --journal j.db >review || fail "review failed"
grep -q "^run $run (waiting)" review || fail "review lacks the run: $(cat review)"
[ "$(grep -c '^  \[[0-9]*\] approve: ship these?' review)" -eq 6 ] || fail "review items: $(cat review)"
[ "$(grep -c '^  \[[0-9]*\] escalated: needs a look' review)" -eq 2 ] || fail "review escalations: $(cat review)"
grep -q "^6 items wait for a decision before --resume" review || fail "review's approval count: $(cat review)"
"$B" runs --journal j.db | grep -q "^$run .* 6\$" || fail "runs' PENDING is not the 6 approvals: $("$B" runs --journal j.db)"
grep -q "^2 escalated items for a person (the run does not wait for them)" review ||
    fail "review's escalation count: $(cat review)"

"$B" approve "$run" --item "$(num 2)" --item "$(num 5)" --reject "$(num 1)" --by alice --journal j.db >ap1 ||
    fail "approve failed"
grep -q "2 approved, 1 rejected, 3 waiting; escalations: 0 handled, 2 open" ap1 ||
    fail "approve said: $(cat ap1)"
"$B" approve "$run" --item 99 --journal j.db 2>ap2 && fail "approving a missing item worked"
grep -q "has no item 99" ap2 || fail "missing item message: $(cat ap2)"
"$B" approve nosuchrun --all --journal j.db 2>ap3 && fail "approving a missing run worked"

"$B" $FLAGS --resume >out2 2>err2
st=$?
[ $st -eq 3 ] || fail "resume with 3 undecided exited $st: $(cat err2)"
grep -q "3 items of 'ship these?'" err2 || fail "still-waiting message: $(cat err2)"

"$B" approve "$run" --reject "$(num 3)" --reject "$(num 6)" --item "$(num 7)" --by bob --journal j.db >/dev/null ||
    fail "approve 2 failed"
"$B" $FLAGS --resume >out3 2>err3 || fail "final resume failed: $(cat err3)"
jq -c .id out3 | tr '\n' ' ' >ids
[ "$(cat ids)" = "2 5 7 " ] || fail "approved ids '$(cat ids)', expected 2 5 7"
grep -q "6 calls answered from the journal" err3 || fail "resume paid again: $(cat err3)"
who=$(sqlite3 j.db "SELECT group_concat(json_extract(item_json, '\$.id') || ':' || decided_by || ':' || decision, ' ')
                    FROM (SELECT * FROM approvals WHERE kind = 'approve' ORDER BY n)")
[ "$who" = "1:alice:rejected 2:alice:approved 3:bob:rejected 5:alice:approved 6:bob:rejected 7:bob:approved" ] ||
    fail "who decided: $who"
[ "$(sqlite3 j.db "SELECT count(*) FROM approvals WHERE kind = 'approve' AND decided_ms IS NULL")" -eq 0 ] ||
    fail "decisions without a time"
"$B" runs --journal j.db | grep -q "^$run *done" || fail "runs: $("$B" runs --journal j.db)"
"$B" approve "$run" --all --by carol --journal j.db >ap4 || fail "handling the escalations failed"
grep -q "escalations: 2 handled, 0 open" ap4 || fail "handling the escalations said: $(cat ap4)"
[ "$(sqlite3 j.db "SELECT group_concat(DISTINCT decision) FROM approvals WHERE kind <> 'approve'")" = handled ] ||
    fail "an escalation was recorded as approved or rejected"
"$B" review --journal j.db | grep -q "nothing waiting" || fail "review not empty"
# runs --audit: every decision with who made it; escalations handled by carol
"$B" runs --audit --journal j.db >audit || fail "runs --audit failed"
grep -q "^RUN .* DECISION  BY " audit || fail "audit header: $(cat audit)"
[ "$(grep -c " approve   approved  alice " audit)" -eq 2 ] || fail "audit alice: $(cat audit)"
[ "$(grep -c " approve   rejected  bob " audit)" -eq 2 ] || fail "audit bob: $(cat audit)"
[ "$(grep -c " escalated handled   carol " audit)" -eq 2 ] || fail "audit carol: $(cat audit)"
grep -q " open " audit && fail "audit shows an open item: $(cat audit)"
"$B" runs --audit "$run" --journal j.db | grep -c "^$run " | grep -qx 8 || fail "audit of one run"
"$B" runs --audit nosuchrun --journal j.db | grep -q "run nosuchrun has no approval" || fail "audit of no run"
echo ok
