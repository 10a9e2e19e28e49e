# Sourced by the HTTP ingest benchmarks (ingest_ratio.sh, ingest_profile.sh,
# admission_cost.sh, ingest_memory.sh): the route they measure, how the
# gateway is started, and their work directory and clean-up.

# start_ingest_sluice BUILD DIR FSYNC PORT ADMIN_PORT [FROM_EXTRA]: writes
# DIR/sluice.yaml, a route from http_server (127.0.0.1:PORT, POST /orders,
# JSON, `reply: async`, plus FROM_EXTRA inside its `from:`) through a log of
# 4 partitions keyed by $.customer.id with fsync FSYNC to the file
# DIR/out.jsonl; starts BUILD/sluice in the background (its log in
# DIR/sluice.log), sets SERVER_PID, and waits up to 10 s for /ready.
start_ingest_sluice() {
    local build=$1 dir=$2 fsync=$3 port=$4 admin_port=$5 from_extra=${6:-}
    cat >"$dir/sluice.yaml" <<YAML
sluice:
  data_dir: $dir/data
  admin: { listen: "127.0.0.1:$admin_port" }
  log: { fsync: $fsync }
connectors:
  in:  { type: http_server, listen: "127.0.0.1:$port", max_body: 64KiB }
  out: { type: file, path: $dir/out.jsonl }
routes:
  orders:
    from: { connector: in, path: /orders, methods: [POST], content_type: json, reply: async $from_extra }
    partitions: 4
    key: "\$.customer.id"
    to:
      - { connector: out }
YAML
    "$build/sluice" run -c "$dir/sluice.yaml" 2>"$dir/sluice.log" &
    SERVER_PID=$!
    for _ in $(seq 200); do
        curl -sf "127.0.0.1:$admin_port/ready" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "$(basename "$0"): the gateway is not ready; its log ends with:" >&2
    tail -n 20 "$dir/sluice.log" >&2
    return 1
}

# bench_setup NAME: WORK, a new directory /tmp/sluice-NAME.XXXXXX, and an
# exit trap that stops SERVER_PID and the pids in EXTRA_PIDS (both empty
# now) and removes WORK.
bench_setup() {
    WORK=$(mktemp -d "/tmp/sluice-$1.XXXXXX")
    SERVER_PID=""
    EXTRA_PIDS=""
    trap bench_cleanup EXIT
}

bench_cleanup() {
    local p
    for p in $EXTRA_PIDS $SERVER_PID; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
