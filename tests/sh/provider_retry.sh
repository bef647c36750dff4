# Transient failures are retried, and retry-after / retry-after-ms (seconds,
# milliseconds, HTTP date) reach the caller: 429, 500, 529, 408, 409, 503,
# both wire formats; the provider's x-should-retry header overrides.
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    script "1 429 retry-after=1" "2 500" "3 529" "4 408" "5 409" "* ok"
    start_server --script script --key "$KEY"
    $RT --provider $p --retries 5 >out 2>err || die "$p: call failed: $(cat out err)"
    has "attempt 0.0: transient status=429 retry_after_ms=1000" out
    has "HTTP 429 from $p: scripted failure 429" out
    has "attempt 0.1: transient status=500" out
    has "attempt 0.2: transient status=529" out
    has "attempt 0.3: transient status=408" out
    has "attempt 0.4: transient status=409" out
    has "call 0: ok attempts=6" out
    want_requests 6
    want_requests 6 '"auth":true'
    no_key

    # retry-after-ms wins over retry-after; an HTTP date is understood
    script "1 503 retry-after=9 retry-after-ms=150" "2 429 retry-after-date=2" "* ok"
    start_server --script script --key "$KEY"
    $RT --provider $p >out 2>err || die "$p: call failed: $(cat out err)"
    has "attempt 0.0: transient status=503 retry_after_ms=150 " out
    grep -Eq "attempt 0.1: transient status=429 retry_after_ms=(1[0-9]{3}|2000) " out ||
        die "$p: HTTP-date retry-after not parsed: $(cat out)"
    has "call 0: ok attempts=3" out

    # x-should-retry decides over the status
    script "1 400 should-retry=true" "2 503 should-retry=false" "* ok"
    start_server --script script --key "$KEY"
    $RT --provider $p --retries 3 >out 2>err && die "$p: should-retry=false was retried"
    has "attempt 0.0: transient status=400" out
    has "call 0: failed attempts=2: HTTP 503 from $p" out
    want_requests 2

    # out of retries: the call fails with the last error
    script "* 500"
    start_server --script script --key "$KEY"
    $RT --provider $p --retries 2 >out 2>err && die "$p: should have failed"
    has "call 0: failed attempts=3: HTTP 500 from $p: scripted failure 500" out
    want_requests 3
done
finish
