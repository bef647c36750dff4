#!/bin/sh
# build_warnings.sh: the generated C of every example, tests/ok and tests/exec
# case compiles with no warning under -Wall -Wextra -Werror -Wshadow, with gcc
# and with clang (clang is skipped when it is not installed).
# flavour: plain
: "${TOP:?}" "${FLOWC:?}"
compilers=gcc
command -v clang >/dev/null 2>&1 && compilers="gcc clang"
bad=0
n=0
for f in "$TOP"/examples/*.flow "$TOP"/tests/ok/*.flow "$TOP"/tests/exec/*.flow; do
    [ -e "$f" ] || continue
    c=$(basename "$f" .flow).c
    if ! "$FLOWC" build "$f" --emit-c "$c" >emit.err 2>&1; then
        echo "FAIL: $f: flowc build --emit-c failed"
        sed 's/^/    /' emit.err | head -20
        bad=1
        continue
    fi
    for cc in $compilers; do
        if ! $cc -std=gnu11 -O2 -Wall -Wextra -Werror -Wshadow -Wunused -I"$TOP/runtime" \
               -c "$c" -o /dev/null >cc.err 2>&1; then
            echo "FAIL: $f: $cc warns on the generated C"
            sed 's/^/    /' cc.err | head -20
            bad=1
        fi
    done
    n=$((n + 1))
done
[ "$n" -gt 0 ] || { echo "FAIL: no .flow file compiled"; exit 1; }
echo "$n files compiled with $compilers"
exit $bad
