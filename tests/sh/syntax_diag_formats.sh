#!/bin/sh
# syntax_diag_formats.sh: the driver's exit statuses and the diagnostic
# formats other than plain text: --diagnostics-format=json (one array for the
# whole run, escaping done by hand) and --color=always (ANSI colours).
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
FLOWC=${FLOWC:-$TOP/build/flowc}
fail() { echo "FAIL: $*"; exit 1; }

printf 'workflow w() {\n  phase p {\n    let x = "tab\\q"\n\nagent a(x: string) -> string { prompt: "{{ x }}" }\n' >bad.flow
printf 'schema S { a: int }\n' >good.flow

# exit statuses: 0 clean, 1 errors, 2 bad usage
"$FLOWC" check good.flow 2>err || fail "clean file: status $?"
[ -s err ] && fail "clean file printed: $(cat err)"
"$FLOWC" check bad.flow 2>/dev/null; [ $? = 1 ] || fail "errors: status not 1"
"$FLOWC" check 2>/dev/null; [ $? = 2 ] || fail "no file: status not 2"
"$FLOWC" check --no-such-flag good.flow 2>/dev/null; [ $? = 2 ] || fail "bad flag: status not 2"
"$FLOWC" --color=sometimes check good.flow 2>/dev/null; [ $? = 2 ] || fail "bad --color: status not 2"
"$FLOWC" frobnicate 2>/dev/null; [ $? = 2 ] || fail "bad command: status not 2"
"$FLOWC" --version | grep -q '^flowc [0-9]' || fail "--version"
"$FLOWC" --help | grep -q 'flowc check' || fail "--help"

# JSON: one array over two files, in report order, notes and help kept
cat >want.json <<'JSON'
[
{"file":"bad.flow","line":3,"column":17,"end_line":3,"end_column":18,"severity":"error","message":"unknown escape sequence '\\q'","notes":[],"help":["the escapes are \\\" \\\\ \\n \\t \\r \\{ \\}; write '\\\\' for a backslash"]},
{"file":"bad.flow","line":5,"column":1,"end_line":5,"end_column":5,"severity":"error","message":"unexpected 'agent', expected '}' to close '{' at 2:11","notes":[{"file":"bad.flow","line":2,"column":11,"message":"'{' opened here"}],"help":[]}
]
JSON
"$FLOWC" --diagnostics-format=json check good.flow bad.flow 2>got.json
diff -u want.json got.json || fail "JSON output differs"
"$FLOWC" --diagnostics-format=json check good.flow 2>got.json
[ "$(cat got.json)" = "[]" ] || fail "JSON for a clean file is not []: $(cat got.json)"

# colour: bold location, red error, green caret, bold help; none when asked not to
esc=$(printf '\033')
"$FLOWC" check --color=always bad.flow 2>got.txt
grep -q "^${esc}\[1mbad.flow:3:17:${esc}\[0m ${esc}\[1;31merror:${esc}\[0m" got.txt || fail "no colour: $(head -1 got.txt)"
grep -q "${esc}\[1;32m^~${esc}\[0m" got.txt || fail "caret not green"
grep -q "${esc}\[1;36mnote:${esc}\[0m" got.txt || fail "note not cyan"
"$FLOWC" check --color=never bad.flow 2>got.txt
grep -q "$esc" got.txt && fail "colour with --color=never"
NO_COLOR=1 "$FLOWC" check bad.flow 2>got.txt
grep -q "$esc" got.txt && fail "colour with NO_COLOR"
exit 0
