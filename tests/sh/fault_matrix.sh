# The fault matrix: every way the fake server can misbehave, on both wires
# (Anthropic's Messages, OpenAI's chat completions), against a compiled
# workflow: one fan-out (on_error: skip) of a call per mode, run twice.
#   once:   each call's first request misbehaves, the next is answered: every
#           call but those that fail at once (fatal) gets a valid answer, the
#           summary counts each mode's attempt in its class's column
#           (transient, 429, unparsable, invalid, refused, cut off,
#           repaired), and the server saw just the requests the classes call
#           for;
#   always: every request misbehaves (an agent without retries): each failed
#           item's error, in the skipped file, names the call and says what
#           the server did; what is no failure is answered.
# Neither stdout, stderr nor the skipped file holds the key or a piece of
# it, and (the ASan flavour) nothing leaks or overflows on any of these paths.
# flavour: asan
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
cat >fm.flow <<'FLOW'
model anth { provider: anthropic  name: "claude-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5  max_output_tokens: 400 }
model oai { provider: openai  name: "gpt-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5  max_output_tokens: 400 }
enum Mood { calm, wild }
schema Note { title: string  mood: Mood  stars: int in 1..5 }
schema Rule { rule: string }
agent a(rule: string) -> Note { model: anth  max_tokens: 200  retries: 2  timeout: 1s  prompt: "[[{{ rule }}]] a note" }
agent o(rule: string) -> Note { model: oai  max_tokens: 200  retries: 2  timeout: 1s  prompt: "[[{{ rule }}]] o note" }
agent a0(rule: string) -> Note { model: anth  max_tokens: 200  retries: 0  timeout: 1s  prompt: "[[{{ rule }}]] a0 note" }
agent o0(rule: string) -> Note { model: oai  max_tokens: 200  retries: 0  timeout: 1s  prompt: "[[{{ rule }}]] o0 note" }
workflow fm(wire: string, rules: string) -> list<Note> {
  return parallel for r in read_jsonl<Rule>(rules) (on_error: skip) {
    if wire == "a" { a(r.rule) } else if wire == "o" { o(r.rule) } else if wire == "a0" { a0(r.rule) } else { o0(r.rule) }
  }
}
FLOW
"$FLOWC" build fm.flow -o fm >build.err 2>&1 || die "build: $(cat build.err)"

# mode | class | what the error says when every request misbehaves (P: the
# provider, L: the list its answers hold; A || B: either)
# classes: transient, 429, unparsable, invalid, refused, cutoff (each retried
# once), repaired (taken at once), fatal (no retry), ok, badusage (retried),
# over (taken, with a warning)
cat >matrix <<'EOF'
reset|transient|request to P failed: Recv failure: Connection reset by peer
reset-head|transient|request to P failed: Recv failure: Connection reset by peer
reset-body|transient|request to P failed: Recv failure: Connection reset by peer
close-body|transient|request to P failed: transfer closed with
drip|transient|no answer from P within 1000 ms
bad-status|transient|answer from P is not HTTP
bad-chunked|transient|request to P failed: Illegal or missing hexadecimal sequence in chunked-encoding
bad-gzip|transient|request to P failed: Error while processing content unencoding
huge-header|transient|answer from P refused: a header larger than libcurl accepts (100 KB)
hang|transient|no answer from P within 1000 ms
drop|transient|request to P failed: Empty reply from server
garbage|transient|unreadable answer from P: unable to decode byte
empty|transient|unreadable answer from P: empty body
html|transient|unreadable answer from P: '[' or '{' expected near '<'
truncated-json|transient|unreadable answer from P: premature end of input
deep-json|transient|unreadable answer from P: maximum parsing depth reached
nul-answer|transient|unreadable answer from P: a string holds a NUL character (\u0000)
bad-utf8|transient|unreadable answer from P: unable to decode byte 0xff
error-200|transient|HTTP 200 from P with an error instead of an answer: Internal server error
wrong-shape|transient|answer from P is not the API's: its JSON has no 'L' list
empty-content|unparsable|no JSON in the answer's tool call or text (no text either) || the answer has no content
html-502|transient|HTTP 502 from P: not the API's error JSON: 502 Bad Gateway
500|transient|HTTP 500 from P: scripted failure 500
502|transient|HTTP 502 from P: scripted failure 502
503|transient|HTTP 503 from P: scripted failure 503
529|transient|HTTP 529 from P: scripted failure 529
429|429|HTTP 429 from P: scripted failure 429
429 retry-after-raw=Thu, 01 Jan 2099 00:00:00 GMT|429|HTTP 429 from P: scripted failure 429
503 retry-after-ms-raw=1e308|transient|HTTP 503 from P: scripted failure 503
500-straddle-key 985|transient|HTTP 500 from P: AAAAAAAA
redirect|fatal|HTTP 302 from P: a redirect, not followed (the key goes to no other address)
400|fatal|HTTP 400 from P: scripted failure 400
401|fatal|HTTP 401 from P: scripted failure 401
401-leak-key|fatal|HTTP 401 from P: Incorrect API key provided: ***
403|fatal|HTTP 403 from P: scripted failure 403
404|fatal|HTTP 404 from P: scripted failure 404
fenced|repaired|
chatty|repaired|
chatty-braces|repaired|
trailing-comma|repaired|
notjson|unparsable|the answer holds no JSON object
blank|unparsable|the answer holds no JSON object
invalid-missing-field|invalid|missing required field 'title'
invalid-type|invalid|title: expected string, got number
invalid-enum|invalid|mood: 'not_a_value' is not one of calm, wild
out-of-range|invalid|stars: 1000000 is out of range 1..5
refusal|refused|the model refused to answer: I can't help with that.
refusal-straddle-key 190|refused|the model refused to answer: AAAAAAAA
truncate|cutoff|answer cut off at max_tokens (400), the model's own maximum: ask for a shorter answer
text-plain|ok|
slow 100|ok|
no-usage|ok|
usage-real|ok|
usage-wrong|badusage|the answer from P reported usage no request could cost (counts that are not counts)
usage-huge|badusage|the answer from P reported usage no request could cost (
usage-above|over|
EOF

start_server --key "$KEY"
piece=$(printf '%s' "$KEY" | cut -c1-8)
F="--no-journal --retry-base-ms 1 --max-retry-after 0"

# run WIRE HOW (fake-once or fake): the fan-out over every mode; $st, $n
run() {
    sed "s/|.*//; s/.*/{\"rule\": \"$2:&\"}/" matrix >rules.jsonl
    rm -f fm.skipped.jsonl
    _n0=$(wc -l <log)
    timeout 120 ./fm $F --wire "$1" --rules rules.jsonl >out 2>err
    st=$?
    n=$(($(wc -l <log) - _n0))
    touch fm.skipped.jsonl
    ! grep -qF -- "$piece" out err fm.skipped.jsonl ||
        die "$1 $2: a piece of the key in: $(grep -F -- "$piece" out err fm.skipped.jsonl)"
    ! grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" err ||
        die "$1 $2: sanitizer: $(cat err)"
}

# col N: column N of the summary's "repairs and problems" total row (0 without it)
col() {
    awk -v c="$1" '/^repairs and problems/ { t = 1 } t && $1 == "total" { print $c; f = 1; exit }
                   END { if (!f) print 0 }' err
}

# modes of a class
count() { awk -F'|' -v c="$1" '$2 == c { n++ } END { print n + 0 }' matrix; }

# says_it MODE TEXT: the skipped item of MODE failed naming its call and
# saying TEXT (or one of its ' || ' alternatives)
says_it() {
    line=$(grep -F -- "\"rule\":\"fake:$1\"}" fm.skipped.jsonl) ||
        die "$p always $1: not skipped: $(cat err)"
    case $line in
        *"\"error\":\"agent '${w}0' (model "*) ;;
        *) die "$p always $1: the error names no call: $line" ;;
    esac
    rest=$2
    while [ -n "$rest" ]; do
        alt=${rest%% || *}
        [ "$alt" = "$rest" ] && rest= || rest=${rest#* || }
        alt=$(printf '%s' "$alt" | sed "s/\\bP\\b/$p/g; s/'L'/'$l'/g; s/\\\\/\\\\\\\\/g")
        case $line in *"$alt"*) return 0 ;; esac
    done
    die "$p always $1: the error does not say '$2': $line"
}

modes=$(wc -l <matrix)
[ "$modes" -ge 50 ] || die "only $modes modes in the matrix"
fatal=$(count fatal)
# requests: two for a retried class, one for the others
retried=$(($(count transient) + $(count 429) + $(count unparsable) + $(count invalid) +
           $(count refused) + $(count cutoff) + $(count badusage)))
for w in a o; do
    case $w in a) p=anthropic l=content ;; *) p=openai l=choices ;; esac
    run $w fake-once
    [ $st = 0 ] || die "$p once: exit $st: $(cat err)"
    [ "$(wc -l <out)" = $((modes - fatal)) ] ||
        die "$p once: $(wc -l <out) answers of $((modes - fatal)): $(cat err)"
    [ "$(wc -l <fm.skipped.jsonl)" = "$fatal" ] || die "$p once: skipped $(cat fm.skipped.jsonl)"
    [ $n = $((modes + retried)) ] || die "$p once: $n requests, expected $((modes + retried))"
    for c in "2 repaired" "3 invalid" "4 refused" "5 cutoff" "6 unparsable" "8 429"; do
        set -- $c
        [ "$(col $1)" = "$(count $2)" ] || die "$p once: $(col $1) $2, expected $(count $2): $(cat err)"
    done
    # libcurl itself resends a request once when a connection it reused dies
    # before a byte of the answer (reset, drop): the resend is that prompt's
    # second request, answered, so those two may count no transient attempt
    t=$(col 7) want=$(($(count transient) + $(count 429)))
    [ "$t" -le $want ] && [ "$t" -ge $((want - 2)) ] ||
        die "$p once: $t transient, expected $want: $(cat err)"
    has "$(count badusage) answers reported usage no request could cost" err
    has "$(count over) answer reported more usage than its attempt held" err

    run ${w}0 fake
    [ $st = 5 ] || die "$p always: exit $st (not 5: items skipped after transient errors): $(cat err)"
    answered=$(($(count repaired) + $(count ok) + $(count over)))
    [ "$(wc -l <out)" = $answered ] || die "$p always: $(wc -l <out) answers of $answered"
    while IFS='|' read -r mode class says; do
        case $class in repaired | ok | over) continue ;; esac
        says_it "$mode" "$says"
    done <matrix
done
finish
