#!/bin/sh
# syntax_dump_ast.sh: the parser's tree, spans included, for the files in
# tests/ast/ (NAME.flow against NAME.ast, from `flowc check --dump-ast`).
# Regenerate an expected tree with: flowc check --dump-ast NAME.flow > NAME.ast
# (then read it).
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
FLOWC=${FLOWC:-$TOP/build/flowc}
status=0
cd "$TOP/tests/ast" || exit 1
for f in *.flow; do
    "$FLOWC" check --dump-ast "$f" >"${TMPDIR:-/tmp}/dump.$$" 2>/dev/null
    if ! diff -u "${f%.flow}.ast" "${TMPDIR:-/tmp}/dump.$$"; then
        echo "FAIL: tests/ast/$f"
        status=1
    fi
done
rm -f "${TMPDIR:-/tmp}/dump.$$"
exit $status
