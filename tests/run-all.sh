#!/usr/bin/env bash
# Runs every test of Sluice against one build directory: cmocka unit tests
# and the log crash test (through ctest), then the integration tests against
# the real binary. Prints one closing line "N passed, N failed" over suites.
set -uo pipefail
BUILD=${1:-build-asan}
cd "$(dirname "$0")/.."
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

passed=0
failed=0
echo "== unit and crash tests (ctest, $BUILD)"
if (cd "$BUILD" && ctest --output-on-failure -j2); then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
echo "== integration tests (real binary, real sockets)"
if python3 tests/integration/run.py --sluice "$BUILD/sluice"; then
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
