#!/bin/sh
# fmt_roundtrip.sh: `flowc fmt` on every .flow in the repository (and on a
# generated 2,000-line program): it never fails on a file that parses (a
# construct with no layout is exit 3, and fails here loudly), the result
# parses to the same tree (--dump-ast without its spans), and formatting
# the result again changes nothing.  A file with a syntax error is refused
# (exit 1) and left alone.
: "${TOP:?}" "${FLOWC:?}"
bad=0
mkdir -p orig
(cd "$TOP" && find examples stdlib tests bench -name '*.flow' -not -path '*/build/*' | sort) >list
while read -r f; do
    mkdir -p "orig/$(dirname "$f")" && cp "$TOP/$f" "orig/$f"
done <list
[ -d "$TOP/examples/data" ] && cp -r "$TOP/examples/data" orig/examples/
sh "$TOP/bench/gen_large.sh" 2000 >orig/generated.flow
echo generated.flow >>list
[ "$(wc -l <list)" -gt 100 ] || { echo "FAIL: only $(wc -l <list) files found"; exit 1; }
cp -r orig fmt

# format each file where it is; 0 formatted, 1 a syntax error, anything else a bug
n=0
while read -r f; do
    "$FLOWC" fmt -w "fmt/$f" >out 2>err
    st=$?
    case $st in
        0) n=$((n + 1)) ;;
        1) grep -q ': error: ' err || { echo "FAIL: $f: exit 1 without an error"; cat err; bad=1; }
           cmp -s "orig/$f" "fmt/$f" || { echo "FAIL: $f: a file with errors was rewritten"; bad=1; } ;;
        *) echo "FAIL: $f: flowc fmt exit $st"; sed 's/^/    /' err | head -5; bad=1 ;;
    esac
done <list
[ "$n" -gt 100 ] || { echo "FAIL: only $n files formatted"; bad=1; }

# idempotent: a second pass changes nothing
(cd fmt && "$FLOWC" fmt --check $(cat ../list)) >unformatted 2>/dev/null
if [ -s unformatted ]; then
    echo "FAIL: formatting is not idempotent for:"; sed 's/^/    /' unformatted | head -20
    bad=1
fi

# the same trees, file by file
strip() { sed -e 's/ @[0-9]*:[0-9]*-[0-9]*:[0-9]*//' -e 's/ in [^ ]*$//'; }
while read -r f; do
    cmp -s "orig/$f" "fmt/$f" && continue
    (cd orig && "$FLOWC" check --dump-ast "$f" 2>/dev/null) | strip >a.ast
    (cd fmt && "$FLOWC" check --dump-ast "$f" 2>/dev/null) | strip >b.ast
    if ! cmp -s a.ast b.ast; then
        echo "FAIL: $f: the formatted file has another tree"
        diff a.ast b.ast | head -10 | sed 's/^/    /'
        bad=1
    fi
done <list
echo "$n files formatted"
exit $bad
