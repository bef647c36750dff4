#!/bin/sh
# journal_flow.sh: the journal through a workflow that flowc builds: approve
# and escalate share the queue, the run waits (exit 3), `approve` decides,
# `--resume` returns exactly the approved items without calling again, the
# trace has a line per phase and per call with the GenAI names and calls
# under their phase's span, changed arguments are refused, `runs` shows it.
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
command -v jq >/dev/null || { echo "no jq"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
cat >gate.flow <<'E'
schema Lead { id: int  email: string  note: string? }
schema Score { lead_id: int  fit: int in 0..10  reason: string }

model m { provider: mock  name: "mock-1"  usd_per_mtok_in: 1.0  usd_per_mtok_out: 5.0 }

agent score(l: Lead) -> Score {
  model: m
  max_tokens: 100
  prompt: "Score this lead: {{ l }}"
}

workflow gate(file: string, min_fit: int = 0) -> list<Score> {
  budget { usd: 1.00 }
  phase rate {
    let leads = read_jsonl<Lead>(file)
    let scores = parallel for l in leads (concurrency: 4) {
      if l.note == null { escalate(l, "no note") }
      score(l)
    }
  }
  phase review {
    let ok = approve(scores, "send these?")
    return ok
  }
}
E
for i in 1 2 3 4 5 6; do
    if [ $i = 3 ]; then echo "{\"id\": $i, \"email\": \"l$i@x.com\"}"
    else echo "{\"id\": $i, \"email\": \"l$i@x.com\", \"note\": \"n$i\"}"; fi
done >leads.jsonl
"$FLOWC" build gate.flow -o gate >build.err 2>&1 || fail "flowc build: $(cat build.err)"

./gate --mock --file leads.jsonl --trace t.jsonl >out1 2>err1
st=$?
[ $st -eq 3 ] || fail "first run exited $st: $(cat err1)"
grep -q "5 items of 'send these?' wait for a decision" err1 || fail "message: $(cat err1)"
./gate review >review || fail "review"
[ "$(grep -c '^  \[[0-9]*\] escalated: no note' review)" -eq 1 ] || fail "escalation not queued: $(cat review)"
[ "$(grep -c '^  \[[0-9]*\] approve: send these?' review)" -eq 5 ] || fail "approvals: $(cat review)"
# the approve() items are numbered 2..6 in list order (the escalation came first)
sed -n 's/^      //p' review | sed -n '3p;5p' >want
run=$(./gate runs | awk '$2 == "waiting" { print $1 }')
[ -n "$run" ] || fail "runs: $(./gate runs)"

./gate --mock --file leads.jsonl --min-fit 3 --resume >/dev/null 2>err2
[ $? -eq 2 ] || fail "changed args were resumed"
grep -q -- "--min-fit was 0, now 3" err2 || fail "message: $(cat err2)"

./gate approve "$run" --item 3 --item 5 --reject 2 --reject 4 --reject 6 --by tester >/dev/null ||
    fail "approve"
./gate --mock --file leads.jsonl --resume --trace t.jsonl >out3 2>err3 || fail "resume: $(cat err3)"
diff want out3 >/dev/null || fail "resumed output is not the approved items: $(cat out3) vs $(cat want)"
grep -q "5 calls answered from the journal" err3 || fail "resume called again: $(cat err3)"
./gate runs | grep -q "^$run *done" || fail "runs: $(./gate runs)"
[ "$(sqlite3 .flow/gate.db 'PRAGMA integrity_check')" = ok ] || fail "integrity"

# the trace: 2 runs x (2 phases + 5 calls), calls under a phase span of theirs
[ "$(jq -s 'length' t.jsonl)" -eq 14 ] || fail "trace lines: $(jq -s length t.jsonl)"
jq -e -s '[.[] | select(.type == "call")] | length == 10 and all(
      .["gen_ai.operation.name"] == "chat" and .["gen_ai.provider.name"] == "mock" and
      .["gen_ai.request.model"] == "mock-1" and (.["gen_ai.usage.input_tokens"] | type) == "number" and
      (.["gen_ai.usage.output_tokens"] | type) == "number" and
      (.["gen_ai.response.finish_reasons"] | type) == "array" and has("error.type") and
      .agent == "score" and .phase == "rate" and (.item | length) > 0 and has("attempt") and
      has("cost_usd") and has("latency_ms") and .run_id != null and .span_id != null)' t.jsonl >/dev/null ||
    fail "call lines lack fields: $(head -1 t.jsonl)"
jq -e -s '([.[] | select(.type == "phase") | .span_id]) as $p |
      all(.[] | select(.type == "call"); .parent_span_id as $x | $p | index($x) != null)' t.jsonl >/dev/null ||
    fail "a call's parent is not a phase span"
[ "$(jq -r '.trace_id' t.jsonl | sort -u | wc -l)" -eq 1 ] || fail "more than one trace id for one run"
[ "$(jq -s '[.[] | select(.type == "call" and .cached)] | length' t.jsonl)" -eq 5 ] || fail "cached lines"
echo ok
