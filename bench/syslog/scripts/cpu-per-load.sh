#!/usr/bin/env bash
# CPU ticks (user+system, 1/100 s) one Sluice serve process spends on each of
# ROUNDS loads of 300,000 TCP octet-counted RFC 5424 messages, through the
# benchmark's flow. For A/B runs of two builds: alternate them, one load
# each, and compare adjacent pairs (the machine's state changes from one
# second to the next, so only neighbours in time compare well).
#
#   cargo build --release -p sluice-bench-syslog
#   bench/syslog/scripts/cpu-per-load.sh [ROUNDS] [BIN_DIR]
#   BENCH_WORKERS=1 bench/syslog/scripts/cpu-per-load.sh   # one worker thread
#   BATCH=100 MAX_COUNT=200 QUEUE=2000 ...  # the flow's batch size, connection and receive
#                                           # queue limits (default 250, 500, 10000 as the benchmark)
#
# Prints one user+system figure per load.
set -euo pipefail
ROUNDS=${1:-3}
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
DIR=${2:-$ROOT/target/release}
. "$(dirname "$0")/bench-flow.sh"
start_serve "$DIR"
ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
want=0
for _ in $(seq 1 "$ROUNDS"); do
  want=$((want + 300000))
  before=$(ticks)
  "$LOAD" --target "127.0.0.1:$port" --mode tcp-octet --format 5424 --count 300000 --connections 4 > /dev/null
  deadline=$((SECONDS + 120))
  until [ "$(tail -n 1 "$WORK/serve.out" | awk '{print $2}')" = "$want" ]; do
    [ $SECONDS -lt $deadline ] || { echo "messages missing after 120 s" >&2; exit 1; }
    sleep 0.05
  done
  echo -n "$(( $(ticks) - before )) "
done
echo
