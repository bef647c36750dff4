# Fatal statuses (400, 401, 403, 404, 413) are not retried and name the
# status and the provider's message; a wrong key gives a 401 and the key is
# never printed, even when the provider's message quotes it.
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    for st in 400 403 404 413; do
        script "* $st"
        start_server --script script --key "$KEY"
        $RT --provider $p --retries 3 >out 2>err && die "$p: $st should fail"
        has "call 0: failed attempts=1: HTTP $st from $p: scripted failure $st" out
        want_requests 1
    done

    # a wrong key
    start_server --key "the-right-key"
    $RT --provider $p --retries 3 >out 2>err && die "$p: a wrong key should fail"
    has "attempt 0.0: fatal status=401" out
    has "HTTP 401 from $p: " out
    want_requests 1 '"auth":false'

    # the provider's message quotes the key: scrubbed
    script "* 401-leak-key"
    start_server --script script
    $RT --provider $p >out 2>err && die "$p: 401 should fail"
    has "Incorrect API key provided: ***" out
    no_key
done
finish
