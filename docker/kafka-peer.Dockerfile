# The project's Kafka-protocol test broker (tests/peers/kafka_broker.c:
# librdkafka's mock cluster) as an image for docker/compose.yaml. The mock
# cluster picks its own loopback port; socat gives it a fixed one (KAFKA_PORT,
# default 9092). Clients must share its network (host networking): the
# metadata it returns names 127.0.0.1 and that port. Not a real Kafka: no
# persistence, for tests and demos only.
ARG BASE=debian:12
# The same first steps as docker/Dockerfile's build stage: its layers are reused.
FROM ${BASE} AS build
WORKDIR /src
COPY docker/install-deps.sh docker/install-deps.sh
RUN bash docker/install-deps.sh build && rm -rf /var/lib/apt/lists/*
COPY tests/peers/kafka_broker.c /src/kafka_broker.c
RUN gcc -O2 -Wall -o /src/kafka_broker /src/kafka_broker.c $(pkg-config --cflags --libs rdkafka)

FROM ${BASE}
COPY docker/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh kafka-peer-image \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh \
 && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin kafkapeer
COPY --from=build /src/kafka_broker /usr/local/bin/kafka_broker
COPY docker/kafka-peer-run.sh /usr/local/bin/kafka-peer-run
USER kafkapeer
HEALTHCHECK --interval=3s --timeout=5s --start-period=3s --retries=20 \
  CMD kcat -L -b "127.0.0.1:${KAFKA_PORT:-9092}" -m 3 >/dev/null 2>&1 || exit 1
ENTRYPOINT ["/usr/local/bin/kafka-peer-run"]
