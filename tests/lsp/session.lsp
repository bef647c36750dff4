# session.lsp: a session as an editor has one with `flowc lsp` (tests/sh/lsp.sh
# plays it with tests/tools/lsp_client): diagnostics on open and change, a
# quick fix, hover, definition, completion, formatting, an import's unsaved
# text, close, and an unknown method.
send {"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":"file://$DIR","capabilities":{}}}
expect {"id":1,"result":{"capabilities":{"hoverProvider":true,"definitionProvider":true,"completionProvider":{"triggerCharacters":["."]},"textDocumentSync":{"openClose":true,"change":1}},"serverInfo":{"name":"flowc"}}}
send {"jsonrpc":"2.0","method":"initialized","params":{}}

# a clean file: no diagnostics
open file://$DIR/main.flow $DIR/main.flow
expect {"method":"textDocument/publishDiagnostics","params":{"uri":"file://$DIR/main.flow","version":1,"diagnostics":[]}}

# a misspelled field: the error, its code, the note in the imported file, the help
change file://$DIR/main.flow 2 $DIR/main_typo.flow
expect {"method":"textDocument/publishDiagnostics","params":{"uri":"file://$DIR/main.flow","version":2,"diagnostics":[{"range":{"start":{"line":15,"character":25},"end":{"line":15,"character":30}},"severity":1,"code":"E0409","source":"flowc","message":"schema 'Lead' has no field 'emial'\nhelp: did you mean 'email'?","relatedInformation":[{"location":{"uri":"file://$DIR/lib.flow","range":{"start":{"line":1,"character":7}}},"message":"'Lead' declared here"}]}]}}

# its fix-it as a quick fix
send {"jsonrpc":"2.0","id":2,"method":"textDocument/codeAction","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"range":{"start":{"line":15,"character":26},"end":{"line":15,"character":26}},"context":{"diagnostics":[]}}}
expect {"id":2,"result":[{"title":"Replace with 'email'","kind":"quickfix","edit":{"changes":{"file://$DIR/main.flow":[{"range":{"start":{"line":15,"character":25},"end":{"line":15,"character":30}},"newText":"email"}]}}}]}

# fixed: the diagnostics are cleared
change file://$DIR/main.flow 3 $DIR/main.flow
expect {"method":"textDocument/publishDiagnostics","params":{"version":3,"diagnostics":[]}}

# hover: a schema (from the import) with its fields and doc comments, a let, an agent call, a field
send {"jsonrpc":"2.0","id":3,"method":"textDocument/hover","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":19,"character":26}}}
expect {"id":3,"result":{"contents":{"kind":"markdown","value":"```flow\n/// A lead from the CRM.\nschema Lead {\n  /// The CRM's id.\n  id: string\n  email: string\n}\n```"}}}
send {"jsonrpc":"2.0","id":4,"method":"textDocument/hover","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":19,"character":7}}}
expect {"id":4,"result":{"contents":{"value":"~let leads: list<Lead>"}}}
send {"jsonrpc":"2.0","id":5,"method":"textDocument/hover","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":20,"character":33}}}
expect {"id":5,"result":{"contents":{"value":"```flow\n/// Scores one lead.\nagent score(lead: Lead) -> Scored\n  model: m\n```"}}}
send {"jsonrpc":"2.0","id":6,"method":"textDocument/hover","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":15,"character":27}}}
expect {"id":6,"result":{"contents":{"value":"```flow\nemail: string\n```\nfield of schema `Lead`"}}}
send {"jsonrpc":"2.0","id":7,"method":"textDocument/hover","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":7,"character":3}}}
expect {"id":7,"result":{"contents":{"value":"```flow\n/// How likely they buy.\nscore: float in 0..1\n```\nfield of schema `Scored`"}}}

# definition: an agent in this file, a schema in the import
send {"jsonrpc":"2.0","id":8,"method":"textDocument/definition","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":20,"character":33}}}
expect {"id":8,"result":{"uri":"file://$DIR/main.flow","range":{"start":{"line":13,"character":6},"end":{"line":13,"character":11}}}}
send {"jsonrpc":"2.0","id":9,"method":"textDocument/definition","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":19,"character":26}}}
expect {"id":9,"result":{"uri":"file://$DIR/lib.flow","range":{"start":{"line":1,"character":7},"end":{"line":1,"character":11}}}}

# completion: the fields after '.', in a template and in the workflow (where a lone '.' does not parse)
send {"jsonrpc":"2.0","id":10,"method":"textDocument/completion","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":15,"character":25}}}
expect {"id":10,"result":{"items":[{"label":"id","kind":5,"detail":"id: string","documentation":"The CRM's id."},{"label":"email","kind":5}]}}
change file://$DIR/main.flow 4 $DIR/main_dot.flow
expect {"method":"textDocument/publishDiagnostics","params":{"version":4,"diagnostics":["...",{"severity":1}]}}
send {"jsonrpc":"2.0","id":11,"method":"textDocument/completion","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":20,"character":34}}}
expect {"id":11,"result":{"items":[{"label":"id"},{"label":"email"}]}}
# elsewhere: the declared names and the builtins
send {"jsonrpc":"2.0","id":12,"method":"textDocument/completion","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":21,"character":2}}}
expect {"id":12,"result":{"items":["...",{"label":"Lead","kind":22},{"label":"Scored","kind":22},{"label":"m","kind":9,"detail":"model"},{"label":"score","kind":3,"detail":"agent"},{"label":"read_jsonl","kind":3}]}}

# an import's unsaved text is what the document sees
open file://$DIR/lib.flow $DIR/lib_phone.flow
expect {"method":"textDocument/publishDiagnostics","params":{"uri":"file://$DIR/lib.flow","diagnostics":[]}}
send {"jsonrpc":"2.0","id":13,"method":"textDocument/completion","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"position":{"line":20,"character":34}}}
expect {"id":13,"result":{"items":[{"label":"id"},{"label":"email"},{"label":"phone"}]}}

# formatting: flowc fmt's layout as one edit
change file://$DIR/main.flow 5 $DIR/main_messy.flow
expect {"method":"textDocument/publishDiagnostics","params":{"version":5,"diagnostics":[]}}
send {"jsonrpc":"2.0","id":14,"method":"textDocument/formatting","params":{"textDocument":{"uri":"file://$DIR/main.flow"},"options":{"tabSize":2,"insertSpaces":true}}}
expect {"id":14,"result":[{"range":{"start":{"line":0,"character":0}},"newText":"~schema Scored {\n"}]}

# closing clears its diagnostics; an unknown method is an error
send {"jsonrpc":"2.0","method":"textDocument/didClose","params":{"textDocument":{"uri":"file://$DIR/main.flow"}}}
expect {"method":"textDocument/publishDiagnostics","params":{"uri":"file://$DIR/main.flow","diagnostics":[]}}
send {"jsonrpc":"2.0","id":15,"method":"workspace/frobnicate","params":{}}
expect {"id":15,"error":{"code":-32601}}
