/* The on-disk encoding of one event log record: framing, checksum and
 * fields, shared by the log's appenders, readers and recovery. Every length
 * is checked against the bytes actually available before it is trusted.
 *
 * Layout, little-endian, no padding:
 *   u32 length        bytes after this field; 0 means "no more data"
 *   u32 crc32c        CRC32C of every byte after this field
 *   i64 offset
 *   i64 timestamp_ms
 *   u32 key_len,   key bytes
 *   u32 n_headers, then per header: u32 name_len, name, u32 value_len, value
 *   u32 value_len, value bytes
 */
#ifndef SLUICE_RECORD_H
#define SLUICE_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* Largest encoded record, framing included. */
#define SL_RECORD_MAX_BYTES ((size_t)64 << 20)
/* Bytes of an encoded record with no key, headers or value. */
#define SL_RECORD_MIN_BYTES 36u

typedef enum {
    SL_REC_OK = 0, /* a whole record with a good checksum */
    SL_REC_END,    /* a zero length (or no bytes at all): the end of the data */
    SL_REC_TORN,   /* the record runs past the bytes available: an incomplete write */
    SL_REC_BADCRC, /* the checksum does not match the bytes */
    SL_REC_BADLEN, /* a length is impossible: over the maximum, or inconsistent */
} sl_rec_status;

/* One decoded record, pointing into the buffer it was decoded from. */
typedef struct sl_record_view {
    int64_t offset;
    int64_t timestamp_ms;
    const char *key;
    uint32_t key_len;
    uint32_t n_headers;
    const unsigned char *headers; /* the encoded headers; walk with sl_record_next_header */
    size_t headers_len;
    const char *value;
    uint32_t value_len;
    size_t size; /* bytes of the whole encoded record */
} sl_record_view;

/* Returns the encoded size of rec, or 0 when it cannot be encoded: a field
 * longer than 4 GiB, more than 2^32 headers, or more than
 * SL_RECORD_MAX_BYTES in all. Cannot fail otherwise. */
size_t sl_record_size(const sl_record *rec);

/* Encodes rec into buf with the given offset and timestamp (rec->offset and
 * rec->timestamp_ms are ignored) and returns the bytes written, which equal
 * sl_record_size(rec). buf must hold that many bytes; rec must have a
 * non-zero sl_record_size. */
size_t sl_record_encode(void *buf, const sl_record *rec, int64_t offset, int64_t timestamp_ms);

/* Decodes and verifies the record at buf, of which avail bytes may be read.
 * Returns SL_REC_OK and fills out (pointing into buf), or says why not: the
 * end of data (a zero length, or avail smaller than a length field and all
 * zero), a torn record, a bad checksum or an impossible length. out is
 * only meaningful on SL_REC_OK. Reads nothing outside [buf, buf + avail). */
sl_rec_status sl_record_decode(const void *buf, size_t avail, sl_record_view *out);

/* Reads the header at p (starting at v->headers for the first) into h and
 * returns the position of the next one. Only for a view sl_record_decode
 * returned SL_REC_OK for, at most v->n_headers times. h's strings point into
 * the record and are not NUL-terminated. */
const unsigned char *sl_record_next_header(const unsigned char *p, sl_header *h);

/* Resynchronises after damaged bytes: returns the first position at or
 * after from where a whole record with a good checksum and an offset in
 * (after, below) starts, and fills out with it; SIZE_MAX when there is none
 * before avail. Every byte position is tried (the length field is checked
 * before the checksum), so the cost is linear in the bytes skipped. Reads
 * nothing outside [buf, buf + avail). */
size_t sl_record_resync(const void *buf, size_t avail, size_t from, int64_t after, int64_t below,
                        sl_record_view *out);

/* A short stable name for a status ("ok", "end", "torn", "bad crc", "bad length"). */
const char *sl_rec_status_name(sl_rec_status s);

#endif
