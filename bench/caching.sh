#!/bin/sh
# caching.sh: prompt caching in a fan-out (issue 8's bench).
#
# A compiled fan-out of 200 items (--concurrency 64) of one agent whose
# system prompt is about 4,000 tokens of fixed text, against the fake server
# with Anthropic prompt caching (tests/tools/fakeserver.c --cache-min 1024,
# answers after 20 ms so that requests overlap): the first request writes
# the prefix, the runtime holds the others until its answer has begun, and
# they read it.  Goal: items 2..200 read at least 95% of the static prefix
# from the cache.  Then the same fan-out with `cache: off`, and the cost of
# both at Claude Sonnet 5.5's prices ($2 input, $2.50 cache write, $0.20
# cache read, $10 output per million tokens, stdlib/models.flow), as the
# summary reports it.  The fake server counts a token as four bytes.
# Median of RUNS runs (default 5).
cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
T=build/tools
RUNS=${RUNS:-5}
out=bench/out/caching
mkdir -p $out
for b in $T/fakeserver $FLOWC; do
    [ -x $b ] || { echo "missing $b: run make first"; exit 1; }
done
export ANTHROPIC_API_KEY=bench-key-not-secret
unset ANTHROPIC_BASE_URL OPENAI_BASE_URL http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
SERVER=

start_server() {
    stop_server
    rm -f $out/port
    $T/fakeserver --port-file $out/port --log $out/server.log "$@" >/dev/null 2>&1 &
    SERVER=$!
    i=0
    while [ ! -s $out/port ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    export ANTHROPIC_BASE_URL="http://127.0.0.1:$(cat $out/port)"
}
stop_server() {
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    SERVER=
}
trap stop_server EXIT INT TERM
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

awk 'BEGIN { for (i = 0; i < 200; i++) printf "{\"id\": %d, \"text\": \"item %d\"}\n", i, i }' \
    >$out/items.jsonl
# about 16,000 bytes of fixed instructions: 4,000 tokens at four bytes each
rules=$(awk 'BEGIN { for (i = 1; i <= 212; i++)
    printf "    %d. Read the item and its context with care, then weigh each word of it.\n", i }')
for cache in on off; do
    cat >$out/cached_$cache.flow <<FLOW
model sonnet {
  provider: anthropic
  name: "claude-sonnet-5-5"
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
  model: sonnet
  max_tokens: 100
  $( [ $cache = off ] && echo "cache: off" )
  system: """
    You label the items of a catalogue.  Follow every rule below.
$rules
    """
  prompt: "Label item {{ x.id }}: {{ x.text }}"
}
workflow cached(input: string) -> list<Out> {
  let xs = read_jsonl<Item>(input)
  return parallel for x in xs (concurrency: 64) { label(x) }
}
FLOW
    $FLOWC build $out/cached_$cache.flow -o $out/cached_$cache || exit 1
done

# total: the summary's usd and saved columns
summary_total() { awk '$1 == "total" { print $(NF - 1), $(NF - 2) }' "$1" | tr -d '$'; }

echo "== caching: 200 items, one agent, ~4,000-token fixed system prompt"
: >$out/share; : >$out/usd_on; : >$out/usd_off; : >$out/saved
fail=0
for r in $(seq "$RUNS"); do
    start_server --cache-min 1024 --latency 20
    $out/cached_on --input $out/items.jsonl --no-journal >$out/out.jsonl 2>$out/err
    st=$?
    done=$(grep -c '"label"' $out/out.jsonl)
    # the prefix: the largest read or write; items 2..200 by arrival order
    share=$(sed 's/.*"cache_read":\([0-9]*\),"cache_write":\([0-9]*\).*/\1 \2/' $out/server.log | awk '
        { rd[NR] = $1; wr[NR] = $2; if ($1 > p) p = $1; if ($2 > p) p = $2; if ($2 > 0) w++ }
        END { for (i = 2; i <= NR; i++) { s += rd[i] / p; if (rd[i] / p < m || m == "") m = rd[i] / p }
              printf "%.4f %.4f %d %d\n", s / (NR - 1), m, w, p }')
    set -- $share
    echo "$1" >>$out/share
    set -- $(summary_total $out/err)
    echo "$1" >>$out/usd_on
    echo "$2" >>$out/saved
    start_server --cache-min 1024 --latency 20
    $out/cached_off --input $out/items.jsonl --no-journal >/dev/null 2>$out/err_off
    st_off=$?
    set -- $(summary_total $out/err_off)
    echo "$1" >>$out/usd_off
    printf '  run %d: items 2..200 read %s of the prefix (least %s), %s write(s) of %s tokens; $%s with the cache, $%s without; %d items, exit %d/%d\n' \
        "$r" "$(echo "$share" | cut -d' ' -f1)" "$(echo "$share" | cut -d' ' -f2)" \
        "$(echo "$share" | cut -d' ' -f3)" "$(echo "$share" | cut -d' ' -f4)" \
        "$(tail -1 $out/usd_on)" "$1" "$done" $st $st_off
    [ "$done" = 200 ] && [ $st = 0 ] && [ $st_off = 0 ] || fail=1
done
stop_server
med=$(median <$out/share)
on=$(median <$out/usd_on)
off=$(median <$out/usd_off)
verdict=PASS
awk -v m="$med" 'BEGIN { exit !(m >= 0.95) }' && [ $fail = 0 ] || { verdict=FAIL; fail=1; }
printf '%-60s %6.1f%%   (goal >= 95%%: %s)\n' "items 2..200: share of the static prefix read from cache" \
    "$(awk -v m="$med" 'BEGIN { print 100 * m }')" "$verdict"
printf '%-60s  $%s\n' "cost of the 200 calls with caching (median)" "$on"
printf '%-60s  $%s\n' "cost of the 200 calls with cache: off (median)" "$off"
printf '%-60s  %s%%  (the summary says it saved $%s)\n' "saved by caching" \
    "$(awk -v a="$on" -v b="$off" 'BEGIN { printf "%.0f", 100 * (b - a) / b }')" "$(median <$out/saved)"
exit $fail
