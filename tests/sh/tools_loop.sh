# tools_loop.sh: an agent's tool loop on both wires, against the fake LLM
# server playing a tool-using model (tests/tools/fakeserver.c, rule
# `tools`) and the fake CRM as the tool's API: one call; several in one turn
# (made at once, their results in the order of the calls, one of them an
# agent); a tool that fails (HTTP 404: its error goes back as a tool error,
# Anthropic is_error); arguments that do not fit (told to the model the
# same way, nothing sent); a call of a tool that does not exist (the turn is
# asked again with the problem, never echoed back: the providers refuse
# it); the bound reached (the tools stay declared and tool_choice is none:
# the model answers); the same on Anthropic's tool mode, where the answer is
# a tool.  The fake server answers 400 to any history whose
# results do not answer the turn before; none is refused here.  The trace
# has a turn span per model turn and an execute_tool span per tool call
# with the GenAI tool attributes, the operation's and the agent's own lines
# their children; the summary counts the loops.
. "$TOP/tests/fake/lib.sh"
case "$FLOWC" in
    */build/asan/flowc) CT="$TOP/build/asan/tools" ;;
    *) CT="$TOP/build/tools" ;;
esac
[ -x "$CT/fakecrm" ] || CT="$TOP/build/tools"
command -v jq >/dev/null || { echo "no jq"; exit 77; }
crm=
trap 'stop_server; [ -n "$crm" ] && kill $crm 2>/dev/null' EXIT

"$CT/fakecrm" --port-file crmport --contacts 20 --log crm.log >/dev/null 2>crm.err &
crm=$!
i=0
while [ ! -s crmport ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -s crmport ] || die "fakecrm did not start: $(cat crm.err)"
sed "s/CRMPORT/$(cat crmport)/" "$TOP/tests/data/tools_loop.flow" >tl.flow
"$FLOWC" build tl.flow -o tl >build.err 2>&1 || die "build: $(cat build.err)"

cat >tasks.jsonl <<'EOF'
{"text":"one [[fake:tools calls=1 args={\"id\":\"3\"}]]"}
{"text":"parallel [[fake:tools calls=3 args={\"id\":\"1\"}{\"q\":\"who is 1?\"}{\"id\":\"4\"}]]"}
{"text":"error [[fake:tools calls=1 args={\"id\":\"999\"}]]"}
{"text":"misfit [[fake:tools calls=1 bad=missing]]"}
{"text":"cap [[fake:tools calls=1 rounds=5 args={\"id\":\"5\"}]]"}
{"text":"unknown [[fake-once:tools calls=1 bad=name]]"}
EOF

# line N of the log, as jq sees it
logn() { sed -n "${1}p" log; }
# the body of request N (the dump of the fake server)
body() { echo "bodies/$1.json"; }

for wire in anthropic openai; do
    rm -rf bodies && mkdir bodies
    : >crm.log
    start_server --key "$KEY" --dump bodies
    if [ $wire = anthropic ]; then
        ./tl --journal j.db --trace trace.jsonl >out 2>err || die "$wire: $(cat err)"
    else
        ./tl --openai --no-journal >out 2>err || die "$wire: $(cat err)"
    fi
    [ "$(wc -l <out)" -eq 6 ] || die "$wire: $(wc -l <out) answers: $(cat out err)"
    # one: 2 turns; parallel: 2 and the helper agent's own request; error: 2;
    # misfit: 2; cap: 4 (3 calls, then the answer); unknown: 2 (the bad
    # turn, asked again)
    want_requests 15 '"status":200'
    [ "$(requests '"status":400')" = 0 ] || die "$wire: a request refused: $(grep '"status":400' log)"
    # one: the contact's JSON goes back as the call's result
    [ "$(logn 2 | jq -c '[.tool_results, .tool_errors]')" = "[1,0]" ] || die "$wire: one: $(logn 2)"
    has '\"email\":\"lead3@example.com\"' "$(body 2)"
    if [ $wire = anthropic ]; then
        has '{"role":"assistant","content":[{"type":"text","text":"Let me look that up."},{"type":"tool_use","id":"toolu_1_0","name":"get_contact","input":{"id":"3"}}]}' "$(body 2)"
        has '{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1_0","content":"{\"id\":\"3\",' "$(body 2)"
        has '"tools":[{"name":"get_contact","description":"Reads one contact of the CRM by its id.","input_schema":{"type":"object","properties":{"id":{"description":"The contact'"'"'s id, a number written as a string (\"3\").","type":"string"}},"required":["id"],"additionalProperties":false}},{"name":"helper"' "$(body 1)"
        has '"output_config":{"format":{"type":"json_schema"' "$(body 1)"
        hasnt '"tool_choice"' "$(body 1)"
    else
        has '{"role":"assistant","content":null,"tool_calls":[{"id":"call_1_0","type":"function","function":{"name":"get_contact","arguments":"{\"id\":\"3\"}"}}]}' "$(body 2)"
        has '{"role":"tool","tool_call_id":"call_1_0","content":"{\"id\":\"3\",' "$(body 2)"
        has '"tools":[{"type":"function","function":{"name":"get_contact","description":"Reads one contact of the CRM by its id.","parameters":{"type":"object","properties":{"id":{"description":"The contact'"'"'s id, a number written as a string (\"3\").","type":"string"}},"required":["id"],"additionalProperties":false},"strict":true}}' "$(body 1)"
        has '"response_format":{"type":"json_schema"' "$(body 1)"
    fi
    # parallel: three calls in one turn, three results in their order; the
    # bound (3) is reached, so the next turn may not call
    [ "$(logn 3 | jq -c .tool_calls)" = '["get_contact","helper","get_contact"]' ] || die "$wire: $(logn 3)"
    [ "$(logn 5 | jq -c '[.tool_results, .tool_errors, .tool_choice, .tools]')" = '[3,0,"none",2]' ] ||
        die "$wire: parallel: $(logn 5)"
    jq -r '.messages[] | (select(.role == "tool") | .tool_call_id),
           (.content | arrays | .[] | select(.type == "tool_result") | .tool_use_id)' "$(body 5)" |
        tr '\n' ' ' | grep -q "_3_0 .*_3_1 .*_3_2" || die "$wire: the results' order: $(cat "$(body 5)")"
    # error: the 404 is the call's result, flagged as an error
    [ "$(logn 7 | jq -c '[.tool_results, .tool_errors]')" = "[1,1]" ] || die "$wire: error: $(logn 7)"
    has "http operation 'get_contact': HTTP 404 from GET http://127.0.0.1:$(cat crmport)/crm/v3/objects/contacts/999" "$(body 7)"
    [ $wire = anthropic ] && has '"is_error":true' "$(body 7)"
    [ $wire = openai ] && has '"content":"Error: http operation' "$(body 7)"
    # misfit: nothing sent, the model told why
    has "invalid arguments for tool 'get_contact': missing argument 'id'" "$(body 9)"
    # cap: three rounds of calls, then tool_choice none with the tools still there
    for n in 10 11 12; do
        [ "$(logn $n | jq -c .tool_calls)" = '["get_contact"]' ] || die "$wire: cap $n: $(logn $n)"
    done
    [ "$(logn 13 | jq -c '[.tool_results, .tool_choice, .tools]')" = '[1,"none",2]' ] || die "$wire: cap: $(logn 13)"
    # unknown: the bad turn is asked again with the problem, never echoed back
    [ "$(logn 15 | jq -c '[.feedback, .tool_results]')" = "[true,0]" ] || die "$wire: unknown: $(logn 15)"
    has "you called 'no_such_tool', which is none of your tools (get_contact, helper)" "$(body 15)"
    hasnt 'no_such_tool"' "$(body 15)"
    # the CRM: each read made once (the cap's three reads of 5), the 404 once
    for id in 3 1 4 999; do
        [ "$(grep -c "contacts/$id\"" crm.log)" = 1 ] || die "$wire: contact $id read $(grep -c "contacts/$id\"" crm.log) times"
    done
    [ "$(grep -c 'contacts/5"' crm.log)" = 3 ] || die "$wire: contact 5: $(cat crm.log)"
    # the summary's table: 6 loops, 13 turns (the unknown call's turn is one
    # turn of two attempts: a retry), 9 calls made (the unknown one is not),
    # 2 answered with an error, 2 loops at the bound
    grep -q '^tool loops:' err && grep -qE '^  go +6 +13 +9 +0 +2 +2$' err ||
        die "$wire: the summary: $(cat err)"
done

# Anthropic's tool mode (structured_output: tool): the answer tool goes last
# among the tools with tool_choice any, and at the bound tool_choice names it;
# the same six loops, none refused
rm -rf bodies && mkdir bodies
: >crm.log
start_server --key "$KEY" --dump bodies
./tl --tool-mode --no-journal >out 2>err || die "tool mode: $(cat err)"
[ "$(wc -l <out)" -eq 6 ] || die "tool mode: $(wc -l <out) answers: $(cat out err)"
want_requests 15 '"status":200'
[ "$(jq -c '[.tools[].name, .tool_choice.type]' "$(body 1)")" = '["get_contact","helper","Brief","any"]' ] ||
    die "tool mode: the first request: $(cat "$(body 1)")"
[ "$(jq -c '.tool_choice' "$(body 13)")" = '{"type":"tool","name":"Brief"}' ] ||
    die "tool mode: at the bound: $(cat "$(body 13)")"
hasnt '"output_config"' "$(body 1)"
grep -qE '^  go +6 +13 +9 +0 +2 +2$' err || die "tool mode: the summary: $(cat err)"

# in tool mode an answer that is no record goes in a tool named "answer",
# unless a tool has that name: then "final_answer" (two tools of one name
# are refused)
cat >names.flow <<EOF
import "models"

schema Props (extra: drop) {
  email: string
}

schema Contact (extra: drop) {
  id: string
  properties: Props
}

model claude_tool_mode {
  provider: anthropic
  name: "claude-3-5-haiku-20241022"
  usd_per_mtok_in: 0.80
  usd_per_mtok_out: 4.00
  structured_output: tool
}

/// Reads one contact of the CRM by its id.
http answer(id: string) -> Contact {
  method: GET
  url: "http://127.0.0.1:$(cat crmport)/crm/v3/objects/contacts/{{ id }}"
}

agent emails(task: string) -> list<string> {
  model: claude_tool_mode
  prompt: "{{ task }}"
  tools: [answer]
  max_tool_calls: 1
}

/// An answer whose schema's name is longer than the 64 characters a tool's
/// name may have: its answer tool is named as an answer that is no record's.
schema ContactsFoundInTheCustomerRelationshipManagementSystemWithTheirEmails {
  emails: list<string>
}

agent long_named(task: string) -> ContactsFoundInTheCustomerRelationshipManagementSystemWithTheirEmails {
  model: claude_tool_mode
  prompt: "{{ task }}"
  tools: [answer]
  max_tool_calls: 1
}

workflow names(task: string, long: bool = false, long_openai: bool = false) -> list<string> {
  if long {
    return long_named(task).emails
  }
  if long_openai {
    return (long_named(task) using gpt_luna).emails
  }
  return emails(task)
}
EOF
"$FLOWC" build names.flow -o names >build.err 2>&1 || die "build names.flow: $(cat build.err)"
rm -rf bodies && mkdir bodies
start_server --key "$KEY" --dump bodies
./names --no-journal --task 'emails [[fake:tools calls=1 tool=answer args={"id":"2"}]]' >out 2>err ||
    die "a tool named answer: $(cat err)"
want_requests 2 '"status":200'
[ "$(jq -c '[.tools[].name]' "$(body 1)")" = '["answer","final_answer"]' ] ||
    die "a tool named answer: $(cat "$(body 1)")"
[ "$(cat out)" = '"fake"' ] || die "a tool named answer: the answer $(cat out)"
rm -rf bodies && mkdir bodies
start_server --key "$KEY" --dump bodies
./names --no-journal --long --task 'long [[fake:tools calls=1 tool=answer args={"id":"2"}]]' >out 2>err ||
    die "a schema's long name: $(cat err)"
want_requests 2 '"status":200'
[ "$(jq -c '[.tools[].name, .tool_choice.type]' "$(body 1)")" = '["answer","final_answer","any"]' ] ||
    die "a schema's long name: $(cat "$(body 1)")"
[ "$(jq -c '.tool_choice' "$(body 2)")" = '{"type":"tool","name":"final_answer"}' ] ||
    die "a schema's long name: at the bound: $(cat "$(body 2)")"
# on OpenAI the schema's name is response_format's, which takes the same names
rm -rf bodies && mkdir bodies
start_server --key "$KEY" --dump bodies
./names --no-journal --long-openai --task 'long [[fake:tools calls=1 tool=answer args={"id":"2"}]]' \
    >out 2>err || die "a schema's long name on OpenAI: $(cat err)"
want_requests 2 '"status":200'
[ "$(jq -c '[.tools[].function.name, .response_format.json_schema.name]' "$(body 1)")" = \
  '["answer","final_answer"]' ] || die "a schema's long name on OpenAI: $(cat "$(body 1)")"

# the trace: a span per turn and per tool call under the call's span, each
# tool's own line under its tool span, the GenAI tool attributes
[ "$(jq -s '[.[] | select(.type == "turn")] | length' trace.jsonl)" = 13 ] || die "turn spans"
[ "$(jq -s '[.[] | select(.type == "tool")] | length' trace.jsonl)" = 9 ] || die "tool spans"
jq -s -e '
  ([.[] | select(.type == "call" and .agent == "research")] | map({(.span_id): .}) | add) as $calls |
  [.[] | select(.type == "tool")] | all(
    ."gen_ai.operation.name" == "execute_tool" and .name == "execute_tool " + ."gen_ai.tool.name" and
    ."gen_ai.tool.type" == "function" and (."gen_ai.tool.call.id" | test("^toolu_")) and
    $calls[.parent_span_id] != null)' trace.jsonl >/dev/null || die "tool spans: $(grep '"tool"' trace.jsonl)"
jq -s -e '
  ([.[] | select(.type == "tool")] | map(.span_id)) as $tools |
  [.[] | select(.type == "http" or (.type == "call" and .agent == "helper"))] |
  length == 8 and all(.parent_span_id as $p | $tools | index($p) != null)' trace.jsonl >/dev/null ||
    die "the tools' own lines are not under their tool spans"
jq -s -e '[.[] | select(.type == "tool" and ."error.type" != null) | ."error.type"] | sort ==
          ["failed", "invalid_arguments"]' trace.jsonl >/dev/null || die "tool errors in the trace"
jq -s -e '[.[] | select(.type == "call" and .agent == "research")] |
          map(.turns) | sort == [1, 2, 2, 2, 2, 4]' trace.jsonl >/dev/null || die "turns on the call lines"
# the budget: the first attempt holds the loop's worst case: 4 turns at
# max_tokens (400) with the context growing by each answer and by each
# result at max_tool_result_tokens (4000, plus 80 of framing): 4 * in0 +
# 400 * 6 + 4080 * 6, in0 the first request's input estimate.  A tokens cap
# above one turn's worst but under the loop's stops the run before any
# request; a cap above it lets it run, and what the run spent is its usage.
echo '{"text":"budget [[fake:tools calls=1 args={\"id\":\"2\"}]]"}' >one.jsonl
start_server --key "$KEY"
./tl --tasks one.jsonl --no-journal --budget-tokens 5000 >bout 2>berr
[ $? -eq 4 ] || die "a loop over the budget: $(cat berr)"
want_requests 0
needed=$(sed -n 's/.*tokens budget: spent 0 of 5000 tokens (the next call needed up to \([0-9]*\)).*/\1/p' berr)
in0=$(( (${needed:-0} - 26880) / 4 ))
[ -n "$needed" ] && [ $(( (needed - 26880) % 4 )) -eq 0 ] && [ $in0 -ge 400 ] && [ $in0 -le 2000 ] ||
    die "the loop's hold: $(cat berr)"
./tl --tasks one.jsonl --journal b.db --budget-tokens $((needed + 100)) >bout 2>berr ||
    die "a loop within the budget: $(cat berr)"
want_requests 2
spent=$(./tl runs --journal b.db | awk 'NR == 2 { print $7 }')
[ "$spent" = "$(awk '$1 == "total" { print $6 + $7; exit }' berr)" ] ||
    die "spent $spent, the summary says otherwise: $(cat berr)"

# flowc estimate bounds a run of the loops: at max_tokens (every answer and
# every turn of calls as long as max_tokens allows) what the six tasks spent
# is within the estimate's worst case for them
start_server --key "$KEY" --usage max
./tl --no-journal --trace max.jsonl >/dev/null 2>maxerr || die "at max_tokens: $(cat maxerr)"
"$FLOWC" estimate tl.flow --data tasks=tasks.jsonl --format=json >est.json 2>esterr ||
    die "estimate: $(cat esterr)"
jq -e '.phases[] | .agents[]? | select(.agent == "research") | .max_tool_calls == 3' est.json \
    >/dev/null || die "the estimate's loop: $(cat est.json)"
spent=$(jq -s '[.[] | select(.type == "call") | .cost_usd] | add' max.jsonl)
worst=$(jq '.total.worst.usd' est.json)
awk -v s="$spent" -v w="$worst" 'BEGIN { exit !(s > 0 && s <= w + 1e-9) }' ||
    die "spent \$$spent at max_tokens, above the worst case \$$worst"
finish
