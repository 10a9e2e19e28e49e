#!/bin/sh
# Entry point of docker/rabbitmq.Dockerfile: rabbitmq-server on 127.0.0.1,
# ports from the environment, no plugins, logs to stdout.
set -e
export RABBITMQ_NODENAME="${RABBITMQ_NODENAME:-rabbit@localhost}"
export RABBITMQ_USE_LONGNAME=false
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT="${AMQP_PORT:-5672}"
export RABBITMQ_DIST_PORT="${RABBITMQ_DIST_PORT:-25672}"
export ERL_EPMD_PORT="${ERL_EPMD_PORT:-4369}"
export RABBITMQ_ENABLED_PLUGINS=""
export RABBITMQ_LOGS=-
exec /usr/lib/rabbitmq/bin/rabbitmq-server
