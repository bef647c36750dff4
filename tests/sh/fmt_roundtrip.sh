#!/bin/sh
# fmt_roundtrip.sh: `flowc fmt` on every .flow in the repository (and on a
# generated 2,000-line program): it never fails on a file that parses (a
# construct with no layout is exit 3, and fails here loudly), the result
# parses to the same tree (--dump-ast without its spans), and formatting
# the result again changes nothing.  A file with a syntax error is refused
# (exit 1) and left alone.  (One flowc per step over all the files, so that
# it stays quick under the sanitizers; a difference is then found file by
# file.)
: "${TOP:?}" "${FLOWC:?}"
bad=0
mkdir -p orig
(cd "$TOP" && find examples stdlib tests bench -name '*.flow' -not -path '*/build/*' -not -path 'bench/out/*' | sort) >list
while read -r f; do
    mkdir -p "orig/$(dirname "$f")" && cp "$TOP/$f" "orig/$f"
done <list
[ -d "$TOP/examples/data" ] && cp -r "$TOP/examples/data" orig/examples/
sh "$TOP/bench/gen_large.sh" 2000 >orig/generated.flow
echo generated.flow >>list
total=$(wc -l <list)
[ "$total" -gt 100 ] || { echo "FAIL: only $total files found"; exit 1; }
cp -r orig fmt

# format every file where it is: 0 all formatted, 1 some have syntax errors
(cd fmt && "$FLOWC" fmt -w $(cat ../list)) >out 2>err
st=$?
case $st in
    0|1) ;;
    *) echo "FAIL: flowc fmt -w: exit $st"; grep -v '^ ' err | head -10; bad=1 ;;
esac
grep 'internal error' err && bad=1
sed -n 's/^\([^ :]*\.flow\):[0-9]*:[0-9]*: error: .*/\1/p' err | sort -u >refused
while read -r f; do
    cmp -s "orig/$f" "fmt/$f" || { echo "FAIL: $f has a syntax error and was rewritten"; bad=1; }
done <refused
n=$((total - $(wc -l <refused)))
[ "$n" -gt 100 ] || { echo "FAIL: only $n files formatted"; bad=1; }

# idempotent: a second pass changes nothing
(cd fmt && "$FLOWC" fmt --check $(cat ../list)) >unformatted 2>/dev/null
if [ -s unformatted ]; then
    echo "FAIL: formatting is not idempotent for:"; sed 's/^/    /' unformatted | head -20
    bad=1
fi

# the same trees: all at once, then file by file where they differ
strip() { sed -e 's/ @[0-9]*:[0-9]*-[0-9]*:[0-9]*//' -e 's/ in [^ ]*$//'; }
(cd orig && "$FLOWC" check --dump-ast $(cat ../list) 2>/dev/null) | strip >a.ast
(cd fmt && "$FLOWC" check --dump-ast $(cat ../list) 2>/dev/null) | strip >b.ast
if ! cmp -s a.ast b.ast; then
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
fi
echo "$n of $total files formatted"
exit $bad
