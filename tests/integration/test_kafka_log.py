"""A route's log on Kafka (`log: { connector: kafka, ... }`, docs/KAFKA-LOG.md)
against librdkafka's mock cluster of 3 brokers over TCP: three gateways with
the same route share the log's partitions as a consumer group while a client
spreads keyed requests over all three; one gateway is SIGKILLed mid-stream
and not restarted, and every 202 (from any of the three) must still reach
the output, first arrivals in order per key. Also: `sluice check` on the
`log:` keys, a topic with the wrong partition count refused at start, and a
rewind by offset that delivers again from there."""

import json
import subprocess
import threading
import time

from harness import SLUICE, Gateway, base_config, free_port, post_json, request, wait_until
from kafka_peer import KafkaBroker
from test_check import check

# Short group timeouts so that a dead member is noticed in seconds.
OPTIONS = (
    '{ session.timeout.ms: "6000", heartbeat.interval.ms: "500", '
    'topic.metadata.refresh.interval.ms: "1000" }'
)
PARTITIONS = 6


def log_route_config(bootstrap, admin_port, http_port, partitions=PARTITIONS):
    return base_config(admin_port=admin_port) + f"""
connectors:
  web:   {{ type: http_server, listen: "127.0.0.1:{http_port}" }}
  kafka: {{ type: kafka, brokers: "{bootstrap}", options: {OPTIONS} }}
routes:
  orders:
    from: {{ connector: web, path: /orders, methods: [POST], content_type: json }}
    key: "$.k"
    log: {{ connector: kafka, topic: orders.log, partitions: {partitions}, group: orders }}
    to:
      - {{ connector: kafka, topic: out }}
    on_error:
      retry: {{ max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s }}
"""


def assigned(gw):
    """The partitions of the route's log this gateway works on now."""
    return [p["partition"] for p in gw.route("orders")["partitions"] if p["assigned"]]


def arrivals(broker):
    """(k, seq) of every record of `out`, in the order of each key's partition."""
    out = []
    for line in broker.consume("out", fmt="%s\n"):
        body = json.loads(line)
        out.append((body["k"], body["seq"]))
    return out


class Client:
    """Threads that each own some keys and send them in sequence, one
    request at a time, rotating over the gateways still listed. A request
    is sent once: a 202 is recorded as acknowledged; anything else (a
    refused connection, a 503) is not, and the next sequence number goes on."""

    def __init__(self, ports, keys, threads):
        self.ports = list(ports)
        self.acked = []  # (k, seq, port)
        self.refused = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.keys = keys
        self.threads = [threading.Thread(target=self.run, args=(t, threads)) for t in range(threads)]

    def run(self, t, n_threads):
        keys = [f"k{i}" for i in range(t, self.keys, n_threads)]
        seq = 0
        while not self.stop.is_set():
            for i, k in enumerate(keys):
                with self.lock:
                    ports = list(self.ports)
                port = ports[(seq + i + t) % len(ports)]
                try:
                    st, _, _ = post_json(f"127.0.0.1:{port}", "/orders", {"k": k, "seq": seq})
                except OSError:
                    st = None
                with self.lock:
                    if st == 202:
                        self.acked.append((k, seq, port))
                    else:
                        self.refused += 1
            seq += 1

    def n_acked(self):
        with self.lock:
            return len(self.acked)

    def drop_port(self, port):
        with self.lock:
            self.ports.remove(port)


def in_order_per_key(got):
    """The keys whose first arrivals are not in sequence order."""
    last, bad = {}, set()
    seen = set()
    for k, s in got:
        if (k, s) in seen:
            continue
        seen.add((k, s))
        if s < last.get(k, -1):
            bad.add(k)
        last[k] = s
    return bad


def test_kafka_log_three_gateways_one_sigkilled_every_202_delivered_in_order_per_key():
    broker = KafkaBroker(SLUICE, brokers=3)
    gws, ports = [], []
    try:
        broker.create("orders.log", PARTITIONS)
        broker.create("orders.log.idem", 1)  # the shared Idempotency-Keys
        broker.create("out", 4)
        for _ in range(3):
            admin, port = free_port(), free_port()
            gw = Gateway(log_route_config(broker.bootstrap, admin, port))
            gw.start(admin)
            gws.append(gw)
            ports.append(port)
        # The group has split the partitions between all three.
        wait_until(
            lambda: sorted(p for gw in gws for p in assigned(gw)) == list(range(PARTITIONS))
            and all(assigned(gw) for gw in gws),
            90,
            "the 6 partitions shared by the 3 gateways",
            interval=0.5,
        )
        client = Client(ports, keys=24, threads=6)
        for t in client.threads:
            t.start()
        try:
            wait_until(lambda: client.n_acked() >= 600, 120, "600 requests acknowledged")
            victim = gws[2]
            held = assigned(victim)
            victim.kill()  # SIGKILL: no drain, no commit, no leaving the group
            client.drop_port(ports[2])
            at_kill = client.n_acked()
            wait_until(lambda: client.n_acked() >= at_kill + 600, 120, "600 more acknowledged")
        finally:
            client.stop.set()
            for t in client.threads:
                t.join(60)
        # The survivors take the dead gateway's partitions over.
        wait_until(
            lambda: sorted(p for gw in gws[:2] for p in assigned(gw)) == list(range(PARTITIONS)),
            60,
            "the 2 survivors holding all 6 partitions",
            interval=0.5,
        )
        want = {(k, s) for k, s, _ in client.acked}
        by_victim = sum(1 for _, _, p in client.acked if p == ports[2])
        wait_until(lambda: want <= set(arrivals(broker)), 90, "every 202 at the output", interval=1)
        got = arrivals(broker)
        assert not in_order_per_key(got), f"keys out of order: {sorted(in_order_per_key(got))}"
        print(
            f"  {len(want)} acknowledged ({by_victim} by the gateway SIGKILLed while holding "
            f"partitions {held}), {client.refused} refused; all delivered, in order per key; "
            f"{len(got)} arrivals, {len(got) - len(set(got))} duplicate(s), "
            f"{len(set(got) - want)} delivered without a 202"
        )
        for gw in gws[:2]:
            gw.stop()
    finally:
        for gw in gws:
            gw.cleanup()
        broker.close()


def test_kafka_log_rewind_by_offset_delivers_again_from_there():
    # By offset: librdkafka's mock cluster answers every offsets-for-times
    # query with the end of the partition, so a timestamp cannot be tested
    # against it (docs/KAFKA-LOG.md says so).
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port = free_port(), free_port()
    gw = Gateway(log_route_config(broker.bootstrap, admin, port, partitions=2))
    try:
        broker.create("orders.log", 2)
        broker.create("orders.log.idem", 1)  # the shared Idempotency-Keys
        broker.create("out", 1)
        gw.start(admin)
        wait_until(lambda: len(assigned(gw)) == 2, 60, "both partitions assigned", interval=0.5)
        for s in range(30):
            st, body, _ = post_json(f"127.0.0.1:{port}", "/orders", {"k": f"k{s % 5}", "seq": s})
            assert st == 202, (st, body)
        wait_until(lambda: len(arrivals(broker)) == 30, 60, "the 30 delivered")
        # Which seqs lie at offset >= 4 of their log partition: those come again.
        again = set()
        for line in broker.consume("orders.log", fmt="%o\t%s\n"):
            off, _, v = line.partition("\t")
            if int(off) >= 4:
                again.add(json.loads(v)["seq"])
        assert 0 < len(again) < 30, again
        st, body, _ = request(
            "POST", gw.admin, "/v1/routes/orders/rewind", json.dumps({"offset": 4}).encode(),
            {"content-type": "application/json"},
        )
        assert st == 200, (st, body)
        want = 30 + len(again)
        wait_until(lambda: len(arrivals(broker)) >= want, 60, f"{len(again)} delivered again")
        got = [s for _, s in arrivals(broker)]
        assert len(got) == want and set(got[30:]) == again, got
        parts = gw.route("orders")["partitions"]
        assert [p["lag"] for p in parts] == [0, 0], parts
        gw.stop()
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()


def test_kafka_log_topic_with_another_partition_count_is_refused_at_start():
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port = free_port(), free_port()
    gw = Gateway(log_route_config(broker.bootstrap, admin, port, partitions=4))
    try:
        broker.create("orders.log", 3)
        r = subprocess.run(
            [SLUICE, "run", "-c", gw.config], cwd=gw.dir, capture_output=True, text=True, timeout=60
        )
        assert r.returncode != 0
        assert "Kafka topic orders.log has 3 partitions, log.partitions says 4" in r.stderr, r.stderr
    finally:
        gw.cleanup()
        broker.close()


def test_check_refuses_a_log_on_a_connector_that_cannot_hold_one():
    base = """connectors:
  web: { type: http_server, listen: "127.0.0.1:1" }
  kafka: { type: kafka, brokers: "127.0.0.1:1" }
  rabbit: { type: amqp, url: "amqp://127.0.0.1:1/" }
routes:
  a:
    from: { connector: web, path: /o }
"""
    r, path = check(base + """    log: { connector: rabbit }
    to: [ { connector: kafka, topic: t } ]
""")
    assert r.returncode == 2
    assert (f"{path}:8:23: routes.a.log.connector: connector 'rabbit' has type amqp, which "
            "cannot hold a route's log") in r.stdout, r.stdout
    r, path = check(base + """    log: { connector: nope }
    to: [ { connector: kafka, topic: t } ]
""")
    assert r.returncode == 2 and "routes.a.log.connector: no connector named 'nope'" in r.stdout
    r, path = check(base + """    log: { connector: kafka, partitions: 0, bogus: 1 }
    to: [ { connector: kafka, topic: t } ]
""")
    assert r.returncode == 2
    assert "routes.a.log" in r.stdout and "bogus" in r.stdout and "partitions" in r.stdout, r.stdout
    r, path = check(base + """    log: { connector: kafka, partitions: 3, topic: orders.log }
    to: [ { connector: kafka, topic: t } ]
""")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout


def test_kafka_log_cluster_down_answers_503_with_retry_after_and_loses_no_202():
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port = free_port(), free_port()
    cfg = log_route_config(broker.bootstrap, admin, port, partitions=3).replace(
        'topic.metadata.refresh.interval.ms: "1000"',
        'topic.metadata.refresh.interval.ms: "1000", message.timeout.ms: "4000"',
    )
    gw = Gateway(cfg)
    acked, answers, no_retry_after = [], {}, []
    lock = threading.Lock()
    stop = threading.Event()

    def client(t):
        seq = 0
        while not stop.is_set():
            try:
                st, _, h = post_json(f"127.0.0.1:{port}", "/orders", {"k": f"k{t}", "seq": seq})
            except OSError:
                st, h = None, {}
            with lock:
                answers[st] = answers.get(st, 0) + 1
                if st == 202:
                    acked.append((f"k{t}", seq))
                if st == 503 and not h.get("retry-after"):
                    no_retry_after.append(h)
            seq += 1
            time.sleep(0.01)

    threads = [threading.Thread(target=client, args=(t,)) for t in range(4)]
    try:
        broker.create("orders.log", 3)
        broker.create("orders.log.idem", 1)  # the shared Idempotency-Keys
        broker.create("out", 1)
        gw.start(admin)
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= 100, 60, "100 acknowledged")
        for b in (1, 2, 3):
            broker.down(b)
        wait_until(lambda: answers.get(503, 0) >= 20, 60, "503s while the cluster is down")
        with lock:
            at_down = len(acked)
        for b in (1, 2, 3):
            broker.up(b)
        wait_until(lambda: len(acked) >= at_down + 100, 90, "202s again once the cluster is back")
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    try:
        want = set(acked)
        wait_until(lambda: want <= set(arrivals(broker)), 90, "every 202 at the output", interval=1)
        assert not no_retry_after, no_retry_after[:3]
        print(f"  answers {answers}; all {len(want)} acknowledged delivered")
        gw.stop()
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()


def test_kafka_log_gateway_joining_mid_stream_rebalances_without_loss():
    broker = KafkaBroker(SLUICE, brokers=3)
    gws, ports, admins = [], [], []
    try:
        broker.create("orders.log", PARTITIONS)
        broker.create("orders.log.idem", 1)  # the shared Idempotency-Keys
        broker.create("out", 4)
        for _ in range(2):
            admin, port = free_port(), free_port()
            gws.append(Gateway(log_route_config(broker.bootstrap, admin, port)))
            ports.append(port)
            admins.append(admin)
        gws[0].start(admins[0])
        wait_until(lambda: len(assigned(gws[0])) == PARTITIONS, 60, "a holds all", interval=0.5)
        client = Client(ports[:1], keys=24, threads=6)
        for t in client.threads:
            t.start()
        try:
            wait_until(lambda: client.n_acked() >= 400, 120, "400 acknowledged")
            # Slow brokers keep a's workers inside their batches (the output's
            # produce waits), so the rebalance meets batches in flight.
            for b in (1, 2, 3):
                broker.command(f"rtt {b} 30")
            gws[1].start(admins[1])  # joins the group: the partitions move while a delivers
            wait_until(lambda: assigned(gws[1]), 60, "b holding some partitions", interval=0.2)
            with client.lock:
                client.ports.append(ports[1])
            at_join = client.n_acked()
            wait_until(lambda: client.n_acked() >= at_join + 400, 120, "400 more acknowledged")
        finally:
            client.stop.set()
            for t in client.threads:
                t.join(60)
        for b in (1, 2, 3):
            broker.command(f"rtt {b} 0")
        want = {(k, s) for k, s, _ in client.acked}
        wait_until(lambda: want <= set(arrivals(broker)), 90, "every 202 at the output", interval=1)
        got = arrivals(broker)
        held = (assigned(gws[0]), assigned(gws[1]))
        assert sorted(held[0] + held[1]) == list(range(PARTITIONS)) and held[0] and held[1], held
        assert not in_order_per_key(got), f"keys out of order: {sorted(in_order_per_key(got))}"
        dups = len(got) - len(set(got))
        # librdkafka's mock cluster refuses every commit while the group
        # rebalances, so what a moved partition delivered during the
        # rebalance is delivered again by its new owner (docs/KAFKA-LOG.md).
        print(f"  {len(want)} acknowledged, partitions split {held}; {dups} duplicate(s)")
        for gw in gws:
            gw.stop()
    finally:
        for gw in gws:
            gw.cleanup()
        broker.close()
