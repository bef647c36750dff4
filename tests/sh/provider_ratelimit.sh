# A rate-limited fan-out slows down as a whole: 64 workers against a strict
# server allowing 50 requests per second (no burst, whole-second
# retry-after, rate-limit headers) finish every call, and the shared limiter,
# pacing from the headers, keeps the 429s few (each worker on its own would
# collect hundreds).
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    start_server --rate 50 --key "$KEY"
    $RT --provider $p --calls 200 --concurrency 64 --retries 5 --quiet >out 2>err ||
        die "$p: calls failed: $(cat out err)"
    has "calls=200 ok=200 failed=0" out
    want_requests 200 '"status":200'
    limited=$(requests '"status":429')
    [ "$limited" -lt 100 ] || die "$p: $limited requests were rate-limited"
done
finish
