/* Helpers for logs held outside the gateway (core/log_backend.h): a backend
 * hands its records to the route's workers in an sl_batch, laid out as
 * sl_partition_read leaves records (each string followed by a NUL). */
#include "log_backend.h"

#include <stdlib.h>
#include <string.h>

/* Bytes one record takes in a batch's buffer, its NULs included. */
static size_t record_bytes(const sl_record *r)
{
    size_t n = r->key_len + 1 + r->value_len + 1;
    for (size_t h = 0; h < r->n_headers; h++)
        n += r->headers[h].name_len + 1 + r->headers[h].value_len + 1;
    return n;
}

/* Grows *p to hold need elements of elem bytes (capacity in *cap). */
static int reserve(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    void *n = realloc(*p, need * elem);
    if (!n)
        return -1;
    *p = n;
    *cap = need;
    return 0;
}

static const char *copy_nul(char **at, const char *src, size_t len)
{
    char *dst = *at;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
    *at += len + 1;
    return dst;
}

/* Copies r into slot out, its bytes at *at and its headers at *h. */
static void copy_record(sl_record *out, const sl_record *r, char **at, sl_header **h)
{
    *out = *r;
    out->key = copy_nul(at, r->key ? r->key : "", r->key_len);
    out->headers = r->n_headers ? *h : NULL;
    for (size_t k = 0; k < r->n_headers; k++) {
        sl_header *dst = (*h)++;
        dst->name_len = r->headers[k].name_len;
        dst->value_len = r->headers[k].value_len;
        dst->name = copy_nul(at, r->headers[k].name, dst->name_len);
        dst->value = copy_nul(at, r->headers[k].value ? r->headers[k].value : "", dst->value_len);
    }
    out->value = copy_nul(at, r->value ? r->value : "", r->value_len);
}

int sl_batch_fill(sl_batch *out, const sl_record *recs, size_t n, sl_error *err)
{
    size_t bytes = 0, hdrs = 0;
    out->count = 0;
    for (size_t i = 0; i < n; i++) {
        bytes += record_bytes(&recs[i]);
        hdrs += recs[i].n_headers;
    }
    if (reserve((void **)&out->records, &out->rec_cap, n ? n : 1, sizeof *out->records) != 0 ||
        reserve((void **)&out->buf, &out->buf_cap, bytes ? bytes : 1, 1) != 0 ||
        reserve((void **)&out->hdrs, &out->hdrs_cap, hdrs ? hdrs : 1, sizeof *out->hdrs) != 0)
        return sl_error_set(err, SL_ENOMEM, "out of memory filling a read batch");
    char *at = out->buf;
    sl_header *h = out->hdrs;
    for (size_t i = 0; i < n; i++)
        copy_record(&out->records[i], &recs[i], &at, &h);
    out->count = n;
    out->next_offset = n ? recs[n - 1].offset + 1 : out->next_offset;
    return 0;
}
