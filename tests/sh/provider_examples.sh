# Every example, compiled, runs against the fake server through both base
# URL variables (ANTHROPIC_BASE_URL, OPENAI_BASE_URL): answers synthesized
# from each agent's schema pass the runtime's validation.  Then one example
# again through faults: every request fails once (500, 429), and answers
# come fenced or invalid first; the run still finishes, and retries show in
# the server's log.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
[ -x "$FLOWC" ] || exit 77

# run_example NAME BIN: runs with file flags pointed at examples/data and
# outputs kept here; status in $st.
run_example() {
    args=$("$2" --help 2>&1 | sed -n \
        -e 's|^  \(--[a-z-]*\) STRING .*(default "\(examples/[^"]*\)").*|\1 '"$TOP"'/\2|p' \
        -e 's|^  \(--[a-z-]*\) STRING .*(default "build/demo/\([^"]*\)").*|\1 ./\2|p' |
        tr '\n' ' ')
    # shellcheck disable=SC2086
    "$2" $args --journal "./$1.db" --retry-base-ms 10 >"$1.out" 2>"$1.err"
    st=$?
}

start_server --key "$KEY"
for f in "$TOP"/examples/*.flow; do
    n=$(basename "$f" .flow)
    # an example that does not build is build_warnings.sh's failure, not this test's
    if ! "$FLOWC" build "$f" -o "./$n" >build.err 2>&1; then
        echo "note: $n does not build, not run: $(head -1 build.err)"
        continue
    fi
    run_example "$n" "./$n"
    # 3: waiting for approval is how a workflow with approve() ends its first run
    [ $st = 0 ] || [ $st = 3 ] || die "$n: exit $st against the fake server: $(tail -20 "$n.err")"
done
[ "$(requests '"status":200')" -gt 0 ] || die "no example called the fake server"
want_requests 0 '"auth":false'

# faults: every call's first attempt fails; every call then succeeds
n=crm_hygiene
for fault in "500" "529 retry-after-ms=20" "503" "drop" "invalid-missing-field" "out-of-range" \
             "refusal" "truncate" "notjson"; do
    script "first $fault"
    start_server --key "$KEY" --script script
    run_example $n ./$n
    [ $st = 0 ] || [ $st = 3 ] || die "$n with '$fault' first: exit $st: $(tail -20 $n.err)"
    hasnt "skipped" $n.err
    action=${fault%% *}
    faults=$(requests "\"action\":\"$action\"")
    [ "$faults" -gt 0 ] || die "'$fault': the script never applied"
    want_requests "$faults" '"action":"ok"'
    case $fault in
        [0-9]*|drop) want_requests 0 '"feedback":true' ;;
        *) want_requests "$faults" '"feedback":true' ;;
    esac
done
# a server allowing 20 requests per second: rate-limited, nothing lost
start_server --key "$KEY" --rate 20
run_example $n ./$n
[ $st = 0 ] || [ $st = 3 ] || die "$n at 20 requests/s: exit $st: $(tail -20 $n.err)"
hasnt "skipped" $n.err
# (the limiter paces from the rate-limit headers, so it may see no 429 at all)
[ "$(requests '"status":200')" -gt 0 ] || die "no request went through"
# fenced and chatty answers are repaired, not retried
for fault in fenced chatty trailing-comma; do
    script "* $fault"
    start_server --key "$KEY" --script script
    run_example $n ./$n
    [ $st = 0 ] || [ $st = 3 ] || die "$n with '$fault': exit $st: $(tail -20 $n.err)"
    want_requests 0 '"feedback":true'
    hasnt "skipped" $n.err
done
finish
