# What a call costs when the answer is odd, against the fake server: an
# answer without usage is charged what its attempt held (never $0) and the
# summary counts it; an answer cut off at max_tokens is retried once with the
# model's max_output_tokens (sent as max_tokens), its hold growing with it, so
# a budget that fits the first hold but not the larger one stops the retry;
# an answer of white space only is never replayed as the assistant's turn
# (Anthropic answers one with a 400): the retry tells the model what was
# wrong after the prompt instead.
. "$TOP/tests/fake/lib.sh"
mkdir -p bodies
cat >u.flow <<'FLOW'
model m {
  provider: anthropic  name: "claude-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5
  max_output_tokens: 4000
}
schema Note { title: string  stars: int in 1..5 }
agent note(text: string) -> Note {
  model: m
  max_tokens: 100
  retries: 2
  prompt: "Note this: {{ text }}"
}
workflow u(text: string = "a quiet afternoon") -> Note { return note(text) }
FLOW
"$FLOWC" build u.flow -o u >build.err 2>&1 || die "build: $(cat build.err)"

run() { # script line; then the binary's arguments
    rm -f bodies/*
    script "$1"
    shift
    start_server --key "$KEY" --dump bodies --script script
    ./u --no-journal --retry-base-ms 1 "$@" >out 2>err
}

# no usage: charged the hold, counted
run "1 no-usage" || die "no-usage: $(cat err)"
has "1 answer came without usage: charged what its attempt held" err
usd=$(awk '$1 == "total" { print $(NF - 1) }' err | tr -d '$')
awk -v u="$usd" 'BEGIN { exit !(u > 0.0005) }' || die "an answer without usage cost \$$usd: $(cat err)"

# cut off: the retry asks for the model's max_output_tokens
run "1 truncate" || die "truncate: $(cat err)"
has '"stars":1' out
has '"max_tokens":100,' bodies/1.json
has '"max_tokens":4000,' bodies/2.json
has "1 cut-off answer retried with the model's max_output_tokens (the hold grew with it)" err
want_requests 2
# ... and its hold grows: a cap that fits the first attempt's but not 4,000 tokens of output
run "1 truncate" --budget-usd 0.01
[ $? = 4 ] || die "the larger hold fitted a \$0.01 budget: $(cat err)"
has "budget" err
want_requests 1

# white space only: no blank assistant turn in the retry
run "1 blank" || die "blank: $(cat err)"
has '"stars":1' out
hasnt '"role":"assistant"' bodies/2.json
has 'a quiet afternoon\n\nYour previous answer was invalid' bodies/2.json
want_requests 2 '"status":200'
finish
