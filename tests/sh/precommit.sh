#!/bin/sh
# precommit.sh: the hooks of .pre-commit-hooks.yaml and the configuration in
# the README work under pre-commit (when it is installed): fmt fixes and stops
# the commit, check stops one with an error, compat one with a breaking
# change; and the GitHub problem matcher's patterns match flowc's lines
# (errors, warnings, notes and help, compat's lines) and nothing else.
: "${TOP:?}" "${FLOWC:?}"
bad=0
fail() { echo "FAIL: $*"; bad=1; }

# ---- the problem matcher (its regexps are ECMAScript and POSIX ERE alike)
pm="$TOP/.github/flowc-problem-matcher.json"
sed -n 's/^ *"regexp": "\(.*\)",$/\1/p' "$pm" | sed 's/\\\\/\\/g' >regexps
[ "$(wc -l <regexps)" = 2 ] || fail "the problem matcher has $(wc -l <regexps) patterns, not 2"
main=$(sed -n 1p regexps)
notes=$(sed -n 2p regexps)
printf 'schema S { a: strng }\nworkflow w() -> int {\n  let n = 1\n  return 2\n}\n' >bad.flow
"$FLOWC" check bad.flow >out 2>&1
printf 'workflow w() -> int {\n  let n = 1\n  return 2\n}\n' >warn.flow
"$FLOWC" check warn.flow >>out 2>&1
"$FLOWC" compat "$TOP/tests/compat/http.old.flow" "$TOP/tests/compat/http.new.flow" >>out 2>&1
grep -cE "$main" out >n || true
[ "$(cat n)" = 3 ] || { fail "the main pattern matches $(cat n) lines, not 3"; cat out; }
grep -E "$main" out | grep -q "^bad.flow:1:15: error: unknown type 'strng' \[E0401\]$" ||
    fail "the error line"
grep -cE "$notes" out >n || true
[ "$(cat n)" = 4 ] || { fail "the notes pattern matches $(cat n) lines, not 4"; cat out; }
grep -E "$main|$notes" out | grep -q '^ ' && fail "a source line matched"
grep -q '"severity": "notice"' "$pm" || fail "notes are not notices"

# ---- pre-commit
command -v pre-commit >/dev/null 2>&1 || { echo "skip: no pre-commit"; exit $bad; }
command -v git >/dev/null 2>&1 || { echo "skip: no git"; exit $bad; }
mkdir -p bin && ln -sf "$FLOWC" bin/flowc
PATH="$PWD/bin:$PATH"
export PATH PRE_COMMIT_HOME="$PWD/pc" GIT_CONFIG_GLOBAL="$PWD/gitconfig" GIT_CONFIG_NOSYSTEM=1
git config --global user.email t@example.com && git config --global user.name t
git config --global init.defaultBranch main

mkdir hooks && cp "$TOP/.pre-commit-hooks.yaml" hooks/
(cd hooks && git init -q . && git add . && git commit -qm hooks) || exit 1
rev=$(cd hooks && git rev-parse HEAD)

# two configurations: the hooks repository's manifest, and the README's copy
mkdir proj && cd proj && git init -q . || exit 1
cat >.pre-commit-config.yaml <<YAML
repos:
  - repo: $PWD/../hooks
    rev: $rev
    hooks:
      - id: flowc-fmt
      - id: flowc-check
      - id: flowc-compat
YAML
awk '/^```yaml$/ { n++; on = (n == 1); next } /^```$/ { on = 0 } on' "$TOP/README.md" >../readme.yaml
grep -q 'id: flowc-compat' ../readme.yaml || fail "no pre-commit configuration in the README"
cat >w.flow <<'FLOW'
schema Lead { id: string }

workflow w(file: string) -> list<Lead> { return read_jsonl<Lead>(file) }
FLOW
git add . && git commit -qm one || exit 1
for cfg in .pre-commit-config.yaml ../readme.yaml; do
    git checkout -q -- w.flow
    pre-commit run -c "$cfg" --files w.flow >log 2>&1 || { fail "$cfg: a clean file fails"; cat log; }
    printf 'schema  Lead {id: string}\nworkflow w(file: string) -> list<Lead> { return read_jsonl<Lead>(file) }\n' >w.flow
    pre-commit run -c "$cfg" --files w.flow >log 2>&1 && fail "$cfg: an unformatted file passes"
    grep -q 'files were modified by this hook' log || { fail "$cfg: fmt did not fix"; cat log; }
    [ "$(head -1 w.flow)" = "schema Lead { id: string }" ] || fail "$cfg: fmt wrote $(head -1 w.flow)"
    printf 'schema Lead { id: strng }\n\nworkflow w(file: string) -> list<Lead> { return read_jsonl<Lead>(file) }\n' >w.flow
    pre-commit run -c "$cfg" --files w.flow >log 2>&1 && fail "$cfg: an error passes"
    grep -q "unknown type 'strng'" log || { fail "$cfg: check said nothing"; cat log; }
    printf 'schema Lead { id: string, email: string }\n\nworkflow w(file: string) -> list<Lead> { return read_jsonl<Lead>(file) }\n' >w.flow
    pre-commit run -c "$cfg" --files w.flow >log 2>&1 && fail "$cfg: a breaking change passes"
    grep -q "field 'email' was added, required" log || { fail "$cfg: compat said nothing"; cat log; }
done
exit $bad
