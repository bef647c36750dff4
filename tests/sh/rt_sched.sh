#!/bin/sh
# rt_sched.sh: the fibers' and the event loop's self-test
# (tests/tools/rt_sched.c): 10,000 fibers waiting at once on a few threads,
# condition variables shared by fibers and plain threads, timed waits and
# sleeps on the loop's timers, nesting, deep stacks.  The ASan pass uses the
# ASan build (each stack switch announced to it); the plain pass also builds
# the portable variant (ucontext instead of the x86-64 switch) and runs it.
case $FLOWC in
    */asan/*) bin="$TOP/build/asan/tools/rt_sched"; lib="$TOP/build/asan/libflowrt.a" ;;
    *) bin="$TOP/build/tools/rt_sched"; lib="$TOP/build/libflowrt.a" ;;
esac
[ -x "$bin" ] || { echo "rt_sched.sh: $bin is not built (make all / make asan)"; exit 1; }
"$bin" || exit 1
[ "$FLOWC_FLAVOUR" = plain ] || exit 0
${CC:-cc} -std=gnu11 -O2 -D_GNU_SOURCE -DFR_FIBER_UCONTEXT -pthread -I"$TOP/runtime" -o rt_sched_uc \
    "$TOP/tests/tools/rt_sched.c" "$TOP/runtime/fr_sched.c" "$lib" \
    -ljansson -lsqlite3 -lpthread -lm || { echo "cannot build the ucontext variant"; exit 1; }
echo "the ucontext variant:"
./rt_sched_uc
