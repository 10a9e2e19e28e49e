/* libFuzzer target: XML -> JSON (tree and streaming text), the tree parser
 * with an XPath over it, and JSON -> XML of what came back, on one input;
 * then both readers again with the options a route may set (coerce,
 * strip_namespaces, unwrap, force_array), chosen by the input's size so
 * that the committed corpus keeps its meaning. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "json_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Both readers with options picked by v. */
static void with_options(const char *xml, size_t size, unsigned v)
{
    static const char *const unwraps[] = {"/Envelope/Body", "/soap:Envelope/soap:Body", "/a/b",
                                          "/a"};
    static const char *const force[] = {"/a/b", "item"};
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.coerce = v & 1;
    o.strip_namespaces = v & 2;
    o.unwrap = v & 4 ? unwraps[(v >> 3) & 3] : NULL;
    o.force_array = force;
    o.n_force_array = v & 32 ? 2 : 0;
    sl_error err;
    size_t n = 0;
    json_t *tree = sl_xml_to_json(xml, size, &o, &err);
    free(sl_xml_to_json_text(xml, size, &o, &n, &err));
    if (tree) {
        sl_xml_opts w;
        sl_xml_opts_init(&w);
        static const char *const ns[] = {"soap", "http://schemas.xmlsoap.org/soap/envelope/"};
        w.wrap = "/soap:Envelope/soap:Body";
        w.wrap_ns = ns;
        w.n_wrap_ns = 1;
        free(sl_json_to_xml(tree, &w, &n, &err));
        json_decref(tree);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *xml = (const char *)data;
    sl_error err;
    json_t *tree = sl_xml_to_json(xml, size, NULL, &err);
    size_t n = 0;
    free(sl_xml_to_json_text(xml, size, NULL, &n, &err));
    if (tree) {
        free(sl_json_to_xml(tree, NULL, &n, &err));
        json_decref(tree);
    }
    char *out = NULL;
    if (sl_xml_eval_xpath(xml, size, "/*[1]/@id", &out, &n, &err) == 0)
        free(out);
    with_options(xml, size, (unsigned)(size * 2654435761u >> 7));
    return 0;
}
