# outage_skip.sh: a server outage under on_error: skip.  The run that skips
# items after transient errors ends with exit 5 (not 0), says so, is left
# unfinished in the journal (status "skipped"), and the write-back file it
# would shrink is kept as <file>.prev with a warning; a plain --resume then
# retries only the skipped items and writes the file whole.  (A total
# outage used to exit 0, mark the run done, and replace the file with an
# empty one.)  Items skipped for other reasons (a fail()) still exit 0.
. "$TOP/tests/fake/lib.sh"
FLOWC=${FLOWC:-$TOP/build/flowc}
cat >out.flow <<'FLOW'
schema Lead { id: int  name: string }
schema Enriched { id: int  title: string }
model m { provider: anthropic  name: "fake-model" }
agent enrich(l: Lead) -> Enriched { model: m  max_tokens: 100  retries: 1  prompt: "Enrich {{ l }}" }
workflow out(file: string = "leads.jsonl", bad: int = -1) -> list<Enriched> {
  let leads = read_jsonl<Lead>(file)
  let rich = parallel for l in leads (concurrency: 4, on_error: skip) {
    if l.id == bad { fail("lead {{ l.id }} is bad") }
    enrich(l)
  }
  write_jsonl(rich, "enriched.jsonl")
  return rich
}
FLOW
i=1; while [ $i -le 10 ]; do echo "{\"id\": $i, \"name\": \"n$i\"}"; i=$((i + 1)); done >leads.jsonl
"$FLOWC" build out.flow -o out >build.err 2>&1 || die "build: $(cat build.err)"
F="--journal j.db --retry-base-ms 1"

start_server --key "$KEY"
./out $F >o1 2>e1 || die "first run: $(cat e1)"
[ "$(wc -l <enriched.jsonl)" = 10 ] || die "first write-back: $(wc -l <enriched.jsonl) lines"
# a non-transient skip (fail) is not an outage: exit 0
./out $F --bad 3 >o2 2>e2 || die "a fail() skip: exit $?: $(cat e2)"
has "1 item skipped after errors" e2
[ "$(wc -l <enriched.jsonl)" = 9 ] || die "after a fail() skip: $(wc -l <enriched.jsonl) lines"
./out $F >o1 2>e1 || die "third run: $(cat e1)"

# the server goes down: every call fails after its retries
stop_server
./out $F >o3 2>e3; st=$?
[ $st = 5 ] || die "outage: exit $st, expected 5: $(cat e3)"
has "10 items skipped after errors (on_error: skip)" e3
has "10 calls failed after transient errors (network, timeouts, 429, 5xx): the run ends with exit status 5" e3
has "warning: write_jsonl: 'enriched.jsonl' has 0 lines now, 10 before: this run skipped items after transient errors; the previous file is kept as enriched.jsonl.prev" e3
[ "$(wc -l <enriched.jsonl.prev)" = 10 ] || die "the previous file was not kept"
run=$(sed -n 's/.*retry them with `\.\/out --resume \([0-9a-f-]*\)`.*/\1/p' e3)
[ -n "$run" ] || die "no resume hint: $(cat e3)"
./out runs --journal j.db | grep -q "^$run *skipped " || die "runs: $(./out runs --journal j.db)"

# back up: a plain --resume retries the skipped items only
start_server --key "$KEY"
./out $F --resume >o4 2>e4 || die "resume: exit $?: $(cat e4)"
[ "$(wc -l <enriched.jsonl)" = 10 ] || die "after the resume: $(wc -l <enriched.jsonl) lines"
want_requests 10
./out runs --journal j.db | grep -q "^$run *done " || die "runs after the resume: $(./out runs --journal j.db)"
finish
