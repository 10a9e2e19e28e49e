"""`reply: sync` with `reply_from: OUTPUT`: the external caller gets that
output's partner answer (status, body, Content-Type), 502 when the message
is dead-lettered, 504 after sync_timeout while the message stays in custody
and is still delivered; and `sluice check` refuses a reply_from that names
no output or one that cannot answer. Real binary, real HTTP partners."""

import json
import os
import subprocess
import tempfile
import threading
import time

from harness import SLUICE, Gateway, Sink, base_config, free_port, post_json, request, wait_until


# An HTTP partner whose behaviour(req) returns (status, body, headers): the
# harness Sink, which sets the headers it is given (Content-Type included).
Partner = Sink


def reply_config(erp_url, audit_url, in_port, admin_port, sync_timeout="3s"):
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:    {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  erp:   {{ type: http_client, base_url: "{erp_url}", timeout: 10s }}
  audit: {{ type: http_client, base_url: "{audit_url}", timeout: 10s }}
routes:
  orders:
    from: {{ connector: in, path: /orders, content_type: json, reply: sync,
            sync_timeout: {sync_timeout}, reply_from: erp }}
    to:
      - {{ connector: audit, path: /audit }}
      - {{ connector: erp, path: /erp/orders, when: "msg.headers['x-skip-erp'] == nil" }}
    on_error:
      retry: {{ max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms }}
"""


class Env:
    def __init__(self, erp_behaviour, **kw):
        self.erp = Partner(erp_behaviour)
        self.audit = Sink(lambda req: (200, "audit ok"))
        self.in_port, self.admin_port = free_port(), free_port()
        self.gw = Gateway(reply_config(self.erp.url, self.audit.url, self.in_port,
                                       self.admin_port, **kw))
        self.ingest = f"127.0.0.1:{self.in_port}"
        self.admin = f"127.0.0.1:{self.admin_port}"

    def __enter__(self):
        self.gw.start(self.admin_port)
        return self

    def __exit__(self, *exc):
        try:
            if exc[0] is None:
                self.gw.stop()
        finally:
            self.erp.close()
            self.audit.close()
            self.gw.cleanup()


ERP_ANSWER = '<?xml version="1.0"?><ack><order>A-1</order><status>booked</status></ack>'


def test_reply_from_answers_with_the_partners_status_body_and_content_type():
    def erp(req):
        order = json.loads(req["body"])["order"]
        return 201, ERP_ANSWER.replace("A-1", order), {
            "Content-Type": "application/vnd.erp+xml; charset=utf-8"}

    with Env(erp) as env:
        st, body, hdrs = post_json(env.ingest, "/orders", {"order": "A-7"})
        assert st == 201, (st, body)
        assert body == ERP_ANSWER.replace("A-1", "A-7").encode(), body
        assert hdrs["content-type"] == "application/vnd.erp+xml; charset=utf-8", hdrs
        assert env.audit.count() == 1, "the other output got the message too"
        msg_id = hdrs["x-message-id"]
        st, body, _ = request("GET", env.admin, f"/v1/messages/{msg_id}")
        assert st == 200 and json.loads(body)["state"] == "delivered", body


def test_reply_from_output_that_did_not_take_the_message_is_502_no_reply():
    with Env(lambda req: (200, "<ack/>", {"Content-Type": "application/xml"})) as env:
        st, body, hdrs = post_json(env.ingest, "/orders", {"order": "D-1"},
                                   headers={"x-skip-erp": "1"})
        assert st == 502, (st, body)
        ans = json.loads(body)
        assert ans["error"] == "no_reply" and ans["id"] == hdrs["x-message-id"], ans
        assert env.erp.count() == 0 and env.audit.count() == 1
        st, body, _ = request("GET", env.admin, f"/v1/messages/{ans['id']}")
        assert json.loads(body)["state"] == "delivered", body


def test_reply_from_dead_letter_is_502_with_the_id():
    with Env(lambda req: (500, "ERP down", {"Content-Type": "text/plain"})) as env:
        st, body, hdrs = post_json(env.ingest, "/orders", {"order": "B-1"})
        assert st == 502, (st, body)
        ans = json.loads(body)
        assert ans["error"] == "dead_lettered" and ans["id"] == hdrs["x-message-id"], ans
        assert env.erp.count() == 3, "max_attempts 3: three calls before the dead letter"
        st, body, _ = request("GET", env.admin, f"/v1/messages/{ans['id']}")
        assert st == 200 and json.loads(body)["state"] == "dead_lettered", body


def test_reply_from_timeout_is_504_and_the_message_is_still_delivered():
    release = threading.Event()

    def erp(req):
        release.wait(30)
        return 200, "<ack/>", {"Content-Type": "application/xml"}

    with Env(erp, sync_timeout="500ms") as env:
        st, body, hdrs = post_json(env.ingest, "/orders", {"order": "C-1"})
        assert st == 504, (st, body)
        ans = json.loads(body)
        assert ans["error"] == "timeout" and ans["id"] == hdrs["x-message-id"], ans
        st, body, _ = request("GET", env.admin, f"/v1/messages/{ans['id']}")
        assert json.loads(body)["state"] != "delivered", body
        release.set()

        def delivered():
            st, body, _ = request("GET", env.admin, f"/v1/messages/{ans['id']}")
            return json.loads(body)["state"] == "delivered"

        wait_until(delivered, 30, "the timed-out message delivered once the ERP answers")
        assert env.erp.count() == 1, "delivered by its first call, not resent"


def check(text):
    d = tempfile.mkdtemp(prefix="sluice-check-")
    path = os.path.join(d, "sluice.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    r = subprocess.run([SLUICE, "check", "-c", path], capture_output=True, text=True, timeout=60)
    return r, path


CHECK_BASE = """connectors:
  web:  { type: http_server, listen: "127.0.0.1:1" }
  erp:  { type: http_client, base_url: "http://127.0.0.1:1" }
  out:  { type: stdout }
routes:
  a:
    from: { connector: web, path: /o, reply: sync, reply_from: %s }
    to:
      - { connector: erp }
      - { connector: out }
      - { topic: audit }
"""


def test_check_refuses_a_reply_from_that_names_no_output_or_one_that_cannot_answer():
    r, path = check(CHECK_BASE % "erp")
    assert r.returncode == 0, r.stdout + r.stderr
    r, path = check(CHECK_BASE % "nope")
    assert r.returncode == 2
    assert r.stdout.strip() == (f"{path}:7:64: routes.a.from.reply_from: "
                                "no output named 'nope' in this route"), r.stdout
    r, path = check(CHECK_BASE % "out")
    assert r.returncode == 2
    assert "output 'out' cannot answer (stdout)" in r.stdout, r.stdout
    r, path = check(CHECK_BASE % '"topic:audit"')
    assert r.returncode == 2
    assert "output 'topic:audit' cannot answer (a topic output)" in r.stdout, r.stdout
    r, path = check(CHECK_BASE.replace("reply: sync, ", "") % "erp")
    assert r.returncode == 2
    assert "reply_from: needs reply: sync" in r.stdout, r.stdout
