#!/bin/sh
# graph.sh: `flowc graph` draws tests/graph/NAME.flow exactly as NAME.dot
# (and NAME.mmd with --format=mermaid); every example's graph is valid dot
# (rendered by Graphviz when it is installed); the picture in the README
# and the reference (doc/crm_hygiene.svg, from doc/crm_hygiene.dot) is the
# current one, or `make graphs` must be run; bad usage exits 2.
: "${TOP:?}" "${FLOWC:?}"
bad=0
fail() { echo "FAIL: $*"; bad=1; }
for f in "$TOP"/tests/graph/*.flow; do
    n=${f%.flow}
    (cd "$TOP" && "$FLOWC" graph "tests/graph/$(basename "$f")") >got.dot 2>err || fail "$f: exit $?: $(cat err)"
    diff -u "$n.dot" got.dot >diff || { fail "$f: dot differs"; head -30 diff; }
    (cd "$TOP" && "$FLOWC" graph --format=mermaid "tests/graph/$(basename "$f")") >got.mmd 2>err ||
        fail "$f: mermaid exit $?: $(cat err)"
    diff -u "$n.mmd" got.mmd >diff || { fail "$f: mermaid differs"; head -30 diff; }
done
for f in "$TOP"/examples/*.flow; do
    (cd "$TOP" && "$FLOWC" graph "examples/$(basename "$f")") >g.dot 2>err || fail "$f: exit $?: $(cat err)"
    head -1 g.dot | grep -q '^digraph workflow {$' || fail "$f: not a digraph"
    if command -v dot >/dev/null 2>&1; then
        dot -Tsvg g.dot -o g.svg 2>err || fail "$f: dot rejects the graph: $(cat err)"
    fi
    (cd "$TOP" && "$FLOWC" graph --format=mermaid "examples/$(basename "$f")") >g.mmd || fail "$f: mermaid"
    grep -q '^flowchart LR$' g.mmd || fail "$f: not a mermaid flowchart"
done
(cd "$TOP" && "$FLOWC" graph examples/crm_hygiene.flow) >now.dot
cmp -s now.dot "$TOP/doc/crm_hygiene.dot" ||
    fail "doc/crm_hygiene.dot is not the graph of examples/crm_hygiene.flow: run 'make graphs'"
grep -q '<svg' "$TOP/doc/crm_hygiene.svg" || fail "doc/crm_hygiene.svg is not an SVG"
# the SVG was drawn from that dot: it has each of its edges (titled nA->nB)
sed -n 's/^  \(n[0-9]*\) -> \(n[0-9]*\) .*/\1\&#45;\&gt;\2/p' now.dot >edges
[ -s edges ] || fail "no edges in doc/crm_hygiene.dot"
while read -r e; do
    grep -qF "<title>$e</title>" "$TOP/doc/crm_hygiene.svg" ||
        fail "doc/crm_hygiene.svg lacks the edge $e: run 'make graphs'"
done <edges

printf 'schema S { a: int }\n' >nowf.flow
"$FLOWC" graph nowf.flow 2>err; [ $? = 1 ] || fail "no workflow: exit not 1"
grep -q 'no workflow' err || fail "no workflow: $(cat err)"
"$FLOWC" graph 2>/dev/null; [ $? = 2 ] || fail "no file: exit not 2"
"$FLOWC" graph --format=png nowf.flow 2>/dev/null; [ $? = 2 ] || fail "bad format: exit not 2"
"$FLOWC" graph --help | grep -q 'flowc graph' || fail "--help"
exit $bad
