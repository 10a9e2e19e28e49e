"""A Kafka-backed route (docs/KAFKA-LOG.md) whose output's breaker opens,
against librdkafka's mock cluster of 3 brokers: while the breaker is open
the gateway stops fetching the partitions whose worker waits on it (the
admin route view says `fetch_paused: true`, `fetch_paused_by: "breaker"`,
and records appended meanwhile are not fetched: `buffered` does not grow),
the group does not rebalance (the partitions stay assigned), and once the
partner is back every message is delivered once, in order per key."""

import json
import time

from harness import (SLUICE, Gateway, Sink, base_config, free_port, metric, post_json,
                     request, wait_until)
from kafka_peer import KafkaBroker
from test_kafka_log import OPTIONS, assigned

FETCH_WINDOW_S = 2  # an unpaused consumer fetches a new record within fetch.wait.max.ms (0.5 s)


def breaker_route_config(bootstrap, admin_port, http_port, partner_port):
    return base_config(admin_port=admin_port) + f"""
connectors:
  web:   {{ type: http_server, listen: "127.0.0.1:{http_port}" }}
  kafka: {{ type: kafka, brokers: "{bootstrap}", options: {OPTIONS} }}
  partner:
    type: http_client
    base_url: "http://127.0.0.1:{partner_port}"
    timeout: 300ms
    breaker: {{ failure_rate: 50%, min_calls: 2, window: 10, open_for: 60s, max_open_for: 60s, half_open_calls: 1 }}
routes:
  orders:
    from: {{ connector: web, path: /orders, methods: [POST], content_type: json }}
    key: "$.k"
    log: {{ connector: kafka, topic: orders.log, partitions: 2, group: orders }}
    to:
      - {{ connector: partner, path: /p }}
    on_error:
      retry: {{ max_attempts: 1000, initial_backoff: 10ms, max_backoff: 50ms }}
"""


def post(port, n0, n):
    for s in range(n0, n0 + n):
        st, body, _ = post_json(f"127.0.0.1:{port}", "/orders", {"k": f"k{s % 4}", "seq": s})
        assert st == 202, (st, body)


def parts(gw):
    return gw.route("orders")["partitions"]


def half_opens(gw):
    return metric(gw.metrics(), "sluice_breaker_transitions_total", connector="partner",
                  to="half_open")


def test_kafka_log_breaker_pauses_fetching_and_loses_nothing():
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port, partner_port = free_port(), free_port(), free_port()
    gw = Gateway(breaker_route_config(broker.bootstrap, admin, port, partner_port))
    sink = None
    try:
        broker.create("orders.log", 2)
        broker.create("orders.log.idem", 1)
        gw.start(admin)
        wait_until(lambda: len(assigned(gw)) == 2, 60, "both partitions assigned", interval=0.5)
        assert all(p["fetch_paused"] is False for p in parts(gw)), parts(gw)
        post(port, 0, 20)  # the partner is down: nothing listens on its port
        wait_until(lambda: metric(gw.metrics(), "sluice_breaker_state", connector="partner") == 2,
                   60, "the breaker to open")
        wait_until(lambda: all(p["fetch_paused_by"] == "breaker" for p in parts(gw)), 30,
                   "both partitions' fetching paused for the breaker")
        h0 = half_opens(gw)
        before = {p["partition"]: p["buffered"] for p in parts(gw)}
        post(port, 20, 20)  # 202: in Kafka, 10 in each partition
        time.sleep(FETCH_WINDOW_S)  # a window in which a running fetch would take them
        during = parts(gw)
        # Read after the view: no half-open in between (open_for is 60 s), so
        # the hold was never lifted.
        assert half_opens(gw) == h0 == 0, h0
        assert all(p["fetch_paused"] and p["assigned"] for p in during), during
        assert {p["partition"]: p["buffered"] for p in during} == before, (before, during)
        sink = Sink(port=partner_port)
        st, body, _ = request("POST", gw.admin, "/v1/breakers/partner/reset")  # closes it
        assert st == 200, (st, body)
        wait_until(lambda: sink.count() >= 40, 90, "the 40 messages delivered")
        wait_until(lambda: all(p["lag"] == 0 for p in parts(gw)), 30, "everything committed")
        got = [json.loads(r["body"]) for r in sink.requests]
        seqs = [g["seq"] for g in got]
        assert sorted(seqs) == list(range(40)), f"not exactly once: {sorted(seqs)}"
        for k in range(4):
            mine = [g["seq"] for g in got if g["k"] == f"k{k}"]
            assert mine == sorted(mine), f"k{k} out of order: {mine}"
        after = parts(gw)
        assert all(p["assigned"] and not p["fetch_paused"] for p in after), after
        assert gw.log_tail(100000).count("): assigned ") == 1, "the group rebalanced"
        gw.stop()
    finally:
        if sink:
            sink.close()
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()
