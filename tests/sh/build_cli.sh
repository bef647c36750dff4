#!/bin/sh
# build_cli.sh: `flowc build`'s command line: usage errors exit 2, --emit-c
# alone writes only the C, --keep-c keeps OUT.c, --emit-schemas writes each
# returned schema in both provider dialects, a failing C compiler is an
# internal error that shows its output and keeps the C.
: "${TOP:?}" "${FLOWC:?}"
bad=0
no() { echo "FAIL: $*"; bad=1; }
status() { want=$1; shift; "$@" >out 2>err; st=$?; [ $st -eq "$want" ] || { no "$* exit $st, expected $want"; sed 's/^/    /' err | head -10; }; }

cat >card.flow <<'FLOW'
enum Tone { warm, neutral, formal }
/// Where someone works.
schema Company { domain: string  size: int? in 1..100000 }
/// One person's card.
schema Card {
  /// Full name.
  name: string len 1..80
  tone: Tone?
  company: Company?
  score: float in 0..1
  tags: list<string> len 0..5
}
model m { provider: mock }
agent card(who: string) -> Card { model: m  prompt: "Card for {{ who }}" }
workflow w(who: string) -> Card { return card(who) }
FLOW
echo 'schema Lonely { a: string }' >nowf.flow

status 2 "$FLOWC" build
status 2 "$FLOWC" build card.flow
status 2 "$FLOWC" build card.flow -o
status 2 "$FLOWC" build card.flow -o x --frobnicate
status 2 "$FLOWC" build card.flow nowf.flow -o x
status 1 "$FLOWC" build nowf.flow -o x
grep -qF "no workflow to build" err || no "no message for a file without a workflow"

status 0 "$FLOWC" build card.flow --emit-c only.c
[ -s only.c ] && [ ! -e only ] || no "--emit-c alone should write only the C"
grep -q '^#include <flowrt.h>' only.c || no "the C does not include flowrt.h"

status 0 "$FLOWC" build card.flow -o card --keep-c
[ -x card ] && [ -s card.c ] || no "--keep-c: card and card.c expected"
./card --who Ada --mock --no-journal --quiet >out 2>err || no "the built binary fails"
grep -q '"name":' out || no "the built binary printed no Card"

status 0 "$FLOWC" build card.flow --emit-schemas schemas
for d in anthropic openai; do [ -s schemas/Card.$d.json ] || no "no schemas/Card.$d.json"; done
[ -e schemas/Company.openai.json ] && no "Company is not returned by an agent: no file expected"
# strict mode: every property required, optionals nullable, no range keywords
grep -qF '"required": ["name", "tone", "company", "score", "tags"]' schemas/Card.openai.json ||
    no "openai: not every property is required"
grep -qF '"type": ["integer", "null"]' schemas/Card.openai.json || no "openai: company.size not nullable"
[ "$(grep -cF '"anyOf": [' schemas/Card.openai.json)" -eq 2 ] ||
    no "openai: tone and company not anyOf [enum or record, null]"
grep -qE 'minLength|maxLength' schemas/Card.openai.json &&
    no "openai: minLength/maxLength (not in strict mode) left in"
grep -qF '"description": "Full name. Between 1 and 80 characters."' schemas/Card.openai.json ||
    no "openai: the length is not told in the description"
grep -qF '"description": "Must be between 0 and 1."' schemas/Card.openai.json ||
    no "openai: the range is not told in the description"
# anthropic: optionals not required, constraints kept as keywords
grep -qF '"required": ["name", "score", "tags"]' schemas/Card.anthropic.json ||
    no "anthropic: optional fields required"
grep -qF '"maxItems": 5' schemas/Card.anthropic.json || no "anthropic: maxItems dropped"
grep -qF '"additionalProperties": false' schemas/Card.anthropic.json || no "anthropic: open object"

# (without FLOWC_CFLAGS, which the ASan flavour sets: flags the compiler
# rejects are FLOWC_CFLAGS's fault, exit 2, and 'false' rejects everything)
status 1 env -u FLOWC_CFLAGS FLOWC_CC=false "$FLOWC" build card.flow -o broken
grep -qF "internal error: the C compiler failed" err || no "a cc failure is not an internal error"
kept=$(sed -n 's/.*the C is kept in \([^ ]*\)$/\1/p' err | head -1)
[ -n "$kept" ] && [ -s "$kept" ] || no "a cc failure does not keep the C"
[ -n "$kept" ] && rm -f "$kept"
[ -e broken ] && no "a cc failure left an executable"
exit $bad
