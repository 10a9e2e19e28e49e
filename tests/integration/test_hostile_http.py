"""Hostile HTTP input through the real binary: request framing that a proxy
in front could read differently (two Content-Length headers, Content-Length
with Transfer-Encoding), a NUL byte in the path, routing keys that are
missing, null, objects or arrays (400, nothing appended), and an XML body
with 80,000 attributes on an XPath-keyed route (answered at once, and a
concurrent small request is not held up)."""

import json
import socket
import threading
import time

from harness import Gateway, base_config, free_port, metric, post_json, request


def raw_request(port, data, timeout=30):
    """Sends data on a fresh socket and returns the status code of the first
    response line (0 when the server closed without answering)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    line = got.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 else 0


def http_config(in_port, admin_port):
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: file, path: ./out.jsonl }}
routes:
  j:
    from: {{ connector: in, path: /j, content_type: json }}
    partitions: 4
    key: "$.k"
    to: [ {{ connector: out }} ]
  x:
    from: {{ connector: in, path: /x, content_type: xml }}
    key: "/order/@id"
    to: [ {{ connector: out }} ]
"""


def start(tmp_ports=None):
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(http_config(in_port, admin_port))
    gw.start(admin_port)
    return gw, in_port


def appended(gw, route):
    return metric(gw.metrics(), "sluice_messages_in_total", route=route) or 0


def test_ambiguous_framing_and_nul_path_are_refused():
    gw, port = start()
    try:
        body = b'{"k":"a"}'
        two_lengths = (b"POST /j HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 9\r\nContent-Length: 4\r\n\r\n" + body)
        length_and_chunked = (
            b"POST /j HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 14\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n" + body + b"\r\n0\r\n\r\n")
        nul_path = (b"POST /j%00 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 9\r\n\r\n" + body)
        nul_later = (b"POST /j%00/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 9\r\n\r\n" + body)
        got = [raw_request(port, req) for req in (two_lengths, length_and_chunked, nul_path,
                                                  nul_later)]
        assert got == [400, 400, 400, 400], got
        assert appended(gw, "j") == 0
        # the same requests framed once are accepted
        ok = (b"POST /j HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 9\r\n\r\n" + body)
        assert raw_request(port, ok) == 202
        chunked = (b"POST /j HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n9\r\n" + body + b"\r\n0\r\n\r\n")
        assert raw_request(port, chunked) == 202
        assert appended(gw, "j") == 2
        gw.stop()
    finally:
        gw.cleanup()


def test_a_key_that_is_missing_null_an_object_or_an_array_is_400():
    gw, port = start()
    try:
        ingest = f"127.0.0.1:{port}"
        for bad in ({}, {"k": None}, {"k": [1, 2]}, {"k": {"a": 1}}, [1]):
            st, body, _ = post_json(ingest, "/j", bad)
            assert st == 400, (bad, st, body)
            assert json.loads(body)["error"] == "bad_key", body
        assert appended(gw, "j") == 0
        st, body, _ = request("POST", ingest, "/x", b"<order><n/></order>",
                              {"content-type": "application/xml"})
        assert st == 400, body
        assert json.loads(body)["error"] == "bad_key", body
        assert appended(gw, "x") == 0
        # strings, numbers and booleans are keys (by their JSON text)
        for good in ({"k": "a"}, {"k": 7}, {"k": 1.5}, {"k": True}, {"k": ""}):
            st, body, _ = post_json(ingest, "/j", good)
            assert st == 202, (good, st, body)
        assert appended(gw, "j") == 5
        gw.stop()
    finally:
        gw.cleanup()


def test_xml_with_80000_attributes_does_not_stall_the_listener():
    gw, port = start()
    try:
        ingest = f"127.0.0.1:{port}"
        attrs = " ".join(f"a{i:x}=\"1\"" for i in range(80000))
        big = f'<order id="o1" {attrs}/>'.encode()
        assert len(big) > 800_000
        answers = []

        def post_big():
            try:
                st, body, _ = request("POST", ingest, "/x", big,
                                      {"content-type": "application/xml"}, timeout=120)
                answers.append((st, json.loads(body).get("detail")))
            except (OSError, ValueError) as e:
                answers.append(repr(e))

        threads = [threading.Thread(target=post_big) for _ in range(4)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        time.sleep(0.2)  # let the big bodies reach the listener first
        st, body, _ = post_json(ingest, "/j", {"k": "small"})
        small_s = time.monotonic() - t0
        assert st == 202, body
        for t in threads:
            t.join(120)
        big_s = time.monotonic() - t0
        assert small_s < 5, f"a small request waited {small_s:.1f}s behind 4 big XML bodies"
        assert big_s < 5, f"4 bodies with 80,000 attributes took {big_s:.1f}s"
        refused = (400, "XML line 1: element <order> has more than 256 attributes")
        assert answers == [refused] * 4, answers
        # a body within the limit is keyed (streamed: no tree) and appended
        ok = '<order id="o2" ' + " ".join(f'a{i}="1"' for i in range(255)) + "><n>1</n></order>"
        st, body, _ = request("POST", ingest, "/x", ok.encode(),
                              {"content-type": "application/xml"})
        assert st == 202, body
        assert appended(gw, "x") == 1
        gw.stop()
        assert [r["key"] for r in gw.dump("x")] == ["o2"]
    finally:
        gw.cleanup()
