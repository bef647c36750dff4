#!/bin/sh
# journal_runs_inflight.sh: `runs` counts the requests that were in flight
# when a process died (their holds, and holds lost by a process that died
# before) in TOKENS as it does in USD; TOKENS used to leave them out.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >inf.flow <<'FLOW'
schema R { word: string }
model m { provider: mock  usd_per_mtok_in: 1  usd_per_mtok_out: 5 }
agent a(n: int) -> R { model: m  max_tokens: 50  prompt: "word {{ n }}" }
workflow inf() -> list<R> {
  budget { usd: 1.00 }
  return parallel for n in [1, 2, 3] { a(n) }
}
FLOW
"$FLOWC" build inf.flow -o inf >build.err 2>&1 || fail "build: $(cat build.err)"
./inf --mock >out 2>err || fail "run: $(cat err)"
# as a crash would leave them: one call in flight, another's hold lost before
sqlite3 .flow/inf.db "UPDATE calls SET held_tokens = 1000, held_usd = 0.25 WHERE key =
  (SELECT min(key) FROM calls); UPDATE calls SET lost_tokens = 500, lost_usd = 0.125 WHERE key =
  (SELECT max(key) FROM calls)" || fail "sqlite3"
want_tok=$(sqlite3 .flow/inf.db "SELECT CAST(total(tokens_in + tokens_out + held_tokens + lost_tokens) AS INT) FROM calls_all")
want_usd=$(sqlite3 .flow/inf.db "SELECT printf('%.4f', total(usd + held_usd + lost_usd)) FROM calls_all")
./inf runs >runs 2>&1 || fail "runs: $(cat runs)"
got=$(awk 'NR == 2 { print $6, $7 }' runs)
[ "$got" = "$want_usd $want_tok" ] || fail "runs shows USD TOKENS '$got', the journal holds '$want_usd $want_tok': $(cat runs)"
echo ok
