#!/bin/sh
# budget_time_resume.sh: a resumed run's time budget counts the time its
# earlier processes spent (fr_journal), and so must the stop message: the
# run stops because the cap is reached, so the elapsed time it reports is
# never less than the cap, even when this process ran only a moment.
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
echo "ok: $e"
