#!/bin/sh
# report.sh: `BINARY report RUN` writes one self-contained HTML page about a
# run, checked in a real headless browser (Chromium from Debian).
#
# The run (mock, fixed seed) has two phases, retries (FLOWRT_MOCK_BAD_RATE),
# a failed call whose error quotes a model answer holding <script> and
# </style> (an enum value from a fixture), an escalation whose reason holds
# an input's <script>, and @sensitive emails.  The page must hold the run's
# total cost as the journal sums it, a row per agent, the phases, SVG bars,
# the escalation with its decider after `approve --by`, the estimate against
# the actual, and no <script>, no sensitive value, nothing fetched.
# Chromium renders it (a PNG screenshot, and the DOM after load) with no
# console message (the page's CSP logs any script or fetch it blocks).  The
# browser runs in the plain flavour only: the ASan flavour checks the
# generator itself on the same run.
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
fail() { echo "FAIL: $*"; exit 1; }
cat >t.flow <<'E'
schema Lead {
  id: string
  name: string
  email: string @sensitive
}
enum Tier { hot, warm, cold }
schema Score { lead_id: string  score: int in 0..100  tier: Tier }
schema Pair { lead: Lead  s: Score }
schema Note { lead_id: string  text: string len 5..200 }

model local { provider: mock  name: "llama-local"  usd_per_mtok_in: 3  usd_per_mtok_out: 15  accepts_sensitive: true }

agent score(lead: Lead) -> Score {
  model: local
  retries: 2
  prompt: "Score {{ lead }}"
}

agent write(lead: Lead, s: Score) -> Note {
  model: local
  retries: 2
  prompt: "Write to {{ lead.name }} <{{ lead.email }}> about {{ s.tier }}"
}

workflow triage(file: string) -> list<Note> {
  phase scoring {
    let leads = read_jsonl<Lead>(file)
    let scored = parallel for l in leads (concurrency: 4, on_error: skip) {
      if l.id == "L3" { escalate(l, "check {{ l.name }} <{{ l.email }}> by hand") }
      Pair { lead: l, s: score(l) }
    }
  }
  phase writing {
    let notes = parallel for p in scored (concurrency: 3, on_error: skip) {
      write(p.lead, p.s)
    }
    return notes
  }
}
E
i=1
while [ $i -le 12 ]; do
    n="Lead $i"
    [ $i = 3 ] && n='Eve <script>alert(1)</script></style>'
    printf '{"id":"L%d","name":"%s","email":"person%d.secret@example.org"}\n' $i "$n" $i
    i=$((i + 1))
done >leads.jsonl
cat >fx.jsonl <<'E'
{"agent": "score", "when": {"lead.id": "L5"}, "answer": {"lead_id": "L5", "score": 5, "tier": "</style><script>alert('x')</script>"}}
E
"$FLOWC" build t.flow -o triage 2>err || fail "build: $(cat err)"
FLOWRT_MOCK_BAD_RATE=0.3 ./triage --file leads.jsonl --mock-fixtures fx.jsonl --quiet >out 2>err ||
    fail "run: $(cat err)"
run=$(sqlite3 .flow/triage.db "SELECT id FROM runs")
./triage approve "$run" --all --by "Grace <Hopper>" >/dev/null || fail "approve"
"$FLOWC" estimate t.flow --format=json --items leads=12 --items scored=11 >est.json 2>err ||
    fail "estimate: $(cat err)"
./triage report last -o report.html --estimate est.json 2>err || fail "report: $(cat err)"
grep -q "^report of run $run written to report.html ([0-9]* KB)$" err || fail "message: $(cat err)"
[ "$(stat -c %a report.html)" = 600 ] || fail "mode $(stat -c %a report.html)"
./triage report "$run" -o - --estimate est.json >stdout.html 2>err || fail "report -o -: $(cat err)"
[ ! -s err ] || fail "report -o - said: $(cat err)"
# the same page but its "written at" footer
[ "$(grep -v '^<footer>' stdout.html)" = "$(grep -v '^<footer>' report.html)" ] ||
    fail "-o - differs from -o FILE"

# escaped and redacted: no tag from the data, no sensitive value, nothing to fetch
! grep -qi '<script\|<img\|<link\|<iframe\|@import\|url(' report.html || fail "active content: $(grep -oi '<script[^>]*>\|<img[^>]*>\|<link[^>]*>\|url([^)]*)' report.html | head -3)"
! grep -q 'https\?://' report.html || fail "a URL: $(grep -o 'https\?://[^ "]*' report.html | head -3)"
[ "$(grep -c '</style>' report.html)" = 1 ] || fail "a second </style>"
grep -q "check Eve &lt;script&gt;alert(1)&lt;/script&gt;&lt;/style&gt; &lt;\[redacted\]&gt; by hand" report.html ||
    fail "escalation reason: $(grep -o 'check Eve[^<]*' report.html)"
grep -q "tier: &#39;&lt;/style&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&#39; is not one of hot, warm, cold" report.html ||
    fail "the answer's error: $(grep -o 'tier: [^<]*' report.html | head -2)"
grep -q "Grace &lt;Hopper&gt;" report.html || fail "who decided"
for k in 1 2 3 4 5 6 7 8 9 10 11 12; do
    ! grep -qF "person$k.secret@example.org" report.html || fail "person$k's email is in the report"
done

# the numbers are the journal's
cost=$(sqlite3 .flow/triage.db "SELECT printf('\$%.6f', total(usd + held_usd + lost_usd)) FROM calls_all")
grep -q "<div class=card id=total-cost><b>$cost</b>" report.html || fail "total cost $cost: $(grep -o 'id=total-cost><b>[^<]*' report.html)"
calls=$(sqlite3 .flow/triage.db "SELECT count(*) FROM calls_all WHERE instr(key, '#') = 0")
[ "$calls" -ge 20 ] || fail "only $calls calls"
grep -q "<b>$calls</b><span>calls</span>" report.html || fail "calls $calls"

# errors: unknown run, bad flags, an estimate of another workflow
./triage report nosuch -o x.html 2>err; [ $? = 2 ] || fail "unknown run: exit $?"
grep -q "error: no run 'nosuch' of triage in the journal .flow/triage.db (see: runs)" err || fail "unknown run: $(cat err)"
./triage report last -o 2>err; [ $? = 2 ] || fail "-o without a file"
grep -q "error: -o needs a file (-: stdout)" err || fail "-o: $(cat err)"
./triage report last --bogus 2>err; [ $? = 2 ] || fail "--bogus"
grep -q "error: unknown argument '--bogus'" err || fail "--bogus: $(cat err)"
sed 's/"workflow": "triage"/"workflow": "other"/' est.json >other.json
./triage report last --estimate other.json -o y.html 2>err; [ $? = 2 ] || fail "other estimate"
grep -q "is the estimate of workflow 'other', not of 'triage'" err || fail "other estimate: $(cat err)"
[ ! -e x.html ] && [ ! -e y.html ] || fail "a page written after an error"
./triage report --help | grep -q "^usage: ./triage report RUN|last" || fail "--help"
./triage --help | grep -q "report RUN -o FILE" || fail "the binary's --help lists report"
# a run stopped by its budget: the page says how to resume it
./triage --file leads.jsonl --mock --budget-usd 0.001 --quiet >/dev/null 2>err; [ $? = 4 ] || fail "budget run: $(cat err)"
run2=$(sqlite3 .flow/triage.db "SELECT id FROM runs WHERE status = 'budget'")
./triage report last -o stopped.html 2>err || fail "report of the stopped run: $(cat err)"
grep -q "<span class=\"status budget\">budget</span>" stopped.html || fail "status budget"
grep -q "<code class=resume>./triage --resume $run2</code>" stopped.html || fail "resume command: $(grep -o 'class=resume>[^<]*' stopped.html)"
! grep -q "class=resume" report.html || fail "a resume command for a finished run"
# resumed three hours later (its later calls moved): the idle stretch is cut short, as a band
maxid=$(sqlite3 .flow/triage.db "SELECT max(id) FROM calls_all")
./triage --file leads.jsonl --mock --resume "$run2" --budget-usd 1 --quiet >/dev/null 2>err || fail "resume: $(cat err)"
sqlite3 .flow/triage.db "UPDATE calls SET finished_ms = finished_ms + 10800000 WHERE id > $maxid;
    UPDATE runs SET ended_ms = ended_ms + 10800000 WHERE id = '$run2'" || fail "sqlite3"
./triage report "$run2" -o resumed.html 2>err || fail "report of the resumed run: $(cat err)"
[ "$(grep -o '<g class=cut>' resumed.html | wc -l)" = 2 ] || fail "no cut (or not in both charts)"
grep -q "<text [^>]*>idle 3 h 00 min</text>" resumed.html || fail "cut: $(grep -o 'idle [^<]*' resumed.html | head -2)"
! grep -q '<g class=cut>' report.html || fail "a cut in a run without a pause"

# an example with tool loops and http operations (their calls, not retries), waiting for approval
"$FLOWC" build "$TOP/examples/abm_personalization.flow" -o abm 2>err || fail "build abm: $(cat err)"
./abm --mock --accounts-file "$TOP/examples/data/accounts.jsonl" --journal abm.db --quiet >/dev/null 2>err
[ $? = 3 ] || fail "abm: $(cat err)"
./abm report last --journal abm.db -o abm.html 2>err || fail "abm report: $(cat err)"
grep -q '<tr class=agent>.*find_signals</td><td class=mono>claude-haiku-[^<]*, claude-opus-[^<]*</td><td class=n>[0-9]* <span class=sub>([0-9]* turns)' abm.html ||
    fail "abm: find_signals row: $(grep -o '<tr class=agent>.*find_signals.*' abm.html)"
grep -q '<tr class=agent>.*fetch_page</td><td class=mono>(http)</td><td class=n>[0-9]*</td><td class=n>0</td><td class=n>0</td>' abm.html ||
    fail "abm: fetch_page row: $(grep -o '<tr class=agent>.*fetch_page.*' abm.html)"
grep -q "decide its items (see <code>review</code>), then resume it:" abm.html || fail "abm: waiting"
# its arguments as written: min_signal 0.2, not the 17 digits a resume compares
grep -q '&quot;min_signal&quot;:0.2,' abm.html ||
    fail "abm: arguments $(grep -o 'arguments <span[^<]*' abm.html)"

# 45 agents with long names: 24 lanes (the busiest), labels cut, problems listed for 40 agents
{
    echo 'schema In { id: string }'
    echo 'schema Out { id: string  n: int in 1..5 }'
    echo 'model m { provider: mock  name: "m1"  usd_per_mtok_in: 1  usd_per_mtok_out: 1 }'
    i=1
    while [ $i -le 45 ]; do
        echo "agent an_agent_with_a_rather_long_name_$i(x: In) -> Out { model: m  retries: 1  prompt: \"{{ x }}\" }"
        i=$((i + 1))
    done
    echo 'workflow many(file: string) -> list<Out> {'
    echo '  let xs = read_jsonl<In>(file)'
    i=1
    while [ $i -le 45 ]; do
        echo "  let y$i = parallel for x in xs (on_error: skip) { an_agent_with_a_rather_long_name_$i(x) }"
        i=$((i + 1))
    done
    echo '  return y45'
    echo '}'
} >many.flow
printf '{"id":"a"}\n{"id":"b"}\n' >two.jsonl
"$FLOWC" build many.flow -o many 2>err || fail "build many: $(cat err)"
FLOWRT_MOCK_BAD_RATE=0.9 ./many --file two.jsonl --quiet >/dev/null 2>&1
./many report last -o many.html 2>err || fail "many: $(cat err)"
[ "$(grep -o '>top [0-9.]*</text>' many.html | wc -l)" = 24 ] || fail "many: lanes $(grep -c '>top ' many.html)"
grep -q "The 24 agents with the most calls are drawn, not the 21 others." many.html || fail "many: lanes note"
grep -q '<title>an_agent_with_a_rather_long_name_24</title>an_agent_with&hellip;_long_name_24</text>' many.html || fail "many: a label not cut"
[ "$(grep -c '<h3 class=agent-problems>' many.html)" = 40 ] || fail "many: problem sections $(grep -c '<h3 class=agent-problems>' many.html)"
grep -q "And the problems of [0-9]* more agents, not listed: an_agent_with_a_rather_long_name_4[0-9] (" many.html ||
    fail "many: the rest $(grep -o 'And the problems[^<]*' many.html)"

[ "$FLOWC_FLAVOUR" = asan ] && { echo ok; exit 0; }

# a real browser
command -v chromium >/dev/null 2>&1 ||
    fail "chromium is not installed: \`make deps\` installs it (Debian package chromium)"
mkdir -p profile
chromium --headless --no-sandbox --disable-gpu --no-proxy-server --no-first-run \
    --disable-extensions --disable-background-networking --disable-component-update \
    --user-data-dir="$PWD/profile" --enable-logging=stderr --v=0 --window-size=1280,2000 \
    --screenshot="$PWD/shot.png" --dump-dom "file://$PWD/report.html" >dom.html 2>chromium.err ||
    fail "chromium: exit $?: $(tail -5 chromium.err)"
# a PNG of the window's size, not a blank one
[ "$(head -c 8 shot.png | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "shot.png is not a PNG"
[ "$(od -An -tx1 -j16 -N8 shot.png | tr -d ' \n')" = 00000500000007d0 ] || fail "shot.png is not 1280x2000"
[ "$(stat -c %s shot.png)" -gt 40000 ] || fail "shot.png is too small to hold the page ($(stat -c %s shot.png) bytes)"
! grep -q 'CONSOLE' chromium.err || fail "console: $(grep CONSOLE chromium.err | head -3)"
# the DOM after load has the sections, a row per agent, the bars
for s in phases timeline histograms agents approvals estimate; do
    grep -q "<section id=\"$s\">" dom.html || fail "no section $s in the DOM"
done
grep -q "<div class=\"card\" id=\"total-cost\"><b>$cost</b>" dom.html || fail "DOM: total cost"
[ "$(grep -o '<tr class="agent">' dom.html | wc -l)" = 2 ] || fail "DOM: agent rows"
[ "$(grep -o '<tr class="phase">' dom.html | wc -l)" = 2 ] || fail "DOM: phase rows"
sed -n '/<svg id="phase-bars"/,/<\/svg>/p' dom.html | grep -q '<rect class="bar"' || fail "DOM: no phase bars"
grep -q '<svg id="concurrency"' dom.html || fail "DOM: no concurrency chart"
[ "$(grep -o '<rect class="bar"' dom.html | wc -l)" -ge 6 ] || fail "DOM: histogram bars"
[ "$(grep -o '<tr class="est-phase">' dom.html | wc -l)" = 2 ] || fail "DOM: estimate rows"
! grep -q '<script' dom.html || fail "DOM: a script element"
grep -q 'Eve &lt;script&gt;alert(1)&lt;/script&gt;&lt;/style&gt;' dom.html || fail "DOM: the reason as text"
echo ok
