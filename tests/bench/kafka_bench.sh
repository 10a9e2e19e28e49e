#!/usr/bin/env bash
# Kafka to Kafka throughput: a Sluice route (kafka input -> log with
# fsync: always -> kafka output, acks=all, idempotent) beside the raw client
# rate `kcat -C | kcat -P` on the same mock cluster (tests/peers/kafka_broker)
# in the same run. Prints messages/s for both, per round and the median, and
# the ratio of the medians; and the CPU time each side used per message
# (both kcat processes; the gateway process), which depends less on what
# else runs on the machine than the rates do.
#
# Usage: tests/bench/kafka_bench.sh BUILD_DIR [MESSAGES (80000)] [PARTITIONS (10)] [ROUNDS (3)]
# Build it as Release: cmake -B build-rel -DCMAKE_BUILD_TYPE=Release -DSLUICE_SANITIZE=OFF
# FSYNC=interval|never changes the log's fsync mode (default always).
# FSYNC_DELAY_US=N makes a slow-disk day reproducible: the gateway (only it,
# not kcat nor the broker) runs with tests/bench/preload/fsync_delay.c
# preloaded, which sleeps N microseconds after every fdatasync and fsync
# (built into BUILD_DIR/fsync_delay.so when missing).
# The mock cluster of librdkafka 2.0.2 keeps only the last 5 MiB of each
# partition (older records are deleted as by retention), so MESSAGES /
# PARTITIONS stays under 10,000 (250-byte values, keys spread unevenly).
set -euo pipefail

BUILD=$(cd "${1:?usage: kafka_bench.sh BUILD_DIR [MESSAGES] [PARTITIONS] [ROUNDS]}" && pwd)
N=${2:-80000}
PARTS=${3:-10}
ROUNDS=${4:-3}
FSYNC=${FSYNC:-always}
FSYNC_DELAY_US=${FSYNC_DELAY_US:-0}
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

PRELOAD=()
if [ "$FSYNC_DELAY_US" -gt 0 ]; then
    SHIM=$BUILD/fsync_delay.so
    HERE=$(cd "$(dirname "$0")" && pwd)
    if [ ! -f "$SHIM" ] || [ "$HERE/preload/fsync_delay.c" -nt "$SHIM" ]; then
        ${CC:-cc} -O2 -shared -fPIC -o "$SHIM" "$HERE/preload/fsync_delay.c" -ldl
    fi
    PRELOAD=(env "LD_PRELOAD=$SHIM" "FSYNC_DELAY_US=$FSYNC_DELAY_US")
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
# The CPU seconds used so far by this shell's waited-for children (`times`
# must run in this shell, not in a command substitution's subshell).
children_cpu() {
    times >"$WORK/times"
    awk 'NR == 2 { gsub(/[ms]/, " "); print $1 * 60 + $2 + $3 * 60 + $4 }' "$WORK/times"
}
cpu_us() { awk -v c="$1" -v n="$N" 'BEGIN { printf "%.1f", c * 1e6 / n }'; }
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
# RAW_CPU: the CPU seconds (user + system) of both kcat processes.
raw_round() {
    local t0 t1 c0 c1
    t0=$(now)
    children_cpu >"$WORK/c0"
    "$KCAT" -C -e -q -b "$BOOT" -t raw-in -o beginning -f '%k:%s\n' |
        "$KCAT" -P -K: -b "$BOOT" -t "raw-out-$1" -X enable.idempotence=true -X acks=all
    t1=$(now)
    children_cpu >"$WORK/c1"
    read -r c0 <"$WORK/c0"
    read -r c1 <"$WORK/c1"
    RAW_RATE=$(rate "$N" "$t0" "$t1")
    RAW_CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.2f", b - a }')
    echo "  round $1: kcat -C | kcat -P   $RAW_RATE msg/s ($(secs "$t0" "$t1") s," \
        "$(cpu_us "$RAW_CPU") CPU us/msg)"
}

# The gateway: one route in -> out-R, a new group and data_dir each round.
# The clock starts at the first message consumed (after the group join,
# which the mock delays by 3 s) and stops when Kafka acknowledged the last
# one (sluice_kafka_produced_total); one keep-alive connection polls
# /metrics, every 2 ms until the first message, then about four times per
# remaining run time (2-100 ms; a scrape costs the gateway about 0.2 ms of
# CPU, it reads /proc). GW_CPU: the gateway's CPU seconds between the two
# instants (/proc/PID/stat), scrapes included; GW_SYNC: the log's
# fdatasyncs in that time, their mean duration and the messages per
# fdatasync (sluice_log_fsync_seconds).
gateway_round() {
    local r=$1 admin t0 t1 cpu sync
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
    "${PRELOAD[@]}" "$SLUICE" run -c "$WORK/sluice.yaml" 2>"$WORK/sluice.log" &
    GW_PID=$!
    read -r t0 t1 cpu sync < <(python3 - "127.0.0.1:$admin" "$N" "$GW_PID" <<'PY'
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
def cpu():
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
while metric("sluice_kafka_consumed_total") == 0:
    time.sleep(0.002)
t0, c0 = time.time(), cpu()
n0, s0 = metric("sluice_log_fsync_seconds_count"), metric("sluice_log_fsync_seconds_sum")
t_in = None  # when every message was consumed (and appended)
while True:
    done = metric("sluice_kafka_produced_total")
    if t_in is None and metric("sluice_kafka_consumed_total") >= n:
        t_in = time.time()
    if done >= n:
        break
    left = (n - done) * (time.time() - t0) / done if done > 0 else 0.4
    time.sleep(min(0.1, max(0.002, left / 4)))
t1, c1 = time.time(), cpu()
syncs = metric("sluice_log_fsync_seconds_count") - n0
mean = (metric("sluice_log_fsync_seconds_sum") - s0) / syncs if syncs else 0
t_in = t_in or t1
print(t0, t1, c1 - c0, f"all consumed at {t_in - t0:.2f} s; {syncs:.0f} fdatasyncs of {mean * 1e3:.2f} ms mean, {n / max(syncs, 1):.0f} msg each")
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
    GW_CPU=$cpu
    echo "  round $r: sluice kafka -> kafka $GW_RATE msg/s ($(secs "$t0" "$t1") s," \
        "$(cpu_us "$GW_CPU") CPU us/msg, fsync $FSYNC: $sync)"
}

echo "kafka_bench: $N messages of 250 bytes, $PARTS partitions, $ROUNDS rounds, mock cluster at $BOOT"
echo "kafka_bench: fsync $FSYNC, $FSYNC_DELAY_US us added after each fdatasync/fsync of the gateway"
echo "kafka_bench: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
raws=()
gws=()
raw_cpus=()
gw_cpus=()
for ((r = 1; r <= ROUNDS; r++)); do
    raw_round "$r"
    raws+=("$RAW_RATE")
    raw_cpus+=("$RAW_CPU")
    gateway_round "$r"
    gws+=("$GW_RATE")
    gw_cpus+=("$GW_CPU")
done
RAW=$(median "${raws[@]}")
GW=$(median "${gws[@]}")
echo "kcat -C | kcat -P (median):     $RAW msg/s, $(cpu_us "$(median "${raw_cpus[@]}")") CPU us/msg"
echo "sluice kafka -> kafka (median): $GW msg/s, $(cpu_us "$(median "${gw_cpus[@]}")") CPU us/msg" \
    "(fsync $FSYNC, +$FSYNC_DELAY_US us)"
echo "ratio sluice / kcat:            $(awk -v a="$GW" -v b="$RAW" 'BEGIN { printf "%.2f", a / b }')"
echo "kafka_bench: load average $(cut -d' ' -f1-3 /proc/loadavg) after the run"
