#!/bin/sh
# budget_time_resume.sh: a resumed run's time budgets count the time its
# earlier processes spent (the workflow's from runs.active_ms, a phase's from
# phase_time), and so must the stop message: the run stops because the cap
# is reached, so the elapsed time it reports is never less than the cap,
# even when this process ran only a moment.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >slow.flow <<'FLOW'
enum Team { eng, sales, ops }
schema Person { id: string  name: string  age: int  team: Team  nick: string? }
schema Badge { person_id: string  title: string len 1..40  level: int in 1..5 }

model m { provider: mock }
agent badge(p: Person) -> Badge { model: m  max_tokens: 200  prompt: "Badge for {{ p }}" }

workflow slow(people: string) -> list<Badge> {
  budget { time: 1s }
  let rows = read_jsonl<Person>(people)
  return for p in rows { badge(p) }
}
FLOW
"$FLOWC" build slow.flow -o slow || fail "build"
F="--people $TOP/tests/exec/data/people.jsonl --mock --mock-latency 400 --journal j.db"
# elapsed FILE: "X Y" from "... time budget: X s of Y s elapsed"
elapsed() { sed -n "s/^error: stopped by the workflow's time budget: \([0-9.]*\) s of \([0-9.]*\) s elapsed.*/\1 \2/p" "$1"; }
./slow $F >out1 2>err1
[ $? -eq 4 ] || fail "first run: expected exit 4: $(cat err1)"
e=$(elapsed err1)
[ -n "$e" ] || fail "first run's stop message: $(cat err1)"
./slow $F --resume >out2 2>err2
[ $? -eq 4 ] || fail "resume: expected exit 4: $(cat err2)"
e=$(elapsed err2)
[ -n "$e" ] || fail "resume's stop message: $(cat err2)"
echo "$e" | awk '{ exit !($1 >= $2) }' || fail "resume says '$e': less than the cap, yet the cap stopped it"

# a phase's cap: the first process spends it on 3 or 4 of 5 calls (300 ms
# each); the ones left would fit in a fresh second, but the phase has none
F="--people $TOP/tests/exec/data/people.jsonl --mock --mock-latency 300 --journal j.db"
sed -e 's/^  budget { time: 1s }$//' -e 's/^  return for p in rows { badge(p) }$/  phase work {\
    budget { time: 1s }\
    let out = for p in rows { badge(p) }\
  }\
  return out/' slow.flow >phased.flow
"$FLOWC" build phased.flow -o phased || fail "build phased"
rm -f j.db*
pe() { sed -n "s/^error: stopped by phase 'work' time budget: \([0-9.]*\) s of \([0-9.]*\) s elapsed.*/\1 \2/p" "$1"; }
./phased $F >out3 2>err3
[ $? -eq 4 ] || fail "phased first run: expected exit 4: $(cat err3)"
[ -n "$(pe err3)" ] || fail "phased first run's stop message: $(cat err3)"
./phased $F --resume >out4 2>err4
st=$?
[ $st -eq 4 ] || fail "phased resume exited $st, expected 4: the phase's cap started afresh: $(cat err4)"
p=$(pe err4)
echo "$p" | awk 'NF == 2 && $1 >= $2 { ok = 1 } END { exit !ok }' || fail "phased resume says '$p': $(cat err4)"
echo "ok: $e; phase $p"
