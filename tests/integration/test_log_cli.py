"""`sluice log ls|dump|tail|replay --admin HOST:PORT` against a running
gateway with an admin token: what the CLI prints, what the sink receives
after a replay, and the error (exit 1) without the token."""

import json
import os
import queue
import subprocess
import threading

from harness import SLUICE, Gateway, Sink, base_config, free_port, post_json, wait_until

TOKEN = "t0ken-log"


def config(sink_url, in_port, admin_port):
    return base_config(admin_port=admin_port).replace(
        f'listen: "127.0.0.1:{admin_port}"', f'listen: "127.0.0.1:{admin_port}", token: "{TOKEN}"'
    ) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  sink: {{ type: http_client, base_url: "{sink_url}", timeout: 2s }}
routes:
  r:
    from: {{ connector: in, path: /orders, methods: [POST], content_type: json, reply: async }}
    partitions: 1
    to:
      - {{ connector: sink, path: /in }}
"""


class Env:
    def __init__(self):
        self.sink = Sink()
        self.in_port, self.admin_port = free_port(), free_port()
        self.gw = Gateway(config(self.sink.url, self.in_port, self.admin_port))
        self.gw.start(self.admin_port)

    def post(self, obj):
        st, body, _ = post_json(f"127.0.0.1:{self.in_port}", "/orders", obj)
        assert st == 202, (st, body)
        return json.loads(body)

    def cli(self, *args, token=TOKEN):
        env = {k: v for k, v in os.environ.items() if k != "SLUICE_ADMIN_TOKEN"}
        if token is not None:
            env["SLUICE_ADMIN_TOKEN"] = token
        return subprocess.run([os.path.abspath(SLUICE), "log", *args, "--admin", self.gw.admin],
                              capture_output=True, text=True, env=env, timeout=60)

    def delivered(self):
        with self.sink.lock:
            return [json.loads(r["body"]) for r in self.sink.requests]

    def close(self):
        try:
            if self.gw.proc is not None:
                self.gw.stop()
        finally:
            self.sink.close()
            self.gw.cleanup()


def topic_of(env):
    r = env.cli("ls")
    assert r.returncode == 0, r.stderr
    rows = [l.split() for l in r.stdout.splitlines()[1:]]
    assert rows, r.stdout
    return rows


def test_ls_dump_and_replay_against_a_running_gateway():
    env = Env()
    try:
        posted = [env.post({"n": i}) for i in range(3)]
        wait_until(lambda: len(env.delivered()) == 3, 60, "3 deliveries")
        rows = topic_of(env)  # the route's topic is named after it
        assert ["r", "0", "0", "3"] in rows and ["r.dlq", "0", "0", "0"] in rows, rows
        topic = "r"

        r = env.cli("dump", topic)
        assert r.returncode == 0, r.stderr
        recs = [json.loads(l) for l in r.stdout.splitlines()]
        assert [x["offset"] for x in recs] == [0, 1, 2], recs
        assert [json.loads(x["value"]) for x in recs] == [{"n": 0}, {"n": 1}, {"n": 2}]
        assert set(recs[0]) == {"topic", "partition", "offset", "timestamp", "key", "headers",
                                "value"}, recs[0]
        assert recs[0]["headers"]["message-id"] == posted[0]["id"], recs[0]["headers"]

        r = env.cli("dump", topic, "-o", "1", "-n", "1")
        assert [json.loads(l)["offset"] for l in r.stdout.splitlines()] == [1], r.stdout

        r = env.cli("replay", "r", "--from", "0")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == {"route": "r", "rewound_to": 0}, r.stdout
        wait_until(lambda: len(env.delivered()) == 6, 60, "3 replayed deliveries")
        # the sink may see concurrent deliveries in any order
        assert sorted(d["n"] for d in env.delivered()[3:]) == [0, 1, 2], env.delivered()

        r = env.cli("replay", "r", "--from", "2000-01-01T00:00:00Z")  # by time: from the start
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["rewound_to"] == "2000-01-01T00:00:00Z", r.stdout
        wait_until(lambda: len(env.delivered()) == 9, 60, "3 more replayed deliveries")
        r = env.cli("replay", "r", "--from", "yesterday")
        assert r.returncode == 1 and "400" in r.stderr and "RFC 3339" in r.stderr, r.stderr
        r = env.cli("replay", "nosuch", "--from", "0")
        assert r.returncode == 1 and "404" in r.stderr, (r.returncode, r.stderr)
    finally:
        env.close()


def test_tail_follow_prints_a_record_posted_after_it_started():
    env = Env()
    try:
        env.post({"n": "before"})
        assert ["r", "0", "0", "1"] in topic_of(env)
        topic = "r"
        env_vars = dict(os.environ, SLUICE_ADMIN_TOKEN=TOKEN)
        p = subprocess.Popen([os.path.abspath(SLUICE), "log", "tail", "-f", topic, "-n", "1",
                              "--admin", env.gw.admin], stdout=subprocess.PIPE, text=True,
                             env=env_vars)
        lines = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(l) for l in p.stdout], daemon=True)
        reader.start()
        try:
            first = json.loads(lines.get(timeout=30))
            assert json.loads(first["value"]) == {"n": "before"}, first
            env.post({"n": "after"})
            rec = json.loads(lines.get(timeout=30))  # raises queue.Empty past the deadline
            assert (rec["offset"], json.loads(rec["value"])) == (1, {"n": "after"}), rec
            assert p.poll() is None, "tail -f exited"
        finally:
            p.terminate()
            p.wait(timeout=10)
    finally:
        env.close()


def test_without_the_token_the_cli_says_so_and_exits_1():
    env = Env()
    try:
        r = env.cli("ls", token=None)
        assert r.returncode == 1, (r.returncode, r.stdout)
        assert "401" in r.stderr and "SLUICE_ADMIN_TOKEN" in r.stderr, r.stderr
        r = env.cli("ls", "--token", "wrong", token=None)
        assert r.returncode == 1 and "403" in r.stderr, r.stderr
        r = env.cli("dump", "x", token=None)
        assert r.returncode == 1 and "401" in r.stderr, r.stderr
        r = env.cli("replay", "r", "--from", "0", token=None)
        assert r.returncode == 1 and "401" in r.stderr, r.stderr
    finally:
        env.close()
