#!/bin/sh
# build_install.sh: flowc finds its runtime in an installed layout
# (PREFIX/bin/flowc, PREFIX/lib/libflowrt.a, PREFIX/include/flowrt.h), and
# FLOWC_RUNTIME_DIR overrides the search.
: "${TOP:?}" "${FLOWC:?}"
lib=$(dirname "$FLOWC")/libflowrt.a
[ -f "$lib" ] || { echo "no $lib"; exit 77; }
mkdir -p prefix/bin prefix/lib prefix/include
cp "$FLOWC" prefix/bin/flowc && cp "$lib" prefix/lib/ && cp "$TOP/runtime/flowrt.h" prefix/include/ || exit 1
cat >hello.flow <<'FLOW'
workflow hello(name: string = "world") -> string { return "hello {{ name }}" }
FLOW
bad=0
prefix/bin/flowc build hello.flow -o hello || { echo "FAIL: installed flowc cannot build"; exit 1; }
[ "$(./hello --no-journal --quiet)" = '"hello world"' ] || { echo "FAIL: installed build runs wrong"; bad=1; }
mkdir empty
if FLOWC_RUNTIME_DIR="$PWD/empty" prefix/bin/flowc build hello.flow -o nope 2>err; then
    echo "FAIL: a FLOWC_RUNTIME_DIR without the runtime was not refused"; bad=1
fi
grep -qF "cannot find the runtime" err || { echo "FAIL: no message for a missing runtime"; cat err; bad=1; }
FLOWC_RUNTIME_DIR="$PWD/prefix" "$FLOWC" build hello.flow -o hello2 ||
    { echo "FAIL: FLOWC_RUNTIME_DIR=PREFIX not used"; bad=1; }
exit $bad
