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
    'topic.metadata.refresh.interval.ms: "1000" }'
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
        # 2. cluster down: the gateway takes deliveries, appends one a second
        # to probe the cluster (they wait: no message.timeout.ms for an
        # input whose source keeps the messages), and acks none.
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
    finally:
        gw.cleanup()
        kb.close()



# ---- Kafka ----


def kafka_config(src_bootstrap, log_bootstrap, admin, out):
    return base_config(admin_port=admin) + f"""
connectors:
  src:   {{ type: kafka, brokers: "{src_bootstrap}", options: {OPTIONS} }}
  kafka: {{ type: kafka, brokers: "{log_bootstrap}", options: {OPTIONS} }}
  out:   {{ type: file, path: "{out}" }}
routes:
  r:
    from: {{ connector: src, topics: [src], group: g, start: earliest }}
    key: "$.k"
    {log_block("r")}
    to: [ {{ connector: out }} ]
"""


def keyed(first, count):
    return [f"k{i % KEYS}:" + b for i, b in enumerate(bodies(first, count))]


def log_size(gw):
    return os.path.getsize(gw.stderr_path)


def pauses_since(gw, mark):
    """How often the input paused for back-pressure past byte mark of its log."""
    with open(gw.stderr_path) as f:
        f.seek(mark)
        return f.read().count("pausing consumption")


def test_kafka_input_into_kafka_log_commits_only_what_kafka_stored():
    # The source and the log on two mock clusters: the log's goes down
    # while the source stays readable.
    src, kb = KafkaBroker(SLUICE, brokers=3), KafkaBroker(SLUICE, brokers=3)
    admin = free_port()
    gw = Gateway("")
    out = os.path.join(gw.dir, "out.jsonl")
    with open(gw.config, "w") as f:
        f.write(kafka_config(src.bootstrap, kb.bootstrap, admin, out))
    try:
        src.create("src", 3)
        kb.create("r.log", PARTITIONS)
        gw.start(admin)
        src.produce_lines("src", keyed(0, 400))
        wait_until(lambda: want(0, 400) <= set(delivered(out)), 90, "the 400 first delivered")
        # The log's cluster down: the input appends one message a second
        # (probing the cluster), whose delivery reports wait.
        mark = log_size(gw)
        cluster(kb, up=False)
        src.produce_lines("src", keyed(50, 160))
        # Four rounds of appending, each followed by a commit of what is
        # stored: an offset committed without its report has been sent.
        wait_until(lambda: pauses_since(gw, mark) >= 4, 60, "4 append rounds while down")
        # Killed now: a source offset committed past what Kafka has not
        # stored would lose it for good.
        gw.kill()
        assert not (want(50, 160) & set(delivered(out)))
        cluster(kb, up=True)
        gw.start(admin)
        wait_until(lambda: want(50, 160) <= set(delivered(out)), 120, "the 160 later delivered")
        got = delivered(out)
        assert not first_arrivals_in_order(got), first_arrivals_in_order(got)
        print(f"  {len(got)} delivered, {len(got) - len(set(got))} duplicates")
        gw.stop()
    finally:
        gw.cleanup()
        src.close()
        kb.close()
