#!/bin/sh
# summary_cached.sh: the run summary has a "cached" column per phase (calls
# the journal answered without a request) and its columns line up.  A run
# makes calls in phases 'score' and 'check', then waits for approval; after
# the decision the resume answers those calls from the journal (cached, not
# calls) and makes new ones only in phase 'tag'.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >sc.flow <<'FLOW'
enum Team { eng, sales, ops }
schema Person { id: string  name: string  age: int  team: Team  nick: string? }
schema Badge { person_id: string  title: string len 1..40  level: int in 1..5 }

model m { provider: mock }
agent badge(p: Person) -> Badge { model: m  max_tokens: 200  prompt: "Badge for {{ p }}" }
agent tag(p: Person) -> Badge { model: m  max_tokens: 200  prompt: "Tag for {{ p }}" }

workflow sc(people: string) -> list<Badge> {
  phase score {
    let rows = read_jsonl<Person>(people)
    let a = parallel for p in rows (concurrency: 2) { badge(p) }
  }
  phase check {
    let b = for p in rows where p.age >= 18 { badge(p) }
    let ok = approve(rows, "all of them?")
  }
  phase tag {
    let c = parallel for p in ok (concurrency: 2) { tag(p) }
  }
  return c
}
FLOW
"$FLOWC" build sc.flow -o sc || fail "build"
F="--people $TOP/tests/exec/data/people.jsonl --mock --journal j.db"
./sc $F >out1 2>err1
[ $? -eq 3 ] || fail "first run: expected exit 3: $(cat err1)"
./sc approve "$(sqlite3 j.db 'SELECT id FROM runs')" --all --journal j.db >/dev/null || fail "approve"
./sc $F --resume >out2 2>err2 || fail "resume: $(cat err2)"
# row NAME: "calls cached" of that row
row() { sed -n "s/^  $1  *\([0-9]*\)  *\([0-9]*\) .*/\1 \2/p" err2; }
[ "$(row score)" = "0 5" ] || fail "score row '$(row score)', expected 0 calls 5 cached: $(cat err2)"
[ "$(row check)" = "0 4" ] || fail "check row '$(row check)', expected 0 calls 4 cached: $(cat err2)"
[ "$(row tag)" = "5 0" ] || fail "tag row '$(row tag)', expected 5 calls 0 cached: $(cat err2)"
[ "$(row total)" = "5 9" ] || fail "total row '$(row total)', expected 5 calls 9 cached: $(cat err2)"
# every column's right edge in the header is the right edge of each row's value
sed -n '/^run summary:/,/^  total/p' err2 | sed 1d >table
awk 'NR == 1 {
         n = split("calls|cached|retries|failed|tokens in|tokens out|from cache|saved|usd|time", w, "|")
         for (i = 1; i <= n; i++) edge[i] = index($0, w[i]) + length(w[i]) - 1
         next
     }
     { for (i = 1; i <= n; i++) {
           c = substr($0, edge[i], 1); d = substr($0, edge[i] + 1, 1)
           if (c == " " || (d != " " && d != "")) { print "misaligned column " w[i] ": " $0; bad = 1 }
       } }
     END { exit bad }' table || fail "table: $(cat table)"
echo ok
