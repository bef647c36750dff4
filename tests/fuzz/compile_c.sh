#!/bin/sh
# compile_c.sh CDIR LIST FINDDIR: compiles the generated C files named in
# LIST (one per line, relative to CDIR) as `flowc build` users' compilers
# would, with every warning an error; a file that does not compile is a
# program that checks clean but does not build: it is copied to FINDDIR as
# unbuildable-<hash>.flow with its .c and the compiler's words (.err).
#
#   every file      gcc -fsyntax-only (the front end's warnings: unused
#                   variables and labels, shadowing, sign and type
#                   mismatches), forty files to a gcc run
#   one in eight    (by hash) also gcc -O2 -c (the optimizer's warnings:
#                   maybe-uninitialized and friends) and clang -fsyntax-only
#
# Prints "N compiled, N sampled at -O2 and with clang, N unbuildable" and
# exits 1 if any was unbuildable.
cdir=${1:?cdir}
list=${2:?list}
find=${3:?finddir}
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
CC=${CC:-gcc}
FLAGS="-std=gnu11 -Wall -Wextra -Werror -Wshadow -Wunused -I$TOP/runtime"
mkdir -p "$find"
have_clang=0
command -v clang >/dev/null 2>&1 && have_clang=1

bad=0
n=0
sampled=0
# one file that failed: keep it with what the compiler said
keep() {
    h=${1%.c}
    cp "$cdir/$h.c" "$find/unbuildable-$h.c"
    cp "$cdir/$h.flow" "$find/unbuildable-$h.flow" 2>/dev/null
    printf '%s\n' "$2" >"$find/unbuildable-$h.err"
    echo "unbuildable: $cdir/$h.flow ($3)"
    bad=$((bad + 1))
}

# checks the files of one batch ($@), one by one when the batch fails
batch() {
    # shellcheck disable=SC2086
    (cd "$cdir" && $CC $FLAGS -fsyntax-only "$@") >/dev/null 2>&1 && return
    for f in "$@"; do
        # shellcheck disable=SC2086
        out=$(cd "$cdir" && $CC $FLAGS -fsyntax-only "$f" 2>&1) || keep "$f" "$out" "$CC -fsyntax-only"
    done
}

set --
while IFS= read -r f; do
    [ -f "$cdir/$f" ] || continue
    n=$((n + 1))
    set -- "$@" "$f"
    if [ $# -ge 40 ]; then
        batch "$@"
        set --
    fi
    case $f in
        0*|8*)
            sampled=$((sampled + 1))
            # shellcheck disable=SC2086
            out=$(cd "$cdir" && $CC $FLAGS -O2 -c -o /dev/null "$f" 2>&1) || keep "$f" "$out" "$CC -O2"
            if [ $have_clang = 1 ]; then
                # shellcheck disable=SC2086
                out=$(cd "$cdir" && clang $FLAGS -fsyntax-only "$f" 2>&1) || keep "$f" "$out" clang
            fi
            ;;
    esac
done <"$list"
[ $# -gt 0 ] && batch "$@"
echo "$n compiled, $sampled sampled at -O2 and with clang, $bad unbuildable"
[ $bad -eq 0 ]
