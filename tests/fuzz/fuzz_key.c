/* libFuzzer target: key extraction. The input is "EXPR\nBODY": EXPR is
 * compiled as a route key (JSON path, header:NAME, XPath: streamed or on a
 * tree) and evaluated on BODY, as the ingest path does. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *nl = memchr(data, '\n', size);
    if (!nl)
        return 0;
    size_t elen = (size_t)(nl - (const char *)data);
    char *expr = strndup((const char *)data, elen);
    if (!expr || strlen(expr) != elen) {
        free(expr);
        return 0;
    }
    sl_error err;
    sl_expr *e = sl_expr_compile_key(expr, NULL, &err);
    free(expr);
    if (!e)
        return 0;
    sl_msg *m = sl_msg_new();
    if (m && sl_msg_set_body(m, nl + 1, size - elen - 1) == 0 &&
        sl_msg_set_header(m, "x-k", "v", 1) == 0) {
        char *out = NULL;
        size_t n = 0;
        if (sl_expr_eval_key(e, m, &out, &n, &err) == 0)
            free(out);
    }
    sl_msg_free(m);
    sl_expr_free(e);
    return 0;
}
