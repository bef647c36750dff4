#!/bin/sh
# stream_pipeline.sh: `let xs = read_jsonl<T>(in)`, `let ys = pipeline for x
# in xs ...`, `write_jsonl(ys, out)` with xs and ys read nowhere else stream
# the file through the pipeline into the output (fr_stream_file), a window
# of items in memory at a time, with the effects of the three statements
# as written (FLOWRT_NO_STREAM=1 runs them so): the same output in input
# order, the same rejects file and warnings for bad rows, the same skipped
# file (each item's input line), the same journal keys (a run interrupted
# and resumed pays for no answer twice), nothing written when it fails.
# A list read elsewhere too is made whole, as before.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
command -v sqlite3 >/dev/null || { echo "no sqlite3"; exit 77; }
cat >sp.flow <<'FLOW'
schema In { id: int  name: string }
schema Mid { word: string }
schema Out { id: int  word: string  n: int in 0..9 }
model m { provider: mock }
agent pick(x: In) -> Mid { model: m  retries: 0  prompt: "Pick {{ x.name }}" }
agent score(x: In, w: string) -> Out { model: m  retries: 0  prompt: "Score {{ x.id }} {{ w }}" }
workflow sp(input: string, output: string) {
  let xs = read_jsonl<In>(input, on_bad: skip, rejects: "bad.jsonl")
  let ys = pipeline for x in xs (concurrency: 3, on_error: skip) {
    stage a (concurrency: 5) { pick(x) }
    stage b { score(x, a.word) }
  }
  write_jsonl(ys, output)
}
FLOW
"$FLOWC" build sp.flow -o sp || fail "build"
"$FLOWC" build sp.flow --emit-c sp.c && grep -q "fr_stream_file(" sp.c || fail "not streamed: $(grep -n fr_pipeline sp.c)"
{ i=0; while [ $i -lt 300 ]; do
    echo "{\"id\": $i, \"name\": \"n$i\"}"
    [ $i = 7 ] && echo '{"id": "seven"}'
    [ $i = 100 ] && echo
    i=$((i + 1)); done; } >in.jsonl

# streamed and not: the same files, the same stderr
for v in s w; do
    [ $v = w ] && export FLOWRT_NO_STREAM=1
    ./sp --input in.jsonl --output out.$v --mock --mock-fail-rate 0.3 --no-journal --quiet \
        >/dev/null 2>err.$v
    st=$?                          # 5: items skipped after transient (503) errors
    [ $st -eq 5 ] || fail "$v: exit $st: $(cat err.$v)"
    unset FLOWRT_NO_STREAM
    mv bad.jsonl bad.$v; mv sp.skipped.jsonl skipped.$v
done
cmp out.s out.w || fail "streamed output differs (its order is the input's): $(diff out.s out.w | head -5)"
cmp bad.s bad.w || fail "rejects differ"
sort err.s >e.s; sort err.w >e.w      # items finish in any order: their warnings too
cmp e.s e.w || fail "stderr differs: $(diff e.s e.w | head -5)"
# the skipped file: the same items with the same lines (the runs' ids differ)
sed 's/"run":"[^"]*",//' skipped.s | sort >k.s; sed 's/"run":"[^"]*",//' skipped.w | sort >k.w
cmp k.s k.w || fail "skipped files differ: $(diff k.s k.w | head -4)"
[ -s k.s ] && grep -q '"file":"in.jsonl","line":' k.s || fail "skipped file: $(head -2 k.s)"
n=$(wc -l <out.s); k=$(wc -l <k.s)
[ $((n + k)) -eq 300 ] || fail "$n written and $k skipped of 300"

# interrupted, then resumed: the output appears only once whole; no answer paid twice
./sp --input in.jsonl --output out.r --mock --mock-latency 200 --journal j.db --quiet >/dev/null 2>err &
pid=$!
n=0
while [ "$(sqlite3 j.db 'SELECT count(*) FROM runs' 2>/dev/null)" != 1 ]; do
    n=$((n + 1)); [ $n -lt 200 ] || fail "no run after 10 s"; sleep 0.05
done
kill -INT $pid; wait $pid; st=$?
[ $st -eq 130 ] || fail "interrupted: exit $st: $(cat err)"
[ -e out.r ] && fail "an interrupted stream left its output"
ls | grep -q '^out\.r\.' && fail "an interrupted stream left its temporary file: $(ls)"
k=$(sqlite3 j.db "SELECT count(*) FROM calls_all WHERE status = 'ok'")
./sp --input in.jsonl --output out.r --mock --journal j.db --resume >/dev/null 2>err ||
    fail "resume: $(cat err)"
grep -q "$k calls\{0,1\} answered from the journal" err || fail "$k journaled; resume: $(cat err)"
./sp --input in.jsonl --output out.n --mock --no-journal --quiet 2>/dev/null || fail "plain run"
cmp out.r out.n || fail "resumed output differs"

# an output that cannot be written fails before any call
./sp --input in.jsonl --output nodir/out --mock --no-journal >/dev/null 2>err && fail "nodir accepted"
grep -q "cannot write 'nodir/out'" err || fail "nodir: $(cat err)"
grep -q "calls" err && grep -q "^  total  *[1-9]" err && fail "calls made before the write failed: $(cat err)"

# a list read elsewhere is made whole: not streamed
sed 's/  write_jsonl(ys, output)/  write_jsonl(ys, output)\n  write_jsonl(xs, "copy.jsonl")/' sp.flow >sp2.flow
"$FLOWC" build sp2.flow --emit-c sp2.c || fail "build sp2"
grep -q "fr_stream_file(" sp2.c && fail "streamed a list read twice"
exit 0
