#!/bin/sh
# approve_fanout.sh: approve() inside a parallel for, inside a pipeline
# stage and inside a plain (sequential) for, in a compiled workflow.  One waiting item must not stop the
# fan-out: the first run makes every item's agent call and queues every
# item's approval before it exits 3, so one `approve --all` and one --resume
# finish the run, paying for no call again.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >gate.flow <<'FLOW'
enum Team { eng, sales, ops }
schema Person { id: string  name: string  age: int  team: Team  nick: string? }
schema Badge { person_id: string  title: string len 1..40  level: int in 1..5 }

model m { provider: mock }
agent badge(p: Person) -> Badge { model: m  max_tokens: 200  prompt: "Badge for {{ p }}" }

workflow gate(people: string, piped: bool = false, seq: bool = false) -> list<string> {
  let rows = read_jsonl<Person>(people)
  if seq {
    let names = for p in rows {
      let b = badge(p)
      let ok = approve([p], "list {{ p.name }}?")
      if len(ok) == 0 { skip }
      p.name + "!"
    }
    return names
  }
  if piped {
    let out = pipeline for p in rows {
      stage make (concurrency: 2) { badge(p) }
      stage ask (concurrency: 1) {
        let ok = approve([p], "badge for {{ p.name }}?")
        if len(ok) == 0 { skip }
        p.id
      }
    }
    return out
  }
  let picked = parallel for p in rows (concurrency: 2) {
    let b = badge(p)
    let ok = approve([p], "invite {{ p.name }}?")
    if len(ok) == 0 { skip }
    p.name
  }
  return picked
}
FLOW
"$FLOWC" build gate.flow -o gate || fail "build"
P="$TOP/tests/exec/data/people.jsonl"

# check FLAGS WANT: one round of decisions finishes the run
check() {
    rm -f j.db
    ./gate --people "$P" --mock --journal j.db $1 >out1 2>err1
    st=$?
    [ $st -eq 3 ] || fail "$1: first run exited $st, expected 3: $(cat err1)"
    grep -q "^waiting for approval: 5 items wait; the first, item [0-4]: 1 item of '.*' waits for a decision" err1 ||
        fail "$1: waiting message: $(cat err1)"
    q=$(sqlite3 j.db "SELECT count(*) FROM approvals WHERE kind = 'approve' AND decision IS NULL")
    [ "$q" -eq 5 ] || fail "$1: $q of 5 approvals queued by the first run"
    c=$(sqlite3 j.db "SELECT count(*) FROM calls_all WHERE output IS NOT NULL")
    [ "$c" -eq 5 ] || fail "$1: $c of 5 calls made by the first run"
    run=$(sqlite3 j.db "SELECT id FROM runs")
    ./gate approve "$run" --all --journal j.db >/dev/null || fail "$1: approve --all"
    ./gate --people "$P" --mock --journal j.db $1 --resume >out2 2>err2 ||
        fail "$1: the resume after one round of decisions exited $?: $(cat err2)"
    [ "$(tr '\n' ' ' <out2)" = "$2" ] || fail "$1: output '$(tr '\n' ' ' <out2)', expected '$2'"
    c=$(sqlite3 j.db "SELECT count(*) FROM calls_all")
    [ "$c" -eq 5 ] || fail "$1: the resume made calls again ($c journaled)"
}
check "" '"Ada" "Bob" "Cy" "Di" "Ed" '
check "--piped" '"p1" "p2" "p3" "p4" "p5" '
check "--seq" '"Ada!" "Bob!" "Cy!" "Di!" "Ed!" '
echo ok
