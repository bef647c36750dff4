#!/bin/sh
# budget_partial_resume.sh: the partial file of a budget-stopped run always
# holds everything finished so far.  Resumed with the same budget, the run
# stops again at once, and its fan-out's other items still come from the
# journal, so the file keeps all of them (it used to shrink to the few this
# process reached before the stop: 24 to 12 here); the resume that finishes
# the run removes the file, and says so.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >bud.flow <<'FLOW'
schema In { id: int }
schema Out { id: int  word: string len 1..20 }
model m { provider: mock  usd_per_mtok_in: 100  usd_per_mtok_out: 100 }
agent f(x: In) -> Out { model: m  max_tokens: 100  prompt: "rate {{ x }}" }
workflow bud(file: string = "in.jsonl") -> list<Out> {
  budget { usd: 0.2 }
  phase p {
    let xs = read_jsonl<In>(file)
    let ys = parallel for x in xs (concurrency: 4) { f(x) }
    return ys
  }
}
FLOW
i=1; while [ $i -le 60 ]; do echo "{\"id\": $i}"; i=$((i + 1)); done >in.jsonl
"$FLOWC" build bud.flow -o bud >build.err 2>&1 || fail "build: $(cat build.err)"
./bud --mock >out 2>err; st=$?
[ $st = 4 ] || fail "first run: exit $st: $(cat err)"
n1=$(wc -l <bud.partial.jsonl)
[ "$n1" -gt 0 ] && [ "$n1" -lt 60 ] || fail "first partial file: $n1 items"
sort bud.partial.jsonl >first
./bud --mock --resume >out 2>err; st=$?
[ $st = 4 ] || fail "resume with the same budget: exit $st: $(cat err)"
grep -q "finished: $n1 items of the interrupted fan-out, written to bud.partial.jsonl" err ||
    fail "second stop: $(cat err)"
sort bud.partial.jsonl | cmp -s - first || fail "the partial file changed: $(wc -l <bud.partial.jsonl) items, was $n1"
./bud --mock --resume --budget-usd 1 >out 2>err || fail "resume with a larger budget: $(cat err)"
[ "$(wc -l <out)" = 60 ] || fail "the finished run returned $(wc -l <out) items"
[ ! -e bud.partial.jsonl ] || fail "the partial file outlived the run"
grep -q "^bud.partial.jsonl removed: the run it was written for is finished" err || fail "$(cat err)"
echo ok
