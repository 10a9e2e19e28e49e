"""The documentation cannot drift from the code: docs/config-reference.md is
what `sluice config reference` prints today, the JSON Schema of `sluice
config schema` accepts the configs the repository ships and rejects a
misspelt key, the README's config example passes `sluice check` when saved
at the repository root, and nothing links to files outside the repository."""

import json
import os
import re
import subprocess
import tempfile

from harness import ROOT, SLUICE


def run_sluice(*args, cwd=ROOT):
    return subprocess.run([SLUICE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_config_reference_is_current():
    r = run_sluice("config", "reference")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(ROOT, "docs", "config-reference.md"), encoding="utf-8") as f:
        committed = f.read()
    assert r.stdout == committed, (
        "docs/config-reference.md is not current: run `make reference` and commit it")


def schema():
    r = run_sluice("config", "schema")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def resolve(root, node):
    while "$ref" in node and len(node) <= 2:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def errors(root, node, value, path="$"):
    """A validator for the part of JSON Schema 2020-12 the generator emits
    (type, enum, const, pattern, properties, required, additionalProperties,
    items, anyOf, oneOf, allOf, if/then, $ref). Returns a list of errors."""
    if "$ref" in node:
        errs = errors(root, root["$defs"][node["$ref"].rsplit("/", 1)[1]], value, path)
        if errs:
            return errs
    kinds = {"string": str, "integer": int, "number": (int, float), "boolean": bool,
             "object": dict, "array": list, "null": type(None)}
    if "type" in node:
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        ok = any(isinstance(value, kinds[t]) and not (t in ("integer", "number") and
                                                      isinstance(value, bool)) for t in types)
        if not ok:
            return [f"{path}: expected {types}, got {value!r}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{path}: {value!r} not in {node['enum']}"]
    if "const" in node and value != node["const"]:
        return [f"{path}: {value!r} is not {node['const']!r}"]
    if "pattern" in node and isinstance(value, str) and not re.search(node["pattern"], value):
        return [f"{path}: {value!r} does not match {node['pattern']}"]
    errs = []
    if isinstance(value, dict):
        props = node.get("properties", {})
        for k in node.get("required", []):
            if k not in value:
                errs.append(f"{path}: missing {k}")
        for k, v in value.items():
            if k in props:
                errs += errors(root, props[k], v, f"{path}.{k}")
            elif node.get("additionalProperties") is False:
                errs.append(f"{path}: unknown key {k}")
            elif isinstance(node.get("additionalProperties"), dict):
                errs += errors(root, node["additionalProperties"], v, f"{path}.{k}")
    if isinstance(value, list) and "items" in node:
        for i, v in enumerate(value):
            errs += errors(root, node["items"], v, f"{path}[{i}]")
    if "anyOf" in node and all(errors(root, n, value, path) for n in node["anyOf"]):
        errs.append(f"{path}: matches none of anyOf")
    if "oneOf" in node and sum(not errors(root, n, value, path) for n in node["oneOf"]) != 1:
        errs.append(f"{path}: does not match exactly one of oneOf")
    for n in node.get("allOf", []):
        if "if" in n and not errors(root, n["if"], value, path):
            errs += errors(root, n["then"], value, path)
    return errs


# conf/sluice.yaml as data (the schema is for editors; checked here without a
# YAML library: the shipped example, written out as JSON)
SHIPPED = {
    "sluice": {"data_dir": "./data", "admin": {"listen": "127.0.0.1:9400", "token": ""},
               "log": {"fsync": "always", "segment_bytes": "64MiB", "retention": "7d",
                       "retention_bytes": "10GiB"},
               "log_level": "info", "dedupe_window": "24h", "include": ["../routes/*.yaml"]},
    "connectors": {
        "public": {"type": "http_server", "listen": "127.0.0.1:8080", "max_body": "1MiB"},
        "crm": {"type": "http_client", "base_url": "https://crm.example", "timeout": "2s",
                "breaker": {"failure_rate": "50%", "min_calls": 10, "open_for": "10s",
                            "max_open_for": "5m"}},
        "rabbit": {"type": "amqp", "url": "amqp://localhost/", "tls": {"verify": True}},
        "kafka": {"type": "kafka", "brokers": "localhost:9092",
                  "options": {"compression.type": "lz4"}},
    },
    "routes": {"orders": {
        "from": {"connector": "public", "path": "/orders", "methods": ["POST"], "reply": "async"},
        "partitions": 4, "key": "$.customer.id",
        "steps": [{"filter": "msg:json().total > 0"},
                  {"lua": {"file": "x.lua", "function": "f", "timeout": "50ms"}},
                  {"json_to_xml": None}, {"set": {"headers": {"x": "y"}}}],
        "to": [{"connector": "rabbit", "exchange": "erp", "routing_key": "o"},
               {"connector": "kafka", "topic": "t", "when": "true"}, {"topic": "accepted"}],
        "on_error": {"retry": {"max_attempts": 5, "multiplier": 1.5},
                     "dead_letter": {"topic": "orders.dlq"}}}},
}


def test_config_schema_accepts_a_full_config_and_rejects_misspelt_keys():
    s = schema()
    assert s["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert errors(s, s, SHIPPED) == []
    bad = json.loads(json.dumps(SHIPPED))
    bad["sluice"]["log"]["retension"] = "7d"
    bad["connectors"]["crm"]["breaker"]["open"] = "1s"
    bad["connectors"]["kafka"]["type"] = "kafak"
    bad["routes"]["orders"]["on_error"]["retry"]["multiplier"] = "x"
    errs = errors(s, s, bad)
    assert any("retension" in e for e in errs), errs
    assert any("open" in e and "breaker" in e for e in errs), errs
    assert any("kafak" in e for e in errs), errs
    assert any("multiplier" in e for e in errs), errs


def readme_example():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"## Config\n.*?```yaml\n(.*?)```", text, re.S)
    assert m, "README.md has no ```yaml block under ## Config"
    return m.group(1)


def test_readme_config_example_passes_check_at_the_repository_root():
    path = os.path.join(ROOT, "readme-example.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(readme_example())
    try:
        env = dict(os.environ)
        env.pop("SLUICE_ADMIN_TOKEN", None)
        r = subprocess.run([SLUICE, "check", "-c", "readme-example.yaml"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120, env=env)
    finally:
        os.unlink(path)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stdout + r.stderr


def test_no_link_leaves_the_repository():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout
    hits = []
    for name in out.split():
        if not name.endswith((".md", ".c", ".h", ".yaml", ".py", ".sh", ".lua")):
            continue
        with open(os.path.join(ROOT, name), encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f, 1):
                if "../shared" in line and name != "tests/integration/test_docs.py":
                    hits.append(f"{name}:{i}: {line.strip()}")
    assert hits == [], "\n".join(hits)


def test_conf_include_hint_works_when_uncommented():
    with open(os.path.join(ROOT, "conf", "sluice.yaml"), encoding="utf-8") as f:
        text = f.read()
    hint = '  # include: ["../routes/*.yaml"]\n'
    assert hint in text
    path = os.path.join(ROOT, "conf", "include-hint.yaml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(hint, hint.replace("# ", "", 1)))
    try:
        r = run_sluice("check", "-c", "conf/include-hint.yaml")
    finally:
        os.unlink(path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "warning" not in r.stderr, r.stderr


def test_license_changelog_and_make_run_config_are_documented():
    def read(name):
        with open(os.path.join(ROOT, name), encoding="utf-8") as f:
            return f.read()
    readme = read("README.md")
    assert "make run CONFIG=" in readme
    assert read("LICENSE").lstrip().startswith("Apache License")
    assert "## License" in readme and "Apache" in readme
    version = re.search(r'SLUICE_VERSION "([0-9.]+)"', read("CMakeLists.txt")).group(1)
    assert f"## [{version}]" in read("CHANGELOG.md"), version
