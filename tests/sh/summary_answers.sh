# The run summary counts, per phase and in total, every attempt's repaired
# answer (fences, prose, trailing commas), answer that failed validation,
# refusal, cut-off at max_tokens, unparsable answer and transient error (429s
# apart), in a second table under the main one.  Against the fake server in
# both wire formats, then the mock: FLOWRT_MOCK_BAD_RATE, --mock-fail-rate.
# A run where nothing went wrong has no second table.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
[ -x "$FLOWC" ] || exit 77

for p in anthropic openai; do
    cat >sa_$p.flow <<FLOW
enum Level { ic, manager, vp }
schema Person { id: string  score: float in 0..1  seniority: Level  tags: list<string> }
model m { provider: $p  name: "fake-model"  max_output_tokens: 400 }
agent rate(s: string) -> Person { model: m  max_tokens: 200  retries: 8  prompt: "Rate {{ s }}" }
workflow sa() -> Person {
  phase first {
    let a = rate("a")
  }
  phase quiet {
    let b = rate("b")
  }
  phase second {
    let c = rate("c")
    let d = rate("d")
  }
  return d
}
FLOW
    "$FLOWC" build sa_$p.flow -o sa_$p || die "build $p"
    # first: 7 attempts; quiet: 1; second: c repaired, d repaired
    script "1 invalid-missing-field" "2 refusal" "3 truncate" "4 notjson" \
           "5 429 retry-after-ms=1" "6 500" "7 fenced" "8 ok" "9 trailing-comma" "10 chatty"
    start_server --script script --key "$KEY"
    ./sa_$p --no-journal --retry-base-ms 1 >out 2>err || die "$p: $(cat err)"
    want_requests 10
    sed -n '/^repairs and problems, per attempt:$/,/^  total/p' err >table
    [ -s table ] || die "$p: no second table: $(cat err)"
    # row NAME: the row's counts
    row() { sed -n "s/^  $1  *//p" table | tr -s ' '; }
    [ "$(row first)" = "1 1 1 1 1 2 1" ] || die "$p: first row '$(row first)': $(cat table)"
    [ "$(row second)" = "2 0 0 0 0 0 0" ] || die "$p: second row '$(row second)': $(cat table)"
    [ "$(row total)" = "3 1 1 1 1 2 1" ] || die "$p: total row '$(row total)': $(cat table)"
    hasnt "  quiet" table
    # the main table is unchanged: retries and calls
    has "  first                  1       0       6       0" err
done

# every column's right edge in the header is the right edge of each row's value
awk 'NR == 2 {
         n = split("repaired|invalid|refused|cut off|unparsable|transient|429", w, "|")
         for (i = 1; i <= n; i++) edge[i] = index($0, w[i]) + length(w[i]) - 1
         next
     }
     NR > 2 { for (i = 1; i <= n; i++) {
           c = substr($0, edge[i], 1); d = substr($0, edge[i] + 1, 1)
           if (c == " " || (d != " " && d != "")) { print "misaligned column " w[i] ": " $0; bad = 1 }
       } }
     END { exit bad }' table || die "table: $(cat table)"

# nothing went wrong: no second table
script "* ok"
start_server --script script --key "$KEY"
./sa_openai --no-journal >out 2>err || die "ok run: $(cat err)"
has "run summary:" err
hasnt "repairs and problems" err

# the mock: every answer invalid (one call), then transient failures (a fan-out)
cat >sm.flow <<'FLOW'
schema Badge { title: string len 1..40  level: int in 1..5 }
model m { provider: mock }
agent badge(s: string) -> Badge { model: m  max_tokens: 200  retries: 10  prompt: "Badge {{ s }}" }
workflow sm(one: bool = false) -> list<Badge> {
  phase make {
    let xs = if one { [badge("x")] } else {
      parallel for s in ["a", "b", "c", "d"] (concurrency: 2) { badge(s) }
    }
  }
  return xs
}
FLOW
"$FLOWC" build sm.flow -o sm || die "build mock"
FLOWRT_MOCK_BAD_RATE=1 ./sm --one --no-journal --retry-base-ms 1 >out 2>err &&
    die "mock: every answer invalid, yet it passed"
sed -n 's/^  make  *//p' err | tail -1 | tr -s ' ' >row
[ "$(cat row)" = "0 11 0 0 0 0 0" ] || die "mock invalid row '$(cat row)': $(cat err)"
./sm --no-journal --retry-base-ms 1 --mock-fail-rate 0.5 >out 2>err || die "mock fail rate: $(cat err)"
n=$(sed -n 's/^  make  *[0-9]*  *[0-9]*  *\([0-9]*\) .*/\1/p' err | head -1)
[ "$n" -gt 0 ] || die "no retries at a 50% failure rate: $(cat err)"
sed -n 's/^  total  *//p' err | tail -1 | tr -s ' ' >row
[ "$(cat row)" = "0 0 0 0 0 $n 0" ] || die "mock transient row '$(cat row)', retries $n: $(cat err)"
finish
