# Sourced by the scripts here: the benchmark's Sluice flow (the one
# `syslog-bench` runs, see src/main.rs) as YAML, a free loopback port, and
# the serve process started on them.
#
#   bench_flow FILE PORT OUTDIR   writes the flow: a listener on PORT, JSON
#                                 lines into OUTDIR/{{route.name}}.json
#   start_serve DIR               runs it in DIR's `syslog-bench serve` (below)
# BATCH, MAX_COUNT and QUEUE override the batch size (250), the connections'
# limit (500) and ListenSyslog's receive queue (10,000); PROTOCOL=udp makes
# the listener UDP.

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

bench_flow() {
  cat > "$1" <<YAML
name: bench-syslog
defaults:
  provenance_events: 0
  scheduling: { batch_size: ${BATCH:-250} }
  back_pressure: { max_count: ${MAX_COUNT:-500} }
processors:
  listen:
    type: ListenSyslog
    properties: { protocol: ${PROTOCOL:-tcp}, bind: 127.0.0.1, port: $2, timezone: UTC, queue_size: ${QUEUE:-10000} }
  tag:
    type: UpdateAttribute
    properties:
      set: { env: production, message: "{{content}}" }
  route:
    type: RouteOnSeverity
    properties:
      routes: { errors: "<= err" }
  json:
    type: AttributesToJSON
    auto_terminate: [failure]
  save:
    type: AppendFile
    properties: { path: "$3/{{route.name}}.json", fsync: never }
    auto_terminate: [success, failure]
connections:
  - { from: listen, relationships: [success, invalid], to: tag }
  - { from: tag, relationship: success, to: route }
  - { from: route, relationships: [errors, unparsed, routine], to: json }
  - { from: json, relationship: success, to: save }
YAML
}

# start_serve DIR: starts DIR's `syslog-bench serve` on the flow above (a free
# port, a fresh WORK directory; PROTOCOL, BATCH... as for bench_flow) and
# waits until it listens. Sets BIN, LOAD, WORK, port and PID; on exit the
# process is stopped and WORK removed.
start_serve() {
  BIN=$(realpath "$1/syslog-bench")
  LOAD=$1/syslog-load
  [ -x "$BIN" ] && [ -x "$LOAD" ] || { echo "build first: cargo build --release -p sluice-bench-syslog" >&2; exit 2; }
  WORK=$(mktemp -d)
  trap 'kill ${PID:-} 2>/dev/null || true; rm -rf "$WORK"' EXIT
  port=$(free_port)
  bench_flow "$WORK/flow.yaml" "$port" "$WORK"
  "$BIN" serve "$WORK/flow.yaml" > "$WORK/serve.out" &
  PID=$!
  for _ in $(seq 1 300); do grep -q '^ready' "$WORK/serve.out" && break; sleep 0.1; done
  grep -q '^ready' "$WORK/serve.out" || { echo "serve did not start" >&2; exit 1; }
}
