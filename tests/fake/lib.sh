# tests/fake/lib.sh: sourced by tests/sh/provider_*.sh.
#
# Starts the fake LLM server (tests/tools/fakeserver.c) on a free port of
# 127.0.0.1, points rt_http (tests/tools/rt_http.c) at it, and offers small
# assertions.  Every test runs in its own directory (the driver's cwd), and
# checks at the end that the key appears in no output, error or log.
# Under the ASan flavour (FLOWC in build/asan) the ASan builds of the tools
# are used when they exist.

TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
case "${FLOWC:-}" in
    */asan/*) TOOLS=$TOP/build/asan/tools ;;
    *) TOOLS=$TOP/build/tools ;;
esac
[ -x "$TOOLS/rt_http" ] && [ -x "$TOOLS/fakeserver" ] || TOOLS=$TOP/build/tools
if [ ! -x "$TOOLS/rt_http" ] || [ ! -x "$TOOLS/fakeserver" ]; then
    echo "skip: build/tools/rt_http or fakeserver not built"
    exit 77
fi
RT=$TOOLS/rt_http
KEY="sk-flowc-test-$$-do-not-print"
unset ANTHROPIC_API_KEY OPENAI_API_KEY ANTHROPIC_BASE_URL OPENAI_BASE_URL
# a proxy from the environment must not catch the fake server's traffic
unset http_proxy https_proxy HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost
SERVER=

die() { echo "FAIL: $*"; exit 1; }

# start_server [fakeserver args...]: log in ./log, port in $PORT, both base
# URLs and keys exported.
start_server() {
    stop_server
    rm -f port log
    "$TOOLS/fakeserver" --port-file port --log log "$@" >/dev/null 2>server.err &
    SERVER=$!
    _i=0
    while [ ! -s port ]; do
        _i=$((_i + 1))
        [ $_i -lt 200 ] || die "fake server did not start: $(cat server.err)"
        sleep 0.05
    done
    PORT=$(cat port)
    export ANTHROPIC_BASE_URL="http://127.0.0.1:$PORT"
    export OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1"
    export ANTHROPIC_API_KEY="$KEY" OPENAI_API_KEY="$KEY"
}

stop_server() {
    if [ -n "$SERVER" ]; then
        kill "$SERVER" 2>/dev/null
        wait "$SERVER" 2>/dev/null
        SERVER=
    fi
}

# script LINES...: writes the fake server's script file ./script.
script() { printf '%s\n' "$@" >script; }

# has PATTERN FILE: FILE contains the fixed string PATTERN.
has() { grep -qF -- "$1" "$2" || die "$2 lacks '$1': $(head -c 2000 "$2")"; }
hasnt() { ! grep -qF -- "$1" "$2" || die "$2 has '$1'"; }

# requests [PATTERN]: how many logged requests (matching PATTERN).
requests() { grep -cF -- "${1:-\"n\"}" log; }

# want_requests N [PATTERN]
want_requests() {
    _got=$(requests "$2")
    [ "$_got" = "$1" ] || die "expected $1 requests ${2:+matching $2 }in the log, got $_got: $(cat log)"
}

# No file here (outputs, logs, journals, binaries, request dumps) holds the key.
no_key() {
    ! grep -rqF -- "$KEY" . || die "the key appears in $(grep -rlF -- "$KEY" .)"
}

finish() { no_key; stop_server; echo ok; exit 0; }
trap stop_server EXIT
