#!/usr/bin/env bash
# Memory under sustained HTTP ingest (issue 14: "RSS under sustained ingest
# stays flat"): the route of ingest_ratio.sh (tests/bench/ingest_route.sh),
# wrk -t1 -c64 with the 250-byte order for DURATION seconds (default 120),
# and every STEP seconds (default 10) the gateway's resident memory from
# /proc/PID/status: RssAnon (heap, thread stacks: what would leak) and
# RssFile (pages of the log's mapped segments and of the libraries, which
# the kernel can drop), with the log's record count so far. Prints one line
# per sample and the growth of RssAnon between the first full minute and
# the end.
# Usage: tests/bench/ingest_memory.sh [BUILD_DIR (build-rel)] [FSYNC (always)]
set -euo pipefail
BUILD=${1:-build-rel}
FSYNC=${2:-always}
DURATION=${DURATION:-120}
STEP=${STEP:-10}
PORT=${PORT:-18540}
ADMIN_PORT=$((PORT + 1))
cd "$(dirname "$0")/../.."
. tests/bench/ingest_route.sh
[ -x "$BUILD/sluice" ] || { echo "ingest_memory: $BUILD/sluice missing" >&2; exit 2; }
bench_setup ingest-memory

start_ingest_sluice "$BUILD" "$WORK" "$FSYNC" "$PORT" "$ADMIN_PORT"
echo "== ingest_memory: $(date -u '+%Y-%m-%d %H:%M UTC'), fsync: $FSYNC, ${DURATION} s of wrk -t1 -c64," \
    "load average $(cut -d' ' -f1 /proc/loadavg), $BUILD"
wrk -t1 -c64 -d"${DURATION}s" -s tests/bench/post.lua "http://127.0.0.1:$PORT/orders" >"$WORK/wrk.txt" &
EXTRA_PIDS=$!
printf '%6s %12s %12s %12s\n' "s" "RssAnon MiB" "RssFile MiB" "records"
t=0
while [ "$t" -lt "$DURATION" ]; do
    sleep "$STEP"
    t=$((t + STEP))
    anon=$(awk '/^RssAnon/ {print $2}' "/proc/$SERVER_PID/status")
    file=$(awk '/^RssFile/ {print $2}' "/proc/$SERVER_PID/status")
    recs=$(curl -sf "127.0.0.1:$ADMIN_PORT/metrics" | awk '/^sluice_messages_in_total/ {s += $2} END {print s + 0}')
    printf '%6d %12.1f %12.1f %12d\n' "$t" "$(echo "$anon" | awk '{print $1 / 1024}')" \
        "$(echo "$file" | awk '{print $1 / 1024}')" "$recs"
    echo "$t $anon" >>"$WORK/anon"
done
wait "$EXTRA_PIDS" || true
EXTRA_PIDS=""
awk '/^Requests\/sec/ {print "wrk: " $2 " req/s"}' "$WORK/wrk.txt"
awk '$1 >= 60 && !a {a = $2; at = $1} {z = $2; zt = $1}
     END {if (a) printf "RssAnon from %d s to %d s: %+.1f MiB\n", at, zt, (z - a) / 1024}' "$WORK/anon"
