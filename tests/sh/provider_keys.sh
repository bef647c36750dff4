# API keys come only from the environment: a missing key fails before any
# request, naming the variable; a model's own key variable is honoured; an
# OpenAI-compatible server on this machine (Ollama, vLLM) may go without.
. "$TOP/tests/fake/lib.sh"

start_server --key "$KEY"
unset ANTHROPIC_API_KEY OPENAI_API_KEY
$RT --provider anthropic >out 2>err; st=$?
[ $st = 2 ] || die "missing key: exit $st, expected 2"
has "model 'm' (anthropic) needs an API key: ANTHROPIC_API_KEY is not set" err
$RT --provider anthropic --key-env MY_TEAM_KEY >out 2>err && die "missing MY_TEAM_KEY accepted"
has "MY_TEAM_KEY is not set" err
$RT --provider openai --base-url https://api.openai.invalid/v1 >out 2>err &&
    die "a remote openai server without a key was accepted"
has "OPENAI_API_KEY is not set" err
want_requests 0

# a compiled workflow names every missing variable once, before any request
FLOWC=${FLOWC:-$TOP/build/flowc}
for ex in router crm_hygiene; do
    "$FLOWC" build "$TOP/examples/$ex.flow" -o ./$ex >build.err 2>&1 || die "$ex: $(cat build.err)"
done
# (OPENAI_BASE_URL at the fake server is local: that model would need no key)
env -u OPENAI_BASE_URL ./router --journal ./r.db >out 2>err; st=$?
[ $st = 2 ] || die "router without keys: exit $st"
has "OPENAI_API_KEY is not set" err
has "ANTHROPIC_API_KEY is not set" err
# one error line per missing key, each one an "error:" line for tools
[ "$(grep -c '^error: model .* needs an API key' err)" = 2 ] || die "router: not one error line per key: $(cat err)"
./crm_hygiene --journal ./c.db >out 2>err; st=$?
[ $st = 2 ] || die "crm_hygiene without keys: exit $st"
[ "$(grep -c ANTHROPIC_API_KEY err)" = 1 ] || die "ANTHROPIC_API_KEY not named exactly once: $(cat err)"
want_requests 0

# a key under the model's own variable
MY_TEAM_KEY=$KEY $RT --provider anthropic --key-env MY_TEAM_KEY >out 2>err ||
    die "MY_TEAM_KEY not used: $(cat out err)"
has "call 0: ok attempts=1" out

# a local OpenAI-compatible server without a key: no Authorization header
start_server
$RT --provider openai >out 2>err || die "local openai without a key: $(cat out err)"
has "call 0: ok attempts=1" out
want_requests 1
finish
