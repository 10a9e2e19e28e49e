"""The AMQP connector against a real rabbitmq-server (started once per run by
amqp_peer.py through tests/peers/rabbitmq.sh): AMQP to AMQP through a route
in order, a broker restart in the middle of a stream, unroutable mandatory
publishes dead-lettered, HTTP to AMQP and AMQP to HTTP, and the connection
settings (credentials from the environment, TLS verification)."""

import json
import time
import uuid

from amqp_peer import broker, unique
from harness import Gateway, Sink, base_config, free_port, metric, post_json, request, wait_until


def queue_state(b, name):
    return b.queues().get(name)


def wait_queue(b, name, ready, unacked=0, timeout=240):
    """Waits until queue name holds exactly (ready, unacked)."""
    wait_until(
        lambda: queue_state(b, name) == (ready, unacked),
        timeout,
        f"queue {name} at {ready} ready / {unacked} unacked (now {queue_state(b, name)})",
        interval=0.5,
    )


def check_order(msgs, per_key):
    """Bodies carry key and seq: every key's seqs, first deliveries only,
    must be 0..per_key-1 in order. Returns the number of duplicates."""
    seen, firsts, dups = {}, set(), 0
    for m in msgs:
        if m["message_id"] in firsts:
            dups += 1
            continue
        firsts.add(m["message_id"])
        body = json.loads(m["body"])
        seen.setdefault(body["key"], []).append(body["seq"])
    for k, seqs in seen.items():
        assert seqs == list(range(per_key)), f"key {k} out of order: {seqs[:20]}..."
    return dups


def amqp_route_config(b, admin_port, q_in, ex_in, ex_out, prefetch=256, retry=""):
    return base_config(admin_port=admin_port) + f"""
connectors:
  rabbit: {{ type: amqp, url: "{b.url}", prefetch: {prefetch}, timeout: 5s }}
routes:
  r:
    from:
      connector: rabbit
      queue: {q_in}
      declare: {{ durable: true, arguments: {{ x-queue-type: classic }} }}
      bind: [ {{ exchange: {ex_in}, routing_key: "orders.#" }} ]
    partitions: 4
    key: "$.key"
    to:
      - {{ connector: rabbit, exchange: {ex_out}, routing_key: "orders.$${{header:type}}",
          persistent: true, mandatory: true }}
{retry}
"""


def test_amqp_10k_to_amqp_in_order_nothing_left_unacked():
    b = broker()
    ex_in, ex_out = unique("in-x"), unique("out-x")
    q_in, q_out = unique("q-in"), unique("q-out")
    b.declare_exchange(ex_in)
    b.declare_exchange(ex_out)
    b.declare_queue(q_out, ex_out, "orders.*")
    admin = free_port()
    gw = Gateway(amqp_route_config(b, admin, q_in, ex_in, ex_out))
    try:
        gw.start(admin)
        wait_until(lambda: queue_state(b, q_in) is not None, 60, f"{q_in} declared by the gateway")
        keys, per_key = 20, 500
        ids = [str(uuid.uuid4()) for _ in range(keys * per_key)]
        bodies = [
            json.dumps({"key": f"k{i % keys}", "seq": i // keys, "pad": "p" * 150})
            for i in range(keys * per_key)
        ]
        t0 = time.monotonic()
        b.publish(
            ex_in, "orders.created", bodies, ids=ids,
            options=["-t", "application/json", "-p", "type=created", "-H", "x-source=it",
                     "-H", "x-count=i:42", "-H", "x-big=l:-9000000000", "-H", "x-flag=b:1",
                     "-H", "x-ratio=d:0.5", "-H", "x-price=D:2:12340"],
        )
        wait_queue(b, q_out, keys * per_key)
        elapsed = time.monotonic() - t0
        wait_queue(b, q_in, 0, 0)
        msgs = b.consume(q_out, count=keys * per_key)
        assert len(msgs) == keys * per_key, len(msgs)
        # a message_id that is a UUID is the message id, and passes through
        assert {m["message_id"] for m in msgs} == set(ids)
        dups = check_order(msgs, per_key)
        assert dups == 0, f"{dups} duplicates without any failure"
        m0 = msgs[0]
        assert m0["routing_key"] == "orders.created", m0
        assert m0["content_type"] == "application/json", m0
        assert m0["delivery_mode"] == 2, m0
        assert m0["type"] == "created", m0
        assert m0["headers"].get("x-source") == "it", m0["headers"]
        # typed header table values arrive as their text
        typed = {k: m0["headers"].get(k) for k in ("x-count", "x-big", "x-flag", "x-ratio", "x-price")}
        assert typed == {"x-count": "42", "x-big": "-9000000000", "x-flag": "true",
                         "x-ratio": "0.5", "x-price": "123.40"}, typed
        assert "amqp-routing-key" not in m0["headers"], m0["headers"]
        m = gw.metrics()
        assert metric(m, "sluice_amqp_consumed_total", connector="rabbit") == keys * per_key
        assert metric(m, "sluice_amqp_published_total", connector="rabbit") == keys * per_key
        assert metric(m, "sluice_amqp_confirm_failures_total", connector="rabbit") == 0
        assert metric(m, "sluice_messages_in_total", route="r") == keys * per_key
        gw.stop()
        wait_queue(b, q_out, 0, 0)
        print(f"  10,000 AMQP -> route -> AMQP in {elapsed:.1f}s (ASan), in order per key, "
              f"none unacked")
    finally:
        gw.cleanup()


def test_amqp_broker_restart_mid_stream_everything_arrives():
    b = broker()
    ex_in, ex_out = unique("in-x"), unique("out-x")
    q_in, q_out = unique("q-in"), unique("q-out")
    b.declare_exchange(ex_in)
    b.declare_exchange(ex_out)
    b.declare_queue(q_in, ex_in, "orders.#")
    b.declare_queue(q_out, ex_out, "orders.*")
    n = 10000
    ids = [str(uuid.uuid4()) for _ in range(n)]
    bodies = [json.dumps({"key": f"k{i % 10}", "seq": i // 10}) for i in range(n)]
    # Everything is in the durable input queue before the gateway starts, so
    # that the restart hits the gateway mid-stream in both directions.
    b.publish(ex_in, "orders.created", bodies, ids=ids, options=["-p", "type=created"])
    admin = free_port()
    retry = """    on_error:
      retry: { max_attempts: 1000, initial_backoff: 50ms, max_backoff: 1s }
"""
    # a small prefetch keeps the stream slow enough for rabbitmqctl to stop
    # the broker in the middle of it
    gw = Gateway(amqp_route_config(b, admin, q_in, ex_in, ex_out, prefetch=10, retry=retry))
    try:
        gw.start(admin)
        wait_until(
            lambda: metric(gw.metrics(), "sluice_amqp_published_total", connector="rabbit") >= 500,
            120,
            "500 messages through",
        )
        b.ctl("stop_app")
        at_restart = metric(gw.metrics(), "sluice_amqp_consumed_total", connector="rabbit")
        assert at_restart < n, "the stream was over before the broker stopped"
        ready = lambda: request("GET", gw.admin, "/ready")[0]
        wait_until(lambda: ready() == 503, 30, "/ready to report the lost connection")
        time.sleep(1)
        b.ctl("start_app")
        b.ctl("await_startup")
        wait_until(lambda: ready() == 200, 120, "/ready again after the reconnect")
        wait_until(
            lambda: queue_state(b, q_in) == (0, 0)
            and (queue_state(b, q_out) or (0, 0))[0] >= n,
            300,
            "the input queue drained and every message in the output queue",
            interval=1,
        )
        m = gw.metrics()
        assert metric(m, "sluice_amqp_reconnects_total", connector="rabbit") >= 1, m
        assert metric(m, "sluice_dead_letter_total", route="r") == 0
        gw.stop()
        msgs = b.consume(q_out, idle_ms=3000)
        got = [x["message_id"] for x in msgs]
        assert set(got) == set(ids), f"{len(set(ids) - set(got))} message(s) missing"
        dups = len(got) - len(set(got))
        assert "reconnected to" in open(gw.stderr_path).read()
        print(f"  broker stopped after {int(at_restart)} of {n} consumed: all arrived, "
              f"{dups} duplicate(s)")
    finally:
        gw.cleanup()


def test_amqp_unroutable_mandatory_is_retried_then_dead_lettered():
    b = broker()
    ex = unique("x")
    q_good = unique("q-good")
    b.declare_exchange(ex)
    b.declare_queue(q_good, ex, "orders.good")
    admin, port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin) + f"""
connectors:
  in:     {{ type: http_server, listen: "127.0.0.1:{port}" }}
  rabbit: {{ type: amqp, url: "{b.url}", timeout: 5s }}
routes:
  r:
    from: {{ connector: in, path: /orders, methods: [POST] }}
    to:
      - {{ connector: rabbit, exchange: {ex}, routing_key: "orders.$${{header:x-kind}}",
          mandatory: true }}
    on_error:
      retry: {{ max_attempts: 3, initial_backoff: 10ms, max_backoff: 50ms }}
""")
    try:
        gw.start(admin)
        ids = {}
        for kind in ["bad", "good", "bad", "good", "bad", None]:
            headers = {"x-kind": kind} if kind else {}
            st, body, _ = post_json(f"127.0.0.1:{port}", "/orders", {"kind": kind}, headers)
            assert st == 202, (st, body)
            ids.setdefault(kind, []).append(json.loads(body)["id"])
        wait_until(
            lambda: metric(gw.metrics(), "sluice_dead_letter_total", route="r") == 4,
            120,
            "4 dead letters",
        )
        wait_queue(b, q_good, 2)
        m = gw.metrics()
        assert metric(m, "sluice_amqp_confirm_failures_total", connector="rabbit") == 9, m
        assert metric(m, "sluice_amqp_published_total", connector="rabbit") == 2
        gw.stop()
        dlq = {r["headers"]["message-id"]: r["headers"] for r in gw.dump("r.dlq")}
        assert set(dlq) == set(ids["bad"]) | set(ids[None]), dlq
        for i in ids["bad"]:
            h = dlq[i]
            assert f"unroutable: exchange {ex} routing key orders.bad (NO_ROUTE)" in h[
                "x-sluice-error"
            ], h
            assert h["x-sluice-attempts"] == "3", h
        h = dlq[ids[None][0]]
        assert "has no value" in h["x-sluice-error"] and h["x-sluice-attempts"] == "1", h
        good = b.consume(q_good, count=2)
        assert {x["message_id"] for x in good} == set(ids["good"])
    finally:
        gw.cleanup()


def test_amqp_http_to_amqp_and_amqp_to_http():
    b = broker()
    ex = unique("x")
    q_out, q_in = unique("q-out"), unique("q-in")
    b.declare_exchange(ex)
    b.declare_queue(q_out, ex, "orders.new")
    sink = Sink(lambda req: (200, "ok"))
    admin, port = free_port(), free_port()
    gw = Gateway(base_config(admin_port=admin) + f"""
connectors:
  in:     {{ type: http_server, listen: "127.0.0.1:{port}" }}
  rabbit: {{ type: amqp, url: "{b.url}" }}
  sink:   {{ type: http_client, base_url: "{sink.url}", timeout: 5s }}
routes:
  h2a:
    from: {{ connector: in, path: /orders, methods: [POST], content_type: json }}
    to:
      - {{ connector: rabbit, exchange: {ex}, routing_key: "orders.$${{$.type}}" }}
  a2h:
    from: {{ connector: rabbit, queue: {q_in}, declare: {{ durable: true }} }}
    to:
      - {{ connector: sink, path: /in }}
""")
    try:
        gw.start(admin)
        # HTTP -> AMQP
        sent = {}
        for i in range(20):
            body = {"type": "new", "n": i}
            st, out, _ = post_json(f"127.0.0.1:{port}", "/orders", body, {"x-trace": f"t{i}"})
            assert st == 202, (st, out)
            sent[json.loads(out)["id"]] = (body, f"t{i}")
        wait_queue(b, q_out, 20)
        got = b.consume(q_out, count=20)
        for m in got:
            body, trace = sent[m["message_id"]]
            assert json.loads(m["body"]) == body, m
            assert m["content_type"].startswith("application/json"), m
            assert m["headers"].get("x-trace") == trace, m
            assert m["delivery_mode"] == 2 and m["routing_key"] == "orders.new", m
        assert len({m["message_id"] for m in got}) == 20
        # AMQP -> HTTP
        wait_until(lambda: queue_state(b, q_in) is not None, 60, f"{q_in} declared")
        ids = [str(uuid.uuid4()) for _ in range(20)]
        bodies = [json.dumps({"n": i}) for i in range(20)]
        b.publish("", q_in, bodies, ids=ids, options=["-t", "application/json"])
        wait_until(lambda: sink.count() >= 20, 120, "20 requests at the sink")
        with sink.lock:
            reqs = list(sink.requests)
        # (the HTTP output sends a batch concurrently: compare without order)
        by_id = {r["headers"].get("x-message-id"): r["body"].decode() for r in reqs}
        assert by_id == dict(zip(ids, bodies)), by_id
        assert all(r["headers"]["content-type"] == "application/json" for r in reqs)
        wait_queue(b, q_in, 0, 0)
    finally:
        if gw.proc is not None:
            gw.stop()
        sink.close()
        gw.cleanup()


def test_amqp_credentials_from_env_and_tls_verified_by_default():
    b = broker()
    assert b.tls_port, "the test broker has no TLS listener (openssl missing?)"
    q_env, q_bad, q_tls, q_out = (unique(p) for p in ("q-env", "q-bad", "q-tls", "q-out"))
    b.declare_queue(q_out)
    admin = free_port()
    tls_conn = f"""
  goodtls: {{ type: amqp, url: "amqps://guest:guest@localhost:{b.tls_port}/",
             tls: {{ ca_file: "{b.ca_file}" }} }}"""
    tls_route = f"""
  good:
    from: {{ connector: goodtls, queue: {q_tls}, declare: {{ durable: true }} }}
    to: [ {{ connector: goodtls, exchange: "", routing_key: {q_out} }} ]"""

    def config(with_tls):
        return base_config(admin_port=admin) + f"""
connectors:
  envc:   {{ type: amqp, url: "amqp://127.0.0.1:{b.port}/" }}
  badtls: {{ type: amqp, url: "amqps://localhost:{b.tls_port}/", timeout: 2s }}{tls_conn if with_tls else ""}
routes:
  env:
    from: {{ connector: envc, queue: {q_env}, declare: {{ durable: true }} }}
    to: [ {{ connector: envc, exchange: "", routing_key: {q_out} }} ]
  bad:
    from: {{ connector: badtls, queue: {q_bad}, declare: {{ durable: true }} }}
    to: [ {{ connector: envc, exchange: "", routing_key: {q_out} }} ]{tls_route if with_tls else ""}
"""

    env = {"AMQP_USER": "guest", "AMQP_PASSWORD": "guest"}
    gw = Gateway(config(True), env=env)
    check = gw.run_cli("check", "-c", gw.config)
    assert check.returncode == 0, check.stdout + check.stderr
    with_tls = True
    try:
        # one input can never connect (an untrusted certificate): the gateway
        # runs, and /ready says it is not ready
        gw.start(admin, wait=False)

        def health():
            try:
                return request("GET", gw.admin, "/health", timeout=2)[0] == 200
            except OSError:
                return False

        wait_until(health, 60, "the gateway's /health")
        wait_until(lambda: queue_state(b, q_env) is not None, 60, f"{q_env} declared")
        ids = [str(uuid.uuid4()) for _ in range(5)]
        b.publish("", q_env, [json.dumps({"n": i}) for i in range(5)], ids=ids)
        expect = 5
        if with_tls:
            wait_until(lambda: queue_state(b, q_tls) is not None, 60, f"{q_tls} declared")
            tls_ids = [str(uuid.uuid4()) for _ in range(5)]
            b.publish("", q_tls, [json.dumps({"t": i}) for i in range(5)], ids=tls_ids)
            ids += tls_ids
            expect += 5
        wait_queue(b, q_out, expect)
        got = b.consume(q_out, count=expect)
        assert sorted(m["message_id"] for m in got) == sorted(ids)
        # amqps:// without a CA file verifies against the system bundle: the
        # test broker's self-signed certificate is refused, nothing consumed.
        assert q_bad not in b.queues()
        m = gw.metrics()
        assert metric(m, "sluice_amqp_consumed_total", connector="badtls") == 0
        log = open(gw.stderr_path).read()
        assert f"input bad: connect to amqps://localhost:{b.tls_port}/" in log, log[-2000:]
        assert request("GET", gw.admin, "/ready")[0] == 503
        gw.stop()
    finally:
        gw.cleanup()


def test_amqp_backpressure_keeps_deliveries_unacked_and_rejects_bad_keys():
    b = broker()
    q_in, q_out = unique("q-in"), unique("q-out")
    b.declare_queue(q_in)
    b.declare_queue(q_out)
    admin = free_port()
    # A tiny log without retention fills up: the input must stop taking
    # deliveries and leave them with the broker, unacked, never dropped.
    gw = Gateway(base_config(admin_port=admin, extra_sluice="    max_disk_bytes: 128KiB\n"
                             "    segment_bytes: 32KiB\n") + f"""
connectors:
  rabbit: {{ type: amqp, url: "{b.url}", prefetch: 50 }}
routes:
  r:
    from: {{ connector: rabbit, queue: {q_in} }}
    key: "$.key"
    to: [ {{ connector: rabbit, exchange: "", routing_key: {q_out} }} ]
""")
    try:
        # a body the route's key cannot be read from is rejected, not retried forever
        b.publish("", q_in, ["not json", '{"n":1}', '{"key":null}', '{"key":[1]}',
                             '{"key":{"a":1}}'])
        n = 2000
        b.publish("", q_in, [json.dumps({"key": "k", "n": i, "pad": "p" * 400}) for i in range(n)])
        gw.start(admin)

        def consumed():
            return metric(gw.metrics(), "sluice_amqp_consumed_total", connector="rabbit")

        wait_until(lambda: "back-pressure" in open(gw.stderr_path).read(), 120,
                   "the back-pressure warning")
        # deliveries already on their way (up to the prefetch window) may still
        # arrive after the warning: wait until the input has stopped taking any
        def settled():
            a = consumed()
            time.sleep(2)
            b = consumed()
            return (a, b) if a == b else None

        c1, c2 = wait_until(settled, 120, "the input to stop consuming under back-pressure",
                            interval=0)
        assert c1 == c2 and 0 < c2 < n, (c1, c2)
        ready, unacked = queue_state(b, q_in)
        assert ready + unacked == n - c2, (ready, unacked, c2)
        assert 0 < unacked <= 50, unacked
        log = open(gw.stderr_path).read()
        assert log.count("rejecting delivery") == 5, log[-3000:]
        assert log.count("the route key $.key is missing or null") == 2, log[-3000:]
        assert 'the key "$.key" is an array' in log and 'the key "$.key" is an object' in log
        gw.stop()
        wait_queue(b, q_in, n - int(c2), 0)
        print(f"  log full after {int(c2)} appends: {n - int(c2)} left with the broker")
    finally:
        gw.cleanup()
