# Aliases over the wire, against the fake server (which, as Anthropic does,
# answers 400 to a property name outside ^[a-zA-Z0-9_.-]{1,64}$): the JSON
# Schema a model gets names an aliased field by its alias when the alias can
# be a property name, else by the field's name; enum values go as the data
# spells them; the model's answer comes back keyed by the data's names; a
# prompt shows a record (extra columns kept) as the data has it.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
mkdir -p bodies
"$FLOWC" build "$TOP/tests/data/aliases_wire.flow" -o ./aw >build.err 2>&1 || die "build: $(cat build.err)"
printf 'Record ID,First Name,Fax\r\n7,Ada,555\r\n' >contacts.csv

start_server --key "$KEY" --dump bodies
./aw --contacts contacts.csv --no-journal --quiet >out 2>err || die "exit $?: $(cat err out)"
want_requests 3 '"status":200'
want_requests 3
a=$(grep -l '"output_config"' bodies/*.json) || die "no anthropic output_config request"
t=$(grep -l '"tools"' bodies/*.json) || die "no anthropic tool request"
o=$(grep -l '"response_format"' bodies/*.json) || die "no openai request"
for b in "$a" "$t" "$o"; do
    has '"properties":{"contact-id":{"type":"integer"},"next_step":{' "$b"
    has '"stage":{"type":"string","enum":["Lead","Marketing Qualified Lead"]}' "$b"
    has '"in":{"type":"boolean"}' "$b"
    has '"required":["contact-id","next_step","stage","in"]' "$b"
    has '{\"Record ID\":7,\"First Name\":\"Ada\",\"Fax\":\"555\"}.' "$b"
    hasnt '"Next Step"' "$b"
    hasnt '"Lifecycle Stage"' "$b"
done
# the fake server is as strict as Anthropic about property names
if command -v curl >/dev/null 2>&1; then
    curl -s -o bad.json -w '%{http_code}' -H "x-api-key: $KEY" -H 'content-type: application/json' \
        -d '{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"x"}],"tools":[{"name":"t","input_schema":{"type":"object","properties":{"Next Step":{"type":"string"}}}}]}' \
        "$ANTHROPIC_BASE_URL/v1/messages" >code
    [ "$(cat code)" = 400 ] || die "a property name with a space: HTTP $(cat code)"
    has "Property keys should match pattern '^[a-zA-Z0-9_.-]{1,64}\$'" bad.json
fi
# both answers: the data's names, the first enum value as the data spells it
[ "$(grep -c '^{"contact-id":[0-9-]*,"Next Step":"[^"]*","Lifecycle Stage":"Lead","in":\(true\|false\)}$' out)" = 3 ] ||
    die "answers not keyed by the data's names: $(cat out)"
[ "$(cat contacts_out.csv)" = "$(cat contacts.csv)" ] || die "kept columns: $(cat contacts_out.csv)"
finish
