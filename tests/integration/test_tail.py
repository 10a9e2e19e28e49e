"""The live tail, GET /v1/routes/NAME/tail on the admin listener: Server-Sent
Events of each message as it is accepted and delivered (id, key,
partition, offset, size, a preview cut at 256 bytes), behind the admin
token; and a client that never reads does not hold the route back: the
route delivers everything while that client's events are dropped and
counted for it."""

import json
import signal
import socket
import time

from harness import Gateway, base_config, free_port, metric, parse_metrics, post_json, request, wait_until

TOKEN = "t41l-token"


def tail_config(in_port, admin_port):
    return base_config(admin_port=admin_port, fsync="never").replace(
        "admin: {", f'admin: {{ token: "{TOKEN}", ') + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: file, path: out.jsonl }}
routes:
  feed:
    from: {{ connector: in, path: /feed, content_type: json }}
    key: "$.k"
    partitions: 2
    to: [ {{ connector: out }} ]
"""


class Stream:
    """A raw SSE client: a socket with a GET sent, read on demand."""

    def __init__(self, admin, path, rcvbuf=None):
        host, port = admin.rsplit(":", 1)
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect((host, int(port)))
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                          "Accept: text/event-stream\r\n\r\n".encode())
        self.data = b""

    def read_until(self, pred, timeout, what):
        self.sock.settimeout(0.2)

        def more():
            try:
                chunk = self.sock.recv(65536)
                if chunk:
                    self.data += chunk
            except socket.timeout:
                pass
            return pred(self.data)

        return wait_until(more, timeout, what, interval=0)

    def body(self):
        """The response body received so far, de-chunked (a chunk that has
        not fully arrived is left out)."""
        head, sep, rest = self.data.partition(b"\r\n\r\n")
        assert sep and b"chunked" in head.lower(), head
        out = b""
        while True:
            size_line, sep, after = rest.partition(b"\r\n")
            if not sep:
                return out
            size = int(size_line.split(b";")[0], 16)
            if size == 0 or len(after) < size + 2:
                return out
            out += after[:size]
            rest = after[size + 2:]

    def events(self):
        """The SSE events of the body so far, as (name, data)."""
        out, name = [], None
        body = self.body()
        body = body[:body.rfind(b"\n\n") + 2]  # whole events only
        for line in body.decode("utf-8").split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                out.append((name, json.loads(line[6:])))
                name = None
        return out

    def close(self):
        self.sock.close()


def test_tail_streams_accepted_and_delivered_with_a_bounded_preview():
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(tail_config(in_port, admin_port))
    try:
        gw.start(admin_port)
        admin = f"127.0.0.1:{admin_port}"
        st, _, _ = request("GET", admin, "/v1/routes/feed/tail")
        assert st == 401, "the tail needs the admin token"
        s = Stream(admin, "/v1/routes/feed/tail")
        s.read_until(lambda d: b"event: hello" in d, 30, "the hello event")
        assert b"text/event-stream" in s.data.split(b"\r\n\r\n")[0], s.data[:300]
        body = {"k": "cust-1", "pads": "é" * 300}
        raw = json.dumps(body, ensure_ascii=False).encode()
        st, ans, _ = request("POST", f"127.0.0.1:{in_port}", "/feed", raw,
                             {"content-type": "application/json"})
        assert st == 202, ans
        acc = json.loads(ans)
        s.read_until(lambda d: b"event: delivered" in d, 30, "the delivered event")
        evs = {name: data for name, data in s.events() if name in ("accepted", "delivered")}
        for name in ("accepted", "delivered"):
            e = evs[name]
            assert (e["id"], e["key"], e["partition"], e["offset"], e["size"]) == (
                acc["id"], "cust-1", acc["partition"], acc["offset"], len(raw)), (name, e)
            assert e["truncated"] is True and e["preview"].startswith('{"k": "cust-1", "pads": "éé'), e
            # cut at 256 bytes, before the "é" that would be split
            assert e["preview"].encode() == raw[:255], e["preview"]
        s.close()
        gw.stop()
    finally:
        gw.cleanup()


def test_a_tail_client_that_never_reads_does_not_hold_the_route_back():
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(tail_config(in_port, admin_port))
    n = 3000
    try:
        gw.start(admin_port)
        admin = f"127.0.0.1:{admin_port}"
        stuck = Stream(admin, "/v1/routes/feed/tail", rcvbuf=4096)
        stuck.read_until(lambda d: b"event: hello" in d, 30, "the stuck client's hello")
        ingest = f"127.0.0.1:{in_port}"
        pad = "x" * 400
        for i in range(n):
            st, ans, _ = post_json(ingest, "/feed", {"k": f"k{i % 7}", "i": i, "pad": pad})
            assert st == 202, ans

        def all_delivered():
            st, body, _ = request("GET", admin, "/metrics",
                                  headers={"authorization": f"Bearer {TOKEN}"})
            m = parse_metrics(body.decode())
            return metric(m, "sluice_messages_out_total", route="feed", output="out") == n

        wait_until(all_delivered, 60, f"all {n} messages delivered with a stuck tail client")
        # the stuck client now reads: its ring kept at most 256 events, the
        # rest were dropped and it is told how many
        stuck.read_until(lambda d: b"event: dropped" in d, 30, "the dropped count")
        drops = [d["dropped"] for name, d in stuck.events() if name == "dropped"]
        assert drops and drops[0] > 0, drops
        got = sum(1 for name, _ in stuck.events() if name in ("accepted", "delivered"))
        assert got < 2 * n, f"the stuck client got all {got} events: nothing was dropped"
        # and the operator sees the drops in a metric
        st, body, _ = request("GET", admin, "/metrics",
                              headers={"authorization": f"Bearer {TOKEN}"})
        counted = metric(parse_metrics(body.decode()), "sluice_tail_dropped_total", route="feed")
        assert counted is not None and counted >= sum(drops), (counted, drops)
        stuck.close()
        gw.stop()
    finally:
        gw.cleanup()


def test_a_reload_ends_live_tails_and_keeps_the_admin_connection():
    """A SIGHUP reload ends a live tail with its end of stream, and its
    connection, still open, takes the next request (answered by the new
    generation); a tail client that does not read its end is cut off, and
    neither holds the reload up."""
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(tail_config(in_port, admin_port))
    try:
        gw.start(admin_port)
        admin = f"127.0.0.1:{admin_port}"
        live = Stream(admin, "/v1/routes/feed/tail")
        stuck = Stream(admin, "/v1/routes/feed/tail", rcvbuf=4096)
        for s in (live, stuck):
            s.read_until(lambda d: b"event: hello" in d, 30, "the hello")
        pad = "x" * 400
        for i in range(400):  # more than the stuck client's buffers hold
            st, ans, _ = post_json(f"127.0.0.1:{in_port}", "/feed", {"k": "a", "i": i, "pad": pad})
            assert st == 202, ans
        live.read_until(lambda d: b"event: delivered" in d, 30, "the live events")
        gw.proc.send_signal(signal.SIGHUP)
        live.read_until(lambda d: d.endswith(b"\r\n0\r\n\r\n"), 30, "the end of the stream")
        end = len(live.data)
        live.sock.sendall(f"GET /v1/routes HTTP/1.1\r\nHost: x\r\n"
                          f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())
        live.read_until(lambda d: b'"name":"feed"' in d[end:], 30, "the next answer")
        assert live.data[end:].startswith(b"HTTP/1.1 200 "), live.data[end:end + 80]
        wait_until(lambda: "reload: done" in open(gw.stderr_path, errors="replace").read(), 30,
                   "the reload")
        assert "1 live tail stream(s) did not take their end; closing them" in \
            open(gw.stderr_path, errors="replace").read(), gw.log_tail()
        stuck.sock.settimeout(30)
        try:
            while stuck.sock.recv(65536):
                pass  # closed by the gateway: EOF
        except ConnectionResetError:
            pass
        live.close()
        stuck.close()
        gw.stop()
    finally:
        gw.cleanup()
