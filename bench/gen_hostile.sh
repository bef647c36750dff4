#!/bin/sh
# gen_hostile.sh CONSTRUCT N: prints a .flow that repeats one construct N
# times (or N deep, or N long), for bench/scale.sh, which checks that 10x the
# N costs at most 12x the time.  `gen_hostile.sh list` names the constructs.
#
# Some are programs that check clean (and are then also built), some are
# the kind of broken input an editor or a fuzzer produces: flowc must be as
# fast on those.  The deep ones stay within the nesting limits at 10x N.
c=${1:?construct}
n=${2:-100}
[ "$c" = list ] && { sed -n 's/^    \([a-z_]*\))  *# \(.*\)/\1\t\2/p' "$0"; exit 0; }

head='model m { provider: mock }
'
awk_prog() { awk -v n="$n" "BEGIN { $1 }"; }
case $c in
    lbrace_prompt)      # a prompt holding n '{' on one line
        printf '%sagent a(x: string) -> string {\n  model: m\n  prompt: "{{ x }}' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "{ "'
        printf '"\n}\nworkflow w() { let r = a("q")\n  return }\n' ;;
    unclosed_interp)    # n '{{' never closed on one line of a string
        printf '%sagent a(x: string) -> string {\n  model: m\n  prompt: "' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "{{ x "'
        printf '"\n}\n' ;;
    triple_braces)      # a """ prompt of n lines full of '{'
        printf '%sagent a(x: string) -> string {\n  model: m\n  prompt: """\n    {{ x }}\n' "$head"
        awk_prog 'for (i = 0; i < n; i++) print "    { { { } } } {\\{ a {"'
        printf '    """\n}\nworkflow w() { let r = a("q")\n  return }\n' ;;
    escapes)            # a string of n escapes
        printf '%sagent a(x: string) -> string {\n  model: m\n  prompt: "{{ x }}' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "\\n\\t\\{\\}"'
        printf '"\n}\nworkflow w() { let r = a("q")\n  return }\n' ;;
    long_string)        # one string literal of 20n bytes
        printf 'workflow w() -> string {\n  return "'
        awk_prog 'for (i = 0; i < n; i++) printf "lorem ipsum dolor "'
        printf '"\n}\n' ;;
    doc_comment)        # n /// lines on one schema
        awk_prog 'for (i = 0; i < n; i++) printf "/// line %d of a long comment\n", i'
        printf 'schema S { a: int }\nworkflow w() -> S { return S { a: 1 } }\n' ;;
    many_decls)         # n schemas, n agents, a workflow that calls each
        printf '%s' "$head"
        awk_prog 'for (i = 0; i < n; i++) {
            printf "/// record %d\nschema R%d {\n  id: string\n  score: float in 0..1\n  tags: list<string> len 0..5\n  note: string?\n}\n", i, i
            printf "agent a%d(r: R%d) -> R%d {\n  model: m\n  prompt: \"check {{ r.id }} {{ r.note ?? \"-\" }}\"\n}\n", i, i, i }
          print "workflow w(path: string) -> int {"; print "  let n = 0"
          for (i = 0; i < n; i++) printf "  for x in read_jsonl<R%d>(path) { n = n + len(a%d(x).tags) }\n", i, i
          print "  return n"; print "}"' ;;
    many_lets)          # n lets, each using the one before
        printf 'workflow w() -> int {\n  let v0 = 1\n'
        awk_prog 'for (i = 1; i <= n; i++) printf "  let v%d = v%d + %d\n", i, i - 1, i'
        printf '  return v%d\n}\n' "$n" ;;
    many_errors)        # n lets of unknown names ("did you mean" each; the names are
                        # 7 digits wide at every n, as the work per name grows with its length)
        printf 'workflow w() {\n'
        awk_prog 'for (i = 0; i < n; i++) printf "  let v%07d = vv%07d\n", i, i'
        printf '}\n' ;;
    errors_one_line)    # n errors on one line
        printf 'workflow w() {\n  let xs = ['
        awk_prog 'for (i = 0; i < n; i++) printf "zz%d, ", i'
        printf ']\n}\n' ;;
    errors_unsorted)    # n errors found last but written first (diagnostics sort)
        printf 'workflow w() {\n'
        awk_prog 'for (i = 0; i < n; i++) printf "  let v%d = nope%d\n", i, i'
        printf '}\n'
        awk_prog 'for (i = 0; i < n; i++) printf "schema S%d { a: Nope%d }\n", i, i' ;;
    field_chain)        # 50 reads x.a.a...a.z, n fields long, through n schemas
        awk_prog 'for (i = 0; i < n; i++) printf "schema S%d { a: S%d\n  b: int? }\n", i, i + 1
          printf "schema S%d { z: int }\n", n
          print "workflow w(path: string) -> int {"; print "  let t = 0"
          print "  for x in read_jsonl<S0>(path) {"
          for (k = 0; k < 50; k++) { printf "    t = t + x"; for (i = 0; i < n; i++) printf ".a"; printf ".z\n" }
          print "  }"; print "  return t"; print "}"' ;;
    narrowed_chain)     # 50 reads of x.a.a...a.b.z, n long, after one null check of it
        awk_prog 'for (i = 0; i < n; i++) printf "schema S%d { a: S%d }\n", i, i + 1
          printf "schema S%d { b: T? }\nschema T { z: int }\n", n
          print "workflow w(path: string) -> int {"; print "  let t = 0"
          print "  for x in read_jsonl<S0>(path) {"; p = "x"
          for (i = 0; i < n; i++) p = p ".a"
          printf "    if %s.b == null { skip }\n", p
          for (k = 0; k < 50; k++) printf "    t = t + %s.b.z\n", p
          print "  }"; print "  return t"; print "}"' ;;
    coalesce_chain)     # 100 chains x ?? x ?? ..., n long
        printf 'workflow w(x: string?) -> string {\n  let r = ""\n'
        awk_prog 'for (k = 0; k < 100; k++) { printf "  r = x"; for (i = 0; i < n; i++) printf " ?? x"; printf " ?? \"d\"\n" }'
        printf '  return r\n}\n' ;;
    binary_chain)       # 100 sums 1 + 1 + ..., n long
        printf 'workflow w() -> int {\n  let r = 0\n'
        awk_prog 'for (k = 0; k < 100; k++) { printf "  r = r"; for (i = 0; i < n; i++) printf " + 1"; printf "\n" }'
        printf '  return r\n}\n' ;;
    paren_nesting)      # 100 values in n parentheses
        printf 'workflow w() -> int {\n  let r = 0\n'
        awk_prog 'for (k = 0; k < 100; k++) { printf "  r = r + "; for (i = 0; i < n; i++) printf "("; printf "1"; for (i = 0; i < n; i++) printf ")"; printf "\n" }'
        printf '  return r\n}\n' ;;
    block_nesting)      # 30 ifs nested n deep
        printf 'workflow w(c: bool) -> int {\n  let r = 0\n'
        awk_prog 'for (k = 0; k < 30; k++) { for (i = 0; i < n; i++) printf "  if c {\n"; printf "  r = r + 1\n"; for (i = 0; i < n; i++) printf "  }\n" }'
        printf '  return r\n}\n' ;;
    generic_nesting)    # 100 fields of type list<list<...>>, n deep
        printf 'schema S {\n'
        awk_prog 'for (k = 0; k < 100; k++) { printf "  f%d: ", k; for (i = 0; i < n; i++) printf "list<"; printf "string"; for (i = 0; i < n; i++) printf ">"; printf "\n" }'
        printf '}\nworkflow w(p: string) -> int { return len(read_jsonl<S>(p)) }\n' ;;
    else_if_chain)      # 40 ifs with n else-ifs each
        printf 'workflow w(x: int) -> int {\n  let r = 0\n'
        awk_prog 'for (k = 0; k < 40; k++) { printf "  r = r + if x == 0 { 0 }"; for (i = 1; i <= n; i++) printf " else if x == %d { %d }", i, i; printf " else { 1 }\n" }'
        printf '  return r\n}\n' ;;
    blank_lines)        # 50 statements continued after n comment lines
        printf 'schema S { a: int }\nworkflow w(p: string) -> int {\n  let t = 0\n  for s in read_jsonl<S>(p) {\n'
        awk_prog 'for (k = 0; k < 50; k++) { print "    t = t + s"; for (i = 0; i < n; i++) print "      // a comment between the lines"; print "      .a" }'
        printf '  }\n  return t\n}\n' ;;
    dup_settings)       # an agent with n duplicate settings
        printf '%sagent a(x: string) -> string {\n  model: m\n  prompt: "{{ x }}"\n' "$head"
        awk_prog 'for (i = 0; i < n; i++) print "  temperature: 0.5"'
        printf '}\n' ;;
    big_record)         # a schema of n fields, a record of n fields, n reads
        printf 'schema R {\n'
        awk_prog 'for (i = 0; i < n; i++) printf "  f%d: int\n", i'
        printf '}\nworkflow w() -> int {\n  let r = R {'
        awk_prog 'for (i = 0; i < n; i++) printf " f%d: %d", i, i'
        printf ' }\n  let t = 0\n'
        awk_prog 'for (i = 0; i < n; i++) printf "  t = t + r.f%d\n", i'
        printf '  return t\n}\n' ;;
    big_match)          # an enum of n values, 20 matches of n arms
        printf 'enum E {'
        awk_prog 'for (i = 0; i < n; i++) printf " v%d", i'
        printf ' }\nworkflow w(s: string) -> int {\n  let e = E.v0\n  let t = 0\n'
        awk_prog 'for (k = 0; k < 20; k++) { printf "  t = t + match e {"; for (i = 0; i < n; i++) printf " v%d => %d\n", i, i; printf " }\n" }'
        printf '  return t\n}\n' ;;
    pipeline_stages)    # a pipeline of n stages, each using the one before
        printf 'schema S { a: int }\nworkflow w(p: string) -> int {\n  let r = pipeline for x in read_jsonl<S>(p) {\n    stage s0 { x.a }\n'
        awk_prog 'for (i = 1; i < n; i++) printf "    stage s%d { s%d + 1 }\n", i, i - 1'
        printf '  }\n  return len(r)\n}\n' ;;
    agent_params)       # an agent of n parameters, called 20 times
        printf '%sagent a(' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "%sp%d: int", i ? ", " : "", i'
        printf ') -> string {\n  model: m\n  prompt: "{{ p0 }}"\n}\nworkflow w() {\n'
        awk_prog 'for (k = 0; k < 20; k++) { printf "  let r%d = a(", k; for (i = 0; i < n; i++) printf "%s%d", i ? ", " : "", i; printf ")\n" }'
        printf '}\n' ;;
    parallel_bodies)    # n parallel fors reading outer variables
        printf 'schema S { a: int }\nworkflow w(p: string) -> int {\n  let xs = read_jsonl<S>(p)\n  let k = 1\n  let t = 0\n'
        awk_prog 'for (i = 0; i < n; i++) printf "  let r%d = parallel for x in xs { x.a + k + %d }\n  t = t + len(r%d)\n", i, i, i'
        printf '  return t\n}\n' ;;
    nested_parallel)    # 20 parallel fors nested n deep, the innermost reading the outermost item
        printf 'schema S { a: int }\nworkflow w(p: string) -> int {\n  let xs = read_jsonl<S>(p)\n  let t = 0\n'
        awk_prog 'for (k = 0; k < 20; k++) { printf "  let r%d = parallel for y0 in xs {", k; for (i = 1; i < n; i++) printf " len(parallel for y%d in xs {", i; printf " y0.a"; for (i = 1; i < n; i++) printf " })"; printf " }\n  t = t + len(r%d)\n", k }'
        printf '  return t\n}\n' ;;
    schema_chain)       # n schemas, each holding the next; an agent returns the first
        printf '%s' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "schema S%d { a: S%d\n  v: int }\n", i, i + 1
          printf "schema S%d { z: int }\n", n'
        printf 'agent a(x: string) -> S0 {\n  model: m\n  prompt: "{{ x }}"\n}\nworkflow w() -> S0 { return a("q") }\n' ;;
    schema_dag)         # n schemas, each holding the next twice (2^n paths)
        printf '%s' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "schema S%d { a: S%d\n  b: S%d? }\n", i, i + 1, i + 1
          printf "schema S%d { z: int }\n", n'
        printf 'agent a(x: string) -> S0 {\n  model: m\n  prompt: "{{ x }}"\n}\nworkflow w() -> S0 { return a("q") }\n' ;;
    shared_schema)      # n agents returning schemas that all hold one n-field schema
        printf '%sschema B {\n' "$head"
        awk_prog 'for (i = 0; i < n; i++) printf "  f%d: int\n", i'
        printf '}\n'
        awk_prog 'for (i = 0; i < n; i++) printf "schema R%d { b: B }\nagent a%d(x: string) -> R%d {\n  model: m\n  prompt: \"{{ x }}\"\n}\n", i, i, i
          print "workflow w() -> int {"; print "  let t = 0"
          for (i = 0; i < n; i++) printf "  t = t + a%d(\"q\").b.f0\n", i
          print "  return t"; print "}"' ;;
    approval_chain)     # n variables assigned in reverse order before an approved write
        printf 'schema S { a: string }\nhttp put(x: string) -> string {\n  method: PUT\n  url: "https://example.com/{{ x }}"\n  approval: required\n}\n'
        printf 'workflow w(p: string) {\n'
        awk_prog 'for (i = 0; i <= n; i++) printf "  let v%d = \"x\"\n", i
          print "  loop max 2 {"
          for (i = 0; i < n; i++) printf "    v%d = v%d\n", i, i + 1
          printf "    v%d = env(\"X\") ?? \"d\"\n", n
          print "  }"'
        printf '  let r = put(v0)\n}\n' ;;
    *) echo "gen_hostile.sh: unknown construct '$c' (see: gen_hostile.sh list)" >&2; exit 2 ;;
esac
