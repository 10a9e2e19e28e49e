"""`sluice log ... --admin https://HOST:PORT` against an admin listener with
TLS and client_ca (mutual TLS) and a token: with the test CA, a client
certificate and the token the CLI reads the log; it refuses a server it
cannot verify (another CA, the system's CAs, a certificate without the
address in its names) and says why; without a client certificate the
listener answers 401 and the CLI says to pass one; plain HTTP to the TLS
port gets no answer."""

import os
import subprocess

from harness import SLUICE, Gateway, base_config, free_port, wait_until
from test_tls import make_cert, make_pki, use_server_cert

TOKEN = "adm-log-tls"


def start(pki):
    admin_port = free_port()
    conf = base_config(admin_port=admin_port).replace(
        f'admin: {{ listen: "127.0.0.1:{admin_port}" }}',
        f'admin: {{ listen: "127.0.0.1:{admin_port}", token: "{TOKEN}", '
        f'tls: {{ cert: {pki}/tls.pem, key: {pki}/tls.key, client_ca: {pki}/ca.pem }} }}')
    gw = Gateway(conf)
    gw.start(admin_port, wait=False)
    return gw, admin_port


def cli(admin, *tls_args):
    env = {k: v for k, v in os.environ.items() if k != "SLUICE_ADMIN_TOKEN"}
    env["SLUICE_ADMIN_TOKEN"] = TOKEN
    return subprocess.run([os.path.abspath(SLUICE), "log", "ls", "--admin", admin, *tls_args],
                          capture_output=True, text=True, env=env, timeout=60)


def test_log_cli_over_mutual_tls():
    pki = make_pki()
    make_cert(pki, "nosan", "ca", "/CN=first.example")  # no IP address in its names
    use_server_cert(pki, "server")
    gw, port = start(pki)
    url = f"https://127.0.0.1:{port}"
    good = ["--cacert", f"{pki}/ca.pem", "--cert", f"{pki}/client.pem", "--key",
            f"{pki}/client.key"]
    try:
        wait_until(lambda: cli(url, *good).returncode == 0, 60, "sluice log ls over TLS")
        r = cli(url, *good)
        assert r.stdout.splitlines()[0].split()[0] == "TOPIC", r.stdout

        r = cli(url, "--cacert", f"{pki}/other_ca.pem", *good[2:])
        assert r.returncode == 1 and "not trusted" in r.stderr, (r.returncode, r.stderr)
        r = cli(url, *good[2:])  # the system's CAs do not know the test CA
        assert r.returncode == 1 and "not trusted" in r.stderr, (r.returncode, r.stderr)
        r = cli(url, *good[:2])  # no client certificate: the listener requires one
        assert r.returncode == 1 and "401" in r.stderr and "--cert FILE --key FILE" in r.stderr, (
            r.returncode, r.stderr)
        r = cli(url, *good[:2], "--cert", f"{pki}/client.pem")
        assert r.returncode == 1 and "both --cert and --key" in r.stderr, r.stderr
        r = cli(f"127.0.0.1:{port}", *good)  # plain HTTP to the TLS port
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    finally:
        gw.stop()
        gw.cleanup()

    use_server_cert(pki, "nosan")
    gw, port = start(pki)
    try:
        wait_until(lambda: "not trusted" in cli(f"https://127.0.0.1:{port}", *good).stderr, 60,
                   "a certificate that does not name 127.0.0.1 refused")
    finally:
        gw.stop()
        gw.cleanup()
