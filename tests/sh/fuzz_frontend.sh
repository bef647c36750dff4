#!/bin/sh
# fuzz_frontend.sh: the front end (lexer, parser, type checker) under ASan and
# UBSan on thousands of mutated and random inputs: no crash, hang or leak.
#
# Runs build/asan/tools/fuzz_frontend (tests/fuzz/fuzz_frontend.c with the
# front end's objects, built by make asan; built here when missing),
# replays every regression input in tests/fuzz/crashers/, then runs
# FUZZ_ITERATIONS (default 2000 in make test; `make fuzz` runs 200000)
# inputs mutated from the examples, the stdlib, the test cases and
# tests/fuzz/corpus/ with a fixed seed
# (FUZZ_SEED, default 1).  A crashing or hanging input is saved beside the
# output; copy it into tests/fuzz/crashers/ to keep it.
# flavour: asan
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=${TESTTMP:-${TMPDIR:-/tmp}}/fuzz_frontend.build
BIN=$WORK/fuzz_frontend
CC=${CC:-cc}

for tool in bison flex "$CC"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "skip: no $tool"; exit 77; }
done

# `make asan` builds the harness from the ASan tree's objects; without it,
# it is built here
[ -x "$TOP/build/asan/tools/fuzz_frontend" ] && BIN=$TOP/build/asan/tools/fuzz_frontend
if [ ! -x "$BIN" ]; then
    mkdir -p "$WORK" || exit 1
    bison -Wall --defines="$WORK/flow.tab.h" -o "$WORK/flow.tab.c" "$TOP/grammar/flow.y" || exit 1
    flex --header-file="$WORK/lex.yy.h" -o "$WORK/lex.yy.c" "$TOP/grammar/flow.l" || exit 1
    srcs=""
    for f in "$TOP"/compiler/*.c; do
        case $(basename "$f") in
            main.c|build.c|cg.c|estimate_cmd.c|datacheck.c|lsp.c) ;;  # drivers, back end, estimate, --data, lsp
            *) srcs="$srcs $f" ;;
        esac
    done
    # shellcheck disable=SC2086
    if ! "$CC" -std=gnu11 -O1 -g -fno-omit-frame-pointer \
            -fsanitize=address,undefined -fno-sanitize-recover=undefined \
            -D_GNU_SOURCE -I"$TOP/compiler" -I"$TOP/grammar" -I"$WORK" \
            -o "$BIN" "$TOP/tests/fuzz/fuzz_frontend.c" $srcs \
            "$WORK/flow.tab.c" "$WORK/lex.yy.c" -lm; then
        echo "cannot build the fuzz harness"
        exit 1
    fi
fi

set --
for f in "$TOP"/tests/fuzz/crashers/*; do
    [ -f "$f" ] && set -- "$@" -r "$f"
done
for f in "$TOP"/examples/*.flow "$TOP"/stdlib/*.flow "$TOP"/tests/ok/*.flow \
         "$TOP"/tests/check/*.flow "$TOP"/tests/exec/*.flow "$TOP"/tests/fuzz/corpus/*.flow; do
    [ -f "$f" ] && set -- "$@" "$f"
done

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=99"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=99"
"$BIN" -n "${FUZZ_ITERATIONS:-2000}" -s "${FUZZ_SEED:-1}" -o "$(pwd)" "$@"
