# Usage a provider reports beyond what the attempt held, on both wires.
# Budgets hold each attempt's worst case, so they can only be kept if no
# answer costs more than its hold: one that does is charged as reported,
# said at once naming the call, and stops a run with a usd or tokens cap (no
# request starts after it; exit 4, --resume goes on); without a cap it is a
# warning.  The summary counts it either way.  Usage no request could cost
# (10^15 tokens, counts that are strings or negative) is a bad answer: not
# used, charged the attempt's hold, retried without telling the model.
# (A server reporting more than the hold used to take a $0.02 budget to
# $0.06, and 10^15 tokens ended a $1 run "done" with $4,398,046 spent.)
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
cat >ov.flow <<'FLOW'
model anth { provider: anthropic  name: "claude-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5 }
model oai { provider: openai  name: "gpt-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5 }
schema Note { title: string }
agent a(mode: string, n: int) -> Note { model: anth  max_tokens: 100  retries: 2  prompt: "[[{{ mode }}]] note {{ n }}" }
agent o(mode: string, n: int) -> Note { model: oai  max_tokens: 100  retries: 2  prompt: "[[{{ mode }}]] note {{ n }}" }
workflow ov(wire: string, mode: string) -> list<Note> {
  return parallel for n in [1, 2, 3, 4] (concurrency: 1) {
    let m = if n == 2 { mode } else { "fake:ok" }
    if wire == "a" { a(m, n) } else { o(m, n) }
  }
}
FLOW
"$FLOWC" build ov.flow -o ov >build.err 2>&1 || die "build: $(cat build.err)"

# usd of the summary's total row
total_usd() { awk '$1 == "total" { print $(NF - 1); exit }' "$1" | tr -d '$'; }

for w in a o; do
    case $w in a) agent=a; p=anthropic ;; *) agent=o; p=openai ;; esac
    # above the hold, with a usd budget: the run stops after that answer
    start_server --key "$KEY"
    rm -rf .flow ov.partial.jsonl
    ./ov --wire $w --mode fake:usage-above --budget-usd 1 --retry-base-ms 1 --concurrency 1 \
        >out 2>err; st=$?
    [ $st = 4 ] || die "$w: above the hold with a budget: exit $st: $(cat err)"
    grep -q "^error: ov.flow:[0-9:]*: item 1: agent '$agent' (model [a-z]*) reported [0-9]* input and 20 output tokens (\$0\.[0-9]*), more than its attempt held ([0-9]* tokens, \$0\.[0-9]*); no request starts after it, since no budget can be kept against usage above what was held$" err ||
        die "$w: no message naming the call: $(cat err)"
    has "error: stopped to keep the workflow's budget (spent \$0.00" err
    has "1 answer reported more usage than its attempt held, charged as reported" err
    has "finished: 2 items of the interrupted fan-out, written to ov.partial.jsonl" err
    want_requests 2
    # --resume goes on: the answer above its hold is journaled, the rest answered
    ./ov --wire $w --mode fake:usage-above --resume --retry-base-ms 1 --concurrency 1 >out 2>err ||
        die "$w: resume: exit $?: $(cat err)"
    [ "$(wc -l <out)" = 4 ] || die "$w: resume answered $(wc -l <out)"
    want_requests 4
    [ ! -e ov.partial.jsonl ] || die "$w: the partial file outlived the finished run"

    # a tokens budget stops it too
    ./ov --wire $w --mode fake:usage-above --budget-tokens 1000000 --no-journal --concurrency 1 \
        >out 2>err; st=$?
    [ $st = 4 ] || die "$w: above the hold with a tokens budget: exit $st: $(cat err)"
    grep -q "error: stopped to keep the workflow's budget (spent [0-9]* of 1000000 tokens when it stopped): ov.flow" err ||
        die "$w: tokens stop: $(cat err)"

    # no budget: a warning, the run goes on
    ./ov --wire $w --mode fake:usage-above --no-journal --concurrency 1 >out 2>err ||
        die "$w: above the hold without a budget: exit $?: $(cat err)"
    [ "$(wc -l <out)" = 4 ] || die "$w: answers: $(cat out)"
    grep -q "^warning: ov.flow:[0-9:]*: item 1: agent '$agent' .* more than its attempt held (.*); charged as reported$" err ||
        die "$w: no warning: $(cat err)"
    has "1 answer reported more usage than its attempt held, charged as reported (the first: ov.flow:" err

    # 10^15 tokens, once: not used, retried without feedback, charged the hold
    start_server --key "$KEY"
    ./ov --wire $w --mode fake-once:usage-huge --budget-usd 1 --no-journal --retry-base-ms 1 \
        --concurrency 1 >out 2>err || die "$w: huge usage once: exit $?: $(cat err)"
    [ "$(wc -l <out)" = 4 ] || die "$w: answers: $(cat out)"
    has "1 answer reported usage no request could cost: not used, charged what its attempt held, retried" err
    want_requests 5
    want_requests 0 '"feedback":true'
    usd=$(total_usd err)
    awk -v u="$usd" 'BEGIN { exit !(u > 0.0005 && u < 0.01) }' || die "$w: huge usage cost \$$usd"
    # counts that are no counts ("100", -5): the same, never $0
    start_server --key "$KEY"
    ./ov --wire $w --mode fake-once:usage-wrong --no-journal --retry-base-ms 1 --concurrency 1 \
        >out 2>err || die "$w: wrong usage once: exit $?: $(cat err)"
    has "1 answer reported usage no request could cost" err
    want_requests 5
    # whole counts written as reals (130.0) are counts: charged, nothing said
    ./ov --wire $w --mode fake:usage-real --no-journal --concurrency 1 >out 2>err ||
        die "$w: real counts: exit $?: $(cat err)"
    hasnt "no request could cost" err
    hasnt "without usage" err
    [ "$(awk '$1 == "total" { print $6; exit }' err)" -gt 100 ] || die "$w: real counts not counted: $(cat err)"
    # every attempt absurd: the call fails, naming why
    ./ov --wire $w --mode fake:usage-huge --no-journal --retry-base-ms 1 --concurrency 1 \
        >out 2>err; st=$?
    [ $st = 1 ] || die "$w: huge usage always: exit $st: $(cat err)"
    grep -q "item 1: agent '$agent' (model [a-z]*): the answer from $p reported usage no request could cost ([0-9]* input tokens for a request of [0-9]* bytes): not used, charged what the attempt held after 3 attempts" err ||
        die "$w: no reason: $(cat err)"
done

# a phase's cap alone stops it too, and the phases after it do not run
cat >ph.flow <<'FLOW'
model anth { provider: anthropic  name: "claude-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5 }
schema Note { title: string }
agent a(mode: string, n: int) -> Note { model: anth  max_tokens: 100  retries: 2  prompt: "[[{{ mode }}]] phase note {{ n }}" }
workflow ph() -> list<Note> {
  phase first {
    budget { usd: 0.5 }
    let _xs = parallel for n in [1, 2, 3, 4] (concurrency: 1) { a(if n == 2 { "fake:usage-above" } else { "fake:ok" }, n) }
  }
  phase second { return parallel for n in [5, 6] { a("fake:ok", n) } }
}
FLOW
"$FLOWC" build ph.flow -o ph >build.err 2>&1 || die "build: $(cat build.err)"
start_server --key "$KEY"
./ph --no-journal >out 2>err; st=$?
[ $st = 4 ] || die "phase cap: exit $st: $(cat err)"
has "error: stopped to keep the budget of phase 'first' (spent \$0.00" err
has "not run: phase 'second'" err
want_requests 2

# a batch fan-out's answers (at the batch price) are checked alike: one above
# its request's hold is charged and said, the batch's other answers are
# taken (paid for already); one with usage no request could cost is not
# used, and its normal call (its retry) is checked too
export FLOWRT_BATCH_POLL_MS=50
cat >bu.flow <<'FLOW'
import "models"
schema R { x: string }
agent a(s: string) -> R { model: claude_haiku  max_tokens: 100  retries: 1  prompt: "say {{ s }}" }
agent o(s: string) -> R { model: gpt_luna  max_tokens: 100  retries: 1  prompt: "say {{ s }}" }
workflow bu(mode: string, openai: bool = false) -> list<R> {
  let ids = for i in [1, 2, 3, 4] { if i == 2 { "[[fake:{{ mode }}]] item {{ i }}" } else { "item {{ i }}" } }
  return parallel for s in ids (batch: true, on_error: skip) { if openai { o(s) } else { a(s) } }
}
FLOW
"$FLOWC" build bu.flow -o bu >build.err 2>&1 || die "build: $(cat build.err)"
for flag in "" --openai; do
    start_server --key "$KEY" --batch-delay 100
    ./bu $flag --mode usage-above --budget-usd 1 --no-journal >out 2>err ||
        die "batch$flag: above the hold: exit $?: $(cat err)"
    [ "$(wc -l <out)" = 4 ] || die "batch$flag: $(wc -l <out) answers"
    grep -q "^error: bu.flow:[0-9:]*: item 1: agent '[ao]' (model [a-z_]*) reported [0-9]* input and 20 output tokens (\$0\.[0-9]*), more than its attempt held" err ||
        die "batch$flag: no message naming the call: $(cat err)"
    has "1 answer reported more usage than its attempt held" err
    want_requests 0 '"action":"ok"'
    ./bu $flag --mode usage-huge --no-journal --retry-base-ms 1 >out 2>err ||
        die "batch$flag: huge usage: exit $?: $(cat err)"
    [ "$(wc -l <out)" = 3 ] || die "batch$flag: $(wc -l <out) answers"
    has "2 answers reported usage no request could cost: not used, charged what their attempts held, retried" err
    has "reported usage no request could cost (" bu.skipped.jsonl
done
finish
