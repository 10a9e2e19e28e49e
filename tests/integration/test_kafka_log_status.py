"""Message status across the gateways of a Kafka-backed route
(docs/KAFKA-LOG.md, "Message status across gateways"), against librdkafka's
mock cluster of 3 brokers: with two gateways and a log of one partition,
messages are posted to the gateway that does not hold the partition, so the
other one delivers them; GET /v1/messages/ID on both gateways must then
answer the outcome (`delivered`, or `dead_lettered` with the partner's
error for a message the partner refused with 400). Whichever gateway's
worker finished a message, the other one knows the outcome only through the
shared status topic."""

import json

from harness import (SLUICE, Gateway, Sink, free_port, post_json, request,
                     wait_until)
from kafka_peer import KafkaBroker
from test_kafka_log import assigned
from test_kafka_log_dlq_admin import config


def partner(req):
    return (400, "no such customer") if json.loads(req["body"]).get("bad") else (200, "ok")


def status(gw, mid):
    """GET /v1/messages/ID on gw: the state, or the HTTP status when not 200."""
    st, body, _ = request("GET", gw.admin, f"/v1/messages/{mid}")
    return json.loads(body) if st == 200 else {"state": st}


def test_kafka_log_message_status_reads_the_same_on_every_gateway():
    broker = KafkaBroker(SLUICE, brokers=3)
    sink = Sink(partner)
    gws = []
    try:
        broker.create("orders.log", 1)
        broker.create("orders.log.idem", 1)
        broker.create("orders.log.status", 1)
        broker.create("sluice.orders.dlq", 1)
        for _ in range(2):
            admin, port = free_port(), free_port()
            gw = Gateway(config(broker.bootstrap, admin, port, sink.url, partitions=1))
            gw.start(admin)
            gw.http = f"127.0.0.1:{port}"
            gws.append(gw)
        wait_until(lambda: len([g for g in gws if assigned(g)]) == 1, 60,
                   "the one partition held by one gateway", interval=0.5)
        taker = next(g for g in gws if not assigned(g))
        ids = {}
        for name, body in (("good", {"k": "c1"}), ("bad", {"k": "c1", "bad": True})):
            st, out, _ = post_json(taker.http, "/orders", body)
            assert st == 202, (st, out)
            ids[name] = json.loads(out)["id"]

        def outcomes():
            return [(status(g, ids["good"])["state"], status(g, ids["bad"])["state"]) for g in gws]

        wait_until(lambda: outcomes() == [("delivered", "dead_lettered")] * 2, 30,
                   "both outcomes on both gateways", interval=0.2)
        for g in gws:
            bad = status(g, ids["bad"])
            assert "400" in (bad["last_error"] or ""), bad
            good = status(g, ids["good"])
            assert good["partition"] == 0 and good["offset"] >= 0, good
        for gw in gws:
            gw.stop()
    finally:
        for gw in gws:
            gw.cleanup()
        sink.close()
        broker.close()
