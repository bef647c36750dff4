# estimate_bound.sh: flowc estimate's bounds hold against the fake server.
# Every example runs against it twice: with --usage count (usage counted
# from each request with flowc's token approximation), every call's input
# tokens are at most the estimate's worst input of its agent; with --usage
# max (every answer as long as max_tokens allows, its text padded to that
# length, and enums at their last value, here the costlier paths), what the
# run spent is at most the estimate's worst case; and each agent's worst case
# for one attempt a call, times the calls the run made, is at least what
# they spent and within 2x of it (no answer here is retried).
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
[ -x "$FLOWC" ] || exit 77
command -v jq >/dev/null && command -v sqlite3 >/dev/null || { echo "no jq or sqlite3"; exit 77; }

run_example() {    # NAME BIN: as provider_examples.sh runs them, traced
    args=$("$2" --help 2>&1 | sed -n \
        -e 's|^  \(--[a-z-]*\) STRING .*(default "\(examples/[^"]*\)").*|\1 '"$TOP"'/\2|p' |
        tr '\n' ' ')
    rm -f "$1.trace"
    # shellcheck disable=SC2086
    rm -f "$1.db"; "$2" $args --journal "./$1.db" --quiet --retry-base-ms 10 --trace "$1.trace" >"$1.out" 2>"$1.err"
    st=$?
}

checked=0
for f in "$TOP"/examples/*.flow; do
    n=$(basename "$f" .flow)
    "$FLOWC" build "$f" -o "./$n" >build.err 2>&1 || continue
    (cd "$TOP" && "$FLOWC" estimate "examples/$n.flow" --format=json) >"$n.est" ||
        die "$n: estimate failed"
    start_server --key "$KEY" --usage count
    run_example "$n" "./$n"
    [ $st = 0 ] || [ $st = 3 ] || [ $st = 4 ] || die "$n: exit $st: $(tail -5 "$n.err")"
    # each call: input tokens <= its agent's worst first-attempt input
    bad=$(jq -s --slurpfile e "$n.est" '
        [$e[0].phases[].agents[] | {key: .agent, value: .input_tokens_per_call.worst}]
        | group_by(.key) | map({key: .[0].key, value: (map(.value) | max)}) | from_entries as $w
        | [.[] | select(.type == "call" and .attempt == 1 and .cached == false)
           | select(."gen_ai.usage.input_tokens" > $w[.agent])
           | "\(.agent): \(."gen_ai.usage.input_tokens") > \($w[.agent])"]
        | .[]' "$n.trace")
    [ -z "$bad" ] || die "$n: a call's input above the estimate: $bad"
    calls=$(jq -s '[.[] | select(.type == "call")] | length' "$n.trace")
    [ "$calls" -gt 0 ] || die "$n: no call traced"
    # at max_tokens: spent <= worst case, and within 2x of one attempt a call
    start_server --key "$KEY" --usage max --enum last
    run_example "$n" "./$n"
    [ $st = 0 ] || [ $st = 3 ] || [ $st = 4 ] || die "$n at max: exit $st: $(tail -5 "$n.err")"
    spent=$(jq -s '[.[] | select(.type == "call") | .cost_usd] | add // 0' "$n.trace")
    worst=$(jq '.total.worst.usd' "$n.est")
    awk -v s="$spent" -v w="$worst" 'BEGIN { exit !(s <= w + 1e-9) }' ||
        die "$n: spent \$$spent at max_tokens, above the worst case \$$worst"
    # per call: the worst case for one attempt, scaled to the calls made
    # the calls made by agent and model, from the trace (one line a call;
    # the journal keeps no model a call)
    jq -s '[.[] | select(.type == "call")] | group_by([.agent, ."gen_ai.request.model"])
        | map({agent: .[0].agent, model: .[0]."gen_ai.request.model", calls: length})' \
        "$n.trace" >"$n.made"
    once=$(jq -n --slurpfile e "$n.est" --slurpfile m "$n.made" '
        [$e[0].phases[].agents[] | {key: "\(.agent)/\(.model_name)", calls: .worst.calls,
                                    usd: .worst.usd_one_attempt}]
        | group_by(.key) | map({key: .[0].key, value:
            ((map(.usd) | add) / ([(map(.calls) | add), 1e-9] | max))}) | from_entries as $per
        | [$m[0][] | .calls * ($per["\(.agent)/\(.model)"] // 0)] | add // 0')
    jspent=$(sqlite3 "$n.db" "SELECT coalesce(sum(usd), 0) FROM calls_all")
    awk -v s="$jspent" -v o="$once" 'BEGIN { exit !(o >= s - 1e-9 && o <= 2 * s + 1e-9) }' ||
        die "$n: one attempt a call, scaled to the calls made: \$$once against \$$jspent spent"
    echo "$n: spent $spent at max_tokens, worst case $worst, one attempt a call scaled $once"
    checked=$((checked + 1))
done
[ $checked -ge 6 ] || die "only $checked examples checked"
finish
