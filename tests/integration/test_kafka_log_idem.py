"""Idempotency-Key dedupe across the gateways of a Kafka-backed route
(docs/KAFKA-LOG.md, "Idempotency-Keys across gateways"), against
librdkafka's mock cluster of 3 brokers: a key answered by gateway A is
answered the same by gateway B, and by a gateway C started afterwards (it
reads the shared topic back before it listens), and the partner receives the
message once."""

import json

from harness import SLUICE, Gateway, free_port, metric, post_json, wait_until
from kafka_peer import KafkaBroker
from test_kafka_log import arrivals, assigned, log_route_config


def idem_records(gw):
    """Records gw has read from the route's shared Idempotency-Key topic."""
    return metric(gw.metrics(), "sluice_kafka_log_idem_records_total", route="orders")


def committed(gws):
    """The route's committed offset, as the gateway that holds its one
    partition reports it (-1 while none does)."""
    return max([p["committed"] for gw in gws for p in gw.route("orders")["partitions"]
                if p["assigned"]] or [-1])


def start_gateway(broker, gws):
    admin, port = free_port(), free_port()
    gw = Gateway(log_route_config(broker.bootstrap, admin, port, partitions=1))
    gw.start(admin)
    gws.append(gw)
    return gw, f"127.0.0.1:{port}"


def test_kafka_log_idempotency_key_repeated_on_another_gateway_gets_the_first_answer():
    broker = KafkaBroker(SLUICE, brokers=3)
    gws = []
    try:
        # One log partition: the partner sees the route's messages in log
        # order, so a duplicate appended by B would arrive before the marker.
        broker.create("orders.log", 1)
        broker.create("orders.log.idem", 2)
        broker.create("out", 1)
        a, a_http = start_gateway(broker, gws)
        b, b_http = start_gateway(broker, gws)
        wait_until(lambda: assigned(a) or assigned(b), 60, "the partition assigned", interval=0.5)
        key = {"Idempotency-Key": "order-4711"}
        st, body, h = post_json(a_http, "/orders", {"k": "c1", "seq": 1}, key)
        assert st == 202, (st, body)
        first = json.loads(body)["id"]
        # A wrote a claim and the answer; B has read both.
        wait_until(lambda: idem_records(b) >= 2, 30, "B reading A's Idempotency-Key records")
        st, body, h = post_json(b_http, "/orders", {"k": "c1", "seq": 1}, key)
        assert st == 202 and json.loads(body)["id"] == first, (st, body, first)
        assert h.get("idempotent-replayed") == "true", h
        # The first message delivered and committed before C joins: the
        # rebalance C causes may deliver again what was not committed yet
        # (at least once, and the mock refuses commits during a rebalance),
        # which is not what this test is about.
        wait_until(lambda: committed(gws) >= 1, 60, "the first message delivered and committed")
        # A gateway started later has read the key back before it listens.
        c, c_http = start_gateway(broker, gws)
        st, body, h = post_json(c_http, "/orders", {"k": "c1", "seq": 1}, key)
        assert st == 202 and json.loads(body)["id"] == first, (st, body, first)
        st, body, _ = post_json(b_http, "/orders", {"k": "c1", "seq": 2})  # the marker
        assert st == 202, (st, body)
        wait_until(lambda: ("c1", 2) in arrivals(broker), 60, "the marker at the partner")
        got = arrivals(broker)
        assert got == [("c1", 1), ("c1", 2)], got
        for gw in gws:
            gw.stop()
    finally:
        for gw in gws:
            gw.cleanup()
        broker.close()
