# What goes over the wire: Anthropic's output_config (the default) and
# forced tool call (structured_output: tool), the OpenAI strict
# response_format, json_object and prompt modes, system prompt, temperature,
# the token cap's name by capability, the anthropic-version header, and a
# retry's previous answer and feedback turn.
. "$TOP/tests/fake/lib.sh"
mkdir -p bodies

script "1 invalid-enum" "* ok"
start_server --key "$KEY" --script script --dump bodies
$RT --provider anthropic >out 2>err || die "anthropic output_config: $(cat out err)"
b=bodies/1.json
has '"output_config":{"format":{"type":"json_schema","schema":{"type":"object","description":"A lead."' $b
has '"tags":{"description":"At most 5 items.","type":"array","items":{"type":"string"},"minItems":0}' $b
hasnt '"tool_choice"' $b
hasnt '"maximum"' $b

rm -f bodies/*
start_server --key "$KEY" --script script --dump bodies
$RT --provider anthropic --mode tool >out 2>err || die "anthropic: $(cat out err)"
b=bodies/1.json
has '"model":"fake-model","max_tokens":800,"messages":[{"role":"user","content":"Lead number 0."}]' $b
has '"tools":[{"name":"Lead","description":"Enriches a lead.","input_schema":{"type":"object","description":"A lead."' $b
has '"tool_choice":{"type":"tool","name":"Lead"}' $b
has '"system":"You are a test."' $b
has '"temperature":0.2' $b
hasnt '"role":"assistant"' $b
has '"messages":[{"role":"user","content":"Lead number 0."},{"role":"assistant","content":"{\"id\":\"fake\",\"score\":0.5,\"seniority\":\"not_a_value\"' bodies/2.json
has "{\"role\":\"user\",\"content\":\"Your previous answer was invalid: seniority: 'not_a_value' is not one of ic, manager, vp. Answer again with the tool only.\"}]" bodies/2.json
want_requests 2 '"version":"2023-06-01"'

rm -f bodies/*
start_server --key "$KEY" --script script --dump bodies
$RT --provider openai >out 2>err || die "openai: $(cat out err)"
b=bodies/1.json
has '"messages":[{"role":"system","content":"You are a test."},{"role":"user","content":"Lead number 0."}]' $b
has '"response_format":{"type":"json_schema","json_schema":{"name":"Lead","strict":true,"schema":{"type":"object"' $b
has '"required":["id","score","seniority","tags","note"],"additionalProperties":false' $b
has '"max_completion_tokens":800' $b
hasnt '"max_tokens"' $b
has '"temperature":0.2' $b
has "{\"role\":\"user\",\"content\":\"Your previous answer was invalid: seniority: 'not_a_value' is not one of ic, manager, vp. Answer again with the JSON object only.\"}]" bodies/2.json
want_requests 2 '"path":"/v1/chat/completions"'

# json_object and prompt modes: the schema goes into the system prompt
for mode in json_object prompt; do
    rm -f bodies/*
    start_server --key "$KEY" --dump bodies
    $RT --provider openai --mode $mode >out 2>err || die "openai $mode: $(cat out err)"
    has 'JSON Schema:\n{' bodies/1.json
    hasnt '"json_schema"' bodies/1.json
    if [ $mode = json_object ]; then
        has '"response_format":{"type":"json_object"}' bodies/1.json
    else
        hasnt '"response_format"' bodies/1.json
    fi
done

# a non-object answer is wrapped as {"answer": ...} for both
rm -f bodies/*
start_server --key "$KEY" --dump bodies
$RT --provider anthropic --mode tool --list >out 2>err || die "list: $(cat out err)"
has '"input_schema":{"type":"object","properties":{"answer":{"type":"array","items":{"type":"string"}}},"required":["answer"],"additionalProperties":false}' bodies/1.json
has '"tools":[{"name":"answer"' bodies/1.json
finish
