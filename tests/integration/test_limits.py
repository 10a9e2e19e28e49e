"""Abuse limits of the http_server connector through the real binary: 500
slow connections from one client address (a byte a second, never finishing
their headers) do not keep another client from its 202s, and each is closed
at its header deadline (the bytes do not extend it); the per-client
connection limit refuses the rest at once; the route rate limit answers 429
with Retry-After past its burst, per client or for the whole route; too
many headers get 431. Refusals are counted by reason and nothing refused is
appended."""

import http.client
import json
import select
import socket
import time

from harness import Gateway, base_config, free_port, metric, wait_until

SLOW = 500
PER_CLIENT = 256  # the default max_connections_per_client
HEADER_TIMEOUT = 3.0


def config(in_port, admin_port):
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:
    type: http_server
    listen: "127.0.0.1:{in_port}"
    header_timeout: {int(HEADER_TIMEOUT)}s
  out: {{ type: file, path: ./out.jsonl }}
routes:
  j:
    from: {{ connector: in, path: /j, content_type: json }}
    to: [ {{ connector: out }} ]
  per_client:
    from:
      connector: in
      path: /c
      rate_limit: {{ rate: 1/m, burst: 5, per: client }}
    to: [ {{ connector: out }} ]
  per_route:
    from:
      connector: in
      path: /r
      rate_limit: {{ rate: 1/m, burst: 3, per: route }}
    to: [ {{ connector: out }} ]
"""


def post(port, path, source="127.0.0.1", headers=None):
    """One POST on a fresh connection from source; (status, headers)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10,
                                   source_address=(source, 0))
    try:
        h = {"content-type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=json.dumps({"k": 1}).encode(), headers=h)
        r = c.getresponse()
        r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}
    finally:
        c.close()


def start():
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(config(in_port, admin_port))
    gw.start(admin_port)
    return gw, in_port


def refused(gw, reason, route=None):
    labels = {"reason": reason}
    if route is not None:
        labels["route"] = route
    return metric(gw.metrics(), "sluice_http_refused_total", **labels)


def open_slow(port, n):
    """n connections from 127.0.0.2 that have sent the start of a request."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        s.setblocking(False)
        socks.append(s)
    return socks


def drip(socks, opened, closed):
    """Sends one more header byte on every open socket and notes the ones
    the server has closed (EOF or reset) with the time."""
    for s in socks:
        if s in closed:
            continue
        try:
            s.send(b"X" if s in opened else b"POST /j HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            opened.add(s)
        except OSError:
            closed[s] = time.monotonic()
    readable, _, _ = select.select([s for s in socks if s not in closed], [], [], 0)
    for s in readable:
        try:
            data = s.recv(4096)
        except OSError:
            data = b""
        if not data:
            closed[s] = time.monotonic()


def test_slow_clients_are_closed_at_their_deadline_and_do_not_lock_out_others():
    gw, port = start()
    socks = []
    try:
        t0 = time.monotonic()
        socks = open_slow(port, SLOW)
        opened, closed = set(), {}
        latencies = []
        deadline = t0 + HEADER_TIMEOUT + 5
        while len(closed) < SLOW and time.monotonic() < deadline:
            drip(socks, opened, closed)
            t = time.monotonic()
            st, _ = post(port, "/j")
            latencies.append(time.monotonic() - t)
            assert st == 202, st
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t)))  # a byte a second
        assert len(closed) == SLOW, f"{SLOW - len(closed)} slow connections still open"
        # PER_CLIENT were admitted and held until the header
        # deadline, though each sent a byte every second; the rest closed at once
        held = sorted(c - t0 for c in closed.values())
        assert sum(1 for h in held if h >= HEADER_TIMEOUT - 0.5) == PER_CLIENT, held[-270:]
        assert held[-1] < HEADER_TIMEOUT + 2.5, held[-1]
        assert max(latencies) < 1.0, latencies
        wait_until(lambda: refused(gw, "header_timeout") == PER_CLIENT, 10,
                   "header_timeout counted")
        assert refused(gw, "too_many_connections_per_client") == SLOW - PER_CLIENT
        # the other client's requests all got 202 while the slow ones were held
        assert metric(gw.metrics(), "sluice_messages_in_total", route="j") == len(latencies)
    finally:
        for s in socks:
            s.close()
        gw.stop()
        gw.cleanup()


def test_rate_limit_answers_429_with_retry_after_per_client_and_per_route():
    gw, port = start()
    try:
        got = [post(port, "/c")[0] for _ in range(5)]
        assert got == [202] * 5, got
        st, hdrs = post(port, "/c")
        assert st == 429 and int(hdrs["retry-after"]) >= 30, (st, hdrs)
        # another client has its own bucket
        assert post(port, "/c", source="127.0.0.2")[0] == 202
        # per: route: one bucket whoever sends
        got = [post(port, "/r", source=src)[0] for src in ("127.0.0.1", "127.0.0.2", "127.0.0.1")]
        assert got == [202] * 3, got
        st, hdrs = post(port, "/r", source="127.0.0.2")
        assert st == 429 and "retry-after" in hdrs, (st, hdrs)
        m = gw.metrics()
        assert metric(m, "sluice_messages_in_total", route="per_client") == 6
        assert metric(m, "sluice_messages_in_total", route="per_route") == 3
        assert refused(gw, "rate_limited", route="per_client") == 1
        assert refused(gw, "rate_limited", route="per_route") == 1
    finally:
        gw.stop()
        gw.cleanup()


def test_too_many_headers_get_431():
    gw, port = start()
    try:
        many = {f"x-h{i}": "v" for i in range(101)}
        assert post(port, "/j", headers=many)[0] == 431
        few = {f"x-h{i}": "v" for i in range(90)}
        assert post(port, "/j", headers=few)[0] == 202
        assert refused(gw, "too_many_headers") == 1
        assert metric(gw.metrics(), "sluice_messages_in_total", route="j") == 1
    finally:
        gw.stop()
        gw.cleanup()


def test_total_connection_limit_and_body_deadline():
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:
    type: http_server
    listen: "127.0.0.1:{in_port}"
    max_connections: 10
    body_timeout: 2s
  out: {{ type: file, path: ./out.jsonl }}
routes:
  j:
    from: {{ connector: in, path: /j, content_type: json }}
    to: [ {{ connector: out }} ]
""")
    gw.start(admin_port)
    socks = []
    try:
        # a body trickling in a byte every 0.3 s is closed 2 s after its headers
        s = socket.create_connection(("127.0.0.1", in_port), timeout=10)
        socks.append(s)
        s.sendall(b"POST /j HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n")
        t0 = time.monotonic()
        closed_at = None
        while closed_at is None and time.monotonic() - t0 < 10:
            try:
                s.sendall(b" ")
                r, _, _ = select.select([s], [], [], 0.3)
                if r and not s.recv(4096):
                    closed_at = time.monotonic() - t0
            except OSError:
                closed_at = time.monotonic() - t0
        assert closed_at is not None and 1.5 <= closed_at < 4.0, closed_at
        try:
            wait_until(lambda: refused(gw, "body_timeout") == 1, 30, "body_timeout counted once")
        except AssertionError as e:  # say what was counted instead
            counts = {k: refused(gw, k) for k in ("body_timeout", "header_timeout",
                                                   "too_many_connections")}
            raise AssertionError(f"{e}: refusals {counts}") from None
        # 15 connections against max_connections 10: 5 are closed at once
        more = [socket.create_connection(("127.0.0.1", in_port), timeout=10) for _ in range(15)]
        socks += more
        wait_until(lambda: refused(gw, "too_many_connections") == 5, 10,
                   "5 connections refused")

        def closed():
            n = 0
            for c in more:
                if select.select([c], [], [], 0)[0]:
                    try:
                        n += c.recv(1) == b""
                    except OSError:
                        n += 1
            return n
        wait_until(lambda: closed() == 5, 10, "5 connections closed by the server")
        time.sleep(0.5)  # and no more than 5: the others stay open
        assert closed() == 5
    finally:
        for s in socks:
            s.close()
        gw.stop()
        gw.cleanup()
