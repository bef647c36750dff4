#!/bin/sh
# editors.sh: the editor files in editors/.  The VS Code extension's JSON files
# and the problem matcher are valid JSON; the TextMate grammar's includes all
# name rules it has, and package.json points at it by its scope name.  Vim
# (when installed) loads the syntax and the file type plugin without an error
# and gives an example's parts the right highlight groups.
: "${TOP:?}" "${FLOWC:?}"
bad=0
fail() { echo "FAIL: $*"; bad=1; }
ed=$TOP/editors
"$TOP/build/tools/lsp_client" --json "$ed"/vscode/package.json "$ed"/vscode/language-configuration.json \
    "$ed"/vscode/syntaxes/flow.tmLanguage.json "$TOP/.github/flowc-problem-matcher.json" || fail "bad JSON"
g=$ed/vscode/syntaxes/flow.tmLanguage.json
for rule in $(sed -n 's/.*"include": "#\([a-z]*\)".*/\1/p' "$g" | sort -u); do
    grep -q "^    \"$rule\": {" "$g" || fail "the grammar includes #$rule, which it does not have"
done
grep -q '"scopeName": "source.flow"' "$g" || fail "the grammar's scope name"
grep -q '"scopeName": "source.flow"' "$ed/vscode/package.json" || fail "package.json's scope name"
grep -q '"path": "./syntaxes/flow.tmLanguage.json"' "$ed/vscode/package.json" || fail "package.json's path"
for kw in import schema enum model agent workflow http phase budget let return break skip if else \
          match for in where parallel pipeline stage loop max and or not using true false null; do
    grep -q "\\b$kw\\b" "$g" || fail "the grammar lacks the keyword $kw"
    grep -q "\\b$kw\\b" "$ed/vim/syntax/flow.vim" || fail "the Vim syntax lacks the keyword $kw"
done

command -v vim >/dev/null 2>&1 || { echo "skip Vim: not installed"; exit $bad; }
# (-n, noswapfile: both flavours edit the same example at once, and the
# second Vim found the first one's swap file beside it and failed)
cat >syn.vim <<VIM
set nocompatible
set noswapfile
let &rtp = '$ed/vim,' . &rtp
filetype plugin on
syntax on
edit $TOP/examples/crm_hygiene.flow
function! At(pat, off)
  call cursor(1, 1)
  let [l, c] = searchpos(a:pat, 'cW')
  return l == 0 ? 'NOTFOUND' : synIDattr(synID(l, c + a:off, 1), 'name')
endfunction
let out = ['ft=' . &filetype . ' sw=' . &shiftwidth . ' cms=' . &commentstring]
for [name, pat, off] in [['decl', '^schema Lead', 0], ['comment', '^// crm_hygiene', 0],
      \\ ['doc', '^/// A lead', 0], ['duration', '30s', 0], ['string', '"examples/data', 1],
      \\ ['interp', '{{ lead.email', 3], ['delim', '{{ lead.email', 0], ['triple', 'Fill in the missing', 0],
      \\ ['setting', '^  model: claude_haiku', 2], ['builtin', 'read_csv<', 0], ['keyword', 'pipeline for', 0]]
  call add(out, name . '=' . At(pat, off))
endfor
call writefile(out, 'syn.out')
qa!
VIM
vim -Nu NONE -i NONE -n -es -S syn.vim </dev/null >vim.err 2>&1 || fail "vim: $(cat vim.err)"
cat >want <<'OUT'
ft=flow sw=2 cms=// %s
decl=flowDecl
comment=flowComment
doc=flowDocComment
duration=flowDuration
string=flowString
interp=flowInterp
delim=flowInterpDelim
triple=flowString
setting=flowSetting
builtin=flowBuiltin
keyword=flowRepeat
OUT
diff -u want syn.out || fail "Vim's highlight groups"
exit $bad
