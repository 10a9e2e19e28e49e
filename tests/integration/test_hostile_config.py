"""Hostile configs through `sluice check`: 100,000 keys or anchors in one
map (the duplicate check was quadratic), an include glob over the whole
filesystem (bounded to 256 files per pattern), and includes of files that
are not Sluice configs (a password file: its content is never quoted).

Linear time is checked by growth, not by a time limit: the same config at
a quarter of the size and at full size, and the larger must take less than
8 times the CPU time (linear work takes about 4 times, quadratic 16), so a
slow or busy machine does not decide the result."""

import os
import shutil
import subprocess
import tempfile
import time

from harness import SLUICE

MAIN = "sluice:\n  data_dir: ./data\n"


def check(workdir, text, timeout=120):
    """Runs `sluice check` on text; returns (exit code, output, CPU seconds
    of the check: user + system, which a busy machine disturbs far less than
    wall time)."""
    path = os.path.join(workdir, "sluice.yaml")
    with open(path, "w") as f:
        f.write(text)
    with tempfile.TemporaryFile() as out:
        p = subprocess.Popen([os.path.abspath(SLUICE), "check", "-c", path], cwd=workdir,
                             stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid == p.pid:
                break
            assert time.monotonic() < deadline, f"sluice check still running after {timeout}s"
            time.sleep(0.01)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text_out = out.read().decode(errors="replace")
    return p.returncode, text_out, usage.ru_utime + usage.ru_stime


def check_growth(workdir, make, n, expect):
    """Checks make(n // 4) and make(n): both exit 2 with expect (a function
    of the size) in the output, and the larger takes under 8 times the CPU."""
    secs = []
    for size in (n // 4, n):
        code, out, t = check(workdir, make(size), timeout=600)
        assert code == 2 and expect(size) in out, out[:2000]
        secs.append(t)
    assert secs[1] < 8 * secs[0], f"{n // 4}: {secs[0]:.2f}s, {n}: {secs[1]:.2f}s (not linear)"


def test_100000_keys_or_anchors_in_one_map_check_in_linear_time():
    d = tempfile.mkdtemp(prefix="sluice-cfg-")
    try:
        check_growth(d, lambda n: MAIN + "  log:\n    extra:\n" +
                     "".join(f"      k{i}: 1\n" for i in range(n)),
                     100000, lambda n: "unknown key 'extra'")
        check_growth(d, lambda n: MAIN + "  log:\n    extra:\n" +
                     "".join(f"      k{i}: &a{i} 1\n" for i in range(n)),
                     100000, lambda n: f"anchors and aliases are not supported (anchor '&a{n - 1}')")
        dup = "".join(f"      k{i}: 1\n" for i in range(50000)) + "      k7: 2\n"
        code, out, _ = check(d, MAIN + "  log:\n    extra:\n" + dup)
        assert "duplicate key 'k7' (first at line 12, column 7)" in out, out[:2000]
    finally:
        shutil.rmtree(d)


def test_include_globs_are_bounded():
    d = tempfile.mkdtemp(prefix="sluice-cfg-")
    try:
        code, out, _ = check(d, MAIN + '  include: ["/*/*/*/*"]\n', timeout=300)
        assert code == 2, out[:2000]
        assert "sluice.include[0]: '/*/*/*/*' matches" in out and "more than 256" in out, out[:2000]
        assert len(out.splitlines()) == 1, out[:2000]
        os.mkdir(os.path.join(d, "many"))
        for i in range(257):
            with open(os.path.join(d, "many", f"r{i:03}.yaml"), "w") as f:
                f.write("routes: {}\n")
        code, out, _ = check(d, MAIN + '  include: ["many/*.yaml"]\n')
        assert code == 2 and "matches 257 files, more than 256" in out, out
        os.remove(os.path.join(d, "many", "r256.yaml"))
        os.remove(os.path.join(d, "many", "r255.yaml"))
        os.mkfifo(os.path.join(d, "many", "r300.yaml"))
        code, out, _ = check(d, MAIN + '  include: ["many/*.yaml"]\n')
        assert code == 2 and "r300.yaml: cannot read: not a regular file" in out, out
        os.remove(os.path.join(d, "many", "r300.yaml"))
        code, out, _ = check(d, MAIN + '  include: ["many/*.yaml"]\n')
        assert code == 0, out
    finally:
        shutil.rmtree(d)


def test_an_included_file_that_is_not_a_config_is_not_quoted():
    d = tempfile.mkdtemp(prefix="sluice-cfg-")
    try:
        secrets = {
            # /etc/shadow's lines end in ':' and read as YAML map keys
            "shadow": "root:$y$j9T$SECRETHASH1:19000:0:99999:7:::\n"
                      "daemon:*:19000:0:99999:7:::\n",
            # a one-line file reads as a YAML scalar
            "token": "SECRETHASH2\n",
            "list": "- SECRETHASH3\n",
        }
        for name, text in secrets.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        code, out, _ = check(d, MAIN + '  include: ["shadow", "token", "list"]\n')
        assert code == 2, out
        assert "SECRETHASH" not in out and "root" not in out, out
        lines = sorted(out.replace(d + "/", "").splitlines())
        assert lines == [
            "list:1:1: expected a map at the top level, got a list",
            "shadow:1:1: not a Sluice config: none of its 2 top-level keys (not shown) is one "
            "of: connectors, routes",
            "token:1:1: expected a map at the top level, got a scalar (not shown)",
        ], out
        # a config with a typo still gets its unknown key named
        with open(os.path.join(d, "typo.yaml"), "w") as f:
            f.write("routes: {}\nroutse: {}\n")
        code, out, _ = check(d, MAIN + '  include: ["typo.yaml"]\n')
        assert "typo.yaml:2:1: unknown key 'routse' in an included file" in out, out
    finally:
        shutil.rmtree(d)


def test_20000_connectors_and_routes_check_in_linear_time():
    d = tempfile.mkdtemp(prefix="sluice-cfg-")
    try:
        def config(n):
            text = [MAIN, "connectors:\n"]
            text += [f'  c{i}: {{ type: http_server, listen: "127.0.0.1:{10000 + i}" }}\n'
                     for i in range(n)]
            text.append("  out: { type: stdout }\nroutes:\n")
            text += [f"  r{i}:\n    from: {{ connector: c{i}, path: /p }}\n"
                     f"    to: [ {{ connector: out }} ]\n" for i in range(n)]
            text.append("  bad:\n    from: { connector: nope, path: /p }\n"
                        "    to: [ { connector: out } ]\n")
            return "".join(text)

        check_growth(d, config, 20000, lambda n: "routes.bad.from.connector: no connector named 'nope'")
        code, out, _ = check(d, config(100))
        assert len(out.splitlines()) == 1, out[:2000]
    finally:
        shutil.rmtree(d)
