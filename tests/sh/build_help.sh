#!/bin/sh
# build_help.sh: a compiled workflow's --help comes from its parameters and
# doc comments (the binary's path in the usage line varies, so this is a
# script rather than a tests/exec case).
: "${TOP:?}" "${FLOWC:?}"
cat >greet.flow <<'FLOW'
/// Greets people, politely.
workflow greet(
  /// Who to greet.
  name: string,
  /// How many times.
  times: int = 2,
  ratio: float = 1,
  loud: bool = false
) -> string {
  return "hello {{ name }}"
}
FLOW
"$FLOWC" build greet.flow -o greet || exit 1
bad=0
./greet --help >out 2>err
st=$?
[ $st -eq 0 ] || { echo "FAIL: --help exit status $st"; cat err; bad=1; }
for want in "Greets people, politely." "--name STRING" "Who to greet. (required)" \
            "--times INT" "How many times. (default 2)" "--ratio FLOAT" "(default 1.0)" \
            "--loud, --no-loud" "(default false)"; do
    grep -qF -- "$want" out || { echo "FAIL: --help lacks '$want'"; bad=1; }
done
[ $bad = 0 ] || sed 's/^/    /' out

# --version: flowc's version, the source and its hash (the one the journal
# keeps to refuse resuming a changed workflow), the runtime's version
"$FLOWC" build greet.flow --emit-c greet.c || exit 1
hash=$(sed -n 's/.*\.source_hash = "\([0-9a-f]*\)".*/\1/p' greet.c)
fv=$("$FLOWC" --version | sed -n 's/^flowc \([0-9.]*\).*/\1/p')
./greet --version >out 2>err || { echo "FAIL: --version exit status $?"; bad=1; }
want="greet: built by flowc $fv from greet.flow (source hash $hash); runtime libflowrt "
grep -qF -- "$want" out || { echo "FAIL: --version says '$(cat out)', expected '$want...'"; bad=1; }
exit $bad
