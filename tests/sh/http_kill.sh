#!/bin/sh
# http_kill.sh: exactly once.  A run that writes 40 contacts back to the
# fake CRM (4 at once, each write 80 ms on the server, half of it after the
# write is applied) is killed with SIGKILL at seeded random moments and
# resumed each time until it finishes (80 contacts, 4 at once: some 1.6 s of
# writes; kills land 50..350 ms into each run).  Then every contact was applied
# exactly once, none is lost (the last run returns all of them), each write had
# one idempotency key however often it was sent, and writes a kill left in
# flight were sent again with their key and answered from the server's
# saved outcome (Idempotent-Replayed) instead of being applied twice.
#
# First, deterministically: a run is killed while the server holds back the
# answer to a write it has applied; the resume must report that write's
# outcome as unknown, send it again with its key, and get the saved answer.
#
# HTTP_KILLS sets the number of kills (default 10), HTTP_SEED the seed of
# the moments (default 20261207).
case "$FLOWC" in
    */build/asan/flowc) T="$TOP/build/asan/tools" ;;
    *) T="$TOP/build/tools" ;;
esac
[ -x "$T/fakecrm" ] || T="$TOP/build/tools"
[ -x "$T/fakecrm" ] || { echo "no fakecrm (make all)"; exit 77; }
command -v jq >/dev/null && command -v curl >/dev/null || { echo "no jq or curl"; exit 77; }
command -v sqlite3 >/dev/null || { echo "no sqlite3"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
# idle URL: waits until the server has answered every keyed write it began
# (a killed client's write runs on there), so a resume is answered from the
# saved outcome, not with a 409 whose retries a loaded machine could outlast
idle() {
    j=0
    while [ "$(curl -s "$1/_stats" | jq .in_progress)" != 0 ] && [ $j -lt 500 ]; do
        sleep 0.02; j=$((j + 1))
    done
}
KILLS=${HTTP_KILLS:-10}
SEED=${HTTP_SEED:-20261207}
N=80
echo "seed $SEED, $KILLS kills"
export CRM_TOKEN=tok-kill-5d1e
rm -f port
"$T/fakecrm" --token "$CRM_TOKEN" --contacts $N --write-latency 80 --port-file port \
    --log crm.log >/dev/null 2>srv.err &
srv=$!
srv1=""
trap 'kill $srv $srv1 2>/dev/null' EXIT
i=0
while [ ! -s port ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -s port ] || fail "fakecrm did not start: $(cat srv.err)"
U="http://127.0.0.1:$(cat port)"
"$FLOWC" build "$TOP/tests/data/crm_ops.flow" -o crm >build.err 2>&1 || fail "build: $(cat build.err)"

# the deterministic kill: 4 contacts; the server applies a write and holds
# its answer back (--hold-writes) until the client is killed
"$T/fakecrm" --token "$CRM_TOKEN" --contacts 4 --hold-writes on --port-file port1 \
    --log crm1.log >/dev/null 2>srv1.err &
srv1=$!
i=0
while [ ! -s port1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
U1="http://127.0.0.1:$(cat port1)"
./crm --base "$U1" --journal one.db --retry-base-ms 200 --trace one.jsonl >one.out 2>one.err &
pid=$!
i=0
while [ "$(curl -s "$U1/_stats" | jq '.applied | length')" -eq 0 ] && [ $i -lt 1000 ]; do
    sleep 0.02; i=$((i + 1))
done
kill -9 $pid 2>/dev/null || fail "the run ended before a write was applied: $(cat one.err)"
wait $pid
curl -s "$U1/_release" >/dev/null
idle "$U1"
./crm --base "$U1" --journal one.db --retry-base-ms 200 --trace one.jsonl --resume \
    >one.out 2>one.err || fail "resume after the deterministic kill: $(cat one.err)"
[ "$(wc -l <one.out)" -eq 4 ] || fail "the resume returned $(wc -l <one.out) of 4 contacts"
s=$(curl -s "$U1/_stats")
[ "$(echo "$s" | jq '[.applied[] | select(. == 1)] | length')" -eq 4 ] ||
    fail "after the deterministic kill: $(echo "$s" | jq -c .applied)"
[ "$(jq -c 'select(.type == "http" and .outcome_unknown)' one.jsonl | wc -l)" -ge 1 ] ||
    fail "no write was resent with an unknown outcome"
grep -q '"action":"replayed"' crm1.log || fail "no write was answered from its saved outcome"
grep -q '^  push .* [1-4] .* 0 .* 0 ' one.err || fail "summary of the resume: $(cat one.err)"

FLAGS="--base $U --journal kill.db --retry-base-ms 20 --trace trace.jsonl"
awk -v s="$SEED" -v n="$KILLS" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%.3f\n", 0.05 + rand() * 0.3 }' >moments
kills=0
finished=0
run() {                            # one run in the background, resumed when one is unfinished
    resume=""
    if [ -f kill.db ] && [ "$(sqlite3 kill.db "SELECT count(*) FROM runs WHERE status <> 'done'")" -gt 0 ]; then
        resume="--resume"
    fi
    ./crm $FLAGS $resume >run.out 2>run.err &
    pid=$!
}
while read -r t; do
    run
    sleep "$t"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid
    st=$?
    if [ $st -eq 0 ]; then finished=1; break; fi
    [ $st -eq 137 ] || fail "run exited $st: $(cat run.err)"
    # killed after the run recorded its end (a busy machine is slow to exit):
    # its output was written before that, so the run is over
    if [ "$(sqlite3 kill.db "SELECT count(*) > 0 AND total(status <> 'done') = 0 FROM runs" 2>/dev/null)" = 1 ]; then
        finished=1; break
    fi
done <moments
if [ $finished = 0 ]; then
    run
    wait $pid || fail "the last resume: $(cat run.err)"
fi
unknown=$(jq -c 'select(.type == "http" and .outcome_unknown)' trace.jsonl | wc -l)
[ "$(wc -l <run.out)" -eq $N ] || fail "the last run returned $(wc -l <run.out) of $N contacts"
s=$(curl -s "$U/_stats")
[ "$(echo "$s" | jq '.applied | length')" -eq $N ] || fail "not every contact was applied: $s"
[ "$(echo "$s" | jq '[.applied[] | select(. != 1)] | length')" -eq 0 ] ||
    fail "a contact was applied more than once: $(echo "$s" | jq -c '.applied')"
[ "$(echo "$s" | jq '.keys | length')" -eq $N ] || fail "$(echo "$s" | jq '.keys | length') keys for $N writes"
[ "$(echo "$s" | jq '[.keys[] | select(.applied != 1)] | length')" -eq 0 ] || fail "a key applied twice"
sent=$(echo "$s" | jq '[.keys[].requests] | add')
replayed=$(grep -c '"action":"replayed"' crm.log)
conflicts=$(grep -c '"action":"key-in-progress"' crm.log)
echo "$kills kills; $N contacts applied once each; $sent write requests for $N keys;" \
     "$unknown resent with an unknown outcome; $replayed answered from the saved outcome," \
     "$conflicts while still in progress"
[ $kills -gt 0 ] || fail "no kill landed"
