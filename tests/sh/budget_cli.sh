#!/bin/sh
# budget_cli.sh: budgets from outside the source.  --budget-usd/-tokens/-time
# replace the workflow's caps (a phase cap above the new one is clipped, and
# the summary says so); a budget whose value is a workflow parameter takes
# the flag's value (null: no cap); a run stopped by a budget resumes with a
# higher one without --force and without paying again for the calls it made.
fail() { echo "FAIL: $*"; exit 1; }
cat >bc.flow <<'FLOW'
import "models"
schema R { x: string }
agent a(s: string) -> R {
  model: mock
  max_tokens: 50
  prompt: "say {{ s }}"
}
workflow bc(max_usd: float = 0.01, max_tok: int? = null, limit: string = "1h",
            items: int = 10) -> list<R> {
  budget { usd: max_usd, tokens: max_tok, time: limit }
  phase work {
    budget { usd: 1.0 }
    let ids = for i in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12] where i <= items { "item {{ i }}" }
    return parallel for s in ids (concurrency: 1) { a(s) }
  }
}
FLOW
"$FLOWC" build bc.flow -o bc || fail "build"

# the declared caps: all 10 calls fit; the phase cap of $1 is clipped
./bc --mock --no-journal >out 2>err || fail "plain run: $(cat err)"
[ "$(wc -l <out)" -eq 10 ] || fail "plain run answered $(wc -l <out) items"
grep -q "budget: phase 'work' usd cap \$1.0000 clipped to the workflow's \$0.0100" err ||
    fail "no clip line: $(cat err)"

# --budget-usd below one call's hold: stops before any call, exit 4
./bc --mock --no-journal --budget-usd 0.0001 >out 2>err
[ $? -eq 4 ] || fail "--budget-usd 0.0001 did not stop the run: $(cat err)"
grep -q "stopped by the workflow's usd budget" err || fail "no stop line: $(cat err)"
grep -q 'budget: the workflow.s usd cap is \$0.0001 (--budget-usd)' err || fail "no cli line: $(cat err)"

# a parameter's value: --max-tok 500 stops the run partway (about 60 tokens a call)
./bc --mock --no-journal --max-tok 500 >out 2>err
[ $? -eq 4 ] || fail "--max-tok 500 did not stop the run: $(cat err)"
grep -q "stopped by the workflow's tokens budget" err || fail "no tokens stop: $(cat err)"
# --budget-tokens overrides the parameter
./bc --mock --no-journal --max-tok 500 --budget-tokens 100000 >out 2>err || fail "override: $(cat err)"
# a time parameter that is no duration, and bad flag values: exit 2
./bc --mock --no-journal --limit soon >out 2>err
[ $? -eq 2 ] && grep -q "parameter 'limit' sets a time budget" err || fail "bad duration: $(cat err)"
for bad in "--budget-usd -1" "--budget-usd x" "--budget-tokens 0" "--budget-time 5y"; do
    ./bc --mock --no-journal $bad >out 2>err
    [ $? -eq 2 ] || fail "$bad was accepted"
done
./bc --mock --no-journal --budget-time 90s --budget-tokens 5000 >out 2>err || fail "90s: $(cat err)"
grep -q 'tokens cap is 5000 (--budget-tokens)' err && grep -q 'time cap is 90.0 s' err ||
    fail "time and tokens caps not said: $(cat err)"

# stopped by a budget, resumed with a higher one: no --force needed, no call paid twice
./bc --mock --max-usd 0.001 >out 2>err
[ $? -eq 4 ] || fail "0.001 did not stop: $(cat err)"
made=$(sqlite3 .flow/bc.db "SELECT count(*) FROM calls_all")
[ "$made" -gt 0 ] && [ "$made" -lt 10 ] || fail "the stopped run made $made calls"
./bc --mock --resume --budget-usd 0.05 >out 2>err || fail "resume: $(cat err)"
[ "$(wc -l <out)" -eq 10 ] || fail "resumed run answered $(wc -l <out) items"
grep -q "$made calls answered from the journal" err || fail "not $made cached: $(cat err)"
[ "$(sqlite3 .flow/bc.db "SELECT count(*) FROM calls_all")" -eq 10 ] || fail "calls made twice"
# a parameter read elsewhere than budgets is an argument: changing it needs --force
./bc --mock --max-usd 0.001 --items 12 >out 2>err
./bc --mock --resume --items 11 >out 2>err
[ $? -eq 2 ] || fail "a changed --items was resumed without --force"

# runs --cost: each run's dollars, by tier and by phase, and their mean
./bc runs --cost >cost || fail "runs --cost"
head -1 cost | grep -q 'RUN .*USD .*STANDARD .*BATCH .*CACHE SAVED .*work' || fail "cost header: $(cat cost)"
[ "$(grep -c '^20' cost)" -eq 2 ] && grep -q '^mean ' cost || fail "cost rows: $(cat cost)"
want=$(sqlite3 .flow/bc.db "SELECT printf('%.4f', total(usd)) FROM calls_all WHERE run_id = (SELECT id FROM runs ORDER BY started_ms LIMIT 1)")
head -2 cost | tail -1 | awk -v w="$want" '$4 != w || $5 != w || $6 != "0.0000" || $8 != w { exit 1 }' ||
    fail "first run's cost is not $want at the standard price: $(cat cost)"
[ "$(sqlite3 .flow/bc.db "SELECT count(*) FROM calls_all WHERE tier <> 'standard'")" -eq 0 ] || fail "tier"
./bc runs --cost --last 1 >cost1 && [ "$(grep -c '^20' cost1)" -eq 1 ] || fail "--last 1: $(cat cost1)"

# flowc estimate --journal: the expected sizes are the journal's averages
command -v jq >/dev/null || exit 0
"$FLOWC" estimate bc.flow --journal .flow/bc.db --format=json >est.json || fail "estimate --journal"
want=$(sqlite3 .flow/bc.db "SELECT avg(tokens_out) FROM calls_all WHERE status = 'ok'")
jq -e --argjson w "$want" '.phases[] | select(.phase == "work") | .agents[0]
    | .from_journal and ((.expected.tokens_out / .expected.calls) - $w | fabs) < 0.01' est.json \
    >/dev/null || fail "estimate does not take the journal's averages ($want): $(cat est.json)"
exit 0
