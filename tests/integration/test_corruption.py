"""Corrupt records in the log: the gateway is stopped, one byte of one
record is flipped (in the middle, at the start or at the end of a segment),
and the gateway starts again. With sluice.log.on_corruption: skip every
intact message is delivered, the damaged one is reported (log line, metric,
admin API) and quarantined to the DLQ, and new messages flow; with stop the
partition is held, /ready answers 503 naming it and the admin API names the
offset. `sluice log verify` reports each case offline. Also: the data_dir is
private (directories 0700, files 0600)."""

import json
import os
import stat
import struct

from harness import Gateway, Sink, base_config, free_port, metric, post_json, request, wait_until

N = 60


def config(sink_url, in_port, admin_port, policy):
    extra = "    segment_bytes: 4KiB\n"
    if policy != "skip":  # skip is the default
        extra += f"    on_corruption: {policy}\n"
    return base_config(admin_port=admin_port, extra_sluice=extra) + f"""
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


def records(path):
    """(offset, position, size) of each whole record at the start of a
    segment file (length + CRC framing, see core/record.h)."""
    with open(path, "rb") as f:
        data = f.read()
    out, pos = [], 0
    while pos + 24 <= len(data):
        (length,) = struct.unpack_from("<I", data, pos)
        if length == 0:
            break
        (offset,) = struct.unpack_from("<q", data, pos + 8)
        out.append((offset, pos, 4 + length))
        pos += 4 + length
    return out


def segments(gw):
    pdir = os.path.join(gw.dir, "data", "topics", "r", "0")
    return [os.path.join(pdir, n) for n in sorted(os.listdir(pdir)) if n.endswith(".log")]


def flip(path, pos):
    with open(path, "r+b") as f:
        f.seek(pos)
        b = f.read(1)
        f.seek(pos)
        f.write(bytes([b[0] ^ 0x5A]))


def corrupt(gw, where):
    """Flips a payload byte of one record and returns its offset: the middle
    record of segment 0, the first or the last record of segment 1."""
    segs = segments(gw)
    assert len(segs) >= 3, segs
    recs = records(segs[0] if where == "middle" else segs[1])
    off, pos, size = {"middle": recs[len(recs) // 2], "start": recs[0], "end": recs[-1]}[where]
    flip(segs[0] if where == "middle" else segs[1], pos + size - 3)
    return off


class Env:
    def __init__(self, policy):
        self.sink = Sink()
        self.in_port, self.admin_port = free_port(), free_port()
        self.gw = Gateway(config(self.sink.url, self.in_port, self.admin_port, policy))
        self.ingest = f"127.0.0.1:{self.in_port}"

    def seqs(self):
        with self.sink.lock:
            return [json.loads(r["body"])["seq"] for r in self.sink.requests]

    def post(self, seq):
        st, _, _ = post_json(self.ingest, "/orders", {"seq": seq, "pad": "x" * 100})
        assert st == 202, st

    def fill_paused(self):
        """N messages in the log, none delivered (route paused), then stop."""
        self.gw.start(self.admin_port)
        st, _, _ = request("POST", self.gw.admin, "/v1/routes/r/pause", {})
        assert st == 200, st
        for i in range(N):
            self.post(i)
        wait_until(lambda: self.gw.route("r")["partitions"][0]["end_offset"] == N, 60, "N appends")
        self.gw.stop()
        assert self.seqs() == []

    def start_unready(self):
        self.gw.start(self.admin_port, wait=False)

        def up():
            try:
                return request("GET", self.gw.admin, "/health", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(up, 60, "the admin API")

    def close(self):
        try:
            if self.gw.proc is not None:
                self.gw.stop()
        finally:
            self.sink.close()
            self.gw.cleanup()


def verify(env, bad):
    r = env.gw.run_cli("log", "verify", os.path.join(env.gw.dir, "data"))
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert f"r/0 " in r.stdout and f"offsets {bad}..{bad} unreadable" in r.stdout, r.stdout
    assert "1 damaged range(s)" in r.stdout, r.stdout


def run_skip(where):
    env = Env("skip")
    try:
        env.fill_paused()
        bad = corrupt(env.gw, where)
        verify(env, bad)
        env.start_unready()
        want = [i for i in range(N) if i != bad]
        wait_until(lambda: sorted(env.seqs()) == want, 60, f"the {N - 1} intact messages")
        m = env.gw.metrics()
        assert metric(m, "sluice_log_corrupt_records_total", topic="r") == 1, m
        assert metric(m, "sluice_dead_letter_total", route="r") == 1, m
        for i in range(N, N + 5):
            env.post(i)
        wait_until(lambda: sorted(env.seqs()) == want + list(range(N, N + 5)), 60, "new messages")
        assert request("GET", env.gw.admin, "/ready")[0] == 200
        assert env.seqs().count(bad) == 0
        # the quarantined bytes are kept for a person, never redriven into the route
        st, body, _ = request("POST", env.gw.admin, "/v1/dlq/r/redrive")
        ans = json.loads(body)
        assert st == 200 and ans["redriven"] == 0 and ans["refused"] == 1, (st, body)
        ends = sum(p["end_offset"] for p in env.gw.route("r")["partitions"])
        assert ends == N + 5, ends
        env.gw.stop()
        with open(env.gw.stderr_path) as f:
            log = f.read()
        assert f"topic r partition 0 offset {bad}: corrupt records at offsets {bad}..{bad}" in log
        dlq = env.gw.dump("r.dlq")
        assert len(dlq) == 1, dlq
        h = dlq[0]["headers"]
        assert f"corrupt records at offsets {bad}..{bad} of topic r partition 0" in h[
            "x-sluice-error"
        ], h
        assert h["x-sluice-offset"] == str(bad), h
    finally:
        env.close()


def test_skip_corrupt_record_in_the_middle_of_a_segment():
    run_skip("middle")


def test_skip_corrupt_record_at_the_start_of_a_segment():
    run_skip("start")


def test_skip_corrupt_record_at_the_end_of_a_segment():
    run_skip("end")


def test_stop_holds_the_partition_and_says_where():
    env = Env("stop")
    try:
        env.fill_paused()
        bad = corrupt(env.gw, "middle")
        verify(env, bad)
        env.start_unready()
        wait_until(lambda: sorted(env.seqs()) == list(range(bad)), 60, "the messages before it")

        def held():
            st, body, _ = request("GET", env.gw.admin, "/ready")
            return st == 503 and f"partition 0 held at corrupt offset {bad}" in body.decode()

        wait_until(held, 60, "/ready 503 naming the offset")
        p = env.gw.route("r")["partitions"][0]
        assert p["corrupt_offset"] == bad and p["corrupt_next_offset"] == bad + 1, p
        assert p["committed"] == bad, p
        assert f"offsets {bad}..{bad}" in p["last_error"], p
        m = env.gw.metrics()
        assert metric(m, "sluice_log_corrupt_records_total", topic="r") == 1, m
        # the operator moves it on: everything after the damage is delivered
        st, _, _ = request("POST", env.gw.admin, "/v1/routes/r/rewind", {"offset": bad + 1})
        assert st == 200, st
        want = [i for i in range(N) if i != bad]
        wait_until(lambda: sorted(env.seqs()) == want, 60, "the rest after a rewind")
        wait_until(lambda: request("GET", env.gw.admin, "/ready")[0] == 200, 60, "/ready 200")
    finally:
        env.close()


def test_data_dir_is_private():
    env = Env("skip")
    try:
        old = os.umask(0o022)
        try:
            env.gw.start(env.admin_port)
        finally:
            os.umask(old)
        for i in range(20):
            env.post(i)
        wait_until(lambda: len(env.seqs()) == 20, 60, "20 deliveries")
        env.gw.stop()
        data = os.path.join(env.gw.dir, "data")
        seen = {"dirs": 0, "files": 0}
        for root, dirs, files in os.walk(data):
            mode = stat.S_IMODE(os.stat(root).st_mode)
            assert mode == 0o700, (root, oct(mode))
            seen["dirs"] += 1
            for name in files:
                mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
                assert mode == 0o600, (root, name, oct(mode))
                seen["files"] += 1
        assert seen["dirs"] >= 5 and seen["files"] >= 6, seen
    finally:
        env.close()
