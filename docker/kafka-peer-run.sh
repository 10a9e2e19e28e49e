#!/bin/bash
# Entry point of docker/kafka-peer.Dockerfile: starts kafka_broker, creates
# the topics in KAFKA_TOPICS ("name:partitions ..."), then forwards the fixed
# port KAFKA_PORT to the mock cluster's bootstrap address. Ends on SIGTERM.
set -euo pipefail
PORT="${KAFKA_PORT:-9092}"
coproc BROKER { exec kafka_broker -n 1; }
read -r word bootstrap <&"${BROKER[0]}"
[ "$word" = BOOTSTRAP ] || { echo "kafka-peer: broker said '$word $bootstrap'" >&2; exit 1; }
for t in ${KAFKA_TOPICS:-}; do
    echo "create ${t%%:*} ${t##*:}" >&"${BROKER[1]}"
    read -r answer <&"${BROKER[0]}"
    [ "$answer" = ok ] || { echo "kafka-peer: create $t: $answer" >&2; exit 1; }
done
echo "kafka-peer: mock cluster at $bootstrap, listening on 127.0.0.1:$PORT; topics: ${KAFKA_TOPICS:-}"
socat TCP-LISTEN:"$PORT",bind=127.0.0.1,reuseaddr,fork TCP:"${bootstrap%%,*}" &
SOCAT=$!
trap 'kill $SOCAT; echo quit >&"${BROKER[1]}"; wait' TERM INT
wait $SOCAT
