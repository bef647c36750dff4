#!/bin/sh
# rt_exec.sh: the runtime's execution, through tests/tools/rt_exec.c (a
# workflow written by hand against flowrt.h).  Each scenario checks from the
# inside what it can (in-flight maxima, the budget ledger after every call,
# order, item paths); here we check the outside: exit status, stdout,
# stderr, the review and partial files.  Under the ASan flavour (FLOWC is
# build/asan/flowc) the ASan build of the tool runs.
case "$FLOWC" in
    */build/asan/flowc) tool="$TOP/build/asan/tools/rt_exec" ;;
    *) tool="$TOP/build/tools/rt_exec" ;;
esac
[ -x "$tool" ] || { echo "no $tool (make all, make asan)"; exit 77; }

bad=0
no() { echo "FAIL: $*"; bad=1; }

# run EXPECTED_STATUS ARGS...: runs the tool, stdout to out, stderr to err
run() {
    want=$1; shift
    "$tool" "$@" >out 2>err
    st=$?
    [ "$st" = "$want" ] || { no "rt_exec $*: exit $st, expected $want"; sed 's/^/    /' err | head -20; }
}
has() { grep -qF -- "$1" "${2:-err}" || no "'$1' missing from ${2:-err}"; }
lines() { n=$(wc -l <"$2"); [ "$n" = "$1" ] || no "$2 has $n lines, expected $1"; }
# the idx fields of out, one a line
idx() { sed 's/.*"idx":\([0-9]*\).*/\1/' out; }

# parallel for: all items, in input order, the body's in-flight max under the cap
run 0 --scenario for --items 200 --conc 8 --mock --mock-latency 1
lines 200 out
[ "$(idx | tr '\n' ' ')" = "$(seq 0 199 | tr '\n' ' ')" ] || no "parallel for: not in input order"
has "run summary:"
has "work                 200"

# --concurrency caps every fan-out (checked inside: gauge <= 3)
run 0 --scenario for --items 50 --conc 20 --concurrency 3 --mock --mock-latency 1 --quiet
lines 50 out
[ -s err ] && no "--quiet still wrote to stderr"

# on_error: skip; skip; escalate (i % 7 == 2 goes to the review file)
run 0 --scenario skip --items 60 --conc 6 --mock
has "warning: item 17 skipped: rt_exec.flow:20:9: bad item 17"
has "1 item skipped after errors"
esc=$(awk 'BEGIN { for (i = 0; i < 60; i++) if (i != 17 && i % 5 != 1 && i % 7 == 2) n++; print n }')
kept=$(awk 'BEGIN { for (i = 0; i < 60; i++) if (i != 17 && i % 5 != 1 && i % 7 != 2) n++; print n }')
lines "$kept" out
lines "$esc" rt_exec.review.jsonl
has "$esc items escalated for review: see rt_exec.review.jsonl"
has '"why":"looks odd","where":"rt_exec.flow:21:9","phase":"work","path":"2"}' rt_exec.review.jsonl
has '{"item":2,' rt_exec.review.jsonl

# a new run truncates the previous run's review file
run 0 --scenario for --items 5 --mock --quiet
[ -s rt_exec.review.jsonl ] && no "review file not truncated at run start"

# on_error: halt: exit 1 naming the item
run 1 --scenario halt --items 60 --conc 4 --mock
has "error: rt_exec.flow:20:9: item 17: bad item 17"

# nested fan-outs: paths "i.j", order kept
run 0 --scenario nested --items 10 --conc 3 --mock --mock-latency 1
lines 50 out
has '{"idx":903,"path":"9.3",' out

# pipeline: streams (checked inside), per-stage caps, stage b skips i % 4 == 3
run 0 --scenario pipeline --items 80 --mock --mock-latency 2
lines 60 out
[ "$(idx | tr '\n' ' ')" = "$(seq 0 79 | awk '$1 % 4 != 3' | tr '\n' ' ')" ] || no "pipeline: order"

# parallel block: the three tasks wait for each other, so they ran at once
run 0 --scenario block --mock --mock-latency 1
has "work                   3"

# sequential loop item paths
run 0 --scenario seq --items 12 --mock
has '{"idx":11,"path":"11",' out

# budget: phase 'capped' has $0.02; the ledger is checked after every call
run 4 --scenario budget --items 400 --conc 16 --mock --mock-latency 2
has "error: stopped by phase 'capped' usd budget: spent \$0.0"
has "of \$0.0200 (the next call needed up to \$0.0"
has "not run: phase 'work', 'timed', 'tokcap', 'after'"
# the interrupted phase is not among the finished ones; its counts add up
grep -q "^finished: phase" err && no "budget: a phase listed as finished: $(grep '^finished: phase' err)"
cnt=$(sed -n "s/^interrupted: phase 'capped': \([0-9]*\) of its fan-out's 400 items finished, \([0-9]*\) left undone$/\1 \2/p" err)
[ -n "$cnt" ] || no "budget: no exact 'interrupted:' line"
fin=$(sed -n 's/^finished: \([0-9]*\) items of the interrupted fan-out, written to rt_exec.partial.jsonl$/\1/p' err)
[ -n "$fin" ] || no "budget: no 'finished: N items' line"
[ -n "$fin" ] && lines "$fin" rt_exec.partial.jsonl
[ -n "$cnt" ] && [ "$cnt" != "$fin $((400 - ${fin:-0}))" ] && no "budget: interrupted '$cnt', finished '$fin'"
usd=$(sed -n 's/^  capped .*\$\([0-9.]*\) .*/\1/p' err)
awk -v u="$usd" 'BEGIN { exit !(u > 0 && u <= 0.02) }' || no "phase 'capped' spent '$usd' of \$0.02"

# a budget stops a pipeline and a nested fan-out too; the outer items finished
# are what is written
run 4 --scenario pipebudget --items 400 --mock --mock-latency 1
has "error: stopped by phase 'capped' usd budget"
fin=$(sed -n 's/^finished: \([0-9]*\) items of the interrupted fan-out, written to rt_exec.partial.jsonl$/\1/p' err)
[ -n "$fin" ] && lines "$fin" rt_exec.partial.jsonl
# stage b drops every fourth item: finished + dropped + undone = all
cnt=$(sed -n "s/^interrupted: phase 'capped': \([0-9]*\) of its fan-out's 400 items finished, \([0-9]*\) dropped without a value, \([0-9]*\) left undone$/\1 \2 \3/p" err)
echo "$cnt" | awk -v f="$fin" 'NF == 3 && $1 == f && $1 + $2 + $3 == 400 { ok = 1 } END { exit !ok }' ||
    no "pipeline budget: interrupted '$cnt', finished '$fin'"
run 4 --scenario nestbudget --items 100 --conc 4 --mock --mock-latency 1
has "interrupted: phase 'capped': "
has " of its fan-out's 100 items finished, "
grep -q '^\[{"idx":0,"path":"0.0",' rt_exec.partial.jsonl || no "nested budget: outer items not in the partial file"

# token budget: phase 'tokcap' has 20000 tokens
run 4 --scenario tokens --items 1000 --conc 16 --mock
has "error: stopped by phase 'tokcap' tokens budget: spent "
has " of 20000 tokens (the next call needed up to "
tok=$(sed -n 's/^  tokcap  *[0-9]*  *[0-9]*  *[0-9]*  *[0-9]*  *\([0-9]*\)  *\([0-9]*\) .*/\1 \2/p' err | head -1)
awk -v t="$tok" 'BEGIN { split(t, a, " "); exit !(a[1] + a[2] > 0 && a[1] + a[2] <= 20000) }' ||
    no "phase 'tokcap' spent '$tok' tokens of 20000"

# time budget: phase 'timed' has 300 ms; sequential calls of 20 ms each
run 4 --scenario timed --items 1000 --mock --mock-latency 20
has "error: stopped by phase 'timed' time budget"

# retries: a third of the attempts fail; every item still succeeds
run 0 --scenario retry --items 100 --conc 8 --mock --mock-fail-rate 0.3 --retry-base-ms 1
lines 100 out
r=$(sed -n 's/^  work  *[0-9]*  *[0-9]*  *\([0-9]*\) .*/\1/p' err | head -1)
[ "${r:-0}" -gt 0 ] || no "retry: no retries counted"

# answers that fail validation are retried with the error told to the model
FLOWRT_MOCK_BAD_RATE=0.4 run 0 --scenario retry --items 100 --conc 8 --mock
lines 100 out
r=$(sed -n 's/^  work  *[0-9]*  *[0-9]*  *\([0-9]*\) .*/\1/p' err | head -1)
[ "${r:-0}" -gt 0 ] || no "bad answers: no retries counted"
# ... and each one is counted as invalid in the summary's second table
inv=$(sed -n '/^repairs and problems/,$s/^  work  *[0-9]*  *\([0-9]*\) .*/\1/p' err)
[ "${inv:-0}" = "$r" ] || no "bad answers: $r retries but '$inv' counted invalid"

# failed calls: every attempt fails
run 1 --scenario for --items 3 --conc 1 --mock --mock-fail-rate 1 --retry-base-ms 0
has "agent 'rate' (model cheap): mock failure (503) after 6 attempts"

# approve(): the run waits (exit 3); without a journal it cannot
run 3 --scenario approve --mock --quiet
has "waiting for approval: 2 items of 'ok?'"
run 1 --scenario approve --mock --quiet --no-journal
has "approve() needs the run journal"

# out of memory: the n-th allocation fails inside each kind of fan-out; each
# finishes whole or fails with a message (and, under ASan, leaks nothing)
run 0 --scenario oom --items 300 --mock --no-journal --quiet
has "oom: 300 rounds, "

# the command line
run 2 --items 3 --mock
has "error: missing required flag --scenario"
run 2 --scenaro for --mock
has "error: unknown flag --scenaro"
has "help: did you mean --scenario?"
run 2 --scenario for --items 3x
has "error: --items: expected an integer, got '3x'"
run 2 --scenario for --ratio=abc
has "error: --ratio: expected a number, got 'abc'"
run 2 --scenario for --items
has "error: --items needs a value"
run 2 --scenario for --loud=maybe
has "error: --loud: expected true or false, got 'maybe'"
run 2 --scenario for stray
has "error: unexpected argument 'stray'"
run 0 --scenario flags --ratio=0.25 --loud --label x --quiet
has "ratio=0.25 loud=true label=x"
run 0 --scenario=flags --no-loud --quiet
has "ratio=0.5 loud=false label=null"
run 2 --scenario=flags --loud=true --no-loud --quiet
has "error: --loud is given twice (or with its --no- form)"
run 0 --help
has "The runtime's execution self-test." out
has "--scenario STRING" out
has "which test to run (required)" out
has "--items INT" out
has "(default 100)" out
has "--loud, --no-loud" out
has "--retry-base-ms N" out
run 0 --version
has "rt_exec: built by flowc " out

exit $bad
