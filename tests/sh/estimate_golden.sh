# estimate_golden.sh: flowc estimate's tables, as golden files.  Each
# tests/estimate/NAME.args is one line of arguments, run from the
# repository's root; stdout must be NAME.out exactly.  Then the command's
# errors: a bad --items, --data of a missing file, an unknown option.
FLOWC=${FLOWC:-$TOP/build/flowc}
cd "$TOP" || exit 1
fail=0
for a in tests/estimate/*.args; do
    # shellcheck disable=SC2046
    "$FLOWC" estimate $(cat "$a") >"$TESTTMP/est.$$" 2>&1 || { echo "FAIL: $a exits $?"; fail=1; }
    diff -u "${a%.args}.out" "$TESTTMP/est.$$" || { echo "FAIL: $a differs"; fail=1; }
done
rm -f "$TESTTMP/est.$$"
for bad in "--items briefs_file=x" "--items =3" "--data briefs_file=/nonexistent.jsonl" \
           "--bogus" "--format=yaml"; do
    # shellcheck disable=SC2086
    "$FLOWC" estimate examples/critic_loop.flow $bad >/dev/null 2>&1
    [ $? -eq 2 ] || { echo "FAIL: estimate $bad did not exit 2"; fail=1; }
done
exit $fail
