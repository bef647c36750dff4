#!/bin/sh
# skipped_retry.sh: items an `on_error: skip` fan-out drops after errors go
# to <workflow>.skipped.jsonl (run, item path, the input file and line, the
# item, the error); skipped after transient errors, they end the run with
# exit 5, unfinished; `--resume --retry-skipped` runs the run again,
# answering the other items from the journal, so only the skipped items'
# calls are made; then there is nothing left to retry.  A blank line in the
# input keeps the line numbers honest.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >sk.flow <<'FLOW'
schema In { id: int  name: string }
schema Out { word: string  score: int in 0..9 }
model m { provider: mock }
agent rate(x: In) -> Out { model: m  retries: 0  prompt: "Rate {{ x }}" }
workflow sk(input: string) -> list<string> {
  let xs = read_jsonl<In>(input)
  let ys = parallel for x in xs (concurrency: 4, on_error: skip) {
    let r = rate(x)
    "{{ x.id }}={{ r.word }}"
  }
  return ys
}
FLOW
"$FLOWC" build sk.flow -o sk || fail "build"
{ echo '{"id": 0, "name": "n0"}'; echo; i=1
  while [ $i -lt 16 ]; do echo "{\"id\": $i, \"name\": \"n$i\"}"; i=$((i + 1)); done; } >in.jsonl

# the first run: the mock fails half the first attempts (deterministically);
# those are transient failures (503), so the run ends with exit 5, unfinished
./sk --input in.jsonl --mock --mock-fail-rate 0.5 --journal j.db >out1 2>err1; st=$?
[ $st -eq 5 ] || fail "items skipped after transient errors: exit $st: $(cat err1)"
n=$(wc -l <sk.skipped.jsonl)
[ "$n" -gt 0 ] && [ "$n" -lt 16 ] || fail "$n items in the skipped file: $(cat err1)"
[ $(( n + $(wc -l <out1) )) -eq 16 ] || fail "$n skipped and $(wc -l <out1) done of 16"
grep -q "$n items\{0,1\} skipped after errors (on_error: skip): see sk.skipped.jsonl; retry" err1 ||
    fail "summary: $(cat err1)"
run=$(sqlite3 j.db "SELECT id FROM runs")
grep -qF -- "retry them with \`./sk --resume $run\`" err1 || fail "no retry command in: $(cat err1)"
[ "$(sqlite3 j.db "SELECT status FROM runs")" = skipped ] || fail "status: $(sqlite3 j.db "SELECT status FROM runs")"
# each line: the run, the item's path, the line it came from, the item, the error
jq --arg run "$run" 'select(.run != $run or (.item | test("^[0-9]+$") | not)
        or .file != "in.jsonl" or .line != (if .input.id == 0 then 1 else .input.id + 2 end)
        or (.item | tonumber) != .input.id or (.error | test("mock failure")) == false
        or (.fanout | test("sk.flow:7:")) == false)' sk.skipped.jsonl >bad && [ ! -s bad ] ||
    fail "bad lines in the skipped file: $(head -3 bad)"

# --retry-skipped needs --resume
./sk --input in.jsonl --mock --journal j.db --retry-skipped >out 2>err; st=$?
[ $st -eq 2 ] && grep -q "goes with --resume" err || fail "--retry-skipped alone: $st $(cat err)"

# retry: only the skipped items are called again
./sk --input in.jsonl --mock --journal j.db --resume --retry-skipped >out2 2>err2 ||
    fail "retry: $(cat err2)"
[ "$(wc -l <out2)" -eq 16 ] || fail "retry: $(wc -l <out2) results"
grep -q "$((16 - n)) calls answered from the journal" err2 || fail "retry paid again: $(cat err2)"
[ ! -s sk.skipped.jsonl ] || fail "the skipped file still has $(wc -l <sk.skipped.jsonl) lines"
[ "$(sqlite3 j.db "SELECT status || ' ' || skipped FROM runs")" = "done 0" ] ||
    fail "the run is $(sqlite3 j.db "SELECT status, skipped FROM runs")"
# a fresh run in one process gives the same output
./sk --input in.jsonl --mock --no-journal >ref 2>/dev/null || fail "reference run"
diff ref out2 >/dev/null || fail "output after the retry differs: $(diff ref out2 | head -5)"

./sk --input in.jsonl --mock --journal j.db --resume --retry-skipped >out 2>err; st=$?
[ $st -eq 2 ] && grep -q "no unfinished run and no run with skipped items" err ||
    fail "nothing to retry: $st $(cat err)"
# a plain resume of the finished run is refused
./sk --input in.jsonl --mock --journal j.db --resume "$run" >out 2>err; st=$?
[ $st -eq 2 ] && grep -q "already finished" err || fail "resume of a finished run: $st $(cat err)"
./sk --input in.jsonl --mock --journal j.db --resume "$run" --retry-skipped >out 2>err; st=$?
[ $st -eq 2 ] && grep -q "finished with no item skipped; there is nothing to retry" err ||
    fail "nothing to retry ($run): $st $(cat err)"
echo "ok: $n skipped, then retried"
