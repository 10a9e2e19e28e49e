"""A private RabbitMQ for the AMQP integration tests: started lazily once per
run through tests/peers/rabbitmq.sh (its own directory, node name and ports,
so concurrent runs do not meet) and stopped at exit; plus a client built on
tests/peers/amqp_tool (rabbitmq-c) to declare, publish and consume."""

import atexit
import json
import os
import shutil
import subprocess
import tempfile
import threading
import uuid

from harness import ROOT, SLUICE

SCRIPT = os.path.join(ROOT, "tests", "peers", "rabbitmq.sh")

_lock = threading.Lock()
_broker = None


def tool_path():
    """amqp_tool is built next to the sluice binary (same build directory)."""
    path = os.path.join(os.path.dirname(os.path.abspath(SLUICE)), "amqp_tool")
    if not os.path.exists(path):
        raise AssertionError(f"{path} is missing: build the tests/peers targets")
    return path


class Broker:
    """One rabbitmq-server, started by rabbitmq.sh in a temp directory."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-rmq-")
        self.env = dict(os.environ)
        self.env["SLUICE_RABBITMQ_DIR"] = self.dir
        self.env["SLUICE_RABBITMQ_NODE"] = f"sluice-test-{os.getpid()}@localhost"
        r = subprocess.run(
            [SCRIPT, "start"], env=self.env, capture_output=True, text=True, timeout=240
        )
        if r.returncode != 0:
            raise AssertionError(f"rabbitmq.sh start failed:\n{r.stderr[-3000:]}")
        self.port = int(r.stdout.strip().splitlines()[-1])
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}/"
        tls_port = os.path.join(self.dir, "tls_port")
        self.tls_port = int(open(tls_port).read()) if os.path.exists(tls_port) else None
        self.ca_file = os.path.join(self.dir, "tls", "ca.pem")

    def ctl(self, *args, check=True, timeout=120):
        r = subprocess.run(
            [SCRIPT, "ctl", *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if check and r.returncode != 0:
            raise AssertionError(f"rabbitmqctl {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout

    def queues(self):
        """{queue: (messages_ready, messages_unacknowledged)}"""
        out = self.ctl(
            "-q", "list_queues", "--no-table-headers", "name", "messages_ready",
            "messages_unacknowledged",
        )
        res = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1].isdigit():
                res[parts[0]] = (int(parts[1]), int(parts[2]))
        return res

    def stop(self):
        subprocess.run([SCRIPT, "stop"], env=self.env, capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- client ----

    def tool(self, *args, stdin=None, timeout=300, url=None, env=None):
        e = dict(os.environ)
        e.update(env or {})
        r = subprocess.run(
            [tool_path(), url or self.url, *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=e,
        )
        if r.returncode != 0:
            raise AssertionError(f"amqp_tool {' '.join(args)} failed ({r.returncode}):\n{r.stderr}")
        return r.stdout

    def declare_exchange(self, name, type_="topic"):
        self.tool("declare-exchange", name, type_)

    def declare_queue(self, name, exchange=None, key=None):
        args = ["declare-queue", name]
        if exchange is not None:
            args += [exchange, key]
        self.tool(*args)

    def publish(self, exchange, key, bodies, ids=None, options=()):
        """Publishes each body (str, one line each) with confirms; ids, when
        given, are their message_id properties."""
        if ids is not None:
            lines = [f"{i}\t{b}" for i, b in zip(ids, bodies)]
            options = [*options, "-s"]
        else:
            lines = list(bodies)
        self.tool("publish", exchange, key, *options, stdin="\n".join(lines) + "\n")

    def consume(self, queue, count=None, idle_ms=3000, total_ms=0):
        """Consumes (and acks) up to count messages, stopping after idle_ms
        without one. Returns dicts: body, message_id, content_type,
        routing_key, headers, delivery_mode, ..."""
        args = ["consume", queue, "-w", str(idle_ms)]
        if count is not None:
            args += ["-n", str(count)]
        if total_ms:
            args += ["-T", str(total_ms)]
        out = self.tool(*args, timeout=600)
        return [json.loads(l) for l in out.splitlines() if l.strip()]


def broker():
    """The run's broker, started on first use and stopped at exit."""
    global _broker
    with _lock:
        if _broker is None:
            _broker = Broker()
            atexit.register(_broker.stop)
        return _broker


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
