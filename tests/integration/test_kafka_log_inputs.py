"""Inputs other than HTTP feeding a route whose log is on Kafka (`log:`,
docs/KAFKA-LOG.md), against librdkafka's mock cluster of 3 brokers: an AMQP
input (real RabbitMQ) acks a delivery only once its record's delivery report
says it is in Kafka; a Kafka input commits its source offset only then; a
file input saves its position only then. Each test checks that every message
reaches the output, first arrivals in order per key, and, with the cluster
down for a while, that the source keeps what the gateway could not store."""

import json
import os
import time
import uuid

from amqp_peer import broker as rabbit, unique
from harness import SLUICE, Gateway, base_config, free_port, wait_until
from kafka_peer import KafkaBroker
from test_check import check

OPTIONS = (
    '{ session.timeout.ms: "6000", heartbeat.interval.ms: "500", '
    'topic.metadata.refresh.interval.ms: "1000", message.timeout.ms: "3000" }'
)
PARTITIONS = 3
KEYS = 8


def log_block(route):
    return f"log: {{ connector: kafka, topic: {route}.log, partitions: {PARTITIONS}, group: {route} }}"


def delivered(out):
    """(key, seq) of every message the file output wrote, in file order."""
    got = []
    try:
        with open(out) as f:
            lines = [l for l in f if l.strip()]
    except FileNotFoundError:
        return got
    for l in lines:
        body = json.loads(l)["body"]
        if isinstance(body, str):
            body = json.loads(body)
        got.append((body["k"], body["seq"]))
    return got


def first_arrivals_in_order(got):
    """The keys whose first arrivals are not in sequence order."""
    last, seen, bad = {}, set(), set()
    for k, s in got:
        if (k, s) in seen:
            continue
        seen.add((k, s))
        if s < last.get(k, -1):
            bad.add(k)
        last[k] = s
    return bad


def bodies(first, count):
    """count JSON bodies over KEYS keys, seqs from first on."""
    return [json.dumps({"k": f"k{i % KEYS}", "seq": first + i // KEYS}) for i in range(count)]


def want(first, count):
    return {(f"k{i % KEYS}", first + i // KEYS) for i in range(count)}


def cluster(broker, up):
    for b in (1, 2, 3):
        (broker.up if up else broker.down)(b)


# ---- AMQP ----


def amqp_config(b, bootstrap, admin, q_in, ex_in, out):
    return base_config(admin_port=admin) + f"""
connectors:
  rabbit: {{ type: amqp, url: "{b.url}", prefetch: 64, timeout: 5s }}
  kafka:  {{ type: kafka, brokers: "{bootstrap}", options: {OPTIONS} }}
  out:    {{ type: file, path: "{out}" }}
routes:
  r:
    from:
      connector: rabbit
      queue: {q_in}
      declare: {{ durable: true, arguments: {{ x-queue-type: classic }} }}
      bind: [ {{ exchange: {ex_in}, routing_key: "orders.#" }} ]
    key: "$.k"
    {log_block("r")}
    to: [ {{ connector: out }} ]
"""


def test_amqp_input_into_kafka_log_acks_only_what_kafka_stored():
    b = rabbit()
    kb = KafkaBroker(SLUICE, brokers=3)
    ex_in, q_in = unique("kin-x"), unique("kin-q")
    b.declare_exchange(ex_in)
    admin = free_port()
    gw = Gateway("")
    out = os.path.join(gw.dir, "out.jsonl")
    with open(gw.config, "w") as f:
        f.write(amqp_config(b, kb.bootstrap, admin, q_in, ex_in, out))
    try:
        kb.create("r.log", PARTITIONS)
        gw.start(admin)
        wait_until(lambda: b.queues().get(q_in) is not None, 60, f"{q_in} declared")
        # 1. cluster up: everything delivered, in order per key, queue empty.
        b.publish(ex_in, "orders.a", bodies(0, 400), ids=[str(uuid.uuid4()) for _ in range(400)])
        wait_until(lambda: want(0, 400) <= set(delivered(out)), 90, "the 400 first delivered")
        wait_until(lambda: b.queues().get(q_in) == (0, 0), 60, f"{q_in} empty and all acked")
        # 2. cluster down: the gateway takes deliveries but acks none. The
        # window is longer than message.timeout.ms (3 s): the appends let
        # through to probe the cluster fail their delivery report meanwhile.
        cluster(kb, up=False)
        b.publish(ex_in, "orders.a", bodies(50, 160), ids=[str(uuid.uuid4()) for _ in range(160)])
        wait_until(lambda: (b.queues().get(q_in) or (0, 0))[1] > 0, 60, "deliveries taken")
        end = time.monotonic() + 8
        while time.monotonic() < end:
            ready, unacked = b.queues()[q_in]
            assert ready + unacked == 160, (ready, unacked)
            time.sleep(0.5)
        assert not (want(50, 160) & set(delivered(out)))
        # 3. cluster back: everything delivered, in order per key.
        cluster(kb, up=True)
        wait_until(lambda: want(50, 160) <= set(delivered(out)), 120, "the 160 later delivered")
        wait_until(lambda: b.queues().get(q_in) == (0, 0), 60, f"{q_in} empty and all acked")
        got = delivered(out)
        assert not first_arrivals_in_order(got), first_arrivals_in_order(got)
        print(f"  {len(got)} delivered, {len(got) - len(set(got))} duplicates")
        gw.stop()
        with open(gw.stderr_path) as f:  # the probes while down did fail their reports
            assert "Kafka did not store delivery" in f.read()
    finally:
        gw.cleanup()
        kb.close()

