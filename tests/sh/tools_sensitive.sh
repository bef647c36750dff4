# tools_sensitive.sh: a tool loop whose agent gets @sensitive values, on both
# wires against the fake model and the fake CRM.  The model copies the
# values into its tool calls' arguments; one call is a write whose result
# echoes a value back, one a read of an unknown id whose 404 quotes it
# (percent-encoded, in the URL).  With --trace-content, `show` prints each
# turn of the loop (the attempts, the model's calls with their arguments,
# each result or tool error, the answer), and no output of the run holds a
# value in clear: stdout, stderr, the trace, the journal (dumped whole with
# sqlite3, its -wal too), `show`.  Then a run killed in the middle of a
# loop whose finished tool calls had sensitive arguments: the resume
# replays them from the journal (the turn and the results hashed there,
# put back from the input), makes again only the call the kill caught,
# and sends the model the values, not their hashes.
. "$TOP/tests/fake/lib.sh"
case "$FLOWC" in
    */build/asan/flowc) CT="$TOP/build/asan/tools" ;;
    *) CT="$TOP/build/tools" ;;
esac
[ -x "$CT/fakecrm" ] || CT="$TOP/build/tools"
command -v jq >/dev/null || { echo "no jq"; exit 77; }
command -v sqlite3 >/dev/null || { echo "no sqlite3"; exit 77; }
command -v curl >/dev/null || { echo "no curl"; exit 77; }
crm=
run=
trap 'stop_server; [ -n "$crm" ] && kill $crm 2>/dev/null; [ -n "$run" ] && kill -9 $run 2>/dev/null' EXIT

# start_crm [flags]: a fresh fake CRM, tl built against it
start_crm() {
    [ -n "$crm" ] && kill $crm 2>/dev/null && wait $crm 2>/dev/null
    rm -f crmport
    "$CT/fakecrm" --port-file crmport --contacts 20 --log crm.log "$@" >/dev/null 2>crm.err &
    crm=$!
    i=0
    while [ ! -s crmport ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s crmport ] || die "fakecrm did not start: $(cat crm.err)"
    U="http://127.0.0.1:$(cat crmport)"
    sed "s/CRMPORT/$(cat crmport)/" "$TOP/tests/data/tools_sensitive.flow" >ts.flow
    "$FLOWC" build ts.flow -o ts >build.err 2>&1 || die "build: $(cat build.err)"
}
reads() { curl -s "$U/_stats" | jq .reads; }

# the values: none may leave the run but in its requests to the model and the CRM
A_MAIL=ada.secret@example.org
A_TEL=+1-555-0100-77
B_MAIL=bob.hidden@example.net
B_TEL=+44-20-7946-0958
NOTES=met-at-the-2026-trade-fair-in-lyon-prefers-calls-after-six-pm-her-assistant-handles-the-calendar-and-the-budget-is-signed-off-by-the-cfo-in-march
VALUES="$A_MAIL ada.secret%40example.org $A_TEL %2B1-555-0100-77 $B_MAIL bob.hidden%40example.net $B_TEL $NOTES"
# lead NAME MAIL TEL: one lead whose model calls get_contact("1"),
# set_email("2", MAIL), get_contact(MAIL) (a 404), set_email("3", TEL) at once
lead() {
    printf '{"name":"%s","email":"%s","phone":"%s","notes":"'$NOTES'","rule":"[[fake:tools calls=4 args={\\"id\\":\\"1\\"}{\\"id\\":\\"2\\",\\"email\\":\\"%s\\"}{\\"id\\":\\"%s\\"}{\\"id\\":\\"3\\",\\"email\\":\\"%s\\"}]]"}\n' \
        "$1" "$2" "$3" "$2" "$2" "$3"
}
{ lead Ada $A_MAIL $A_TEL; lead Bob $B_MAIL $B_TEL; } >leads.jsonl
# none FILES...: no value in clear in any of them
none() {
    for v in $VALUES; do
        for f in "$@"; do
            ! grep -qaF -- "$v" "$f" || die "$wire: '$v' is in $f: $(grep -aF -- "$v" "$f" | head -c 600)"
        done
    done
}

for wire in anthropic openai; do
    flag=$([ $wire = openai ] && echo --openai)
    rm -rf bodies .flow && mkdir bodies
    start_crm
    start_server --key "$KEY" --dump bodies
    ./ts $flag --trace-content --trace t.jsonl >out 2>err || die "$wire: $(cat err)"
    [ "$(wc -l <out)" = 2 ] || die "$wire: the result: $(cat out)"
    want_requests 4 '"status":200'
    # the values did reach the model and the CRM (so their absence below means something)
    grep -qF "$A_MAIL" bodies/* || die "$wire: the email is in no request"
    grep -q '"properties":{"email":"ada.secret@example.org"' crm.log 2>/dev/null ||
        grep -qF 'contacts/ada.secret%40example.org' crm.log || die "$wire: the CRM: $(cat crm.log)"
    ./ts show last >show 2>show.err || die "$wire: show: $(cat show.err)"
    ./ts show last --agent research --item 0 >show0 2>show.err || die "$wire: show --item: $(cat show.err)"
    ./ts show last --agent set_email >showset 2>show.err || die "$wire: show --agent: $(cat show.err)"
    run_id=$(sqlite3 .flow/tools_sensitive.db "SELECT id FROM runs")
    ./ts show "$run_id" --item 1 >show1 2>show.err || die "$wire: show RUN: $(cat show.err)"
    sqlite3 .flow/tools_sensitive.db .dump >dump.sql
    none out err t.jsonl show show0 show1 showset dump.sql .flow/tools_sensitive.db
    [ -e .flow/tools_sensitive.db-wal ] && none .flow/tools_sensitive.db-wal
    # the journal keeps marks where the values were: in the turns' arguments,
    # the results (the write's echo, the 404's URL) and the write's own answer
    for k in '#t0' '#r0'; do
        [ "$(sqlite3 .flow/tools_sensitive.db "SELECT count(*) FROM calls_all WHERE key LIKE '%$k'
             AND output LIKE '%[sensitive sha256:%'")" = 2 ] || die "$wire: $k rows: $(grep "$k" dump.sql)"
    done
    # show: the loop of item 0, turn by turn
    id1=$([ $wire = openai ] && echo call_ || echo toolu_)
    has "call research item 0, phase go, model " show0
    has "after 2 attempts in a tool loop of 4 tool calls" show0
    has "  prompt:
    Research Ada <[redacted]>, [redacted] ([redacted])." show0
    has "  turn 0: the prompt sent
    attempt 1: tool_calls, HTTP 200, finish tool" show0
    has "    tool call 1: get_contact (id ${id1}" show0
    has '      arguments: {"id":"1"}' show0
    has '      arguments: {"id":"2","email":"[sensitive sha256:' show0
    has '      arguments: {"id":"[sensitive sha256:' show0
    has '        {"id":"1","properties":{"email":"lead1@example.com"' show0
    has "      tool error (failed), " show0
    has "        http operation 'get_contact': HTTP 404 from GET http://127.0.0.1:$(cat crmport)/crm/v3/objects/contacts/[sensitive sha256:" show0
    # the same value, the same mark: the email the write was given is the one it echoed
    mark=$(grep -o '"email":"\[sensitive sha256:[0-9a-f]*\]"' show0 | sort | uniq -c | sort -rn | head -1)
    case "$mark" in *' 2 "email"'*|*' 2 '*) ;; *) die "$wire: the marks: $mark" ;; esac
    has "  turn 1: the prompt, the model's 1 turn and its tools' results, tools off (the bound is reached: answer now)
    attempt 2: answer, HTTP 200" show0
    has "  answer:" show0
    ! grep -qE '^(call research item 1|http )' show0 || die "$wire: show --item 0: $(cat show0)"
    has "call research item 1" show1
    # the tool calls' own entries say whose they are
    has "http set_email item 0, phase go, an http request, ok after 1 attempt" showset
    has "  made as tool call 2 of research's turn 0 (its loop's call research/" showset
    ! grep -q '^call research' showset || die "$wire: show --agent set_email: $(cat showset)"
    # the order of show: each loop's call before its tools' own calls
    [ "$(grep -c '^call research' show)" = 2 ] && [ "$(grep -c '^http ' show)" = 8 ] ||
        die "$wire: show's calls: $(grep -E '^(call|http) ' show)"
    stop_server
done

# killed in the second turn of a loop whose first turn's two reads had the
# email as an argument (one by id "1", one by the email: a 404); the
# second turn's two reads, the fourth read of the run made slow
printf '{"name":"Ada","email":"%s","phone":"%s","notes":"'$NOTES'","rule":"[[fake:tools calls=2 rounds=2 tool=get_contact args={\\"id\\":\\"%s\\"}{\\"id\\":\\"1\\"}{\\"id\\":\\"2\\"}{\\"id\\":\\"3\\"}]]"}\n' \
    "$A_MAIL" "$A_TEL" "$A_MAIL" >leads.jsonl
for wire in anthropic openai; do
    flag=$([ $wire = openai ] && echo --openai)
    rm -rf bodies .flow ref.db* && mkdir bodies
    start_crm
    start_server --key "$KEY"
    ./ts $flag --journal ref.db >ref.out 2>ref.err || die "$wire: reference run: $(cat ref.err)"
    printf 'read 4 slow 20000\n' >crm.script
    start_crm --script crm.script
    start_server --key "$KEY" --dump bodies
    ./ts $flag --journal kill.db --trace-content --trace t1.jsonl >out1 2>err1 &
    run=$!
    i=0
    while { [ "$(reads)" != 4 ] || [ "$(wc -l <crm.log)" -lt 3 ]; } && [ $i -lt 400 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    [ "$(reads)" = 4 ] || die "$wire: the four reads did not arrive: $(cat err1)"
    kill -9 $run
    wait $run 2>/dev/null
    run=
    want_requests 2
    ./ts show last --journal kill.db >showk 2>showk.err || die "$wire: show of the killed run: $(cat showk.err)"
    model=$([ $wire = openai ] && echo gpt-5.5-mini || echo claude-haiku-5-5)
    has "call research item 0, phase go, model $model, unfinished after 2 attempts in a tool loop of 4 tool calls" showk
    has "  turn 1: the prompt, the model's 1 turn and its tools' results sent" showk
    has "    attempt 2: tool_calls" showk
    has "  answer: (none journaled: the run stopped in the loop" showk
    ./ts $flag --journal kill.db --resume --trace-content --trace t2.jsonl >out2 2>err2 ||
        die "$wire: resume: $(cat err2)"
    cmp -s out2 ref.out || die "$wire: the resumed answer differs: $(cat out2) vs $(cat ref.out)"
    # one request more (the answer), the slow read made again, no other
    want_requests 3
    [ "$(reads)" = 5 ] || die "$wire: $(reads) reads: finished ones were made again"
    [ "$(grep -c 'contacts/ada.secret%40example.org' crm.log)" = 1 ] || die "$wire: the read by email: $(cat crm.log)"
    # the model got the values back, not their hashes
    last=$(ls bodies | sort -n | tail -1)
    grep -qF "$A_MAIL" "bodies/$last" || die "$wire: the history lost the email: $(cat "bodies/$last")"
    hasnt "[sensitive sha256:" "bodies/$last"
    ./ts show last --journal kill.db >show2 2>show.err || die "$wire: show: $(cat show.err)"
    has "after 3 attempts in a tool loop of 4 tool calls" show2
    has "  turn 2: the prompt, the model's 2 turns and their tools' results, tools off (the bound is reached: answer now)
    attempt 3: answer" show2
    sqlite3 kill.db .dump >dump.sql
    none out1 err1 out2 err2 t1.jsonl t2.jsonl showk show2 dump.sql kill.db
    stop_server
done
finish
