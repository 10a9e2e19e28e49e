/* libFuzzer target: the http_server's JSON validator (the bodies of JSON
 * routes whose key needs no tree) against jansson's verdict: what the
 * validator accepts, jansson (which later parses the body for steps) must
 * accept too. The converse does not hold: jansson takes a NUL byte after
 * the top value ("null\0") as the end of input, the validator refuses it
 * (corpus/fuzz_http/regress-trailing-nul). */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "http_server_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[300];
    bool ok = sl_httpd_json_valid((const char *)data, size, msg, sizeof msg);
    json_error_t jerr;
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (ok && !j)
        abort(); /* the validator let through what the parser refuses */
    json_decref(j);
    return 0;
}
