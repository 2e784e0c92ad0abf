#!/usr/bin/env bash
# Where a Sluice serve process's resident memory is, by mapping, at idle
# (started, listening) and after a load through the benchmark's flow:
# the program's code, its read-only data (with the relocation table the
# loader reads at start), its relocated data (written at start: anonymous),
# the heap (mimalloc's arena and the stacks), the C library and the rest.
#
#   cargo build --release -p sluice-bench-syslog
#   bench/syslog/scripts/memory-map.sh [BIN_DIR] [MODE] [COUNT]
#     MODE: udp (default), tcp-octet or tcp-lf; COUNT: messages (default 90,000)
#
# Compare two builds by running it on each, one after the other, with both
# binaries on the same file system (page-cache mapping differs between
# file systems, e.g. tmpfs and ext4).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
DIR=${1:-$ROOT/target/release}
MODE=${2:-udp}
COUNT=${3:-90000}
. "$(dirname "$0")/bench-flow.sh"
if [ "$MODE" = udp ]; then PROTOCOL=udp; else PROTOCOL=tcp; fi
start_serve "$DIR"

# Sums the Rss of /proc/PID/smaps by kind of mapping, in MB.
by_kind() {
  awk -v bin="$BIN" '
    /^[0-9a-f]+-[0-9a-f]+ / {
      perms = $2; path = $6
      if (path == bin && perms ~ /x/) kind = "program code"
      else if (path == bin && perms ~ /w/) kind = "program data (writable)"
      else if (path == bin) kind = "program read-only (+ relocated data)"
      else if (path ~ /libc\.so|libm\.so|ld-linux/) kind = "C library"
      else if (path == "" || path ~ /^\[(heap|stack)/) kind = "heap and stacks"
      else kind = "other"
      next
    }
    /^Rss:/ { rss[kind] += $2 }
    /^Anonymous:/ { anon[kind] += $2 }
    END {
      for (k in rss) { printf "  %-38s %6.1f MB (anonymous %.1f)\n", k, rss[k] / 1024, anon[k] / 1024; t += rss[k] }
      printf "  %-38s %6.1f MB\n", "total", t / 1024
    }' "/proc/$PID/smaps" | sort
}

echo "idle:"
by_kind
"$LOAD" --target "127.0.0.1:$port" --mode "$MODE" --format mixed --count "$COUNT" > /dev/null
# Wait until the flow has written what arrived (the count stops changing).
last=-1
for _ in $(seq 1 600); do
  now=$(tail -n 1 "$WORK/serve.out" | awk '{print $2}')
  [ "$now" = "$last" ] && break
  last=$now
  sleep 0.5
done
echo "after $COUNT $MODE messages ($last written), peak RSS $(awk '/VmHWM/ {printf "%.1f MB", $2 / 1024}' "/proc/$PID/status"):"
by_kind
