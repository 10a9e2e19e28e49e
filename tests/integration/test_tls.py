"""TLS on the http_server listener and on the admin API, through the real
binary, with certificates made by the openssl CLI at run time: a client
trusting the test CA gets its 202; plain HTTP on the TLS port gets no HTTP
answer; a client trusting another CA refuses the server; min_version 1.3
refuses a TLS 1.2 client; with client_ca (mutual TLS) a client without a
certificate, with an expired one or with one signed by another CA fails the
handshake (TLS 1.3 and 1.2; the bad ones counted), and nothing is appended,
while a good one gets 202 and its subject reaches the message as
x-client-subject (a client cannot set that header itself); a SIGHUP reload
serves a replaced certificate to new connections while an open keep-alive
connection keeps working (on http_server and on the admin listener), and a
broken replacement keeps the running one."""

import http.client
import os
import signal
import socket
import ssl
import subprocess
import tempfile
import threading

from harness import Gateway, Sink, base_config, free_port, metric, request, wait_until


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_cert(d, name, ca, subject, days=2, san=None):
    """A P-256 key and a certificate for subject signed by ca (a name in d)."""
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
            f"{name}.key", "-out", f"{name}.csr", "-subj", subject, cwd=d)
    ext = []
    if san:
        with open(os.path.join(d, f"{name}.ext"), "w") as f:
            f.write(f"subjectAltName={san}\n")
        ext = ["-extfile", f"{name}.ext"]
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-out", f"{name}.pem", "-days", str(days), *ext, cwd=d)


def make_pki():
    """CA, other CA, server (two certificates), client, expired client and a
    client signed by the other CA, in a temp dir."""
    d = tempfile.mkdtemp(prefix="sluice-pki-")
    for ca in ("ca", "other_ca"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2", "-subj",
                f"/CN=Sluice test {ca}", cwd=d)
    san = "IP:127.0.0.1,DNS:localhost"
    make_cert(d, "server", "ca", "/CN=first.example", san=san)
    make_cert(d, "server2", "ca", "/CN=second.example", san=san)
    make_cert(d, "client", "ca", "/O=Acme/CN=orders")
    make_cert(d, "billing", "ca", "/O=Acme/CN=billing")
    make_cert(d, "expired", "ca", "/O=Acme/CN=old", days=-1)
    make_cert(d, "stranger", "other_ca", "/O=Acme/CN=orders")
    return d


def config(in_port, admin_port, pki, client_ca=False, min13=False):
    extra = f", client_ca: {pki}/ca.pem" if client_ca else ""
    extra += ', min_version: "1.3"' if min13 else ""
    return base_config(admin_port=admin_port) + f"""
connectors:
  in:
    type: http_server
    listen: "127.0.0.1:{in_port}"
    tls: {{ cert: {pki}/tls.pem, key: {pki}/tls.key{extra} }}
  out: {{ type: file, path: ./out.jsonl }}
routes:
  j:
    from: {{ connector: in, path: /j, content_type: json }}
    to: [ {{ connector: out }} ]
  m:
    from:
      connector: in
      path: /m
      auth: [ {{ type: mtls, subjects: [ "CN=orders,O=Acme" ] }} ]
    to: [ {{ connector: out }} ]
"""


def use_server_cert(pki, name):
    for ext in ("pem", "key"):
        with open(os.path.join(pki, f"{name}.{ext}"), "rb") as src:
            data = src.read()
        with open(os.path.join(pki, f"tls.{ext}"), "wb") as dst:
            dst.write(data)


def context(pki, ca="ca", client=None, max_tls12=False):
    ctx = ssl.create_default_context(cafile=os.path.join(pki, f"{ca}.pem"))
    if client:
        ctx.load_cert_chain(os.path.join(pki, f"{client}.pem"), os.path.join(pki, f"{client}.key"))
    if max_tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def post(port, ctx, headers=None, path="/j"):
    """One POST over TLS on a fresh connection; (status, body)."""
    c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=10)
    try:
        h = {"content-type": "application/json"}
        h.update(headers or {})
        c.request("POST", path, body=b'{"k":1}', headers=h)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def start(pki, **kw):
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(config(in_port, admin_port, pki, **kw))
    gw.start(admin_port)
    return gw, in_port


def appended(gw):
    return metric(gw.metrics(), "sluice_messages_in_total", route="j")


def handshake_fails(port, ctx):
    try:
        post(port, ctx)
    except (ssl.SSLError, ConnectionError):
        return True
    return False


def test_tls_listener_accepts_the_test_ca_and_refuses_plain_http():
    pki = make_pki()
    use_server_cert(pki, "server")
    gw, port = start(pki)
    try:
        assert post(port, context(pki))[0] == 202
        # plain HTTP on the TLS port: no HTTP answer, nothing appended
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /j HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 7\r\n\r\n{\"k\":1}")
            got = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            except ConnectionError:
                pass
        assert not got.startswith(b"HTTP/"), got[:80]
        # a client that trusts another CA refuses this server
        assert handshake_fails(port, context(pki, ca="other_ca"))
        assert appended(gw) == 1
    finally:
        gw.stop()
        gw.cleanup()


def test_min_version_13_refuses_a_tls12_client():
    pki = make_pki()
    use_server_cert(pki, "server")
    gw, port = start(pki, min13=True)
    try:
        assert handshake_fails(port, context(pki, max_tls12=True))
        assert post(port, context(pki))[0] == 202
    finally:
        gw.stop()
        gw.cleanup()


def test_mutual_tls_refuses_missing_expired_and_wrongly_signed_client_certificates():
    pki = make_pki()
    use_server_cert(pki, "server")
    gw, port = start(pki, client_ca=True)
    try:
        # no certificate: the handshake itself fails, in TLS 1.3 and 1.2
        assert handshake_fails(port, context(pki))
        assert handshake_fails(port, context(pki, max_tls12=True))
        # a certificate that does not verify (expired, signed by another CA):
        # refused in the handshake too, no HTTP answer, counted
        for client in ("expired", "stranger"):
            assert handshake_fails(port, context(pki, client=client)), client
            assert handshake_fails(port, context(pki, client=client, max_tls12=True)), client
        assert metric(gw.metrics(), "sluice_http_refused_total",
                      reason="tls_client_certificate") == 4
        assert appended(gw) == 0
        st, _ = post(port, context(pki, client="client"),
                     headers={"x-client-subject": "CN=admin,O=Spoofed"})
        assert st == 202
        assert post(port, context(pki, client="client", max_tls12=True))[0] == 202
        assert appended(gw) == 2
        assert metric(gw.metrics(), "sluice_http_refused_total", reason="client_certificate") == 0
        # an mtls entry: a verified subject not in its list gets 403
        assert post(port, context(pki, client="billing"), path="/m")[0] == 403
        assert post(port, context(pki, client="client"), path="/m")[0] == 202
        assert metric(gw.metrics(), "sluice_http_refused_total", route="m",
                      reason="auth_forbidden") == 1
    finally:
        gw.stop()
    try:
        recs = gw.dump("j")
        assert len(recs) == 2
        for rec in recs:
            assert rec["headers"]["x-client-subject"] == "CN=orders,O=Acme", rec["headers"]
    finally:
        gw.cleanup()


def served_cn(port, pki):
    """The CN of the certificate the server presents now."""
    ctx = context(pki)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
    return subject["commonName"]


def test_sighup_reload_serves_the_new_certificate():
    pki = make_pki()
    use_server_cert(pki, "server")
    gw, port = start(pki)
    try:
        assert served_cn(port, pki) == "first.example"
        use_server_cert(pki, "server2")
        gw.proc.send_signal(signal.SIGHUP)

        def renewed():
            try:
                return served_cn(port, pki) == "second.example"
            except (ssl.SSLError, ConnectionError):
                return False  # accepted by the generation being stopped: it closes it
        wait_until(renewed, 30, "the new certificate")
        assert post(port, context(pki))[0] == 202
    finally:
        gw.stop()
        gw.cleanup()


def test_sighup_reload_keeps_an_open_connection_and_serves_the_new_certificate():
    pki = make_pki()
    use_server_cert(pki, "server")
    gw, port = start(pki)
    c = http.client.HTTPSConnection("127.0.0.1", port, context=context(pki), timeout=10)
    try:
        h = {"content-type": "application/json"}
        c.request("POST", "/j", body=b'{"k":1}', headers=h)
        r = c.getresponse()
        r.read()
        assert r.status == 202
        sock = c.sock
        assert dict(x[0] for x in sock.getpeercert()["subject"])["commonName"] == "first.example"
        use_server_cert(pki, "server2")
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: log_has(gw, "reload: done"), 30, "the reload")
        # the same TLS connection, still open, takes the next request
        c.request("POST", "/j", body=b'{"k":2}', headers=h)
        r = c.getresponse()
        r.read()
        assert r.status == 202
        assert c.sock is sock
        # a new connection gets the new certificate
        assert served_cn(port, pki) == "second.example"
        assert appended(gw) == 2
    finally:
        c.close()
        gw.stop()
        gw.cleanup()


def test_sighup_reload_holds_a_keep_alive_request_for_the_new_generation():
    """A request on an open keep-alive connection, sent while the old
    generation drains (its route worker is held by a slow partner), is held
    and answered 202 by the new generation on the same socket (the old one
    answered 503 shutting_down)."""
    release = threading.Event()
    sink = Sink(lambda req: (release.wait(20), (200, b"ok"))[1])
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in: {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  out: {{ type: file, path: ./out.jsonl }}
  slow: {{ type: http_client, base_url: "{sink.url}", timeout: 30s }}
routes:
  j:
    from: {{ connector: in, path: /j, content_type: json }}
    to: [ {{ connector: out }} ]
  s:
    from: {{ connector: in, path: /s, content_type: json }}
    to: [ {{ connector: slow, path: /x }} ]
""")
    gw.start(admin_port)
    c = http.client.HTTPConnection("127.0.0.1", in_port, timeout=30)
    h = {"content-type": "application/json"}
    try:
        c.request("POST", "/j", body=b'{"k":1}', headers=h)
        r = c.getresponse()
        r.read()
        assert r.status == 202
        sock = c.sock
        assert request("POST", f"127.0.0.1:{in_port}", "/s", body=b'{"k":2}', headers=h)[0] == 202
        wait_until(lambda: sink.count() == 1, 30, "the slow partner's call")
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: log_has(gw, "draining: stopping route workers"), 30, "the old drain")
        threading.Timer(1.0, release.set).start()  # the old generation can finish in 1 s
        c.request("POST", "/j", body=b'{"k":3}', headers=h)
        r = c.getresponse()
        body = r.read()
        assert r.status == 202, (r.status, body)
        assert c.sock is sock
    finally:
        release.set()
        c.close()
        gw.stop()
        gw.cleanup()
        sink.close()


def log_has(gw, text):
    with open(gw.stderr_path, errors="replace") as f:
        return text in f.read()


def test_sighup_with_a_broken_certificate_keeps_the_running_one():
    pki = make_pki()
    use_server_cert(pki, "server")
    gw, port = start(pki)
    try:
        assert served_cn(port, pki) == "first.example"
        with open(os.path.join(pki, "tls.pem"), "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: log_has(gw, "reload: done"), 30, "the reload")
        assert log_has(gw, "in: keeping the running certificate: tls.cert: "), gw.log_tail()
        assert served_cn(port, pki) == "first.example"
        assert post(port, context(pki))[0] == 202
    finally:
        gw.stop()
        gw.cleanup()


def admin_get(port, pki, path, client=None, token=None):
    c = http.client.HTTPSConnection("127.0.0.1", port, context=context(pki, client=client),
                                    timeout=10)
    try:
        c.request("GET", path, headers={"authorization": f"Bearer {token}"} if token else {})
        r = c.getresponse()
        r.read()
        return r.status
    finally:
        c.close()


def test_admin_over_mutual_tls_with_token():
    pki = make_pki()
    use_server_cert(pki, "server")
    admin_port = free_port()
    with open(os.path.join(pki, "admin.token"), "w") as f:
        f.write("adm-7c1d9e\n")
    conf = base_config(admin_port=admin_port).replace(
        f'admin: {{ listen: "127.0.0.1:{admin_port}" }}',
        f'admin: {{ listen: "127.0.0.1:{admin_port}", token: "file:{pki}/admin.token", '
        f'tls: {{ cert: {pki}/tls.pem, key: {pki}/tls.key, client_ca: {pki}/ca.pem }} }}')
    gw = Gateway(conf)
    gw.start(admin_port, wait=False)
    try:
        # /health and /ready stay open (no client certificate, no token)
        def ready():
            try:
                return admin_get(admin_port, pki, "/ready") == 200
            except ConnectionRefusedError:
                return False
        wait_until(ready, 60, "/ready over TLS")
        assert admin_get(admin_port, pki, "/health") == 200
        assert admin_get(admin_port, pki, "/metrics", token="adm-7c1d9e") == 401  # no cert
        for client in ("expired", "stranger"):  # refused in the handshake
            try:
                st = admin_get(admin_port, pki, "/health", client=client)
            except (ssl.SSLError, ConnectionError):
                st = None
            assert st is None, (client, st)
        assert admin_get(admin_port, pki, "/metrics", client="client") == 401  # no token
        assert admin_get(admin_port, pki, "/metrics", client="client", token="adm-7c1d9X") == 403
        assert admin_get(admin_port, pki, "/metrics", client="client", token="adm-7c1d9e") == 200
        # plain HTTP is not answered
        try:
            st = request("GET", f"127.0.0.1:{admin_port}", "/health", timeout=5)[0]
        except (OSError, http.client.HTTPException):
            st = None
        assert st is None, st
    finally:
        gw.stop()
        gw.cleanup()


def admin_tls_config(admin_port, pki):
    return base_config(admin_port=admin_port).replace(
        f'admin: {{ listen: "127.0.0.1:{admin_port}" }}',
        f'admin: {{ listen: "127.0.0.1:{admin_port}", '
        f'tls: {{ cert: {pki}/tls.pem, key: {pki}/tls.key }} }}')


def test_sighup_reload_keeps_an_open_admin_connection_and_serves_the_new_certificate():
    pki = make_pki()
    use_server_cert(pki, "server")
    admin_port = free_port()
    gw = Gateway(admin_tls_config(admin_port, pki))
    gw.start(admin_port, wait=False)
    c = http.client.HTTPSConnection("127.0.0.1", admin_port, context=context(pki), timeout=10)
    try:
        def up():
            try:
                return served_cn(admin_port, pki) == "first.example"
            except ConnectionRefusedError:
                return False
        wait_until(up, 60, "the admin listener over TLS")
        c.request("GET", "/ready")
        r = c.getresponse()
        r.read()
        assert r.status == 200
        sock = c.sock
        use_server_cert(pki, "server2")
        gw.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: served_cn(admin_port, pki) == "second.example", 30,
                   "the new certificate on a new admin connection")
        # the keep-alive connection opened before the reload takes the next request
        c.request("GET", "/v1/routes")
        r = c.getresponse()
        body = r.read()
        assert r.status == 200, (r.status, body)
        assert c.sock is sock
        assert dict(x[0] for x in sock.getpeercert()["subject"])["commonName"] == "first.example"
    finally:
        c.close()
        gw.stop()
        gw.cleanup()


def test_default_config_binds_admin_to_loopback():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "conf", "sluice.yaml")) as f:
        text = f.read()
    admin = text.split("admin:", 1)[1].split("\n  log:", 1)[0]
    assert 'listen: "127.0.0.1:' in admin, admin
    r = subprocess.run([os.environ.get("SLUICE_BIN", "build-asan/sluice"), "config", "reference"],
                       capture_output=True, text=True, timeout=60, check=True)
    line = next(l for l in r.stdout.splitlines() if "127.0.0.1:9400" in l)
    assert "listen" in line, line


def test_check_reports_an_unreadable_certificate_file():
    pki = make_pki()
    gw = Gateway(config(free_port(), free_port(), pki))  # tls.pem / tls.key not made yet
    try:
        r = gw.run_cli("check", "-c", gw.config)
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        out = r.stdout + r.stderr
        assert "connectors.in.tls.cert: cannot read" in out and "tls.key: cannot read" in out, out
    finally:
        gw.cleanup()
