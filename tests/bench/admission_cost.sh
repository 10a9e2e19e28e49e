#!/usr/bin/env bash
# The cost of http_server's per-route admission checks on ingest: the same
# route with and without `auth: [bearer]` + a `rate_limit` high enough to
# refuse nothing (the connection limits and deadlines are on in both: they
# cannot be turned off). Runs the two alternately, ROUNDS times (default 3),
# each with wrk -t1 -c64 for DURATION seconds (250-byte JSON, fsync: never so
# that the disk does not hide the difference), and prints the medians of
# req/s, p99 and Sluice's CPU time per request (user + system from /proc).
# Usage: tests/bench/admission_cost.sh [BUILD_DIR]   (default build-rel)
set -euo pipefail
BUILD=${1:-build-rel}
cd "$(dirname "$0")/../.."
. tests/bench/ingest_route.sh
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-3}
TICK=$(getconf CLK_TCK)
PORT=${PORT:-18530}
ADMIN_PORT=$((PORT + 1))
[ -x "$BUILD/sluice" ] || { echo "admission_cost: $BUILD/sluice missing" >&2; exit 2; }
command -v wrk >/dev/null || { echo "admission_cost: wrk missing" >&2; exit 2; }

bench_setup admission

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# run NAME ADMISSION: one Sluice with the route's extra `from:` keys
# ADMISSION, measured; appends "NAME rps p99_ms cpu_us" to $WORK/results.
run() {
    local name=$1 admission=$2 dir="$WORK/$1" script=tests/bench/post.lua
    [ -n "$admission" ] && script=tests/bench/post_auth.lua
    rm -rf "$dir"
    mkdir -p "$dir"
    start_ingest_sluice "$BUILD" "$dir" never "$PORT" "$ADMIN_PORT" "$admission"
    local c0 c1 rps p99 cpu bad
    c0=$(cpu_ticks "$SERVER_PID")
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$script" \
        "http://127.0.0.1:$PORT/orders" >"$WORK/wrk.txt"
    c1=$(cpu_ticks "$SERVER_PID")
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.txt")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' "$WORK/wrk.txt")
    bad=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt")
    cpu=$(awk -v t=$((c1 - c0)) -v hz="$TICK" -v r="$rps" -v d="$DURATION" \
        'BEGIN {printf "%.1f", t / hz * 1e6 / (r * d)}')
    echo "$name $rps $p99 $cpu" >>"$WORK/results"
    printf '%-10s %8.0f req/s   p99 %7.2f ms   %5.1f us CPU/req  %s\n' "$name" "$rps" "$p99" \
        "$cpu" "${bad:+non-2xx: $bad}"
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

ADMISSION=', auth: [ { type: bearer, tokens: [ "bench-token-7f3a" ] } ], rate_limit: { rate: 10000000/s, burst: 10000000, per: client }'
echo "== admission_cost: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average" \
    "$(cut -d' ' -f1 /proc/loadavg), wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS rounds, $BUILD"
for round in $(seq "$ROUNDS"); do
    echo "-- round $round"
    run without ""
    run with "$ADMISSION"
done
python3 - "$WORK/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, *v = line.split()
    rows.setdefault(name, []).append([float(x) for x in v])
med = {n: [statistics.median(c) for c in zip(*v)] for n, v in rows.items()}
w, wo = med["with"], med["without"]
print(f"== medians: without {wo[0]:.0f} req/s, p99 {wo[1]:.2f} ms, {wo[2]:.1f} us CPU/req; "
      f"with {w[0]:.0f} req/s, p99 {w[1]:.2f} ms, {w[2]:.1f} us CPU/req")
print(f"== with / without: req/s {w[0] / wo[0]:.3f}, CPU per request {w[2] / wo[2]:.3f} "
      f"({w[2] - wo[2]:+.1f} us)")
PY
