# Sourced by the scripts here: the benchmark's Sluice flow (the one
# `syslog-bench` runs, see src/main.rs) as YAML, and a free loopback port.
#
#   bench_flow FILE PORT OUTDIR   writes the flow: TCP listener on PORT, JSON
#                                 lines into OUTDIR/{{route.name}}.json
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
