#!/bin/sh
# tests/demo.sh: what `make demo` runs once flowc and libflowrt are built.
#
# It type-checks every example.  Then, if `flowc build` works (code generation
# may still be in progress), it compiles examples/crm_hygiene.flow into
# build/demo/crm_hygiene and runs it offline with --mock on the sample leads,
# showing the result (stdout, JSON Lines) and the run summary (stderr).  If
# the build does not succeed it says so, shows why, and stops after the check.
#
# Exit status: 0 when the examples check clean (and, if it was built, the
# binary ran to completion); otherwise the failing step's status.

cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
OUT=build/demo

say() { printf '\n==> %s\n' "$*"; }

if [ ! -x "$FLOWC" ]; then
    echo "demo: $FLOWC is missing; run make first" >&2
    exit 2
fi

say "$FLOWC check examples/*.flow"
"$FLOWC" check examples/*.flow
st=$?
if [ $st -ne 0 ]; then
    echo "demo: the examples do not check clean (exit $st)" >&2
    exit "$st"
fi
echo "all $(ls examples/*.flow | wc -l) examples check clean"

mkdir -p "$OUT"
say "$FLOWC build examples/crm_hygiene.flow -o $OUT/crm_hygiene"
if ! "$FLOWC" build examples/crm_hygiene.flow -o "$OUT/crm_hygiene" >"$OUT/build.log" 2>&1; then
    sed -n '1,15p' "$OUT/build.log"
    echo
    echo "demo: flowc build did not succeed (code generation is in progress);"
    echo "demo: the examples were checked only.  Full log: $OUT/build.log"
    exit 0
fi
cat "$OUT/build.log"

say "$OUT/crm_hygiene --help"
"$OUT/crm_hygiene" --help

say "$OUT/crm_hygiene --mock    (offline: every model answered by the mock)"
echo "-- stdout: the verified leads, one JSON object per line"
"$OUT/crm_hygiene" --mock --out-file "$OUT/crm_enriched.jsonl" 2>"$OUT/summary.txt"
st=$?
echo "-- stderr: the run summary"
cat "$OUT/summary.txt"
echo
case $st in
    0) echo "demo: done (exit 0); the leads written back are in $OUT/crm_enriched.jsonl" ;;
    3) echo "demo: the run waits for approval (exit 3)" ;;
    4) echo "demo: a budget stopped the run (exit 4)" ;;
    *) echo "demo: the run failed (exit $st)" ;;
esac
exit "$st"
