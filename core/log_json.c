/* One log record as a JSON object (see log_json.h): used by `sluice log
 * dump|tail` offline and by the admin API's records endpoint, so both print
 * the same shape. */
#include <inttypes.h>
#include <stdio.h>

#include "json_escape.h"
#include "log_json.h"

/* Appends s[0..len) as a quoted JSON string. */
static void put_string(sl_buf *b, const char *s, size_t len)
{
    char chunk[512];
    size_t i = 0;
    sl_buf_putc(b, '"');
    while (i < len) {
        size_t w;
        i += sl_json_escape(s + i, len - i, SL_JSON_ESC_LATIN1, chunk, sizeof chunk, &w);
        sl_buf_put(b, chunk, w);
    }
    sl_buf_putc(b, '"');
}

void sl_log_record_json(sl_buf *b, const char *topic, int part, const sl_record *r)
{
    char num[96];
    sl_buf_puts(b, "{\"topic\":");
    put_string(b, topic, strlen(topic));
    int n =
        snprintf(num, sizeof num, ",\"partition\":%d,\"offset\":%" PRId64 ",\"timestamp\":%" PRId64,
                 part, r->offset, r->timestamp_ms);
    sl_buf_put(b, num, (size_t)n);
    sl_buf_puts(b, ",\"key\":");
    if (r->key)
        put_string(b, r->key, r->key_len);
    else
        sl_buf_puts(b, "null");
    sl_buf_puts(b, ",\"headers\":{");
    for (size_t i = 0; i < r->n_headers; i++) {
        if (i)
            sl_buf_putc(b, ',');
        put_string(b, r->headers[i].name, r->headers[i].name_len);
        sl_buf_putc(b, ':');
        put_string(b, r->headers[i].value, r->headers[i].value_len);
    }
    sl_buf_puts(b, "},\"value\":");
    put_string(b, r->value, r->value_len);
    sl_buf_putc(b, '}');
}
