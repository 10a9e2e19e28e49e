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
