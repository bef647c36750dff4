#!/bin/sh
# data.sh: how fast data files are read and checked, on 100,000 rows of a
# HubSpot-style contacts export (14 columns, quoted cells, CRLF) as CSV and
# the same records as JSON Lines:
#   read_csv / read_jsonl   in a built binary (--mock --no-journal), the whole
#                           list kept, as a run holds it
#   flowc check --data      the CI check, rows streamed and dropped
# Each figure is the best of 3 wall times, in rows per second, with the CPU
# time beside it (the machine may be shared: CPU time is the steadier figure)
# and the peak RSS.  Goals: flowc check --data 100,000 rows in <= 1 s
# (>= 100,000 rows/s); read_csv and read_jsonl >= 100,000 rows/s.
cd "$(dirname "$0")/.." || exit 2
FLOWC=${FLOWC:-build/flowc}
ROWS=${ROWS:-100000}
out=bench/out/data; mkdir -p $out

# the data: deterministic, every field filled the way exports fill them
awk -v n="$ROWS" 'BEGIN {
    split("Lead|Marketing Qualified Lead|Customer", st, "|")
    printf "Record ID,First Name,Last Name,Email,Lifecycle Stage,stage,Annual Revenue,"
    printf "Marketing emails opted out,Tags,Notes,Phone Number,Company Name,Job Title,"
    printf "Original Source\r\n"
    for (i = 0; i < n; i++)
        printf "%d,First%d,\"Last, %d\",user%d@example%d.com,%s,demo,%d,%s,a;b,\"note \"\"%d\"\"\",+1 555 %04d,Company %d,VP Marketing,Organic Search\r\n",
            i, i, i, i, i % 97, st[i % 3 + 1], (i * 17) % 100000, i % 2 ? "true" : "false",
            i, i % 10000, i % 1000
}' >$out/contacts.csv
awk -v n="$ROWS" 'BEGIN {
    split("Lead|Marketing Qualified Lead|Customer", st, "|")
    for (i = 0; i < n; i++)
        printf "{\"Record ID\":%d,\"First Name\":\"First%d\",\"Last Name\":\"Last, %d\",\"Email\":\"user%d@example%d.com\",\"Lifecycle Stage\":\"%s\",\"stage\":\"demo\",\"Annual Revenue\":%d,\"Marketing emails opted out\":%s,\"Tags\":[\"a\",\"b\"],\"Notes\":\"note %d\",\"Phone Number\":\"+1 555 %04d\"}\n",
            i, i, i, i, i % 97, st[i % 3 + 1], (i * 17) % 100000, i % 2 ? "true" : "false",
            i, i % 10000
}' >$out/contacts.jsonl

cat >$out/data.flow <<'FLOW'
// The program of bench/data.sh: a HubSpot contact, the columns it does not
// use dropped.
enum Lifecycle {
  lead @alias("Lead")
  mql @alias("Marketing Qualified Lead")
  customer @alias("Customer")
}

schema Contact (extra: drop) {
  id: int @alias("Record ID")
  first_name: string? @alias("First Name")
  last_name: string @alias("Last Name")
  email: string len 3..254 @alias("Email")
  lifecycle: Lifecycle @alias("Lifecycle Stage")
  stage: string?
  revenue: float? in 0..1e12 @alias("Annual Revenue")
  opted_out: bool? @alias("Marketing emails opted out")
  tags: list<string> len 0..5 @alias("Tags")
  notes: string? @alias("Notes")
}

workflow data_bench(file: string, csv: bool = true) -> int {
  let cs = if csv { read_csv<Contact>(file) } else { read_jsonl<Contact>(file) }
  return len(cs)
}
FLOW
$FLOWC build $out/data.flow -o $out/data_bench || { echo "cannot build the bench program"; exit 1; }

# best of 3: "wall_us cpu_us rss_kb"
measure() {
    bw=999999999; bc=0; br=0
    for i in 1 2 3; do
        s=$(date +%s%N)
        r=$(/usr/bin/time -f '%U %S %M' "$@" 2>&1 >/dev/null | tail -1)
        e=$(date +%s%N)
        w=$(( (e - s) / 1000 ))
        if [ $w -lt $bw ]; then
            bw=$w
            bc=$(echo "$r" | awk '{ printf "%d", ($1 + $2) * 1000000 }')
            br=$(echo "$r" | awk '{ print $3 }')
        fi
    done
    echo "$bw $bc $br"
}
row() {   # name goal wall_us cpu_us rss_kb
    rate=$(( ROWS * 1000000 / ($3 > 0 ? $3 : 1) ))
    crate=$(( ROWS * 1000000 / ($4 > 0 ? $4 : 1) ))
    printf '%-34s %10d rows/s %10d rows/s %8d.%03d s %8d KB   %s\n' "$1" "$rate" "$crate" \
        $(($3 / 1000000)) $(($3 / 1000 % 1000)) "$5" "$2"
}

echo "== $ROWS rows: $(wc -c <$out/contacts.csv) bytes of CSV, $(wc -c <$out/contacts.jsonl) of JSON Lines"
printf '%-34s %17s %17s %12s %11s   %s\n' "" "wall" "CPU" "wall time" "peak RSS" "goal"
set -- $(measure $FLOWC check $out/data.flow --data Contact=$out/contacts.csv)
row "flowc check --data (CSV)" "<= 1 s (>= 100000 rows/s)" "$@"
set -- $(measure $FLOWC check $out/data.flow --data Contact=$out/contacts.jsonl)
row "flowc check --data (JSON Lines)" "<= 1 s (>= 100000 rows/s)" "$@"
set -- $(measure $out/data_bench --file $out/contacts.csv --mock --no-journal --quiet)
row "read_csv in a run" ">= 100000 rows/s" "$@"
set -- $(measure $out/data_bench --file $out/contacts.jsonl --no-csv --mock --no-journal --quiet)
row "read_jsonl in a run" ">= 100000 rows/s" "$@"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (a busy machine lowers the wall figures)"
