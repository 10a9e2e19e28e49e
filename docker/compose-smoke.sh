#!/usr/bin/env bash
# The compose part of make docker-smoke (called by docker/smoke.sh with its
# private engine's SOCK and scratch TMP): brings docker/compose.yaml up with
# docker-compose on free loopback ports, POSTs an order and reads it back
# from the Kafka peer: HTTP -> sluice -> RabbitMQ -> sluice -> Kafka.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${SOCK:?}" "${TMP:?}"
T0=${T0:-$(date +%s)}
say() { printf '[smoke %4ss] compose: %s\n' "$(($(date +%s) - T0))" "$*"; }
fail() {
    printf '[smoke %4ss] FAIL: compose: %s\n' "$(($(date +%s) - T0))" "$*" >&2
    exit 1
}
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
export DOCKER_HOST="unix://$SOCK" DOCKER_CONFIG="$TMP/docker-config" DOCKER_BUILDKIT=0
export COMPOSE_DOCKER_CLI_BUILD=0 COMPOSE_INTERACTIVE_NO_CLI=1
export SLUICE_HTTP_PORT=$(free_port) SLUICE_ADMIN_PORT=$(free_port) AMQP_PORT=$(free_port)
export KAFKA_PORT=$(free_port) RABBITMQ_DIST_PORT=$(free_port) ERL_EPMD_PORT=$(free_port)
export SLUICE_ADMIN_TOKEN=compose-$RANDOM
PROJECT=sluicesmoke$$
DC() { docker-compose -p "$PROJECT" -f "$ROOT/docker/compose.yaml" "$@" </dev/null; }

down() {
    local rc=$?
    set +e
    if [ $rc -ne 0 ]; then
        DC ps
        DC logs --no-color --tail 30 2>&1 | sed 's/^/    /'
    fi
    DC down -v -t 40 >/dev/null 2>&1
    exit $rc
}
trap down EXIT

DC config -q || fail "docker-compose config rejects docker/compose.yaml"
# The gateway image is the one smoke.sh just built from the same Dockerfile.
/usr/bin/docker tag "${IMAGE:-sluice:smoke}" sluice:0.1.0 </dev/null
say "building the peer images (rabbitmq, kafka)"
# With the docker CLI, not `docker-compose build`: docker-py's build context
# hashes differently, which would miss the cache smoke.sh's builds left. The
# tags are compose.yaml's (up --no-build fails if they ever differ).
for img in rabbitmq:sluice-rabbitmq:3.10.8-deb12 kafka-peer:sluice-kafka-peer:2.0.2-deb12; do
    (cd "$ROOT" && /usr/bin/docker build --network host -f "docker/${img%%:*}.Dockerfile" \
        -t "${img#*:}" . </dev/null) >>"$TMP/compose-build.log" 2>&1 ||
        { tail -n 30 "$TMP/compose-build.log" >&2; fail "building ${img#*:} failed"; }
done
cp "$TMP/compose-build.log" "${STATE:-$TMP}/last-compose-build.log" 2>/dev/null || true
say "peer images built ($(grep -c '^Step ' "$TMP/compose-build.log") steps, $(grep -c 'Using cache' "$TMP/compose-build.log") from the cache)"
say "up: ingest :$SLUICE_HTTP_PORT, admin :$SLUICE_ADMIN_PORT, amqp :$AMQP_PORT, kafka :$KAFKA_PORT"
DC up -d --no-build >"$TMP/compose-up.log" 2>&1 || { cat "$TMP/compose-up.log" >&2; fail "up failed"; }
nets=$(/usr/bin/docker network ls --format '{{.Name}}' | sort | tr '\n' ' ')
[ "$nets" = "host none " ] || fail "compose created networks: '$nets'"
end=$(($(date +%s) + 90))
until curl -fsS "http://127.0.0.1:$SLUICE_ADMIN_PORT/health" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$end" ] || fail "the gateway's /health did not answer within 90 s"
    sleep 0.5
done
say "all healthy: $(DC ps --services --filter status=running | tr '\n' ' ')"
nonce=compose-$RANDOM$RANDOM
code=$(curl -sS -o "$TMP/compose-post.json" -w '%{http_code}' -XPOST \
    "http://127.0.0.1:$SLUICE_HTTP_PORT/orders" -H 'content-type: application/json' \
    -d "{\"customer\":{\"id\":\"c7\"},\"nonce\":\"$nonce\"}")
[ "$code" = 202 ] || fail "POST /orders answered $code: $(cat "$TMP/compose-post.json")"
say "POST /orders: 202"
got=$(DC exec -T kafka timeout 30 kcat -C -b "127.0.0.1:$KAFKA_PORT" -t orders -o beginning \
    -c 1 -f '%k %s\n' 2>"$TMP/kcat.err") || { cat "$TMP/kcat.err" >&2; fail "kcat read nothing in 30 s"; }
grep -q "$nonce" <<<"$got" || fail "Kafka topic orders holds '$got', not the order"
say "read back from Kafka with kcat: $got"
t=$(date +%s)
DC stop -t 40 sluice >/dev/null 2>&1
code=$(/usr/bin/docker inspect -f '{{.State.ExitCode}}' "$(DC ps -q sluice)")
[ "$code" = 0 ] || fail "the gateway exited $code on stop"
say "gateway stopped with exit code 0 in $(($(date +%s) - t)) s"
