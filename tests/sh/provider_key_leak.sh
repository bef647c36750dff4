# The API key never leaks, even in part.  A provider's error text (cut to
# 1,024 bytes) or refusal (cut to 200) that ends with the key, padded so that
# the cut falls at every place inside it, shows no piece of it: the key is
# scrubbed before the text is cut, and a piece of 8 bytes or more left at a
# cut is scrubbed too.  And once the calls are done and the providers freed,
# no copy of the key is left in the process's memory (libcurl's header lists
# and request buffers are cleared before they are freed; the audit found
# over a hundred copies in a core dump).
. "$TOP/tests/fake/lib.sh"
piece=$(printf %s "$KEY" | cut -c1-8)       # any scrubbed piece starts with this

for p in anthropic openai; do
    # "HTTP 500 from anthropic: " is 25 bytes, "HTTP 500 from openai: " 22
    head=$( [ $p = anthropic ] && echo 25 || echo 22)
    : >script
    n=0
    for k in $(seq 1 40); do                 # k bytes of the key before the cut
        n=$((n + 1)); echo "$n 500-straddle-key $((1024 - head - k))" >>script
    done
    for k in $(seq 1 40); do                 # the same for a refusal's 200 bytes
        n=$((n + 1)); echo "$n refusal-straddle-key $((200 - k))" >>script
    done
    start_server --key "$KEY" --script script
    $RT --provider $p --calls $n --retries 0 >out 2>err
    [ "$(grep -c '^call [0-9]*: failed attempts=1: HTTP 500' out)" = 40 ] || die "$p: $(head -c 600 out)"
    [ "$(grep -c '^call [0-9]*: failed attempts=1: the model refused to answer: AAA' out)" = 40 ] ||
        die "$p: refusals: $(grep -m3 refused out)"
    hasnt "$piece" out
    hasnt "$piece" err
    has "AAAAAAAA***" out                    # the scrubbed piece is marked
    want_requests $n

    start_server --key "$KEY"
    var=$( [ $p = anthropic ] && echo ANTHROPIC_API_KEY || echo OPENAI_API_KEY)
    $RT --provider $p --calls 200 --concurrency 8 --quiet --scan-key $var >out 2>err ||
        die "$p: $(cat out err)"
    has "key copies in memory: 0" out
done
finish
