# Many workers at once: every call answered, and connections are reused
# across workers (keep-alive) instead of one per request; 300 calls in
# flight at once all come back.
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    start_server --key "$KEY"
    $RT --provider $p --calls 400 --concurrency 40 --quiet >out 2>err ||
        die "$p: calls failed: $(cat out err)"
    has "calls=400 ok=400 failed=0 attempts=400" out
    want_requests 400
    conns=$(sed 's/.*"conn":\([0-9]*\).*/\1/' log | sort -un | wc -l)
    [ "$conns" -le 48 ] || die "$p: $conns connections for 400 requests from 40 workers"
done
# 300 calls in flight at once, each answered after 300 ms
start_server --key "$KEY" --latency 300
$RT --provider anthropic --calls 300 --concurrency 300 --quiet >out 2>err ||
    die "300 in flight: $(cat out err)"
has "calls=300 ok=300 failed=0 attempts=300" out
finish
