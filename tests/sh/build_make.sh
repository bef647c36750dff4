#!/bin/sh
# build_make.sh: the Makefile honours CPPFLAGS, CFLAGS, LDFLAGS and AR (a
# dry run into a scratch tree); `make install` installs flowrt.pc, with which
# pkg-config builds a generated program; generated C refuses a flowrt.h of
# another runtime ABI, and the library refuses a program of another ABI.
# flavour: plain
: "${TOP:?}" "${FLOWC:?}"
bad=0
fail() { echo "FAIL: $*"; bad=1; }
command -v make >/dev/null || { echo "no make"; exit 77; }

# the variables reach the commands
make -C "$TOP" -n BUILD="$PWD/b" CPPFLAGS=-DFLOWC_CPP_MARK CFLAGS="-O1 -DFLOWC_CFLAGS_MARK" \
    LDFLAGS=-Wl,--flowc-ld-mark AR=flowc-ar-mark all >dry 2>&1 || fail "make -n: $(tail -3 dry)"
sed -e :a -e '/\\$/N; s/\\\n//; ta' dry >cmds             # one line per command
grep -q 'runtime/fr_run.c' cmds || fail "make -n compiles nothing: $(head -3 dry)"
for want in "-DFLOWC_CPP_MARK.*runtime/fr_run.c" "-DFLOWC_CPP_MARK.*compiler/main.c" \
            "-DFLOWC_CPP_MARK.*gen/lex.yy.c" "-DFLOWC_CFLAGS_MARK.*compiler/main.c" \
            "flowc-ar-mark rcs .*libflowrt.a" "--flowc-ld-mark.* -o $PWD/b/flowc " \
            "--flowc-ld-mark.*tools/fakeserver"; do
    grep -q -- "$want" cmds || fail "make -n has no line matching '$want'"
done

cat >hi.flow <<'FLOW'
workflow hi(name: string = "world") -> string { return "hi {{ name }}" }
FLOW
"$FLOWC" build hi.flow --emit-c hi.c || exit 1

# install into a scratch root, then build the generated C with pkg-config
if ! command -v pkg-config >/dev/null; then
    echo "(no pkg-config: install not checked)"
elif ! make -C "$TOP" --no-print-directory -q all 2>/dev/null; then
    echo "(the build tree is not up to date: install not checked)"
else
    make -C "$TOP" --no-print-directory install DESTDIR="$PWD/root" PREFIX=/usr >inst 2>&1 ||
        fail "make install: $(tail -3 inst)"
    pc=root/usr/lib/pkgconfig/flowrt.pc
    [ -f "$pc" ] || fail "make install left no $pc"
    grep -q '^Version: [0-9]' "$pc" || fail "flowrt.pc has no version: $(cat "$pc")"
    export PKG_CONFIG_PATH="$PWD/root/usr/lib/pkgconfig"
    flags=$(pkg-config --define-variable=prefix="$PWD/root/usr" --cflags --libs flowrt) ||
        fail "pkg-config --cflags --libs flowrt failed"
    # shellcheck disable=SC2086
    cc -std=gnu11 -o hi hi.c $flags 2>cc.err || fail "cc with pkg-config's flags: $(head -5 cc.err)"
    [ "$(./hi --no-journal --quiet 2>&1)" = '"hi world"' ] || fail "the pkg-config build runs wrong"
fi

# a flowrt.h of another ABI: the generated C does not compile
mkdir -p other
sed 's/^#define FLOWRT_ABI .*/#define FLOWRT_ABI 999/' "$TOP/runtime/flowrt.h" >other/flowrt.h
if cc -std=gnu11 -Iother -c hi.c -o hi.o 2>abi.err; then
    fail "generated C compiled against a flowrt.h of another ABI"
fi
grep -q "is not the runtime of flowc" abi.err || fail "no clear #error for another ABI: $(head -3 abi.err)"

# a program of another ABI: the library refuses to run it
cat >abi.c <<'C'
#include <flowrt.h>
static json_t *body(fr_ctx *cx, json_t *const *args) { (void)args; return fr_null(); }
static const fr_program p = { .name = "abi", .main = body };
int main(int argc, char **argv) { return fr_main_abi(FLOWRT_ABI + 1, &p, argc, argv); }
C
lib=$(dirname "$FLOWC")/libflowrt.a
cc -std=gnu11 -I"$TOP/runtime" -o abi abi.c "$lib" -ljansson -lcsv -lsqlite3 -lpthread -lm ||
    exit 1
./abi --no-journal >abi.out 2>&1
st=$?
[ $st -eq 2 ] || fail "a program of another ABI ran (status $st)"
grep -q "compiled for libflowrt ABI" abi.out || fail "no message for another ABI: $(cat abi.out)"
exit $bad
