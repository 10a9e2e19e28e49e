#!/usr/bin/env bash
# AMQP benchmark: RabbitMQ alone (publish with confirms + consume one queue,
# tests/bench/amqp_bench.c) beside AMQP -> Sluice route (fsync: always) -> AMQP,
# with the same client, 250-byte bodies, in the same run against a private
# rabbitmq-server (tests/peers/rabbitmq.sh); and, for scale, the same two hops
# through an ideal in-process forwarder without a log ("relay"). Prints the
# rates and the ratios.
#   usage: tests/bench/amqp_bench.sh [BUILD_DIR]   (default build-rel; N=100000 SIZE=250)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BUILD="$(cd "${1:-$ROOT/build-rel}" && pwd)"
N="${N:-100000}"
SIZE="${SIZE:-250}"
PARTITIONS="${PARTITIONS:-4}"
for b in sluice amqp_bench amqp_tool; do
    [ -x "$BUILD/$b" ] || { echo "amqp_bench.sh: $BUILD/$b is missing (build first)" >&2; exit 2; }
done

WORK="$(mktemp -d /tmp/sluice-amqp-bench.XXXXXX)"
export SLUICE_RABBITMQ_DIR="$WORK/rabbitmq"
export SLUICE_RABBITMQ_NODE="sluice-bench-$$@localhost"
GW_PID=""
cleanup() {
    if [ -n "$GW_PID" ] && kill -0 "$GW_PID" 2>/dev/null; then
        kill -TERM "$GW_PID" 2>/dev/null || true
        wait "$GW_PID" 2>/dev/null || true
    fi
    "$ROOT/tests/peers/rabbitmq.sh" stop || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT="$("$ROOT/tests/peers/rabbitmq.sh" start)"
URL="amqp://guest:guest@127.0.0.1:$PORT/"
for q in bench-direct bench-in bench-out relay-in relay-out; do
    "$BUILD/amqp_tool" "$URL" declare-queue "$q"
done

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ADMIN="$(free_port)"
cat >"$WORK/sluice.yaml" <<EOF
sluice:
  data_dir: $WORK/data
  admin: { listen: "127.0.0.1:$ADMIN" }
  log_level: warn
  log: { fsync: always }
connectors:
  rabbit: { type: amqp, url: "$URL", prefetch: 2000 }
routes:
  bench:
    from: { connector: rabbit, queue: bench-in }
    partitions: $PARTITIONS
    key: "\$.key"
    to:
      - { connector: rabbit, exchange: "", routing_key: bench-out, persistent: true }
EOF

echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'))," \
    "shared with other work; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "rabbitmq-server $(dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null || echo '?')," \
    "$N messages of $SIZE bytes, persistent, publisher confirms"

direct1="$("$BUILD/amqp_bench" "$URL" direct "$N" "$SIZE" bench-direct)"
echo "RabbitMQ alone (1):  $direct1"

"$BUILD/sluice" run -c "$WORK/sluice.yaml" 2>"$WORK/sluice.log" &
GW_PID=$!
for _ in $(seq 1 100); do
    curl -fs "http://127.0.0.1:$ADMIN/ready" >/dev/null 2>&1 && break
    sleep 0.1
done
through="$("$BUILD/amqp_bench" "$URL" through "$N" "$SIZE" bench-in bench-out)"
echo "through Sluice:      $through (route: $PARTITIONS partitions, fsync: always)"
kill -TERM "$GW_PID"
wait "$GW_PID" || true
GW_PID=""

direct2="$("$BUILD/amqp_bench" "$URL" direct "$N" "$SIZE" bench-direct)"
echo "RabbitMQ alone (2):  $direct2"
relay="$("$BUILD/amqp_bench" "$URL" relay "$N" "$SIZE" relay-in relay-out)"
echo "two hops, no log:    $relay (ideal forwarder, same client library)"

rate() { sed -E 's/.*: ([0-9]+) msg\/s$/\1/' <<<"$1"; }
python3 - "$(rate "$direct1")" "$(rate "$direct2")" "$(rate "$through")" "$(rate "$relay")" <<'EOF'
import sys
d1, d2, t, r = (float(x) for x in sys.argv[1:])
d = (d1 + d2) / 2
print(f"ratio through Sluice / RabbitMQ alone: {t / d:.2f} (goal >= 0.70; alone = mean of both runs)")
print(f"ratio through Sluice / two hops without a log: {t / r:.2f}")
EOF
