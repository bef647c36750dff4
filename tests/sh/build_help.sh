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
exit $bad
