"""The first route end to end: HTTP in, the log, route workers, an HTTP sink
out; order per key, retries, dead letters, crash safety, ingest errors and
rewind. Each test runs the real binary against a real sink on loopback."""

import json
import os
import shutil
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from harness import (
    ROOT,
    Gateway,
    Sink,
    base_config,
    free_port,
    metric,
    post_json,
    request,
    wait_until,
)


def route_config(sink_url, in_port, admin_port, partitions=4, max_attempts=10, extra_sluice=""):
    return base_config(admin_port=admin_port, extra_sluice=extra_sluice) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}", max_body: 64KiB }}
  sink:
    type: http_client
    base_url: "{sink_url}"
    timeout: 2s
    max_in_flight: 64
    breaker: {{ open_for: 100ms, max_open_for: 400ms }}
routes:
  r:
    from: {{ connector: in, path: /orders, methods: [POST], content_type: json, reply: async }}
    partitions: {partitions}
    key: "$.key"
    steps:
      - set: {{ headers: {{ x-route: r }} }}
    to:
      - {{ connector: sink, path: /in }}
    on_error:
      retry: {{ max_attempts: {max_attempts}, initial_backoff: 10ms, max_backoff: 200ms }}
"""


class Env:
    """A sink and a gateway wired together, torn down by close()."""

    def __init__(self, behaviour=None, **kw):
        self.sink = Sink(behaviour)
        self.in_port = free_port()
        self.admin_port = free_port()
        self.gw = Gateway(route_config(self.sink.url, self.in_port, self.admin_port, **kw))
        self.ingest = f"127.0.0.1:{self.in_port}"

    def start(self):
        self.gw.start(self.admin_port)
        return self

    def post(self, obj, headers=None):
        return post_json(self.ingest, "/orders", obj, headers)

    def delivered(self):
        """Messages the sink answered 2xx, as (id, decoded body), in arrival order."""
        out = []
        with self.sink.lock:
            for req in self.sink.requests:
                if req.get("answered") is not None and req["answered"] < 300:
                    out.append((req["headers"].get("x-message-id"), json.loads(req["body"])))
        return out

    def end_offsets(self):
        return sum(p["end_offset"] for p in self.gw.route("r")["partitions"])

    def close(self):
        try:
            if self.gw.proc is not None:
                self.gw.stop()
        finally:
            self.sink.close()
            self.gw.cleanup()


def answering(fn):
    """Wraps a behaviour so that the sink records the status it answered."""

    def behaviour(req):
        status, body = fn(req)
        req["answered"] = status
        return status, body

    return behaviour


def test_10k_messages_100_keys_arrive_in_order_per_key():
    env = Env(answering(lambda req: (200, "ok"))).start()
    try:
        keys, per_key = 100, 100

        def producer(k):
            for seq in range(per_key):
                st, body, _ = env.post({"key": f"k{k}", "seq": seq, "pad": "x" * 150})
                assert st == 202, (st, body)

        with ThreadPoolExecutor(max_workers=keys) as ex:
            for f in [ex.submit(producer, k) for k in range(keys)]:
                f.result()
        wait_until(
            lambda: len({i for i, _ in env.delivered()}) >= keys * per_key,
            600,
            "10,000 messages at the sink",
            interval=0.5,
        )
        seen = {}
        delivered = env.delivered()
        ids = [mid for mid, _ in delivered]
        dups = len(ids) - len(set(ids))
        assert dups == 0, f"{dups} duplicate(s) in a run without faults"
        for mid, body in delivered:
            seen.setdefault(body["key"], []).append(body["seq"])
        assert len(seen) == keys
        for k, seqs in seen.items():
            assert seqs == list(range(per_key)), f"key {k} out of order: {seqs[:20]}..."
        m = env.gw.metrics()
        assert metric(m, "sluice_messages_in_total", route="r") == keys * per_key
        assert metric(m, "sluice_messages_out_total", route="r") >= keys * per_key
        print("  10,000 delivered in order per key, no duplicate")
    finally:
        env.close()


def test_sink_503_then_200_everything_arrives_none_dead_lettered():
    lock = threading.Lock()
    state = {"n": 0}
    fail_first = 40

    def behaviour(req):
        with lock:
            state["n"] += 1
            n = state["n"]
        return (503, "busy") if n <= fail_first else (200, "ok")

    # max_attempts above the number of 503s, so that no message can run out
    # of attempts whichever partition the 503s fall on.
    env = Env(answering(behaviour), max_attempts=fail_first + 10).start()
    try:
        ids = []
        for i in range(200):
            st, body, _ = env.post({"key": f"k{i % 7}", "seq": i})
            assert st == 202, (st, body)
            ids.append(json.loads(body)["id"])
        def all_arrived():
            dead = metric(env.gw.metrics(), "sluice_dead_letter_total", route="r")
            assert dead == 0, f"{dead} message(s) dead-lettered"
            return set(ids) <= {i for i, _ in env.delivered()}

        wait_until(all_arrived, 300, "200 messages at the sink")
        m = env.gw.metrics()
        assert metric(m, "sluice_dead_letter_total", route="r") == 0
        retried = metric(m, "sluice_messages_retried_total", route="r", output="sink")
        assert retried >= fail_first, f"retries counted: {retried}"
        st, body, _ = request("GET", env.gw.admin, f"/v1/messages/{ids[-1]}")
        assert st == 200 and json.loads(body)["state"] == "delivered", body
    finally:
        env.close()


def test_sink_400_dead_letters_those_and_delivers_the_rest():
    def behaviour(req):
        body = json.loads(req["body"])
        return (400, "rejected: bad order") if body.get("bad") else (200, "ok")

    env = Env(answering(behaviour)).start()
    bad_ids, good_ids = set(), set()
    try:
        for i in range(100):
            bad = i % 10 == 3
            st, body, _ = env.post({"key": f"k{i % 5}", "seq": i, "bad": bad})
            assert st == 202
            (bad_ids if bad else good_ids).add(json.loads(body)["id"])
        wait_until(
            lambda: good_ids <= {i for i, _ in env.delivered()}, 300, "the 90 good messages"
        )
        wait_until(
            lambda: metric(env.gw.metrics(), "sluice_dead_letter_total", route="r") == 10,
            120,
            "10 dead letters",
        )
        st, body, _ = request("GET", env.gw.admin, f"/v1/messages/{sorted(bad_ids)[0]}")
        st_json = json.loads(body)
        assert st == 200 and st_json["state"] == "dead_lettered", body
        assert "400" in st_json["last_error"], st_json
        env.gw.stop()
        dlq = env.gw.dump("r.dlq")
        assert {r["headers"]["message-id"] for r in dlq} == bad_ids
        for r in dlq:
            assert r["headers"]["x-sluice-status"] == "400", r["headers"]
            assert "HTTP 400" in r["headers"]["x-sluice-error"], r["headers"]
            assert r["headers"]["x-sluice-attempts"] == "1", r["headers"]
    finally:
        env.close()


def test_sigkill_with_5000_accepted_and_undelivered_loses_none():
    """The partner holds every call, so accepted messages pile up in the log;
    once 5,000 have been acknowledged (202) the gateway is SIGKILLed. After a
    restart every acknowledged message is delivered."""
    release = threading.Event()

    def held(req):
        release.wait(120)
        return 200, "ok"

    env = Env(answering(held)).start()
    try:
        acked = set()
        lock = threading.Lock()
        killed = threading.Event()

        def producer(t):
            for i in range(120):
                if killed.is_set():
                    return
                try:
                    st, body, _ = env.post({"key": f"k{t}", "seq": i, "pad": "y" * 200})
                except OSError:
                    return  # the gateway was killed under this request: not acknowledged
                if st == 202:
                    with lock:
                        acked.add(json.loads(body)["id"])
                        if len(acked) >= 5000 and not killed.is_set():
                            killed.set()
                            env.gw.kill()

        with ThreadPoolExecutor(max_workers=50) as ex:
            for f in [ex.submit(producer, t) for t in range(50)]:
                f.result()
        assert killed.is_set(), "the gateway was not killed"
        delivered_before = {i for i, _ in env.delivered()}
        in_flight = len(acked - delivered_before)
        assert in_flight >= 5000, f"only {in_flight} acknowledged and undelivered at the kill"
        release.set()
        env.gw.start(env.admin_port)
        wait_until(
            lambda: acked <= {i for i, _ in env.delivered()},
            600,
            f"all {len(acked)} acknowledged messages at the sink after restart",
            interval=0.5,
        )
        ids = [i for i, _ in env.delivered()]
        dups = len(ids) - len(set(ids))
        print(
            f"  {len(acked)} acknowledged before SIGKILL, {in_flight} of them undelivered; "
            f"all delivered after restart; {dups} duplicate(s)"
        )
    finally:
        release.set()
        env.close()


def test_ingest_error_codes_leave_the_log_unchanged():
    env = Env(answering(lambda req: (200, "ok"))).start()
    try:
        st, _, _ = env.post({"key": "a"})
        assert st == 202
        wait_until(lambda: env.end_offsets() == 1, 30, "first append")
        cases = [
            ("400 malformed JSON", "POST", "/orders", b'{"key": ', {"content-type": "application/json"}, 400),
            ("404 unknown path", "POST", "/nope", b"{}", {"content-type": "application/json"}, 404),
            ("405 method", "GET", "/orders", None, {}, 405),
            ("413 too large", "POST", "/orders", b'{"k":"' + b"z" * 70000 + b'"}', {"content-type": "application/json"}, 413),
            ("415 content type", "POST", "/orders", b"hello", {"content-type": "text/plain"}, 415),
        ]
        for what, method, path, body, headers, want in cases:
            st, out, hdrs = request(method, env.ingest, path, body, headers)
            assert st == want, f"{what}: got {st} {out[:200]}"
            err = json.loads(out)
            assert err.get("error") and "detail" in err, f"{what}: body {out[:200]}"
            if want == 405:
                assert "POST" in hdrs.get("allow", ""), hdrs
            assert env.end_offsets() == 1, f"{what}: the log changed"
    finally:
        env.close()


def test_backpressure_answers_503_with_retry_after():
    # A tiny max_disk_bytes and no retention: the log fills up and ingest
    # must push back instead of losing or deleting anything.
    env = Env(
        answering(lambda req: (200, "ok")),
        partitions=1,
        extra_sluice="    max_disk_bytes: 256KiB\n    segment_bytes: 64KiB\n",
    ).start()
    try:
        got_503 = None
        for i in range(5000):
            st, body, hdrs = env.post({"key": "k", "seq": i, "pad": "p" * 400})
            if st == 503:
                got_503 = (body, hdrs)
                break
            assert st == 202, (st, body)
        assert got_503, "no 503 before 5000 messages of 450 bytes into 256 KiB"
        body, hdrs = got_503
        assert hdrs.get("retry-after"), hdrs
        assert json.loads(body)["error"]
        before = env.end_offsets()
        st, _, _ = env.post({"key": "k", "seq": -1, "pad": "p" * 400})
        assert st == 503
        assert env.end_offsets() == before
    finally:
        env.close()


def test_idempotency_key_repeat_gets_first_answer_and_appends_nothing():
    env = Env(answering(lambda req: (200, "ok"))).start()
    try:
        h = {"idempotency-key": "order-42"}
        st1, b1, h1 = env.post({"key": "a", "n": 1}, h)
        assert st1 == 202
        wait_until(lambda: env.end_offsets() == 1, 30, "first append")
        st2, b2, h2 = env.post({"key": "a", "n": 1}, h)
        assert (st2, b2) == (st1, b1), (st2, b2)
        assert h2.get("location") == h1.get("location")
        assert env.end_offsets() == 1
    finally:
        env.close()


def test_rewind_replays_a_range_to_the_sink_again():
    env = Env(answering(lambda req: (200, "ok")), partitions=1).start()
    try:
        ids = []
        for i in range(20):
            st, body, _ = env.post({"key": "k", "seq": i})
            ids.append(json.loads(body)["id"])
        wait_until(lambda: len(env.delivered()) >= 20, 120, "20 deliveries")
        wait_until(lambda: env.gw.route("r")["partitions"][0]["committed"] == 20, 60, "commit")
        st, body, _ = request("POST", env.gw.admin, "/v1/routes/r/rewind", {"offset": 10})
        assert st == 200, body
        wait_until(lambda: len(env.delivered()) >= 30, 120, "10 replayed deliveries")
        wait_until(lambda: env.gw.route("r")["partitions"][0]["committed"] == 20, 60,
                   "the replay committed")
        got = [i for i, _ in env.delivered()]
        assert len(got) == 30, len(got)
        assert got[20:] == ids[10:], "replay is not offsets 10..19 in order"
        # by timestamp: everything from the start again
        st, body, _ = request(
            "POST", env.gw.admin, "/v1/routes/r/rewind", {"timestamp": "2000-01-01T00:00:00Z"}
        )
        assert st == 200, body
        wait_until(lambda: len(env.delivered()) >= 50, 120, "20 more replayed deliveries")
    finally:
        env.close()


def test_default_config_writes_the_posted_message_to_the_file():
    work = os.path.join("/tmp", f"sluice-default-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(os.path.join(work, "conf"))
    shutil.copy(os.path.join(ROOT, "conf", "sluice.yaml"), os.path.join(work, "conf"))
    gw = Gateway(open(os.path.join(ROOT, "conf", "sluice.yaml")).read(), workdir=work)
    try:
        gw.start(9400)
        st, body, hdrs = post_json("127.0.0.1:8080", "/orders", {"customer": {"id": "c1"}, "total": 12.5})
        assert st == 202, (st, body)
        reply = json.loads(body)
        assert set(reply) >= {"id", "route", "partition", "offset"}, reply
        assert hdrs["location"] == f"/v1/messages/{reply['id']}"
        out = os.path.join(work, "out", "orders.jsonl")
        audit = os.path.join(work, "out", "audit.jsonl")

        def lines(path):
            try:
                with open(path) as f:
                    return [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                return []

        wait_until(lambda: lines(out) and lines(audit), 60, "the message in out/*.jsonl")
        rec = lines(out)[0]
        assert rec["id"] == reply["id"] and rec["body"]["customer"]["id"] == "c1", rec
        assert lines(audit)[0]["id"] == reply["id"]
        # Location is the message's status on the admin listener (README: APIs),
        # not on the ingest port
        st, body, _ = request("GET", "127.0.0.1:9400", hdrs["location"])
        assert st == 200 and json.loads(body)["id"] == reply["id"], (st, body)
        st, _, _ = request("GET", "127.0.0.1:8080", hdrs["location"])
        assert st == 404, st
        r = gw.run_cli("check", "-c", gw.config)
        assert r.returncode == 0 and r.stdout.strip() == "ok", (r.returncode, r.stdout, r.stderr)
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()


def test_check_reports_file_line_col_and_exits_2():
    gw = Gateway("sluice:\n  data_dir: ./data\n  lgo: {}\nroutes: {}\nconnectors: {}\n")
    try:
        r = gw.run_cli("check", "-c", gw.config)
        assert r.returncode == 2, (r.returncode, r.stdout)
        assert f"{gw.config}:3:3: unknown key 'lgo'" in r.stdout + r.stderr, r.stdout + r.stderr
    finally:
        gw.cleanup()


def test_log_dump_writes_strings_as_the_file_output_does():
    """`sluice log dump` and the file output escape through the same code
    (lib/json_escape.c): valid UTF-8 stays as it is, only the stray bytes
    become \\u00XX (read as Latin-1), and both print the same string."""
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(
        base_config(admin_port=admin_port)
        + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: file, path: ./out/raw.jsonl }}
routes:
  raw:
    from: {{ connector: in, path: /raw, methods: [POST], content_type: any }}
    partitions: 1
    key: "header:x-key"
    to:
      - {{ connector: out }}
"""
    )
    try:
        gw.start(admin_port)
        body = b"caf\xc3\xa9 \xff\x01\x7f\n end"
        # http.client sends a str header as Latin-1: the key is b"k\xe9", not UTF-8.
        st, reply, _ = request(
            "POST", f"127.0.0.1:{in_port}", "/raw", body, {"content-type": "text/plain", "x-key": "k\xe9"}
        )
        assert st == 202, (st, reply)
        out = os.path.join(gw.dir, "out", "raw.jsonl")

        def lines():
            try:
                with open(out, encoding="utf-8") as f:
                    return [json.loads(l) for l in f if l.strip()]
            except FileNotFoundError:
                return []

        wait_until(lines, 60, "the message in out/raw.jsonl")
        gw.stop()
        recs = gw.dump("raw")
        assert len(recs) == 1, recs
        assert recs[0]["key"] == "k\u00e9", recs[0]
        assert recs[0]["value"] == "caf\u00e9 \u00ff\x01\x7f\n end", recs[0]
        assert lines()[0]["key"] == recs[0]["key"] and lines()[0]["body"] == recs[0]["value"], lines()
    finally:
        if gw.proc is not None:
            gw.stop()
        gw.cleanup()
