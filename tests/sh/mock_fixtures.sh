#!/bin/sh
# mock_fixtures.sh: --mock-fixtures FILE answers the router example's calls
# with canned answers chosen by the call's arguments, so the workflow's own
# logic is tested: a submission classified spam is skipped, one classified
# demo_request goes to sales_reply.  A call no fixture matches and a fixture
# no call used are reported (also with --quiet); a bad fixtures file is exit 2
# with its line.
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
fail() { echo "FAIL: $*"; exit 1; }
"$FLOWC" build "$TOP/examples/router.flow" -o router 2>err || fail "build: $(cat err)"
head -3 "$TOP/examples/data/submissions.jsonl" >three.jsonl
cat >fx.jsonl <<'E'
{"agent": "classify", "when": {"sub.id": "f-10231"}, "answer": {"intent": "demo_request", "confidence": 0.9, "evidence": "see a demo"}}
{"agent": "classify", "when": {"sub.id": "f-10232", "sub.company": null}, "answer": {"intent": "spam", "confidence": 0.99, "evidence": "backlinks"}}
{"agent": "classify", "when": {"sub.id": "f-10233"}, "answer": {"intent": "spam", "confidence": 0.5, "evidence": "x"}}
{"agent": "sales_reply", "when": {"triage.intent": "demo_request"}, "answer": {"submission_id": "f-10231", "team": "sales", "priority": "high", "reply_subject": "Your demo", "reply_body": "Happy to show you the lifecycle programs next week."}}
{"agent": "support_reply", "answer": {"submission_id": "x", "team": "support", "priority": "normal", "reply_subject": "s", "reply_body": "never used by this input at all"}}
E
./router --submissions-file three.jsonl --mock-fixtures fx.jsonl --no-journal --quiet >out 2>err ||
    fail "run: $(cat err)"
[ "$(cat out)" = '{"submission_id":"f-10231","team":"sales","priority":"high","reply_subject":"Your demo","reply_body":"Happy to show you the lifecycle programs next week."}' ] ||
    fail "output: $(cat out)"
grep -q "^fixtures: fixture at fx.jsonl:5 (agent 'support_reply') matched no call" err || fail "unused fixture: $(cat err)"
[ "$(grep -c '^fixtures:' err)" = 1 ] || fail "reports: $(cat err)"
# without the third submission's fixture, its call is reported and the mock answers it
grep -v f-10233 fx.jsonl >fx2.jsonl
./router --submissions-file three.jsonl --mock-fixtures fx2.jsonl --no-journal --quiet >out2 2>err2 ||
    fail "run 2: $(cat err2)"
grep -q "^fixtures: call of agent 'classify' (item 2) matched no fixture; the mock answered it" err2 ||
    fail "unmatched call: $(cat err2)"
echo '{"agent": "nobody", "answer": 1}' >bad.jsonl
./router --mock-fixtures bad.jsonl 2>err3 && fail "a fixture of no agent was accepted"
grep -q "error: --mock-fixtures bad.jsonl:1: route_inbound has no agent 'nobody'" err3 || fail "bad: $(cat err3)"
printf '{"agent": "classify", "answer": {}}\n{oops\n' >bad2.jsonl
./router --mock-fixtures bad2.jsonl 2>err4 && fail "bad JSON accepted"
grep -q "bad2.jsonl:2:" err4 || fail "bad JSON: $(cat err4)"
echo '{"agent": "classify", "when": {"t.intent": "spam"}, "answer": {}}' >bad3.jsonl
./router --mock-fixtures bad3.jsonl 2>err5 && fail "a when of no parameter accepted"
grep -q "agent 'classify' has no parameter 't' (its parameters: sub)" err5 || fail "bad when: $(cat err5)"
echo ok
