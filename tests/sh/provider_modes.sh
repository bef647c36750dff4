# Each structured-output mode end to end: a compiled workflow against the
# fake server, one agent per mode.  Anthropic: output_config (the default for
# a current Claude model) and a forced tool (structured_output: tool, for an
# Anthropic-compatible server); a forced tool on a current Claude model is
# the provider's 400, and the message the user sees says so.  OpenAI:
# strict json_schema (the default), json_object and prompt (the schema goes
# into the system prompt).  An OpenAI-compatible server without strict mode
# answers json_schema with a 400 about response_format: the model falls back
# to json_object, once, with one warning naming structured_output; one
# without response_format at all falls back on to prompt.
. "$TOP/tests/fake/lib.sh"
mkdir -p bodies
cat >m.flow <<'FLOW'
model a_out { provider: anthropic  name: "claude-sonnet-5-5"  usd_per_mtok_in: 2  usd_per_mtok_out: 10 }
model a_tool {
  provider: anthropic  name: "claude-compat-1"  usd_per_mtok_in: 1  usd_per_mtok_out: 5
  structured_output: tool
}
model a_forced {
  provider: anthropic  name: "claude-sonnet-5-5"  usd_per_mtok_in: 2  usd_per_mtok_out: 10
  structured_output: tool
}
model o_schema { provider: openai  name: "gpt-6.2-sol"  usd_per_mtok_in: 2  usd_per_mtok_out: 10 }
model o_object {
  provider: openai  name: "llama-local"  usd_per_mtok_in: 0  usd_per_mtok_out: 0
  structured_output: json_object
}
model o_prompt {
  provider: openai  name: "llama-local"  usd_per_mtok_in: 0  usd_per_mtok_out: 0
  structured_output: prompt
}
enum Tone { calm, upset }
schema Read { tone: Tone  score: int in 1..5  note: string }
agent read(text: string) -> Read {
  model: a_out
  max_tokens: 200
  retries: 0
  prompt: "Read this: {{ text }}"
}
workflow m(which: string) -> Read {
  let t = "the parcel came late"
  if which == "a_out" { return read(t) }
  if which == "a_tool" { return read(t) using a_tool }
  if which == "a_forced" { return read(t) using a_forced }
  if which == "o_schema" { return read(t) using o_schema }
  if which == "o_object" { return read(t) using o_object }
  return read(t) using o_prompt
}
FLOW
"$FLOWC" build m.flow -o m >build.err 2>&1 || die "build: $(cat build.err)"

run() { # which [server flags...]
    w=$1; shift
    rm -f bodies/*
    start_server --key "$KEY" --dump bodies "$@"
    ./m --which "$w" --no-journal --quiet >out 2>err
}

run a_out || die "a_out: $(cat err)"
has '"tone":"calm"' out
has '"output_config":{"format":{"type":"json_schema"' bodies/1.json
hasnt '"tool_choice"' bodies/1.json

run a_tool || die "a_tool: $(cat err)"
has '"tone":"calm"' out
has '"tool_choice":{"type":"tool","name":"Read"}' bodies/1.json
hasnt '"output_config"' bodies/1.json

# a forced tool on a current Claude model: the provider's 400, fatal, said plainly
run a_forced && die "a_forced succeeded"
has "agent 'read' (model a_forced): HTTP 400 from anthropic: tool_choice: forced tool use is not supported for this model; use output_config.format for structured outputs after 1 attempt" err
want_requests 1

run o_schema || die "o_schema: $(cat err)"
has '"tone":"calm"' out
has '"response_format":{"type":"json_schema","json_schema":{"name":"Read","strict":true' bodies/1.json
has '"max_completion_tokens":200' bodies/1.json

for mode in o_object o_prompt; do
    run $mode || die "$mode: $(cat err)"
    has '"tone":"calm"' out
    has 'JSON Schema:\n{' bodies/1.json
    hasnt '"json_schema"' bodies/1.json
    if [ $mode = o_object ]; then
        has '"response_format":{"type":"json_object"}' bodies/1.json
    else
        hasnt '"response_format"' bodies/1.json
    fi
done

# no strict mode on the server: json_schema falls back to json_object, once
run o_schema --no-json-schema || die "fallback: $(cat err)"
has '"tone":"calm"' out
has "warning: model 'o_schema' (gpt-6.2-sol): the server refused response_format json_schema (HTTP 400 from openai: response_format.type: 'json_schema' is not supported; use 'json_object' or 'text'); answers are asked for as json_object from now on (declare 'structured_output: json_object' on the model to start there)" err
[ "$(grep -c 'warning: model' err)" = 1 ] || die "not one warning: $(cat err)"
has '"status":400' log
has '"response_format":{"type":"json_object"}' bodies/2.json
want_requests 2

# no response_format at all: on to prompt
run o_schema --no-response-format || die "fallback to prompt: $(cat err)"
has '"tone":"calm"' out
has "answers are asked for as json_object" err
has "answers are asked for as prompt" err
hasnt '"response_format"' bodies/3.json
want_requests 3
finish
