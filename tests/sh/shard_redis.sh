#!/bin/sh
# shard_redis.sh: 4 shards sharing Redis (Debian's redis-server, started here
# on a free port of 127.0.0.1) against the fake server's strict 50 requests a
# second (no burst, a whole-second retry-after on every 429):
#   - the merged output equals one process's;
#   - under injected faults (every call's first attempt a 500, a share of
#     answers slow) and a budget that stops the run, the shards' combined
#     spend never passes the budget: Redis holds every attempt's worst case
#     against every shard's spent and held;
#   - Redis killed in the middle of the run: each shard says so, goes on with
#     1/N of the limit and of what was left of the budget, and finishes;
#     merge then succeeds;
#   - an unreachable FLOWRT_REDIS_URL at the start: the same, said at once.
# The combined rate (its goal: under the limit, at least 85% of it) depends on
# the machine's load, so it is measured by bench/shards.sh, not asserted here.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { echo "no redis-server (Debian's redis-server package; make deps)"; exit 77; }
command -v jq >/dev/null || { echo "no jq"; exit 77; }
RPID=
stop_redis() { [ -n "$RPID" ] && kill -9 "$RPID" 2>/dev/null; wait "$RPID" 2>/dev/null; RPID=; }
trap 'stop_redis; stop_server' EXIT
start_redis() {
    n=0
    while [ $n -lt 20 ]; do
        RPORT=$(( 20000 + ($$ * 7 + n * 131) % 40000 ))
        redis-server --port "$RPORT" --bind 127.0.0.1 --save '' --appendonly no \
            --protected-mode yes >redis.log 2>&1 &
        RPID=$!
        i=0
        while [ $i -lt 40 ]; do
            redis-cli -p "$RPORT" ping 2>/dev/null | grep -q PONG && return 0
            kill -0 $RPID 2>/dev/null || break
            sleep 0.05; i=$((i + 1))
        done
        stop_redis
        n=$((n + 1))
    done
    die "redis-server did not start: $(tail -3 redis.log)"
}

cat >r.flow <<'FLOW'
schema Lead { id: string  name: string }
schema Scored { lead_id: string  score: int in 1..5 }
model m { provider: anthropic  name: "fake-model"  usd_per_mtok_in: 100  usd_per_mtok_out: 100 }
agent score(l: Lead) -> Scored { model: m  max_tokens: 100  retries: 10  prompt: "Score {{ l }}" }
workflow r(leads_file: string = "../leads.jsonl", usd: float = 100.0) -> list<Scored> {
  budget { usd: usd }
  phase load { let leads = read_jsonl<Lead>(leads_file) }
  phase score {
    return parallel for l in leads (concurrency: 8, shard_key: id) { score(l) }
  }
}
FLOW
i=1; while [ $i -le 80 ]; do echo "{\"id\": \"L$i\", \"name\": \"n$i\"}"; i=$((i + 1)); done >leads.jsonl
"$FLOWC" build r.flow -o r >build.err 2>&1 || die "build: $(cat build.err)"
F="--retry-base-ms 1 --quiet"

start_server --key "$KEY" --rate 50
start_redis
export FLOWRT_REDIS_URL="redis://127.0.0.1:$RPORT"

# shards S: shard S of 4 at once (the group G, then the flags), each
# writing its stderr to errS; waits for them (not for the servers)
shards() {
    g=$1; shift
    pids=
    for s in 0 1 2 3; do
        FLOWRT_RUN_GROUP=$g ../r $F "$@" --shard $s/4 >/dev/null 2>err$s &
        pids="$pids $!"
    done
}
wait_shards() { for p in $pids; do wait "$p"; done; }

# one process (no shards), then 4 shards at once sharing Redis
mkdir one all fault kill down
(cd one && ../r $F >out 2>err) || die "one process: $(cat one/err)"
[ "$(wc -l <one/out)" -eq 80 ] || die "one process: $(wc -l <one/out) rows"
cd all || exit 1
shards all
wait_shards
for s in 0 1 2 3; do grep -q 'cannot reach\|stopped answering' err$s && die "shard $s: $(cat err$s)"; done
../r merge --quiet >out 2>err || die "merge: $(cat err)"
cmp -s out ../one/out || die "merged output differs from one process's"
# the shared schedule is in Redis
redis-cli -p "$RPORT" --scan --pattern 'flowrt:limit:*' | grep -q . || die "no shared schedule in Redis"
# the ledger counts every shard's spend, nothing still held
held=$(redis-cli -p "$RPORT" hgetall flowrt:all:budget | awk 'NR % 2 == 1 { k = $0 } NR % 2 == 0 && k ~ /^h/ { s += $0 } END { print s + 0 }')
[ "$held" = 0 ] || die "Redis still holds $held after the run"
cd .. || exit 1

# injected faults and a budget that stops the run: the shards' combined
# spend never passes it ($0.80 is about half of what the 80 calls cost)
script 'first 500' '90-100 503' '120-125 slow 300' '* ok'
start_server --key "$KEY" --rate 50 --script script
cd fault || exit 1
shards fault --usd 0.8
wait_shards
spent=$(for s in 0 1 2 3; do
    sqlite3 .flow/r.shard-000$s-of-0004.db "SELECT printf('%.9f', total(usd + held_usd + lost_usd)) FROM calls_all"
done | awk '{ s += $1 } END { printf "%.9f", s }')
awk -v s="$spent" 'BEGIN { exit !(s <= 0.8) }' || die "the shards spent \$$spent of a \$0.8 budget"
awk -v s="$spent" 'BEGIN { exit !(s > 0.5) }' || die "the shards spent only \$$spent of \$0.8: the budget was hardly used"
grep -q 'stopped by the workflow.s usd budget' err0 err1 err2 err3 || die "no shard was stopped by the budget"
../r merge >/dev/null 2>merr; [ $? = 1 ] || die "merge of budget-stopped shards did not refuse"
cd .. || exit 1

# Redis killed in the middle: the shards fall back and finish
start_server --key "$KEY" --rate 50 --latency 20
cd kill || exit 1
shards kill
sleep 0.6
stop_redis
wait_shards
for s in 0 1 2 3; do
    grep -q "Redis at 127.0.0.1:$RPORT stopped answering" err$s || die "shard $s did not say Redis went: $(cat err$s)"
done
../r merge --quiet >out 2>err || die "merge after Redis died: $(cat err) $(cat err0)"
cmp -s out ../one/out || die "merged output after Redis died differs"
cd .. || exit 1

# Redis unreachable at the start: said, and each shard takes 1/N
cd down || exit 1
FLOWRT_REDIS_URL="redis://127.0.0.1:$RPORT" ../r $F --shard 1/4 >/dev/null 2>err1 ||
    die "shard without Redis: $(cat err1)"
grep -q "cannot reach Redis at 127.0.0.1:$RPORT" err1 || die "no word of the missing Redis: $(cat err1)"
cd .. || exit 1
no_key
exit 0
