#!/bin/sh
# build_escalate.sh: escalate(x, why) in a plain for and in a parallel for
# writes the item to <workflow>.review.jsonl in the working directory, drops
# it from the result, and the run summary points at the file.  (A script, so
# that the review file lands in the scratch directory.)
: "${TOP:?}" "${FLOWC:?}"
cat >esc.flow <<'FLOW'
enum Team { eng, sales, ops }
schema Person { id: string  name: string  age: int  team: Team  nick: string? }
schema Kept { ids: list<string>  names: list<string> }

workflow esc(people: string) -> Kept {
  let rows = read_jsonl<Person>(people)
  let a = for p in rows {
    if p.age < 18 { escalate(p, "{{ p.name }} is a minor") }
    p.id
  }
  let b = parallel for p in rows (concurrency: 2) {
    if p.team == Team.ops { escalate(p, "ops people are reviewed by hand") }
    p.name
  }
  return Kept { ids: a, names: b }
}
FLOW
"$FLOWC" build esc.flow -o esc || exit 1
bad=0
./esc --people "$TOP/tests/exec/data/people.jsonl" --no-journal >out 2>err
st=$?
[ $st -eq 0 ] || { echo "FAIL: exit status $st"; sed 's/^/    /' err; exit 1; }
echo '{"ids":["p1","p3","p4","p5"],"names":["Ada","Bob","Cy","Ed"]}' >want
cmp -s want out || { echo "FAIL: stdout differs"; cat out; bad=1; }
grep -qF "2 items escalated for review: see esc.review.jsonl" err ||
    { echo "FAIL: the summary does not point at the review file"; sed 's/^/    /' err; bad=1; }
[ "$(wc -l <esc.review.jsonl)" -eq 2 ] || { echo "FAIL: review file"; cat esc.review.jsonl; bad=1; }
grep -qF '"item":{"id":"p2","name":"Bob","age":17,"team":"sales","nick":"Bobby"},"why":"Bob is a minor","where":"esc.flow:8:21"' esc.review.jsonl ||
    { echo "FAIL: the plain for's escalation"; bad=1; }
grep -qF '"why":"ops people are reviewed by hand","where":"esc.flow:12:29"' esc.review.jsonl ||
    { echo "FAIL: the parallel for's escalation"; bad=1; }
exit $bad
