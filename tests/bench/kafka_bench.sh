#!/usr/bin/env bash
# Kafka to Kafka throughput: a Sluice route (kafka input -> log with
# fsync: always -> kafka output, acks=all, idempotent) beside the raw client
# rate `kcat -C | kcat -P` on the same mock cluster (tests/peers/kafka_broker)
# in the same run. Prints messages/s for both, per round and the median, and
# the ratio of the medians.
#
# Usage: tests/bench/kafka_bench.sh BUILD_DIR [MESSAGES (80000)] [PARTITIONS (10)] [ROUNDS (3)]
# Build it as Release: cmake -B build-rel -DCMAKE_BUILD_TYPE=Release -DSLUICE_SANITIZE=OFF
# FSYNC=interval|never changes the log's fsync mode (default always).
# The mock cluster of librdkafka 2.0.2 keeps only the last 5 MiB of each
# partition (older records are deleted as by retention), so MESSAGES /
# PARTITIONS stays under 10,000 (250-byte values, keys spread unevenly).
set -euo pipefail

BUILD=$(cd "${1:?usage: kafka_bench.sh BUILD_DIR [MESSAGES] [PARTITIONS] [ROUNDS]}" && pwd)
N=${2:-80000}
PARTS=${3:-10}
ROUNDS=${4:-3}
FSYNC=${FSYNC:-always}
SLUICE=$BUILD/sluice
BROKER=$BUILD/kafka_broker
KCAT=${KCAT:-kcat}
for f in "$SLUICE" "$BROKER"; do
    [ -x "$f" ] || { echo "kafka_bench: $f not built" >&2; exit 2; }
done
if [ $((N / PARTS)) -gt 10000 ]; then
    echo "kafka_bench: $((N / PARTS)) messages per partition would not fit in the mock's 5 MiB" \
        "per partition; use more partitions" >&2
    exit 2
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sluice-kafka-bench.XXXXXX")
GW_PID=
cleanup() {
    local rc=$?
    if [ $rc -ne 0 ] && [ -f "$WORK/sluice.log" ]; then
        echo "kafka_bench: failed; the gateway's log ends with:" >&2
        tail -n 30 "$WORK/sluice.log" >&2
    fi
    [ -n "$GW_PID" ] && kill -TERM "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
    if [ -n "${BROKER_PID:-}" ]; then
        echo quit >&"${BR[1]}" 2>/dev/null || true
        wait "$BROKER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

now() { date +%s.%N; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# The broker: commands on its stdin, answers on its stdout.
coproc BR { exec "$BROKER" 2>"$WORK/broker.err"; }
BROKER_PID=$BR_PID
read -r word BOOT <&"${BR[0]}"
[ "$word" = BOOTSTRAP ] || { echo "kafka_bench: broker said $word" >&2; exit 1; }
cmd() {
    echo "$1" >&"${BR[1]}"
    local answer
    read -r answer <&"${BR[0]}"
    [ "$answer" = ok ] || { echo "kafka_bench: $1: $answer" >&2; exit 1; }
}
cmd "create raw-in $PARTS"
cmd "create in $PARTS"
for ((r = 1; r <= ROUNDS; r++)); do
    cmd "create raw-out-$r $PARTS"
    cmd "create out-$r $PARTS"
done

# N keyed messages, 1000 keys, 250-byte values, in both input topics.
awk -v n="$N" 'BEGIN { pad = sprintf("%240s", ""); gsub(/ /, "x", pad);
    for (i = 0; i < n; i++) printf "k%d:%010d%s\n", i % 1000, i, pad }' >"$WORK/data"
"$KCAT" -P -K: -b "$BOOT" -t raw-in -l "$WORK/data"
"$KCAT" -P -K: -b "$BOOT" -t in -l "$WORK/data"

# The sum of the high watermarks of a topic.
topic_count() {
    for ((p = 0; p < PARTS; p++)); do echo "-t $1:$p:-1"; done |
        xargs "$KCAT" -Q -b "$BOOT" | awk '{ s += $4 } END { print s + 0 }'
}

# The raw client rate: consume everything, produce it again (idempotent,
# acks=all, as the gateway's producer does).
raw_round() {
    local t0 t1
    t0=$(now)
    "$KCAT" -C -e -q -b "$BOOT" -t raw-in -o beginning -f '%k:%s\n' |
        "$KCAT" -P -K: -b "$BOOT" -t "raw-out-$1" -X enable.idempotence=true -X acks=all
    t1=$(now)
    RAW_RATE=$(rate "$N" "$t0" "$t1")
    echo "  round $1: kcat -C | kcat -P   $RAW_RATE msg/s ($(secs "$t0" "$t1") s)"
}

# The gateway: one route in -> out-R, a new group and data_dir each round.
# The clock starts at the first message consumed (after the group join,
# which the mock delays by 3 s) and stops when Kafka acknowledged the last
# one (sluice_kafka_produced_total); one keep-alive connection polls
# /metrics every 10 ms.
gateway_round() {
    local r=$1 admin t0 t1
    admin=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$WORK/sluice.yaml" <<EOF
sluice:
  data_dir: $WORK/data-$r
  admin: { listen: "127.0.0.1:$admin" }
  log: { fsync: $FSYNC }
connectors:
  kafka: { type: kafka, brokers: "$BOOT" }
routes:
  bench:
    from: { connector: kafka, topics: [in], group: bench-$r, start: earliest }
    partitions: $PARTS
    to:
      - { connector: kafka, topic: out-$r }
EOF
    "$SLUICE" run -c "$WORK/sluice.yaml" 2>"$WORK/sluice.log" &
    GW_PID=$!
    read -r t0 t1 < <(python3 - "127.0.0.1:$admin" "$N" "$GW_PID" <<'PY'
import http.client, os, sys, time
admin, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + 300
conn = None
def metric(name):
    global conn
    while True:
        if time.monotonic() > deadline:
            sys.exit(f"kafka_bench: timed out waiting for {name}")
        try:
            os.kill(pid, 0)
            if conn is None:
                conn = http.client.HTTPConnection(admin, timeout=5)
            conn.request("GET", "/metrics")
            body = conn.getresponse().read().decode()
            return sum(float(l.rsplit(" ", 1)[1]) for l in body.splitlines()
                       if l.startswith(name + "{") or l.startswith(name + " "))
        except ProcessLookupError:
            sys.exit("kafka_bench: sluice exited")
        except OSError:
            conn = None
            time.sleep(0.05)
while metric("sluice_kafka_consumed_total") == 0:
    time.sleep(0.002)
t0 = time.time()
while metric("sluice_kafka_produced_total") < n:
    time.sleep(0.01)
print(t0, time.time())
PY
    )
    [ -n "${t1:-}" ] || exit 1
    kill -TERM "$GW_PID"
    wait "$GW_PID" || { echo "kafka_bench: sluice exited with $?" >&2; exit 1; }
    GW_PID=
    local out
    out=$(topic_count "out-$r")
    [ "$out" -ge "$N" ] || { echo "kafka_bench: only $out of $N messages in out-$r" >&2; exit 1; }
    GW_RATE=$(rate "$N" "$t0" "$t1")
    echo "  round $r: sluice kafka -> kafka $GW_RATE msg/s ($(secs "$t0" "$t1") s, fsync $FSYNC)"
}

echo "kafka_bench: $N messages of 250 bytes, $PARTS partitions, $ROUNDS rounds, mock cluster at $BOOT"
echo "kafka_bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
raws=()
gws=()
for ((r = 1; r <= ROUNDS; r++)); do
    raw_round "$r"
    raws+=("$RAW_RATE")
    gateway_round "$r"
    gws+=("$GW_RATE")
done
RAW=$(median "${raws[@]}")
GW=$(median "${gws[@]}")
echo "kcat -C | kcat -P (median):     $RAW msg/s"
echo "sluice kafka -> kafka (median): $GW msg/s (fsync $FSYNC)"
echo "ratio sluice / kcat:            $(awk -v a="$GW" -v b="$RAW" 'BEGIN { printf "%.2f", a / b }')"
echo "kafka_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) after the run"
