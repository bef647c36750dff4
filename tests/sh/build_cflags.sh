#!/bin/sh
# build_cflags.sh: FLOWC_CFLAGS is split as a shell would (quotes keep a
# word together; no shell is run), and flags the compiler rejects are
# reported as such (exit 2), not as an internal error on the generated
# code; a malformed value and a FLOWC_CC that cannot run say so too.
# (The ASan flavour's own FLOWC_CFLAGS stays in front: its runtime needs it.)
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
base=${FLOWC_CFLAGS:-}
cat >cf.flow <<'FLOW'
schema R { word: string }
model m { provider: mock }
agent a(n: int) -> R { model: m  max_tokens: 50  prompt: "word {{ n }}" }
workflow cf() -> R { return a(1) }
FLOW
FLOWC_CFLAGS="$base -DGREETING=\"hello world\" -DOTHER='a b' -DTHIRD=a\\ b" "$FLOWC" build cf.flow -o cf \
    >out 2>&1 || fail "quoted flags: $(cat out)"
./cf --mock --no-journal --quiet >/dev/null || fail "the binary built with quoted flags does not run"

FLOWC_CFLAGS="$base -fsanitize=bogus" "$FLOWC" build cf.flow -o cf2 >out 2>&1; st=$?
[ $st = 2 ] || fail "bad flags: exit $st: $(cat out)"
grep -q "^flowc build: the C compiler 'cc' rejects FLOWC_CFLAGS ($base -fsanitize=bogus), on an empty program too" out ||
    fail "bad flags: $(cat out)"
grep -q "internal error" out && fail "bad flags reported as an internal error: $(cat out)"

FLOWC_CFLAGS="$base -DX=\"a" "$FLOWC" build cf.flow -o cf3 >out 2>&1; st=$?
[ $st = 2 ] || fail "unclosed quote: exit $st: $(cat out)"
grep -q "^flowc build: FLOWC_CFLAGS is malformed: a \" quote is not closed" out || fail "$(cat out)"

FLOWC_CC=./no-such-cc "$FLOWC" build cf.flow -o cf4 >out 2>&1; st=$?
[ $st = 2 ] || fail "missing compiler: exit $st: $(cat out)"
grep -q "^flowc build: cannot run the C compiler './no-such-cc' (FLOWC_CC)" out || fail "$(cat out)"
echo ok
