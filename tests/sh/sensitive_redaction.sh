#!/bin/sh
# sensitive_redaction.sh: the values of @sensitive fields appear in no output
# of a run but its result: not in the trace (--trace-content included), the
# journal and its -wal (answers keep a salted hash), the summary, `show`,
# `review`, `runs --audit`, `report`, the review file; an escalation's reason has them
# redacted.  A resume puts the hashed values back from the input's and
# answers from the journal.  The mock copies input fields into answers.
[ -n "$FLOWC" ] || FLOWC="$TOP/build/flowc"
fail() { echo "FAIL: $*"; exit 1; }
cat >r.flow <<'E'
schema Contact {
  id: string
  name: string
  email: string @sensitive
  phone: string? @sensitive
}
schema Reply { contact_id: string  email: string @sensitive  text: string len 5..200 }

model local { provider: mock  name: "llama-local"  usd_per_mtok_in: 0  usd_per_mtok_out: 0  accepts_sensitive: true }

agent draft(contact: Contact) -> Reply {
  model: local
  retries: 3
  system: "You write for {{ contact.name }} <{{ contact.email }}>."
  prompt: "Write a short note to {{ contact }}"
}

workflow outreach(file: string) -> list<Reply> {
  phase write {
    let cs = read_jsonl<Contact>(file)
    let rs = parallel for c in cs (concurrency: 2) {
      if c.phone == null { escalate(c, "no phone for {{ c.email }}") }
      draft(c)
    }
    return approve(rs, "send these?")
  }
}
E
printf '%s\n' '{"id":"c1","name":"Ada","email":"ada.lovelace@example.org","phone":"+44 7700 900123"}' \
    '{"id":"c2","name":"Bob","email":"bob.babbage@example.net"}' \
    '{"id":"c3","name":"Cy","email":"cy.zuse@example.com","phone":"+49 30 1234567"}' >contacts.jsonl
"$FLOWC" build r.flow -o outreach 2>err || fail "build: $(cat err)"
FLOWRT_MOCK_BAD_RATE=0.3 ./outreach --file contacts.jsonl --trace-content --trace t.jsonl >out1 2>err1
[ $? -eq 3 ] || fail "first run: $(cat err1)"
run=$(sqlite3 .flow/outreach.db "SELECT id FROM runs")
./outreach review >review || fail "review"
./outreach show last >show || fail "show"
./outreach approve "$run" --all --by tester >approve || fail "approve"
./outreach runs --audit >audit || fail "audit"
./outreach runs >runs || fail "runs"
FLOWRT_MOCK_BAD_RATE=0.3 ./outreach --file contacts.jsonl --resume --trace-content --trace t.jsonl >out2 2>err2 ||
    fail "resume: $(cat err2)"
./outreach show last --item 2 >show2 || fail "show 2"
./outreach report last -o report.html 2>/dev/null || fail "report"
# the result is the workflow's: it holds the values, copied by the mock from the input
grep -q '"contact_id":"c1","email":"ada.lovelace@example.org"' out2 || fail "result: $(cat out2)"
grep -q "2 calls answered from the journal" err2 || fail "resume asked again: $(cat err2)"
for v in ada.lovelace@example.org bob.babbage@example.net cy.zuse@example.com "7700 900123" "30 1234567"; do
    for f in t.jsonl err1 err2 out1 review show show2 approve audit runs report.html outreach.review.jsonl \
             .flow/outreach.db .flow/outreach.db-wal; do
        [ -e "$f" ] || continue
        ! grep -qaF "$v" "$f" || fail "'$v' is in $f"
    done
done
grep -q 'You write for Ada <\[redacted\]>' show || fail "show: $(head -c 1500 show)"
grep -q '"why":"no phone for \[redacted\]"' outreach.review.jsonl || fail "review file: $(cat outreach.review.jsonl)"
grep -q 'escalated: no phone for \[redacted\]' review || fail "review: $(cat review)"
grep -q 'no phone for \[redacted\]' report.html || fail "report: $(grep -o 'no phone[^<]*' report.html)"
[ "$(sqlite3 .flow/outreach.db "SELECT count(*) FROM calls_all WHERE output LIKE '%[sensitive sha256:%'")" = 2 ] ||
    fail "answers not hashed: $(sqlite3 .flow/outreach.db "SELECT output FROM calls_all")"
grep -q "tester" audit || fail "audit: $(cat audit)"
echo ok
