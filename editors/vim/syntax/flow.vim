" syntax/flow.vim: highlighting for flowc's .flow files.
" Install: copy editors/vim/ into ~/.vim (or ~/.config/nvim), or add it to
" 'runtimepath'; `make install` puts it in PREFIX/share/flowc/editors/vim.
if exists('b:current_syntax')
  finish
endif

" declarations start their line (a key such as `model:` inside one is a setting)
syn match   flowDecl       "^\(import\|schema\|enum\|model\|agent\|workflow\|http\)\>" nextgroup=flowDeclName skipwhite
syn keyword flowStatement  phase budget let return break skip
syn keyword flowConditional if else match
syn keyword flowRepeat     for in where parallel pipeline stage loop max
syn keyword flowOperator   and or not using
syn keyword flowBoolean    true false
syn keyword flowNull       null
syn keyword flowBuiltin    read_jsonl write_jsonl read_csv write_csv len env approve escalate fail
syn keyword flowType       string int float bool list
syn match   flowDeclName   "\<\h\w*\>" contained
syn match   flowTypeName   "\<\u\w*\>"
syn match   flowAttribute  "@\h\w*"
syn match   flowOperator   "??\|->\|=>\|==\|!=\|<=\|>=\|\.\."
syn match   flowDuration   "\<\d[0-9_]*\(\.\d[0-9_]*\)\=\(ms\|s\|m\|h\)\>"
syn match   flowNumber     "\<\d[0-9_]*\(\.\d[0-9_]*\)\=\([eE][+-]\=\d[0-9_]*\)\=\>"
syn match   flowSetting    "^\s*\h\w*\ze\s*:" contains=flowRepeat,flowDecl

syn region  flowInterp     matchgroup=flowInterpDelim start="{{" end="}}" contained contains=TOP,flowSetting
syn match   flowEscape     "\\[\"\\ntr{}0]" contained
syn region  flowString     start=+"+ skip=+\\\\\|\\"+ end=+"+ oneline contains=flowInterp,flowEscape
syn region  flowString     start=+"""+ end=+"""+ contains=flowInterp,flowEscape keepend

syn keyword flowTodo       TODO FIXME XXX contained
syn match   flowComment    "//.*$" contains=flowTodo,@Spell
syn match   flowDocComment "///.*$" contains=flowTodo,@Spell

hi def link flowDecl        Structure
hi def link flowDeclName    Identifier
hi def link flowStatement   Statement
hi def link flowConditional Conditional
hi def link flowRepeat      Repeat
hi def link flowOperator    Operator
hi def link flowBoolean     Boolean
hi def link flowNull        Constant
hi def link flowBuiltin     Function
hi def link flowType        Type
hi def link flowTypeName    Type
hi def link flowAttribute   PreProc
hi def link flowDuration    Number
hi def link flowNumber      Number
hi def link flowSetting     Label
hi def link flowString      String
hi def link flowEscape      SpecialChar
hi def link flowInterpDelim Delimiter
hi def link flowComment     Comment
hi def link flowDocComment  SpecialComment
hi def link flowTodo        Todo

syn sync fromstart

let b:current_syntax = 'flow'
