"""SIGHUP reloads the config while messages flow: a route is changed, one
removed and one added; every message that got a 202 is delivered, before or
after the reload, and the listener never refuses a connection."""

import json
import os
import signal
import threading
import time

from harness import Gateway, Sink, base_config, free_port, post_json, request, wait_until


def config(sink_url, in_port, admin_port, version):
    routes = {
        1: """
  a:
    from: { connector: in, path: /a, content_type: json }
    partitions: 2
    key: "$.k"
    to: [ { connector: sink, path: /a } ]
  b:
    from: { connector: in, path: /b, content_type: json }
    to: [ { connector: sink, path: /b } ]
""",
        2: """
  a:
    from: { connector: in, path: /a, content_type: json }
    partitions: 2
    key: "$.k"
    steps:
      - set: { headers: { x-config: v2 } }
    to: [ { connector: sink, path: /a } ]
  c:
    from: { connector: in, path: /c, content_type: json }
    to: [ { connector: sink, path: /c } ]
""",
    }[version]
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  sink: {{ type: http_client, base_url: "{sink_url}", timeout: 2s, forward_headers: [x-config] }}
routes:{routes}"""


def test_sighup_reload_adds_removes_changes_routes_without_losing_messages():
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(config(sink.url, in_port, admin_port, 1))
    ingest = f"127.0.0.1:{in_port}"
    acked, lock = set(), threading.Lock()
    stop = threading.Event()
    refused = [0]
    busy = [0]

    def stream(t):
        i = 0
        while not stop.is_set():
            try:
                st, body, _ = post_json(ingest, "/a", {"k": f"k{t}", "i": i})
            except OSError:
                refused[0] += 1
                time.sleep(0.01)
                continue
            if st == 202:
                with lock:
                    acked.add(json.loads(body)["id"])
                i += 1
            else:
                busy[0] += 1
                time.sleep(0.01)

    try:
        gw.start(admin_port)
        threads = [threading.Thread(target=stream, args=(t,)) for t in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) > 200, 60, "some traffic before the reload")
        with open(gw.config, "w") as f:
            f.write(config(sink.url, in_port, admin_port, 2))
        gw.proc.send_signal(signal.SIGHUP)

        def has_c():
            try:
                return request("GET", gw.admin, "/v1/routes/c", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(has_c, 60, "route c after the reload")
        n_at_reload = len(acked)
        wait_until(lambda: len(acked) > n_at_reload + 200, 60, "traffic after the reload")
        stop.set()
        for t in threads:
            t.join()
        st, body, _ = post_json(ingest, "/c", {"k": "new"})
        assert st == 202, st
        acked.add(json.loads(body)["id"])  # waited for below, like the others
        st, _, _ = post_json(ingest, "/b", {"k": "gone"})
        assert st == 404, st

        def delivered():
            with sink.lock:
                return {r["headers"]["x-message-id"] for r in sink.requests}

        wait_until(lambda: acked <= delivered(), 120, f"all {len(acked)} acknowledged messages")
        with sink.lock:
            v2 = [r for r in sink.requests if r["headers"].get("x-config") == "v2"]
            on_c = [r for r in sink.requests if r["path"] == "/c"]
        assert v2, "no message went through the changed route"
        assert len(on_c) == 1
        print(f"  {len(acked)} acknowledged and delivered across the reload; "
              f"{refused[0]} connection error(s), {busy[0]} non-202 answer(s) during it")
        assert refused[0] == 0, f"{refused[0]} connection(s) refused during the reload"
        gw.stop()
    finally:
        stop.set()
        sink.close()
        gw.cleanup()


def test_sighup_with_a_broken_config_keeps_the_running_one():
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(config(sink.url, in_port, admin_port, 1))
    try:
        gw.start(admin_port)
        with open(gw.config, "a") as f:
            f.write("  broken: { from: { connector: nope, path: /x }, to: [] }\n")
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "the running config stays" in open(gw.stderr_path).read(), 30, "the reload error")
        st, _, _ = post_json(f"127.0.0.1:{in_port}", "/b", {"k": 1})
        assert st == 202
        wait_until(lambda: sink.count() == 1, 30, "delivery on the old config")
        gw.stop()
    finally:
        sink.close()
        gw.cleanup()
