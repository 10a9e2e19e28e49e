"""The admin listener through the real binary: with a token, /health and
/ready answer probes without it, everything else needs it (401 without,
403 wrong, 200 right); /metrics carries build info and process metrics."""

import time

from harness import Gateway, base_config, free_port, metric, parse_metrics, request


def admin_config(admin_port, token):
    return base_config(admin_port=admin_port).replace(
        f'listen: "127.0.0.1:{admin_port}"', f'listen: "127.0.0.1:{admin_port}", token: "{token}"'
    ) + f"""
connectors:
  in:  {{ type: http_server, listen: "127.0.0.1:{free_port()}" }}
  out: {{ type: stdout }}
routes:
  r:
    from: {{ connector: in, path: /x }}
    to: [ {{ connector: out }} ]
"""


def test_probes_open_everything_else_needs_the_token():
    admin_port = free_port()
    gw = Gateway(admin_config(admin_port, "s3cret"))
    try:
        assert 'token: "s3cret"' in open(gw.config).read()
        t0 = time.time()
        gw.start(admin_port)  # waits on /ready without a token
        assert request("GET", gw.admin, "/health")[0] == 200
        assert request("GET", gw.admin, "/ready")[0] == 200
        for path in ("/metrics", "/v1/routes", "/v1/routes/r", "/v1/breakers"):
            st, body, hdrs = request("GET", gw.admin, path)
            assert st == 401, (path, st, body)
            st, _, _ = request("GET", gw.admin, path, headers={"authorization": "Bearer wrong"})
            assert st == 403, (path, st)
            st, _, _ = request("GET", gw.admin, path, headers={"authorization": "Bearer s3cret"})
            assert st == 200, (path, st)
        st, body, _ = request("GET", gw.admin, "/metrics", headers={"authorization": "Bearer s3cret"})
        m = parse_metrics(body.decode())
        assert metric(m, "sluice_build_info") == 1, [k for k in m if "build" in k]
        assert metric(m, "sluice_process_resident_memory_bytes") > 1 << 20
        assert metric(m, "sluice_process_open_fds") >= 3
        assert metric(m, "sluice_process_cpu_seconds") >= 0
        start = metric(m, "sluice_process_start_time_seconds")
        assert t0 - 5 <= start <= time.time() + 5, (t0, start)
        gw.stop()
    finally:
        gw.cleanup()
