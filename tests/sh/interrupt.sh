#!/bin/sh
# interrupt.sh: Ctrl-C and SIGTERM stop a run without losing what it paid
# for.  The first signal: no new item or call starts, the calls in flight
# finish and are journaled, the run ends "interrupted" with exit 130
# (SIGINT) or 143 (SIGTERM) and a line naming --resume; the resumed run
# answers those calls from the journal.  A second signal, or --grace 0,
# stops at once, saying how many calls in flight it abandoned.
#
# No assertion depends on timing: each signal is sent once the run is in
# the journal (the signals are taken from then on; one sent earlier waits)
# and a call of it is in flight (a token budget makes each call's hold a
# journal row before the call takes its slot),
# the second one once the first was acknowledged on stderr, and every
# count is checked against the journal, not against a clock.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
command -v sqlite3 >/dev/null || { echo "no sqlite3"; exit 77; }
cat >ir.flow <<'FLOW'
schema In { id: int }
schema Out { word: string }
model m { provider: mock }
agent say(x: In) -> Out { model: m  prompt: "Say {{ x.id }}" }
workflow ir(input: string) -> list<string> {
  phase first {
    let xs = read_jsonl<In>(input)
    let ys = parallel for x in xs (concurrency: 2) {
      let r = say(x)
      "{{ x.id }}={{ r.word }}"
    }
    return ys
  }
}
FLOW
"$FLOWC" build ir.flow -o ir || fail "build"
i=0; while [ $i -lt 12 ]; do echo "{\"id\": $i}"; i=$((i + 1)); done >in.jsonl

# waits (10 s at most) until journal $1 has a run; until file $1 has a line matching $2
wait_run() {
    n=0
    while [ "$(sqlite3 "$1" 'SELECT count(*) FROM runs' 2>/dev/null)" != 1 ]; do
        n=$((n + 1)); [ $n -lt 200 ] || fail "no run in $1 after 10 s"; sleep 0.05
    done
}
wait_line() {
    n=0
    while ! grep -q "$2" "$1"; do
        n=$((n + 1)); [ $n -lt 200 ] || fail "no '$2' in $1 after 10 s: $(cat "$1")"; sleep 0.05
    done
}
# waits (10 s at most) until journal $1 holds a call in flight
wait_held() {
    n=0
    while [ "$(sqlite3 "$1" "SELECT count(*) FROM calls_all WHERE status = 'held'" 2>/dev/null || echo 0)" -lt 1 ]; do
        n=$((n + 1)); [ $n -lt 200 ] || fail "no call in flight in $1 after 10 s"; sleep 0.05
    done
}
ok_calls() { sqlite3 "$1" "SELECT count(*) FROM calls_all WHERE status = 'ok'"; }

# 1. SIGINT: the calls in flight finish; exit 130; resume pays for none again
./ir --input in.jsonl --mock --mock-latency 600 --journal a.db --budget-tokens 1000000 >out1 2>err1 &
pid=$!
wait_run a.db
wait_held a.db
kill -INT $pid
wait $pid; st=$?
[ $st -eq 130 ] || fail "SIGINT: exit $st: $(cat err1)"
grep -q "^interrupted by SIGINT: phase 'first'" err1 || fail "no interrupted line: $(cat err1)"
run=$(sqlite3 a.db "SELECT id FROM runs")
grep -qF -- "\`./ir --resume $run\` finishes the run" err1 || fail "no resume command: $(cat err1)"
[ "$(sqlite3 a.db "SELECT status FROM runs")" = interrupted ] ||
    fail "status $(sqlite3 a.db "SELECT status FROM runs")"
[ -s out1 ] && fail "an interrupted run printed a result: $(cat out1)"
k=$(ok_calls a.db)
[ "$k" -lt 12 ] || fail "all 12 calls made after SIGINT: $(cat err1)"
./ir --input in.jsonl --mock --journal a.db --resume >out2 2>err2 || fail "resume: $(cat err2)"
[ "$(wc -l <out2)" -eq 12 ] || fail "resumed: $(wc -l <out2) items"
grep -q "$k calls\{0,1\} answered from the journal" err2 || fail "$k answers journaled, resume: $(cat err2)"
[ "$(ok_calls a.db)" -eq 12 ] || fail "$(ok_calls a.db) answers after the resume"

# 2. SIGTERM twice: the second stops at once, the run stays resumable
./ir --input in.jsonl --mock --mock-latency 60000 --journal b.db --budget-tokens 1000000 >out1 2>err1 &
pid=$!
wait_run b.db
wait_held b.db
kill -TERM $pid
wait_line err1 "^interrupted by SIGTERM: no new item or call starts"
kill -TERM $pid
wait $pid; st=$?
[ $st -eq 143 ] || fail "SIGTERM twice: exit $st: $(cat err1)"
grep -q "^stopped at once (a second SIGTERM): [0-9]* calls\{0,1\} in flight abandoned" err1 ||
    fail "no stop line: $(cat err1)"
run=$(sqlite3 b.db "SELECT id FROM runs")
grep -qF -- "\`./ir --resume $run\` finishes the run" err1 || fail "no resume command: $(cat err1)"
./ir --input in.jsonl --mock --journal b.db --resume >out2 2>err2 || fail "resume: $(cat err2)"
[ "$(wc -l <out2)" -eq 12 ] || fail "resumed: $(wc -l <out2) items"

# 3. --grace 0: at once
./ir --input in.jsonl --mock --mock-latency 60000 --journal c.db --grace 0 >out1 2>err1 &
pid=$!
wait_run c.db
kill -INT $pid
wait $pid; st=$?
[ $st -eq 130 ] || fail "--grace 0: exit $st: $(cat err1)"
grep -q "^stopped at once (--grace 0)" err1 || fail "--grace 0: $(cat err1)"
./ir --input in.jsonl --mock --grace 3601 >/dev/null 2>err1 && fail "--grace 3601 accepted"
grep -q "grace: at most 3600 seconds" err1 || fail "--grace 3601: $(cat err1)"
exit 0
