#!/bin/sh
# trace_content.sh: --trace-content keeps the rendered system prompt, the
# prompt, what a retry told the model and the raw reply of every attempt
# (the invalid first one included) in the journal and the trace; `show`
# prints them per call (--agent, --item); without the flag only the
# attempts' outcomes are kept.  The journal and the trace are created 0600.
# `runs --prune DAYS` removes old runs' answers and details, after which the
# run cannot be resumed.
. "$TOP/tests/fake/lib.sh"
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
command -v jq >/dev/null || { echo "no jq"; exit 77; }
cat >tc.flow <<'E'
schema Lead { id: int  name: string  note: string }
schema Score { lead_id: int  fit: int in 0..10  reason: string }

model m { provider: openai  name: "gpt-4.1-mini"  usd_per_mtok_in: 1.0  usd_per_mtok_out: 5.0 }

agent score(l: Lead) -> Score {
  model: m
  max_tokens: 100
  system: "You rate leads for the Zanzibar team."
  prompt: "Score this lead: {{ l.name }} says {{ l.note }}"
}

workflow tc(file: string) -> list<Score> {
  phase rate {
    let leads = read_jsonl<Lead>(file)
    return parallel for l in leads (concurrency: 1) { score(l) }
  }
}
E
printf '{"id":1,"name":"Ada","note":"wants a demo"}\n{"id":2,"name":"Bob","note":"price?"}\n' >leads.jsonl
"$FLOWC" build tc.flow -o tc 2>err || die "build: $(cat err)"
umask 022

# without --trace-content: outcomes only, and show says how to get more
script "* ok"
start_server --script script --key "$KEY"
./tc --file leads.jsonl --quiet --journal plain.db >out 2>err || die "plain run: $(cat err)"
./tc show last --journal plain.db >show0 2>err || die "show: $(cat err)"
has "attempt 1: answer, HTTP 200" show0
has "(prompts and replies were not kept: run with --trace-content)" show0
hasnt "Zanzibar" show0
[ "$(sqlite3 plain.db "SELECT count(*) FROM calls_all WHERE detail LIKE '%Zanzibar%'")" = 0 ] ||
    die "the journal kept a prompt without --trace-content"

# with it: the first attempt's answer misses a field, the retry is told so
script "1 invalid-missing-field" "* ok"
start_server --script script --key "$KEY"
./tc --file leads.jsonl --quiet --trace-content --trace t.jsonl >out 2>err || die "run: $(cat err)"
[ "$(stat -c %a .flow/tc.db)" = 600 ] || die "journal mode $(stat -c %a .flow/tc.db)"
[ "$(stat -c %a t.jsonl)" = 600 ] || die "trace mode $(stat -c %a t.jsonl)"
run=$(sqlite3 .flow/tc.db "SELECT id FROM runs")
./tc show "$run" --item 0 >show1 2>err || die "show --item: $(cat err)"
has "call score item 0, phase rate, model gpt-4.1-mini, ok after 2 attempts" show1
has "    You rate leads for the Zanzibar team." show1
has "    Score this lead: Ada says wants a demo" show1
has "  attempt 1: invalid, HTTP 200" show1
has "    problem: missing required field 'lead_id'" show1
has '    {"fit":0,"reason":"fake"}' show1
has "  told the model:" show1
has "  attempt 2: answer" show1
hasnt "Bob" show1
./tc show last --agent score >show2 || die "show --agent"
[ "$(grep -c '^call score' show2)" = 2 ] || die "show --agent: $(cat show2)"
./tc show last --agent nobody >/dev/null 2>err && die "show of an unknown agent succeeded"
has "has no call of agent 'nobody'" err
./tc show nosuchrun 2>err && die "show of an unknown run succeeded"
has "no run 'nosuchrun'" err
./tc show 2>err && die "show without a run succeeded"
has "usage:" err
# the trace: the invalid attempt's reply is on the call's line
jq -se 'map(select(.type == "call" and .item == "0"))[0].content
        | .attempts[0].reply == "{\"fit\":0,\"reason\":\"fake\"}"
          and .attempts[0].outcome == "invalid" and (.system | test("Zanzibar"))' t.jsonl >/dev/null || die "trace lacks the content: $(head -c 1500 t.jsonl)"

# an existing world-readable journal is made private when written again
chmod 644 plain.db
./tc --file leads.jsonl --quiet --journal plain.db >out 2>err || die "plain run 2: $(cat err)"
[ "$(stat -c %a plain.db)" = 600 ] || die "old journal mode $(stat -c %a plain.db)"

# prune: 1 day keeps today's runs, 0 removes every answer; the run stays listed
./tc runs --prune 1 >p1 || die "prune 1"
has "no run of tc started before" p1
./tc runs --prune 0 >p0 || die "prune 0: $(cat p0)"
has "pruned 1 run of tc" p0
has "2 calls and 0 review items removed" p0
[ "$(sqlite3 .flow/tc.db "SELECT count(*) FROM calls_all WHERE output IS NOT NULL OR detail IS NOT NULL")" = 0 ] ||
    die "answers left after prune"
! grep -qa "Zanzibar" .flow/tc.db* || die "the prompt is still in the journal's bytes"
./tc runs | grep -q "^$run" || die "the pruned run is not listed"
./tc show "$run" --item 0 >show3 || die "show after prune"
has "answer: (removed by runs --prune)" show3
./tc --file leads.jsonl --resume "$run" 2>err && die "a pruned run resumed"
has "cannot be resumed: its answers were removed by \`runs --prune\`" err
./tc runs --prune x 2>err && die "prune x accepted"
has "--prune needs a number of days" err
./tc runs --prune 1 --cost 2>err && die "prune with cost accepted"
finish
