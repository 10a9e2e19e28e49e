#!/usr/bin/env bash
# Installs the Debian 12 packages Sluice needs, by purpose: `build` (compile
# the gateway), `runtime` (run it: shared libraries and curl for health
# checks), `test` (unit/integration tests, their tools and peers).
# Usage: install-deps.sh [LIST...]; no argument installs build, runtime and
# test. Also: `bench` (the benchmarks' anchors, tests/bench), `smoke` (what
# `make docker-smoke` needs), `rabbitmq-image` and
# `kafka-peer-image` (the compose file's peer images).
# Idempotent: packages already present are not fetched again. This is the
# only place the lists live; the Makefile, .ci/run and the Dockerfiles call it.
set -euo pipefail

BUILD_PACKAGES=(
    build-essential cmake pkg-config ca-certificates
    libmicrohttpd-dev libcurl4-openssl-dev librabbitmq-dev librdkafka-dev
    libjansson-dev libxml2-dev liblua5.4-dev libyaml-dev libgnutls28-dev libcrypt-dev
)

RUNTIME_PACKAGES=(
    libmicrohttpd12 libgnutls30 libcrypt1 libcurl4 librabbitmq4 librdkafka1 libjansson4 libxml2
    liblua5.4-0 libyaml-0-2 ca-certificates curl
)

TEST_PACKAGES=(
    git
    # tests and tools
    libcmocka-dev curl kcat wrk python3 procps
    libxml2-utils             # xmllint: test_ordered_xml checks its fixture schemas with it
    clang                     # the libFuzzer targets (tests/fuzz, make fuzz)
    fuse3 libfuse3-dev        # lazyfs, the power-cut tests' file system
    openssl                   # test_outbound, test_tls: CAs, server and client certificates
    chromium                  # the console test: headless Chromium driven by puppeteer-core
                              # (node and npm too: see below)
    # peers
    rabbitmq-server
)

# The benchmarks' anchors (tests/bench/ingest_ratio.sh): nginx with its Lua
# module and lua-cjson, and perf to profile the gateway under load.
BENCH_PACKAGES=(
    wrk nginx libnginx-mod-http-lua lua-cjson linux-perf
)

# Only for `make docker-smoke` (not part of the default set): a Docker engine
# of its own, debootstrap for the debian:12 base image, and compose.
SMOKE_PACKAGES=(
    docker.io debootstrap docker-compose curl python3
)

# The compose file's peer images (docker/compose.yaml): a RabbitMQ from
# Debian's package, and the Kafka-protocol test broker with kcat and socat.
RABBITMQ_IMAGE_PACKAGES=(
    rabbitmq-server
)
KAFKA_PEER_IMAGE_PACKAGES=(
    librdkafka1 kcat socat
)

if [ $# -eq 0 ]; then
    set -- build runtime test
fi
PACKAGES=()
for list in "$@"; do
    case "$list" in
        build) PACKAGES+=("${BUILD_PACKAGES[@]}") ;;
        runtime) PACKAGES+=("${RUNTIME_PACKAGES[@]}") ;;
        test) PACKAGES+=("${TEST_PACKAGES[@]}") ;;
        bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
        smoke) PACKAGES+=("${SMOKE_PACKAGES[@]}") ;;
        rabbitmq-image) PACKAGES+=("${RABBITMQ_IMAGE_PACKAGES[@]}") ;;
        kafka-peer-image) PACKAGES+=("${KAFKA_PEER_IMAGE_PACKAGES[@]}") ;;
        *) echo "install-deps: unknown list '$list'" \
                "(want build, runtime, test, bench, smoke, rabbitmq-image, kafka-peer-image)" >&2
           exit 2 ;;
    esac
done

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

# The console test runs puppeteer-core with node and npm. A machine may have
# them from elsewhere (a nodejs package that bundles npm conflicts with
# Debian's npm): install Debian's only when no npm is on the PATH.
for list in "$@"; do
    if [ "$list" = test ] && ! command -v npm >/dev/null 2>&1; then
        missing+=(nodejs npm)
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# rabbitmq-server's postinst starts the broker; keep it from running at
# install time in containers without an init system (tests start their own).
if [ ! -x /usr/sbin/policy-rc.d ] && [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    remove_policy=1
fi
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
if [ "${remove_policy:-0}" = 1 ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
