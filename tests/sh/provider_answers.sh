# Bad answers: fenced, chatty and trailing-comma JSON are repaired (and
# counted); not-JSON, schema-invalid answers, refusals and truncation are
# retried with the problem told to the model.  Usage is read.
. "$TOP/tests/fake/lib.sh"

for p in anthropic openai; do
    # the fake OpenAI reports 30 of 130 prompt tokens cached; the fake
    # Anthropic reads the cache only for a prefix marked cache_control
    cr=30
    [ $p = anthropic ] && cr=0
    for a in fenced chatty chatty-braces trailing-comma; do
        script "* $a"
        start_server --script script --key "$KEY"
        $RT --provider $p >out 2>err || die "$p $a: $(cat out err)"
        has "call 0: ok attempts=1 repaired=1 in=100 out=20 cache_read=$cr" out
        has "repaired=1 elapsed_ms" out
    done

    script "1 ok"
    start_server --script script --key "$KEY"
    $RT --provider $p >out 2>err || die "$p ok: $(cat out err)"
    has "call 0: ok attempts=1 repaired=0 in=100 out=20 cache_read=$cr" out
    has 'answer={"id":"fake","score":0.5,"seniority":"ic","tags":["fake"]' out

    for a in notjson invalid-missing-field invalid-type invalid-enum out-of-range refusal \
             truncate; do
        script "1 $a" "* ok"
        start_server --script script --key "$KEY"
        $RT --provider $p >out 2>err || die "$p $a: $(cat out err)"
        has "call 0: ok attempts=2" out
        want_requests 2
        want_requests 1 '"n":2,"conn":1,"path":"/v1/'"$( [ $p = anthropic ] && echo messages || echo chat/completions)"'","model":"fake-model","feedback":true'
        case $a in
            notjson) has "the answer holds no JSON object" out ;;
            invalid-missing-field) has "feedback: missing required field 'id'" out ;;
            invalid-type) has "feedback: id: expected string" out ;;
            invalid-enum) has "feedback: seniority: 'not_a_value' is not one of ic, manager, vp" out ;;
            out-of-range) has "feedback: score: 1000000 is out of range 0..1" out ;;
            refusal) has "feedback: the model refused to answer: I can't help with that." out ;;
            truncate) has "feedback: answer cut off at max_tokens" out ;;
        esac
    done

    # a list answer goes through the {"answer": ...} wrapper and back
    start_server --key "$KEY"
    $RT --provider $p --list >out 2>err || die "$p list: $(cat out err)"
    has 'answer=["fake"]' out
done
finish
