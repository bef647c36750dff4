# batch_split.sh: a batch fan-out of 600 items split at the providers' limits,
# lowered on both sides (FLOWRT_BATCH_MAX_REQUESTS / _BYTES for the runtime,
# --batch-max-requests / --batch-max-bytes for the fake server, which refuses
# a batch over them as the providers do): by count, 250 + 250 + 100; by
# size, batches that each fit.  Every item is answered from its batch, and
# the batches are polled in turn, not one after another.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
command -v jq >/dev/null || { echo "no jq"; exit 77; }
"$FLOWC" build "$TOP/tests/data/batch_many.flow" -o bm >build.err 2>&1 || die "build: $(cat build.err)"
i=0
while [ $i -lt 600 ]; do
    printf '{"id": %d, "text": "item %d %.*s"}\n' $i $i $((i % 40)) \
        "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
    i=$((i + 1))
done >items.jsonl
export FLOWRT_BATCH_POLL_MS=50
count() { grep -c "\"action\":\"$1\"" log; }
for prov in anthropic openai; do
    flag=; [ $prov = openai ] && flag=--openai
    # by count
    start_server --key "$KEY" --batch-delay 1500 --batch-max-requests 250
    rm -rf .flow
    FLOWRT_BATCH_MAX_REQUESTS=250 ./bm --items-file items.jsonl $flag >out 2>err ||
        die "$prov: exit $?: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 600 ] || die "$prov: $(wc -l <out) answers"
    [ "$(count batch-create)" -eq 3 ] || die "$prov: $(count batch-create) batches, not 3"
    grep -q '"action":"batch-create".*"status":4' log && die "$prov: a batch was refused"
    for n in 250 250 100; do
        grep -q " $n requests submitted" err || die "$prov: no batch of $n: $(cat err)"
    done
    [ "$(grep -c '"action":"ok"' log)" -eq 0 ] || die "$prov: normal calls made"
    has "3 batches, 600 submitted" err
    # round-robin: every batch is polled in each round, so when the first
    # batch needed more than one poll, the last batch's first poll came
    # before the first batch's last one
    jq -r 'select(.action == "batch-get") | .path' log >gets
    first=$(head -1 gets)
    lastb=$(sort -u gets | tail -1)
    [ "$first" != "$lastb" ] || die "$prov: one batch only polled"
    if [ "$(grep -c "$first" gets)" -ge 2 ]; then
        nl=$(grep -n "$lastb" gets | head -1 | cut -d: -f1)
        nf=$(grep -n "$first" gets | tail -1 | cut -d: -f1)
        [ "$nl" -lt "$nf" ] || die "$prov: the batches were polled one after another"
    fi
    [ "$(sqlite3 .flow/bm.db "SELECT count(*) FROM calls_all WHERE tier = 'batch'")" -eq 600 ] ||
        die "$prov: not 600 calls at the batch price"
    # by size: the limit in bytes, no count limit below the providers'
    start_server --key "$KEY" --batch-max-bytes 150000
    rm -rf .flow
    FLOWRT_BATCH_MAX_BYTES=150000 ./bm --items-file items.jsonl $flag >out 2>err ||
        die "$prov: by size: exit $?: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 600 ] || die "$prov: by size: $(wc -l <out) answers"
    [ "$(count batch-create)" -ge 2 ] || die "$prov: by size: $(count batch-create) batch"
    grep '"action":"batch-create"' log | grep -qv '"status":200' && die "$prov: by size: a batch was refused: $(cat log)"
    [ "$(grep -c '"action":"ok"' log)" -eq 0 ] || die "$prov: by size: normal calls made"
done
finish
