#!/usr/bin/env bash
# make docker-smoke: builds the image with a Docker engine of its own and
# checks that the gateway works in it. Starts a private dockerd (own
# data-root, exec-root, pidfile and socket; no bridge, no iptables: every
# container uses --network host on loopback), makes a debian:12 base image
# with debootstrap from this machine's apt mirror when it is missing, builds
# docker/Dockerfile, runs `sluice version`, starts the gateway, POSTs an
# order, checks /health, /metrics, the delivered files and the HEALTHCHECK,
# stops it with `docker stop` (exit code 0), and stops only its own dockerd.
#
# Environment: SLUICE_SMOKE_STATE (default /var/lib/sluice-smoke: the
# engine's data-root and the base image tarball, kept between runs),
# SLUICE_SMOKE_MIRROR (default: the first Debian mirror in /etc/apt),
# SLUICE_SMOKE_HTTP_PORT / SLUICE_SMOKE_ADMIN_PORT (default: free ports),
# SLUICE_SMOKE_COMPOSE=0 to skip the compose part.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SLUICE_SMOKE_STATE:-/var/lib/sluice-smoke}
RUNDIR=/run/sluice-smoke
SOCK=$RUNDIR/docker.sock
PIDFILE=$RUNDIR/dockerd.pid
IMAGE=sluice:smoke
BASE_IMAGE=debian:12
LABEL=sluice-smoke
T0=$(date +%s)
DOCKERD_PID=""
TMP=""

say() { printf '[smoke %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() {
    printf '[smoke %4ss] FAIL: %s\n' "$(($(date +%s) - T0))" "$*" >&2
    exit 1
}

# Root is needed for dockerd and debootstrap: rerun through sudo if need be.
if [ "$(id -u)" -ne 0 ]; then
    sudo -n true 2>/dev/null || fail "needs root (or sudo without a password) to run its own dockerd"
    exec sudo -n -E bash "$0" "$@"
fi
# The Debian engine's client, talking only to our socket, with a config dir
# of its own (no credential helpers, no contexts from the user's ~/.docker).
D() { env DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$TMP/docker-config" \
    DOCKER_BUILDKIT=0 /usr/bin/docker "$@" </dev/null; }

cleanup() {
    local rc=$?
    set +e
    if [ -n "$DOCKERD_PID" ]; then
        if [ $rc -ne 0 ]; then
            say "containers at failure:"
            D ps -a --filter "label=$LABEL" --format '{{.Names}} {{.Status}}'
            for c in $(D ps -aq --filter "label=$LABEL"); do
                say "logs of $c (last 40 lines):"
                D logs --tail 40 "$c" 2>&1 | sed 's/^/    /'
            done
        fi
        ids=$(D ps -aq --filter "label=$LABEL")
        [ -n "$ids" ] && D rm -f $ids >/dev/null
        say "stopping our dockerd (pid $DOCKERD_PID)"
        kill -TERM "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 1 150); do
            kill -0 "$DOCKERD_PID" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$DOCKERD_PID" 2>/dev/null; then
            say "dockerd $DOCKERD_PID did not stop in 30 s; killing it"
            kill -KILL "$DOCKERD_PID"
        fi
    fi
    [ -n "$TMP" ] && rm -rf "$TMP"
    if [ $rc -eq 0 ]; then
        say "PASS in $(($(date +%s) - T0)) s"
    else
        say "failed (exit $rc) after $(($(date +%s) - T0)) s; dockerd log: $STATE/dockerd.log"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $1 seconds for the command in "${@:2}" to succeed.
wait_for() {
    local secs=$1
    shift
    local end=$(($(date +%s) + secs))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

install_packages() {
    say "packages: docker.io, debootstrap, docker-compose (installed when missing)"
    bash "$ROOT/docker/install-deps.sh" smoke
}

# Stops a dockerd left by an earlier run of this script (same pidfile and
# data-root), never any other engine.
stop_stale_engine() {
    [ -f "$PIDFILE" ] || return 0
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        tr '\0' ' ' </proc/"$pid"/cmdline | grep -q -- "--data-root $STATE/docker"; then
        say "an earlier smoke run left dockerd $pid; stopping it"
        kill -TERM "$pid"
        wait_for 30 bash -c "! kill -0 $pid" || fail "stale dockerd $pid does not stop"
    fi
    rm -f "$PIDFILE"
}

start_engine() {
    if [ -S /var/run/docker.sock ] || pgrep -x dockerd >/dev/null; then
        say "another Docker engine runs on this machine; leaving it alone (ours: $SOCK)"
    fi
    mkdir -p "$STATE/docker" "$RUNDIR/exec"
    stop_stale_engine
    printf '%s\n' '{"bridge": "none", "iptables": false, "ip-forward": false, "ip-masq": false}' |
        tee "$RUNDIR/daemon.json" >/dev/null
    say "starting our dockerd (socket $SOCK, data-root $STATE/docker)"
    setsid /usr/sbin/dockerd --config-file "$RUNDIR/daemon.json" \
        --data-root "$STATE/docker" --exec-root "$RUNDIR/exec" --pidfile "$PIDFILE" \
        --host "unix://$SOCK" >"$STATE/dockerd.log" 2>&1 </dev/null &
    DOCKERD_PID=$!
    if ! wait_for 60 D version; then
        tail -n 20 "$STATE/dockerd.log" >&2
        fail "our dockerd did not answer on $SOCK within 60 s"
    fi
    # $! is the sudo/setsid wrapper when not root; the pidfile has dockerd.
    DOCKERD_PID=$(cat "$PIDFILE")
    local nets
    nets=$(D network ls --format '{{.Name}}' | sort | tr '\n' ' ')
    [ "$nets" = "host none " ] || fail "our dockerd has networks '$nets' (want only host and none)"
    say "dockerd $DOCKERD_PID up: $(D version --format 'server {{.Server.Version}}')"
}

# The first Debian mirror this machine's apt uses (never a host of our own).
apt_mirror() {
    if [ -n "${SLUICE_SMOKE_MIRROR:-}" ]; then
        echo "$SLUICE_SMOKE_MIRROR"
        return
    fi
    cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
        2>/dev/null | grep -E '^[[:space:]]*(URIs:|deb )' | grep -oE 'https?://[^[:space:]]+' |
        grep -v -- '-security' | grep -E '/debian/?$' | head -n1 || true
}

base_image() {
    if D image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
        say "base image $BASE_IMAGE present"
        return
    fi
    local tarball=$STATE/debian-12-minbase.tar
    if [ ! -s "$tarball" ]; then
        local mirror
        mirror=$(apt_mirror)
        [ -n "$mirror" ] || fail "no Debian mirror found in /etc/apt/sources.list*"
        say "debootstrap --variant=minbase bookworm from $mirror (once per machine)"
        debootstrap --variant=minbase bookworm "$TMP/rootfs" "$mirror" \
            >"$TMP/debootstrap.log" 2>&1 </dev/null ||
            { tail -n 20 "$TMP/debootstrap.log" >&2; fail "debootstrap failed"; }
        rm -rf "$TMP"/rootfs/var/cache/apt/archives/*.deb "$TMP"/rootfs/var/lib/apt/lists/*
        tar -C "$TMP/rootfs" --numeric-owner -cf "$tarball.part" .
        mv "$tarball.part" "$tarball"
    fi
    say "importing $tarball as $BASE_IMAGE"
    cat "$tarball" | env DOCKER_HOST="unix://$SOCK" \
        DOCKER_CONFIG="$TMP/docker-config" /usr/bin/docker import \
        --change 'CMD ["bash"]' - "$BASE_IMAGE" >/dev/null
}

build_image() {
    say "building $IMAGE from docker/Dockerfile"
    local t=$(date +%s)
    # The build stage is tagged too, so that `image prune` (old images) keeps
    # its layers as the cache of the next run and of the Kafka peer image.
    if ! (cd "$ROOT" && D build --network host -f docker/Dockerfile --target build \
        -t sluice-build:smoke . && D build --network host -f docker/Dockerfile -t "$IMAGE" .) \
        >"$TMP/build.log" 2>&1; then
        tail -n 40 "$TMP/build.log" >&2
        fail "docker build failed"
    fi
    cp "$TMP/build.log" "$STATE/last-build.log"
    D image prune -f >/dev/null
    local size
    size=$(D image inspect -f '{{.Size}}' "$IMAGE")
    say "built $IMAGE in $(($(date +%s) - t)) s ($(grep -c '^Step ' "$TMP/build.log") steps, $(grep -c 'Using cache' "$TMP/build.log") from the cache): $((size / 1000000)) MB ($size bytes)"
}

check_version() {
    local out
    out=$(D run --rm --network host --label "$LABEL" "$IMAGE" version) ||
        fail "sluice version exited non-zero in the image"
    grep -q '^sluice ' <<<"$out" || fail "sluice version printed: $out"
    say "version: $(head -n1 <<<"$out")"
    local user
    user=$(D run --rm --network host --label "$LABEL" --entrypoint id "$IMAGE" -un)
    [ "$user" = sluice ] || fail "the image runs as '$user', want sluice"
}

start_gateway() {
    HTTP_PORT=${SLUICE_SMOKE_HTTP_PORT:-$(free_port)}
    ADMIN_PORT=${SLUICE_SMOKE_ADMIN_PORT:-$(free_port)}
    TOKEN=smoke-$RANDOM$RANDOM
    # The volume is a host directory owned by the image's user (uid 10001).
    mkdir -p "$TMP/data"
    chown 10001:10001 "$TMP/data"
    say "starting the gateway: ingest 127.0.0.1:$HTTP_PORT, admin 127.0.0.1:$ADMIN_PORT"
    CID=$(D run -d --name "sluice-smoke-$$" --label "$LABEL" --network host \
        -e SLUICE_HTTP_LISTEN="127.0.0.1:$HTTP_PORT" \
        -e SLUICE_ADMIN_LISTEN="127.0.0.1:$ADMIN_PORT" -e SLUICE_ADMIN_TOKEN="$TOKEN" \
        -v "$TMP/data:/sluice/data" --stop-timeout 40 "$IMAGE")
    local end=$(($(date +%s) + 30))
    until curl -fsS "http://127.0.0.1:$ADMIN_PORT/health" >/dev/null 2>&1; do
        [ "$(D inspect -f '{{.State.Running}}' "$CID")" = true ] ||
            fail "the gateway container exited ($(D inspect -f '{{.State.ExitCode}}' "$CID")) before /health answered"
        [ "$(date +%s)" -lt "$end" ] || fail "GET /health did not answer 200 within 30 s"
        sleep 0.2
    done
    say "GET /health: $(curl -sS "http://127.0.0.1:$ADMIN_PORT/health")"
}

post_and_check() {
    local nonce=smoke-$RANDOM$RANDOM code
    code=$(curl -sS -o "$TMP/post.json" -w '%{http_code}' -XPOST \
        "http://127.0.0.1:$HTTP_PORT/orders" -H 'content-type: application/json' \
        -d "{\"customer\":{\"id\":\"c1\"},\"total\":12.5,\"nonce\":\"$nonce\"}")
    [ "$code" = 202 ] || fail "POST /orders answered $code: $(cat "$TMP/post.json")"
    local id
    id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$TMP/post.json")
    say "POST /orders: 202 $(cat "$TMP/post.json")"
    wait_for 20 grep -q "$nonce" "$TMP/data/out/orders.jsonl" ||
        fail "the order did not reach /sluice/data/out/orders.jsonl within 20 s"
    wait_for 20 grep -q "$nonce" "$TMP/data/out/audit.jsonl" ||
        fail "the order did not reach /sluice/data/out/audit.jsonl within 20 s"
    say "delivered to orders.jsonl and audit.jsonl (written by uid $(stat -c %u "$TMP/data/out/orders.jsonl"))"
    [ "$(stat -c %u "$TMP/data/out/orders.jsonl")" = 10001 ] || fail "output not owned by the sluice user"
    code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/metrics")
    [ "$code" = 401 ] || fail "/metrics without the token answered $code (want 401: token from env)"
    curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$ADMIN_PORT/metrics" \
        >"$TMP/metrics" || fail "GET /metrics with the token failed"
    grep -qE '^sluice_messages_in_total\{route="orders"\} 1$' "$TMP/metrics" ||
        fail "/metrics lacks sluice_messages_in_total{route=\"orders\"} 1"
    say "/metrics: $(grep -E '^sluice_messages_in_total\{route="orders"\}' "$TMP/metrics")"
    wait_for 20 bash -c "curl -fsS -H 'Authorization: Bearer $TOKEN' \
        http://127.0.0.1:$ADMIN_PORT/v1/messages/$id | grep -q '\"state\":\"delivered\"'" ||
        fail "message $id is not 'delivered' in the admin API"
    say "GET /v1/messages/$id: delivered"
}

check_healthcheck() {
    wait_for 40 bash -c "[ \"\$(DOCKER_HOST=unix://$SOCK DOCKER_CONFIG=$TMP/docker-config \
        /usr/bin/docker inspect -f '{{.State.Health.Status}}' $CID)\" = healthy ]" ||
        fail "HEALTHCHECK did not report healthy within 40 s"
    say "HEALTHCHECK: healthy"
}

stop_gateway() {
    local t=$(date +%s) code
    D stop -t 40 "$CID" >/dev/null || fail "docker stop failed"
    code=$(D inspect -f '{{.State.ExitCode}}' "$CID")
    [ "$code" = 0 ] || fail "the gateway exited $code after docker stop (want 0)"
    say "docker stop: exit code 0 after $(($(date +%s) - t)) s"
    if D logs "$CID" 2>&1 | grep -q '"level":"error"'; then
        D logs "$CID" 2>&1 | grep '"level":"error"' | head -n 5 >&2
        fail "the gateway logged errors"
    fi
    D rm "$CID" >/dev/null
}

main() {
    exec 9>>/tmp/sluice-smoke.lock
    flock -w 900 9 || fail "another smoke run holds /tmp/sluice-smoke.lock"
    install_packages
    TMP=$(mktemp -d /tmp/sluice-smoke.XXXXXX)
    mkdir -p "$TMP/docker-config"
    start_engine
    base_image
    build_image
    check_version
    start_gateway
    post_and_check
    check_healthcheck
    stop_gateway
    if [ "${SLUICE_SMOKE_COMPOSE:-1}" = 1 ] && [ -x "$ROOT/docker/compose-smoke.sh" ]; then
        SOCK=$SOCK TMP=$TMP T0=$T0 IMAGE=$IMAGE STATE=$STATE bash "$ROOT/docker/compose-smoke.sh" || fail "compose smoke failed"
    fi
}

main "$@"
