"""The Kafka input's bound on what is appended but not yet durable
(connectors/kafka_input.c, INFLIGHT_MAX_MESSAGES): with the log's
fdatasyncs stalled (tests/bench/preload/fsync_delay.c preloaded, its stall
file present), the input stops fetching at the bound and commits no source
offset; once the disk answers again, every message arrives, in order per
key."""

import os
import subprocess
import time

from harness import SLUICE, Gateway, free_port, metric, wait_until
from kafka_peer import KafkaBroker
from test_kafka import kafka_route_config, keyed_lines, values_of

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SRC = os.path.join(HERE, "..", "bench", "preload", "fsync_delay.c")
INFLIGHT_MAX_MESSAGES = 32768  # connectors/kafka_input.c
BATCH_MAX_MESSAGES = 500  # ... the batch that crosses the bound


def build_shim(directory):
    out = os.path.join(directory, "fsync_delay.so")
    subprocess.run([os.environ.get("CC", "cc"), "-O2", "-shared", "-fPIC", "-o", out, SHIM_SRC,
                    "-ldl"], check=True)
    return out


def committed(gw):
    """The source offsets the input committed, summed over the partitions of
    `in`: the number of messages committed (they start at offset 0)."""
    return metric(gw.metrics(), "sluice_kafka_committed_offset", topic="in")


def test_kafka_input_stops_at_the_inflight_bound_while_fsync_stalls_and_commits_nothing():
    broker = KafkaBroker(SLUICE)
    admin = free_port()
    gw = Gateway(kafka_route_config(broker.bootstrap, admin, group="inflight", partitions=4))
    stall = os.path.join(gw.dir, "stall")
    gw.env["LD_PRELOAD"] = build_shim(gw.dir)
    gw.env["FSYNC_STALL_FILE"] = stall
    # the shim comes before the sanitizer's runtime in the preload order
    gw.env["ASAN_OPTIONS"] = (gw.env.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0").lstrip(":")
    try:
        broker.create("in", 4)
        broker.create("out", 4)
        gw.start(admin)
        first, more, keys = 100, 40000, 50
        broker.produce_lines("in", keyed_lines(first, keys))
        wait_until(lambda: metric(gw.metrics(), "sluice_kafka_produced_total") >= first, 120,
                   f"the first {first} delivered")
        wait_until(lambda: committed(gw) == first, 60, f"the offsets of the first {first} committed")
        with open(stall, "w"):
            pass  # from now on no fdatasync returns: nothing new becomes durable
        broker.produce_lines("in", keyed_lines(more, keys, start=first))
        floor = first + INFLIGHT_MAX_MESSAGES
        wait_until(lambda: metric(gw.metrics(), "sluice_kafka_consumed_total") >= floor, 120,
                   f"{floor} consumed (the bound reached)")
        time.sleep(2)  # the input must stay at the bound (a negative: held for a while)
        m = gw.metrics()
        consumed = metric(m, "sluice_kafka_consumed_total")
        assert consumed < floor + BATCH_MAX_MESSAGES, \
            f"{consumed:.0f} consumed with fdatasync stalled: past the bound"
        assert committed(gw) == first, "source offsets committed past what is durable"
        os.unlink(stall)
        n = first + more
        wait_until(lambda: broker.count("out") >= n, 180, f"{n} records in out", interval=0.5)
        per_key = {}
        for k, v in values_of(broker, "out"):
            per_key.setdefault(k, []).append(int(v.partition(":")[2]))
        for k, seqs in per_key.items():
            assert seqs == list(range(n // keys)), f"key {k}: {seqs[:20]}... (order or duplicates)"
        assert len(per_key) == keys, len(per_key)
        wait_until(lambda: committed(gw) == n, 60, f"the offsets of all {n} committed")
        print(f"  stalled at {consumed:.0f} consumed of {n}, then all {n} in order per key")
    finally:
        if os.path.exists(stall):
            os.unlink(stall)
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
        broker.close()
