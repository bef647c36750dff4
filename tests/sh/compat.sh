#!/bin/sh
# compat.sh: `flowc compat OLD NEW` on tests/compat/NAME.old.flow and
# NAME.new.flow prints exactly NAME.out (a file compared with itself:
# NAME.flow, twice) and exits 1 exactly when it has a breaking change;
# --format=json prints NAME.json where there is one.  Then --against in a
# scratch git repository: the old version and the files it imports come
# from the revision (git run without a shell), a file new since the
# revision has nothing to compare, a bad revision or a file outside the
# work tree is refused, and a revision that looks like an option is no
# option.
: "${TOP:?}" "${FLOWC:?}"
bad=0
fail() { echo "FAIL: $*"; bad=1; }
cd "$TOP/tests/compat" || exit 1
for out in *.out; do
    n=${out%.out}
    if [ -f "$n.old.flow" ]; then set -- "$n.old.flow" "$n.new.flow"; else set -- "$n.flow" "$n.flow"; fi
    "$FLOWC" compat "$@" >"$TESTTMP/got" 2>"$TESTTMP/err"
    st=$?
    want=0
    grep -q ': error: ' "$out" && want=1
    [ $st = $want ] || fail "$n: exit $st, expected $want: $(cat "$TESTTMP/err")"
    diff -u "$out" "$TESTTMP/got" >"$TESTTMP/diff" || { fail "$n: output differs"; head -20 "$TESTTMP/diff"; }
    if [ -f "$n.json" ]; then
        "$FLOWC" compat --format=json "$@" >"$TESTTMP/got" 2>/dev/null
        diff -u "$n.json" "$TESTTMP/got" >"$TESTTMP/diff" || { fail "$n: JSON differs"; head -20 "$TESTTMP/diff"; }
    fi
done
cd "$TESTTMP" || exit 1

command -v git >/dev/null 2>&1 || { echo "skip: no git"; exit 77; }
rm -rf repo && mkdir -p repo/lib && cd repo || exit 1
export GIT_CONFIG_GLOBAL=/dev/null GIT_CONFIG_NOSYSTEM=1
git init -q . && git config user.email t@example.com && git config user.name t
cat >lib/shared.flow <<'FLOW'
schema Lead { id: string  email: string }
FLOW
cat >w.flow <<'FLOW'
import "lib/shared"
workflow w(file: string) -> list<Lead> { return read_jsonl<Lead>(file) }
FLOW
git add . && git commit -qm one
# the imported schema changes in the work tree: the old one comes from HEAD
printf 'schema Lead { id: string  email: string  phone: string }\n' >lib/shared.flow
"$FLOWC" compat --against HEAD w.flow >got 2>err
[ $? = 1 ] || fail "--against HEAD: exit not 1: $(cat got err)"
grep -q "^lib/shared.flow:1:42: error: schema 'Lead': field 'phone' was added, required; breaking for its producers" got ||
    fail "--against HEAD: $(cat got err)"
(cd lib && "$FLOWC" compat --against HEAD ../w.flow) >got2 2>&1
grep -q "field 'phone' was added" got2 || fail "--against from a subdirectory: $(cat got2)"
git add . && git commit -qm two
"$FLOWC" compat --against HEAD w.flow >got 2>err || fail "nothing changed: exit $?: $(cat got err)"
grep -q '^0 breaking changes' got || fail "nothing changed: $(cat got)"
"$FLOWC" compat --against HEAD~1 w.flow >got 2>err
[ $? = 1 ] || fail "--against HEAD~1: exit not 1"
printf 'workflow v() { }\n' >new.flow
"$FLOWC" compat --against HEAD new.flow >got 2>err || fail "a new file: exit $?: $(cat err)"
grep -q 'new since HEAD' got || fail "a new file: $(cat got)"
"$FLOWC" compat --against no-such-rev w.flow >got 2>err
[ $? = 2 ] || fail "a bad revision: exit not 2"
grep -q "unknown revision 'no-such-rev'" err || fail "a bad revision: $(cat err)"
git rm -q --cached lib/shared.flow && git commit -qm three && git add lib/shared.flow
"$FLOWC" compat --against HEAD w.flow >got 2>err
[ $? = 1 ] || fail "an import missing from the revision: exit not 1"
grep -q "cannot find module 'lib/shared'" err || fail "an import missing from the revision: $(cat err)"
"$FLOWC" compat --against --output=x w.flow >got 2>err
[ $? = 2 ] || fail "a revision like an option: exit not 2"
[ -e x ] && fail "a revision like an option was taken as one"
"$FLOWC" compat --against HEAD /etc/hostname >got 2>err
[ $? = 1 ] || fail "outside the work tree: exit not 1"
grep -q 'not in the git work tree' err || fail "outside the work tree: $(cat err)"
cd .. && mkdir -p notrepo && printf 'workflow v() { }\n' >notrepo/v.flow
(cd notrepo && GIT_CEILING_DIRECTORIES="$TESTTMP" "$FLOWC" compat --against HEAD v.flow) >got 2>err
[ $? = 2 ] || fail "outside a repository: exit not 2: $(cat err)"
"$FLOWC" compat only_one.flow 2>/dev/null; [ $? = 2 ] || fail "one file: exit not 2"
(cd repo && "$FLOWC" compat --against HEAD) >got 2>&1 || fail "--against with no file: exit $?"
"$FLOWC" compat --help | grep -q 'flowc compat' || fail "--help"
exit $bad
