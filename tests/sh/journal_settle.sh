#!/bin/sh
# journal_settle.sh: an attempt's hold stays counted in memory until the
# journal counts its usage instead, so a SIGKILL at any moment never leaves
# the journal counting more than the usd cap.  Two items, a cap that fits
# one worst-case hold but not two: the first request gets a 429 that asks
# for a long wait, so its call sleeps before retrying and the second item's
# request goes out meanwhile (it hangs; the server logs it only when
# answered).  Killed then, the journal must count
# the second hold only, not the first call's released hold as well.
case "$FLOWC" in
    */build/asan/flowc) B="$TOP/build/asan/tools/rt_journal" ;;
    *) B="$TOP/build/tools/rt_journal" ;;
esac
[ -x "$B" ] || B="$TOP/build/tools/rt_journal"
S="$TOP/build/tools/fakeserver"
[ -x "$B" ] && [ -x "$S" ] || { echo "no $B or $S (make all)"; exit 77; }
CAP=0.0015
fail() { echo "FAIL: $*"; kill "$pid" "$spid" 2>/dev/null; exit 1; }

printf '1 429 retry-after=60\n* hang\n' >script
"$S" --port-file pf --script script --log req.log >/dev/null 2>&1 &
spid=$!
i=0
while [ ! -s pf ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ -s pf ] || fail "the fake server did not start"
OPENAI_BASE_URL="http://127.0.0.1:$(cat pf)/v1" OPENAI_API_KEY=test-key JWF_BUDGET_USD=$CAP \
    "$B" --real --n 2 --conc 2 --quiet --journal j.db >out 2>err &
pid=$!
# the second call's row appears with its journaled hold, just before its
# request leaves, and it may be held only once the first request was refused
rows() { sqlite3 j.db "SELECT count(*) FROM calls_all" 2>/dev/null || echo 0; }
i=0
while [ "$(rows)" -lt 2 ] && [ $i -lt 400 ]; do
    sleep 0.05
    i=$((i + 1))
done
[ "$(rows)" -eq 2 ] || fail "the second call was never held: $(cat err)"
kill -9 $pid
wait $pid 2>/dev/null
kill $spid
wait $spid 2>/dev/null
grep -q '"status":429' req.log || fail "the first request was not refused: $(cat req.log)"

held=$(sqlite3 j.db "SELECT max(held_usd) FROM calls_all")
counted=$(sqlite3 j.db "SELECT total(usd + held_usd + lost_usd) FROM calls_all")
awk -v h="$held" -v c=$CAP 'BEGIN { exit !(h > 0 && 2 * h > c && h <= c) }' ||
    fail "a hold of $held does not make the test: one must fit $CAP, two not"
awk -v j="$counted" -v c=$CAP 'BEGIN { exit !(j <= c + 1e-9) }' ||
    fail "killed while a call waited to retry, the journal counts $counted, over $CAP"
echo ok
