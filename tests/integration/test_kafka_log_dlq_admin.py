"""The admin API's dead letter calls on a Kafka-backed route
(docs/KAFKA-LOG.md), against librdkafka's mock cluster of 3 brokers, with
two gateways: messages refused by the partner (400) are dead-lettered to
the route's Kafka topic; either gateway lists them (read from the topic);
a purge on one is seen by the other; a redrive puts the rest back into the
route's log, each to the partition of its key, and once the partner works
they are delivered once, in order per key; a second redrive sends nothing."""

import json
import threading

from harness import SLUICE, Gateway, Sink, base_config, free_port, post_json, request, wait_until
from kafka_peer import KafkaBroker
from test_kafka_log import OPTIONS


class Switch:
    """The partner: answers 400 (a permanent failure) until fixed."""

    def __init__(self):
        self.fixed = threading.Event()
        self.sink = Sink(self._behaviour)

    def _behaviour(self, req):
        ok = self.fixed.is_set()
        req["answered"] = 200 if ok else 400
        return (200, "ok") if ok else (400, "rejected")

    def delivered(self):
        with self.sink.lock:
            return [json.loads(r["body"]) for r in self.sink.requests if r["answered"] == 200]


def config(bootstrap, admin_port, http_port, partner_url, partitions=2):
    """HTTP in -> a Kafka-backed log of `partitions` (topic orders.log, group
    orders, key $.k) -> the partner."""
    return base_config(admin_port=admin_port) + f"""
connectors:
  web:     {{ type: http_server, listen: "127.0.0.1:{http_port}" }}
  kafka:   {{ type: kafka, brokers: "{bootstrap}", options: {OPTIONS} }}
  partner: {{ type: http_client, base_url: "{partner_url}", timeout: 5s }}
routes:
  orders:
    from: {{ connector: web, path: /orders, methods: [POST], content_type: json }}
    key: "$.k"
    log: {{ connector: kafka, topic: orders.log, partitions: {partitions}, group: orders }}
    to:
      - {{ connector: partner }}
"""


def dlq(gw):
    st, body, _ = request("GET", gw.admin, "/v1/dlq/orders?limit=100", timeout=60)
    assert st == 200, (st, body)
    return json.loads(body)


def act(gw, what, obj):
    st, body, _ = request("POST", gw.admin, f"/v1/dlq/orders/{what}", json.dumps(obj).encode(),
                          {"content-type": "application/json"}, timeout=60)
    assert st == 200, (st, body)
    return json.loads(body)


def owned(gw):
    return [p["partition"] for p in gw.route("orders")["partitions"] if p["assigned"]]


def test_kafka_log_dead_letters_listed_purged_and_redriven_across_gateways():
    partner = Switch()
    broker = KafkaBroker(SLUICE, brokers=3)
    gws = []
    try:
        broker.create("orders.log", 2)
        broker.create("sluice.orders.dlq", 2)  # two partitions: positions are partition-aware
        broker.create("orders.log.idem", 1)
        ports = []
        for _ in range(2):
            admin, port = free_port(), free_port()
            gw = Gateway(config(broker.bootstrap, admin, port, partner.sink.url))
            gw.start(admin)
            gws.append(gw)
            ports.append(port)
        a, b = gws
        wait_until(lambda: sorted(owned(a) + owned(b)) == [0, 1], 60,
                   "the 2 partitions shared by the gateways", interval=0.5)
        sent = {}  # id -> body
        for s in range(8):
            body = {"k": f"k{s % 4}", "seq": s}
            st, got, _ = post_json(f"127.0.0.1:{ports[s % 2]}", "/orders", body)
            assert st == 202, (st, got)
            sent[json.loads(got)["id"]] = body
        wait_until(lambda: dlq(b)["pending"] == 8, 60, "8 dead letters listed by gateway B")
        listed = dlq(a)
        assert listed["topic"] == "sluice.orders.dlq", listed
        entries = listed["entries"]
        assert {e["id"] for e in entries} == set(sent), entries
        for e in entries:
            assert e["state"] == "pending" and e["status"] == 400, e
            assert json.loads(e["original_body"]) == sent[e["id"]], e
        assert len({e["offset"] for e in entries}) == 8, entries

        gone = next(i for i, body in sent.items() if body["seq"] == 5)
        assert act(a, "purge", {"ids": [gone]})["purged"] == 1
        after = dlq(b)  # the purge marker is read by the other gateway
        assert after["pending"] == 7, after
        assert [e["state"] for e in after["entries"] if e["id"] == gone] == ["purged"], after

        partner.fixed.set()
        answer = act(b, "redrive", {})
        assert answer["redriven"] == 7, answer
        want = sorted(body["seq"] for i, body in sent.items() if i != gone)
        wait_until(lambda: len(partner.delivered()) >= 7, 60, "the 7 redriven delivered")
        got = partner.delivered()
        assert sorted(d["seq"] for d in got) == want, got
        for k in range(4):
            mine = [d["seq"] for d in got if d["k"] == f"k{k}"]
            assert mine == sorted(mine), f"k{k} out of order: {mine}"
        final = dlq(a)
        assert final["pending"] == 0, final
        assert sorted(e["state"] for e in final["entries"]) == ["purged"] + ["redriven"] * 7
        assert act(a, "redrive", {})["redriven"] == 0  # nothing pending: nothing sent again
        # Each key's redriven copy went to the partition of its first append.
        parts = {}
        for line in broker.consume("orders.log", fmt="%k\t%p\n"):
            k, p = line.split("\t")
            parts.setdefault(k, set()).add(p)
        assert sum(1 for _ in broker.consume("orders.log", fmt="%o\n")) == 15, parts
        assert all(len(p) == 1 for p in parts.values()), parts
        for gw in gws:
            gw.stop()
    finally:
        for gw in gws:
            if gw.proc is not None:
                gw.stop()
            gw.cleanup()
        broker.close()
        partner.sink.close()
