"""Outbound credentials and the header policy of http_client (issue 13),
against the real binary: partners that require basic, bearer (static and
from a file that changes), OAuth2 client credentials (a token endpoint
served here), a client certificate and a private CA get them; inbound
headers reach a partner only when forward_headers lets them."""

import base64
import hashlib
import hmac
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time

from harness import Gateway, Sink, base_config, free_port, metric, post_json, wait_until


def gateway(connectors, routes, env=None, files=None):
    """A gateway with an ingest connector `in` on a free port and files
    (name -> text) beside its config; returns (gateway, ingest host:port),
    started."""
    in_port, admin_port = free_port(), free_port()
    workdir = tempfile.mkdtemp(prefix="sluice-it-")
    for name, text in (files or {}).items():
        with open(os.path.join(workdir, name), "w") as f:
            f.write(text)
    text = base_config(admin_port=admin_port) + f"""
connectors:
  in: {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
{connectors}
routes:
{routes}
"""
    gw = Gateway(text, workdir=workdir, env=env)
    gw.start(admin_port)
    return gw, f"127.0.0.1:{in_port}"


def route(name, outputs, retry="max_attempts: 1000, initial_backoff: 20ms, max_backoff: 100ms",
          steps="", partitions=1):
    tos = "".join(f"\n      - {{ connector: {o}, path: /{name} }}" for o in outputs)
    return f"""  {name}:
    from: {{ connector: in, path: /{name}, content_type: json }}
    partitions: {partitions}
    key: "$.n"{steps}
    to:{tos}
    on_error:
      retry: {{ {retry} }}
"""


class Partner:
    """A sink that answers 200 when the Authorization header is one of the
    accepted values (a set the test changes), else 401; records what came."""

    def __init__(self, accepted, tls=None):
        self.accepted = set(accepted)
        self.lock = threading.Lock()
        self.sink = Sink(self._answer, tls=tls)
        self.url = self.sink.url

    def _answer(self, req):
        with self.lock:
            ok = req["headers"].get("authorization") in self.accepted
        req["answered"] = 200 if ok else 401
        return req["answered"], "ok" if ok else "who are you"

    def accept(self, values):
        with self.lock:
            self.accepted = set(values)

    def requests(self, status=None):
        with self.sink.lock:
            return [r for r in self.sink.requests if status is None or r["answered"] == status]

    def close(self):
        self.sink.close()


def post_many(ingest, path, n, headers=None):
    ids = []
    for i in range(n):
        st, out, _ = post_json(ingest, path, {"n": i}, headers)
        assert st == 202, (st, out)
        ids.append(json.loads(out)["id"])
    return ids


def delivered(partner, ids):
    got = {r["headers"].get("x-message-id") for r in partner.requests(200)}
    return set(ids) <= got


def test_basic_bearer_and_token_file_reach_the_partner():
    d = tempfile.mkdtemp(prefix="sluice-out-")
    token_file = os.path.join(d, "token")
    with open(token_file, "w") as f:
        f.write("file-token-1\n")
    basic = "Basic " + base64.b64encode(b"shop:s3cr3t:with-colon").decode()
    p_basic = Partner([basic])
    p_bearer = Partner(["Bearer static-tok"])
    p_file = Partner(["Bearer file-token-1"])
    connectors = f"""
  basic:  {{ type: http_client, base_url: "{p_basic.url}",
            auth: {{ type: basic, user: shop, password: "${{PARTNER_PW}}" }} }}
  bearer: {{ type: http_client, base_url: "{p_bearer.url}",
            auth: {{ type: bearer, token: "file:{d}/static" }} }}
  file:   {{ type: http_client, base_url: "{p_file.url}",
            auth: {{ type: bearer, token_file: "{token_file}" }} }}
"""
    with open(os.path.join(d, "static"), "w") as f:
        f.write("static-tok\n")
    gw, ingest = gateway(connectors, route("r", ["basic", "bearer", "file"]),
                         env={"PARTNER_PW": "s3cr3t:with-colon"})
    try:
        ids = post_many(ingest, "/r", 5)
        for p in (p_basic, p_bearer, p_file):
            wait_until(lambda: delivered(p, ids), 30, "5 deliveries with the right credential")
            assert p.requests(401) == [], p.requests(401)
        # the token file changes (written aside and renamed, as a rotation
        # does); the partner takes only the new token from now on
        with open(token_file + ".new", "w") as f:
            f.write("file-token-2\n")
        os.rename(token_file + ".new", token_file)
        p_file.accept(["Bearer file-token-2"])
        more = post_many(ingest, "/r", 5)
        wait_until(lambda: delivered(p_file, more), 30, "5 deliveries with the new file token")
        assert p_file.requests(401) == [], "the old token was sent after the file changed"
        # no secret in the log or the metrics
        metrics_text = json.dumps(gw.metrics())
        with open(gw.stderr_path) as f:
            log = f.read()
        for secret in ("s3cr3t", "static-tok", "file-token"):
            assert secret not in log and secret not in metrics_text, secret
    finally:
        gw.stop()
        gw.cleanup()
        for p in (p_basic, p_bearer, p_file):
            p.close()


def test_inbound_headers_reach_the_partner_only_when_forward_headers_allows():
    p_default = Partner([None])
    p_allow = Partner(["Bearer t"])
    connectors = f"""
  dflt:  {{ type: http_client, base_url: "{p_default.url}" }}
  allow: {{ type: http_client, base_url: "{p_allow.url}", forward_headers: ["x-partner-*", "x-*"],
           auth: {{ type: bearer, token: t }} }}
"""
    gw, ingest = gateway(connectors, route("r", ["dflt", "allow"]))
    try:
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        hdrs = {"x-partner-ref": "abc", "x-evil": "1", "x-forwarded-for": "10.0.0.1",
                "x-forwarded-host": "evil.example", "x-real-ip": "10.0.0.2",
                "x-sluice-attempts": "99", "traceparent": trace, "authorization": "Bearer evil"}
        ids = post_many(ingest, "/r", 3, hdrs)
        for p in (p_default, p_allow):
            wait_until(lambda: delivered(p, ids), 30, "3 deliveries")
        for r in p_default.requests(200):
            h = r["headers"]
            assert h["traceparent"] == trace, h
            for name in ("x-partner-ref", "x-evil", "x-forwarded-for", "x-real-ip",
                         "authorization", "x-sluice-attempts"):
                assert name not in h, (name, h)
        for r in p_allow.requests(200):
            h = r["headers"]
            assert h["x-partner-ref"] == "abc" and h["x-evil"] == "1", h
            assert h["authorization"] == "Bearer t", h
            for name in ("x-forwarded-for", "x-forwarded-host", "x-real-ip", "x-sluice-attempts"):
                assert name not in h, (name, h)
    finally:
        gw.stop()
        gw.cleanup()
        p_default.close()
        p_allow.close()


class TokenEndpoint:
    """An OAuth2 token endpoint: client credentials grant with HTTP Basic
    client authentication; issues tok-1, tok-2, ... living `expires_in`
    seconds; `up` False answers 503."""

    def __init__(self, expires_in=3600, delay=0.0):
        self.expires_in = expires_in
        self.delay = delay  # seconds each answer takes
        self.up = True
        self.issued = []  # (token, monotonic time)
        self.lock = threading.Lock()
        self.sink = Sink(self._answer)
        self.url = self.sink.url + "/token"

    def _answer(self, req):
        want = "Basic " + base64.b64encode(b"sluice-client:cl%2Fsecret").decode()
        form = dict(kv.split("=", 1) for kv in req["body"].decode().split("&"))
        time.sleep(self.delay)  # a slow identity provider: concurrent workers all wait on it
        with self.lock:
            if not self.up:
                return 503, "down"
            if req["headers"].get("authorization") != want or form.get("grant_type") != (
                "client_credentials") or form.get("scope") != "orders%3Awrite":
                return 401, json.dumps({"error": "invalid_client"})
            tok = f"tok-{len(self.issued) + 1}"
            self.issued.append((tok, time.monotonic()))
        return 200, json.dumps({"access_token": tok, "token_type": "Bearer",
                                "expires_in": self.expires_in})

    def valid(self):
        """The Authorization values the partner accepts: the latest token,
        while it lives."""
        with self.lock:
            if not self.issued:
                return set()
            tok, at = self.issued[-1]
            return {f"Bearer {tok}"} if time.monotonic() < at + self.expires_in else set()

    def count(self):
        with self.lock:
            return len(self.issued)


class OAuthPartner(Partner):
    def __init__(self, endpoint):
        self.endpoint = endpoint
        super().__init__([])

    def _answer(self, req):
        ok = req["headers"].get("authorization") in self.endpoint.valid()
        req["answered"] = 200 if ok else 401
        return req["answered"], "ok" if ok else "expired"


def oauth_connector(partner, endpoint, extra=""):
    return f"""
  api:
    type: http_client
    base_url: "{partner.url}"
    breaker: {{ failure_rate: 50%, min_calls: 2, window: 4, open_for: 200ms, max_open_for: 400ms }}
    auth: {{ type: oauth2, token_url: "{endpoint.url}", client_id: sluice-client,
            client_secret: "${{CLIENT_SECRET}}", scope: "orders:write"{extra} }}
"""


def test_oauth2_token_fetched_once_and_renewed_once_when_refused():
    # four route workers need a token at once, and the endpoint is slow:
    # still one fetch (the others wait for it)
    endpoint = TokenEndpoint(delay=0.3)
    partner = OAuthPartner(endpoint)
    gw, ingest = gateway(oauth_connector(partner, endpoint), route("r", ["api"], partitions=4),
                         env={"CLIENT_SECRET": "cl/secret"})
    try:
        ids = post_many(ingest, "/r", 30)
        wait_until(lambda: delivered(partner, ids), 30, "30 deliveries")
        assert endpoint.count() == 1, endpoint.issued
        assert partner.requests(401) == []
        # the partner expires tok-1 early (a 401): one new token, every
        # message delivered with it
        with endpoint.lock:
            endpoint.issued[-1] = ("tok-1", time.monotonic() - 7200)
        more = post_many(ingest, "/r", 10)
        wait_until(lambda: delivered(partner, more), 30, "10 deliveries after the 401")
        assert endpoint.count() == 2, endpoint.issued
        assert {r["headers"]["authorization"] for r in partner.requests(200)
                if r["headers"]["x-message-id"] in more} == {"Bearer tok-2"}
    finally:
        gw.stop()
        gw.cleanup()
        partner.close()
        endpoint.sink.close()


def test_oauth2_token_renewed_before_it_expires():
    endpoint = TokenEndpoint(expires_in=1)  # renewed half-way: margin 30s > lifetime
    partner = OAuthPartner(endpoint)
    gw, ingest = gateway(oauth_connector(partner, endpoint), route("r", ["api"]),
                         env={"CLIENT_SECRET": "cl/secret"})
    try:
        ids = post_many(ingest, "/r", 3)
        wait_until(lambda: delivered(partner, ids), 30, "3 deliveries")
        first = endpoint.count()
        _, at = endpoint.issued[-1]
        wait_until(lambda: time.monotonic() > at + 1.0, 5, "tok-1's lifetime to pass")
        more = post_many(ingest, "/r", 3)
        wait_until(lambda: delivered(partner, more), 30, "3 deliveries with a fresh token")
        assert endpoint.count() == first + 1, endpoint.issued
        assert partner.requests(401) == [], "an expired token was sent"
    finally:
        gw.stop()
        gw.cleanup()
        partner.close()
        endpoint.sink.close()


def test_oauth2_token_endpoint_down_opens_the_breaker_then_messages_arrive():
    endpoint = TokenEndpoint()
    endpoint.up = False
    partner = OAuthPartner(endpoint)
    gw, ingest = gateway(oauth_connector(partner, endpoint), route("r", ["api"]),
                         env={"CLIENT_SECRET": "cl/secret"})
    try:
        ids = post_many(ingest, "/r", 5)
        wait_until(lambda: metric(gw.metrics(), "sluice_breaker_transitions_total",
                                  connector="api", to="open") >= 1, 30,
                   "the breaker to open on token endpoint failures")
        assert partner.requests() == [], "a request went out without a token"
        with endpoint.lock:
            endpoint.up = True
        wait_until(lambda: delivered(partner, ids), 30, "the 5 messages, once the endpoint is back")
        assert metric(gw.metrics(), "sluice_dead_letter_total", route="r") == 0
        assert endpoint.count() == 1, endpoint.issued
    finally:
        gw.stop()
        gw.cleanup()
        partner.close()
        endpoint.sink.close()


def make_pki(d):
    """A test CA, a server certificate for 127.0.0.1 and a client
    certificate, with openssl. Returns a dict of file paths."""
    f = {k: os.path.join(d, k) for k in ("ca.key", "ca.pem", "srv.key", "srv.pem", "cli.key",
                                         "cli.pem", "other.key", "other.pem", "ext")}
    with open(f["ext"], "w") as out:
        out.write("subjectAltName=IP:127.0.0.1\n")

    def run(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    run("req", "-x509", *ec, "-keyout", f["ca.key"], "-out", f["ca.pem"], "-days", "2",
        "-subj", "/CN=sluice test CA")
    run("req", "-x509", *ec, "-keyout", f["other.key"], "-out", f["other.pem"], "-days", "2",
        "-subj", "/CN=someone else")
    for who, cn in (("srv", "127.0.0.1"), ("cli", "sluice client")):
        run("req", *ec, "-keyout", f[f"{who}.key"], "-out", os.path.join(d, f"{who}.csr"),
            "-subj", f"/CN={cn}")
        run("x509", "-req", "-in", os.path.join(d, f"{who}.csr"), "-CA", f["ca.pem"], "-CAkey",
            f["ca.key"], "-CAcreateserial", "-out", f[f"{who}.pem"], "-days", "2",
            *(["-extfile", f["ext"]] if who == "srv" else []))
    return f


def test_client_certificate_and_private_ca():
    d = tempfile.mkdtemp(prefix="sluice-pki-")
    pki = make_pki(d)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["srv.pem"], pki["srv.key"])
    ctx.load_verify_locations(pki["ca.pem"])
    ctx.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no handshake
    partner = Partner([None], tls=ctx)
    connectors = f"""
  mtls:    {{ type: http_client, base_url: "{partner.url}",
             tls: {{ ca: "{pki['ca.pem']}", cert: "{pki['cli.pem']}", key: "{pki['cli.key']}" }} }}
  nocert:  {{ type: http_client, base_url: "{partner.url}", tls: {{ ca: "{pki['ca.pem']}" }} }}
  wrongca: {{ type: http_client, base_url: "{partner.url}",
             tls: {{ ca: "{pki['other.pem']}", cert: "{pki['cli.pem']}", key: "{pki['cli.key']}" }} }}
"""
    once = "max_attempts: 1"
    routes = route("ok", ["mtls"]) + route("nocert", ["nocert"], once) + route(
        "wrongca", ["wrongca"], once)
    gw, ingest = gateway(connectors, routes)
    try:
        ids = post_many(ingest, "/ok", 3)
        wait_until(lambda: delivered(partner, ids), 30, "3 deliveries over mutual TLS")
        post_many(ingest, "/nocert", 1)
        post_many(ingest, "/wrongca", 1)
        for r in ("nocert", "wrongca"):
            wait_until(lambda: metric(gw.metrics(), "sluice_dead_letter_total", route=r) == 1, 30,
                       f"{r}: a dead letter")
        assert len(partner.requests()) == 3, partner.requests()
    finally:
        gw.stop()
    try:
        # without a client certificate, TLS 1.3 shows the refusal after the
        # handshake (curl: failed sending data); with the wrong CA, curl
        # refuses the partner's certificate itself
        for r, why in (("nocert", "POST https://127.0.0.1"), ("wrongca", "TLS failed")):
            dlq = gw.dump(f"{r}.dlq")
            assert len(dlq) == 1 and why in dlq[0]["headers"]["x-sluice-error"], dlq
            assert dlq[0]["headers"]["x-sluice-status"] == "0", dlq
    finally:
        gw.cleanup()
        partner.close()


SIGN_LUA = """
function step(msg, ctx)
  local r = ctx.http{ connector = "crm", path = "/lookup" }
  if not r.ok then ctx.retry(r.error) end
  msg.headers["x-tier"] = json.decode(r.body).tier
  msg.headers["x-hub-signature-256"] =
      "sha256=" .. crypto.hmac("sha256", ctx.secrets.hook, msg.body)
  return msg
end
"""


def test_lua_calls_with_the_connector_credentials_and_signs_the_body():
    crm = Partner(["Bearer crm-token"])
    crm.sink.behaviour = lambda req: (
        (200, '{"tier": "gold"}') if req["headers"].get("authorization") == "Bearer crm-token"
        else (401, "no"))
    sink = Partner([None])
    connectors = f"""
  crm:  {{ type: http_client, base_url: "{crm.url}", auth: {{ type: bearer, token: "file:crm.token" }} }}
  sink: {{ type: http_client, base_url: "{sink.url}", forward_headers: [x-tier, x-hub-signature-256] }}
"""
    steps = """
    steps:
      - lua: { file: sign.lua, function: step, secrets: { hook: "${HOOK_SECRET}" } }"""
    secret = "It's a Secret to Everybody"
    gw, ingest = gateway(connectors, route("r", ["sink"], steps=steps),
                         env={"HOOK_SECRET": secret},
                         files={"sign.lua": SIGN_LUA, "crm.token": "crm-token\n"})
    try:
        ids = post_many(ingest, "/r", 4)
        wait_until(lambda: delivered(sink, ids), 30, "4 signed deliveries")
        for r in sink.requests(200):
            want = "sha256=" + hmac.new(secret.encode(), r["body"], hashlib.sha256).hexdigest()
            assert r["headers"]["x-hub-signature-256"] == want, (r["headers"], r["body"])
            assert r["headers"]["x-tier"] == "gold", r["headers"]
        assert len(crm.requests()) == 4, "one lookup per message, each with the token"
    finally:
        gw.stop()
        gw.cleanup()
        crm.close()
        sink.close()


def test_check_refuses_credential_headers_and_never_shows_a_secret():
    text = base_config(admin_port=free_port()) + """
connectors:
  in: { type: http_server, listen: "127.0.0.1:1" }
  a: { type: http_client, base_url: "http://127.0.0.1:1", forward_headers: [Authorization, x-ok] }
  b: { type: http_client, base_url: "http://127.0.0.1:1", timeout: soon,
       auth: { type: basic, user: u, password: "hunter2-pw" } }
  c: { type: http_client, base_url: "http://127.0.0.1:1",
       auth: { type: oauth2, token_url: "http://127.0.0.1:1/t", client_id: x,
               client_secret: "file:missing-secret-file" } }
  d: { type: http_client, base_url: "http://127.0.0.1:1", auth: { type: bearer } }
  e: { type: http_client, base_url: "http://127.0.0.1:1",
       auth: { type: basic, user: "a:b", password: pw } }
routes:
  r:
    from: { connector: in, path: /r }
    to: [ { connector: a }, { connector: e, headers: { authorization: "Basic eA==" } } ]
"""
    gw = Gateway(text)
    try:
        r = gw.run_cli("check", "-c", gw.config)
        out = r.stdout + r.stderr
        assert r.returncode == 2, out
        assert "forward_headers: 'Authorization' is never taken from a message" in out, out
        assert "connectors.c.auth.client_secret" in out, out
        assert "bearer needs exactly one of 'token' and 'token_file'" in out, out
        assert "connectors.e.auth.user: a basic auth user name cannot hold ':'" in out, out
        assert "Authorization is set by the connector's auth; name it in one place" in out, out
        assert "hunter2" not in out, out
    finally:
        gw.cleanup()
