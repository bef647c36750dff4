#!/bin/sh
# journal_full.sh: the disk that holds the journal fills up mid-run.  The run
# stops at once (no call starts after the failed write; only the calls in
# flight finish), exits 1 with the journal's error and how to finish it,
# and keeps what it journaled; once there is space, --resume pays only for
# the rest: over both runs, at most the calls that were in flight are paid
# twice, and the output is the uninterrupted run's.  (The run used to warn
# once, go on unjournaled and exit 0, and --resume paid for all 400 calls
# again.)  Answers are journaled in batches: the answers of the batch the disk
# refused are paid for again too, and the help line counts them.  As root the journal goes on a 200 KB tmpfs; elsewhere (or where
# mounting is not allowed) on an injected full disk: FLOWRT_TEST_DISK_FULL
# makes the journal's writes fail with SQLITE_FULL past 200 KB.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >full.flow <<'FLOW'
schema In { id: int }
schema Out { id: int  text: string len 100..200 }
model m { provider: mock }
agent a(x: In) -> Out { model: m  max_tokens: 400  prompt: "describe {{ x }}" }
workflow full(file: string = "in.jsonl") -> list<Out> {
  let xs = read_jsonl<In>(file)
  return parallel for x in xs (concurrency: 4) { a(x) }
}
FLOW
i=0; while [ $i -lt 400 ]; do echo "{\"id\": $i}"; i=$((i + 1)); done >in.jsonl
"$FLOWC" build full.flow -o full >build.err 2>&1 || fail "build: $(cat build.err)"
./full --mock --no-journal >ref 2>/dev/null || fail "reference run"
mkdir j
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=200k tmpfs j 2>/dev/null; then
    method=tmpfs
    trap 'umount j 2>/dev/null' EXIT
else
    method=injected
    FLOWRT_TEST_DISK_FULL=204800
    export FLOWRT_TEST_DISK_FULL
fi
echo "full disk: $method"
./full --mock --mock-latency 2 --journal j/full.db --trace t.jsonl >out 2>err; st=$?
[ $st = 1 ] || fail "exit $st on a full disk: $(cat err)"
grep -q "journal j/full.db cannot be written (database or disk is full): the run stops, and no call starts after that" err ||
    fail "no error: $(cat err)"
grep -q "^help: what was journaled is kept ([0-9]* answers of this run\(; the [0-9]* that came after the failed write, and the calls in flight, are paid for again\)\{0,1\}): once the journal can be written again (free some space), \`./full --resume [0-9a-f-]*\` finishes the run" err ||
    fail "no help: $(cat err)"
kept=$(sed -n 's/^help: what was journaled is kept (\([0-9]*\) answers.*/\1/p' err)
# answers are journaled in batches by a writer thread: those of the batch the
# disk refused were paid for but not journaled, as the calls in flight were
lost=$(sed -n 's/^help: .*; the \([0-9]*\) that came after the failed write.*/\1/p' err)
made=$(grep -c '"cached":false' t.jsonl)
[ "$kept" -gt 0 ] && [ "$kept" -lt 400 ] || fail "$kept answers kept"
[ "$made" -le $((kept + ${lost:-0} + 4)) ] ||
    fail "$made calls made, $kept journaled, ${lost:-0} lost: calls started after the failed write"

# space again
if [ $method = tmpfs ]; then mount -o remount,size=16m j || fail "remount"; else unset FLOWRT_TEST_DISK_FULL; fi
./full --mock --journal j/full.db --trace t.jsonl --resume >out 2>err || fail "resume: $(cat err)"
grep -q "$kept calls answered from the journal" err || fail "resume: $(cat err)"
cmp -s out ref || fail "the resumed output differs from an uninterrupted run's"
paid=$(grep -c '"cached":false' t.jsonl)
[ "$paid" -le $((404 + ${lost:-0})) ] || fail "$paid calls paid for 400 items (${lost:-0} lost)"
echo "ok ($method: $kept journaled, $made made before the stop, $paid paid in all)"
