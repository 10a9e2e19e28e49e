"""Steps through the real binary: sluice test on the shipped examples, JSON
to XML and back with an XPath key, content-based routing with when:, and a
Lua enrichment whose lookup service is down (its breaker opens, the script's
fallback runs, messages keep flowing)."""

import json
import os
import subprocess
import time

from harness import ROOT, SLUICE, Gateway, Sink, base_config, free_port, metric, post_json, request, wait_until


def run_sluice(*args, cwd=ROOT):
    return subprocess.run([os.path.abspath(os.environ.get("SLUICE_BIN", SLUICE)), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=120)


def test_sluice_test_runs_the_example_route_tests():
    tests = sorted(os.path.join("routes", "tests", f) for f in os.listdir(os.path.join(ROOT, "routes", "tests")))
    r = run_sluice("test", *tests)
    assert r.returncode == 0, r.stdout + r.stderr
    last = r.stdout.strip().splitlines()[-1]
    assert last.endswith(" passed, 0 failed") and not last.startswith("0 "), last


def test_sluice_test_reports_a_failing_case_with_a_diff_and_exit_1():
    src = open(os.path.join(ROOT, "routes", "tests", "json_to_xml_partner.test.yaml")).read()
    gw = Gateway("")  # only for its temp dir
    try:
        broken = os.path.join(gw.dir, "broken.test.yaml")
        # the shipped tests point at ../json_to_xml_partner.yaml: keep that path valid
        with open(broken, "w") as f:
            f.write(src.replace("../json_to_xml_partner.yaml", os.path.join(ROOT, "routes", "json_to_xml_partner.yaml"))
                       .replace("<SKU>A1</SKU>", "<SKU>WRONG</SKU>", 1))
        r = run_sluice("test", broken)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert "FAIL" in r.stdout and " 1 failed" in r.stdout.strip().splitlines()[-1], r.stdout
    finally:
        gw.cleanup()


def test_sluice_check_compiles_lua_and_reports_position():
    gw = Gateway("")
    try:
        with open(os.path.join(gw.dir, "bad.lua"), "w") as f:
            f.write("function enrich(msg, ctx)\n  return msg +\nend\n")
        with open(gw.config, "w") as f:
            f.write(base_config(admin_port=free_port()) + """
connectors:
  in: { type: http_server, listen: "127.0.0.1:18999" }
  out: { type: stdout }
routes:
  r:
    from: { connector: in, path: /x }
    steps:
      - lua: { file: bad.lua, function: enrich }
    to:
      - { connector: out, when: "msg.headers[" }
""")
        r = gw.run_cli("check", "-c", gw.config)
        assert r.returncode == 2, (r.returncode, r.stdout)
        lines = r.stdout.strip().splitlines()
        assert len(lines) == 2, lines
        assert all(l.startswith(gw.config + ":") for l in lines), lines
        assert "bad.lua" in lines[0], lines
    finally:
        gw.cleanup()


def test_json_to_xml_route_and_xml_route_keyed_by_xpath():
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  sink: {{ type: http_client, base_url: "{sink.url}", timeout: 2s }}
routes:
  to-xml:
    from: {{ connector: in, path: /json, content_type: json }}
    steps:
      - json_to_xml: {{ root: order }}
    to: [ {{ connector: sink, path: /xml }} ]
  from-xml:
    from: {{ connector: in, path: /xml, content_type: xml }}
    partitions: 3
    key: "/order/customer/@id"
    steps:
      - xml_to_json: {{ coerce: true, force_array: [/order/line] }}
    to: [ {{ connector: sink, path: /json }} ]
""")
    try:
        gw.start(admin_port)
        st, body, _ = post_json(f"127.0.0.1:{in_port}", "/json", {"id": "o-1", "customer": {"@id": "c7"}, "total": 12.5})
        assert st == 202, body
        xml = b'<?xml version="1.0"?><order><customer id="c9"/><line><sku>A</sku><qty>2</qty></line></order>'
        st, body, _ = request("POST", f"127.0.0.1:{in_port}", "/xml", xml, {"content-type": "application/xml"})
        assert st == 202, body
        wait_until(lambda: sink.count() == 2, 60, "both messages at the sink")
        with sink.lock:
            got = {r["path"]: r for r in sink.requests}
        x = got["/xml"]
        assert x["headers"]["content-type"].startswith("application/xml"), x["headers"]
        assert b'<order><id>o-1</id><customer id="c7"/><total>12.5</total></order>' in x["body"], x["body"]
        j = got["/json"]
        doc = json.loads(j["body"])
        assert doc == {"order": {"customer": {"@id": "c9"}, "line": [{"sku": "A", "qty": 2}]}}, doc
        gw.stop()
        recs = gw.dump("from-xml")
        assert recs[0]["key"] == "c9", recs[0]
    finally:
        sink.close()
        gw.cleanup()


def test_when_routes_by_content():
    all_sink, gold_sink = Sink(), Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  all:  {{ type: http_client, base_url: "{all_sink.url}" }}
  gold: {{ type: http_client, base_url: "{gold_sink.url}" }}
routes:
  r:
    from: {{ connector: in, path: /o, content_type: json }}
    steps:
      - filter: "msg:json().total > 0"
    to:
      - {{ connector: all }}
      - {{ connector: gold, when: "msg:json().tier == 'gold'" }}
""")
    try:
        gw.start(admin_port)
        for i, tier in enumerate(["gold", "silver", "gold", "bronze"]):
            post_json(f"127.0.0.1:{in_port}", "/o", {"tier": tier, "total": 10 + i})
        post_json(f"127.0.0.1:{in_port}", "/o", {"tier": "gold", "total": 0})  # filtered out
        wait_until(lambda: all_sink.count() == 4 and gold_sink.count() == 2, 60, "4 + 2 deliveries")
        time.sleep(0.3)
        assert all_sink.count() == 4 and gold_sink.count() == 2
        m = gw.metrics()
        assert metric(m, "sluice_messages_dropped_total", route="r") == 1
        gw.stop()
    finally:
        all_sink.close()
        gold_sink.close()
        gw.cleanup()


ENRICH_LUA = """
function enrich(msg, ctx)
  local order = msg:json()
  local r = ctx.http("crm", { method = "GET", path = "/customers/" .. order.customer })
  if r.ok then
    msg.headers["x-tier"] = json.decode(r.body).tier
  else
    msg.headers["x-tier"] = "unknown"        -- the fallback path
    msg.headers["x-lookup-error"] = r.error
  end
  return msg
end
"""


def test_lua_enrichment_with_its_lookup_down_opens_the_breaker_and_falls_back():
    crm = Sink(lambda req: (503, "down"))
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  crm:  {{ type: http_client, base_url: "{crm.url}", timeout: 500ms,
          breaker: {{ min_calls: 3, window: 5, open_for: 30s }} }}
  sink: {{ type: http_client, base_url: "{sink.url}", forward_headers: [x-tier, x-lookup-error] }}
routes:
  r:
    from: {{ connector: in, path: /o, content_type: json }}
    steps:
      - lua: {{ file: enrich.lua, function: enrich, timeout: 2s }}
    to: [ {{ connector: sink }} ]
""")
    with open(os.path.join(gw.dir, "enrich.lua"), "w") as f:
        f.write(ENRICH_LUA)
    try:
        gw.start(admin_port)
        n = 30
        for i in range(n):
            st, _, _ = post_json(f"127.0.0.1:{in_port}", "/o", {"customer": f"c{i}"})
            assert st == 202
        wait_until(lambda: sink.count() == n, 120, f"all {n} messages delivered")
        with sink.lock:
            errors = [r["headers"].get("x-lookup-error", "") for r in sink.requests]
            tiers = {r["headers"].get("x-tier") for r in sink.requests}
        assert tiers == {"unknown"}, tiers
        assert errors.count("circuit open") >= n - 5, errors
        assert metric(gw.metrics(), "sluice_breaker_state", connector="crm") == 2
        # while open the CRM saw only the 3 calls that opened it: ctx.http
        # makes one attempt per call and never retries by itself
        assert crm.count() == 3, crm.count()
        # every call is counted: the 3 answered 503, the rest refused by the breaker
        m = gw.metrics()
        assert metric(m, "sluice_ctx_http_total", connector="crm", code="503") == 3, m
        assert metric(m, "sluice_ctx_http_total", connector="crm", code="circuit_open") == \
            errors.count("circuit open"), m
        gw.stop()
    finally:
        crm.close()
        sink.close()
        gw.cleanup()


STRICT_LUA = """
function enrich(msg, ctx)
  local order = msg:json()
  local r = ctx.http("crm", { method = "GET", path = "/customers/" .. order.customer })
  assert(r.ok, r.error)                     -- no fallback: retry the message later
  msg.headers["x-tier"] = json.decode(r.body).tier
  return msg
end
"""


def test_lua_step_without_fallback_retries_the_message_until_the_lookup_recovers():
    state = {"up": False}
    crm = Sink(lambda req: (200, '{"tier":"gold"}') if state["up"] else (503, "down"))
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  crm:  {{ type: http_client, base_url: "{crm.url}", timeout: 500ms,
          breaker: {{ min_calls: 1000, window: 1000 }} }}
  sink: {{ type: http_client, base_url: "{sink.url}", forward_headers: [x-tier] }}
routes:
  r:
    from: {{ connector: in, path: /o, content_type: json }}
    key: "$.customer"
    steps:
      - lua: {{ file: strict.lua, function: enrich }}
    to: [ {{ connector: sink }} ]
    on_error:
      retry: {{ max_attempts: 1000, initial_backoff: 20ms, max_backoff: 50ms }}
""")
    with open(os.path.join(gw.dir, "strict.lua"), "w") as f:
        f.write(STRICT_LUA)
    try:
        gw.start(admin_port)
        ids = []
        for i in range(5):
            st, body, _ = post_json(f"127.0.0.1:{in_port}", "/o", {"customer": "c1", "n": i})
            assert st == 202
            ids.append(json.loads(body)["id"])
        wait_until(lambda: crm.count() >= 3, 60, "the lookup to be tried 3 times")
        st, body, _ = request("GET", gw.admin, f"/v1/messages/{ids[0]}")
        assert st == 200 and json.loads(body)["state"] == "retrying", body
        assert sink.count() == 0  # nothing passes the step, nothing is skipped
        state["up"] = True
        wait_until(lambda: sink.count() == 5, 60, "all 5 messages delivered")
        with sink.lock:
            got = [(json.loads(r["body"])["n"], r["headers"].get("x-tier")) for r in sink.requests]
        assert got == [(i, "gold") for i in range(5)], got  # in order, each enriched once
        m = gw.metrics()
        assert metric(m, "sluice_messages_retried_total", route="r", step="1-lua") >= 2
        assert metric(m, "sluice_dead_letter_total", route="r") == 0
        gw.stop()
    finally:
        crm.close()
        sink.close()
        gw.cleanup()


def test_reply_sync_returns_the_transformed_body_502_on_dead_letter_504_on_timeout():
    def behaviour(req):
        if b"<reject>" in req["body"]:
            return 400, "no"
        if b"<slow>" in req["body"]:
            time.sleep(2)
        return 200, "ok"

    sink = Sink(behaviour)
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  sink: {{ type: http_client, base_url: "{sink.url}", timeout: 5s }}
routes:
  r:
    from: {{ connector: in, path: /sync, content_type: json, reply: sync, sync_timeout: 1s }}
    steps:
      - json_to_xml: {{ root: doc, declaration: false }}
    to: [ {{ connector: sink }} ]
""")
    try:
        gw.start(admin_port)
        ingest = f"127.0.0.1:{in_port}"
        st, body, hdrs = post_json(ingest, "/sync", {"a": 1})
        assert st == 200, (st, body)
        assert hdrs["content-type"].startswith("application/xml"), hdrs
        assert body == b"<doc><a>1</a></doc>", body
        st, body, _ = post_json(ingest, "/sync", {"reject": 1})
        assert st == 502 and json.loads(body)["error"] == "dead_lettered", (st, body)
        st, body, _ = post_json(ingest, "/sync", {"slow": 1})
        assert st == 504, (st, body)
        reply = json.loads(body)
        assert reply["error"] == "timeout" and "delivered" in reply["detail"], reply
        wait_until(lambda: sink.count() == 3, 30, "the slow message still delivered")
        gw.stop()
    finally:
        sink.close()
        gw.cleanup()


SPLIT_LUA = """
function per_line(msg, ctx)
  local order = msg:json()
  local out = {}
  for i, line in ipairs(order.lines) do
    local m = i == 1 and msg or msg:clone()
    m:set_json({ order = order.id, line = i, sku = line })
    out[#out + 1] = m
  end
  return out
end
"""


def test_lua_split_delivers_one_message_per_line_in_order():
    sink = Sink()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  sink: {{ type: http_client, base_url: "{sink.url}" }}
routes:
  r:
    from: {{ connector: in, path: /o, content_type: json }}
    key: "$.id"
    steps:
      - lua: {{ file: split.lua, function: per_line }}
      - filter: "msg:json().sku ~= 'skip'"
    to: [ {{ connector: sink }} ]
""")
    with open(os.path.join(gw.dir, "split.lua"), "w") as f:
        f.write(SPLIT_LUA)
    try:
        gw.start(admin_port)
        st, body, _ = post_json(f"127.0.0.1:{in_port}", "/o", {"id": "o1", "lines": ["a", "skip", "b", "c"]})
        assert st == 202
        first_id = json.loads(body)["id"]
        wait_until(lambda: sink.count() == 3, 60, "3 lines at the sink")
        time.sleep(0.3)
        with sink.lock:
            got = [(json.loads(r["body"]), r["headers"]["x-message-id"]) for r in sink.requests]
        assert [b["sku"] for b, _ in got] == ["a", "b", "c"], got
        ids = [i for _, i in got]
        assert ids[0] == first_id and len(set(ids)) == 3, ids
        m = gw.metrics()
        assert metric(m, "sluice_messages_dropped_total", route="r") == 1
        assert gw.route("r")["partitions"][0]["committed"] == 1
        gw.stop()
    finally:
        sink.close()
        gw.cleanup()
