" ftplugin/flow.vim: settings for flowc's .flow files.
" Two spaces per level, as `flowc fmt` lays them out; `gq` and `=` run
" `flowc fmt` on the buffer; :make runs `flowc check` and fills the quickfix
" list from its file:line:col lines.  With Neovim 0.8 or later, `flowc lsp`
" is started for the buffer when flowc is on the PATH (let g:flow_no_lsp = 1
" to leave it).
if exists('b:did_ftplugin')
  finish
endif
let b:did_ftplugin = 1

setlocal expandtab shiftwidth=2 softtabstop=2 tabstop=8
setlocal commentstring=//\ %s comments=:///,://
setlocal formatprg=flowc\ fmt
setlocal makeprg=flowc\ check\ %
setlocal errorformat=%f:%l:%c:\ %trror:\ %m,%f:%l:%c:\ %tarning:\ %m,%f:%l:%c:\ %tote:\ %m,%f:%l:%c:\ help:\ %m,%-G%.%#
let b:undo_ftplugin = 'setlocal expandtab< shiftwidth< softtabstop< tabstop< commentstring< comments< formatprg< makeprg< errorformat<'

if has('nvim-0.8') && !get(g:, 'flow_no_lsp', 0) && executable('flowc')
  lua vim.lsp.start({ name = 'flowc', cmd = { 'flowc', 'lsp' }, root_dir = vim.fn.getcwd() })
endif
