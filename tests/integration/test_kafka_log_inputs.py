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
from harness import SLUICE, Gateway, base_config, free_port, metric, wait_until
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


def log_since(gw, mark):
    """The gateway's log past byte mark."""
    with open(gw.stderr_path) as f:
        f.seek(mark)
        return f.read()


def pauses_since(gw, mark):
    """How often the input paused for back-pressure past byte mark of its log."""
    return log_since(gw, mark).count("pausing consumption")


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
        # Produced once the log's producer knows the cluster is down: before
        # that, appends are queued in librdkafka (no time limit for this
        # input) and nothing pushes back, which is right but not this test.
        wait_until(lambda: log_since(gw, mark).count("(log producer of route r): _ALL_BROKERS_DOWN"),
                   60, "the log's producer seeing the cluster down")
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


# ---- file ----


def file_config(bootstrap, admin, src, out):
    return base_config(admin_port=admin) + f"""
connectors:
  src:   {{ type: file }}
  kafka: {{ type: kafka, brokers: "{bootstrap}", options: {OPTIONS} }}
  out:   {{ type: file, path: "{out}" }}
routes:
  r:
    from: {{ connector: src, path: "{src}" }}
    key: "$.k"
    {log_block("r")}
    to: [ {{ connector: out }} ]
"""


def write_lines(path, lines):
    with open(path, "a") as f:
        for l in lines:
            f.write(l + "\n")


def saved_position(gw):
    """The byte offset in the file input's position file ("1 INODE OFFSET";
    0 when none)."""
    try:
        with open(os.path.join(gw.dir, "data", "file_input", "r.pos")) as f:
            return int(f.read().split()[2])
    except FileNotFoundError:
        return 0


def test_file_input_into_kafka_log_saves_its_position_only_on_what_kafka_stored():
    kb = KafkaBroker(SLUICE, brokers=3)
    admin = free_port()
    gw = Gateway("")
    src, out = os.path.join(gw.dir, "in.log"), os.path.join(gw.dir, "out.jsonl")
    with open(gw.config, "w") as f:
        f.write(file_config(kb.bootstrap, admin, src, out))
    try:
        kb.create("r.log", PARTITIONS)
        kb.create("sluice.replies", 1)
        gw.start(admin)
        write_lines(src, bodies(0, 400))
        wait_until(lambda: want(0, 400) <= set(delivered(out)), 90, "the 400 first delivered")
        saved = os.path.getsize(src)
        wait_until(lambda: saved_position(gw) == saved, 30, "the position saved at the end")
        # Slow brokers (8 s per answer): 80 lines appended, their reports
        # not in yet, so the position stays; killed then, a restart reads
        # them again.
        for b in (1, 2, 3):
            kb.command(f"rtt {b} 8000")
        write_lines(src, bodies(50, 80))
        wait_until(lambda: appended(gw) >= 480, 30, "the 80 lines appended")
        assert saved_position(gw) == saved, (saved_position(gw), saved)
        gw.kill()
        for b in (1, 2, 3):
            kb.command(f"rtt {b} 0")
        gw.start(admin)
        wait_until(lambda: want(50, 80) <= set(delivered(out)), 90, "the 80 delivered")
        saved = os.path.getsize(src)
        wait_until(lambda: saved_position(gw) == saved, 30, "the position saved")
        # Cluster down: the input appends one line a second (probing),
        # whose reports wait; the position does not move until it is back.
        mark, base = log_size(gw), appended(gw)
        cluster(kb, up=False)
        write_lines(src, bodies(60, 80))
        wait_until(
            lambda: appended(gw) > base or appends_refused_since(gw, mark) >= 1,
            60,
            "the input taking the new lines",
        )
        end = time.monotonic() + 3
        while time.monotonic() < end:
            assert saved_position(gw) == saved, (saved_position(gw), saved)
            time.sleep(0.5)
        cluster(kb, up=True)
        wait_until(lambda: want(60, 80) <= set(delivered(out)), 120, "the last 80 delivered")
        wait_until(lambda: saved_position(gw) == os.path.getsize(src), 30, "the position saved")
        got = delivered(out)
        assert not first_arrivals_in_order(got), first_arrivals_in_order(got)
        print(f"  {len(got)} delivered, {len(got) - len(set(got))} duplicates")
        gw.stop()
        # The dead letter topic was missing: each run asked Kafka to create
        # it (librdkafka 2.0.2's mock does not implement CreateTopics and
        # never answers, so the topic stays missing here); the replies
        # topic existed: not asked for.
        with open(gw.stderr_path) as f:
            log = f.read()
        assert log.count("the dead letter topic sluice.r.dlq is missing; creating it") == 2
        assert "sluice.replies is missing" not in log
    finally:
        gw.cleanup()
        kb.close()


def appended(gw):
    return metric(gw.metrics(), "sluice_messages_in_total", route="r") or 0


def appends_refused_since(gw, mark):
    with open(gw.stderr_path) as f:
        f.seek(mark)
        return f.read().count("cannot append a line")


def test_check_accepts_amqp_kafka_and_file_inputs_on_a_kafka_log_and_refuses_a_topic_input():
    base = """connectors:
  kafka: { type: kafka, brokers: "127.0.0.1:1" }
  rabbit: { type: amqp, url: "amqp://127.0.0.1:1/" }
  src: { type: file }
routes:
  a:
"""
    tail = """    log: { connector: kafka }
    to: [ { connector: kafka, topic: t } ]
"""
    for frm in (
        "from: { connector: rabbit, queue: q }",
        "from: { connector: kafka, topics: [in], group: g }",
        'from: { connector: src, path: "/tmp/in.log" }',
    ):
        r, _ = check(base + f"    {frm}\n" + tail)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (frm, r.stdout)
    r, _ = check(base + "    from: { topic: t0 }\n" + tail)
    assert r.returncode == 2
    assert "routes.a.log: a route fed by an internal topic keeps the embedded log" in r.stdout, r.stdout
