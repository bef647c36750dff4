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
{"file":"bad.flow","line":3,"column":17,"end_line":3,"end_column":18,"severity":"error","code":"E0111","message":"unknown escape sequence '\\q'","notes":[],"help":["the escapes are \\\" \\\\ \\n \\t \\r \\{ \\}; write '\\\\' for a backslash"],"fixits":[]},
{"file":"bad.flow","line":5,"column":1,"end_line":5,"end_column":5,"severity":"error","code":"E0202","message":"unexpected 'agent', expected '}' to close '{' at 2:11","notes":[{"file":"bad.flow","line":2,"column":11,"message":"'{' opened here"}],"help":[],"fixits":[]}
]
JSON
"$FLOWC" --diagnostics-format=json check good.flow bad.flow 2>got.json
diff -u want.json got.json || fail "JSON output differs"
"$FLOWC" --diagnostics-format=json check good.flow 2>got.json
[ "$(cat got.json)" = "[]" ] || fail "JSON for a clean file is not []: $(cat got.json)"

# JSON: a did-you-mean is a fix-it (GCC's "next" is just past the replaced
# text); a warning has its -W option, and under -Werror=NAME is an error
printf 'schema Lead { id: string }\nschema Row { lead: Leed }\n' >typo.flow
cat >want.json <<'JSON'
[
{"file":"typo.flow","line":2,"column":20,"end_line":2,"end_column":23,"severity":"error","code":"E0401","message":"unknown type 'Leed'","notes":[],"help":["did you mean 'Lead'?"],"fixits":[{"file":"typo.flow","line":2,"column":20,"next_line":2,"next_column":24,"replacement":"Lead"}]}
]
JSON
"$FLOWC" --diagnostics-format=json check typo.flow 2>got.json
diff -u want.json got.json || fail "JSON fix-it differs"
printf 'workflow w() -> int {\n  let n = 1\n  return 2\n}\n' >warn.flow
cat >want.json <<'JSON'
[
{"file":"warn.flow","line":2,"column":7,"end_line":2,"end_column":7,"severity":"warning","code":"W0002","option":"-Wunused-let","message":"'n' is never used","notes":[],"help":["name it '_n' if it is meant to be unused"],"fixits":[{"file":"warn.flow","line":2,"column":7,"next_line":2,"next_column":8,"replacement":"_n"}]}
]
JSON
"$FLOWC" --diagnostics-format=json check warn.flow 2>got.json || fail "a warning made the exit status $?"
diff -u want.json got.json || fail "JSON warning differs"
"$FLOWC" --diagnostics-format=json -Werror=unused-let check warn.flow 2>got.json
[ $? = 1 ] || fail "-Werror=unused-let: status not 1"
grep -q '"severity":"error","code":"W0002","option":"-Werror=unused-let"' got.json || fail "-Werror JSON: $(cat got.json)"
"$FLOWC" -Werror check warn.flow 2>got.txt; [ $? = 1 ] || fail "-Werror: status not 1"
grep -q "^warn.flow:2:7: error: 'n' is never used \[-Werror=unused-let\]$" got.txt || fail "-Werror text: $(cat got.txt)"
grep -q "^warn.flow:2:7: help: name it '_n'" got.txt || fail "help line without its location"
"$FLOWC" -Wno-unused-let check warn.flow 2>got.txt || fail "-Wno-unused-let: status $?"
[ -s got.txt ] && fail "-Wno-unused-let printed: $(cat got.txt)"
"$FLOWC" -Wunused-lett check warn.flow 2>got.txt; [ $? = 2 ] || fail "unknown -W: status not 2"
grep -q "did you mean '-Wunused-let'" got.txt || fail "unknown -W: $(cat got.txt)"

# check DIR: every *.flow below it, in name order, hidden directories skipped
mkdir -p tree/a/b tree/.hidden
cp good.flow tree/a/b/z.flow; cp bad.flow tree/a/x.flow; cp bad.flow tree/.hidden/h.flow
printf 'not flow\n' >tree/a/notes.txt
"$FLOWC" check tree 2>got.txt; [ $? = 1 ] || fail "check DIR: status not 1"
grep -q '^tree/a/x.flow:3:17: error' got.txt || fail "check DIR did not check tree/a/x.flow: $(head -3 got.txt)"
grep -q 'hidden' got.txt && fail "check DIR went into a hidden directory"
rm tree/a/x.flow
"$FLOWC" check tree/ 2>got.txt || fail "check DIR with only good files: status $?: $(cat got.txt)"
"$FLOWC" check missing_dir 2>got.txt; [ $? = 1 ] || fail "check of a missing path: status not 1"

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
