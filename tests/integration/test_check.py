"""`sluice check` as an operator meets it: refusals at the user's own line
and column (a malformed key, a `when:` that does not compile, two routes on
one method and path), and a warning, not a failure, for an include pattern
that matches nothing."""

import os
import subprocess
import tempfile

from harness import SLUICE


def check(text, name="sluice.yaml"):
    d = tempfile.mkdtemp(prefix="sluice-check-")
    path = os.path.join(d, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    r = subprocess.run([SLUICE, "check", "-c", path], capture_output=True, text=True, timeout=60)
    return r, path


BASE = """connectors:
  web: { type: http_server, listen: "127.0.0.1:1" }
  out: { type: stdout }
routes:
"""


def test_malformed_key_is_refused_at_the_key():
    r, path = check(BASE + """  a:
    from: { connector: web, path: /o }
    key: "$.order..id["
    to: [ { connector: out } ]
""")
    assert r.returncode == 2
    assert r.stdout.strip() == (f'{path}:7:10: routes.a.key: malformed key expression '
                                f'"$.order..id[": empty member name at column 8'), r.stdout


def test_when_error_is_at_the_users_line_and_column():
    r, path = check(BASE + """  a:
    from: { connector: web, path: /o }
    to:
      - connector: out
        when: "msg.headers['x'] =="
      - connector: out
        name: two
        when: "msg.headers['x'] == = 1"
""")
    assert r.returncode == 2
    lines = r.stdout.strip().split("\n")
    assert lines[0].startswith(f"{path}:9:15: lua expression: ends too early (Lua: unexpected symbol"), lines
    assert lines[1].startswith(f"{path}:12:15: lua expression: unexpected symbol near '='"), lines


def test_two_routes_on_one_method_and_path_are_refused():
    r, path = check(BASE + """  a: { from: { connector: web, path: /o }, to: [ { connector: out } ] }
  b: { from: { connector: web, path: /o, methods: [PUT, POST] }, to: [ { connector: out } ] }
  c: { from: { connector: web, path: /o, methods: [PUT] }, to: [ { connector: out } ] }
""")
    assert r.returncode == 2
    assert r.stdout.strip().split("\n") == [
        f"{path}:6:38: routes.b.from.path: POST /o on connector 'web' is already taken by "
        f"route 'a' ({path}:5:14)",
        f"{path}:7:38: routes.c.from.path: PUT /o on connector 'web' is already taken by "
        f"route 'b' ({path}:6:14)"], r.stdout


def test_include_matching_nothing_warns_and_passes():
    r, path = check('sluice:\n  include: ["routes/*.yaml"]\n' + BASE +
                    "  a: { from: { connector: web, path: /o }, to: [ { connector: out } ] }\n")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == "ok\n"
    d = os.path.dirname(path)
    assert r.stderr == (f"{path}:2:13: warning: sluice.include[0]: '{d}/routes/*.yaml' matches "
                        "no file (patterns are relative to the directory of the main config "
                        "file)\n"), r.stderr
