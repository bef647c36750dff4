#!/bin/sh
# fmt_cli.sh: `flowc fmt` prints each tests/fmt/NAME.flow exactly as
# NAME.fmt; --check lists the files that are not formatted and exits 1;
# -w rewrites only those (keeping their mode); stdin is read with '-' or no
# file; a syntax error leaves the file alone (exit 1); bad usage exits 2.
: "${TOP:?}" "${FLOWC:?}"
fail() { echo "FAIL: $*"; bad=1; }
bad=0
for f in "$TOP"/tests/fmt/*.flow; do
    (cd "$TOP/tests/fmt" && "$FLOWC" fmt "$(basename "$f")") >got 2>err || fail "$f: exit $?: $(cat err)"
    diff -u "${f%.flow}.fmt" got >diff || { fail "$f: output differs"; head -30 diff; }
done

cp "$TOP/tests/fmt/layout.fmt" done.flow
cp "$TOP/tests/fmt/layout.flow" messy.flow
chmod 640 messy.flow
printf 'workflow w() {\n  let x = \n}\n' >broken.flow
cp broken.flow broken.orig

"$FLOWC" fmt --check done.flow >out 2>&1 || fail "--check of a formatted file: exit $?: $(cat out)"
[ -s out ] && fail "--check of a formatted file printed: $(cat out)"
"$FLOWC" fmt --check done.flow messy.flow >out 2>&1
[ $? = 1 ] || fail "--check with an unformatted file: exit not 1"
[ "$(cat out)" = messy.flow ] || fail "--check lists: $(cat out)"
cmp -s messy.flow "$TOP/tests/fmt/layout.flow" || fail "--check changed the file"

mtime=$(stat -c %Y done.flow)
sleep 1
"$FLOWC" fmt -w done.flow messy.flow || fail "-w: exit $?"
cmp -s messy.flow "$TOP/tests/fmt/layout.fmt" || fail "-w did not write the layout"
[ "$(stat -c %a messy.flow)" = 640 ] || fail "-w lost the mode: $(stat -c %a messy.flow)"
[ "$(stat -c %Y done.flow)" = "$mtime" ] || fail "-w rewrote a file that was formatted"
ls ./*fmt-* 2>/dev/null && fail "-w left a temporary file"

"$FLOWC" fmt <"$TOP/tests/fmt/layout.flow" >got || fail "stdin: exit $?"
cmp -s got "$TOP/tests/fmt/layout.fmt" || fail "stdin differs"
"$FLOWC" fmt - <"$TOP/tests/fmt/layout.flow" >got || fail "'-': exit $?"
cmp -s got "$TOP/tests/fmt/layout.fmt" || fail "'-' differs"

"$FLOWC" fmt -w broken.flow 2>err
[ $? = 1 ] || fail "a syntax error: exit not 1"
grep -q '^broken.flow:3:1: error: ' err || fail "a syntax error is not shown: $(cat err)"
cmp -s broken.flow broken.orig || fail "a file with a syntax error was rewritten"

"$FLOWC" fmt --check -w done.flow 2>/dev/null; [ $? = 2 ] || fail "--check -w: exit not 2"
"$FLOWC" fmt --frobnicate done.flow 2>/dev/null; [ $? = 2 ] || fail "unknown option: exit not 2"
"$FLOWC" fmt --help | grep -q 'flowc fmt' || fail "--help"

mkdir -p tree/sub && cp "$TOP/tests/fmt/layout.flow" tree/sub/a.flow && cp done.flow tree/b.flow
"$FLOWC" fmt --check tree >out; [ $? = 1 ] || fail "--check DIR: exit not 1"
[ "$(cat out)" = tree/sub/a.flow ] || fail "--check DIR lists: $(cat out)"
exit $bad
