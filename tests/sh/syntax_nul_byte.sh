#!/bin/sh
# A NUL byte written into a string as the byte itself (not the escape '\0',
# tests/check/syntax_nul_escape.flow) is refused too: it would cut the
# string short at run time.
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
fail() { echo "FAIL: $*"; exit 1; }
printf 'schema O { a: string }\nmodel m { provider: mock }\nagent f(s: string) -> O { model: m  prompt: "be\0fore {{ s }}" }\n' >nul.flow
"$FLOWC" check nul.flow >out 2>&1 && fail "a NUL byte in a string was accepted"
grep -q "^nul.flow:3:48: error: a string cannot hold a NUL byte (byte 0x00) \[E0111\]$" out || fail "message: $(cat out)"
grep -q "^nul.flow:3:48: help: remove the byte" out || fail "help: $(cat out)"
echo ok
