"""A real Kafka-protocol peer for the integration tests and the benchmark:
starts build-*/kafka_broker (librdkafka's mock cluster on loopback TCP),
sends it commands (create, down, up, errors, rtt), and wraps kcat to produce
and consume. Standard library only."""

import os
import subprocess
import threading

KCAT = os.environ.get("KCAT", "/usr/bin/kcat")


def broker_binary(sluice_bin):
    """The kafka_broker built next to the sluice binary."""
    return os.path.join(os.path.dirname(os.path.abspath(sluice_bin)), "kafka_broker")


class KafkaBroker:
    """A mock Kafka cluster of n brokers in a child process. bootstrap is
    'host:port,...'; command() sends one line and returns its answer."""

    def __init__(self, sluice_bin, brokers=1):
        path = broker_binary(sluice_bin)
        if not os.path.exists(path):
            raise AssertionError(f"{path} not built")
        self.proc = subprocess.Popen(
            [path, "-n", str(brokers)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        first = self.proc.stdout.readline().split()
        if len(first) != 2 or first[0] != "BOOTSTRAP":
            self.close()
            raise AssertionError(f"kafka_broker said {first!r} instead of BOOTSTRAP host:port")
        self.bootstrap = first[1]
        self.lock = threading.Lock()

    def command(self, line):
        with self.lock:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
        if answer != "ok":
            raise AssertionError(f"kafka_broker: {line!r} -> {answer!r}")
        return answer

    def create(self, topic, partitions):
        self.command(f"create {topic} {partitions}")

    def down(self, broker_id=1):
        self.command(f"down {broker_id}")

    def up(self, broker_id=1):
        self.command(f"up {broker_id}")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()

    # ---- kcat ----

    def produce_lines(self, topic, lines, key_delim=":", extra=()):
        """Produces each line (KEY:VALUE when key_delim) with kcat -P. Raises
        when kcat fails (it exits non-zero when a delivery fails)."""
        data = "".join(l + "\n" for l in lines)
        cmd = [KCAT, "-P", "-b", self.bootstrap, "-t", topic, *extra]
        if key_delim:
            cmd += ["-K", key_delim]
        r = subprocess.run(cmd, input=data, capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            raise AssertionError(f"kcat -P failed ({r.returncode}): {r.stderr[-2000:]}")

    def consume(self, topic, fmt="%k\t%s\t%h\n", timeout=120, extra=()):
        """Reads topic from the beginning to its current end (kcat -C -e)
        and returns the formatted records, one string each."""
        cmd = [KCAT, "-C", "-e", "-q", "-b", self.bootstrap, "-t", topic, "-o", "beginning",
               "-f", fmt, *extra]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise AssertionError(f"kcat -C failed ({r.returncode}): {r.stderr[-2000:]}")
        return [l for l in r.stdout.split("\n") if l]

    def count(self, topic):
        """The number of records in topic (the sum of its high watermarks)."""
        return len(self.consume(topic, fmt="%o\n"))


def parse_headers(h):
    """kcat's %h ('k1=v1,k2=v2') into a dict."""
    out = {}
    if not h:
        return out
    for part in h.split(","):
        k, _, v = part.partition("=")
        out[k] = v
    return out
