#!/bin/sh
# flags_twice.sh: every flag given twice is a usage error (exit 2) naming
# it, instead of the last value winning silently: a workflow flag (also a
# bool with its --no- form), a runtime flag, a switch, and the journal
# commands' own flags.  (--help and --version may be repeated.)
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; exit 1; }
cat >tw.flow <<'FLOW'
workflow tw(name: string = "x", loud: bool = false) -> string { return name }
FLOW
"$FLOWC" build tw.flow -o tw >build.err 2>&1 || fail "build: $(cat build.err)"
try() {     # try MESSAGE ARGS...: exit 2 with "error: MESSAGE"
    want=$1; shift
    ./tw "$@" >out 2>err; st=$?
    [ $st = 2 ] || fail "'$*': exit $st: $(cat err)"
    grep -qxF "error: $want" err || fail "'$*': $(cat err)"
}
try "--name is given twice" --name a --name=b --no-journal
try "--loud is given twice (or with its --no- form)" --loud --no-loud --no-journal
try "--concurrency is given twice" --concurrency 2 --concurrency=3 --no-journal
try "--mock is given twice" --mock --mock --no-journal
try "--journal is given twice" --journal a.db --journal b.db
try "--journal is given twice" runs --journal a.db --journal b.db
./tw --help --help >/dev/null 2>&1 || fail "--help twice"
./tw --name a --no-journal >out 2>err || fail "once: $(cat err)"
echo ok
