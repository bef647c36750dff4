#!/bin/sh
# stream_csv.sh: a pipeline from read_csv (or read_jsonl) into write_csv
# streams too (fr_stream_file with a CSV output): rows are written as their
# values come, in input order, for a schema of fixed fields (the header is
# known at the start) and for one that keeps other columns (the values wait
# in an unlinked spool beside the output until the last column is known).
# Either way the file is byte for byte the one the statements make when run
# as written (FLOWRT_NO_STREAM=1), the same items are skipped, an
# interrupted run leaves neither the output nor a temporary or spool file,
# and a value that cannot be a CSV cell fails the write as it would whole.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
command -v sqlite3 >/dev/null || { echo "no sqlite3"; exit 77; }
cat >sc.flow <<'FLOW'
schema Contact (extra: keep) { id: int  name: string @alias("First Name") }
schema Verdict { id: int  ok: bool  tags: list<string> }
model m { provider: mock }
agent check(c: Contact) -> Verdict { model: m  retries: 0  prompt: "Check {{ c.name }}" }
workflow sc(input: string, kept: string, verdicts: string) {
  phase keep {
    let xs = read_csv<Contact>(input)
    let ys = pipeline for x in xs (concurrency: 3, on_error: skip) {
      stage a { check(x) }
      stage b { x }
    }
    write_csv(ys, kept)
  }
  phase verdicts {
    let cs = read_csv<Contact>(input)
    let vs = pipeline for c in cs (concurrency: 4, on_error: skip) {
      stage a { check(c) }
    }
    write_csv(vs, verdicts)
  }
}
FLOW
"$FLOWC" build sc.flow -o sc || fail "build"
"$FLOWC" build sc.flow --emit-c sc.c || fail "emit"
[ "$(grep -c 'fr_stream_file(' sc.c)" = 2 ] || fail "not streamed: $(grep -n 'fr_pipeline\|fr_write_csv' sc.c)"
# a quoted header cell, quotes and separators in cells, a column the
# schema does not declare, and spaces at a cell's end
{ echo 'id,First Name,Email,"Note, long"'
  i=0; while [ $i -lt 250 ]; do
    echo "$i,n$i,e$i@x.com,\"a \"\"q\"\", $i \""; i=$((i + 1)); done; } >in.csv

for v in s w; do
    [ $v = w ] && export FLOWRT_NO_STREAM=1
    ./sc --input in.csv --kept kept.$v --verdicts verdicts.$v --mock --mock-fail-rate 0.3 \
        --no-journal --quiet >/dev/null 2>err.$v
    st=$?
    [ $st -eq 5 ] || fail "$v: exit $st: $(cat err.$v)"
    unset FLOWRT_NO_STREAM
    sed 's/"run":"[^"]*",//' sc.skipped.jsonl | sort >skipped.$v
done
cmp kept.s kept.w || fail "kept columns: streamed differs: $(diff kept.s kept.w | head -5)"
cmp verdicts.s verdicts.w || fail "verdicts: streamed differs: $(diff verdicts.s verdicts.w | head -5)"
cmp skipped.s skipped.w || fail "skipped files differ: $(diff skipped.s skipped.w | head -4)"
head -1 kept.s | grep -q '^id,First Name,Email,"Note, long"' || fail "kept header: $(head -1 kept.s)"
head -1 verdicts.s | grep -q '^id,ok,tags' || fail "verdicts header: $(head -1 verdicts.s)"
n=$(($(wc -l <kept.s) - 1)); k=$(wc -l <skipped.s)
[ "$n" -gt 100 ] && [ "$n" -lt 250 ] || fail "$n rows kept of 250"
[ "$k" -gt 0 ] || fail "no item skipped: the failures were not exercised"
ls | grep -q 'spool\|\.tmp\.' && fail "a temporary file was left: $(ls)"

# interrupted in the spooled phase: no output, no temporary file, no spool
./sc --input in.csv --kept kept.r --verdicts verdicts.r --mock --mock-latency 300 \
    --journal j.db --quiet >/dev/null 2>err &
pid=$!
n=0
while [ "$(sqlite3 j.db 'SELECT count(*) FROM calls_all' 2>/dev/null || echo 0)" -lt 3 ]; do
    n=$((n + 1)); [ $n -lt 300 ] || fail "no call journaled after 15 s"; sleep 0.05
done
kill -INT $pid; wait $pid; st=$?
[ $st -eq 130 ] || fail "interrupted: exit $st: $(cat err)"
[ -e kept.r ] && fail "an interrupted stream left its output"
ls | grep -q 'spool\|\.tmp\.' && fail "an interrupted stream left a temporary file: $(ls)"
./sc --input in.csv --kept kept.r --verdicts verdicts.r --mock --journal j.db --resume \
    >/dev/null 2>err || fail "resume: $(cat err)"
./sc --input in.csv --kept kept.n --verdicts verdicts.n --mock --no-journal --quiet \
    2>/dev/null || fail "plain run"
cmp kept.r kept.n || fail "resumed kept output differs"
cmp verdicts.r verdicts.n || fail "resumed verdicts differ"

# a value that cannot be a cell (a list item holding ';') fails as it would whole
cat >bad.flow <<'FLOW'
schema In { id: int }
schema Out { id: int  tags: list<string> }
model m { provider: mock }
agent tag(x: In) -> Out { model: m  prompt: "Tag {{ x.id }}" }
workflow bad(input: string, output: string) {
  let xs = read_jsonl<In>(input)
  let ys = pipeline for x in xs {
    stage a { tag(x) }
  }
  write_csv(ys, output)
}
FLOW
"$FLOWC" build bad.flow -o bad || fail "build bad"
echo '{"id": 1}' >one.jsonl
cat >fx.jsonl <<'FX'
{"agent": "tag", "answer": {"id": 1, "tags": ["a;b"]}}
FX
for v in s w; do
    [ $v = w ] && export FLOWRT_NO_STREAM=1
    ./bad --input one.jsonl --output bad.$v --mock --mock-fixtures fx.jsonl --no-journal \
        >/dev/null 2>berr.$v && fail "$v: a ';' in a list cell was written"
    unset FLOWRT_NO_STREAM
    grep -q "cannot write 'bad.$v': row 1, column 'tags'" berr.$v || fail "$v: $(cat berr.$v)"
done
[ -e bad.s ] && fail "a failed stream left its output"
ls | grep -q 'spool\|\.tmp\.' && fail "a failed stream left a temporary file: $(ls)"
exit 0
