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

# every subcommand has --help (also after other arguments), on stdout, exit 0
for c in "runs --help" "review -h" "approve 20261121-000000-abcd --help" "approve --all --help" \
         "runs --journal x.db --help"; do
    # shellcheck disable=SC2086
    ./greet $c >out 2>err; st=$?
    sub=${c%% *}
    [ $st -eq 0 ] || { echo "FAIL: greet $c: exit $st: $(cat err)"; bad=1; }
    grep -q "^usage: ./greet $sub" out || { echo "FAIL: greet $c: no usage: $(cat out)"; bad=1; }
    grep -q -- "--journal PATH" out || { echo "FAIL: greet $c: no --journal: $(cat out)"; bad=1; }
done
./greet approve x --help | grep -q -- "--reject N" || { echo "FAIL: approve --help lacks --reject"; bad=1; }
./greet --help | grep -q "approve RUN_ID" || { echo "FAIL: --help does not list the commands"; bad=1; }

# --version: flowc's version, the source and its hash (the one the journal
# keeps to refuse resuming a changed workflow), the runtime's version
"$FLOWC" build greet.flow --emit-c greet.c || exit 1
hash=$(sed -n 's/.*\.source_hash = "\([0-9a-f]*\)".*/\1/p' greet.c)
fv=$("$FLOWC" --version | sed -n 's/^flowc \([0-9.]*\).*/\1/p')
./greet --version >out 2>err || { echo "FAIL: --version exit status $?"; bad=1; }
want="greet: built by flowc $fv from greet.flow (source hash $hash); runtime libflowrt "
grep -qF -- "$want" out || { echo "FAIL: --version says '$(cat out)', expected '$want...'"; bad=1; }
exit $bad
