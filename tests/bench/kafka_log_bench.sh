#!/usr/bin/env bash
# A route's log on Kafka against the embedded log, and 1, 2 and 3 gateways
# sharing one Kafka-backed route, side by side in one run on librdkafka's
# mock cluster (3 brokers, tests/peers/kafka_broker). Each scenario: wrk
# POSTs 250-byte JSON orders (64 keys, tests/bench/post.lua) for DURATION
# seconds, the connections split over the gateways; the route delivers to
# a Kafka topic. Prints, per scenario, the 202s per second (a 202 on the
# Kafka log means the message is in Kafka, acks=all), and the end-to-end
# rate: the 202s divided by the time from the start until the last of
# them is at the output.
#
# Usage: tests/bench/kafka_log_bench.sh BUILD_DIR [DURATION (4)] [PARTITIONS (12)] [CONNECTIONS (32)]
# Build it as Release: cmake -B build-rel -DCMAKE_BUILD_TYPE=Release -DSLUICE_SANITIZE=OFF
# The mock cluster keeps the last 5 MiB of each partition only: keep
# DURATION x rate / PARTITIONS under 10,000 messages.
set -euo pipefail

BUILD=$(cd "${1:?usage: kafka_log_bench.sh BUILD_DIR [DURATION] [PARTITIONS] [CONNECTIONS]}" && pwd)
DUR=${2:-4}
PARTS=${3:-12}
CONNS=${4:-32}
HERE=$(cd "$(dirname "$0")" && pwd)
SLUICE=$BUILD/sluice
BROKER=$BUILD/kafka_broker
KCAT=${KCAT:-kcat}
for f in "$SLUICE" "$BROKER"; do
    [ -x "$f" ] || { echo "kafka_log_bench: $f not built" >&2; exit 2; }
done
command -v wrk >/dev/null || { echo "kafka_log_bench: wrk not installed" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kafka-log-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null || true; done
    if [ -n "${BROKER_PID:-}" ]; then
        echo quit >&"${BR[1]}" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

coproc BR { exec "$BROKER" -n 3 2>"$WORK/broker.err"; }
BROKER_PID=$BR_PID
read -r word BOOT <&"${BR[0]}"
[ "$word" = BOOTSTRAP ] || { echo "kafka_log_bench: broker said $word" >&2; exit 1; }
cmd() {
    echo "$1" >&"${BR[1]}"
    local answer
    read -r answer <&"${BR[0]}"
    [ "$answer" = ok ] || { echo "kafka_log_bench: $1: $answer" >&2; exit 1; }
}

topic_count() {
    for ((p = 0; p < PARTS; p++)); do echo "-t $1:$p:-1"; done |
        xargs "$KCAT" -Q -b "$BOOT" | awk '{ s += $4 } END { print s + 0 }'
}

# gateway_config NAME KIND(embedded|kafka) HTTP ADMIN
gateway_config() {
    local log=""
    [ "$2" = kafka ] && log="    log: { connector: kafka, topic: log-$1, partitions: $PARTS, group: g-$1 }"
    [ "$2" = embedded ] && log="    partitions: $PARTS"
    cat <<EOF
sluice:
  data_dir: $WORK/data-$1-$3
  admin: { listen: "127.0.0.1:$4" }
  log: { fsync: always }
connectors:
  web:   { type: http_server, listen: "127.0.0.1:$3" }
  kafka: { type: kafka, brokers: "$BOOT", options: { session.timeout.ms: "6000", heartbeat.interval.ms: "500" } }
routes:
  orders:
    from: { connector: web, path: /orders, methods: [POST], content_type: json }
    key: "\$.customer.id"
$log
    to:
      - { connector: kafka, topic: out-$1 }
EOF
}

# scenario NAME KIND GATEWAYS
scenario() {
    local name=$1 kind=$2 n=$3 ports=() admins=() t0 t1 t2 acked=0
    cmd "create out-$name $PARTS"
    [ "$kind" = kafka ] && cmd "create log-$name $PARTS" && cmd "create log-$name.idem $PARTS"
    PIDS=()
    for ((g = 0; g < n; g++)); do
        ports+=("$(free_port)")
        admins+=("$(free_port)")
        gateway_config "$name" "$kind" "${ports[$g]}" "${admins[$g]}" >"$WORK/$name-$g.yaml"
        "$SLUICE" run -c "$WORK/$name-$g.yaml" 2>"$WORK/$name-$g.log" &
        PIDS+=($!)
    done
    for ((g = 0; g < n; g++)); do
        for _ in $(seq 600); do
            curl -sf "http://127.0.0.1:${admins[$g]}/ready" >/dev/null && break
            sleep 0.1
        done
    done
    [ "$kind" = kafka ] && sleep 4 # the group settles (the mock delays a join by 3 s)
    local wrks=()
    t0=$(now)
    for ((g = 0; g < n; g++)); do
        wrk -t1 -c$((CONNS / n)) -d"${DUR}s" -s "$HERE/post.lua" "http://127.0.0.1:${ports[$g]}" \
            >"$WORK/$name-$g.wrk" &
        wrks+=($!)
    done
    wait "${wrks[@]}"
    t1=$(now)
    for ((g = 0; g < n; g++)); do
        local total bad
        total=$(awk '/requests in/ { print $1 }' "$WORK/$name-$g.wrk")
        bad=$(awk '/Non-2xx/ { print $NF }' "$WORK/$name-$g.wrk")
        acked=$((acked + total - ${bad:-0}))
    done
    while [ "$(topic_count "out-$name")" -lt "$acked" ]; do sleep 0.2; done
    t2=$(now)
    awk -v name="$name" -v a="$acked" -v t0="$t0" -v t1="$t1" -v t2="$t2" 'BEGIN {
        printf "  %-22s %8d 202s  %8.0f 202/s  %8.0f delivered/s end to end\n",
               name, a, a / (t1 - t0), a / (t2 - t0) }'
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done
    PIDS=()
}

echo "kafka_log_bench: $DUR s of wrk, $CONNS connections, $PARTS partitions, 3 mock brokers," \
    "$(nproc) cores, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
scenario embedded-1gw embedded 1
scenario kafka-1gw kafka 1
scenario kafka-2gw kafka 2
scenario kafka-3gw kafka 3
