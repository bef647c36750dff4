# Prompt caching against the fake server's cache (Anthropic cache_control,
# --cache-min): an agent whose fixed prefix (system prompt and schema, the
# prompt's text before its first {{ }}) reaches the minimum gets a cache
# breakpoint there; a fan-out of it sends one request first and the rest
# only once its answer has begun, so exactly one request writes the prefix
# and every other reads it; the summary counts the tokens read and the
# money saved, the trace carries them per call.  `cache: off` sends no
# breakpoint and reads nothing.
. "$TOP/tests/fake/lib.sh"
BIN=$TOOLS/..
[ -x "$FLOWC" ] || die "no flowc"

awk 'BEGIN { for (i = 0; i < 24; i++) printf "{\"id\": %d, \"text\": \"item %d\"}\n", i, i }' >items.jsonl
rules=$(awk 'BEGIN { for (i = 1; i <= 60; i++) printf "    %d. Read the item carefully and weigh every word of it before you label it.\n", i }')
for cache in on off; do
    cat >c_$cache.flow <<FLOW
model m {
  provider: anthropic
  name: "claude-cache-test"
  usd_per_mtok_in: 2.00
  usd_per_mtok_out: 10.00
  usd_per_mtok_cache_write: 2.50
  usd_per_mtok_cache_read: 0.20
  min_cache_tokens: 1024
}
schema Item { id: int  text: string }
enum Label { keep, fix, drop }
schema Out { id: int  label: Label }
agent label(x: Item) -> Out {
  model: m
  max_tokens: 100
  $( [ $cache = off ] && echo "cache: off" )
  system: """
    You label items for a catalogue.  The rules:
$rules
    """
  prompt: "Label item {{ x.id }}: {{ x.text }}"
}
workflow c(input: string) -> list<Out> {
  let xs = read_jsonl<Item>(input)
  return parallel for x in xs (concurrency: 8) { label(x) }
}
FLOW
    "$FLOWC" build c_$cache.flow -o c_$cache >build.err 2>&1 || die "build: $(cat build.err)"
done

start_server --key "$KEY" --cache-min 1024 --latency 100 --dump .
./c_on --input items.jsonl --no-journal --trace trace.jsonl >out 2>err || die "run: $(cat err)"
[ "$(grep -c '"label"' out)" = 24 ] || die "not every item: $(cat out err)"
has '"cache_control":{"type":"ephemeral"}' 1.json
# one write, by the first request, and 23 reads
want_requests 24 '"status":200'
writes=$(grep -c '"cache_write":[1-9]' log)
reads=$(grep -c '"cache_read":[1-9]' log)
[ "$writes" = 1 ] && [ "$reads" = 23 ] || die "cache writes $writes, reads $reads: $(cat log)"
grep '"n":1,' log | grep -q '"cache_write":[1-9]' || die "the first request did not write: $(head -1 log)"
# the summary: tokens from the cache and the money saved; the trace per call
grep -q 'from cache' err || die "no cache column in the summary: $(cat err)"
has '"gen_ai.usage.cache_read.input_tokens"' trace.jsonl
[ "$(grep -c '"gen_ai.usage.cache_creation.input_tokens":[1-9]' trace.jsonl)" = 1 ] ||
    die "trace: not one call wrote the cache: $(cat trace.jsonl)"

rm -f [0-9]*.json
start_server --key "$KEY" --cache-min 1024 --latency 100 --dump .
./c_off --input items.jsonl --no-journal >out 2>err || die "run off: $(cat err)"
hasnt 'cache_control' 1.json
[ "$(grep -c '"cache_read":[1-9]' log)" = 0 ] || die "cache: off read the cache"
[ "$(grep -c '"cache_write":[1-9]' log)" = 0 ] || die "cache: off wrote the cache"
finish
