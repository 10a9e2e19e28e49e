"""XML in the partner's element order (issue 17): Lua mappings built with
json.object() keep their key order through msg:set_json and json_to_xml, so
a SOAP 1.1 envelope validates against the SOAP 1.1 envelope schema and an
order line against an xs:sequence schema (the validate step, in the real
route engine via `sluice test`); and the xml_to_json / json_to_xml envelope
options (strip_namespaces, unwrap, exact numbers, envelope: soap11) with
exact output. The fixtures are in fixtures/ordered_xml/."""

import glob
import os
import shutil
import subprocess
import tempfile

from harness import ROOT, SLUICE

FIX = os.path.join(ROOT, "tests", "integration", "fixtures", "ordered_xml")


def run_sluice(*args):
    return subprocess.run([os.path.abspath(os.environ.get("SLUICE_BIN", SLUICE)), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_route_tests_of_ordered_xml_pass():
    tests = sorted(glob.glob(os.path.join(FIX, "*.test.yaml")))
    assert len(tests) == 5, tests
    r = run_sluice("test", *tests)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "5 passed, 0 failed", r.stdout
    for name in ("soap:Header comes before soap:Body", "Sku, Qty, Price as the schema wants",
                 "Qty before Sku is not the schema's sequence", "unwrap, edit in order, wrap",
                 "123.40 stays 123.40"):
        assert any(line.startswith("PASS ") and name in line for line in r.stdout.splitlines()), (name, r.stdout)


def xmllint_ok(xsd, xml):
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        f.write(xml)
    try:
        r = subprocess.run(["xmllint", "--noout", "--nonet", "--schema", xsd, f.name],
                           capture_output=True, text=True, timeout=30)
        return r.returncode == 0
    finally:
        os.unlink(f.name)


def test_the_schemas_refuse_the_sorted_order():
    """The fixture schemas, checked with libxml2's own xmllint: the bodies the
    route tests expect are valid, and the sorted-key order (what the Lua host
    wrote before) is not, so the route tests above can tell them apart."""
    assert shutil.which("xmllint"), "xmllint (libxml2-utils) is needed"
    soap = os.path.join(FIX, "soap11-envelope.xsd")
    env = ('<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="urn:example:orders">'
           '{}</soap:Envelope>')
    header = "<soap:Header><m:Trace>t-1</m:Trace></soap:Header>"
    body = "<soap:Body><m:PlaceOrder><m:Sku>A-1</m:Sku><m:Qty>2</m:Qty></m:PlaceOrder></soap:Body>"
    assert xmllint_ok(soap, env.format(header + body))
    assert not xmllint_ok(soap, env.format(body + header))
    line = os.path.join(FIX, "order-line.xsd")
    assert xmllint_ok(line, "<Line><Sku>A-1</Sku><Qty>2</Qty><Price>19.99</Price></Line>")
    assert not xmllint_ok(line, "<Line><Price>19.99</Price><Qty>2</Qty><Sku>A-1</Sku></Line>")
