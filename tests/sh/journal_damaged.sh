#!/bin/sh
# journal_damaged.sh: a journal with a page of garbage in the middle (as a
# disk error or a bad copy leaves it) is detected when it is opened
# (PRAGMA quick_check): --resume, a fresh run, runs and review each refuse it
# with exit 1, saying it is damaged and how to go on, and never write to it
# (the file is byte for byte the same after); the answers still readable
# are exported to <journal>.recovered.jsonl.  It used to give "error: out of
# memory" on --resume, an empty `runs` with exit 0, and a fresh run wrote
# into it.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >dmg.flow <<'FLOW'
schema In { id: int }
schema Out { id: int  text: string len 100..200 }
model m { provider: mock }
agent a(x: In) -> Out { model: m  max_tokens: 400  prompt: "describe {{ x }}" }
workflow dmg(file: string = "in.jsonl") -> list<Out> {
  let xs = read_jsonl<In>(file)
  return parallel for x in xs (concurrency: 4) { a(x) }
}
FLOW
i=0; while [ $i -lt 300 ]; do echo "{\"id\": $i}"; i=$((i + 1)); done >in.jsonl
"$FLOWC" build dmg.flow -o dmg >build.err 2>&1 || fail "build: $(cat build.err)"
./dmg --mock >out 2>err || fail "first run: $(cat err)"
db=.flow/dmg.db
[ ! -e $db-wal ] || [ ! -s $db-wal ] || fail "the WAL was not checkpointed"
pages=$(($(wc -c <$db) / 4096))
[ $pages -ge 12 ] || fail "the journal has $pages pages only"
# a run that was interrupted, for --resume to find
sqlite3 $db "UPDATE runs SET status = 'running'" || fail "sqlite3"
yes garbage | head -c 4096 | dd of=$db bs=4096 seek=$((pages / 2)) conv=notrunc 2>/dev/null
sum=$(cksum <$db)

for cmd in "--mock --resume" "--mock" "runs" "review"; do
    # shellcheck disable=SC2086
    ./dmg $cmd >out 2>err; st=$?
    [ $st = 1 ] || fail "'$cmd' on the damaged journal: exit $st: $(cat err)"
    grep -q "^error: journal .flow/dmg.db is damaged (" err || fail "'$cmd': $(cat err)"
    grep -q "nothing more is written to it, and its runs cannot be resumed" err || fail "'$cmd': $(cat err)"
    grep -q "To start afresh, move it away with its -wal and -shm files" err || fail "'$cmd': $(cat err)"
    grep -q "out of memory" err && fail "'$cmd': $(cat err)"
    [ "$(cksum <$db)" = "$sum" ] || fail "'$cmd' wrote into the damaged journal"
    [ ! -e .flow/dmg.db-wal ] || [ ! -s .flow/dmg.db-wal ] || fail "'$cmd' wrote a WAL"
done
n=$(sed -n 's/.* The \([0-9]*\) answers it still holds were exported to .flow\/dmg.db.recovered.jsonl .*/\1/p' err)
[ -n "$n" ] || fail "no export: $(cat err)"
[ "$(wc -l <.flow/dmg.db.recovered.jsonl)" -eq "$n" ] || fail "the export has not $n lines"
[ "$n" -gt 0 ] && [ "$n" -le 300 ] || fail "$n answers exported"
command -v jq >/dev/null && { jq -e -s 'all(.run != null and .agent == "a" and (.output.text | length) >= 100)' \
    .flow/dmg.db.recovered.jsonl >/dev/null || fail "export lines: $(head -2 .flow/dmg.db.recovered.jsonl)"; }
# moved away, a fresh run starts a new journal
mv $db dmg.db.damaged
./dmg --mock >out 2>err || fail "after moving the journal away: $(cat err)"
echo ok
