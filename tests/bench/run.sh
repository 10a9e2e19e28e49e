#!/usr/bin/env bash
# Runs the benchmarks against a Release build and prints the figures the
# README records: the event log (bench_log), HTTP ingest with wrk, and end to
# end from HTTP in to an HTTP sink. Usage: tests/bench/run.sh [BUILD_DIR]
set -euo pipefail
BUILD=${1:-build-rel}
cd "$(dirname "$0")/../.."
ROOT=$PWD
DURATION=${DURATION:-15}

if [ -x "$BUILD/bench_log" ]; then
    echo "== event log (bench_log)"
    "$BUILD/bench_log"
fi

WORK=$(mktemp -d /tmp/sluice-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
SINK_PORT=18090
IN_PORT=18080
ADMIN_PORT=18400
cp tests/bench/enrich.lua "$WORK/"

# run_route NAME STEPS_YAML: ingest with wrk, then end to end to the sink.
run_route() {
    local name=$1 steps=$2
    rm -rf "$WORK/data"
    cat >"$WORK/sluice.yaml" <<YAML
sluice:
  data_dir: $WORK/data
  admin: { listen: "127.0.0.1:$ADMIN_PORT" }
  log: { fsync: always }
connectors:
  in:   { type: http_server, listen: "127.0.0.1:$IN_PORT", max_body: 64KiB }
  sink: { type: http_client, base_url: "http://127.0.0.1:$SINK_PORT", timeout: 5s, max_in_flight: 128 }
routes:
  orders:
    from: { connector: in, path: /orders, methods: [POST], content_type: json, reply: async }
    partitions: 4
    key: "\$.customer.id"
$steps
    to:
      - { connector: sink, path: /orders }
YAML
    "$BUILD/http_sink" --port $SINK_PORT >/dev/null &
    local sink_pid=$!
    "$BUILD/sluice" run -c "$WORK/sluice.yaml" 2>"$WORK/sluice.log" &
    local gw_pid=$!
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && break
        sleep 0.1
    done
    echo "== [$name] HTTP ingest: wrk -t1 -c64 -d${DURATION}s, 250-byte JSON, reply async, fsync always"
    local t0 t1 sent got stats
    t0=$(date +%s.%N)
    wrk -t1 -c64 -d"${DURATION}s" --latency -s tests/bench/post.lua "http://127.0.0.1:$IN_PORT/orders" \
        | tee "$WORK/wrk.txt" | grep -E "Requests/sec|Latency|99%|Non-2xx|Socket errors" || true
    sent=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    echo "== [$name] end to end: HTTP in -> route (4 partitions) -> HTTP sink on loopback"
    for _ in $(seq 600); do
        got=$(curl -s "127.0.0.1:$SINK_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
        [ "$got" -ge "$sent" ] && break
        sleep 0.1
    done
    t1=$(date +%s.%N)
    stats=$(curl -s "127.0.0.1:$SINK_PORT/stats")
    python3 - "$sent" "$got" "$t0" "$t1" "$stats" <<'PY'
import json, sys
sent, got, t0, t1, stats = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), json.loads(sys.argv[5])
print(f"accepted {sent}, delivered {got} in {t1 - t0:.1f}s: {got / (t1 - t0):,.0f} messages/s delivered")
print(f"ingest-to-delivery latency (sink clock vs UUIDv7 ms): p50 {stats['p50_ms']} ms, p99 {stats['p99_ms']} ms, max {stats['max_ms']} ms")
PY
    if [ "${name}" = "no steps" ]; then
        # Delivery alone: a backlog accepted while the route is paused, then
        # drained to the sink; this is the route's delivery capacity, not
        # bounded by ingest.
        echo "== [$name] delivery capacity: drain a backlog accepted while the route was paused"
        curl -s -XPOST "127.0.0.1:$ADMIN_PORT/v1/routes/orders/pause" >/dev/null
        curl -s -XPOST "127.0.0.1:$SINK_PORT/reset" >/dev/null
        wrk -t1 -c64 -d"${DURATION}s" -s tests/bench/post.lua "http://127.0.0.1:$IN_PORT/orders" \
            >"$WORK/wrk2.txt"
        sent=$(awk '/requests in/ {print $1}' "$WORK/wrk2.txt")
        t0=$(date +%s.%N)
        curl -s -XPOST "127.0.0.1:$ADMIN_PORT/v1/routes/orders/resume" >/dev/null
        for _ in $(seq 1200); do
            got=$(curl -s "127.0.0.1:$SINK_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
            [ "$got" -ge "$sent" ] && break
            sleep 0.05
        done
        t1=$(date +%s.%N)
        python3 -c "import sys; s,g,a,b=int(sys.argv[1]),int(sys.argv[2]),float(sys.argv[3]),float(sys.argv[4]); print(f'backlog {s}, delivered {g} in {b-a:.1f}s: {g/(b-a):,.0f} messages/s delivered')" "$sent" "$got" "$t0" "$t1"
    fi
    kill "$gw_pid" "$sink_pid"
    wait "$gw_pid" "$sink_pid" 2>/dev/null || true
}

run_route "no steps" ""
run_route "lua + json_to_xml" "    steps:
      - lua: { file: enrich.lua, function: enrich }
      - json_to_xml: { root: order }"
