#!/bin/sh
# flowtest_cli.sh: flowc test on a small triage workflow: a passing suite
# (router arm, escalation, skip with its error, exit status, --no-flag
# arguments, a file argument, a fixtures file, prompts, one agent called
# alone), then each way a test fails
# (an expectation, with file:line:col and expected and actual; a fixture no
# call used; a call no fixture answers, and `allow mock`; a shared fixture
# no test used) and each way a test file is refused before anything runs (a
# malformed file, a fixture that does not fit its agent's schema, an
# argument or path the workflow does not have), and that the workflow is
# compiled once per invocation and not again while it is unchanged.
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
fail() { echo "FAIL: $*"; exit 1; }
cat >triage.flow <<'E'
import "models"

schema Ticket {
  id: string
  text: string
}

enum Kind { bug, question, spam }

schema Label {
  kind: Kind
  confidence: float in 0..1
}

schema Answer {
  ticket_id: string
  reply: string len 1..200
}

agent label(t: Ticket) -> Label {
  model: gpt_luna
  max_tokens: 100
  prompt: "Label this ticket: {{ t.text }}"
}

agent answer(t: Ticket, l: Label) -> Answer {
  model: gpt_luna
  max_tokens: 200
  prompt: "Answer this {{ l.kind }}: {{ t.text }}"
}

workflow triage(tickets_file: string = "tickets.jsonl", strict: bool = false) -> list<Answer> {
  phase go {
    let tickets = read_jsonl<Ticket>(tickets_file)
    let out = parallel for t in tickets (on_error: skip) {
      let l = label(t)
      if l.confidence < 0.5 { escalate(t, "unsure about the label") }
      match l.kind {
        bug, question => answer(t, l)
        spam => if strict { fail("spam in the queue") } else { skip }
      }
    }
    return out
  }
}
E
cat >tickets.jsonl <<'E'
{"id": "t-9", "text": "from a file"}
E
cat >fx.jsonl <<'E'
{"agent": "answer", "answer": {"ticket_id": "any", "reply": "We are on it."}}
E
cat >triage.flowtest <<'E'
// the label decides the arm
fixture {"agent": "label", "when": {"t.id": "t-1"}, "answer": {"kind": "bug", "confidence": 0.9}}
fixture {"agent": "label", "when": {"t.id": "t-2"}, "answer": {"kind": "spam", "confidence": 0.9}}
fixture {"agent": "label", "when": {"t.id": "t-3"}, "answer": {"kind": "question", "confidence": 0.2}}
fixtures "fx.jsonl"

test "a bug is answered, spam dropped, an unsure label escalated" {
  arg tickets_file = [{"id": "t-1", "text": "it crashes"}, {"id": "t-2", "text": "buy links"},
                      {"id": "t-3", "text": "hm?"}]
  arg strict = false
  expect count output == 1
  expect output[0].reply == "We are on it."
  expect output[0].reply contains "on it"
  expect output[0].ticket_id != "t-2"
  expect calls label == 3
  expect calls answer item 0 == 1
  expect calls answer item 1 == 0
  expect calls answer < 2
  expect escalated == 1
  expect escalated item 2 why contains "unsure"
  expect skipped == 0
  expect prompt label item 1 contains "buy links"
  expect prompt answer contains "Answer this bug: it crashes"
  expect prompt answer not contains "buy links"
}

test "with --strict, spam is an error that skips the item" {
  arg tickets_file = [{"id": "t-1", "text": "it crashes"}, {"id": "t-2", "text": "buy links"}]
  arg strict = true
  expect skipped item 1 error contains "spam in the queue"
  expect skipped == 1
  expect count output >= 1
}

test "one agent: the label's prompt" {
  call label {"t": {"id": "t-1", "text": "it crashes"}}
  allow mock
  expect prompt label contains "Label this ticket: it crashes"
  expect calls label == 1
}

test "one agent: the answer" {
  call answer {"t": {"id": "t-1", "text": "it crashes"}, "l": {"kind": "question", "confidence": 0.5}}
  fixture {"agent": "answer", "when": {"l.kind": "question"}, "answer": {"ticket_id": "t-1", "reply": "Yes."}}
  expect output.reply == "Yes."
  expect prompt answer contains "Answer this question: it crashes"
}

test "a file argument, and the mock for what has no fixture" {
  arg tickets_file = file "tickets.jsonl"
  allow mock
  expect calls label item 0 == 1
  expect exit 0
}
E
"$FLOWC" test triage.flowtest >out 2>err || fail "the passing suite failed: $(cat out err)"
[ "$(tail -1 out)" = "5 passed, 0 failed" ] || fail "totals: $(cat out)"
grep -q '^pass triage.flowtest:7: a bug is answered' out || fail "a pass line: $(cat out)"
[ ! -s err ] || fail "stderr of a passing suite: $(cat err)"
# the workflow and a wrapper for each agent tested alone
[ "$(ls .flow/test | wc -l)" = 3 ] || fail "binaries: $(ls .flow/test)"
bin=$(ls .flow/test)
# the same workflow named by a .flow (its .flowtest beside it): not compiled
# again, each binary marked used; one no run used for a week is dropped
inodes=$(cd .flow/test && stat -c %i $bin)
for b in $bin; do touch -d '2000-01-01' ".flow/test/$b"; done
touch -d '2000-01-01' .flow/test/gone-0123456789abcdef
touch -d "$(date -d '-2 days')" .flow/test/kept-0123456789abcdef
"$FLOWC" test triage.flow >out2 2>&1 || fail "second run: $(cat out2)"
[ "$(ls .flow/test | grep -v kept-)" = "$bin" ] || fail "rebuilt or not pruned: $(ls .flow/test)"
[ -f .flow/test/kept-0123456789abcdef ] || fail "a binary used 2 days ago was pruned"
[ "$(cd .flow/test && stat -c %i $bin)" = "$inodes" ] || fail "rewritten"
for b in $bin; do
    [ "$(stat -c %Y ".flow/test/$b")" -gt "$(date -d 2000-01-02 +%s)" ] || fail "$b not marked used"
done
rm .flow/test/kept-0123456789abcdef

# ---- failing tests: exit 1, each failure at its place, expected and actual
cat >fails.flowtest <<'E'
flow "triage.flow"
test "wrong expectations" {
  arg tickets_file = [{"id": "t-1", "text": "it crashes"}]
  fixture {"agent": "label", "answer": {"kind": "bug", "confidence": 0.9}}
  fixture {"agent": "answer", "answer": {"ticket_id": "t-1", "reply": "Fixed."}}
  expect output[0].reply == "Not fixed."
  expect calls answer == 2
  expect escalated item 0
  expect skipped item 0 error contains "boom"
  expect count output > 1
  expect exit 4
  expect error contains "no such message"
  expect prompt label contains "it works"
  expect prompt label not contains "crashes"
}
test "an unused fixture" {
  arg tickets_file = [{"id": "t-1", "text": "it crashes"}]
  fixture {"agent": "label", "answer": {"kind": "spam", "confidence": 0.9}}
  fixture {"agent": "answer", "answer": {"ticket_id": "t-1", "reply": "Never used."}}
}
test "a call without a fixture" {
  arg tickets_file = [{"id": "t-1", "text": "it crashes"}]
  fixture {"agent": "label", "answer": {"kind": "bug", "confidence": 0.9}}
}
test "passes" {
  arg tickets_file = []
  expect count output == 0
}
E
"$FLOWC" test fails.flowtest >out 2>err && fail "a failing suite passed: $(cat out err)"
[ $? = 1 ] || fail "exit status"
[ "$(tail -1 out)" = "1 passed, 3 failed" ] || fail "totals: $(cat out)"
grep -q '^FAIL fails.flowtest:2: wrong expectations$' out || fail "FAIL line: $(cat out)"
for want in \
  'fails.flowtest:6:3: error: output[0].reply: expected "Not fixed.", got "Fixed." [E1503]' \
  "fails.flowtest:7:3: error: agent 'answer' was called 1 time, expected == 2 [E1503]" \
  'fails.flowtest:8:3: error: no item 0 was escalated [E1503]' \
  'fails.flowtest:9:3: error: no item 0 was skipped with an error containing "boom" [E1503]' \
  'fails.flowtest:10:3: error: output has 1 item, expected > 1 [E1503]' \
  'fails.flowtest:11:3: error: expected exit status 4, got 0 [E1503]' \
  'fails.flowtest:12:3: error: the run'"'"'s messages (stderr) do not contain "no such message" [E1503]' \
  "fails.flowtest:13:3: error: none of the 1 prompt of agent 'label' contains \"it works\" [E1503]" \
  'note: the prompt of item 0: Label this ticket: it crashes' \
  "fails.flowtest:14:3: error: 1 of the 1 prompts of agent 'label' contain \"crashes\" [E1503]" \
  'fails.flowtest:19:11: error: this fixture matched no call in the test "an unused fixture" [E1503]' \
  "fails.flowtest:21:6: error: call of agent 'answer' (item 0) matched no fixture [E1503]" \
  'help: add a fixture for it, or `allow mock` to let the mock answer what no fixture does'
do
    grep -qF -- "$want" err || fail "missing: $want
$(cat err)"
done
grep -q '^    6 |   expect output\[0\].reply == "Not fixed."$' err || fail "no source line: $(cat err)"

# a shared fixture that no test used fails the file
cat >shared.flowtest <<'E'
flow "triage.flow"
fixture {"agent": "label", "when": {"t.id": "nobody"}, "answer": {"kind": "bug", "confidence": 0.9}}
test "empty" {
  arg tickets_file = []
}
E
"$FLOWC" test shared.flowtest >out 2>err && fail "an unused shared fixture passed"
grep -qF 'shared.flowtest:2:9: error: this fixture, shared by the file'"'"'s tests, matched no call in any of them [E1503]' err ||
    fail "shared: $(cat err)"
[ "$(tail -1 out)" = "1 passed, 1 failed" ] || fail "shared totals: $(cat out)"

# ---- refused before anything runs: exit 1, the place and why
cat >bad.flowtest <<'E'
flow "triage.flow"
test "malformed" {
  arg tickets_file = [{"id": "t-1", "text": "x"}
  expect calls label = 1
  expect frobs
  wibble
}
E
"$FLOWC" test bad.flowtest >out 2>err && fail "a malformed file passed"
for want in \
  "bad.flowtest:3:22: error: '[' is not closed [E1501]" \
  "bad.flowtest:4:22: error: expected a comparison (== != < <= > >=) after the calls [E1501]" \
  "bad.flowtest:5:10: error: expected exit, output, count, calls, prompt, escalated, skipped or error after 'expect' [E1501]" \
  "bad.flowtest:6:3: error: expected arg, call, fixture, fixtures, allow mock, approve all, expect or '}' in a test [E1501]"
do
    grep -qF -- "$want" err || fail "missing: $want
$(cat err)"
done
grep -q '^FAIL bad.flowtest: does not compile (1 test not run)$' out || fail "bad: $(cat out)"

cat >types.flowtest <<'E'
flow "triage.flow"
test "does not fit" {
  arg ticket_file = "x"
  arg strict = "yes"
  arg tickets_file = [{"id": 7, "text": "x"}]
  fixture {"agent": "label", "answer": {"kind": "feature", "confidence": 0.9}}
  fixture {"agent": "label", "when": {"t.idd": "t-1"}, "answer": {"kind": "bug", "confidence": 1.5}}
  fixture {"agent": "labl", "answer": {}}
  expect output[0].replies == "x"
  expect output[0].reply == 3
  expect calls anwser == 1
}
test "one agent, badly" {
  arg strict = true
  call answer {"t": {"id": "t-1", "text": "x"}, "kind": "bug"}
}
E
"$FLOWC" test types.flowtest >out 2>err && fail "a test that does not fit passed"
for want in \
  "types.flowtest:3:7: error: workflow 'triage' has no parameter 'ticket_file' [E1502]" \
  "help: did you mean 'tickets_file'?" \
  "types.flowtest:4:16: error: 'strict' is bool: expected bool, got string [E1502]" \
  "types.flowtest:5:23: error: record 1 of 'tickets_file' does not fit Ticket (as read_jsonl reads it): id: expected string, got number [E1502]" \
  "types.flowtest:6:40: error: the answer does not fit Label, the output of agent 'label': kind: 'feature' is not one of bug, question, spam [E1502]" \
  "types.flowtest:7:48: error: schema 'Ticket' has no field 'idd' [E1502]" \
  "types.flowtest:7:66: error: the answer does not fit Label, the output of agent 'label': confidence: 1.5 is out of range 0..1 [E1502]" \
  "types.flowtest:8:21: error: triage has no agent 'labl' [E1502]" \
  "types.flowtest:9:3: error: output path: Answer has no field 'replies' [E1502]" \
  "types.flowtest:10:29: error: the output there is string: expected string, got number [E1502]" \
  "types.flowtest:11:16: error: triage has no agent 'anwser' [E1502]" \
  "types.flowtest:14:7: error: a test that calls one agent gives its arguments in the call, not the workflow's [E1502]" \
  "types.flowtest:15:57: error: agent 'answer' has no parameter 'kind' [E1502]" \
  "types.flowtest:15:15: error: no value for agent 'answer''s parameter 'l' (Label) [E1502]"
do
    grep -qF -- "$want" err || fail "missing: $want
$(cat err)"
done
[ "$(tail -1 out)" = "0 passed, 2 failed" ] || fail "types totals: $(cat out)"

# a test file whose workflow is missing; usage
printf 'test "x" {\n}\n' >orphan.flowtest
"$FLOWC" test orphan.flowtest >out 2>err && fail "an orphan passed"
grep -q "^orphan.flowtest:1:1: error: cannot read 'orphan.flow', the workflow it tests" err || fail "orphan: $(cat err)"
"$FLOWC" test 2>err; [ $? = 2 ] || fail "no files: not exit 2"
"$FLOWC" test --frob x.flowtest 2>err; [ $? = 2 ] || fail "a bad option: not exit 2"
echo ok
