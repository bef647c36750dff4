# Retirement and old names warn at a fixed date (FLOWC_TODAY), and check
# still exits 0: a model 40 days from its date says nothing, 10 days before
# it warns that it retires, after it warns that it was retired, each naming
# the replacement; an old stdlib name warns and names the new one.
FLOWC=${FLOWC:-$TOP/build/flowc}
cat >r.flow <<'FLOW'
import "models"
schema S { x: string }
model old { provider: openai  name: "gpt-old"  retires: "2026-12-11"  replaced_by: gpt_luna }
agent a(s: string) -> S { model: old  prompt: "{{ s }}" }
agent b(s: string) -> S { model: gpt_4_1_nano  prompt: "{{ s }}" }
workflow w() -> S { let y = b("x")  return a(y.x) }
FLOW
fail() { echo "FAIL: $*"; exit 1; }
FLOWC_TODAY=2026-11-01 "$FLOWC" check r.flow >out 2>&1 || fail "check failed: $(cat out)"
grep -q "model 'old'" out && fail "40 days ahead warns: $(cat out)"
grep -qF "warning: model 'gpt_4_1_nano' is an old name: it now means 'gpt_luna' (gpt-6-luna)" out ||
    fail "no old-name warning: $(cat out)"
FLOWC_TODAY=2026-12-01 "$FLOWC" check r.flow >out 2>&1 || fail "check failed: $(cat out)"
grep -qF "warning: model 'old' (gpt-old) retires on 2026-12-11, in 10 days" out || fail "$(cat out)"
grep -qF "help: use 'gpt_luna' instead" out || fail "no replacement: $(cat out)"
grep -qF "in 10 days [-Wmodel-retirement]" out || fail "no -W name: $(cat out)"
FLOWC_TODAY=2026-12-01 "$FLOWC" -Wno-model-retirement check r.flow >out 2>&1 || fail "check failed: $(cat out)"
grep -q "retire" out && fail "-Wno-model-retirement still warns: $(cat out)"
FLOWC_TODAY=2026-12-12 "$FLOWC" check r.flow >out 2>&1 || fail "check failed: $(cat out)"
grep -qF "warning: model 'old' (gpt-old) was retired on 2026-12-11: requests to it fail" out ||
    fail "$(cat out)"
echo ok
