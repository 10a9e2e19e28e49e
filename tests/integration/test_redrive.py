"""Dead letter redrive (issue 11): a dead letter keeps the original message
and names the outputs that failed; redrive sends the transformed message to
those outputs only, without running the steps again (or, with rerun, runs
the route from the original); redrive by id, with a limit; purge; the
sluice_dlq_depth gauge, also after a restart."""

import json
import os
import threading
import time

from harness import Gateway, Sink, base_config, free_port, metric, post_json, request, wait_until

# Not idempotent: it consumes `raw` and drops a message without it, so a
# message that went through it once is dropped by a second pass.
MAP_LUA = """
function map(msg, ctx)
  local t = msg:json()
  if t.fail_until and ctx.now() < t.fail_until then error("not yet") end
  if t.raw == nil then return nil end
  msg:set_json({ value = t.raw .. "-mapped", n = t.n })
  return msg
end
"""


class Switch:
    """Sink B: answers 400 (a permanent failure) until fixed."""

    def __init__(self):
        self.fixed = threading.Event()
        self.sink = Sink(self._behaviour)

    def _behaviour(self, req):
        ok = self.fixed.is_set()
        req["answered"] = 200 if ok else 400
        return (200, "ok") if ok else (400, "rejected")

    def delivered(self):
        with self.sink.lock:
            return [json.loads(r["body"]) for r in self.sink.requests if r["answered"] == 200]


def bodies(sink):
    with sink.lock:
        return [json.loads(r["body"]) for r in sink.requests]


def setup():
    a, b = Sink(), Switch()
    in_port, admin_port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin_port) + f"""
connectors:
  in: {{ type: http_server, listen: "127.0.0.1:{in_port}" }}
  a:  {{ type: http_client, base_url: "{a.url}" }}
  b:  {{ type: http_client, base_url: "{b.sink.url}" }}
routes:
  r:
    from: {{ connector: in, path: /in, content_type: json }}
    partitions: 1
    steps:
      - lua: {{ file: map.lua, function: map }}
    to:
      - {{ connector: a, name: out_a }}
      - {{ connector: b, name: out_b }}
    on_error:
      retry: {{ max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms }}
""")
    with open(os.path.join(gw.dir, "map.lua"), "w") as f:
        f.write(MAP_LUA)
    gw.start(admin_port)
    return a, b, gw, f"127.0.0.1:{in_port}"


def post(ingest, obj):
    st, body, _ = post_json(ingest, "/in", obj)
    assert st == 202, (st, body)
    return json.loads(body)["id"]


def state(gw, mid):
    st, body, _ = request("GET", gw.admin, f"/v1/messages/{mid}")
    assert st == 200, (st, body)
    return json.loads(body)["state"]


def depth(gw):
    return metric(gw.metrics(), "sluice_dlq_depth", route="r")


def dlq(gw):
    st, body, _ = request("GET", gw.admin, "/v1/dlq/r?limit=1000")
    assert st == 200, body
    return json.loads(body)


def admin_post(gw, path, obj):
    st, body, _ = request("POST", gw.admin, path, json.dumps(obj).encode(),
                          {"content-type": "application/json"})
    return st, json.loads(body)


def dead_letter_one(a, b, gw, ingest, n):
    """Posts one message; it reaches A and is dead-lettered for B."""
    mid = post(ingest, {"raw": f"x{n}", "n": n})
    wait_until(lambda: state(gw, mid) == "dead_lettered", 60, "the message dead-lettered for B")
    return mid


def test_redrive_by_id_reaches_only_the_failed_output_with_the_mapping_applied_once():
    a, b, gw, ingest = setup()
    try:
        mid = dead_letter_one(a, b, gw, ingest, 1)
        assert bodies(a) == [{"value": "x1-mapped", "n": 1}], bodies(a)
        b.fixed.set()
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {"ids": [mid]})
        assert st == 200 and res["redriven"] == 1, res
        wait_until(lambda: state(gw, mid) == "delivered", 60, "the redriven message delivered")
        assert b.delivered() == [{"value": "x1-mapped", "n": 1}], b.delivered()
        assert bodies(a) == [{"value": "x1-mapped", "n": 1}], bodies(a)  # nothing more to A
        assert res["not_pending"] == [], res
        # what the dead letter kept: the failed output, the error, the message
        # as B should have received it and as it entered the route
        e = dlq(gw)["entries"][0]
        assert e["id"] == mid and e["failed_outputs"] == "out_b" and "400" in e["error"], e
        assert json.loads(e["body"]) == {"value": "x1-mapped", "n": 1}, e
        assert json.loads(e["original_body"]) == {"raw": "x1", "n": 1}, e
        assert e["state"] == "redriven" and e["redriven_by"] == "admin" and e["redriven_at"] > 0, e
        assert depth(gw) == 0
        # the same id again: nothing pending for it, a no-op that says so
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {"ids": [mid]})
        assert st == 200 and res["redriven"] == 0 and res["not_pending"] == [mid], res
        assert len(dlq(gw)["entries"]) == 1 and depth(gw) == 0
        gw.stop()
        assert len(b.delivered()) == 1 and len(bodies(a)) == 1, (b.delivered(), bodies(a))
    finally:
        a.close()
        b.sink.close()
        gw.cleanup()


def test_redrive_rerun_runs_the_route_again_from_the_original_message():
    a, b, gw, ingest = setup()
    try:
        mid = dead_letter_one(a, b, gw, ingest, 2)
        b.fixed.set()
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {"ids": [mid], "rerun": True})
        assert st == 200 and res["redriven"] == 1, res
        wait_until(lambda: state(gw, mid) == "delivered", 60, "the rerun delivered")
        want = {"value": "x2-mapped", "n": 2}
        assert bodies(a) == [want, want], bodies(a)  # A again: the whole route ran
        assert b.delivered() == [want], b.delivered()
        assert depth(gw) == 0
        gw.stop()
    finally:
        a.close()
        b.sink.close()
        gw.cleanup()


def test_limit_purge_dead_letter_again_and_the_depth_gauge_across_a_restart():
    a, b, gw, ingest = setup()
    try:
        ids = [post(ingest, {"raw": f"m{i}", "n": i}) for i in range(5)]
        for mid in ids:
            wait_until(lambda: state(gw, mid) == "dead_lettered", 60, f"{mid} dead-lettered")
        assert depth(gw) == 5
        # B still refuses: the redriven message follows the route's policy
        # and is dead-lettered again (a new entry), its status says so.
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {"ids": [ids[0]]})
        assert st == 200 and res["redriven"] == 1, res
        wait_until(lambda: metric(gw.metrics(), "sluice_dead_letter_total", route="r") == 6, 60,
                   "the redriven message dead-lettered again")
        assert state(gw, ids[0]) == "dead_lettered"
        assert depth(gw) == 5
        entries = dlq(gw)["entries"]
        assert [e["state"] for e in entries] == ["redriven"] + ["pending"] * 5, entries
        assert entries[5]["id"] == ids[0] and entries[5]["failed_outputs"] == "out_b", entries[5]
        assert json.loads(entries[5]["original_body"]) == {"raw": "m0", "n": 0}, entries[5]
        # a limit: the two oldest pending entries, nothing else
        b.fixed.set()
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {"limit": 2})
        assert st == 200 and res["redriven"] == 2, res
        for mid in ids[1:3]:
            wait_until(lambda: state(gw, mid) == "delivered", 60, f"{mid} delivered")
        # unkeyed messages of one batch go out concurrently: no order between them
        assert sorted(m["n"] for m in b.delivered()) == [1, 2], b.delivered()
        assert depth(gw) == 3
        # purge by id
        st, res = admin_post(gw, "/v1/dlq/r/purge", {"ids": [ids[3]]})
        assert st == 200 and res["purged"] == 1, res
        assert depth(gw) == 2
        st, res = admin_post(gw, "/v1/dlq/r/purge", {})
        assert st == 400, res  # ids or all, never an accidental everything
        gw.stop()
        gw.start(int(gw.admin.rsplit(":", 1)[1]))
        assert depth(gw) == 2  # restored from the markers on disk
        entries = dlq(gw)["entries"]
        purged = [e for e in entries if e["state"] == "purged"]
        assert [e["id"] for e in purged] == [ids[3]], entries
        assert purged[0]["purged_by"] == "admin" and purged[0]["purged_at"] > 0, purged
        assert dlq(gw)["pending"] == 2
        st, res = admin_post(gw, "/v1/dlq/r/purge", {"all": True})
        assert st == 200 and res["purged"] == 2, res
        assert depth(gw) == 0
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {})
        assert st == 200 and res["redriven"] == 0, res
        assert len(dlq(gw)["entries"]) == 6  # nothing deleted
        # unkeyed messages of one batch go out concurrently: no order between them
        assert sorted(m["n"] for m in b.delivered()) == [1, 2], b.delivered()
        gw.stop()
    finally:
        a.close()
        b.sink.close()
        gw.cleanup()


def test_a_step_failure_is_redriven_from_the_original_through_the_whole_route():
    a, b, gw, ingest = setup()
    try:
        b.fixed.set()
        until = int(time.time() * 1000) + 4000  # the step fails until then
        mid = post(ingest, {"raw": "s", "n": 7, "fail_until": until})
        wait_until(lambda: state(gw, mid) == "dead_lettered", 60, "the step failure dead-lettered")
        e = dlq(gw)["entries"][0]
        assert e["failed_step"] == "1 (lua)" and "failed_outputs" not in e, e
        assert "not yet" in e["error"], e
        assert json.loads(e["original_body"])["raw"] == "s", e
        assert bodies(a) == [] and b.delivered() == []
        wait_until(lambda: time.time() * 1000 > until + 50, 10, "the step to be fixed")
        st, res = admin_post(gw, "/v1/dlq/r/redrive", {"ids": [mid]})
        assert st == 200 and res["redriven"] == 1, res
        wait_until(lambda: state(gw, mid) == "delivered", 60, "the redriven message delivered")
        want = {"value": "s-mapped", "n": 7}
        assert bodies(a) == [want] and b.delivered() == [want], (bodies(a), b.delivered())
        gw.stop()
    finally:
        a.close()
        b.sink.close()
        gw.cleanup()
