#!/usr/bin/env bash
# HTTP ingest of Sluice against its two anchors, in one run on this machine
# (issue 14's goals): (a) libmicrohttpd's hello world configured like
# Sluice's listener (tests/bench/mhd_hello.c), (b) nginx + Lua decoding and
# re-encoding the JSON body without durability (tests/bench/nginx_lua.conf),
# (c) Sluice with `fsync: never` and (d) with `fsync: always` (202 after the
# fdatasync), each route delivering to a file. One server runs at a time;
# each gets wrk -t1 -c64 for DURATION seconds with the 250-byte JSON order
# (tests/bench/post.lua). Prints req/s, p99, the server's CPU time per
# request (user + system of its processes, from /proc: less sensitive than
# req/s to other load on the machine), the file delivery rate and RSS of
# Sluice, the log's fdatasync calls during wrk (count, mean duration,
# requests per call, from sluice_log_fsync_seconds), and the two ratios of
# the goals: durable / nginx+Lua (goal >= 1.0) and never / hello world
# (goal >= 0.8). ROUNDS=N runs the four N times,
# interleaved, and the ratios use the medians.
# Usage: tests/bench/ingest_ratio.sh [BUILD_DIR]   (default build-rel, a Release build)
# Needs wrk, nginx, libnginx-mod-http-lua and lua-cjson (docker/install-deps.sh bench).
set -euo pipefail
BUILD=${1:-build-rel}
cd "$(dirname "$0")/../.."
. tests/bench/ingest_route.sh
DURATION=${DURATION:-8}
CONNS=${CONNS:-64}
ROUNDS=${ROUNDS:-1}
TICK=$(getconf CLK_TCK)
PORT=${PORT:-18510}
ADMIN_PORT=$((PORT + 1))

for exe in "$BUILD/sluice" "$BUILD/mhd_hello"; do
    [ -x "$exe" ] || { echo "ingest_ratio: $exe missing (cmake --build $BUILD)" >&2; exit 2; }
done
for tool in wrk nginx curl; do
    command -v "$tool" >/dev/null || { echo "ingest_ratio: $tool missing" >&2; exit 2; }
done

bench_setup ingest-ratio

# wait_port PORT: until something accepts on 127.0.0.1:PORT (10 s at most).
wait_port() {
    for _ in $(seq 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "ingest_ratio: nothing listens on port $1" >&2
    exit 1
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# cpu_ticks PID: user + system clock ticks of PID and its child processes
# (nginx's workers).
cpu_ticks() {
    local total=0 p
    for p in $1 $(pgrep -P "$1" 2>/dev/null || true); do
        total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$total"
}

# fsync_stats: "COUNT SUM_SECONDS" of sluice_log_fsync_seconds from Sluice's admin
# /metrics.
fsync_stats() {
    curl -sf "127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^sluice_log_fsync_seconds_count/ {c = $2} /^sluice_log_fsync_seconds_sum/ {s = $2}
             END {print c + 0, s + 0}'
}

rss_kb() {
    awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# measure NAME: wrk against the running server; appends "NAME rps p99_ms
# non2xx" to $WORK/results and prints wrk's summary lines.
measure() {
    local name=$1 c0 c1
    c0=$(cpu_ticks "$SERVER_PID")
    wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s tests/bench/post.lua \
        "http://127.0.0.1:$PORT/orders" >"$WORK/wrk.txt"
    c1=$(cpu_ticks "$SERVER_PID")
    local rps p99 bad cpu
    rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/wrk.txt")
    p99=$(awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' "$WORK/wrk.txt")
    bad=$(awk '/Non-2xx/ {print $NF} /Socket errors/ {print "sock:" $0}' "$WORK/wrk.txt" | tr '\n' ' ')
    cpu=$(awk -v t=$((c1 - c0)) -v hz="$TICK" -v r="$rps" -v d="$DURATION" \
        'BEGIN {printf "%.1f", t / hz * 1e6 / (r * d)}')
    echo "$name $rps $p99 $cpu" >>"$WORK/results"
    printf '%-22s %8.0f req/s   p99 %7.2f ms   %5.1f us CPU/req  %s\n' "$name" "$rps" "$p99" \
        "$cpu" "${bad:+errors: $bad}"
}

run_hello() {
    "$BUILD/mhd_hello" "$PORT" &
    SERVER_PID=$!
    wait_port "$PORT"
    measure "mhd_hello"
    stop_server
}

run_nginx() {
    mkdir -p "$WORK/nginx"
    sed -e "s|@PREFIX@|$WORK/nginx|g" -e "s|@PORT@|$PORT|g" -e "s|@USER@|$(id -un)|g" \
        -e "s|@GROUP@|$(id -gn)|g" tests/bench/nginx_lua.conf >"$WORK/nginx/nginx.conf"
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
    SERVER_PID=$!
    wait_port "$PORT"
    measure "nginx+lua"
    stop_server
}

# run_sluice FSYNC: a route from http_server to a file, fsync FSYNC.
run_sluice() {
    local fsync=$1 dir="$WORK/sluice-$1"
    rm -rf "$dir" # every round starts from an empty log
    mkdir -p "$dir"
    start_ingest_sluice "$BUILD" "$dir" "$fsync" "$PORT" "$ADMIN_PORT"
    local rss0 rss1 lines fs0 fs1
    rss0=$(rss_kb "$SERVER_PID")
    fs0=$(fsync_stats)
    measure "sluice-fsync-$fsync"
    fs1=$(fsync_stats)
    lines=$(wc -l <"$dir/out.jsonl" 2>/dev/null || echo 0)
    rss1=$(rss_kb "$SERVER_PID")
    local accepted
    accepted=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
    printf '%-22s accepted %d, delivered to the file by the end of wrk %d (%.0f%%); RSS %d -> %d MiB\n' \
        "" "$accepted" "$lines" "$(echo "$lines $accepted" | awk '{print $2 ? 100*$1/$2 : 0}')" \
        $((rss0 / 1024)) $((rss1 / 1024))
    # the log's fdatasyncs during wrk (not the file output's)
    echo "$fs0 $fs1 $accepted" | awk '{n = $3 - $1; s = $4 - $2;
        if (n > 0) printf "%-22s fdatasync: %d calls, mean %.2f ms, %.1f requests per call\n", "", n, 1000 * s / n, $5 / n}'
    stop_server
}

echo "== ingest_ratio: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average" \
    "$(cut -d' ' -f1 /proc/loadavg), wrk -t1 -c$CONNS -d${DURATION}s, 250-byte JSON, $BUILD"
for round in $(seq "$ROUNDS"); do
    [ "$ROUNDS" -gt 1 ] && echo "-- round $round"
    run_hello
    run_nginx
    run_sluice never
    run_sluice always
done
python3 - "$WORK/results" "$ROUNDS" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rps, p99, cpu = line.split()[:4]
    rows.setdefault(name, []).append((float(rps), float(p99), float(cpu)))
med = {n: [statistics.median(c) for c in zip(*v)] for n, v in rows.items()}
hello, nginx = med["mhd_hello"], med["nginx+lua"]
never, always = med["sluice-fsync-never"], med["sluice-fsync-always"]
what = "medians of %s rounds" % sys.argv[2] if int(sys.argv[2]) > 1 else "one round"
print(f"== ratios ({what}); req/s, and in brackets the same from CPU time per request")
print(f"durable (fsync: always) / nginx+lua: {always[0] / nginx[0]:.2f} [{nginx[2] / always[2]:.2f}]"
      f" (goal >= 1.0; p99 {always[1]:.2f} ms, goal < 5 ms)")
print(f"fsync: never / mhd hello world:      {never[0] / hello[0]:.2f} [{hello[2] / never[2]:.2f}]"
      " (goal >= 0.8)")
PY
