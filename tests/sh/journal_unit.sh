#!/bin/sh
# journal_unit.sh: the journal's and the trace writer's self-test
# (tests/tools/rt_journal.c): group commit from many threads, resume and its
# refusals, prior spend with reservations in flight, the approval queue and
# its commands, the trace's GenAI fields, allocation failures.
tool="$TOP/build/tools/rt_journal"
[ -x "$tool" ] || { echo "no $tool (make all)"; exit 77; }
mkdir -p scratch
"$tool" selftest scratch >out 2>err
st=$?
cat out err
grep -q '^0 failed$' out || exit 1
exit $st
