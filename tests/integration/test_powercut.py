"""Power cuts under HTTP load: the real gateway keeps its data_dir on lazyfs
(tests/powerloss/lazyfs.c: what was not fsynced is lost when it dies), and
is cut several times (SIGKILL of the gateway, SIGKILL of lazyfs, unmount,
mount again, restart). Route r delivers to a sink and to an internal topic
that route audit (100 partitions) delivers too. After the last restart every
request answered 202 must reach the sink through both routes.
lazyfs runs with --lazy-dirs (names durable only once their directory is
fsynced) unless SL_POWERCUT_STRICT_DIRS=0; SL_POWERCUT_GATEWAY_CUTS sets the
cuts (10)."""

import ctypes
import http.client
import json
import os
import random
import select
import signal
import subprocess
import tempfile
import threading
import time

from harness import SLUICE, Gateway, Sink, free_port, post_json, wait_until

CUTS = int(os.environ.get("SL_POWERCUT_GATEWAY_CUTS", "10"))
STRICT = os.environ.get("SL_POWERCUT_STRICT_DIRS", "1") == "1"


def lazyfs_path():
    path = os.path.join(os.path.dirname(os.path.abspath(SLUICE)), "lazyfs")
    assert os.access(path, os.X_OK), f"{path} is missing: build the lazyfs target"
    return path


def _term_with_parent():
    # PR_SET_PDEATHSIG (1): if this test dies, lazyfs unmounts and exits
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


class Disk:
    """A backing directory shown through lazyfs at mnt; power_cut() loses
    whatever was not fsynced, power_on() mounts it again."""

    def __init__(self, workdir):
        self.backing = os.path.join(workdir, "disk")
        self.mnt = os.path.join(workdir, "mnt")
        self.log = os.path.join(workdir, "lazyfs.log")
        self.state = os.path.join(workdir, "lazy-dirs")
        os.mkdir(self.backing)
        os.mkdir(self.mnt)
        self.proc = None

    def power_on(self):
        r, w = os.pipe()
        strict = ["--lazy-dirs", self.state] if STRICT else []
        with open(self.log, "a") as err:
            self.proc = subprocess.Popen(
                [lazyfs_path(), "-f", "--ready-fd", str(w), *strict, self.backing, self.mnt],
                pass_fds=(w,),
                preexec_fn=_term_with_parent,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        os.close(w)
        try:
            ready, _, _ = select.select([r], [], [], 10)
            assert ready and os.read(r, 1) == b"\0", "lazyfs did not mount within 10 s"
        finally:
            os.close(r)
        assert os.path.ismount(self.mnt), f"{self.mnt} is not mounted"

    def power_cut(self):
        """Kills lazyfs and unmounts: what was not fsynced is gone."""
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self._unmount()

    def _unmount(self):
        subprocess.run(["fusermount3", "-u", "-z", "-q", self.mnt], check=False)
        assert not os.path.ismount(self.mnt), f"{self.mnt} is still mounted"

    def close(self):
        """Unmounts (dropping what was not synced) and waits for lazyfs."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
        if os.path.ismount(self.mnt):
            self._unmount()


def config(data_dir, in_port, admin_port, sink_url):
    retry = "retry: { max_attempts: 1000, initial_backoff: 10ms, max_backoff: 200ms }"
    return f"""
sluice:
  data_dir: {data_dir}
  admin: {{ listen: "127.0.0.1:{admin_port}" }}
  shutdown_timeout: 60s
  log: {{ fsync: always, segment_bytes: 1MiB }}
connectors:
  in:   {{ type: http_server, listen: "127.0.0.1:{in_port}", max_body: 64KiB }}
  sink: {{ type: http_client, base_url: "{sink_url}", timeout: 5s, max_in_flight: 64 }}
routes:
  r:
    from: {{ connector: in, path: /orders, methods: [POST], content_type: json, reply: async }}
    partitions: 4
    key: "$.key"
    to:
      - {{ connector: sink, path: /in }}
      - {{ topic: chained }}
    on_error:
      {retry}
  audit:
    from: {{ topic: chained }}
    partitions: 100
    to:
      - {{ connector: sink, path: /audit }}
    on_error:
      {retry}
"""


class Load:
    """Producers posting unique messages on their own connections. A request
    is sent once: whatever happens to it (202, an error, a dropped
    connection), the next request carries a new message."""

    def __init__(self, ingest, threads=16):
        self.host, port = ingest.rsplit(":", 1)
        self.port = int(port)
        self.acked = set()
        self.failed = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(t,)) for t in range(threads)]
        for th in self.threads:
            th.start()

    def _post_once(self, conn, body):
        """Returns (status, conn): status None when the request failed."""
        if conn is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        try:
            conn.request("POST", "/orders", body, {"content-type": "application/json"})
            r = conn.getresponse()
            r.read()
            return r.status, conn
        except (OSError, http.client.HTTPException):
            conn.close()
            return None, None

    def _run(self, t):
        conn = None
        for i in range(10**9):
            if self.stop.is_set():
                break
            uid = f"{t}-{i}"
            body = json.dumps({"key": f"k{t}-{i % 7}", "uid": uid, "pad": "p" * 200})
            status, conn = self._post_once(conn, body.encode())
            with self.lock:
                if status == 202:
                    self.acked.add(uid)
                else:
                    self.failed += 1
            if status is None:
                time.sleep(0.05)  # the gateway is down: do not spin
        if conn is not None:
            conn.close()

    def count(self):
        with self.lock:
            return len(self.acked)

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join()


def delivered(sink, path):
    """uid of every message the sink received on path, with repeats."""
    with sink.lock:
        return [json.loads(r["body"])["uid"] for r in sink.requests if r["path"] == path]


def idle(gw):
    """True when route r, then route audit, have nothing left to deliver
    (r first: once it is idle, everything it will put on the topic is there)."""
    return all(sum(p["lag"] for p in gw.route(name)["partitions"]) == 0 for name in ("r", "audit"))


def test_power_cuts_under_load_lose_no_acknowledged_message():
    work = tempfile.mkdtemp(prefix="sluice-powercut-")
    disk = Disk(work)
    sink = Sink(lambda req: (200, "ok"))
    in_port, admin_port = free_port(), free_port()
    data_dir = os.path.join(disk.mnt, "data")
    gw = Gateway(config(data_dir, in_port, admin_port, sink.url), workdir=work)
    load = None
    try:
        disk.power_on()
        gw.start(admin_port)
        assert len(gw.route("audit")["partitions"]) == 100
        load = Load(f"127.0.0.1:{in_port}")
        rng = random.Random(20261124)
        for cut in range(CUTS):
            base = load.count()
            wait_until(lambda: load.count() >= base + 200, 120, "200 more acknowledged messages")
            time.sleep(rng.uniform(0.2, 2.0))  # load runs on; the cut comes at a random moment
            gw.kill()
            disk.power_cut()
            print(f"  cut {cut + 1}: {load.count()} acknowledged so far")
            disk.power_on()
            gw.start(admin_port)
        base = load.count()
        wait_until(lambda: load.count() >= base + 200, 120, "acknowledgements after the last restart")
        load.finish()
        acked = load.acked
        wait_until(
            lambda: all(acked <= set(delivered(sink, p)) for p in ("/in", "/audit")) or idle(gw),
            300,
            f"all {len(acked)} acknowledged messages delivered, or both routes idle",
            interval=0.5,
        )
        for path in ("/in", "/audit"):
            lost = acked - set(delivered(sink, path))
            assert not lost, (
                f"{len(lost)} of {len(acked)} acknowledged messages never reached {path} "
                f"(both routes idle), e.g. {sorted(lost)[:5]}"
            )
        for path in ("/in", "/audit"):
            got = delivered(sink, path)
            print(
                f"  {path}: {len(acked)} acknowledged ({load.failed} requests failed or refused), "
                f"{len(set(got))} delivered, {len(got) - len(set(got))} duplicate(s)"
            )
        gw.stop()
    finally:
        if load is not None:
            load.finish()
        if gw.proc is not None:
            gw.kill()
        disk.close()  # unmounted before work is removed
        sink.close()
        gw.cleanup()


def test_fsync_never_power_cut_then_new_records_are_delivered():
    """With `fsync: never` a route delivers and commits records that are not
    durable yet; a power cut takes them but not the committed offset (its
    file is fsynced). The records posted after the restart take the lost
    offsets again: each must still be delivered, not skipped below the old
    committed offset."""
    work = tempfile.mkdtemp(prefix="sluice-powercut-never-")
    disk = Disk(work)
    sink = Sink(lambda req: (200, "ok"))
    in_port, admin_port = free_port(), free_port()
    data_dir = os.path.join(disk.mnt, "data")
    cfg = config(data_dir, in_port, admin_port, sink.url).replace("fsync: always", "fsync: never")
    gw = Gateway(cfg, workdir=work)
    ingest = f"127.0.0.1:{in_port}"

    def post(uid):
        status, _, _ = post_json(ingest, "/orders", {"key": "k", "uid": uid})
        assert status == 202, f"{uid}: {status}"

    def committed():
        return sum(p["committed"] for p in gw.route("r")["partitions"])

    try:
        disk.power_on()
        gw.start(admin_port)
        for i in range(20):
            post(f"before-{i}")
        wait_until(lambda: committed() == 20, 60, "route r to commit its 20 deliveries")
        gw.kill()
        disk.power_cut()
        disk.power_on()
        gw.start(admin_port)
        ends = sum(p["end_offset"] for p in gw.route("r")["partitions"])
        assert ends < 20, f"the power cut took no record (log ends sum to {ends}): nothing tested"
        after = [f"after-{i}" for i in range(5)]
        for uid in after:
            post(uid)
        wait_until(
            lambda: set(after) <= set(delivered(sink, "/in")),
            60,
            "the 5 messages posted after the power cut delivered",
        )
        gw.stop()
    finally:
        if gw.proc is not None:
            gw.kill()
        disk.close()
        sink.close()
        gw.cleanup()
