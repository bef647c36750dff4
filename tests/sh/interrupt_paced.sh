# interrupt_paced.sh: Ctrl-C while requests wait for their send slot (a
# model with rpm: 1 sends one request a minute): those requests are not in
# flight, so none of them is sent during the grace period; the run stops at
# once as an interrupted one (exit 130), its one answer journaled, and the
# server sees exactly one request.  They used to go out one a minute during
# the grace period, and the run was stopped at its end with the calls
# "abandoned".  No assertion depends on timing: the signal is sent once the
# first answer is in the journal, and the next slot is a minute away.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
command -v sqlite3 >/dev/null || { echo "no sqlite3"; exit 77; }
cat >paced.flow <<'FLOW'
schema In { id: int }
schema Out { word: string }
model m { provider: anthropic  name: "fake-model"  rpm: 1 }
agent say(x: In) -> Out { model: m  max_tokens: 50  prompt: "Say {{ x.id }}" }
workflow paced(input: string) -> list<Out> {
  let xs = read_jsonl<In>(input)
  return parallel for x in xs (concurrency: 4) { say(x) }
}
FLOW
"$FLOWC" build paced.flow -o paced >build.err 2>&1 || die "build: $(cat build.err)"
i=0; while [ $i -lt 4 ]; do echo "{\"id\": $i}"; i=$((i + 1)); done >in.jsonl
start_server --key "$KEY"
./paced --input in.jsonl --journal j.db --grace 60 >out 2>err &
pid=$!
i=0
until [ "$(sqlite3 j.db "SELECT count(*) FROM calls_all WHERE status = 'ok'" 2>/dev/null)" = 1 ]; do
    i=$((i + 1)); [ $i -lt 400 ] || die "no answer journaled after 20 s: $(cat err)"
    sleep 0.05
done
kill -INT $pid
wait $pid; st=$?
[ $st -eq 130 ] || die "SIGINT: exit $st: $(tail -5 err)"
has "interrupted by SIGINT" err
hasnt "stopped at once" err
want_requests 1
[ "$(sqlite3 j.db "SELECT status FROM runs")" = interrupted ] ||
    die "run status $(sqlite3 j.db "SELECT status FROM runs")"
[ "$(sqlite3 j.db "SELECT count(*) FROM calls_all WHERE status = 'ok'")" = 1 ] ||
    die "answers journaled: $(sqlite3 j.db "SELECT key, status FROM calls_all")"
finish
