#!/usr/bin/env bash
# The cost of Idempotency-Keys that survive restarts: HTTP ingest with and
# without a key per request (wrk, 64 connections, fsync always), then a
# kill -9 and a restart, timing the rebuild of the key table from the log
# (the gateway logs it). Usage: tests/bench/idem_bench.sh [BUILD_DIR]
# DURATION (s, default 10) per wrk run.
set -euo pipefail
BUILD=${1:-build-rel}
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
WORK=$(mktemp -d /tmp/sluice-idem-bench.XXXXXX)
IN_PORT=${IN_PORT:-18180}
ADMIN_PORT=${ADMIN_PORT:-18480}
GW=
trap '[ -n "$GW" ] && kill -9 $GW 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"' EXIT
cat >"$WORK/sluice.yaml" <<YAML
sluice:
  data_dir: $WORK/data
  admin: { listen: "127.0.0.1:$ADMIN_PORT" }
  log: { fsync: always }
connectors:
  in: { type: http_server, listen: "127.0.0.1:$IN_PORT", max_body: 64KiB }
  out: { type: stdout }
routes:
  orders:
    from: { connector: in, path: /orders, methods: [POST], content_type: json, reply: async }
    partitions: 4
    key: "\$.customer.id"
    to: [ { connector: out } ]
YAML
start() {
    "$BUILD/sluice" run -c "$WORK/sluice.yaml" >/dev/null 2>>"$WORK/sluice.log" &
    GW=$!
    for _ in $(seq 600); do
        curl -sf "127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && return
        sleep 0.05
    done
    echo "gateway did not start"; tail "$WORK/sluice.log"; exit 1
}
start
curl -s -XPOST "127.0.0.1:$ADMIN_PORT/v1/routes/orders/pause" >/dev/null
for script in post post_idem; do
    echo "== ingest, $script.lua: wrk -t1 -c64 -d${DURATION}s"
    wrk -t1 -c64 -d"${DURATION}s" --latency -s "tests/bench/$script.lua" \
        "http://127.0.0.1:$IN_PORT/orders" | grep -E "Requests/sec|Latency  |99%|Non-2xx" || true
done
kill -9 $GW; wait $GW 2>/dev/null || true
echo "== restart after kill -9: rebuild of the key table"
t0=$(date +%s%N)
start
t1=$(date +%s%N)
grep -E "Idempotency-Key|dedupe window" "$WORK/sluice.log" | tail -2 || true
echo "start to /ready: $(( (t1 - t0) / 1000000 )) ms; log $(du -sh "$WORK/data" | cut -f1)"
echo "RSS after the rebuild: $(awk '/VmRSS/ {print $2, $3}' /proc/$GW/status)"
kill $GW; wait $GW 2>/dev/null || true
GW=
