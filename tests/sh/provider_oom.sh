# Allocation failures (the fr_alloc hook) at every step of an attempt:
# building the request, the exchange, parsing the answer.  Each attempt
# ends whole (an answer with a value, or an error with a message), nothing
# leaks or crashes (the ASan flavour checks), none is called fatal (a
# failed allocation is worth another attempt), and calls work again after.
# The first few hundred failures land in the agent's schema part, which is
# built until it succeeds once; the rest in the per-call path.
. "$TOP/tests/fake/lib.sh"

script "* ok"
for p in anthropic openai; do
    start_server --key "$KEY"
    $RT --provider $p --oom 1200 >out 2>err || die "$p: $(tail -5 out; cat err)"
    has "0 broken" out
    has "transient out of memory building the request" out
    hasnt "fatal" out
    grep -q "^oom [0-9]*: transient out of memory reading the answer" out ||
        die "$p: no failure ever reached the answer's reading: $(tail -3 out)"
    $RT --provider $p >out 2>err || die "$p after the OOM loop: $(cat out err)"
done
finish
