#!/bin/sh
# journal_unit.sh: the journal's and the trace writer's self-test
# (tests/tools/rt_journal.c): group commit from many threads, resume and its
# refusals, prior spend with reservations in flight, the approval queue and
# its commands, the trace's GenAI fields, allocation failures.
# under the ASan flavour (FLOWC is build/asan/flowc) the ASan build of the
# tool runs when there is one
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_journal" ;;
    *) B="$TOP/build/tools/rt_journal" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_journal"
[ -x "$B" ] || { echo "no $B (make all)"; exit 77; }
mkdir -p scratch
"$B" selftest scratch >out 2>err
st=$?
cat out err
grep -q '^0 failed$' out || exit 1
exit $st
