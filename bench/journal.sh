#!/bin/sh
# journal.sh: what the run journal costs (rt_journal's workflow on the mock).
#   - 1,000 items at concurrency 100, mock latency 50 ms, with and without the
#     journal: the overhead in wall time (goal under 2%).  Without a usd or
#     token cap only results wait for a sync; with a cap (JWF_BUDGET_USD) each
#     request also waits for its hold; and the same with synchronous=NORMAL.
#     The variants run interleaved, 7 rounds; best and median are shown (the
#     best is the least disturbed by other load on the machine).  The last
#     variant puts the journal on tmpfs: the same code with syncs that cost
#     nothing, which shows how much of the overhead is the disk's sync.
#   - 10,000 items at concurrency 100, mock latency 0: the cost per call when
#     nothing hides it
#   - the journal's size per 10,000 calls (after the run; WAL checkpointed)
#   - a resume that answers all 10,000 calls from the journal
# Timings are printed, never asserted.
cd "$(dirname "$0")/.." || exit 2
B=build/tools/rt_journal
[ -x $B ] || make --no-print-directory $B >/dev/null || exit 1
out=bench/out/journal; rm -rf $out; mkdir -p $out
ROUNDS=${ROUNDS:-7}

now_us() { echo $(( $(date +%s%N) / 1000 )); }
# one timed run of variant $1 (appends microseconds to $out/$1)
timed() {
    v=$1; shift
    rm -f $out/j.db*
    s=$(now_us); "$@" >/dev/null 2>$out/err || echo "($v: exit $?: $(head -1 $out/err))" >&2; e=$(now_us)
    echo $((e - s)) >>$out/$v
}
best() { sort -n $out/$1 | head -1; }
median() { sort -n $out/$1 | sed -n "$(( (ROUNDS + 1) / 2 ))p"; }
secs() { awk -v t="$1" 'BEGIN { printf "%.3f", t / 1e6 }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f%%", (a - b) * 100 / b }'; }
row() { # label, variant, [baseline variant]
    b=$(best $2); m=$(median $2)
    if [ -n "$3" ]; then
        printf '%-56s %6s s %7s | median %6s s %7s\n' "$1" "$(secs $b)" "$(pct $b "$(best $3)")" \
            "$(secs $m)" "$(pct $m "$(median $3)")"
    else
        printf '%-56s %6s s         | median %6s s\n' "$1" "$(secs $b)" "$(secs $m)"
    fi
}

echo "== journal (mock provider, SQLite WAL, synchronous=FULL, group commit)"
# what one sync costs on the disk that holds bench/out, right now
s=$(now_us); dd if=/dev/zero of=$out/sync bs=4k count=200 oflag=dsync 2>/dev/null; e=$(now_us)
printf '%-56s %6.3f ms per 4 KiB write\n' "the disk's sync latency (dd oflag=dsync, 200 writes)" \
    "$(awk -v t=$((e - s)) 'BEGIN { print t / 200 / 1000 }')"
rm -f $out/sync
F="--mock --n 1000 --conc 100 --mock-latency 50 --quiet"
shm=/dev/shm/flowc-bench-$$.db
i=0
while [ $i -lt $ROUNDS ]; do
    timed off $B $F --no-journal
    timed on $B $F --journal $out/j.db
    JWF_BUDGET_USD=1000 timed cap $B $F --journal $out/j.db
    FLOWRT_JOURNAL_SYNC=normal JWF_BUDGET_USD=1000 timed normal $B $F --journal $out/j.db
    if [ -d /dev/shm ]; then
        rm -f $shm*
        JWF_BUDGET_USD=1000 timed shm $B $F --journal $shm
    fi
    i=$((i + 1))
done
echo "1,000 items, concurrency 100, mock latency 50 ms (ideal 0.500 s), best of $ROUNDS:"
row "  no journal" off
row "  journaled, no usd/token cap (results synced)" on off
row "  journaled, usd cap (holds synced too)" cap off
row "  journaled, usd cap, synchronous=NORMAL" normal off
[ -s $out/shm ] && row "  journaled, usd cap, FULL, journal on tmpfs (/dev/shm)" shm off
rm -f $shm*

F="--mock --n 10000 --conc 100 --quiet"
for i in 1 2 3; do
    timed off10k $B $F --no-journal
    JWF_BUDGET_USD=1000 timed cap10k $B $F --journal $out/j.db
done
o=$(best off10k); c=$(best cap10k)
printf '%-56s %6s s\n' "10,000 items, concurrency 100, latency 0, no journal" "$(secs $o)"
printf '%-56s %6s s         | %.1f us per call\n' "  journaled, usd cap" "$(secs $c)" \
    "$(awk -v a="$c" -v b="$o" 'BEGIN { print (a - b) / 10000 }')"

rm -f $out/j.db*
JWF_BUDGET_USD=1000 $B $F --journal $out/j.db >$out/full.out 2>/dev/null
size=$(du -b $out/j.db | cut -f1)
printf '%-56s %6.2f MB          (%d bytes per call)\n' "journal size per 10,000 calls" \
    "$(awk -v s="$size" 'BEGIN { print s / 1048576 }')" $((size / 10000))
calls=$(sqlite3 $out/j.db "SELECT count(*) FROM calls_all")
sqlite3 $out/j.db "UPDATE runs SET status = 'failed'"
s=$(now_us); JWF_BUDGET_USD=1000 $B $F --journal $out/j.db --resume >$out/resume.out 2>/dev/null; e=$(now_us)
printf '%-56s %6s s         | %d calls answered, output %s\n' "resume answering every call from the journal" \
    "$(secs $((e - s)))" "$calls" "$(cmp -s $out/full.out $out/resume.out && echo equal || echo DIFFERENT)"
