"""State that survives a crash: Idempotency-Key answers and message status
after kill -9 and after a power cut (lazyfs). The key travels in the
message's record; on start the http_server input rebuilds its table from the
records inside the dedupe window, and GET /v1/messages/ID finds a message
the status table does not hold through the log's time index."""

import json
import os
import tempfile

from harness import Gateway, Sink, base_config, free_port, post_json, request, wait_until
from test_powercut import Disk


def config(sink_url, in_port, admin_port, data_dir="./data", max_attempts=10):
    return base_config(data_dir=data_dir, admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}", max_body: 64KiB }}
  sink: {{ type: http_client, base_url: "{sink_url}", timeout: 2s }}
routes:
  r:
    from: {{ connector: in, path: /orders, methods: [POST], content_type: json, reply: async }}
    partitions: 4
    key: "$.key"
    to:
      - {{ connector: sink, path: /in }}
    on_error:
      retry: {{ max_attempts: {max_attempts}, initial_backoff: 10ms, max_backoff: 100ms }}
"""


def sink_behaviour(req):
    body = json.loads(req["body"])
    if body.get("busy"):
        return (503, "busy")
    return (400, "rejected") if body.get("reject") else (200, "ok")


class Env:
    def __init__(self, data_dir="./data", workdir=None, max_attempts=1):
        self.sink = Sink(sink_behaviour)
        self.in_port, self.admin_port = free_port(), free_port()
        text = config(self.sink.url, self.in_port, self.admin_port, data_dir, max_attempts)
        self.gw = Gateway(text, workdir=workdir)
        self.ingest = f"127.0.0.1:{self.in_port}"

    def post(self, obj, key):
        return post_json(self.ingest, "/orders", obj, {"idempotency-key": key})

    def end_offsets(self):
        return [p["end_offset"] for p in self.gw.route("r")["partitions"]]

    def lag(self):
        return sum(p["lag"] for p in self.gw.route("r")["partitions"])

    def delivered(self, uid):
        with self.sink.lock:
            return [r for r in self.sink.requests if json.loads(r["body"]).get("uid") == uid]

    def message(self, mid):
        st, body, _ = request("GET", self.gw.admin, f"/v1/messages/{mid}")
        return st, json.loads(body)

    def close(self):
        try:
            if self.gw.proc is not None:
                self.gw.stop()
        finally:
            self.sink.close()
            self.gw.cleanup()


def test_idempotency_key_after_kill9_answers_first_id_appends_nothing():
    env = Env()
    try:
        env.gw.start(env.admin_port)
        st, b1, _ = env.post({"key": "a", "uid": "u1"}, "order-1")
        assert st == 202, (st, b1)
        first = json.loads(b1)
        wait_until(lambda: len(env.delivered("u1")) == 1, 30, "u1 delivered")
        wait_until(lambda: env.lag() == 0, 30, "route r committed")
        env.gw.kill()
        env.gw.start(env.admin_port)
        before = env.end_offsets()
        st, b2, h2 = env.post({"key": "a", "uid": "u1"}, "order-1")
        assert st == 202, (st, b2)
        assert json.loads(b2)["id"] == first["id"], (b2, first)
        assert h2.get("location") == f"/v1/messages/{first['id']}"
        assert env.end_offsets() == before, (env.end_offsets(), before)
        # a new key still goes through, and is delivered after u1's repeat would have been
        st, b3, _ = env.post({"key": "a", "uid": "u2"}, "order-2")
        assert st == 202, (st, b3)
        wait_until(lambda: len(env.delivered("u2")) == 1, 30, "u2 delivered")
        assert len(env.delivered("u1")) == 1, "u1 was delivered twice"
    finally:
        env.close()


def test_message_status_after_kill9_delivered_and_dead_lettered():
    env = Env()
    try:
        env.gw.start(env.admin_port)
        st, b1, _ = env.post({"key": "a", "uid": "ok"}, "k-ok")
        assert st == 202
        ok = json.loads(b1)
        st, b2, _ = env.post({"key": "b", "uid": "bad", "reject": True}, "k-bad")
        assert st == 202
        bad = json.loads(b2)
        wait_until(lambda: env.lag() == 0, 30, "route r done with both")
        env.gw.kill()
        env.gw.start(env.admin_port)
        st, m = env.message(ok["id"])
        assert st == 200, (st, m)
        assert m["state"] == "delivered", m
        assert (m["route"], m["partition"], m["offset"]) == ("r", ok["partition"], ok["offset"])
        st, m = env.message(bad["id"])
        assert st == 200, (st, m)
        assert m["state"] == "dead_lettered", m
        assert (m["partition"], m["offset"]) == (bad["partition"], bad["offset"]), m
        assert "400" in (m["last_error"] or ""), m
        st, m = env.message("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")
        assert st == 404, (st, m)
    finally:
        env.close()


def test_message_status_after_kill9_retrying_with_attempts_and_error():
    env = Env(max_attempts=1000000)
    try:
        env.gw.start(env.admin_port)
        st, b, _ = env.post({"key": "a", "uid": "busy", "busy": True}, "k-busy")
        assert st == 202
        busy = json.loads(b)
        wait_until(lambda: len(env.delivered("busy")) >= 2, 30, "two attempts before the crash")
        env.gw.kill()
        env.gw.start(env.admin_port)

        def retrying():
            st, m = env.message(busy["id"])
            assert st == 200, (st, m)
            return m if m["state"] == "retrying" else None

        m = wait_until(retrying, 30, "the message retrying again after the restart")
        assert m["attempts"] >= 1, m
        assert "503" in m["last_error"], m
        assert (m["partition"], m["offset"]) == (busy["partition"], busy["offset"]), m
    finally:
        env.close()


def test_idempotency_key_acknowledged_before_power_cut_is_recognised_after():
    work = tempfile.mkdtemp(prefix="sluice-custody-")
    disk = Disk(work)
    env = Env(data_dir=os.path.join(disk.mnt, "data"), workdir=work)
    try:
        disk.power_on()
        env.gw.start(env.admin_port)
        st, b1, _ = env.post({"key": "a", "uid": "p1"}, "cut-1")
        assert st == 202, (st, b1)
        first = json.loads(b1)
        env.gw.kill()
        disk.power_cut()  # loses whatever was not fsynced
        disk.power_on()
        env.gw.start(env.admin_port)
        before = env.end_offsets()
        st, b2, _ = env.post({"key": "a", "uid": "p1"}, "cut-1")
        assert st == 202, (st, b2)
        assert json.loads(b2)["id"] == first["id"], (b2, first)
        assert env.end_offsets() == before
        st, m = env.message(first["id"])
        assert st == 200 and m["offset"] == first["offset"], (st, m)
        env.gw.stop()
    finally:
        if env.gw.proc is not None:
            env.gw.kill()
        disk.close()
        env.sink.close()
        env.gw.cleanup()
