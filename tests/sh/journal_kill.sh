#!/bin/sh
# journal_kill.sh: a run killed with SIGKILL at random moments, resumed each
# time, ends with the same output as an uninterrupted run; no call the
# journal holds is requested again (each call key appears at most once
# uncached in the trace); the calls finished cost what they cost once; the
# journal passes PRAGMA integrity_check after every kill.
#
# The workflow is rt_journal's (400 items, 8 at once, mock latency 30 ms: 1.5 s of work).
# JOURNAL_KILLS sets the number of kills (default 16); the seed of the
# random moments is printed so a failure can be replayed (JOURNAL_SEED).
# under the ASan flavour (FLOWC is build/asan/flowc) the ASan build of the
# tool runs when there is one
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_journal" ;;
    *) B="$TOP/build/tools/rt_journal" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_journal"
[ -x "$B" ] || { echo "no $B (make all)"; exit 77; }
command -v jq >/dev/null || { echo "no jq"; exit 77; }
KILLS=${JOURNAL_KILLS:-16}
# the moments come from a fixed seed; JOURNAL_SEED=N replays another,
# JOURNAL_SEED=random draws one (printed, so that a failure can be replayed)
SEED=${JOURNAL_SEED:-1}
[ "$SEED" = random ] && SEED=$(date +%s%N | cut -c10-18)
echo "seed $SEED"
FLAGS="--mock --n 400 --conc 8 --mock-latency 30 --quiet"

# runs of the workflow in kill.db with status $1 (0 when there is no
# journal yet: a kill can land before the process created it)
runs_with() {
    n=$([ -f kill.db ] && sqlite3 kill.db "SELECT count(*) FROM runs WHERE status $1" 2>/dev/null)
    echo "${n:-0}"
}
fail() { echo "FAIL: $*"; exit 1; }

integrity() {
    r=$(sqlite3 "$1" 'PRAGMA integrity_check' 2>&1)
    [ "$r" = ok ] || fail "integrity_check of $1: $r"
}

# the uninterrupted run
"$B" $FLAGS --journal ref.db >ref.out 2>ref.err || fail "reference run: $(cat ref.err)"
[ "$(wc -l <ref.out)" -eq 400 ] || fail "reference run: $(wc -l <ref.out) lines"
ref_usd=$(sqlite3 ref.db "SELECT printf('%.9f', total(usd)) FROM calls_all WHERE status='ok'")

# kill at random moments in 20..250 ms, resuming when a run is in the journal
awk -v s="$SEED" -v n="$KILLS" 'BEGIN { srand(s); for (i = 0; i < n; i++) printf "%.3f\n", 0.02 + rand() * 0.23 }' >moments
kills=0
done=0
while read -r t; do
    resume=""
    if [ "$(runs_with "<> 'done'")" -gt 0 ]; then
        resume="--resume"
    fi
    "$B" $FLAGS --journal kill.db --trace trace.jsonl $resume >run.out 2>run.err &
    pid=$!
    sleep "$t"
    kill -9 $pid 2>/dev/null && kills=$((kills + 1))
    wait $pid
    st=$?
    [ -f kill.db ] && integrity kill.db
    if [ $st -eq 0 ]; then done=1; break; fi
    # killed after the run was marked done (an ASan exit is slow): its output
    # was flushed before that, so the run is over, as a user would find it
    if [ "$(runs_with "= 'done'")" -gt 0 ]; then
        done=1; break
    fi
    [ $st -eq 137 ] || fail "run exited $st: $(cat run.err)"
done <moments
echo "$kills kills"
[ $kills -ge 5 ] || fail "only $kills kills landed (the run is too fast for the moments)"

# finish it: resume the run, or start it when every kill landed before the
# process had begun a run in the journal
if [ $done = 0 ]; then
    resume=""
    [ "$(runs_with "<> 'done'")" -gt 0 ] && resume="--resume"
    "$B" $FLAGS --journal kill.db --trace trace.jsonl $resume >run.out 2>run.err ||
        fail "final run ($resume): $(cat run.err)"
fi
integrity kill.db
diff ref.out run.out >diff.out || fail "output differs from the uninterrupted run: $(head diff.out)"

# no journaled call was requested again: each key is uncached at most once
jq -r 'select(.type == "call" and .cached == false) | .call_key' trace.jsonl | sort >fresh
dups=$(uniq -d fresh | wc -l)
[ "$dups" -eq 0 ] || fail "$dups calls were requested again after being journaled: $(uniq -d fresh | head -3)"
[ "$(wc -l <fresh)" -le 400 ] || fail "$(wc -l <fresh) fresh calls for 400 items"

# what the finished calls cost, they cost once
usd=$(sqlite3 kill.db "SELECT printf('%.9f', total(usd)) FROM calls_all WHERE status='ok'")
[ "$usd" = "$ref_usd" ] || fail "the finished calls cost $usd, uninterrupted $ref_usd"
n=$(sqlite3 kill.db "SELECT count(*) FROM calls_all WHERE status='ok'")
[ "$n" -eq 400 ] || fail "$n calls journaled, expected 400"
st=$(sqlite3 kill.db "SELECT status FROM runs")
[ "$st" = done ] || fail "run status '$st'"
echo "ok: $kills kills, $(wc -l <fresh) fresh calls traced, output equal"
