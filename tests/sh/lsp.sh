#!/bin/sh
# lsp.sh: `flowc lsp` plays every tests/lsp/NAME.lsp with the scripted client
# (tests/tools/lsp_client.c: what it sends, what it must get back); a message
# that is not JSON gets a parse error and the server goes on; the end of its
# input without shutdown is exit 1, shutdown then exit is exit 0; hover,
# definition and completion at every 29th character of many files (broken
# ones too) are all answered.
: "${TOP:?}" "${FLOWC:?}"
client=$TOP/build/tools/lsp_client
[ -x "$client" ] || { echo "no $client (make all)"; exit 1; }
bad=0
for s in "$TOP"/tests/lsp/*.lsp; do
    "$client" "$FLOWC" "$s" || { echo "FAIL: $s"; bad=1; }
done
# hover, definition and completion everywhere in the examples and in files
# that do not check or do not parse: always an answer, never a crash
"$client" --stress "$FLOWC" 29 "$TOP"/examples/*.flow "$TOP"/tests/check/syntax_many_errors.flow \
    "$TOP"/tests/check/many_errors_reported.flow "$TOP"/tests/lsp/main_dot.flow "$TOP"/tests/ast/*.flow \
    >stress.out 2>&1 || { echo "FAIL: stress"; cat stress.out; bad=1; }
msg() { printf 'Content-Length: %s\r\n\r\n%s' "${#1}" "$1"; }
{ msg 'not json'; msg '{"jsonrpc":"2.0","id":1,"method":"shutdown"}'; msg '{"jsonrpc":"2.0","method":"exit"}'; } |
    "$FLOWC" lsp >out 2>err
st=$?
[ $st = 0 ] || { echo "FAIL: shutdown and exit: status $st"; cat err; bad=1; }
grep -q '"code":-32700' out || { echo "FAIL: no parse error for a message that is not JSON"; cat out; bad=1; }
grep -q '"id":1,"result":null' out || { echo "FAIL: no answer to shutdown after a bad message"; cat out; bad=1; }
printf '' | "$FLOWC" lsp >/dev/null 2>&1
[ $? = 1 ] || { echo "FAIL: the end of input without shutdown is not exit 1"; bad=1; }
"$FLOWC" lsp --help | grep -q 'flowc lsp' || { echo "FAIL: --help"; bad=1; }
exit $bad
