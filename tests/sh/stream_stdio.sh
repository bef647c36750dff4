#!/bin/sh
# stream_stdio.sh: a streamed pipeline (read_jsonl -> pipeline for ->
# write_jsonl) reading stdin ("-") and writing stdout ("-") streams too:
# stdin, read twice (once to check every row, once to run), goes through an
# unlinked temporary file when it is a pipe; the output goes through one in
# $TMPDIR and is copied to stdout once the run is done (nothing on stdout
# when it fails).  The same output, rejects and warnings as the statements
# run whole (FLOWRT_NO_STREAM=1), from a pipe and from a redirected file;
# 100,000 rows from a pipe to a pipe in a fraction of the memory the whole
# lists take (peak RSS, not time: no assertion depends on load).  Both used
# to be read and written whole.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >st.flow <<'FLOW'
schema In { id: int  name: string }
schema Out { id: int  word: string }
model m { provider: mock }
agent say(x: In) -> Out { model: m  retries: 0  prompt: "Say {{ x.id }} {{ x.name }}" }
workflow st(input: string, output: string) {
  let xs = read_jsonl<In>(input, on_bad: skip, rejects: "bad.jsonl")
  let ys = pipeline for x in xs (concurrency: 4) {
    stage a { say(x) }
  }
  write_jsonl(ys, output)
}
FLOW
"$FLOWC" build st.flow -o st || fail "build"
{ i=0; while [ $i -lt 500 ]; do
    echo "{\"id\": $i, \"name\": \"n$i\"}"
    [ $i = 9 ] && echo '{"id": "nine"}'
    i=$((i + 1)); done; } >in.jsonl
mkdir -p tmp
export TMPDIR="$PWD/tmp"

# from a pipe, from a file, and whole: the same output, rejects and stderr
cat in.jsonl | ./st --input - --output - --mock --no-journal --quiet >out.pipe 2>err.pipe ||
    fail "from a pipe: $(cat err.pipe)"
mv bad.jsonl bad.pipe
./st --input - --output - --mock --no-journal --quiet <in.jsonl >out.file 2>err.file ||
    fail "from a file: $(cat err.file)"
mv bad.jsonl bad.file
cat in.jsonl | FLOWRT_NO_STREAM=1 ./st --input - --output - --mock --no-journal --quiet >out.whole \
    2>err.whole || fail "whole: $(cat err.whole)"
mv bad.jsonl bad.whole
[ "$(wc -l <out.pipe)" -eq 500 ] || fail "$(wc -l <out.pipe) lines out of 500"
for v in pipe file; do
    cmp out.$v out.whole || fail "$v: output differs: $(diff out.$v out.whole | head -4)"
    cmp bad.$v bad.whole || fail "$v: rejects differ"
    cmp err.$v err.whole || fail "$v: stderr differs: $(diff err.$v err.whole | head -4)"
done
[ -z "$(ls tmp)" ] || fail "temporary files left: $(ls tmp)"

# a run that fails writes nothing to stdout: the agent's answers are cut off
cat in.jsonl | ./st --input - --output - --mock --mock-bad-rate 1 --no-journal >out.bad 2>err.bad
[ $? -ne 0 ] || fail "a failing run exited 0"
[ ! -s out.bad ] || fail "a failed run wrote $(wc -l <out.bad) lines to stdout"

# 100,000 rows from a pipe to a pipe: streamed, a fraction of the memory
case "$FLOWC" in */asan/*) echo ok; exit 0 ;; esac   # (ASan's own memory: plain only)
[ -x /usr/bin/time ] || { echo ok; exit 0; }
awk 'BEGIN { for (i = 0; i < 100000; i++) printf "{\"id\": %d, \"name\": \"row %d\"}\n", i, i }' >big.jsonl
for v in s w; do
    [ $v = w ] && export FLOWRT_NO_STREAM=1
    cat big.jsonl | /usr/bin/time -f %M -o rss.$v ./st --input - --output - --mock --no-journal \
        --quiet 2>err.$v | wc -l >n.$v || fail "$v: $(cat err.$v)"
    unset FLOWRT_NO_STREAM
    [ "$(cat n.$v)" -eq 100000 ] || fail "$v: $(cat n.$v) lines of 100000: $(tail -3 err.$v)"
done
s=$(tail -1 rss.s); w=$(tail -1 rss.w)
[ $((s * 4)) -lt "$w" ] || fail "streamed from a pipe: $s KB peak, whole: $w KB"
echo ok
