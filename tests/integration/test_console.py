"""The web console in a real browser: a gateway with an admin token, a
partner (erp) that refuses one message so it is dead-lettered and another
(crm) that fails so its breaker opens; then tests/console/console.test.js
drives headless Chromium through every page (login, routes and lag, breaker
reset, dead letters: inspect, redrive one by id, purge one, redrive the rest
re-run from the original; message lookup, rewind) and checks what the pages
show against the admin API and what the partners received. Fails (never skips) without Chromium."""

import json
import os
import shutil
import subprocess
import threading

from harness import ROOT, Gateway, Sink, base_config, free_port, metric, parse_metrics, post_json, request, wait_until

CHROMIUM = os.environ.get("SLUICE_CHROMIUM", "/usr/bin/chromium")
CONSOLE_TESTS = os.path.join(ROOT, "tests", "console")
SHOTS_COPY = "/tmp/console-shots"
TOKEN = "c0nsole-t0ken"


class Partner:
    """A sink answering `fail` (a status) until POST /_fix, then 200; GET
    /_received lists the X-Message-Id of every request answered 200."""

    def __init__(self, fail):
        self.fixed = threading.Event()
        self.delivered = []
        self.fail = fail
        self.sink = Sink(self._behaviour)

    def _behaviour(self, req):
        if req["path"] == "/_fix":
            self.fixed.set()
            return 200, "fixed"
        if req["path"] == "/_received":
            with self.sink.lock:
                return 200, json.dumps(list(self.delivered))
        if not self.fixed.is_set():
            return self.fail, "partner says no"
        with self.sink.lock:
            self.delivered.append(req["headers"].get("x-message-id"))
        return 200, "ok"


def console_config(admin_port, in_port, erp, crm):
    return base_config(admin_port=admin_port).replace(
        f'listen: "127.0.0.1:{admin_port}"', f'listen: "127.0.0.1:{admin_port}", token: "{TOKEN}"'
    ) + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  erp: {{ type: http_client, base_url: "{erp.sink.url}", timeout: 2s }}
  out: {{ type: stdout }}
  crm:
    type: http_client
    base_url: "{crm.sink.url}"
    timeout: 2s
    breaker: {{ failure_rate: 50%, min_calls: 2, window: 4, open_for: 300s, max_open_for: 300s, half_open_calls: 1 }}
routes:
  feed:
    from: {{ connector: in, path: /feed, content_type: json }}
    partitions: 1
    to: [ {{ connector: out }} ]
  orders:
    from: {{ connector: in, path: /orders, content_type: json }}
    partitions: 2
    to: [ {{ connector: erp, path: /o }} ]
  audit:
    from: {{ connector: in, path: /audit, content_type: json }}
    partitions: 1
    to: [ {{ connector: crm, path: /a }} ]
    on_error:
      retry: {{ max_attempts: 1000, initial_backoff: 10ms, max_backoff: 50ms }}
"""


def npm_ci():
    """Installs the pinned puppeteer-core (package-lock.json) when missing."""
    if os.path.isdir(os.path.join(CONSOLE_TESTS, "node_modules", "puppeteer-core")):
        return
    r = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=CONSOLE_TESTS,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"npm ci in tests/console failed:\n{r.stdout}\n{r.stderr}"


def test_console_pages_in_headless_chromium():
    assert os.access(CHROMIUM, os.X_OK), (
        f"{CHROMIUM} is missing: install Debian's chromium (docker/install-deps.sh does)")
    assert shutil.which("node"), "node is missing: install Debian's nodejs (docker/install-deps.sh does)"
    npm_ci()
    erp, crm = Partner(422), Partner(503)
    admin_port, in_port = free_port(), free_port()
    gw = Gateway(console_config(admin_port, in_port, erp, crm))
    auth = {"authorization": f"Bearer {TOKEN}"}
    shots = os.path.join(gw.dir, "shots")  # the test's temp dir; copied to SHOTS_COPY
    os.makedirs(shots)
    try:
        gw.start(admin_port)
        # the assets need no token, the API does
        st, _, hdrs = request("GET", gw.admin, "/")
        assert st == 302 and hdrs["location"] == "/console/", (st, hdrs)
        for path, ctype in (("/console/", "text/html"), ("/console/app.js", "text/javascript"),
                            ("/console/app.css", "text/css")):
            st, body, hdrs = request("GET", gw.admin, path)
            assert st == 200 and hdrs["content-type"].startswith(ctype) and len(body) > 500, (path, st)
        assert request("GET", gw.admin, "/console/nope.js")[0] == 404
        assert request("POST", gw.admin, "/console/app.js")[0] == 405
        assert request("GET", gw.admin, "/v1/routes")[0] == 401
        order_ids = []
        for i in range(3):
            st, body, _ = post_json(f"127.0.0.1:{in_port}", "/orders", {"order": i, "sku": "A-1"})
            assert st == 202, (st, body)
            order_ids.append(json.loads(body)["id"])
        purge_id, bad_id = order_ids[0], order_ids[2]
        st, _, _ = post_json(f"127.0.0.1:{in_port}", "/audit", {"who": "alice"})
        assert st == 202

        def scrape():
            return request("GET", gw.admin, "/metrics", headers=auth)[1].decode()

        wait_until(lambda: metric(parse_metrics(scrape()), "sluice_dead_letter_total", route="orders") == 3,
                   60, "3 dead letters")
        wait_until(lambda: json.loads(request("GET", gw.admin, "/v1/breakers/crm", headers=auth)[1])["state"] == "open",
                   60, "crm's breaker open")
        env = dict(os.environ, SLUICE_ADMIN=f"http://{gw.admin}", SLUICE_TOKEN=TOKEN,
                   IN_URL=f"http://127.0.0.1:{in_port}", ERP_URL=erp.sink.url, CRM_URL=crm.sink.url, BAD_ID=bad_id,
                   ORDER_IDS=",".join(order_ids), SHOTS_DIR=shots,
                   CHROMIUM=CHROMIUM)
        r = subprocess.run(["node", os.path.join(CONSOLE_TESTS, "console.test.js")], env=env,
                           capture_output=True, text=True, timeout=300)
        print(r.stdout, end="")
        os.makedirs(SHOTS_COPY, exist_ok=True)
        for f in sorted(os.listdir(shots)):
            shutil.copy(os.path.join(shots, f), SHOTS_COPY)
        assert r.returncode == 0, f"console.test.js failed:\n{r.stdout}\n{r.stderr}"
        # what the browser did, seen from outside it
        assert erp.delivered == [bad_id, order_ids[1]], (order_ids, erp.delivered)
        st, body, _ = request("GET", gw.admin, "/v1/breakers/crm", headers=auth)
        assert json.loads(body)["state"] == "closed", body
        st, body, _ = request("GET", gw.admin, "/v1/dlq/orders", headers=auth)
        dlq = json.loads(body)
        assert dlq["pending"] == 0, body
        states = {e["id"]: e["state"] for e in dlq["entries"]}
        assert states == {purge_id: "purged", order_ids[1]: "redriven", bad_id: "redriven"}, states
        gw.stop()
    finally:
        erp.sink.close()
        crm.sink.close()
        gw.cleanup()
