"""The shipped example routes/erp_soap_sync.yaml run as `sluice run` runs
it, against a fake ERP: the client's JSON order reaches the ERP as the SOAP
request its route test expects, and the client is answered with the ERP's
SOAP response (reply_from): status, body and Content-Type as the ERP sent
them; an ERP that keeps failing gives the client 502 with the message id."""

import json
import os

from harness import ROOT, Gateway, base_config, free_port, post_json, request
from test_reply_from import Partner

ERP_RESPONSE = """<?xml version="1.0" encoding="UTF-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>\
<CreateOrderResponse xmlns="urn:example:erp:orders:1"><OrderId>900017</OrderId>\
<Status>booked</Status></CreateOrderResponse></soap:Body></soap:Envelope>"""


def test_erp_soap_example_answers_the_client_with_the_erps_soap_response():
    def erp(req):
        if b"<erp:OrderNo>SO-FAIL</erp:OrderNo>" in req["body"]:
            return 500, "ERP internal error", {"Content-Type": "text/plain"}
        return 200, ERP_RESPONSE, {"Content-Type": "text/xml; charset=utf-8"}

    partner = Partner(erp)
    in_port, admin_port = free_port(), free_port()
    example = os.path.join(ROOT, "routes", "erp_soap_sync.yaml")
    gw = Gateway(base_config(admin_port=admin_port) + f"  include: {example}\n",
                 env={"ERP_URL": partner.url, "ERP_IN_LISTEN": f"127.0.0.1:{in_port}"})
    try:
        gw.start(admin_port)
        ingest = f"127.0.0.1:{in_port}"
        order = {"order": "SO-1001", "customer": "C-42",
                 "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B&7 <x>", "qty": 1}]}
        st, body, hdrs = post_json(ingest, "/erp/orders", order)
        assert st == 200, (st, body)
        assert body.decode() == ERP_RESPONSE, body
        assert hdrs["content-type"] == "text/xml; charset=utf-8", hdrs
        sent = partner.requests[0]
        assert sent["path"] == "/soap/orders", sent
        assert b'<erp:Line no="2"><erp:Sku>B&amp;7 &lt;x&gt;</erp:Sku>' in sent["body"], sent["body"]
        st, body, hdrs = post_json(ingest, "/erp/orders", dict(order, order="SO-FAIL"))
        assert st == 502, (st, body)
        ans = json.loads(body)
        assert ans["error"] == "dead_lettered" and ans["id"] == hdrs["x-message-id"], ans
        assert "ERP internal error" not in body.decode() and partner.url not in body.decode()
        assert len(partner.requests) == 1 + 3, "max_attempts: 3 calls for the failing order"
        gw.stop()
    finally:
        partner.close()
        gw.cleanup()
