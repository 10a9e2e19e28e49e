"""Error answers to ingest callers (docs/ERRORS.md): every error path of the
ingest listener answers {"error": CODE, "detail": TEXT, "id": ID or null}
with a documented code, and no answer carries an internal URL, host, file
path, partner body, Lua error or traceback; the full reason is in the log
(with route, output and id) and in GET /v1/messages/ID on the admin
listener. Real binary, real partners."""

import json
import os
import re
import threading

from harness import ROOT, Gateway, base_config, free_port, request, wait_until
from test_reply_from import Partner

PARTNER_SECRET = "ERP-INTERNAL-TRACE at http://erp.corp.internal:8080/api/v2 in /opt/erp/orders.py"

LUA = """
function explode(msg, ctx)
  local t = nil
  return t.field  -- a Lua error: attempt to index a nil value
end
"""

XSD = """<?xml version="1.0"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
  <xs:element name="order"><xs:complexType><xs:sequence>
    <xs:element name="sku" type="xs:string"/>
  </xs:sequence></xs:complexType></xs:element>
</xs:schema>
"""


def documented_codes():
    """The codes of docs/ERRORS.md's table: (status, code) pairs."""
    with open(os.path.join(ROOT, "docs", "ERRORS.md"), encoding="utf-8") as f:
        rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \|", f.read(), re.M)
    assert len(rows) >= 15, rows
    return {(int(s), c) for s, c in rows}


def errors_config(erp_url, in_port, admin_port):
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}", max_body: 1KiB }}
  erp: {{ type: http_client, base_url: "{erp_url}/internal-erp", timeout: 10s }}
routes:
  plain:
    from: {{ connector: in, path: /plain, content_type: json }}
    key: "$.k"
    to: [ {{ topic: plain.out }} ]
  lua:
    from: {{ connector: in, path: /lua, content_type: json, reply: sync }}
    steps: [ {{ lua: {{ file: boom.lua, function: explode }} }} ]
    to: [ {{ topic: lua.out }} ]
  schema:
    from: {{ connector: in, path: /schema, content_type: xml, reply: sync }}
    steps: [ {{ validate: {{ xml_schema: order.xsd }} }} ]
    to: [ {{ topic: schema.out }} ]
  erp:
    from: {{ connector: in, path: /erp, content_type: json, reply: sync, sync_timeout: 2s,
            reply_from: erp }}
    to: [ {{ connector: erp, path: /orders }} ]
    on_error:
      retry: {{ max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }}
"""


class Env:
    def __init__(self):
        self.release = threading.Event()
        self.erp = Partner(self.behaviour)
        self.in_port, self.admin_port = free_port(), free_port()
        self.gw = Gateway(errors_config(self.erp.url, self.in_port, self.admin_port))
        for name, text in (("boom.lua", LUA), ("order.xsd", XSD)):
            with open(os.path.join(self.gw.dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        self.ingest = f"127.0.0.1:{self.in_port}"
        self.admin = f"127.0.0.1:{self.admin_port}"

    def behaviour(self, req):
        body = json.loads(req["body"])
        if body.get("mode") == "slow":
            self.release.wait(30)
            return 200, "{}", {"Content-Type": "application/json"}
        status = 400 if body.get("mode") == "refuse" else 500
        return status, PARTNER_SECRET, {"Content-Type": "text/plain"}


def leaks(env, body):
    """What in an answer body gives the gateway's internals away."""
    text = body.decode("utf-8", "replace")
    found = []
    for needle in ("http://", "https://", "127.0.0.1", "internal-erp", str(env.erp.url),
                   "ERP-INTERNAL", "erp.corp", "/opt/", env.gw.dir, "/tmp", ".lua", ".xsd",
                   "traceback", "stack", "attempt to index", "nil value", "HTTP 500",
                   "HTTP 400"):
        if needle.lower() in text.lower():
            found.append(needle)
    return found


def test_every_ingest_error_is_safe_coded_and_looked_up_by_the_operator():
    env = Env()
    codes = documented_codes()
    js = {"content-type": "application/json"}
    cases = [
        ("bad json", "POST", "/plain", b'{"k": "a",', js, 400, "invalid_json"),
        ("too big", "POST", "/plain", b'{"k": "' + b"x" * 2000 + b'"}', js, 413,
         "payload_too_large"),
        ("unknown route", "POST", "/nowhere", b"{}", js, 404, "not_found"),
        ("wrong method", "GET", "/plain", None, {}, 405, "method_not_allowed"),
        ("wrong content type", "POST", "/plain", b"<a/>", {"content-type": "application/xml"},
         415, "unsupported_media_type"),
        ("key missing", "POST", "/plain", b'{"other": 1}', js, 400, "bad_key"),
        ("bad idempotency key", "POST", "/plain", b'{"k": "a"}',
         dict(js, **{"idempotency-key": "k" * 300}), 400, "bad_idempotency_key"),
        ("lua error", "POST", "/lua", b'{"a": 1}', js, 502, "dead_lettered"),
        ("step failure (schema)", "POST", "/schema", b"<order><qty>1</qty></order>",
         {"content-type": "application/xml"}, 502, "dead_lettered"),
        ("partner 5xx until dead letter", "POST", "/erp", b'{"mode": "fail"}', js, 502,
         "dead_lettered"),
        ("partner 4xx refusal", "POST", "/erp", b'{"mode": "refuse"}', js, 502, "dead_lettered"),
        ("partner slow: timeout", "POST", "/erp", b'{"mode": "slow"}', js, 504, "timeout"),
    ]
    try:
        env.gw.start(env.admin_port)
        stored = []
        for what, method, path, body, headers, want_status, want_code in cases:
            st, ans_body, hdrs = request(method, env.ingest, path, body, headers)
            assert st == want_status, (what, st, ans_body)
            assert hdrs["content-type"] == "application/json", (what, hdrs)
            ans = json.loads(ans_body)
            assert set(ans) == {"error", "detail", "id"}, (what, ans)
            assert ans["error"] == want_code and (st, ans["error"]) in codes, (what, ans)
            assert isinstance(ans["detail"], str) and ans["detail"], (what, ans)
            assert leaks(env, ans_body) == [], (what, leaks(env, ans_body), ans_body)
            if st >= 500:
                assert ans["id"] == hdrs["x-message-id"], (what, ans, hdrs)
                stored.append((what, ans["id"]))
            else:
                assert ans["id"] is None, (what, ans)
        env.release.set()
        want_detail = {
            "lua error": "attempt to index",
            "step failure (schema)": "qty",
            "partner 5xx until dead letter": "ERP-INTERNAL-TRACE",
            "partner 4xx refusal": "ERP-INTERNAL-TRACE",
        }
        for what, msg_id in stored:
            st, body, _ = request("GET", env.admin, f"/v1/messages/{msg_id}")
            assert st == 200, (what, st, body)
            status = json.loads(body)
            if what in want_detail:
                assert status["state"] == "dead_lettered", (what, status)
                assert want_detail[what] in status["last_error"], (what, status)
        for what, msg_id in stored:
            if what in want_detail:
                line = next((l for l in env.gw.log_tail(400).splitlines()
                             if msg_id in l and "dead-lettered" in l), None)
                assert line and "route" in line, (what, line)
        assert "output erp" in env.gw.log_tail(400) and PARTNER_SECRET in env.gw.log_tail(400)
        timed_out = stored[-1][1]

        def delivered():
            _, body, _ = request("GET", env.admin, f"/v1/messages/{timed_out}")
            return json.loads(body)["state"] == "delivered"

        wait_until(delivered, 30, "the timed-out message delivered")
        env.gw.stop()
    finally:
        env.release.set()
        env.erp.close()
        env.gw.cleanup()
