"""Hostile input through the real binary: a poison message (a Lua step whose
pattern backtracks for minutes) fails at its time budget and is
dead-lettered; the messages behind it on the same partition are delivered,
also after a SIGKILL and restart while the poison was being retried."""

import json
import os

from harness import Gateway, Sink, base_config, free_port, metric, post_json, request, wait_until

POISON_LUA = """
function step(msg, ctx)
  local m = msg:json()
  if m.poison then
    -- backtracks for minutes inside one C call (string.find)
    local s = ('a'):rep(5e5)
    s:find('.-.-.-.-.-.-b')
  end
  return msg
end
"""


def poison_config(workdir, sink_url, in_port, admin_port):
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  sink: {{ type: http_client, base_url: "{sink_url}", timeout: 2s }}
routes:
  r:
    from: {{ connector: in, path: /in, content_type: json }}
    partitions: 1
    steps:
      - lua: {{ file: {os.path.join(workdir, "poison.lua")}, function: step, timeout: 200ms }}
    to:
      - {{ connector: sink, path: /out }}
    on_error:
      retry: {{ max_attempts: 3, initial_backoff: 10ms, max_backoff: 50ms }}
"""


def test_poison_message_is_dead_lettered_and_its_partition_moves_on():
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway("")
    try:
        with open(os.path.join(gw.dir, "poison.lua"), "w") as f:
            f.write(POISON_LUA)
        with open(gw.config, "w") as f:
            f.write(poison_config(gw.dir, sink.url, in_port, admin_port))
        gw.start(admin_port)
        ingest = f"127.0.0.1:{in_port}"
        st, _, _ = request("POST", gw.admin, "/v1/routes/r/pause")
        assert st == 200
        st, body, _ = post_json(ingest, "/in", {"poison": True})
        assert st == 202, body
        poison_id = json.loads(body)["id"]
        good = []
        for i in range(5):
            st, body, _ = post_json(ingest, "/in", {"n": i})
            assert st == 202, body
            good.append(json.loads(body)["id"])
        # SIGKILL with the poison at the head of the partition: after the
        # restart the route reads it first, and it must fail at its budget
        gw.kill()
        gw.start(admin_port)
        request("POST", gw.admin, "/v1/routes/r/resume")
        wait_until(lambda: metric(gw.metrics(), "sluice_dead_letter_total", route="r") == 1, 120,
                   "the poison message dead-lettered")
        wait_until(lambda: {r["headers"].get("x-message-id") for r in sink.requests} >= set(good),
                   120, "the 5 messages behind the poison delivered")
        gw.stop()
        dlq = gw.dump("r.dlq")
        assert [r["headers"]["message-id"] for r in dlq] == [poison_id]
        assert "timeout after 200 ms" in dlq[0]["headers"]["x-sluice-error"], dlq[0]["headers"]
    finally:
        sink.close()
        gw.cleanup()


def schema_check(gw, schema_text, extra_files=None):
    """Writes main.xsd (and extra files) beside the config, a route whose
    validate step uses it, and runs `sluice check`."""
    for name, text in (extra_files or {}).items():
        with open(os.path.join(gw.dir, name), "w") as f:
            f.write(text)
    with open(os.path.join(gw.dir, "main.xsd"), "w") as f:
        f.write(schema_text)
    with open(gw.config, "w") as f:
        f.write(base_config(admin_port=free_port()) + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{free_port()}" }}
  out: {{ type: stdout }}
routes:
  r:
    from: {{ connector: in, path: /x }}
    steps:
      - validate: {{ xml_schema: main.xsd }}
    to: [ {{ connector: out }} ]
""")
    return gw.run_cli("check", "-c", gw.config)


XSD_HEAD = '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'


def test_schema_imports_are_local_only():
    import socket
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted = []

    def accept_all():
        while True:
            try:
                c, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            c.close()

    threading.Thread(target=accept_all, daemon=True).start()
    gw = Gateway("")
    try:
        # an import over the network is never fetched
        r = schema_check(gw, XSD_HEAD + f'<xs:import namespace="urn:x" '
                         f'schemaLocation="http://127.0.0.1:{port}/remote.xsd"/></xs:schema>')
        assert r.returncode == 2, r.stdout + r.stderr
        assert "never fetched over the network" in r.stdout, r.stdout
        assert accepted == [], "sluice check connected to the schema's remote location"
        # an include outside the schema's directory is refused, and the
        # refused file's content is never printed
        r = schema_check(gw, XSD_HEAD + '<xs:include schemaLocation="/etc/passwd"/></xs:schema>')
        assert r.returncode == 2, r.stdout + r.stderr
        assert "only files in the schema's own directory" in r.stdout, r.stdout
        assert "root:" not in r.stdout + r.stderr, r.stdout + r.stderr
        # an include beside the schema works
        part = XSD_HEAD + '<xs:element name="order" type="xs:string"/></xs:schema>'
        r = schema_check(gw, XSD_HEAD + '<xs:include schemaLocation="part.xsd"/></xs:schema>',
                         {"part.xsd": part})
        assert r.returncode == 0, r.stdout + r.stderr
    finally:
        listener.close()
        gw.cleanup()
