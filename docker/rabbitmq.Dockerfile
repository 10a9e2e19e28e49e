# RabbitMQ from Debian's rabbitmq-server package, for docker/compose.yaml
# (no public registry needed). Host networking: it listens on 127.0.0.1 only,
# ports from the environment (AMQP_PORT, RABBITMQ_DIST_PORT, ERL_EPMD_PORT).
ARG BASE=debian:12
FROM ${BASE}
COPY docker/install-deps.sh /tmp/install-deps.sh
RUN bash /tmp/install-deps.sh rabbitmq-image \
 && rm -rf /var/lib/apt/lists/* /tmp/install-deps.sh
COPY docker/rabbitmq-run.sh /usr/local/bin/rabbitmq-run
USER rabbitmq
ENV HOME=/var/lib/rabbitmq LANG=C.UTF-8 LC_ALL=C.UTF-8
VOLUME /var/lib/rabbitmq
HEALTHCHECK --interval=5s --timeout=3s --start-period=10s --retries=24 \
  CMD bash -c '</dev/tcp/127.0.0.1/"${AMQP_PORT:-5672}"' || exit 1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rabbitmq-run"]
