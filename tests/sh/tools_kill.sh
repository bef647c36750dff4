# tools_kill.sh: a run killed (SIGKILL) in the middle of an agent's tool
# loop, then resumed: the model's turn that was made is not asked again, the
# tool calls that finished are not made again (the one the kill caught is),
# the loop goes on from there, and the answer is what an uninterrupted run
# gives.  On both wires: the model asks for three contacts at once; the fake
# CRM answers the third read to arrive only after 20 s; the run is killed
# once all three reads arrived and two were answered.  Then the same with
# Ctrl-C (SIGINT) instead of a kill, on the Anthropic wire.
. "$TOP/tests/fake/lib.sh"
case "$FLOWC" in
    */build/asan/flowc) CT="$TOP/build/asan/tools" ;;
    *) CT="$TOP/build/tools" ;;
esac
[ -x "$CT/fakecrm" ] || CT="$TOP/build/tools"
command -v jq >/dev/null || { echo "no jq"; exit 77; }
command -v curl >/dev/null || { echo "no curl"; exit 77; }
crm=
run=
trap 'stop_server; [ -n "$crm" ] && kill $crm 2>/dev/null; [ -n "$run" ] && kill -9 $run 2>/dev/null' EXIT

# start_crm [flags]: a fresh fake CRM, its URL in $U
start_crm() {
    [ -n "$crm" ] && kill $crm 2>/dev/null && wait $crm 2>/dev/null
    rm -f crmport
    "$CT/fakecrm" --port-file crmport --contacts 20 --log crm.log "$@" >/dev/null 2>crm.err &
    crm=$!
    i=0
    while [ ! -s crmport ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    [ -s crmport ] || die "fakecrm did not start: $(cat crm.err)"
    U="http://127.0.0.1:$(cat crmport)"
}
reads() { curl -s "$U/_stats" | jq .reads; }

echo '{"text":"three [[fake:tools calls=3 tool=get_contact args={\"id\":\"1\"}{\"id\":\"2\"}{\"id\":\"3\"}]]"}' >tasks.jsonl
printf 'read 3 slow 20000\n' >crm.script

for wire in anthropic openai; do
    flag=$([ $wire = openai ] && echo --openai)
    # the uninterrupted run, for its answer
    start_crm
    sed "s/CRMPORT/$(cat crmport)/" "$TOP/tests/data/tools_loop.flow" >tl.flow
    "$FLOWC" build tl.flow -o tl >build.err 2>&1 || die "build: $(cat build.err)"
    start_server --key "$KEY"
    ./tl $flag --journal ref.db >ref.out 2>ref.err || die "$wire: reference run: $(cat ref.err)"

    # killed while the slow read is out
    rm -f kill.db* crm.log t1.jsonl t2.jsonl
    start_crm --script crm.script
    sed "s/CRMPORT/$(cat crmport)/" "$TOP/tests/data/tools_loop.flow" >tl.flow
    "$FLOWC" build tl.flow -o tl >build.err 2>&1 || die "build: $(cat build.err)"
    start_server --key "$KEY"
    ./tl $flag --journal kill.db --trace t1.jsonl >out1 2>err1 &
    run=$!
    i=0
    while { [ "$(reads)" != 3 ] || [ "$(wc -l <crm.log)" -lt 2 ]; } && [ $i -lt 400 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    [ "$(reads)" = 3 ] || die "$wire: the three reads did not arrive: $(cat err1)"
    kill -9 $run
    wait $run 2>/dev/null
    run=
    [ "$(requests)" = 1 ] || die "$wire: the first turn: $(cat log)"
    # the resume: the turn from the journal, the two finished reads too,
    # the third read again, then the answer
    ./tl $flag --journal kill.db --resume --trace t2.jsonl >out2 2>err2 || die "$wire: resume: $(cat err2)"
    cmp -s out2 ref.out || die "$wire: the resumed answer differs: $(cat out2) vs $(cat ref.out)"
    want_requests 2
    [ "$(reads)" = 4 ] || die "$wire: $(reads) reads: the finished ones were made again"
    # one loop, one turn asked, three tool calls made (two answered by the
    # journal: the http table's cached), none failed, the bound reached; the
    # first turn's usage was recorded before the kill
    grep -qE '^  go +1 +1 +3 +0 +0 +1$' err2 && grep -qE '^  go +1 +2 +0 +0 +1 ' err2 ||
        die "$wire: the resumed summary: $(cat err2)"
    grep -qE '^resumed run .*: \$0\.[0-9]+, [1-9][0-9]* tokens and' err2 ||
        die "$wire: the killed run's first turn is not counted: $(cat err2)"
    # the trace: the first turn replayed (cached), two reads from the journal
    jq -s -e '[.[] | select(.type == "turn")] | map(.cached) == [true, false]' t2.jsonl >/dev/null ||
        die "$wire: turns: $(grep '"turn"' t2.jsonl)"
    jq -s -e '[.[] | select(.type == "http")] | map(.cached) | sort == [false, true, true]' t2.jsonl \
        >/dev/null || die "$wire: reads: $(grep '"http"' t2.jsonl)"
    stop_server
done

# Ctrl-C in the middle of the loop (--grace 1: the slow read is abandoned):
# exit 130, then the resume as after the kill: the turn and the two finished
# reads from the journal, the third read again
rm -f int.db* crm.log
start_crm --script crm.script
sed "s/CRMPORT/$(cat crmport)/" "$TOP/tests/data/tools_loop.flow" >tl.flow
"$FLOWC" build tl.flow -o tl >build.err 2>&1 || die "build: $(cat build.err)"
start_server --key "$KEY"
./tl --journal int.db --grace 1 >out1 2>err1 &
run=$!
i=0
while { [ "$(reads)" != 3 ] || [ "$(wc -l <crm.log)" -lt 2 ]; } && [ $i -lt 400 ]; do
    sleep 0.05
    i=$((i + 1))
done
[ "$(reads)" = 3 ] || die "Ctrl-C: the three reads did not arrive: $(cat err1)"
kill -INT $run
wait $run
st=$?
run=
[ $st = 130 ] || die "Ctrl-C: exit $st: $(cat err1)"
grep -q '1 call in flight abandoned' err1 || die "Ctrl-C: $(cat err1)"
./tl --journal int.db --resume >out2 2>err2 || die "Ctrl-C: resume: $(cat err2)"
cmp -s out2 ref.out || die "Ctrl-C: the resumed answer differs: $(cat out2) vs $(cat ref.out)"
want_requests 2
[ "$(reads)" = 4 ] || die "Ctrl-C: $(reads) reads: the finished ones were made again"
grep -qE '^  go +1 +1 +3 +0 +0 +1$' err2 || die "Ctrl-C: the resumed summary: $(cat err2)"
stop_server
finish
