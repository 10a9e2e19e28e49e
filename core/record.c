/* The on-disk record encoding of the event log (layout in record.h):
 * size, encode into a caller's buffer (the log's mapped segment), and a
 * decoder that validates every length before trusting it. */
#include "record.h"

#include <string.h>

#include "crc32c.h"

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static void put_u64(unsigned char *p, uint64_t v)
{
    put_u32(p, (uint32_t)v);
    put_u32(p + 4, (uint32_t)(v >> 32));
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const unsigned char *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

/* Adds n to *total unless that passes the maximum; returns 0 when it does. */
static int add_len(size_t *total, size_t n)
{
    if (n > UINT32_MAX || n > SL_RECORD_MAX_BYTES - *total)
        return 0;
    *total += n;
    return 1;
}

size_t sl_record_size(const sl_record *rec)
{
    size_t total = SL_RECORD_MIN_BYTES;
    if (rec->n_headers > UINT32_MAX || (rec->n_headers && !rec->headers))
        return 0;
    if (!add_len(&total, rec->key_len) || !add_len(&total, rec->value_len))
        return 0;
    for (size_t i = 0; i < rec->n_headers; i++) {
        if (!add_len(&total, 8) || !add_len(&total, rec->headers[i].name_len) ||
            !add_len(&total, rec->headers[i].value_len))
            return 0;
    }
    return total;
}

static unsigned char *put_bytes(unsigned char *p, const void *data, size_t len)
{
    put_u32(p, (uint32_t)len);
    if (len)
        memcpy(p + 4, data, len);
    return p + 4 + len;
}

size_t sl_record_encode(void *buf, const sl_record *rec, int64_t offset, int64_t timestamp_ms)
{
    unsigned char *start = buf;
    unsigned char *p = start + 8;
    put_u64(p, (uint64_t)offset);
    put_u64(p + 8, (uint64_t)timestamp_ms);
    p = put_bytes(p + 16, rec->key, rec->key_len);
    put_u32(p, (uint32_t)rec->n_headers);
    p += 4;
    for (size_t i = 0; i < rec->n_headers; i++) {
        const sl_header *h = &rec->headers[i];
        p = put_bytes(p, h->name, h->name_len);
        p = put_bytes(p, h->value, h->value_len);
    }
    p = put_bytes(p, rec->value, rec->value_len);
    size_t size = (size_t)(p - start);
    put_u32(start, (uint32_t)(size - 4));
    put_u32(start + 4, sl_crc32c(0, start + 8, size - 8));
    return size;
}

/* Reads a u32 length at *p and skips it and its bytes, within end.
 * Returns 0 when the length runs past end. */
static int take_bytes(const unsigned char **p, const unsigned char *end, const char **data,
                      uint32_t *len)
{
    if (end - *p < 4)
        return 0;
    uint32_t n = get_u32(*p);
    if ((size_t)(end - *p - 4) < n)
        return 0;
    *data = (const char *)(*p + 4);
    *len = n;
    *p += 4 + (size_t)n;
    return 1;
}

sl_rec_status sl_record_decode(const void *buf, size_t avail, sl_record_view *out)
{
    const unsigned char *start = buf;
    if (avail < 4) {
        for (size_t i = 0; i < avail; i++)
            if (start[i])
                return SL_REC_TORN;
        return SL_REC_END;
    }
    uint32_t len = get_u32(start);
    if (len == 0)
        return SL_REC_END;
    if (len < SL_RECORD_MIN_BYTES - 4 || len > SL_RECORD_MAX_BYTES - 4)
        return SL_REC_BADLEN;
    if ((size_t)len > avail - 4)
        return SL_REC_TORN;
    const unsigned char *end = start + 4 + len;
    if (sl_crc32c(0, start + 8, len - 4) != get_u32(start + 4))
        return SL_REC_BADCRC;

    const unsigned char *p = start + 8;
    out->offset = (int64_t)get_u64(p);
    out->timestamp_ms = (int64_t)get_u64(p + 8);
    p += 16;
    if (!take_bytes(&p, end, &out->key, &out->key_len) || end - p < 4)
        return SL_REC_BADLEN;
    out->n_headers = get_u32(p);
    p += 4;
    out->headers = p;
    for (uint32_t i = 0; i < out->n_headers; i++) {
        const char *s;
        uint32_t n;
        if (!take_bytes(&p, end, &s, &n) || !take_bytes(&p, end, &s, &n))
            return SL_REC_BADLEN;
    }
    out->headers_len = (size_t)(p - out->headers);
    if (!take_bytes(&p, end, &out->value, &out->value_len) || p != end)
        return SL_REC_BADLEN;
    out->size = 4 + (size_t)len;
    return SL_REC_OK;
}

const unsigned char *sl_record_next_header(const unsigned char *p, sl_header *h)
{
    uint32_t n = get_u32(p);
    h->name = (const char *)(p + 4);
    h->name_len = n;
    p += 4 + (size_t)n;
    n = get_u32(p);
    h->value = (const char *)(p + 4);
    h->value_len = n;
    return p + 4 + (size_t)n;
}

const char *sl_rec_status_name(sl_rec_status s)
{
    switch (s) {
        case SL_REC_OK:
            return "ok";
        case SL_REC_END:
            return "end";
        case SL_REC_TORN:
            return "torn";
        case SL_REC_BADCRC:
            return "bad crc";
        case SL_REC_BADLEN:
            return "bad length";
    }
    return "unknown";
}

size_t sl_record_resync(const void *buf, size_t avail, size_t from, int64_t after, int64_t below,
                        sl_record_view *out)
{
    const unsigned char *b = buf;
    for (size_t pos = from; pos + SL_RECORD_MIN_BYTES <= avail; pos++) {
        uint32_t len = get_u32(b + pos);
        if (len < SL_RECORD_MIN_BYTES - 4 || len > avail - pos - 4)
            continue; /* cheap rejection before the checksum */
        if (sl_record_decode(b + pos, avail - pos, out) == SL_REC_OK && out->offset > after &&
            out->offset < below)
            return pos;
    }
    return SIZE_MAX;
}
