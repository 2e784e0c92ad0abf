#!/usr/bin/env bash
# Instructions per message of Sluice's syslog flow, counted by valgrind's callgrind: a
# figure that does not move with the other tenants of a shared machine, unlike msgs/s and
# CPU time (which swing by up to 2x here). Use it to compare two builds; use
# `syslog-bench` for the comparison with rsyslog.
#
#   cargo build --release -p sluice-bench-syslog
#   apt-get install valgrind            # not one of the test dependencies
#   bench/syslog/scripts/instructions.sh [COUNT] [tcp-octet|tcp-lf] [5424|3164|mixed]
#
# Runs the benchmark flow (`syslog-bench serve`, the same flow as the benchmark) under
# callgrind twice, with COUNT/3 and COUNT messages (default 60,000), and prints the
# difference over the difference in messages: start-up cancels out. The callgrind output
# of the larger run stays in $OUT (default /tmp/sluice-instructions) for callgrind_annotate.
# VALGRIND_ARGS adds options, e.g. "--cache-sim=yes --LL=4194304,16,64" for simulated cache
# misses (then: callgrind_annotate --show=Ir,DLmr,DLmw --sort=DLmr $OUT/callgrind.out.*).
set -euo pipefail
N=${1:-60000}
MODE=${2:-tcp-octet}
FORMAT=${3:-5424}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
BIN=${BIN:-$ROOT/target/release/syslog-bench}
LOAD=$(dirname "$BIN")/syslog-load
OUT=${OUT:-/tmp/sluice-instructions}
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 2; }
[ -x "$BIN" ] && [ -x "$LOAD" ] || { echo "build first: cargo build --release -p sluice-bench-syslog" >&2; exit 2; }
mkdir -p "$OUT"

. "$(dirname "$0")/bench-flow.sh"
port=$(free_port)
bench_flow "$OUT/flow.yaml" "$port" "$OUT/files"

# Total instructions of the serve process for $1 messages.
count() {
  local n=$1
  rm -rf "$OUT/files" "$OUT"/callgrind.out.* "$OUT/serve.out"
  # shellcheck disable=SC2086 # VALGRIND_ARGS is a list of options
  valgrind --tool=callgrind ${VALGRIND_ARGS:-} --callgrind-out-file="$OUT/callgrind.out.%p" \
    "$BIN" serve "$OUT/flow.yaml" > "$OUT/serve.out" 2> "$OUT/valgrind.err" &
  local pid=$!
  local deadline=$((SECONDS + 120))
  until grep -q ready "$OUT/serve.out" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "serve did not start" >&2; kill $pid; exit 1; }
    sleep 0.2
  done
  "$LOAD" --target "127.0.0.1:$port" --mode "$MODE" --format "$FORMAT" --count "$n" --connections 4 > /dev/null
  deadline=$((SECONDS + 600))
  until [ "$(tail -1 "$OUT/serve.out" | awk '{print $2}')" -ge "$n" ] 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || { echo "not all $n messages arrived" >&2; kill $pid; exit 1; }
    sleep 0.2
  done
  kill $pid; wait $pid 2>/dev/null || true
  grep -h '^totals:' "$OUT"/callgrind.out.* | awk '{print $2}'
}

small=$((N / 3))
a=$(count "$small")
b=$(count "$N")
echo "instructions per message ($MODE, RFC $FORMAT): $(( (b - a) / (N - small) ))"
echo "(callgrind output of the $N-message run: $OUT/callgrind.out.*)"
