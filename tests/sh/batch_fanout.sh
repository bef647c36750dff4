# batch_fanout.sh: parallel for (batch: true) through the fake server's batch
# endpoints, both providers: every item answered, one batch created and the
# errored items (every 4th) made as normal calls, the batch answers journaled
# at tier 'batch'; a SIGKILL while polling, then --resume: the server sees
# exactly one batch created; a budget too small for the batch's worst case
# stops the run before anything is submitted; --batch-timeout cancels a
# batch and keeps what finished (the fake server lets 4 of 10 finish), the
# rest made as normal calls; a time budget cancels it too and stops the run,
# and the resume reads the cancelled batch's answers again (no second batch,
# nothing paid twice), without waiting for a slow cancellation past it.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
"$FLOWC" build "$TOP/tests/data/batch_fanout.flow" -o bt >build.err 2>&1 || die "build: $(cat build.err)"
export FLOWRT_BATCH_POLL_MS=50
count() { grep -c "\"action\":\"$1\"" log; }
for prov in anthropic openai; do
    flag=; [ $prov = openai ] && flag=--openai
    start_server --key "$KEY" --batch-delay 200 --batch-errors 4
    rm -rf .flow
    ./bt $flag >out 2>err || die "$prov: exit $?: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 10 ] || die "$prov: $(wc -l <out) answers"
    [ "$(count batch-create)" -eq 1 ] || die "$prov: $(count batch-create) batches created"
    [ "$(count ok)" -eq 2 ] || die "$prov: $(count ok) normal calls for the 2 errored items"
    has "10 submitted" err
    [ "$(sqlite3 .flow/bt.db "SELECT count(*) FROM calls_all WHERE tier = 'batch'")" -eq 8 ] ||
        die "$prov: not 8 calls at the batch price"
    # killed while polling, then resumed: the same batch, polled again
    start_server --key "$KEY" --batch-delay 1500
    rm -rf .flow
    ./bt $flag >out 2>err &
    pid=$!
    i=0
    while [ "$(count batch-get)" -lt 1 ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    kill -9 $pid; wait $pid 2>/dev/null
    [ "$(count batch-create)" -eq 1 ] || die "$prov: no batch before the kill"
    ./bt $flag --resume >out 2>err || die "$prov: resume: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 10 ] || die "$prov: resumed run answered $(wc -l <out)"
    [ "$(count batch-create)" -eq 1 ] || die "$prov: $(count batch-create) batches after the resume"
    has "resumed, polling it again" err
    [ "$(count ok)" -eq 0 ] || die "$prov: the resume made $(count ok) normal calls"
    # a budget below the batch's worst case: exit 4, nothing submitted
    start_server --key "$KEY"
    rm -rf .flow
    ./bt $flag --budget-usd 0.00001 >out 2>err
    [ $? -eq 4 ] || die "$prov: the budget did not stop the batch: $(tail -3 err)"
    [ "$(count batch-create)" -eq 0 ] && [ "$(count file-upload)" -eq 0 ] ||
        die "$prov: a batch was submitted over the budget"
    # --batch-timeout: cancelled, 4 answers kept, 6 normal calls
    start_server --key "$KEY" --batch-delay 600000 --batch-cancel-done 4
    rm -rf .flow
    ./bt $flag --batch-timeout 1s >out 2>err || die "$prov: timeout: exit $?: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 10 ] || die "$prov: timeout: $(wc -l <out) answers"
    [ "$(count batch-cancel)" -eq 1 ] || die "$prov: timeout: $(count batch-cancel) cancels"
    has "cancelled at the time limit" err
    has "cancelled: 4 answers, 6 errored or unfinished: made as normal calls" err
    [ "$(count ok)" -eq 6 ] || die "$prov: timeout: $(count ok) normal calls, not 6"
    [ "$(sqlite3 .flow/bt.db "SELECT count(*) FROM calls_all WHERE tier = 'batch'")" -eq 4 ] ||
        die "$prov: timeout: not 4 calls at the batch price"
    # a time budget: cancelled, the run stops (exit 4); resumed with more time,
    # the cancelled batch's 4 answers are read again, 6 normal calls made
    start_server --key "$KEY" --batch-delay 600000 --batch-cancel-done 4
    rm -rf .flow
    ./bt $flag --budget-time 2s >out 2>err
    st=$?
    [ $st -eq 4 ] || die "$prov: time budget: exit $st: $(tail -5 err)"
    [ "$(count batch-cancel)" -eq 1 ] || die "$prov: time budget: no cancel"
    ./bt $flag --resume --budget-time 10m >out 2>err || die "$prov: time budget: resume: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 10 ] || die "$prov: time budget: resumed run answered $(wc -l <out)"
    [ "$(count batch-create)" -eq 1 ] || die "$prov: time budget: $(count batch-create) batches"
    [ "$(count ok)" -eq 6 ] || die "$prov: time budget: $(count ok) normal calls, not 6"
    [ "$(sqlite3 .flow/bt.db "SELECT count(*) FROM calls_all WHERE tier = 'batch' AND status = 'ok'")" -eq 4 ] ||
        die "$prov: time budget: the 4 batch answers are not journaled once"
done
# a time budget is a hard cap: a cancellation that takes long is not waited
# for (the batch stays cancelling 5 s here); the resume reads what finished
start_server --key "$KEY" --batch-delay 600000 --batch-cancel-done 4 --batch-cancel-delay 5000
rm -rf .flow
./bt --budget-time 2s >out 2>err
st=$?
[ $st -eq 4 ] || die "slow cancel: exit $st: $(tail -5 err)"
has "still cancelling at the time budget; --resume reads what finished" err
[ "$(count batch-results)" -eq 0 ] || die "slow cancel: results read before the batch ended"
./bt --resume --budget-time 10m >out 2>err || die "slow cancel: resume: $(tail -5 err)"
[ "$(wc -l <out)" -eq 10 ] || die "slow cancel: resumed run answered $(wc -l <out)"
[ "$(count batch-create)" -eq 1 ] || die "slow cancel: $(count batch-create) batches"
[ "$(sqlite3 .flow/bt.db "SELECT count(*) FROM calls_all WHERE tier = 'batch' AND status = 'ok'")" -eq 4 ] ||
    die "slow cancel: the 4 answers that finished are not journaled"
finish
