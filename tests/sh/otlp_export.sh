#!/bin/sh
# otlp_export.sh: with OTEL_EXPORTER_OTLP_ENDPOINT the binary sends its spans
# over OTLP/HTTP as JSON to a collector, here the project's strict receiver
# (tests/tools/fakeotlp.c, which answers 400 to what OTLP/JSON does not
# allow and dumps what it took): the run (invoke_workflow, the root), its
# phases, each agent call (chat MODEL, gen_ai.* attributes of the right
# types), each tool call (execute_tool), each http operation (an HTTP client
# span) and each retry (an event); every span's parent in the same trace,
# children within their parents; the headers of OTEL_EXPORTER_OTLP_HEADERS
# and the service name of OTEL_SERVICE_NAME arrive; the provider's key and
# @sensitive values never do.  A collector down, failing (500) or too slow
# changes neither the run's result nor its exit status: the spans are
# dropped with one line saying how many and why (one that asks to wait gets
# the batch again, and a partial success's rejected spans are counted), and a
# slow one holds the run's end for the short flush deadline only.  OTEL_SDK_DISABLED=true sends
# nothing; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as it is.
. "$TOP/tests/fake/lib.sh"
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
case "$FLOWC" in
    */build/asan/flowc) CT="$TOP/build/asan/tools" ;;
    *) CT="$TOP/build/tools" ;;
esac
[ -x "$CT/fakecrm" ] || CT="$TOP/build/tools"
OT="$TOP/build/tools/fakeotlp"
[ -x "$OT" ] || { echo "skip: build/tools/fakeotlp not built"; exit 77; }
unset OTEL_SDK_DISABLED OTEL_TRACES_EXPORTER OTEL_EXPORTER_OTLP_ENDPOINT \
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT OTEL_EXPORTER_OTLP_HEADERS OTEL_EXPORTER_OTLP_TRACES_HEADERS \
    OTEL_SERVICE_NAME OTEL_RESOURCE_ATTRIBUTES OTEL_EXPORTER_OTLP_PROTOCOL \
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL OTEL_EXPORTER_OTLP_TIMEOUT OTEL_EXPORTER_OTLP_TRACES_TIMEOUT
crm= col=
trap 'stop_server; kill $crm $col 2>/dev/null' EXIT

# start_collector [fakeotlp flags]: its port in $OPORT, its dump in ./dump.jsonl
start_collector() {
    [ -n "$col" ] && kill "$col" 2>/dev/null && wait "$col" 2>/dev/null
    rm -f oport dump.jsonl
    "$OT" --port-file oport --dump dump.jsonl "$@" 2>col.err &
    col=$!
    _i=0
    while [ ! -s oport ]; do
        _i=$((_i + 1))
        [ $_i -lt 200 ] || die "fakeotlp did not start: $(cat col.err)"
        sleep 0.05
    done
    OPORT=$(cat oport)
}
# span NAME: the dump's first line of span NAME
span() { grep -F "\"name\":\"$1\"" dump.jsonl | head -1; }
# attr LINE KEY TYPED: the span line has attribute KEY as TYPED ({"intValue":"3"})
attr() { printf '%s' "$1" | grep -qF "\"$2\":$3" || die "attribute $2 is not $3 in: $1"; }
attr_type() { printf '%s' "$1" | grep -qF "\"$2\":{\"$3\":" || die "attribute $2 is no $3 in: $1"; }

# ---- the receiver is as strict as said: what a collector refuses is a 400 ---------
if command -v curl >/dev/null; then
    start_collector
    post() {
        curl -s -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
            --data-binary "$1" "http://127.0.0.1:$OPORT/v1/traces"
    }
    good='"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"s","kind":1,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"'
    wrap() { echo "{\"resourceSpans\":[{\"resource\":{},\"scopeSpans\":[{\"spans\":[{$1}]}]}]}"; }
    [ "$(post "$(wrap "$good")")" = 200 ] || die "a good span refused: $(cat dump.jsonl)"
    for b in '"traceId":"W47/95gDgQPSabYzgT/GDA==","spanId":"eee19b7ec3c1b174","name":"s","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"' \
             '"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7e","name":"s","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"' \
             '"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"s","startTimeUnixNano":1544712660000000000,"endTimeUnixNano":"1544712661000000000"' \
             '"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"s","startTimeUnixNano":"1544712660000000","endTimeUnixNano":"1544712661000000"' \
             '"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"s","kind":"SPAN_KIND_CLIENT","startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000"' \
             "$good"',"attributes":[{"key":"n","value":{"intValue":3}}]' \
             "$good"',"attributes":[{"key":"n","value":{"stringValue":"a","boolValue":true}}]' \
             "$good"',"parentSpanId":"zz"'; do
        [ "$(post "$(wrap "$b")")" = 400 ] || die "the receiver took: $b"
    done
    ! "$OT" --verify dump.jsonl >verify || die "--verify passed a dump with rejected requests"
    has "verify: a request was rejected: resourceSpans[0].scopeSpans[0].spans[0]: traceId" verify
fi

# ---- a run with tools and http operations, against the fake provider and CRM ------
"$CT/fakecrm" --port-file crmport --contacts 20 --log crm.log >/dev/null 2>crm.err &
crm=$!
i=0
while [ ! -s crmport ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -s crmport ] || die "fakecrm did not start: $(cat crm.err)"
sed "s/CRMPORT/$(cat crmport)/" "$TOP/tests/data/tools_loop.flow" >tl.flow
"$FLOWC" build tl.flow -o tl >build.err 2>&1 || die "build: $(cat build.err)"
cat >tasks.jsonl <<'EOF'
{"text":"one [[fake:tools calls=1 args={\"id\":\"3\"}]]"}
{"text":"parallel [[fake:tools calls=2 args={\"id\":\"1\"}{\"q\":\"who is 1?\"}]]"}
EOF
start_server --key "$KEY"
start_collector
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" OTEL_SERVICE_NAME=crm-research \
OTEL_EXPORTER_OTLP_HEADERS="x-tenant=acme, authorization = Bearer%20collector-token" \
OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,service.name=overridden" \
    ./tl --trace trace.jsonl >out 2>err || die "run: $(cat err)"
hasnt "otlp:" err
"$OT" --verify dump.jsonl >verify || die "$(cat verify)"
has "14 spans, 1 traces, 1 roots" verify
has '"authorization":"Bearer collector-token"' dump.jsonl
has '"x-tenant":"acme"' dump.jsonl
has '"content-type":"application/json"' dump.jsonl
has '"service.name":{"stringValue":"crm-research"}' dump.jsonl
has '"deployment.environment":{"stringValue":"test"}' dump.jsonl
has '"scope":{"name":"flowc"' dump.jsonl
root=$(span "invoke_workflow tools_loop")
[ -n "$root" ] || die "no run span: $(cat dump.jsonl)"
attr "$root" gen_ai.operation.name '{"stringValue":"invoke_workflow"}'
attr "$root" gen_ai.workflow.name '{"stringValue":"tools_loop"}'
attr "$root" flowc.status '{"stringValue":"done"}'
printf '%s' "$root" | grep -q '"kind":1' || die "run span kind: $root"
printf '%s' "$root" | grep -q '"parent":"' && die "the run span has a parent: $root"
phase=$(span "phase go")
printf '%s' "$phase" | grep -qF "\"parent\":\"$(printf '%s' "$root" | sed 's/.*"span":"\([0-9a-f]*\)".*/\1/')\"" ||
    die "the phase is not the run's child: $phase"
# the agent call: a client span with the GenAI attributes, typed
call=$(grep -F '"name":"chat claude-haiku-5-5"' dump.jsonl | grep -F '"flowc.agent":{"stringValue":"research"}' |
       grep -F '"flowc.turns"' | head -1)
[ -n "$call" ] || die "no research call span: $(cat dump.jsonl)"
printf '%s' "$call" | grep -q '"kind":3' || die "chat kind: $call"
attr "$call" gen_ai.operation.name '{"stringValue":"chat"}'
attr "$call" gen_ai.provider.name '{"stringValue":"anthropic"}'
attr "$call" gen_ai.request.model '{"stringValue":"claude-haiku-5-5"}'
attr "$call" gen_ai.request.max_tokens '{"intValue":"400"}'
attr "$call" gen_ai.response.id '{"stringValue":"msg_fake"}'
attr_type "$call" gen_ai.usage.input_tokens intValue
attr_type "$call" gen_ai.usage.output_tokens intValue
attr_type "$call" gen_ai.usage.cache_read.input_tokens intValue
attr_type "$call" gen_ai.usage.cache_creation.input_tokens intValue
attr_type "$call" flowc.cost_usd doubleValue
attr "$call" gen_ai.response.finish_reasons '{"arrayValue":{"values":[{"stringValue":"end_turn"}]}}'
# a tool call, and the http operation under it
tool=$(span "execute_tool get_contact")
attr "$tool" gen_ai.operation.name '{"stringValue":"execute_tool"}'
attr "$tool" gen_ai.tool.name '{"stringValue":"get_contact"}'
attr_type "$tool" gen_ai.tool.call.id stringValue
get=$(span GET)
printf '%s' "$get" | grep -q '"kind":3' || die "http kind: $get"
attr "$get" http.request.method '{"stringValue":"GET"}'
attr "$get" http.response.status_code '{"intValue":"200"}'
attr "$get" server.port "{\"intValue\":\"$(cat crmport)\"}"
printf '%s' "$get" | grep -qF "\"url.full\":{\"stringValue\":\"http://127.0.0.1:$(cat crmport)/crm/v3/objects/contacts/" ||
    die "url.full: $get"
[ "$(grep -c '"name":"execute_tool ' dump.jsonl)" = 3 ] || die "execute_tool spans: $(grep -c execute_tool dump.jsonl)"
# the same spans as the trace file's lines, and the run's
[ "$(grep -c . trace.jsonl)" = 13 ] || die "trace lines: $(wc -l <trace.jsonl)"
for id in $(sed 's/.*"span_id":"\([0-9a-f]*\)".*/\1/' trace.jsonl); do
    grep -qF "\"span\":\"$id\"" dump.jsonl || die "span $id of the trace file was not exported"
done

# the traces endpoint is used as it is; OTEL_SDK_DISABLED=true sends nothing
start_collector --path /custom/spans
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT="http://127.0.0.1:$OPORT/custom/spans" \
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1" ./tl --no-journal >out 2>err || die "run: $(cat err)"
hasnt "otlp:" err
"$OT" --verify dump.jsonl >verify || die "$(cat verify)"
has "14 spans, 1 traces, 1 roots" verify
start_collector
OTEL_SDK_DISABLED=true OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" ./tl --no-journal >out 2>err ||
    die "run: $(cat err)"
[ ! -s dump.jsonl ] || die "spans sent with OTEL_SDK_DISABLED=true: $(cat dump.jsonl)"
finish_tools() { stop_server; kill $crm 2>/dev/null; crm=; }
finish_tools

# ---- the mock, @sensitive values, retries as events -------------------------------
cat >r.flow <<'E'
schema Contact { id: string  name: string  email: string @sensitive }
schema Reply { contact_id: string  email: string @sensitive  text: string len 5..200 }
model local { provider: mock  name: "llama-local"  usd_per_mtok_in: 0  usd_per_mtok_out: 0  accepts_sensitive: true }
agent draft(contact: Contact) -> Reply {
  model: local
  retries: 4
  temperature: 0.2
  system: "You write for {{ contact.name }} <{{ contact.email }}>."
  prompt: "Write a short note to {{ contact }}"
}
workflow outreach(file: string) -> list<Reply> {
  phase write {
    let cs = read_jsonl<Contact>(file)
    return parallel for c in cs (concurrency: 2) { draft(c) }
  }
}
E
printf '%s\n' '{"id":"c1","name":"Ada","email":"ada.lovelace@example.org"}' \
    '{"id":"c2","name":"Bob","email":"bob.babbage@example.net"}' \
    '{"id":"c3","name":"Cy","email":"cy.zuse@example.com"}' >contacts.jsonl
"$FLOWC" build r.flow -o outreach 2>err || die "build: $(cat err)"
start_collector
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" FLOWRT_MOCK_BAD_RATE=0.5 \
    ./outreach --file contacts.jsonl --trace-content --retry-base-ms 1 >out 2>err || die "mock run: $(cat err)"
"$OT" --verify dump.jsonl >verify || die "$(cat verify)"
has "5 spans, 1 traces, 1 roots" verify
grep -q '"name":"retry"' dump.jsonl || die "no retry event: $(cat dump.jsonl)"
ev=$(grep -o '"events":\[{[^]]*\]' dump.jsonl | head -1)
printf '%s' "$ev" | grep -q '"flowc.retry.reason":{"stringValue":"invalid"}' || die "retry event: $ev"
printf '%s' "$ev" | grep -q '"flowc.attempt":{"intValue":"2"}' || die "retry event: $ev"
call=$(span "chat llama-local")
attr "$call" gen_ai.provider.name '{"stringValue":"mock"}'
attr "$call" gen_ai.request.temperature '{"doubleValue":0.2}'
for v in ada.lovelace@example.org bob.babbage@example.net cy.zuse@example.com; do
    ! grep -qF "$v" dump.jsonl || die "'$v' reached the collector"
done

# ---- a collector down, failing, slow: the run is the same -------------------------
./outreach --file contacts.jsonl --no-journal >want 2>/dev/null || die "plain run"
start_collector
kill "$col"; wait "$col" 2>/dev/null; col=                  # its port, now closed
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" ./outreach --file contacts.jsonl --no-journal >out 2>err ||
    die "collector down: the run failed: $(cat err)"
cmp -s out want || die "collector down: another result"
has "otlp: 5 spans dropped (collector at http://127.0.0.1:$OPORT/v1/traces: cannot connect)" err
start_collector --status 500
OTEL_EXPORTER_OTLP_ENDPOINT="http://user:pw@127.0.0.1:$OPORT" ./outreach --file contacts.jsonl --no-journal \
    >out 2>err || die "collector 500: the run failed: $(cat err)"
cmp -s out want || die "collector 500: another result"
has "otlp: 5 spans dropped (collector at http://127.0.0.1:$OPORT/v1/traces: HTTP 500: scripted failure)" err
hasnt "user:pw" err
# a collector that asks to wait (503, Retry-After) gets the batch again: nothing lost
start_collector --fail-first 1
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" ./outreach --file contacts.jsonl --no-journal \
    >out 2>err || die "collector 503: the run failed: $(cat err)"
hasnt "otlp:" err
"$OT" --verify dump.jsonl >verify || die "$(cat verify)"
has "5 spans, 1 traces, 1 roots" verify
# a partial success: the spans it rejected are counted dropped, with its message
start_collector --partial 2
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" ./outreach --file contacts.jsonl --no-journal \
    >out 2>err || die "partial success: the run failed: $(cat err)"
has "otlp: 2 spans dropped (collector at http://127.0.0.1:$OPORT/v1/traces: the collector rejected 2 of 5 spans: scripted partial success)" err
# a collector that never answers in time: the run ends after the flush
# deadline (1 s here), not the collector's 60 s
start_collector --delay 60000
OTEL_EXPORTER_OTLP_TIMEOUT=1000 OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" \
    timeout 30 ./outreach --file contacts.jsonl --no-journal >out 2>err
st=$?
[ $st = 0 ] || die "slow collector: exit $st: $(cat err)"
has "otlp: 5 spans dropped (collector at http://127.0.0.1:$OPORT/v1/traces: no answer in time)" err
# a bad endpoint or header is said, and the run goes on
OTEL_EXPORTER_OTLP_ENDPOINT="ftp://127.0.0.1:1" OTEL_EXPORTER_OTLP_HEADERS="a=b,secret-value-only" \
    ./outreach --file contacts.jsonl --no-journal >out 2>err || die "bad endpoint: $(cat err)"
has "warning: otlp: OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL: spans are not exported" err
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$OPORT" OTEL_EXPORTER_OTLP_HEADERS="a=b,secret-value-only" \
OTEL_EXPORTER_OTLP_TIMEOUT=200 ./outreach --file contacts.jsonl --no-journal >out 2>err || die "bad header: $(cat err)"
has "warning: otlp: OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value: ignored" err
hasnt "secret-value-only" err
finish
