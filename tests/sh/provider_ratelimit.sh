# A rate-limited fan-out slows down as a whole: 64 workers against a strict
# server (no burst, whole-second retry-after, rate-limit headers) finish
# every call, and the shared limiter, pacing from the headers, keeps the
# 429s few (each worker on its own would collect hundreds): first a limit of
# 50 requests a second, then a limit of tokens a minute about as tight
# (Anthropic's input tokens, OpenAI's input and max_tokens together).
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    start_server --rate 50 --key "$KEY"
    $RT --provider $p --calls 100 --concurrency 64 --retries 5 --quiet >out 2>err ||
        die "$p: calls failed: $(cat out err)"
    has "calls=100 ok=100 failed=0" out
    want_requests 100 '"status":200'
    limited=$(requests '"status":429')
    [ "$limited" -lt 30 ] || die "$p: $limited requests were rate-limited"
done

# tokens: a request costs bytes / 4 (+ max_tokens for OpenAI); about 50 a second
start_server --tpm 460000 --key "$KEY"
$RT --provider anthropic --calls 100 --concurrency 64 --retries 5 --quiet >out 2>err ||
    die "anthropic tokens: calls failed: $(cat out err)"
has "calls=100 ok=100 failed=0" out
limited=$(requests '"status":429')
[ "$limited" -lt 30 ] || die "anthropic: $limited requests went over the token limit"
start_server --tpm 2900000 --key "$KEY"
$RT --provider openai --calls 100 --concurrency 64 --retries 5 --quiet >out 2>err ||
    die "openai tokens: calls failed: $(cat out err)"
has "calls=100 ok=100 failed=0" out
limited=$(requests '"status":429')
[ "$limited" -lt 30 ] || die "openai: $limited requests went over the token limit"
finish
