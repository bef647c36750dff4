# Proxies work through libcurl's usual environment variables: with
# http_proxy pointing at the fake server, a request for a base URL that does
# not resolve reaches it as a proxy request, and is answered.
. "$TOP/tests/fake/lib.sh"

unset no_proxy NO_PROXY
for p in anthropic openai; do
    start_server --key "$KEY"
    http_proxy="http://127.0.0.1:$PORT" $RT --provider $p \
        --base-url "http://api.$p.invalid$( [ $p = openai ] && echo /v1)" >out 2>err ||
        die "$p through the proxy: $(cat out err)"
    has "call 0: ok attempts=1" out
    want_requests 1 '"proxied":true'
done
# without the proxy the same base URL does not resolve
$RT --provider anthropic --base-url http://api.anthropic.invalid --retries 0 >out 2>err &&
    die "an unresolvable host answered"
has "request to anthropic failed" out
finish
