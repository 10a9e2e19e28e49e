#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz: clang, ASan+UBSan, -DSLUICE_FUZZ=ON)
# and runs each for SECONDS (default FUZZ_SECONDS, else 60) on a scratch copy
# of its committed corpus (tests/fuzz/corpus/TARGET: seeds and regression
# inputs; new inputs stay in the scratch copy). Fails on the first crash,
# leak or timeout, leaving the input as build-fuzz/crash-TARGET-*.
# Usage: tests/fuzz/run.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH="${1:-${FUZZ_SECONDS:-60}}"
shift || true
JOBS="${JOBS:-2}"
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DSLUICE_FUZZ=ON -DSLUICE_TESTS=OFF -DSLUICE_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS" >/dev/null
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    for d in tests/fuzz/corpus/*/; do targets+=("$(basename "$d")"); done
fi
for t in "${targets[@]}"; do
    work="$(mktemp -d "/tmp/sluice-fuzz-$t-XXXXXX")"
    log="build-fuzz/$t.log"
    echo "fuzz: $t for ${SECONDS_EACH}s"
    if ! ./build-fuzz/"$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="build-fuzz/crash-$t-" \
        "$work" "tests/fuzz/corpus/$t" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz: $t FAILED (input kept as build-fuzz/crash-$t-*)" >&2
        rm -rf "$work"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')"
    echo "fuzz: $t ok: $runs executions, corpus $(ls "$work" | wc -l) new inputs"
    rm -rf "$work"
done
