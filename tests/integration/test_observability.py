"""Observability (issue 16): JSON log lines carry route, msg_id, partition
and offset for a delivery retry and a dead letter; ctx.http calls are
counted per connector and status; sluice_messages_failed_total moves with
sluice_dead_letter_total; every metric named in docs/alerts.yml and
docs/grafana-dashboard.json exists in /metrics."""

import json
import os
import re

from harness import ROOT, Gateway, Sink, base_config, free_port, metric, post_json, request, wait_until

STEP_LUA = """
function enrich(msg, ctx)
  local r = ctx.http('crm', { path = '/lookup' })
  assert(r.ok, r.error)
  return msg
end
"""


class Partner:
    """The output: a body with "retry" is refused once with 503, then taken;
    a body with "dead" is refused with 400 (permanent); others are taken."""

    def __init__(self):
        self.refused = set()
        self.sink = Sink(self._answer)

    def _answer(self, req):
        body = json.loads(req["body"])
        if body.get("kind") == "dead":
            return 400, "rejected"
        if body.get("kind") == "retry" and body["n"] not in self.refused:
            self.refused.add(body["n"])
            return 503, "busy"
        return 200, "ok"


def start():
    crm, partner = Sink(lambda req: (200, '{"tier":"gold"}')), Partner()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port, extra_sluice="  log_format: json\n  log_level: debug\n") + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  crm: {{ type: http_client, base_url: "{crm.url}" }}
  out: {{ type: http_client, base_url: "{partner.sink.url}" }}
routes:
  r:
    from: {{ connector: in, path: /in, content_type: json }}
    partitions: 1
    steps:
      - lua: {{ file: enrich.lua, function: enrich }}
    to:
      - {{ connector: out }}
    on_error:
      retry: {{ max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms }}
""")
    with open(os.path.join(gw.dir, "enrich.lua"), "w") as f:
        f.write(STEP_LUA)
    gw.start(admin_port)
    return gw, crm, partner, f"127.0.0.1:{in_port}"


def post(ingest, obj):
    st, body, _ = post_json(ingest, "/in", obj)
    assert st == 202, (st, body)
    return json.loads(body)["id"]


def json_lines(gw):
    out = []
    with open(gw.stderr_path, errors="replace") as f:
        for line in f:
            if line.startswith("{"):
                out.append(json.loads(line))
    return out


def lines_for(gw, msg_id, level):
    return [l for l in json_lines(gw) if l.get("msg_id") == msg_id and l["level"] == level]


def test_retry_and_dead_letter_logs_carry_fields_and_metrics_agree():
    gw, crm, partner, ingest = start()
    try:
        ok = post(ingest, {"kind": "ok", "n": 1})
        retry = post(ingest, {"kind": "retry", "n": 2})
        dead = post(ingest, {"kind": "dead", "n": 3})
        wait_until(lambda: metric(gw.metrics(), "sluice_dead_letter_total", route="r") == 1, 60,
                   "the dead letter")
        wait_until(lambda: metric(gw.metrics(), "sluice_messages_out_total", route="r") == 2, 60,
                   "two deliveries")
        # the latency is observed at the commit, just after the deliveries
        wait_until(lambda: metric(gw.metrics(), "sluice_delivery_latency_seconds_count", route="r") >= 2,
                   60, "the deliveries' latency")

        retried = lines_for(gw, retry, "debug")
        assert len(retried) == 1, retried
        r = retried[0]
        assert r["route"] == "r" and r["partition"] == 0 and r["offset"] == 1, r
        assert r["attempt"] == 1 and r["status"] == 503 and r["connector"] == "out", r
        assert "503" in r["error"], r

        dead_lines = [l for l in lines_for(gw, dead, "warn") if "dead-lettered" in l["msg"]]
        assert len(dead_lines) == 1, lines_for(gw, dead, "warn")
        d = dead_lines[0]
        assert d["route"] == "r" and d["partition"] == 0 and d["offset"] == 2, d
        assert d["status"] == 400 and d["connector"] == "out", d
        assert lines_for(gw, ok, "warn") == [] and lines_for(gw, ok, "debug") == []

        m = gw.metrics()
        assert metric(m, "sluice_messages_failed_total", route="r") == 1, m
        assert metric(m, "sluice_output_failed_total", route="r", output="out") == 1, m
        # the two deliveries, not the dead letter; the retried one waited >= 10 ms
        assert metric(m, "sluice_delivery_latency_seconds_count", route="r") == 2, m
        assert metric(m, "sluice_delivery_latency_seconds_sum", route="r") >= 0.01, m
        # the step ran once per message read from the log: 3 messages, and the
        # retried one is not run again (its steps were done before the output)
        assert metric(m, "sluice_ctx_http_total", connector="crm", code="200") == crm.count(), m
        assert crm.count() >= 3
        # caught up: no undelivered record, so no age
        assert "sluice_route_lag_seconds{route=\"r\",partition=\"0\"}" in m, m
        assert metric(m, "sluice_route_lag_seconds", route="r") == 0, m
        assert metric(m, "sluice_ready") == 1, m

        st, body, _ = request("GET", gw.admin, "/metrics")
        assert st == 200
        exposed = set(re.findall(r"^(sluice_[a-z_]+)", body.decode(), re.M))
        for doc in ("alerts.yml", "grafana-dashboard.json"):
            with open(os.path.join(ROOT, "docs", doc)) as f:
                named = set(re.findall(r"\b(sluice_[a-z_]+)", f.read()))
            assert len(named) >= 6, (doc, named)
            assert named <= exposed, (doc, sorted(named - exposed))
    finally:
        gw.stop()
        gw.cleanup()
        crm.close()
        partner.sink.close()


def test_lag_seconds_grows_while_a_partner_is_down_and_returns_to_zero():
    up = {"ok": False}
    partner = Sink(lambda req: (200, "ok") if up["ok"] else (503, "down"))
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: http_client, base_url: "{partner.url}", breaker: {{ open_for: 200ms }} }}
routes:
  r:
    from: {{ connector: in, path: /in, content_type: json }}
    partitions: 1
    to:
      - {{ connector: out }}
    on_error:
      retry: {{ max_attempts: 1000, initial_backoff: 50ms, max_backoff: 100ms }}
""")
    gw.start(admin_port)
    try:
        assert metric(gw.metrics(), "sluice_route_lag_seconds", route="r") == 0
        post(f"127.0.0.1:{in_port}", {"n": 1})
        wait_until(lambda: metric(gw.metrics(), "sluice_route_lag_seconds", route="r") >= 1.0, 30,
                   "a lag of a second")
        assert metric(gw.metrics(), "sluice_route_lag", route="r") == 1
        up["ok"] = True
        wait_until(lambda: metric(gw.metrics(), "sluice_messages_out_total", route="r") == 1, 30,
                   "the delivery")
        wait_until(lambda: metric(gw.metrics(), "sluice_route_lag_seconds", route="r") == 0, 30,
                   "no lag once delivered")
        m = gw.metrics()
        assert metric(m, "sluice_delivery_latency_seconds_count", route="r") == 1, m
        assert metric(m, "sluice_delivery_latency_seconds_sum", route="r") >= 1.0, m
    finally:
        gw.stop()
        gw.cleanup()
        partner.close()


def thread_names(pid):
    names = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            names.append(f.read().strip())
    return names


def test_threads_carry_names_an_operator_can_read():
    """top -H, ps -L and perf show which thread is which: the log's flusher
    and sync helpers, one worker per partition named after its route, the
    HTTP input's timer."""
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port, fsync="always") + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: file, path: out.jsonl }}
routes:
  orders:
    from: {{ connector: in, path: /in, content_type: json, reply: sync }}
    partitions: 2
    to:
      - {{ connector: out }}
""")
    gw.start(admin_port)
    try:
        names = thread_names(gw.proc.pid)
        for want in ("sl-log-flush", "sl-log-sync", "w0:orders", "w1:orders", "http-timer"):
            assert want in names, (want, sorted(names))
    finally:
        gw.stop()
        gw.cleanup()
