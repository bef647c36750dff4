# Slow answers past the attempt's timeout, hangs and dropped connections
# are transient: retried, then answered.  A refused connection too.
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    script "1 slow 3000" "2 hang" "3 drop" "* ok"
    start_server --script script --key "$KEY"
    $RT --provider $p --timeout-ms 400 --retries 3 >out 2>err ||
        die "$p: call failed: $(cat out err)"
    has "attempt 0.0: transient status=0 retry_after_ms=-1 error=no answer from $p within 400 ms" out
    has "attempt 0.1: transient status=0 retry_after_ms=-1 error=no answer from $p within 400 ms" out
    has "attempt 0.2: transient status=0 retry_after_ms=-1 error=request to $p failed" out
    has "call 0: ok attempts=4" out
    want_requests 4
    # a slow answer within the timeout is simply taken
    script "* slow 100"
    start_server --script script --key "$KEY"
    $RT --provider $p --timeout-ms 5000 >out 2>err || die "$p: slow call failed"
    has "call 0: ok attempts=1" out
done

# nobody listening
stop_server
$RT --provider anthropic --retries 1 >out 2>err && die "a closed port should fail"
has "call 0: failed attempts=2: request to anthropic failed" out
finish
