#!/usr/bin/env bash
# Where the gateway's CPU goes during HTTP ingest (issue 14: "where the
# remaining time goes"): the route of tests/bench/ingest_ratio.sh (http_server
# -> 4 partitions -> file output), wrk -t1 -c64 with the 250-byte JSON order
# for DURATION seconds, and `perf record -g` of the gateway during it.
# Prints req/s, then the gateway's samples by thread (threads are named: see
# docs/ARCHITECTURE.md, Threads; the route workers wN:orders are summed),
# by shared object (kernel, libc, libmicrohttpd, sluice, ...), the top
# symbols, and the kernel's share under each thread.
# Usage: tests/bench/ingest_profile.sh [BUILD_DIR (build-rel)] [FSYNC (always)]
# Needs perf (linux-perf), wrk, curl; perf_event_paranoid <= 1 or root.
set -euo pipefail
BUILD=${1:-build-rel}
FSYNC=${2:-always}
DURATION=${DURATION:-8}
PORT=${PORT:-18530}
ADMIN_PORT=$((PORT + 1))
cd "$(dirname "$0")/../.."
. tests/bench/ingest_route.sh
[ -x "$BUILD/sluice" ] || { echo "ingest_profile: $BUILD/sluice missing" >&2; exit 2; }
for tool in perf wrk curl; do
    command -v "$tool" >/dev/null || { echo "ingest_profile: $tool missing" >&2; exit 2; }
done
bench_setup ingest-profile

start_ingest_sluice "$BUILD" "$WORK" "$FSYNC" "$PORT" "$ADMIN_PORT"

perf record -F 1999 -g -p "$SERVER_PID" -o "$WORK/perf.data" -- sleep $((DURATION - 1)) >/dev/null 2>&1 &
PERF=$!
wrk -t1 -c64 -d"${DURATION}s" --latency -s tests/bench/post.lua "http://127.0.0.1:$PORT/orders" >"$WORK/wrk.txt"
wait "$PERF"
echo "== ingest_profile: $(date -u '+%Y-%m-%d %H:%M UTC'), fsync: $FSYNC, $(nproc) cores, load average" \
    "$(cut -d' ' -f1 /proc/loadavg), $BUILD"
awk '/^Requests\/sec/ {r = $2} $1 == "99%" {p = $2} END {printf "%s req/s, p99 %s\n", r, p}' "$WORK/wrk.txt"

# table SORT: "percent key" lines of perf report sorted by SORT, no call graph.
table() {
    perf report -i "$WORK/perf.data" --no-children --sort "$1" -g none --percent-limit 0.01 2>/dev/null |
        awk '/^ *[0-9.]+%/ {p = $1; sub("%", "", p); $1 = ""; sub(/^ +/, ""); print p, $0}'
}
echo "-- by thread (% of the gateway's samples)"
table comm | awk '{k = $2; for (i = 3; i <= NF; i++) k = k " " $i; if (k ~ /^w[0-9]+:/) k = "wN:" substr(k, index(k, ":") + 1);
    s[k] += $1} END {for (k in s) printf "%6.1f%%  %s\n", s[k], k}' | sort -rn
echo "-- by object"
table dso | awk '{s[$2] += $1} END {for (k in s) if (s[k] >= 0.5) printf "%6.1f%%  %s\n", s[k], k}' | sort -rn
echo "-- top symbols"
table sym | awk 'NR <= 25 {printf "%6.1f%%  %s %s\n", $1, $2, $3}'
echo "-- kernel share under each thread"
table comm,dso | awk '{n = NF; d = $n; k = $2; if (k ~ /^w[0-9]+:/) k = "wN:" substr(k, index(k, ":") + 1);
    all[k] += $1; if (d == "[kernel.kallsyms]") kern[k] += $1}
    END {for (k in all) if (all[k] >= 1) printf "%-16s %5.1f%% of samples, %3.0f%% of it in the kernel\n", k, all[k], 100 * kern[k] / all[k]}' | sort -k2 -rn
