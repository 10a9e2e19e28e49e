"""Authentication of http_server routes through the real binary: bearer,
api_key, basic (a yescrypt hash made by `sluice hash-password`), GitHub-style
HMAC over the raw body and Stripe-style signatures with a replay window.
Each is accepted with the right credential and refused without one (401 with
WWW-Authenticate) or with a wrong one; an HMAC over a body altered by one
byte and a Stripe signature outside the window are refused; refusals are
counted per route and reason and nothing refused is appended. The secrets
(from the environment and from a file) never appear in the log, the
metrics, `sluice check` output or the admin API."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import time

from harness import SLUICE, Gateway, base_config, free_port, metric, request

TOKEN = "tok-3f9a1c2e7b"
API_KEY = "key-8d1e4b77aa"
GH_SECRET = "gh-secret-51c0ffee"
STRIPE_SECRET = "whsec-2b9d0e6a"
PASSWORD = "pw-correct-horse-77"


def hash_password(pw):
    r = subprocess.run([SLUICE, "hash-password"], input=pw + "\n", capture_output=True,
                       text=True, timeout=60, check=True)
    return r.stdout.strip()


def config(in_port, admin_port, pw_hash):
    return base_config(admin_port=admin_port) + f"""
connectors:
  in: {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: file, path: ./out.jsonl }}
routes:
  bearer:
    from:
      connector: in
      path: /bearer
      auth: [ {{ type: bearer, tokens: [ "${{BEARER_TOKEN}}" ] }} ]
    to: [ {{ connector: out }} ]
  apikey:
    from:
      connector: in
      path: /apikey
      auth: [ {{ type: api_key, header: X-Api-Key, keys: [ "file:api.key" ] }} ]
    to: [ {{ connector: out }} ]
  basic:
    from:
      connector: in
      path: /basic
      auth: [ {{ type: basic, users: {{ partner: "{pw_hash}" }} }} ]
    to: [ {{ connector: out }} ]
  github:
    from:
      connector: in
      path: /github
      auth:
        - type: hmac
          header: X-Hub-Signature-256
          secret: "${{GH_SECRET}}"
          algorithm: sha256
          encoding: hex
          prefix: "sha256="
    to: [ {{ connector: out }} ]
  stripe:
    from:
      connector: in
      path: /stripe
      auth: [ {{ type: hmac, scheme: stripe, header: Stripe-Signature, secret: "${{STRIPE_SECRET}}",
                tolerance: 5m }} ]
    to: [ {{ connector: out }} ]
"""


def start():
    in_port, admin_port = free_port(), free_port()
    gw = Gateway("", env={"BEARER_TOKEN": TOKEN, "GH_SECRET": GH_SECRET,
                          "STRIPE_SECRET": STRIPE_SECRET})
    with open(os.path.join(gw.dir, "api.key"), "w") as f:
        f.write(API_KEY + "\n")
    with open(gw.config, "w") as f:
        f.write(config(in_port, admin_port, hash_password(PASSWORD)))
    gw.start(admin_port)
    return gw, f"127.0.0.1:{in_port}"


def post(hp, path, body=b'{"order":1}', headers=None):
    h = {"content-type": "application/json"}
    h.update(headers or {})
    st, data, hdrs = request("POST", hp, path, body, h)
    return st, hdrs


def appended(gw, route):
    return metric(gw.metrics(), "sluice_messages_in_total", route=route)


def refused(gw, route, reason):
    return metric(gw.metrics(), "sluice_http_refused_total", route=route, reason=reason)


def basic(user, pw):
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


def check_route(gw, hp, path, route, good, wrong):
    """good/wrong: headers. Missing -> 401 + WWW-Authenticate, wrong -> 401,
    good -> 202; exactly one message appended."""
    st, hdrs = post(hp, path)
    assert st == 401 and "www-authenticate" in hdrs, (path, st, hdrs)
    assert post(hp, path, headers=wrong)[0] == 401, path
    assert post(hp, path, headers=good)[0] == 202, path
    assert appended(gw, route) == 1, route
    assert refused(gw, route, "auth_missing") == 1
    assert refused(gw, route, "auth_invalid") == 1


def test_bearer_api_key_and_basic():
    gw, hp = start()
    try:
        check_route(gw, hp, "/bearer", "bearer", {"authorization": f"Bearer {TOKEN}"},
                    {"authorization": f"Bearer {TOKEN[:-1]}X"})  # same length
        check_route(gw, hp, "/apikey", "apikey", {"x-api-key": API_KEY},
                    {"x-api-key": API_KEY[:-1] + "X"})
        check_route(gw, hp, "/basic", "basic", {"authorization": basic("partner", PASSWORD)},
                    {"authorization": basic("partner", PASSWORD + "!")})
        assert post(hp, "/basic", headers={"authorization": basic("nobody", PASSWORD)})[0] == 401
        # a credential of one route opens no other: 403 (valid, not allowed here)
        st, _ = post(hp, "/basic", headers={"authorization": f"Bearer {TOKEN}"})
        assert st == 403, st
        assert post(hp, "/bearer", headers={"x-api-key": API_KEY})[0] == 403
        assert refused(gw, "basic", "auth_forbidden") == 1
        assert appended(gw, "basic") == 1 and appended(gw, "bearer") == 1
    finally:
        gw.stop()
        gw.cleanup()


def github_sig(body, secret=GH_SECRET):
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def stripe_sig(body, t, secret=STRIPE_SECRET):
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_hmac_github_and_stripe_over_the_raw_body():
    gw, hp = start()
    try:
        body = b'{"action": "opened",  "n": 1}'  # spacing kept: the raw bytes are signed
        altered = body.replace(b"1", b"2")
        sig = github_sig(body)
        assert post(hp, "/github", body)[0] == 401
        assert post(hp, "/github", altered, {"x-hub-signature-256": sig})[0] == 401
        assert post(hp, "/github", body, {"x-hub-signature-256": github_sig(body, "nope")})[0] == 401
        assert post(hp, "/github", body, {"x-hub-signature-256": sig[7:]})[0] == 401  # no prefix
        assert post(hp, "/github", body, {"x-hub-signature-256": sig})[0] == 202
        assert appended(gw, "github") == 1
        assert refused(gw, "github", "auth_invalid") == 3

        now = int(time.time())
        assert post(hp, "/stripe", body, {"stripe-signature": stripe_sig(body, now)})[0] == 202
        # the same signature on another body, and a replay from 10 minutes ago
        assert post(hp, "/stripe", altered, {"stripe-signature": stripe_sig(body, now)})[0] == 401
        old = now - 600
        assert post(hp, "/stripe", body, {"stripe-signature": stripe_sig(body, old)})[0] == 401
        assert post(hp, "/stripe", body, {"stripe-signature": stripe_sig(body, now, "x")})[0] == 401
        assert appended(gw, "stripe") == 1
        assert refused(gw, "stripe", "auth_invalid") == 3
    finally:
        gw.stop()
        gw.cleanup()


def test_secrets_stay_out_of_logs_metrics_check_and_admin():
    gw, hp = start()
    try:
        post(hp, "/bearer", headers={"authorization": "Bearer wrong"})
        post(hp, "/bearer", headers={"authorization": f"Bearer {TOKEN}"})
        seen = []
        for path in ("/metrics", "/v1/routes", "/v1/routes/bearer", "/v1/routes/github",
                     "/v1/connectors", "/v1/status"):
            st, body, _ = request("GET", gw.admin, path)
            seen.append(body.decode(errors="replace"))
        check = gw.run_cli("check", "-c", gw.config)
        assert check.returncode == 0, check.stderr
        seen += [check.stdout, check.stderr]
    finally:
        gw.stop()
    try:
        seen.append(open(gw.stderr_path).read())
        text = "\n".join(seen)
        for secret in (TOKEN, API_KEY, GH_SECRET, STRIPE_SECRET, PASSWORD):
            assert secret not in text, secret
    finally:
        gw.cleanup()
