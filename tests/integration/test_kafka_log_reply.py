"""A route's log on Kafka (docs/KAFKA-LOG.md), against librdkafka's mock
cluster of 3 brokers: `reply: sync` answered when the request arrives on one
gateway and its partition is worked on by another (the answer travels over
the replies topic), and dead letters produced to the route's Kafka dead
letter topic, with the original body and the failure in headers."""

import json
import re
import threading

from harness import SLUICE, Gateway, Sink, base_config, free_port, post_json, wait_until
from kafka_peer import KafkaBroker

OPTIONS = (
    '{ session.timeout.ms: "6000", heartbeat.interval.ms: "500", '
    'topic.metadata.refresh.interval.ms: "1000" }'
)
PARTITIONS = 6


def sync_config(bootstrap, admin_port, http_port):
    return base_config(admin_port=admin_port) + f"""
connectors:
  web:   {{ type: http_server, listen: "127.0.0.1:{http_port}" }}
  kafka: {{ type: kafka, brokers: "{bootstrap}", options: {OPTIONS} }}
routes:
  orders:
    from: {{ connector: web, path: /orders, methods: [POST], content_type: json,
            reply: sync, sync_timeout: 20s }}
    key: "$.k"
    log: {{ connector: kafka, topic: orders.log, partitions: {PARTITIONS}, group: orders }}
    steps:
      - json_to_xml: {{ root: doc, declaration: false }}
    to:
      - {{ connector: kafka, topic: out }}
"""


def headers_of(h):
    """kcat's %h ('k1=v1,k2=v2') into a dict, where values may hold commas
    (not followed by a header name and '=', as in json.dumps output)."""
    return dict(part.partition("=")[::2] for part in re.split(r",(?=[a-z][a-z0-9-]*=)", h))


def assigned(gw):
    return sorted(p["partition"] for p in gw.route("orders")["partitions"] if p["assigned"])


def test_kafka_log_sync_reply_answered_when_another_gateway_serves_the_partition():
    broker = KafkaBroker(SLUICE, brokers=3)
    gws = []
    try:
        broker.create("orders.log", PARTITIONS)
        broker.create("out", 1)
        broker.create("sluice.replies", 3)
        broker.create("orders.log.idem", 1)  # the shared Idempotency-Keys
        ports = []
        for _ in range(2):
            admin, port = free_port(), free_port()
            gw = Gateway(sync_config(broker.bootstrap, admin, port))
            gw.start(admin)
            gws.append(gw)
            ports.append(port)
        a, b = gws
        wait_until(
            lambda: sorted(assigned(a) + assigned(b)) == list(range(PARTITIONS))
            and assigned(a) and assigned(b),
            90,
            "the 6 partitions shared by the 2 gateways",
            interval=0.5,
        )
        held_by_b = assigned(b)
        answers, lock = {}, threading.Lock()

        def client(t):
            for i in range(t, 60, 4):
                body = {"k": f"k{i}", "seq": i}
                # a client's own x-sluice-reply-to is not the gateway's stamp
                forged = {"x-sluice-reply-to": "0 forged"} if i % 2 else {}
                st, got, _ = post_json(f"127.0.0.1:{ports[0]}", "/orders", body, forged)  # A only
                with lock:
                    answers[i] = (st, got)

        threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        # The split did not move while the requests ran (else "served by B"
        # below would not be known).
        assert assigned(b) == held_by_b and sorted(assigned(a) + held_by_b) == list(
            range(PARTITIONS)
        ), (assigned(a), assigned(b), held_by_b)
        wrong = {
            i: a_
            for i, a_ in answers.items()
            if a_ != (200, f"<doc><k>k{i}</k><seq>{i}</seq></doc>".encode())
        }
        assert len(answers) == 60 and not wrong, wrong
        # Which partition of the log each request went to: those in B's share
        # were worked on by B, and answered by A all the same.
        part_of = {}
        for line in broker.consume("orders.log", fmt="%p\t%s\n"):
            p, _, v = line.partition("\t")
            part_of[json.loads(v)["seq"]] = int(p)
        by_b = [i for i in range(60) if part_of[i] in held_by_b]
        assert 0 < len(by_b) < 60, (by_b, held_by_b)
        # The stamp is taken out before the outputs.
        out = broker.consume("out", fmt="%h\n")
        assert len(out) == 60 and not [h for h in out if "x-sluice-reply-to" in h], out[:3]
        print(f"  60 sync requests to gateway A, all answered 200 with the step's output; "
              f"{len(by_b)} worked on by gateway B (partitions {held_by_b})")
        for gw in gws:
            gw.stop()
    finally:
        for gw in gws:
            gw.cleanup()
        broker.close()


def test_kafka_log_dead_letters_go_to_the_kafka_dead_letter_topic():
    def behaviour(req):
        return (400, "refused") if b'"bad"' in req["body"] else (200, "ok")

    sink = Sink(behaviour)
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin) + f"""
connectors:
  web:   {{ type: http_server, listen: "127.0.0.1:{port}" }}
  kafka: {{ type: kafka, brokers: "{broker.bootstrap}", options: {OPTIONS} }}
  sink:  {{ type: http_client, base_url: "{sink.url}", timeout: 5s }}
routes:
  orders:
    from: {{ connector: web, path: /orders, methods: [POST], content_type: json }}
    key: "$.k"
    log: {{ connector: kafka, topic: orders.log, partitions: 2, group: orders }}
    to:
      - {{ connector: sink }}
""")
    try:
        broker.create("orders.log", 2)
        broker.create("sluice.orders.dlq", 1)
        broker.create("orders.log.idem", 1)  # the shared Idempotency-Keys
        gw.start(admin)
        wait_until(lambda: len(assigned(gw)) == 2, 60, "both partitions assigned", interval=0.5)
        first = {"k": "k0", "seq": -1, "kind": "bad"}
        st, got, _ = post_json(f"127.0.0.1:{port}", "/orders", first)
        assert st == 202, (st, got)
        # The next 4 Produce requests fail (MSG_SIZE_TOO_LARGE, not retried):
        # the dead letter cannot be written, the worker tries again every
        # second, and meanwhile the message's offset is not committed.
        broker.command("errors 0 10 4")
        wait_until(lambda: "cannot dead-letter message" in gw.log_tail(400), 60,
                   "the dead letter refused by Kafka")
        lag = [p["lag"] for p in gw.route("orders")["partitions"]]
        assert sorted(lag) == [0, 1], lag
        wait_until(lambda: broker.count("sluice.orders.dlq") == 1, 60, "the first dead letter")
        sent = [json.dumps(first)]
        for i in range(10):
            body = {"k": f"k{i % 3}", "seq": i, "kind": "bad" if i % 4 == 1 else "good"}
            st, got, _ = post_json(f"127.0.0.1:{port}", "/orders", body)
            assert st == 202, (st, got)
            sent.append(json.dumps(body))
        bad = [s for s in sent if '"bad"' in s]
        wait_until(lambda: broker.count("sluice.orders.dlq") >= len(bad), 60, "the dead letters")
        # Every message finished: the offsets past the dead letters are
        # committed (the dead letter was produced first).
        wait_until(
            lambda: [p["lag"] for p in gw.route("orders")["partitions"]] == [0, 0],
            60,
            "lag 0 on both partitions",
        )
        recs = broker.consume("sluice.orders.dlq", fmt="%k\t%s\t%h\n")
        got = []
        for line in recs:
            key, value, hdrs = line.split("\t", 2)
            h = headers_of(hdrs)
            assert h["x-sluice-route"] == "orders", h
            assert h["x-sluice-status"] == "400", h
            assert "400" in h["x-sluice-error"], h
            assert h["x-sluice-failed-outputs"] == "sink", h
            assert h["x-sluice-original-body"] == value, h
            assert key == json.loads(value)["k"], (key, value)
            got.append(value)
        assert sorted(got) == sorted(bad), (got, bad)
        delivered = sorted(r["body"].decode() for r in sink.requests if b'"good"' in r["body"])
        assert delivered == sorted(s for s in sent if '"good"' in s), delivered
        gw.stop()
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()
        sink.close()
