# batch_window.sh: a run killed after the provider accepted its batch but
# before it could journal the batch's id (the fake server holds its answer
# to the create, --hold batch-create) is resumed: it finds its batch again
# (OpenAI by the token in the batch's metadata; Anthropic, whose batches
# carry none, by polling those created since with as many requests and
# taking the one whose custom_ids carry its token) and the server sees
# exactly one batch created.  OpenAI's input file, uploaded before a kill
# that came before the batch was created, is found by its name and used:
# one upload, one batch.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
command -v curl >/dev/null || { echo "no curl"; exit 77; }
"$FLOWC" build "$TOP/tests/data/batch_fanout.flow" -o bt >build.err 2>&1 || die "build: $(cat build.err)"
export FLOWRT_BATCH_POLL_MS=50
count() { grep -c "\"action\":\"$1\"" log; }
# kill_after ACTION [FLAGS]: runs ./bt, kills it once the server logged ACTION
kill_after() {
    rm -rf .flow
    ./bt "$@" >out 2>err &
    pid=$!
    i=0
    while [ "$(count "$ACTION")" -lt 1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
    kill -9 $pid; wait $pid 2>/dev/null
    [ "$(count "$ACTION")" -eq 1 ] || die "$ACTION never came: $(cat err)"
    curl -s "http://127.0.0.1:$PORT/_release" >/dev/null
}
for prov in anthropic openai; do
    flag=; [ $prov = openai ] && flag=--openai
    ACTION=batch-create
    start_server --key "$KEY" --batch-delay 300 --hold batch-create
    kill_after $flag
    [ "$(sqlite3 .flow/bt.db "SELECT count(*) FROM batches WHERE batch_id IS NULL AND token IS NOT NULL")" -eq 1 ] ||
        die "$prov: no intent journaled without its id"
    ./bt $flag --resume >out 2>err || die "$prov: resume: exit $?: $(tail -5 err)"
    [ "$(wc -l <out)" -eq 10 ] || die "$prov: resumed run answered $(wc -l <out)"
    [ "$(count batch-create)" -eq 1 ] || die "$prov: $(count batch-create) batches created"
    [ "$(count batch-list)" -ge 1 ] || die "$prov: the resume did not look for its batch"
    has "found again by its token" err
    [ "$(grep -c '"action":"ok"' log)" -eq 0 ] || die "$prov: the resume made normal calls"
    [ "$(sqlite3 .flow/bt.db "SELECT count(*) FROM batches WHERE batch_id IS NOT NULL")" -eq 1 ] ||
        die "$prov: the batch found is not journaled"
done
# OpenAI: killed after the upload, before the batch
ACTION=file-upload
start_server --key "$KEY" --hold file-upload
kill_after --openai
[ "$(count batch-create)" -eq 0 ] || die "a batch came before the upload's answer"
./bt --openai --resume >out 2>err || die "upload: resume: exit $?: $(tail -5 err)"
[ "$(wc -l <out)" -eq 10 ] || die "upload: resumed run answered $(wc -l <out)"
[ "$(count file-upload)" -eq 1 ] || die "upload: $(count file-upload) files uploaded"
[ "$(count file-list)" -ge 1 ] || die "upload: the resume did not look for its file"
[ "$(count batch-create)" -eq 1 ] || die "upload: $(count batch-create) batches created"
# Anthropic: a batch of another run with as many requests, created since, is
# a candidate only: polled to its end, its custom_ids tell it is not ours
ACTION=batch-create
start_server --key "$KEY" --batch-delay 300 --hold batch-create
rm -rf .flow
./bt >out 2>err &
pid=$!
i=0
while [ "$(count batch-create)" -lt 1 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -9 $pid; wait $pid 2>/dev/null
curl -s "http://127.0.0.1:$PORT/_release" >/dev/null
cp -r .flow flow.killed
# another run's batch of 10 (its own journal), created after the kill
./bt --journal other.db >/dev/null 2>other.err || die "other run: $(tail -3 other.err)"
[ "$(count batch-create)" -eq 2 ] || die "the other run did not make its batch"
./bt --resume >out 2>err || die "candidates: resume: exit $?: $(tail -5 err)"
[ "$(wc -l <out)" -eq 10 ] || die "candidates: resumed run answered $(wc -l <out)"
[ "$(count batch-create)" -eq 2 ] || die "candidates: $(count batch-create) batches created"
has "2 batches created since the run stopped may be" err
has "found again by its token" err
[ "$(grep -c '"action":"ok"' log)" -eq 0 ] || die "candidates: normal calls made"
finish
