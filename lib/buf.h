/* A growable byte buffer with a sticky out-of-memory flag: after a failed
 * allocation oom stays set and no write grows the buffer again, so a writer
 * checks oom once at the end and drops the contents then (writes that still
 * fit the old capacity may have landed after the gap).
 * Used by the JSON/XML bridge and the metrics renderer; the puts are inline
 * because the XML writer calls them per character. */
#ifndef SLUICE_LIB_BUF_H
#define SLUICE_LIB_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* Zero-initialise ({0}) before use; free p (or call sl_buf_free). */
typedef struct sl_buf {
    char *p;
    size_t len;
    size_t cap;
    bool oom; /* an allocation failed: p keeps what was written before */
} sl_buf;

/* Grows b so that need more bytes fit (cap - len >= need), doubling from
 * 256 bytes. Returns false, with b->oom set and b otherwise unchanged, when
 * memory runs out or b->oom was already set. */
bool sl_buf_grow(sl_buf *b, size_t need);

/* Makes room for n more bytes plus a NUL. Returns false when out of memory. */
static inline bool sl_buf_reserve(sl_buf *b, size_t n)
{
    if (b->cap - b->len > n)
        return true;
    return sl_buf_grow(b, n + 1);
}

/* Appends s[0..n); nothing when it needs growth that fails (oom set). */
static inline void sl_buf_put(sl_buf *b, const char *s, size_t n)
{
    if (!sl_buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

/* Appends one byte; nothing when it needs growth that fails (oom set). */
static inline void sl_buf_putc(sl_buf *b, char c)
{
    if (!sl_buf_reserve(b, 1))
        return;
    b->p[b->len++] = c;
}

/* Appends the NUL-terminated string s (without its NUL). */
void sl_buf_puts(sl_buf *b, const char *s);

/* NUL-terminates the contents (the reserve always leaves room) and returns
 * b->p, allocating an empty string for a buffer never written to. Returns
 * NULL when b->oom is set; the buffer still owns p either way. */
char *sl_buf_cstr(sl_buf *b);

/* Frees the memory and resets b to empty. b may be NULL. */
void sl_buf_free(sl_buf *b);

#endif
