# Broken answers from a server that is up are transient (retried), each with
# a message that says what was wrong: a gzip body that does not inflate (was
# fatal), a header over libcurl's 100 KB (was "out of memory"), a reply that
# is not HTTP (was fatal), a 200 whose body is the provider's error object
# (was a bad answer told to the model), a retry-after-ms of "nan".
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    script "1 bad-gzip" "2 huge-header" "3 bad-status" "4 error-200" "5 429 retry-after-ms-raw=nan" \
           "* ok"
    start_server --script script --key "$KEY"
    $RT --provider $p --retries 5 >out 2>err || die "$p: $(cat out err)"
    has "attempt 0.0: transient status=0 retry_after_ms=-1 error=request to $p failed: Error while processing content unencoding" out
    has "attempt 0.1: transient status=0 retry_after_ms=-1 error=answer from $p refused: a header larger than libcurl accepts (100 KB)" out
    has "attempt 0.2: transient status=0 retry_after_ms=-1 error=answer from $p is not HTTP: " out
    has "attempt 0.3: transient status=200 retry_after_ms=-1 error=HTTP 200 from $p with an error instead of an answer: Internal server error" out
    has "attempt 0.4: transient status=429 retry_after_ms=-1 " out
    has "call 0: ok attempts=6" out
    hasnt "out of memory" out
    want_requests 6
done
finish
