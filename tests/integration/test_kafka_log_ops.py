"""A Kafka-backed route (docs/KAFKA-LOG.md) against librdkafka's mock cluster
of 3 brokers: a rewind by timestamp delivers again from the first record
stamped at or after it (the mock answers offsets-for-times with "none", so
the gateway reads the partition to check), and one broker stopped and
started mid-stream loses nothing acknowledged, with 503s (and Retry-After)
for what could not be written while it was down."""

import datetime
import http.client
import json
import re
import subprocess
import threading
import time

from harness import SLUICE, Gateway, free_port, post_json, wait_until
from kafka_peer import KCAT, KafkaBroker
from test_kafka_log import arrivals, assigned, log_route_config


def leader(broker, topic, partition):
    """The broker id leading topic's partition (the mock picks leaders at random)."""
    r = subprocess.run([KCAT, "-L", "-b", broker.bootstrap, "-t", topic],
                       capture_output=True, text=True, timeout=60)
    m = re.search(rf"partition {partition}, leader (\d+),", r.stdout)
    assert m, r.stdout + r.stderr
    return int(m.group(1))


def rfc3339_ms(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def test_kafka_log_rewind_by_timestamp_delivers_again_from_there():
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port = free_port(), free_port()
    gw = Gateway(log_route_config(broker.bootstrap, admin, port, partitions=2))
    try:
        broker.create("orders.log", 2)
        broker.create("orders.log.idem", 1)
        broker.create("out", 1)
        gw.start(admin)
        wait_until(lambda: len(assigned(gw)) == 2, 60, "both partitions assigned", interval=0.5)
        cut = None
        for s in range(10):
            if s == 5:
                # Records are stamped when accepted: 0..4 before `cut`, 5..9 at or after.
                cut = int(time.time() * 1000) + 1
                wait_until(lambda: time.time() * 1000 >= cut, 5, "the clock past the cut")
            st, body, _ = post_json(f"127.0.0.1:{port}", "/orders", {"k": f"k{s % 3}", "seq": s})
            assert st == 202, (st, body)
        wait_until(lambda: len(arrivals(broker)) == 10, 60, "the 10 delivered")
        # Its own connection: the rewind reads the partitions (seconds on the mock).
        c = http.client.HTTPConnection(*gw.admin.rsplit(":", 1), timeout=60)
        c.request("POST", "/v1/routes/orders/rewind", json.dumps({"timestamp": rfc3339_ms(cut)}),
                  {"content-type": "application/json"})
        r = c.getresponse()
        st, body = r.status, r.read()
        c.close()
        assert st == 200, (st, body)
        wait_until(lambda: len(arrivals(broker)) >= 15, 60, "5 delivered again")
        got = [s for _, s in arrivals(broker)]
        assert len(got) == 15 and sorted(got[10:]) == [5, 6, 7, 8, 9], got
        gw.stop()
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()


class Load:
    """Threads that each send one key in sequence, one request at a time;
    a request is sent once and counted by its answer."""

    def __init__(self, port, keys):
        self.port, self.acked, self.answers, self.no_retry_after = port, [], {}, []
        self.last_202 = {}
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(f"k{t}",)) for t in range(keys)]

    def run(self, k):
        seq = 0
        while not self.stop.is_set():
            try:
                st, _, h = post_json(f"127.0.0.1:{self.port}", "/orders", {"k": k, "seq": seq})
            except OSError:
                st, h = None, {}
            with self.lock:
                self.answers[st] = self.answers.get(st, 0) + 1
                if st == 202:
                    self.acked.append((k, seq))
                    self.last_202[k] = time.monotonic()
                if st == 503 and not h.get("retry-after"):
                    self.no_retry_after.append(h)
            seq += 1
            time.sleep(0.01)

    def count(self, st):
        with self.lock:
            return self.answers.get(st, 0)


def test_kafka_log_one_broker_down_and_up_mid_stream_loses_nothing_acknowledged():
    broker = KafkaBroker(SLUICE, brokers=3)
    admin, port = free_port(), free_port()
    cfg = log_route_config(broker.bootstrap, admin, port, partitions=3).replace(
        'topic.metadata.refresh.interval.ms: "1000"',
        'topic.metadata.refresh.interval.ms: "1000", message.timeout.ms: "3000"',
    )
    gw = Gateway(cfg)
    load = Load(port, keys=6)
    try:
        broker.create("orders.log", 3)
        broker.create("orders.log.idem", 1)
        broker.create("out", 1)
        gw.start(admin)
        wait_until(lambda: len(assigned(gw)) == 3, 60, "the 3 partitions assigned", interval=0.5)
        for t in load.threads:
            t.start()
        wait_until(lambda: len(load.acked) >= 100, 60, "100 acknowledged")
        victim = leader(broker, "orders.log", 0)
        broker.down(victim)
        # The partitions it leads cannot take a write: their requests get 503.
        wait_until(lambda: load.count(503) >= 5, 60, f"503s while broker {victim} is down")
        broker.up(victim)
        back = time.monotonic()
        wait_until(
            lambda: len(load.last_202) == 6 and min(load.last_202.values()) > back,
            90, f"a 202 for every key after broker {victim} is back",
        )
    finally:
        load.stop.set()
        for t in load.threads:
            t.join(60)
    try:
        want = set(load.acked)
        wait_until(lambda: want <= set(arrivals(broker)), 90, "every 202 at the output", interval=1)
        assert not load.no_retry_after, load.no_retry_after[:3]
        print(f"  answers {load.answers}; all {len(want)} acknowledged delivered")
        gw.stop()
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()
