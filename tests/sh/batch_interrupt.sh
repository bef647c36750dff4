# batch_interrupt.sh: Ctrl-C while a batch fan-out waits for its batch: the
# wait ends at once (not at the next poll, 60 s away), the run stops as an
# interrupted one (exit 130) saying the batch runs on at the provider, and
# --resume polls the same batch: the server sees exactly one batch created
# and no normal call.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
"$FLOWC" build "$TOP/tests/data/batch_fanout.flow" -o bt >build.err 2>&1 || die "build: $(cat build.err)"
count() { grep -c "\"action\":\"$1\"" log; }
start_server --key "$KEY" --batch-delay 3000
FLOWRT_BATCH_POLL_MS=60000 ./bt >out 2>err &
pid=$!
i=0
while ! grep -q "10 submitted" err && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
grep -q "10 submitted" err || die "no batch after 10 s: $(tail -5 err)"
kill -INT $pid
wait $pid; st=$?
[ $st -eq 130 ] || die "SIGINT: exit $st: $(tail -5 err)"
has "interrupted; 1 submitted batch runs on at the provider" err
[ "$(count batch-create)" -eq 1 ] || die "$(count batch-create) batches before the resume"
FLOWRT_BATCH_POLL_MS=50 ./bt --resume >out 2>err || die "resume: $(tail -5 err)"
[ "$(wc -l <out)" -eq 10 ] || die "the resumed run answered $(wc -l <out)"
[ "$(count batch-create)" -eq 1 ] || die "$(count batch-create) batches after the resume"
[ "$(count ok)" -eq 0 ] || die "the resume made $(count ok) normal calls"
finish
