# A server's retry-after is obeyed up to --max-retry-after (default 60 s),
# for both wire formats, however long it asks: an hour, an HTTP date in
# 2099, retry-after-ms: 1e308.  Each wait it cut short is said on stderr
# with the server's reason and counted in the summary; the calls then
# succeed.  (Every worker used to wait up to an hour, silently.)
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
cat >ra.flow <<'FLOW'
schema R { word: string }
schema M { wire: string  mode: string }
model anth { provider: anthropic  name: "fake-model"  api_key_env: "ANTHROPIC_API_KEY" }
model oai { provider: openai  name: "fake-model"  api_key_env: "OPENAI_API_KEY" }
agent a(mode: string) -> R { model: anth  max_tokens: 50  retries: 1  prompt: "[[fake-once:{{ mode }}]] a" }
agent o(mode: string) -> R { model: oai  max_tokens: 50  retries: 1  prompt: "[[fake-once:{{ mode }}]] o" }
workflow ra() -> list<R> {
  let hour = "429 retry-after=3600"
  let date = "503 retry-after-raw=Thu, 01 Jan 2099 00:00:00 GMT"
  let huge = "429 retry-after-ms-raw=1e308"
  let ms = [M { wire: "a", mode: hour }, M { wire: "a", mode: date }, M { wire: "a", mode: huge },
            M { wire: "o", mode: hour }, M { wire: "o", mode: date }, M { wire: "o", mode: huge }]
  return parallel for m in ms { if m.wire == "a" { a(m.mode) } else { o(m.mode) } }
}
FLOW
"$FLOWC" build ra.flow -o ra >build.err 2>&1 || die "build: $(cat build.err)"
start_server --key "$KEY"
timeout 60 ./ra --max-retry-after 1 --no-journal --retry-base-ms 1 >out 2>err; st=$?
[ $st = 0 ] || die "exit $st: $(cat err)"
[ "$(wc -l <out)" = 6 ] || die "answers: $(cat out)"
has "note: waiting 1.0 s before the next attempt (item " err
grep -Eq "; the server asked for (3600 s|[0-9]+ days), cut to 1 s \(--max-retry-after\)$" err || die "no note of the cut: $(cat err)"
has "retries waited long" err
has "6 retry-afters over 1 s cut to it (--max-retry-after)" err
want_requests 12
# without the flag the default cap is 60 s: said in --help
./ra --help >help
has "--max-retry-after S" help
has "(default 60)" help
./ra --max-retry-after 90000 >out 2>err && die "a cap over a day was taken"
has "error: --max-retry-after: at most 86400 seconds (a day)" err
finish
