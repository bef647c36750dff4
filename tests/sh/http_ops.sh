#!/bin/sh
# http_ops.sh: http operations against the project's fake CRM (fakecrm):
# the three kinds of paging turn reads into lists; 429 (whole-second
# retry-after), 500 and a slow answer past the timeout are retried; a 401
# fails the run naming the operation and the status; a 404 fails its item
# under on_error: skip; an answer of the wrong shape fails naming the
# operation, the status and the field; --dry-run sends reads, holds writes
# back and writes them, masked, to <workflow>.dry-run.jsonl; a missing
# secret fails the call before anything is sent; a time budget stops a slow
# read; names as the API spells them (@alias) and open schemas (extra: drop)
# shape the body and the answers.  The token never appears in any
# output: stdout, stderr, the trace, the journal, the dry-run file.
case "$FLOWC" in
    */build/asan/flowc) T="$TOP/build/asan/tools" ;;
    *) T="$TOP/build/tools" ;;
esac
[ -x "$T/fakecrm" ] || T="$TOP/build/tools"
[ -x "$T/fakecrm" ] || { echo "no fakecrm (make all)"; exit 77; }
command -v jq >/dev/null || { echo "no jq"; exit 77; }
command -v curl >/dev/null || { echo "no curl"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
TOKEN=tok-SECRET-7f3a9c
export CRM_TOKEN=$TOKEN
srv=""
trap '[ -n "$srv" ] && kill $srv 2>/dev/null' EXIT

start() {                         # start [fakecrm flags...]: a fresh server, its URL in $U
    [ -n "$srv" ] && kill $srv 2>/dev/null && wait $srv 2>/dev/null
    rm -f port
    "$T/fakecrm" --token "$TOKEN" --port-file port "$@" >/dev/null 2>srv.err &
    srv=$!
    i=0
    while [ ! -s port ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s port ] || fail "fakecrm did not start: $(cat srv.err)"
    U="http://127.0.0.1:$(cat port)"
}
stats() { curl -s "$U/_stats"; }
# holds FILTER FILE: FILTER gives true for every line it selects, and selects one
holds() {
    r=$(jq -c "$1" "$2" | sort -u)
    [ "$r" = true ]
}

"$FLOWC" build "$TOP/tests/data/crm_ops.flow" -o crm >build.err 2>&1 || fail "build: $(cat build.err)"

# 1. paging, three ways: every contact read once, every one written once
start --contacts 10 --log crm.log
for mode in cursor link next; do
    ./crm --base "$U" --mode $mode --journal j.db --trace trace.jsonl >out.$mode 2>err.$mode ||
        fail "$mode: $(cat err.$mode)"
    [ "$(wc -l <out.$mode)" -eq 10 ] || fail "$mode: $(wc -l <out.$mode) results"
done
grep -q '^  pull .* 1 .* 0 .* 0 .* 0 .* 3 ' err.cursor || fail "cursor: pages in the summary: $(cat err.cursor)"
grep -q '^  pull .* 4 ' err.link || fail "link: 4 pages of 3: $(cat err.link)"
[ "$(stats | jq '[.applied[]] | map(select(. == 3)) | length')" -eq 10 ] ||
    fail "each contact written once per run: $(stats)"
[ "$(stats | jq '[.keys[] | select(.applied != 1)] | length')" -eq 0 ] || fail "a key applied twice"
holds 'select(.type == "http" and .operation == "list_contacts") | .pages == 3 and
       ."http.response.status_code" == 200 and ."server.address" == "127.0.0.1"' trace.jsonl ||
    fail "trace of the paged read"
holds 'select(.type == "http" and .operation == "update_contact") | .idempotency_key |
       test("^[0-9a-f]{8}-[0-9a-f]{4}-")' trace.jsonl || fail "trace of a write: no idempotency key"

# 2. a resume answers from the journal: nothing is sent again
id=$(./crm runs --journal j.db | awk 'NR == 2 { print $1 }')
before=$(stats | jq .requests)
./crm --base "$U" --mode next --journal j.db --resume "$id" >/dev/null 2>resume.err
[ $? -eq 2 ] && grep -q "already finished" resume.err || fail "resuming a done run: $(cat resume.err)"
[ "$(stats | jq .requests)" -eq "$before" ] || fail "a refused resume sent requests"

# 3. a 500, a slow answer past the timeout, a 429 with a whole-second
# retry-after: retried, and the run still writes every contact once
printf 'read 1 500\nread 2 slow 2500\nwrite 1 500\nwrite 10 429\n' >script
start --contacts 10 --script script
./crm --base "$U" --no-journal --retry-base-ms 20 --trace t3.jsonl >out3 2>err3 || fail "retries: $(cat err3)"
[ "$(wc -l <out3)" -eq 10 ] || fail "retries: $(wc -l <out3) results"
grep -q '^  pull  .* 1 .* 0 .* 2 .* 0 ' err3 || fail "pull: 2 retries in the summary: $(cat err3)"
grep -q '^  push  .* 10 .* 0 .* 2 .* 0 ' err3 || fail "push: 2 retries: $(cat err3)"
[ "$(stats | jq '[.applied[]] | map(select(. == 1)) | length')" -eq 10 ] || fail "retries applied twice: $(stats)"

# 4. a 401 fails the run, naming the operation and the status, never the token
start --contacts 10
CRM_TOKEN=tok-WRONG-0000 ./crm --base "$U" --no-journal >out4 2>err4
[ $? -eq 1 ] || fail "401: exit status"
grep -q "error: .*http operation 'list_contacts': HTTP 401 from GET $U/crm/v3/objects/contacts?limit=4: Authentication credentials not found" err4 ||
    fail "401 message: $(cat err4)"
grep -q "tok-WRONG" err4 out4 && fail "the wrong token shows"
# ... and a server that quotes the token in its error never gets it shown
printf 'read 1 401-echo\n' >script
start --contacts 10 --script script
./crm --base "$U" --no-journal --trace t4.jsonl >out4b 2>err4b
[ $? -eq 1 ] || fail "401 echo: exit status"
grep -q "HTTP 401 from GET .*: The token '\*\*\*' is expired." err4b || fail "401 echo: $(cat err4b)"

# 5. a 404 fails only its item (on_error: skip); it is not retried
printf 'write 2 404\n' >script
start --contacts 10 --script script
./crm --base "$U" --no-journal >out5 2>err5 || fail "404: $(cat err5)"
[ "$(wc -l <out5)" -eq 9 ] || fail "404: $(wc -l <out5) results"
grep -q "warning: item .* skipped: .*http operation 'update_contact': HTTP 404 from PATCH $U/crm/v3/objects/contacts/[0-9]*: Injected failure" err5 ||
    fail "404 warning: $(cat err5)"
grep -q '^  push .* 10 .* 0 .* 0 .* 1 ' err5 || fail "404: one failed call: $(cat err5)"

# 6. an answer of the wrong shape names the operation, the status and the field
sed 's/  createdate: string/  createdate: int/' "$TOP/tests/data/crm_ops.flow" >bad.flow
"$FLOWC" build bad.flow -o bad >build.err 2>&1 || fail "build bad: $(cat build.err)"
./bad --base "$U" --no-journal >/dev/null 2>err6
[ $? -eq 1 ] || fail "bad shape: exit status"
grep -q "http operation 'list_contacts': HTTP 200 from GET $U/crm/v3/objects/contacts?limit=4: results\[0\].properties.createdate: expected int" err6 ||
    fail "bad shape message: $(cat err6)"

# 7. --dry-run: reads sent, writes held back and written down, masked
start --contacts 6
./crm --base "$U" --dry-run --journal d.db --trace t7.jsonl >out7 2>err7 || fail "dry run: $(cat err7)"
[ "$(stats | jq '.applied | length')" -eq 0 ] || fail "dry run applied a write: $(stats)"
[ "$(stats | jq .requests)" -eq 2 ] || fail "dry run: the reads (2 pages) are sent: $(stats)"
grep -q "^dry run: 6 writes not sent, written to crm.dry-run.jsonl" err7 || fail "dry run line: $(cat err7)"
[ "$(wc -l <crm.dry-run.jsonl)" -eq 6 ] || fail "dry-run file: $(wc -l <crm.dry-run.jsonl) lines"
holds 'select(.item == "0") | .operation == "update_contact" and .method == "PATCH" and
       .url == "'"$U"'/crm/v3/objects/contacts/1" and .headers == ["Authorization: Bearer ***"]
       and .body.properties.email == "lead1@example.com" and (.idempotency_key | length) == 36' \
    crm.dry-run.jsonl || fail "dry-run line: $(head -1 crm.dry-run.jsonl)"
grep -q '^  push .* 0 .* 0 .* 0 .* 0 .* 0 .* 0 .* 6 ' err7 || fail "dry run: the summary counts 6 held back: $(cat err7)"

# 8. a missing secret fails the call that needs it before anything is sent
before=$(stats | jq .requests)
env -u CRM_TOKEN ./crm --base "$U" --no-journal >out8 2>err8
[ $? -eq 2 ] || fail "no secret: exit status"
grep -q "error: .*http operation 'list_contacts' needs a secret: CRM_TOKEN is not set" err8 ||
    fail "no secret: $(cat err8)"
[ "$(stats | jq .requests)" -eq "$before" ] || fail "a request left without its secret"
env -u CRM_TOKEN ./crm --base "$U" --mock --no-journal >/dev/null 2>&1 || fail "--mock needs no secret"

# 9. a time budget stops http calls as it stops model calls (exit 4)
printf 'read * slow 20000\n' >script
start --contacts 10 --script script
sed 's/^  phase pull {/  budget { time: 2s }\n  phase pull {/' "$TOP/tests/data/crm_ops.flow" >budget.flow
"$FLOWC" build budget.flow -o budget >build.err 2>&1 || fail "build budget: $(cat build.err)"
./budget --base "$U" --no-journal >/dev/null 2>err9
[ $? -eq 4 ] || fail "time budget: exit status: $(cat err9)"
grep -q "stopped by the workflow's time budget" err9 || fail "time budget: $(cat err9)"

# 10. names as the API spells them (@alias) and open schemas: the body goes out
# with the wire names, an answer's extra fields are dropped
start --contacts 3
cat >alias.flow <<'EOF'
schema Props (extra: drop) {
  mail: string @alias("email")
  first: string? @alias("firstname")
}
schema Contact (extra: drop) {
  id: string
  properties: Props
}
schema Change { org: string @alias("company") }
schema Update { properties: Change }
http list(base: string) -> list<Contact> {
  method: GET
  url: "{{ base }}/crm/v3/objects/contacts?limit=2"
  headers: ["Authorization: Bearer {{ env.CRM_TOKEN }}"]
  paging: cursor
  next: "paging.next.after"
  cursor_param: "after"
  items: "results"
}
http update(base: string, c: Contact) -> Contact {
  method: PATCH
  url: "{{ base }}/crm/v3/objects/contacts/{{ c.id }}"
  headers: ["Authorization: Bearer {{ env.CRM_TOKEN }}"]
  body: Update { properties: Change { org: "New Co" } }
}
workflow alias(base: string) -> list<Contact> {
  return for c in list(base) { update(base, c) }
}
EOF
"$FLOWC" build alias.flow -o alias >build.err 2>&1 || fail "build alias: $(cat build.err)"
./alias --base "$U" --no-journal >out10 2>err10 || fail "aliases: $(cat err10)"
[ "$(sed -n 1p out10)" = '{"id":"1","properties":{"email":"lead1@example.com","firstname":"Grace"}}' ] ||
    fail "aliases: $(sed -n 1p out10)"
[ "$(curl -s "$U/crm/v3/objects/contacts?limit=3" -H "Authorization: Bearer $TOKEN" |
     jq -c '[.results[].properties.company]')" = '["New Co","New Co","New Co"]' ] ||
    fail "aliases: the body's wire name"

# 11. the token is in no output
for f in out.* err.* out3 err3 err4b t4.jsonl err5 err6 out7 err7 err9 out10 err10 trace.jsonl t3.jsonl t7.jsonl crm.dry-run.jsonl; do
    grep -q "$TOKEN" "$f" && fail "the token is in $f"
done
for db in j.db d.db; do
    sqlite3 "$db" .dump | grep -q "$TOKEN" && fail "the token is in the journal $db"
done
echo ok
