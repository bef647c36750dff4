# tools_wire_strict.sh: the fake LLM server refuses, with the provider's
# 400, the tool-loop requests the providers refuse (their docs and SDK
# types: anthropic-sdk-python ToolUseBlockParam, ToolResultBlockParam,
# ToolChoice*Param; openai-python ChatCompletionToolMessageParam,
# ChatCompletionMessageFunctionToolCallParam, FunctionDefinition,
# ChatCompletionToolChoiceOptionParam), so that tools_loop.sh's "no request
# refused" means the runtime's requests are well formed; a well-formed loop
# history is answered 200 on each wire.
. "$TOP/tests/fake/lib.sh"
command -v jq >/dev/null || { echo "no jq"; exit 77; }
command -v curl >/dev/null || { echo "no curl"; exit 77; }
start_server --key "$KEY"

# a well-formed history of one tool call and its result, on each wire
cat >anthropic.json <<'EOF'
{"model": "claude-haiku-4-5", "max_tokens": 200,
 "tools": [{"name": "get", "description": "Reads a contact.",
            "input_schema": {"type": "object", "properties": {"id": {"type": "string"}},
                             "required": ["id"]}}],
 "messages": [
   {"role": "user", "content": "Who is contact 1?"},
   {"role": "assistant", "content": [{"type": "text", "text": "Let me look."},
                                     {"type": "tool_use", "id": "toolu_a", "name": "get",
                                      "input": {"id": "1"}}]},
   {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_a",
                                 "content": "{\"id\":\"1\"}", "is_error": false}]}]}
EOF
cat >openai.json <<'EOF'
{"model": "gpt-5-mini", "max_completion_tokens": 200,
 "tools": [{"type": "function",
            "function": {"name": "get", "description": "Reads a contact.", "strict": true,
                         "parameters": {"type": "object",
                                        "properties": {"id": {"type": "string"}},
                                        "required": ["id"], "additionalProperties": false}}}],
 "messages": [
   {"role": "user", "content": "Who is contact 1?"},
   {"role": "assistant", "content": null,
    "tool_calls": [{"id": "call_a", "type": "function",
                    "function": {"name": "get", "arguments": "{\"id\":\"1\"}"}}]},
   {"role": "tool", "tool_call_id": "call_a", "content": "{\"id\":\"1\"}"}]}
EOF

# post WIRE BODYFILE: the status, then the body, in ./resp
post() {
    if [ "$1" = anthropic ]; then
        curl -s -o resp -w '%{http_code}' -H "x-api-key: $KEY" -H "anthropic-version: 2023-06-01" \
            -H "content-type: application/json" --data-binary @"$2" "$ANTHROPIC_BASE_URL/v1/messages"
    else
        curl -s -o resp -w '%{http_code}' -H "Authorization: Bearer $KEY" \
            -H "content-type: application/json" --data-binary @"$2" "$OPENAI_BASE_URL/chat/completions"
    fi
}

n=0
# refused WIRE JQ-EDIT MESSAGE: the base body edited by JQ-EDIT is refused
# with a 400 whose message contains MESSAGE
refused() {
    n=$((n + 1))
    jq "$2" "$1.json" >case$n.json || die "case $n: jq $2"
    code=$(post "$1" case$n.json)
    [ "$code" = 400 ] || die "case $n ($1: $2): status $code, not 400: $(cat resp)"
    jq -r '.error.message' resp | grep -qF -- "$3" ||
        die "case $n ($1: $2): the message is not '$3': $(cat resp)"
}

[ "$(post anthropic anthropic.json)" = 200 ] || die "anthropic: the good history: $(cat resp)"
[ "$(post openai openai.json)" = 200 ] || die "openai: the good history: $(cat resp)"

A=anthropic
refused $A '.messages[1].content[1].input = "id=1"' 'tool_use.input: Input should be a valid dictionary'
refused $A 'del(.messages[1].content[1].id)' 'tool_use.id: Field required'
refused $A '.messages[2].content[0].content = 7' 'tool_result.content: Input should be a valid string'
refused $A '.messages[2].content[0].is_error = "yes"' 'is_error: Input should be a valid boolean'
refused $A '.messages[2].content = [{"type": "text", "text": "Here:"}] + .messages[2].content' \
    'tool_result blocks must come first'
refused $A '.messages[2].content = "thanks"' '`tool_use` ids were found without `tool_result` blocks'
refused $A '.messages[2].content += [{"type": "tool_result", "tool_use_id": "toolu_b", "content": "x"}]' \
    'unexpected `tool_use_id`'
refused $A '.messages[1].content[1].name = "put"' "tool_use name 'put' is not one of the tools"
refused $A 'del(.tools)' 'must define tools'
refused $A '.tool_choice = {"type": "required"}' "expected tags: 'auto', 'any', 'tool', 'none'"
refused $A '.tool_choice = {"type": "tool", "name": "put"}' "tool 'put' is not among the tools"
refused $A '.tools[0].name = "get contact"' 'String should match pattern'
refused $A '.tools += [.tools[0]]' 'Tool names must be unique'
refused $A '.tools[0].input_schema = {"type": "string"}' 'input_schema.type'
refused $A '.messages[1].content[0].text = " "' 'text content blocks must contain non-whitespace text'

O=openai
refused $O '.messages[2].content = {"id": "1"}' "Invalid type for 'messages[2].content'"
refused $O 'del(.messages[1].tool_calls[0].type)' "Missing required parameter: 'messages[1].tool_calls[0].type'"
refused $O 'del(.messages[1].tool_calls[0].id)' "Missing required parameter: 'messages[1].tool_calls[0].id'"
refused $O '.messages[1].tool_calls[0].function.arguments = {"id": "1"}' 'expected a string'
refused $O 'del(.messages[2])' "The following tool_call_ids did not have response messages: call_a"
refused $O '.messages[2].tool_call_id = "call_b"' "must be a response to a preceeding message with 'tool_calls'"
refused $O '.messages[1].tool_calls[0].function.name = "put"' "function 'put' is not one of the tools"
refused $O '.tool_choice = "any"' "Invalid value for 'tool_choice'"
refused $O '.tool_choice = {"type": "function", "function": {"name": "put"}}' "function 'put' not found in 'tools'"
refused $O 'del(.tools) | .messages = [.messages[0]] | .parallel_tool_calls = false' \
    "'parallel_tool_calls' is only allowed when 'tools' are specified"
refused $O '.tools[0].type = "custom"' "expected 'function'"
refused $O '.tools[0].function.name = "get.contact"' 'does not match pattern'
refused $O 'del(.tools[0].function.parameters.additionalProperties)' 'is not permitted'
refused $O '.tools[0].function.parameters.properties.n = {"type": "integer"}' "Missing 'n'"
refused $O '.tools[0].function.parameters.properties.id = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": [], "additionalProperties": false}' "Missing 'n'"

# the runtime's own answers at the bound: tool_choice none with the tools
# still declared is taken on both wires
jq '.tool_choice = {"type": "none"}' anthropic.json >none_a.json
[ "$(post anthropic none_a.json)" = 200 ] || die "anthropic: tool_choice none: $(cat resp)"
jq '.tool_choice = "none"' openai.json >none_o.json
[ "$(post openai none_o.json)" = 200 ] || die "openai: tool_choice none: $(cat resp)"
finish
