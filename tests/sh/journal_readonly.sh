#!/bin/sh
# journal_readonly.sh: `runs` and `review` only read the journal, so they
# work where .flow/ cannot be written (a read-only mount, another user's
# directory); a run there fails with the journal's error.  Both used to fail
# on "PRAGMA journal_mode=WAL: attempt to write a readonly database".
# Not root: the directory is made read-only; root (whom permissions do not
# stop): a read-only bind mount, or a skip where mounting is not allowed.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >ro.flow <<'FLOW'
schema R { word: string }
model m { provider: mock }
agent a(n: int) -> R { model: m  max_tokens: 50  prompt: "word {{ n }}" }
workflow ro() -> list<R> { return parallel for n in [1, 2, 3] { a(n) } }
FLOW
"$FLOWC" build ro.flow -o ro >build.err 2>&1 || fail "build: $(cat build.err)"
./ro --mock >out 2>err || fail "run: $(cat err)"
if [ "$(id -u)" = 0 ]; then
    mount --bind .flow .flow 2>/dev/null && mount -o remount,bind,ro .flow 2>/dev/null ||
        { umount .flow 2>/dev/null; echo "skip: cannot make a read-only mount"; exit 77; }
    trap 'umount .flow' EXIT
    touch .flow/x 2>/dev/null && fail "the mount is not read-only"
else
    chmod a-w .flow .flow/ro.db
    trap 'chmod u+w .flow .flow/ro.db' EXIT
fi
./ro runs >out 2>err || fail "runs: $(cat err)"
grep -q "^[0-9a-f-]* *done .* 3 *0$" out || fail "runs: $(cat out)"
./ro review >out 2>err || fail "review: $(cat err)"
grep -q "nothing waiting for review" out || fail "review: $(cat out)"
./ro --mock >out 2>err && fail "a run could write to a read-only journal"
grep -q "^error: journal .flow/ro.db: " err || fail "run: $(cat err)"
echo ok
