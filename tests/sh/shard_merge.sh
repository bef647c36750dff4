#!/bin/sh
# shard_merge.sh: a workflow sharded by key runs as 4 processes at once; `merge`
# joins their parts into exactly what one process writes (stdout, a JSON Lines
# file of a filtered list, a CSV file) and the same summary; the shard index
# comes from --shard I/N or from the schedulers' variables; merge refuses a
# missing and an unfinished shard; a shard killed in the middle and started
# again with the same command resumes from its journal, pays for no call
# twice (each call key at most once uncached in its trace), and merge then
# succeeds; a workflow not built for sharding refuses --shard.
FLOWC=${FLOWC:-$TOP/build/flowc}
command -v jq >/dev/null || { echo "no jq"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

cat >sh.flow <<'FLOW'
schema Lead { id: string  name: string  title: string? }
schema Scored { lead_id: string  score: int in 1..5  note: string len 1..20 }
model m { provider: mock  usd_per_mtok_in: 1  usd_per_mtok_out: 2 }
agent score(l: Lead) -> Scored { model: m  max_tokens: 100  prompt: "Score {{ l }}" }
workflow sh(leads_file: string = "../leads.jsonl") -> list<Scored> {
  budget { usd: 1.0 }
  phase load { let leads = read_jsonl<Lead>(leads_file) }
  phase score {
    let scored = parallel for l in leads (concurrency: 2, shard_key: id) { score(l) }
    let good = for s in scored where s.score >= 3 { s }
    write_jsonl(good, "good.jsonl")
    write_csv(scored, "scored.csv")
    return scored
  }
}
FLOW
i=1; while [ $i -le 120 ]; do echo "{\"id\": \"L$i\", \"name\": \"n$i\"}"; i=$((i + 1)); done >leads.jsonl
"$FLOWC" build sh.flow -o sh >build.err 2>&1 || fail "build: $(cat build.err)"
"$FLOWC" check sh.flow >check.err 2>&1 || fail "check: $(cat check.err)"
[ -s check.err ] && fail "check warns: $(cat check.err)"

# table rows of a summary without the time column
rows() { sed -n '/^run summary:/,/^  total/p' "$1" | awk '{ $NF = ""; print }'; }

mkdir one all
(cd one && ../sh --mock >out 2>err) || fail "one process: $(cat one/err)"
[ "$(wc -l <one/out)" -eq 120 ] || fail "one process: $(wc -l <one/out) lines"

# four shards at once
cd all || exit 1
for i in 0 1 2 3; do ../sh --mock --shard $i/4 >out$i 2>err$i & done
wait
for i in 0 1 2 3; do
    [ -s out$i ] && fail "shard $i printed its result on stdout: $(head -2 out$i)"
    grep -q "^shard $i of 4: summary in sh.shard-000$i-of-0004.json" err$i || fail "shard $i: $(cat err$i)"
    [ -f .flow/sh.shard-000$i-of-0004.db ] || fail "shard $i: no journal of its own"
done
share=$(cat err0 err1 err2 err3 | sed -n 's/^shard . of 4: \([0-9]*\) of the fan-out.s 120 items/\1/p' | awk '{ s += $1 } END { print s }')
[ "$share" = 120 ] || fail "the shares add up to $share items, not 120"
../sh merge >out 2>err || fail "merge: $(cat err)"
cmp -s out ../one/out || fail "merged result differs: $(diff out ../one/out | head -5)"
cmp -s good.jsonl ../one/good.jsonl || fail "merged good.jsonl differs"
cmp -s scored.csv ../one/scored.csv || fail "merged scored.csv differs"
[ "$(rows err)" = "$(rows ../one/err)" ] || fail "merged summary: $(rows err) / one: $(rows ../one/err)"
grep -q '^merged 4 shards: 2026\|^merged 4 shards: [0-9]\{8\}-' err || fail "merge names no runs: $(cat err)"
cd .. || exit 1

# the schedulers' variables: a Kubernetes index with --shards, a Slurm array from 1
mkdir env && cd env || exit 1
JOB_COMPLETION_INDEX=1 ../sh --mock --shards 4 >/dev/null 2>err1 || fail "k8s index: $(cat err1)"
cmp -s good.part-0001-of-0004.jsonl ../all/good.part-0001-of-0004.jsonl || fail "JOB_COMPLETION_INDEX=1 is not shard 1"
SLURM_ARRAY_TASK_ID=3 SLURM_ARRAY_TASK_MIN=1 SLURM_ARRAY_TASK_COUNT=4 ../sh --mock >/dev/null 2>err2 ||
    fail "slurm: $(cat err2)"
cmp -s good.part-0002-of-0004.jsonl ../all/good.part-0002-of-0004.jsonl || fail "slurm task 3 of 1-4 is not shard 2"
AWS_BATCH_JOB_ARRAY_INDEX=0 ../sh --mock --shards 4 >/dev/null 2>err3 || fail "aws: $(cat err3)"
cmp -s good.part-0000-of-0004.jsonl ../all/good.part-0000-of-0004.jsonl || fail "AWS index 0 is not shard 0"
../sh --mock --shards 4 >/dev/null 2>err4 && fail "--shards without an index ran"
grep -q 'needs this shard.s index' err4 || fail "--shards without an index: $(cat err4)"
../sh --mock --shard 4/4 >/dev/null 2>err5; [ $? = 2 ] || fail "--shard 4/4 did not exit 2"
# merge refuses a missing shard (3 never ran here)
../sh merge >out 2>err; [ $? = 1 ] || fail "merge of 3 shards of 4 did not fail"
grep -q 'shard 3 of 4 has not finished' err || fail "merge of a missing shard: $(cat err)"
[ -f good.jsonl ] && fail "merge wrote good.jsonl with a shard missing"
cd .. || exit 1

# a shard killed in the middle, started again: it resumes, pays nothing twice
mkdir kill && cd kill || exit 1
for i in 0 1 3; do ../sh --mock --shard $i/4 >/dev/null 2>err$i || fail "shard $i: $(cat err$i)"; done
../sh --mock --shard 2/4 --mock-latency 40 --trace trace.jsonl >/dev/null 2>errk &
pid=$!
n=0
while [ $n -lt 100 ]; do             # until some of its calls are in the journal
    c=$(sqlite3 .flow/sh.shard-0002-of-0004.db "SELECT count(*) FROM calls_all" 2>/dev/null)
    [ "${c:-0}" -ge 5 ] && break
    sleep 0.05; n=$((n + 1))
done
kill -9 $pid; wait $pid 2>/dev/null
../sh merge >out 2>err; [ $? = 1 ] || fail "merge with a killed shard did not fail"
grep -q 'shard 2 of 4 has not finished' err || fail "merge with a killed shard: $(cat err)"
../sh --mock --shard 2/4 --trace trace.jsonl >/dev/null 2>err2 || fail "shard 2 again: $(cat err2)"
grep -q '^shard 2 of 4: resuming its unfinished run' err2 || fail "shard 2 did not resume: $(cat err2)"
dup=$(jq -r 'select(.type == "call" and .cached == false) | .call_key' trace.jsonl | sort | uniq -d)
[ -z "$dup" ] || fail "calls paid twice: $dup"
cached=$(jq -r 'select(.type == "call" and .cached == true) | .call_key' trace.jsonl | wc -l)
[ "$cached" -ge 1 ] || fail "the resumed shard answered nothing from its journal"
../sh merge >out 2>err || fail "merge after the resume: $(cat err)"
cmp -s out ../one/out || fail "merged result after a kill differs"
cmp -s scored.csv ../one/scored.csv || fail "merged scored.csv after a kill differs"
cd .. || exit 1

# a workflow without a sharded fan-out refuses --shard
sed 's/, shard_key: id//' sh.flow >plain.flow
"$FLOWC" build plain.flow -o plain >build2.err 2>&1 || fail "build plain: $(cat build2.err)"
./plain --mock --shard 0/2 >/dev/null 2>perr; [ $? = 2 ] || fail "plain --shard did not exit 2"
grep -q "add 'shard: true'" perr || fail "plain --shard: $(cat perr)"
exit 0
