/* JSON-line formatting shared by the file and stdout outputs: one message
 * becomes one line {"id":..,"key":..,"timestamp":..,"headers":{..},"body":..}.
 * Also a quoted JSON string appender (lib/json_escape.h does the escaping)
 * and a helper that makes peer text safe to log. */
#ifndef SLUICE_JSONL_H
#define SLUICE_JSONL_H

#include <stddef.h>

#include "message.h"

/* A growable byte buffer. Zero-initialise it (or call sl_jsonl_buf_init),
 * reuse it across batches, free it with sl_jsonl_buf_free. */
typedef struct sl_jsonl_buf {
    char *data;
    size_t len;
    size_t cap;
} sl_jsonl_buf;

void sl_jsonl_buf_init(sl_jsonl_buf *b);

/* Frees the buffer's memory and empties it. b may be NULL. */
void sl_jsonl_buf_free(sl_jsonl_buf *b);

/* Appends msg as one JSON line, ending in '\n', to b. The body is embedded
 * as JSON (minified, its text otherwise kept byte for byte) when the
 * message's content-type is JSON (application/json, text/json, any +json),
 * or when there is no content-type and the body is a valid JSON document;
 * otherwise it is a JSON string. Header names and values, the key and
 * non-JSON bodies are strings escaped by sl_jsonl_append_string.
 * Returns 0, or -1 when out of memory (b->len is then unchanged).
 * Thread-safe for distinct buffers; msg is only read. */
int sl_jsonl_append_msg(sl_jsonl_buf *b, const sl_msg *msg);

/* Appends s (len bytes, may hold NULs) as a quoted JSON string. Valid UTF-8
 * is copied as is; '"', '\\' and control characters are escaped; every byte
 * that is not part of a valid UTF-8 sequence (stray continuation bytes,
 * overlong forms, surrogates, code points past U+10FFFF, truncated
 * sequences) is read as Latin-1 and written as \u00XX, so that the output
 * is always valid JSON and no byte is silently dropped. Returns 0 or -1
 * when out of memory (b->len unchanged). */
int sl_jsonl_append_string(sl_jsonl_buf *b, const char *s, size_t len);

/* Copies at most max_in bytes of in (len bytes) into out (capacity cap,
 * always NUL-terminated) for use in an error message: control characters
 * become spaces, bytes outside valid UTF-8 become '?', and a UTF-8 sequence
 * is never cut in the middle. Returns the length written. */
size_t sl_jsonl_safe_text(const char *in, size_t len, size_t max_in, char *out, size_t cap);

#endif
