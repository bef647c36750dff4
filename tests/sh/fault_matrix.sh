# The fault matrix: every way the fake server can misbehave, on both wires
# (Anthropic's Messages, OpenAI's chat completions), against a compiled
# workflow.  Each mode is played twice:
#   once:   the first request of the call misbehaves, the next is answered:
#           the call succeeds with a valid answer, after the number of
#           requests the mode's class calls for, and the summary counts the
#           attempt in that class's column (transient, 429, unparsable,
#           invalid, refused, cut off, repaired);
#   always: every request misbehaves (an agent without retries): the run
#           fails with exit 1 and an error that names the call and says what
#           the server did, or, for what is no failure, succeeds.
# After every run neither stdout nor stderr holds the key or a piece of it,
# and (under the ASan flavour) nothing leaked or overflowed.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
cat >fm.flow <<'FLOW'
model anth { provider: anthropic  name: "claude-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5  max_output_tokens: 400 }
model oai { provider: openai  name: "gpt-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5  max_output_tokens: 400 }
enum Mood { calm, wild }
schema Note { title: string  mood: Mood  stars: int in 1..5 }
agent a(rule: string) -> Note { model: anth  max_tokens: 200  retries: 2  timeout: 1s  prompt: "[[{{ rule }}]] a note" }
agent o(rule: string) -> Note { model: oai  max_tokens: 200  retries: 2  timeout: 1s  prompt: "[[{{ rule }}]] o note" }
agent a0(rule: string) -> Note { model: anth  max_tokens: 200  retries: 0  timeout: 1s  prompt: "[[{{ rule }}]] a0 note" }
agent o0(rule: string) -> Note { model: oai  max_tokens: 200  retries: 0  timeout: 1s  prompt: "[[{{ rule }}]] o0 note" }
workflow fm(wire: string, rule: string) -> Note {
  if wire == "a" { return a(rule) }
  if wire == "o" { return o(rule) }
  if wire == "a0" { return a0(rule) }
  return o0(rule)
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
usage-wrong|badusage|the answer from P reported usage no request could cost (counts that are not counts)
usage-huge|badusage|the answer from P reported usage no request could cost (
usage-above|over|
EOF

start_server --key "$KEY"
piece=$(printf '%s' "$KEY" | cut -c1-8)
F="--no-journal --retry-base-ms 1 --max-retry-after 0"

# run WIRE RULE: ./fm into out and err, $st its status, $n its requests
run() {
    _n0=$(wc -l <log)
    timeout 60 ./fm $F --wire "$1" --rule "$2" >out 2>err
    st=$?
    n=$(($(wc -l <log) - _n0))
    ! grep -qF -- "$piece" out err || die "$1 $2: a piece of the key in: $(cat out err)"
    ! grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" err ||
        die "$1 $2: sanitizer: $(cat err)"
}

# col N: column N of the summary's "repairs and problems" total row (0 without it)
col() {
    awk -v c="$1" '/^repairs and problems/ { t = 1 } t && $1 == "total" { print $c; f = 1; exit }
                   END { if (!f) print 0 }' err
}

# the column of a class (repaired 2, invalid 3, refused 4, cut off 5,
# unparsable 6, transient 7, 429 8)
column() {
    case $1 in
        repaired) echo 2 ;; invalid) echo 3 ;; refused) echo 4 ;; cutoff) echo 5 ;;
        unparsable) echo 6 ;; transient | 429) echo 7 ;; *) echo 0 ;;
    esac
}

# says_it AGENT HOW: the run failed with exit 1 and an error naming the call
# and saying $says
says_it() {
    [ $st = 1 ] || die "$what $2: exit $st: $(cat err)"
    grep -q "^error: fm.flow:[0-9]*:[0-9]*: agent '$1' (model [a-z]*): " err ||
        die "$what $2: the error names no call: $(cat err)"
    found=
    rest=$says
    while [ -n "$rest" ]; do
        alt=${rest%% || *}
        [ "$alt" = "$rest" ] && rest= || rest=${rest#* || }
        alt=$(printf '%s' "$alt" | sed "s/\\bP\\b/$p/g; s/'L'/'$l'/g")
        grep -qF -- "$alt" err && found=1
    done
    [ -n "$found" ] || die "$what $2: the error does not say '$says': $(cat err)"
}

modes=0
while IFS='|' read -r mode class says; do
    modes=$((modes + 1))
    for w in a o; do
        case $w in a) p=anthropic l=content ;; *) p=openai l=choices ;; esac
        what="$p $mode"
        # once: the call gets its answer
        run $w "fake-once:$mode"
        case $class in
            fatal)                  # no retry: once is always
                says_it $w once
                [ $n = 1 ] || die "$what once: $n requests for a fatal error"
                continue ;;
            *)
                [ $st = 0 ] || die "$what once: exit $st: $(cat err)"
                grep -q '"title":' out || die "$what once: no answer: $(cat out)"
                want=2
                case $class in repaired | ok | over) want=1 ;; esac
                [ $n = $want ] || die "$what once: $n requests, expected $want: $(cat err)"
                c=$(column $class)
                [ $c = 0 ] || [ "$(col $c)" = 1 ] ||
                    die "$what once: not counted as $class: $(cat err)"
                [ $class != 429 ] || [ "$(col 8)" = 1 ] || die "$what once: no 429 counted"
                [ $class != badusage ] ||
                    has "1 answer reported usage no request could cost" err
                [ $class != over ] || has "more than its attempt held" err
                [ "$mode" != no-usage ] ||
                    has "1 answer came without usage: charged what its attempt held" err ;;
        esac
        # always: the call fails, saying why (or, for no failure, succeeds)
        run ${w}0 "fake:$mode"
        case $class in
            repaired | ok | over)
                [ $st = 0 ] || die "$what always: exit $st: $(cat err)"
                continue ;;
        esac
        says_it "${w}0" always
    done
done <matrix
[ $modes -ge 50 ] || die "only $modes modes in the matrix"
finish
