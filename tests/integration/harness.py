"""Integration test harness: runs the real sluice binary with a generated
config on free loopback ports, a real HTTP sink that records what arrives,
and small HTTP helpers. Standard library only."""

import http.client
import http.server
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

SLUICE = os.environ.get("SLUICE_BIN", "build-asan/sluice")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_given_ports = set()
_given_lock = threading.Lock()


def free_port():
    """A loopback port nobody listens on, never the same one twice in this
    process (the kernel may hand a just-closed port out again, and a test
    that asks for two ports must not get one twice)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with _given_lock:
            if port not in _given_ports:
                _given_ports.add(port)
                return port


def wait_until(pred, timeout, what, interval=0.05):
    """Polls pred until it is true; raises AssertionError naming what after
    timeout seconds. Timeouts are generous: a slow machine is not a failure."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Sink:
    """A real HTTP server on 127.0.0.1 recording every request. behaviour(req)
    returns (status, body) or (status, body, headers) for each request; req is a dict with method, path,
    headers (lower-case names) and body (bytes). With tls (an ssl.SSLContext)
    it serves HTTPS."""

    def __init__(self, behaviour=None, port=0, tls=None):
        self.behaviour = behaviour or (lambda req: (200, b"ok"))
        self.lock = threading.Lock()
        self.requests = []  # every request, in arrival order
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def setup(self):
                super().setup()
                # headers and body go out in two writes: without this, Nagle
                # and the peer's delayed ACK add 40 ms to every response
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _handle(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n) if n else b""
                req = {
                    "method": self.command,
                    "path": self.path,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "body": body,
                    "at": time.monotonic(),  # arrival, for tests that check when calls came
                }
                with sink.lock:
                    sink.requests.append(req)
                status, out, *extra = sink.behaviour(req)
                if isinstance(out, str):
                    out = out.encode()
                self.send_response(status)
                for k, v in (extra[0] if extra else {}).items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            do_POST = do_PUT = do_GET = do_PATCH = do_DELETE = _handle

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request, client_address):
                pass  # a client that goes away (a killed gateway) is not news

        self.server = Server(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:  # an ssl.SSLContext: HTTPS, the handshake in the handler's thread
            self.server.socket = tls.wrap_socket(
                self.server.socket, server_side=True, do_handshake_on_connect=False
            )
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def ok_requests(self, status=200):
        """Requests that were answered with status (by re-running behaviour is
        wrong: the behaviour may count); callers track what they answered."""
        with self.lock:
            return list(self.requests)

    def count(self):
        with self.lock:
            return len(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# The gateways started by the running test, so that run.py can print their
# logs when it fails (cleanup() has removed their directories by then).
STARTED = []


class Gateway:
    """A sluice process with its own temp dir, config and data_dir."""

    def __init__(self, config_text, workdir=None, env=None):
        self.dir = workdir or tempfile.mkdtemp(prefix="sluice-it-")
        self.config = os.path.join(self.dir, "sluice.yaml")
        with open(self.config, "w") as f:
            f.write(config_text)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.runs = 0

    def start(self, admin_port, wait=True):
        self.runs += 1
        if self not in STARTED:
            STARTED.append(self)
        self.stderr = open(self.stderr_path, "a")
        self.stderr.write(f"---- run {self.runs} ----\n")
        self.stderr.flush()
        self.admin = f"127.0.0.1:{admin_port}"
        self.proc = subprocess.Popen(
            [os.path.abspath(SLUICE), "run", "-c", self.config],
            cwd=self.dir,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
            env=self.env,
        )
        if wait:
            wait_until(self._ready, 60, "the gateway's /ready")
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError(
                f"sluice exited with {self.proc.returncode} during start:\n{self.log_tail()}"
            )
        try:
            st, _, _ = request("GET", self.admin, "/ready", timeout=2)
            return st == 200
        except OSError:
            return False

    def stop(self, expect_code=0, timeout=120):
        """SIGTERM, wait, and check the exit code (ASan leak reports make it
        non-zero, so a leak fails the test)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"sluice did not exit within {timeout}s of SIGTERM")
        self.proc = None
        self.stderr.close()
        if expect_code is not None and code != expect_code:
            raise AssertionError(
                f"sluice exited with {code}, expected {expect_code}:\n{self.log_tail()}"
            )
        return code

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.stderr.close()

    def log_tail(self, n=40):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def metrics(self):
        st, body, _ = request("GET", self.admin, "/metrics")
        assert st == 200, st
        return parse_metrics(body.decode())

    def route(self, name):
        st, body, _ = request("GET", self.admin, f"/v1/routes/{name}")
        assert st == 200, (st, body)
        return json.loads(body)

    def run_cli(self, *args):
        return subprocess.run(
            [os.path.abspath(SLUICE), *args],
            cwd=self.dir,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=120,
        )

    def dump(self, topic):
        """Records of topic as dicts, read offline (the gateway must be stopped)."""
        r = self.run_cli("log", "dump", "-d", os.path.join(self.dir, "data"), topic)
        assert r.returncode == 0, r.stderr
        return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def cleanup(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.last_log = self.log_tail(60)  # for run.py, should the test fail
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_metrics(text):
    """Prometheus text into {'name{labels}': value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, val = line.rpartition(" ")
        out[key] = float(val)
    return out


def metric(m, name, **labels):
    """Sums every sample of name whose labels include the given ones."""
    total = 0.0
    for key, v in m.items():
        n, _, rest = key.partition("{")
        if n != name:
            continue
        ok = all(f'{k}="{val}"' in rest for k, val in labels.items())
        if ok:
            total += v
    return total


_local = threading.local()


def _stale(c):
    """True when a kept-alive connection was closed by the server (or has
    unexpected bytes waiting): it must not carry a new request."""
    if c.sock is None:
        return False
    r, _, _ = select.select([c.sock], [], [], 0)
    return bool(r)


def request(method, hostport, path, body=None, headers=None, timeout=30):
    """One HTTP request on a per-thread keep-alive connection. Returns
    (status, body bytes, headers dict with lower-case names). The request is
    sent exactly once: a kept-alive connection the server has closed is
    replaced before sending, and any error after that is raised to the
    caller (a test that counts requests must never see a silent resend)."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    c = conns.get(hostport)
    if c is not None and _stale(c):
        c.close()
        c = None
    if c is None:
        host, port = hostport.rsplit(":", 1)
        c = conns[hostport] = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        if hdrs.get("connection", "").lower() == "close":
            c.close()
            conns.pop(hostport, None)
        return r.status, data, hdrs
    except (ConnectionError, http.client.HTTPException, OSError):
        c.close()
        conns.pop(hostport, None)
        raise


def post_json(hostport, path, obj, headers=None):
    h = {"content-type": "application/json"}
    h.update(headers or {})
    return request("POST", hostport, path, json.dumps(obj).encode(), h)


def base_config(data_dir="./data", admin_port=None, fsync="always", extra_sluice=""):
    return f"""
sluice:
  data_dir: {data_dir}
  admin: {{ listen: "127.0.0.1:{admin_port}" }}
  shutdown_timeout: 60s
  log:
    fsync: {fsync}
{extra_sluice}
"""
