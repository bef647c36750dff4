#!/bin/sh
# diag_codes.sh: the diagnostic codes of compiler/flowc.h, doc/diagnostics.md
# and the sources agree: every code is documented, used and (but for the
# few no program can reach from a test file) pinned by a tests/check case
# (a warning that depends on the date may be pinned by a tests/sh script;
# flowc test's codes, of .flowtest files, by tests/sh/flowtest_*.sh);
# the doc names no code that does not exist.
: "${TOP:?}"
bad=0
h="$TOP/compiler/flowc.h"
doc="$TOP/doc/diagnostics.md"
codes=$(sed -n 's/^ *X(\([EW][0-9][0-9][0-9][0-9]\),.*/\1/p' "$h")
[ -n "$codes" ] || { echo "FAIL: no codes found in $h"; exit 1; }
for c in $codes; do
    grep -q "^| $c |" "$doc" || { echo "FAIL: $c is not documented in doc/diagnostics.md"; bad=1; }
    grep -q "\b$c\b" "$TOP"/compiler/*.c "$TOP"/grammar/flow.l "$TOP"/grammar/flow.y ||
        { echo "FAIL: $c is never reported"; bad=1; }
    case $c in
        E0302|E1101) continue ;;                 # a missing file; a code generator limit
        E15*) grep -q "\[$c\]" "$TOP"/tests/sh/flowtest_*.sh ||  # flowc test's, of .flowtest files
                { echo "FAIL: no tests/sh/flowtest_*.sh case shows $c"; bad=1; } ;;
        W*) name=$(sed -n "s/^ *X($c, \"\([a-z-]*\)\".*/\1/p" "$h")
            grep -q "\[-W\(error=\)\{0,1\}$name\]" "$TOP"/tests/check/*.err "$TOP"/tests/sh/*.sh ||
                { echo "FAIL: no tests/check case shows $c (-W$name)"; bad=1; }
            grep -q "| \`-W$name\` |" "$doc" || { echo "FAIL: -W$name is not documented"; bad=1; } ;;
        *) grep -q "\[$c\]" "$TOP"/tests/check/*.err || { echo "FAIL: no tests/check case shows $c"; bad=1; } ;;
    esac
done
for c in $(grep -o '^| [EW][0-9][0-9][0-9][0-9] |' "$doc" | cut -c3-7); do
    echo "$codes" | grep -qx "$c" || { echo "FAIL: doc/diagnostics.md documents $c, which does not exist"; bad=1; }
done
exit $bad
