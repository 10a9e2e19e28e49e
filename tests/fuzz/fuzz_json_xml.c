/* libFuzzer target: JSON -> XML (and the XML it writes read back) on a
 * JSON document, with the element name options a route may set. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "json_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    json_decref(doc);
    return 0;
}
