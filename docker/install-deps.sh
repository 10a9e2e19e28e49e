#!/usr/bin/env bash
# Installs every Debian 12 package that Sluice needs to build, test and run
# its test peers. Idempotent: packages already present are not fetched again.
# This is the only place the list lives; the Makefile, .ci/run and the
# Dockerfile all call it.
set -euo pipefail

PACKAGES=(
    # build
    build-essential cmake pkg-config git ca-certificates
    # libraries
    libmicrohttpd-dev libcurl4-openssl-dev librabbitmq-dev librdkafka-dev
    libjansson-dev libxml2-dev liblua5.4-dev libyaml-dev
    # tests and tools
    libcmocka-dev curl kcat wrk python3 procps
    clang                     # the libFuzzer targets (tests/fuzz, make fuzz)
    fuse3 libfuse3-dev        # lazyfs, the power-cut tests' file system
    chromium nodejs npm       # the console test: headless Chromium driven by puppeteer-core
    # peers
    rabbitmq-server
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
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
