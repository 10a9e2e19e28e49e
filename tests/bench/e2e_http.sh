#!/usr/bin/env bash
# End to end HTTP in -> Sluice -> HTTP sink (issue 14's delivery goals), in
# one run on this machine: for a route with no steps and for one with the
# benchmark's Lua + json_to_xml chain, (1) wrk ingests at full speed for
# DURATION seconds while the sink (tests/peers/http_sink.c, 200 to every
# request) counts deliveries; the delivered rate is the sink's count during
# the wrk window only, so a growing backlog shows as a ratio below 1 and as
# the backlog left when wrk stops (a small negative one is the requests in
# flight when wrk stopped: delivered, their 202 not counted by wrk); (2) delivery alone: a backlog accepted
# while the route is paused, then drained to the sink after resume (the
# route's delivery capacity, goal >= 60K msg/s). `fsync: always`,
# 4 partitions, key $.customer.id, wrk -t1 -cCONNS, the 250-byte order.
# Prints delivered/ingested (goal >= 0.95) and the drain rate, with the CPU
# time the gateway and the sink took per message drained (user + system from
# /proc: steadier than the rate on a machine shared with other work).
# With ALLOCS=path/to/malloc_count.so (tests/bench/preload/malloc_count.c, built as
# its comment says) the gateway runs with that allocation counter preloaded
# and the drain also prints the allocation calls per message, by caller.
# BACKLOG_SECONDS (default DURATION) is how long the backlog for the drain
# is ingested (e.g. DURATION=180 CONNS=32 BACKLOG_SECONDS=10: a long
# ingest, a short drain).
# With ROUTES=nosteps only the route without steps runs (delivery work);
# with PERF=FILE the drain of each route is recorded with `perf record -g`
# into FILE.NAME (nosteps, chain).
# Usage: tests/bench/e2e_http.sh [BUILD_DIR]   (default build-rel, a Release build)
set -euo pipefail
BUILD=${1:-build-rel}
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
PORT=${PORT:-18520}
ADMIN_PORT=$((PORT + 1))
SINK_PORT=$((PORT + 2))

for exe in "$BUILD/sluice" "$BUILD/http_sink"; do
    [ -x "$exe" ] || { echo "e2e_http: $exe missing (cmake --build $BUILD)" >&2; exit 2; }
done
for tool in wrk curl python3; do
    command -v "$tool" >/dev/null || { echo "e2e_http: $tool missing" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/sluice-e2e-http.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
cp tests/bench/enrich.lua "$WORK/"

sink_count() {
    curl -sf "127.0.0.1:$SINK_PORT/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])'
}

# wait_count N SECONDS: until the sink has N messages; prints the seconds
# it took (or fails when the deadline passes).
wait_count() {
    local want=$1 deadline=$2 t0 got
    t0=$(date +%s.%N)
    while :; do
        got=$(sink_count)
        [ "$got" -ge "$want" ] && break
        if awk -v a="$t0" -v b="$(date +%s.%N)" -v d="$deadline" 'BEGIN {exit !(b - a > d)}'; then
            echo "e2e_http: the sink has $got of $want after ${deadline}s" >&2
            exit 1
        fi
        sleep 0.02
    done
    awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}'
}

start() {
    local steps=$1
    rm -rf "$WORK/data"
    cat >"$WORK/sluice.yaml" <<YAML
sluice:
  data_dir: $WORK/data
  admin: { listen: "127.0.0.1:$ADMIN_PORT" }
  log: { fsync: always }
connectors:
  in:   { type: http_server, listen: "127.0.0.1:$PORT", max_body: 64KiB }
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
    "$BUILD/http_sink" --port "$SINK_PORT" >/dev/null &
    PIDS+=($!)
    ${ALLOCS:+env LD_PRELOAD=$ALLOCS MC_OUT=$WORK/mc} \
        "$BUILD/sluice" run -c "$WORK/sluice.yaml" 2>"$WORK/sluice.log" &
    PIDS+=($!)
    SINK_PID=${PIDS[-2]}
    GW_PID=${PIDS[-1]}
    for _ in $(seq 200); do
        curl -sf "127.0.0.1:$ADMIN_PORT/ready" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "e2e_http: the gateway did not become ready" >&2
    cat "$WORK/sluice.log" >&2
    exit 1
}

stop() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    PIDS=()
}

wrk_run() {
    wrk -t1 -c"$CONNS" -d"${1:-$DURATION}s" --latency -s tests/bench/post.lua \
        "http://127.0.0.1:$PORT/orders" >"$WORK/wrk.txt"
    if grep -qE "Non-2xx|Socket errors" "$WORK/wrk.txt"; then
        echo "e2e_http: wrk saw errors:" >&2
        grep -E "Non-2xx|Socket errors" "$WORK/wrk.txt" >&2
    fi
    awk '/requests in/ {print $1}' "$WORK/wrk.txt"
}

# cpu_ticks PID: user + system clock ticks of a process so far.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# ctx_switches PID: context switches (voluntary + involuntary) of a process's
# threads so far.
ctx_switches() {
    cat /proc/"$1"/task/*/status 2>/dev/null | awk '/ctxt_switches/ {n += $2} END {print n + 0}'
}

# alloc_snapshot FILE: copies the counter's latest counts (ALLOCS) to FILE.
alloc_snapshot() {
    [ -n "${ALLOCS:-}" ] || return 0
    sleep 0.2 # one more write of the counts
    cp "$WORK/mc" "$1"
}

# run NAME STEPS_YAML TAG
run() {
    local name=$1 steps=$2 c0 c1 sent rps left drain backlog secs g0 k0 g1 k1 x0 x1
    start "$steps"
    c0=$(sink_count)
    sent=$(wrk_run)
    c1=$(sink_count)
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.txt")
    left=$((sent - (c1 - c0)))
    secs=$(wait_count "$sent" 600)
    printf '%-18s ingest %8.0f req/s  delivered during it %8.0f msg/s  ratio %.2f  backlog at the end %d (drained in %ss)\n' \
        "$name" "$rps" "$(awk -v n=$((c1 - c0)) -v d="$DURATION" 'BEGIN {print n / d}')" \
        "$(awk -v n=$((c1 - c0)) -v s="$sent" 'BEGIN {print s ? n / s : 0}')" "$left" "$secs"
    # Delivery alone: a backlog accepted while paused, drained after resume.
    curl -sf -XPOST "127.0.0.1:$ADMIN_PORT/v1/routes/orders/pause" >/dev/null
    curl -sf -XPOST "127.0.0.1:$SINK_PORT/reset" >/dev/null
    backlog=$(wrk_run "${BACKLOG_SECONDS:-$DURATION}")
    alloc_snapshot "$WORK/mc0"
    g0=$(cpu_ticks "$GW_PID")
    k0=$(cpu_ticks "$SINK_PID")
    x0=$(ctx_switches "$GW_PID")
    local perf_pid=
    if [ -n "${PERF:-}" ]; then
        perf record -g -q -o "$PERF.$3" -p "$GW_PID" 2>/dev/null &
        perf_pid=$!
        sleep 0.3 # perf attached before the drain starts
    fi
    curl -sf -XPOST "127.0.0.1:$ADMIN_PORT/v1/routes/orders/resume" >/dev/null
    secs=$(wait_count "$backlog" 600)
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
    fi
    g1=$(cpu_ticks "$GW_PID")
    k1=$(cpu_ticks "$SINK_PID")
    x1=$(ctx_switches "$GW_PID")
    alloc_snapshot "$WORK/mc1"
    printf '%-18s delivery alone: backlog %d drained in %ss: %8.0f msg/s, CPU per message: gateway %.1f us, sink %.1f us; gateway context switches per message %.2f\n' \
        "$name" "$backlog" "$secs" "$(awk -v n="$backlog" -v s="$secs" 'BEGIN {print n / s}')" \
        "$(awk -v t=$((g1 - g0)) -v n="$backlog" -v hz="$(getconf CLK_TCK)" 'BEGIN {print t / hz / n * 1e6}')" \
        "$(awk -v t=$((k1 - k0)) -v n="$backlog" -v hz="$(getconf CLK_TCK)" 'BEGIN {print t / hz / n * 1e6}')" \
        "$(awk -v x=$((x1 - x0)) -v n="$backlog" 'BEGIN {print x / n}')"
    if [ -n "${ALLOCS:-}" ]; then
        paste "$WORK/mc0" "$WORK/mc1" | awk -v n="$backlog" -v name="$name" \
            '{printf "%s%s %.2f", NR == 1 ? sprintf("%-18s allocation calls per message drained:", name) : ",", " " $1, ($4 - $2) / n} END {print ""}'
    fi
    stop
}

echo "== e2e_http: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average" \
    "$(cut -d' ' -f1 /proc/loadavg), wrk -t1 -c$CONNS -d${DURATION}s, fsync always, $BUILD"
run "no steps" "" nosteps
[ "${ROUTES:-all}" = nosteps ] && exit 0
run "lua+json_to_xml" "    steps:
      - lua: { file: enrich.lua, function: enrich }
      - json_to_xml: { root: order }" chain
