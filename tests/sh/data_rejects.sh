#!/bin/sh
# data_rejects.sh: reads with on_bad: skip.  The bad rows of a CSV and of a
# JSON Lines file are left out, reported on stderr, and written exactly as
# they were, with their problems, to rejects files (compared with the
# expected ones in tests/data/rejects/); the good rows go on; the summary
# counts what was set aside.  Also: stdin ("-") and its rejects file's name,
# a rejects path given, and a file of many bad rows (the first 20 shown).
FLOWC=${FLOWC:-$TOP/build/flowc}
D=$TOP/tests/data/rejects
X=$TOP/tests/exec/data
die() { echo "FAIL: $*"; exit 1; }
has() { grep -qF -- "$1" "$2" || die "$2 lacks '$1': $(head -c 3000 "$2")"; }
same() { cmp -s "$1" "$2" || die "$2 differs from $1: $(diff "$1" "$2" | head -20)"; }

"$FLOWC" build "$D/skip.flow" -o ./skip 2>build.err || die "build: $(cat build.err)"
cp "$X/contacts_bad.csv" "$X/people_bad_many.jsonl" .

./skip --contacts contacts_bad.csv --people people_bad_many.jsonl --no-journal >out 2>err ||
    die "exit $?: $(cat err)"
same "$D/contacts_bad.rejects.csv" contacts_bad.rejects.csv
same "$D/people_bad_many.rejects.jsonl" people_bad_many.rejects.jsonl
same "$D/good.csv" good.csv
printf '%s\n' '{"id":"1","name":"Ada"}' '{"id":"6","name":"Di"}' >want
same want out
has "contacts_bad.csv:9: column 'First Name': not valid UTF-8 text: 'Jos\xe9' (save the file as UTF-8) (row set aside)" err
has "contacts_bad.csv: 8 of 10 rows set aside, with their problems, in contacts_bad.rejects.csv" err
has "8 of 10 rows of contacts_bad.csv set aside (on_bad: skip): see contacts_bad.rejects.csv" err
has "4 of 6 rows of people_bad_many.jsonl set aside (on_bad: skip): see people_bad_many.rejects.jsonl" err

# stdin, a rejects path given; a second run replaces the rejects files
rm -f ./*.rejects.*
./skip --contacts contacts_bad.csv --rejects bad-contacts.csv --people - --no-journal \
    <people_bad_many.jsonl >out 2>err || die "stdin: exit $?: $(cat err)"
same "$D/contacts_bad.rejects.csv" bad-contacts.csv
same "$D/people_bad_many.rejects.jsonl" stdin.rejects.jsonl
same want out
has "4 of 6 rows of - set aside (on_bad: skip): see stdin.rejects.jsonl" err

# no bad row: an empty rejects file (the header only), which replaces an old one
head -2 contacts_bad.csv >good_contacts.csv
printf '{"id":"1","name":"Ada"}\n' >good_people.jsonl
./skip --contacts good_contacts.csv --people good_people.jsonl --no-journal >out 2>err ||
    die "clean: exit $?: $(cat err)"
[ "$(cat good_contacts.rejects.csv)" = "$(head -1 contacts_bad.csv),_line,_errors" ] ||
    die "good_contacts.rejects.csv: $(cat good_contacts.rejects.csv)"
[ ! -s good_people.rejects.jsonl ] || die "good_people.rejects.jsonl: $(cat good_people.rejects.jsonl)"
! grep -q "set aside" err || die "nothing was set aside: $(cat err)"

# 25 bad rows: the first 20 on stderr, then a count; all 25 in the file
{
    head -1 contacts_bad.csv
    i=0
    while [ $i -lt 25 ]; do echo "$i,Ann,Lee,ann@x.io,Lead,ten,no,a"; i=$((i + 1)); done
} >many.csv
./skip --contacts many.csv --people good_people.jsonl --no-journal >out 2>err ||
    die "many: exit $?: $(cat err)"
[ "$(grep -c "many.csv:[0-9]*: column 'Annual Revenue': expected float, got 'ten'" err)" = 20 ] ||
    die "not 20 rows shown: $(cat err)"
has "many.csv: 5 more bad rows not shown (all are in the rejects file)" err
[ "$(wc -l <many.rejects.csv)" = 26 ] || die "many.rejects.csv: $(wc -l <many.rejects.csv) lines"
echo ok
