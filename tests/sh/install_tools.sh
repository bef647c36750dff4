#!/bin/sh
# install_tools.sh: `make install` installs the team's tools: a man page for
# flowc and one per command `flowc --help` lists (each renders without a
# groff warning), the reference and the diagnostics' codes, editors/, the
# GitHub problem matcher; and the installed flowc finds its stdlib, formats,
# draws, compares and serves the language server.
# flavour: plain
: "${TOP:?}" "${FLOWC:?}"
bad=0
fail() { echo "FAIL: $*"; bad=1; }
command -v make >/dev/null || { echo "no make"; exit 77; }
if ! make -C "$TOP" --no-print-directory -q all 2>/dev/null; then
    echo "(the build tree is not up to date: install not checked)"; exit 77
fi
make -C "$TOP" --no-print-directory install DESTDIR="$PWD/root" PREFIX=/usr >inst 2>&1 ||
    { echo "FAIL: make install: $(tail -3 inst)"; exit 1; }
p=root/usr
for cmd in $("$FLOWC" --help | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z]*\) .*/\1/p'); do
    page=$p/share/man/man1/flowc-$cmd.1
    [ -f "$page" ] || { fail "no man page for flowc $cmd"; continue; }
    if command -v groff >/dev/null; then
        groff -man -Tutf8 -ww -z "$page" 2>gw; [ -s gw ] && fail "flowc-$cmd.1: $(head -3 gw)"
    fi
    grep -q "^\.BR flowc\\\\-$cmd (1)" "$p/share/man/man1/flowc.1" || fail "flowc.1 does not name flowc-$cmd(1)"
done
[ "$(ls $p/share/man/man1/flowc-*.1 | wc -l)" -ge 7 ] || fail "fewer than 7 command man pages"
for f in share/doc/flowc/language.md share/doc/flowc/diagnostics.md share/doc/flowc/crm_hygiene.svg \
         share/flowc/flowc-problem-matcher.json share/flowc/editors/vim/syntax/flow.vim \
         share/flowc/editors/vim/ftdetect/flow.vim share/flowc/editors/vim/ftplugin/flow.vim \
         share/flowc/editors/vscode/package.json share/flowc/editors/vscode/syntaxes/flow.tmLanguage.json \
         share/flowc/stdlib/models.flow bin/flowc; do
    [ -f "$p/$f" ] || fail "make install left no $f"
done
cmp -s "$TOP/editors/vim/syntax/flow.vim" "$p/share/flowc/editors/vim/syntax/flow.vim" || fail "editors differ"

# the installed flowc, away from the build tree
f=$p/bin/flowc
printf 'import "models"\n\nschema S { a: int }\n\nworkflow w(file: string) -> list<S> { return read_jsonl<S>(file) }\n' >w.flow
"$f" check w.flow || fail "the installed flowc cannot check (its stdlib?)"
"$f" fmt --check w.flow || fail "the installed flowc fmt"
"$f" graph w.flow | grep -q '^digraph' || fail "the installed flowc graph"
"$f" compat w.flow w.flow >/dev/null || fail "the installed flowc compat"
printf 'Content-Length: 58\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}' | "$f" lsp >lsp.out
grep -q '"hoverProvider":true' lsp.out || fail "the installed flowc lsp"
exit $bad
