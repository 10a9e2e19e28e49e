/* libFuzzer target: XML -> JSON (tree and streaming text), the tree parser
 * with an XPath over it, and JSON -> XML of what came back, on one input. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "json_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    return 0;
}
