/* libFuzzer target: JSON -> XML (and the XML it writes read back) on a
 * JSON document, with the element name options a route may set, and
 * wrapped in a SOAP envelope (wrap + namespaces, with and without root)
 * read back with strip_namespaces, unwrap and coerce. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "json_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Wraps doc in an envelope and reads it back unwrapped. */
static void envelope_round_trip(const json_t *doc, size_t size)
{
    static const char *const ns[] = {"soap", "http://schemas.xmlsoap.org/soap/envelope/", "",
                                     "urn:example"};
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.wrap = "/soap:Envelope/soap:Body";
    o.wrap_ns = ns;
    o.n_wrap_ns = 1 + (size & 1);
    o.root = size & 2 ? "Order" : NULL;
    sl_error err;
    size_t n = 0;
    char *xml = sl_json_to_xml(doc, &o, &n, &err);
    if (!xml)
        return;
    sl_xml_opts r;
    sl_xml_opts_init(&r);
    r.strip_namespaces = true;
    r.coerce = size & 4;
    r.unwrap = "/Envelope/Body";
    json_decref(sl_xml_to_json(xml, n, &r, &err));
    free(sl_xml_to_json_text(xml, n, &r, &n, &err));
    free(xml);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_error_t jerr;
    json_t *doc = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!doc)
        return 0;
    sl_error err;
    size_t n = 0;
    char *xml = sl_json_to_xml(doc, NULL, &n, &err);
    if (xml) {
        json_t *back = sl_xml_to_json(xml, n, NULL, &err);
        json_decref(back);
        free(xml);
    }
    envelope_round_trip(doc, size);
    json_decref(doc);
    return 0;
}
