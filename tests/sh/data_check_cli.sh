#!/bin/sh
# data_check_cli.sh: flowc check --data from the command line: usage errors
# exit 2; stdin (csv:-), a delimiter, --max-errors and the JSON format.
FLOWC=${FLOWC:-$TOP/build/flowc}
X=$TOP/tests/exec/data
F=$TOP/tests/check/data_csv_rows.flow
die() { echo "FAIL: $*"; exit 1; }
has() { grep -qF -- "$1" "$2" || die "$2 lacks '$1': $(head -c 2000 "$2")"; }

"$FLOWC" check "$F" --data Contact=x.txt 2>err; [ $? = 2 ] || die "unknown format: not exit 2"
has "--data Contact=x.txt: write SCHEMA=PATH, PATH ending in .csv" err
"$FLOWC" check "$F" "$F" --data Contact=x.csv 2>err; [ $? = 2 ] || die "two files: not exit 2"
has "check --data checks against the schemas of one FILE" err
"$FLOWC" check "$F" --data 2>err; [ $? = 2 ] || die "--data without a value: not exit 2"
"$FLOWC" check "$F" --data Contact=x.csv --delimiter ab 2>err; [ $? = 2 ] || die "bad delimiter: not exit 2"
"$FLOWC" check "$F" --data Contact=x.csv --max-errors -1 2>err; [ $? = 2 ] || die "bad --max-errors: not exit 2"

# stdin, the first bad row only
"$FLOWC" check "$F" --data Contact=csv:- --max-errors 1 <"$X/contacts_bad.csv" 2>err
[ $? = 1 ] || die "bad rows on stdin: not exit 1"
[ "$(grep -c ' error: ' err)" = 1 ] || die "--max-errors 1: $(cat err)"
has "-:3:6: error: column 'Last Name': empty, but field 'last_name' is required [E1301]" err
has "flowc: -: 8 of 10 rows are bad (schema 'Contact'); the first 1 shown" err

# a ';'-separated export, clean
sed -n '1,2p' "$X/contacts_bad.csv" | tr ',' ';' >semi.csv
"$FLOWC" check "$F" --data Contact=semi.csv --delimiter ';' 2>err || die "';' file: $(cat err)"
[ ! -s err ] || die "a clean file says something: $(cat err)"
"$FLOWC" check "$F" --data Contact=semi.csv 2>err; [ $? = 1 ] || die "';' file read with ',': not exit 1"

# JSON: one object per problem, in the one array
"$FLOWC" --diagnostics-format=json check "$F" --data Contact="$X/contacts_bad.csv" 2>err.json
[ $? = 1 ] || die "JSON: not exit 1"
[ "$(grep -c '"code":"E1301"' err.json)" = 13 ] || die "JSON: $(cat err.json)"
has '"line":5,"column":21,"end_line":5,"end_column":21,"severity":"error","code":"E1301","message":"column '"'"'Annual Revenue'"'"': -5 is out of range 0..1000000000000"' err.json
head -1 err.json | grep -qx '\[' || die "JSON: not an array: $(head -2 err.json)"
tail -1 err.json | grep -qx '\]' || die "JSON: not closed: $(tail -2 err.json)"
echo ok
