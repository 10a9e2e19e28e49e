/* The Idempotency-Key table of the http_server connector: key -> the first
 * 2xx answer given for it, kept for the dedupe window and bounded in size
 * (the oldest entries are forgotten first). One table per route, so keys are
 * scoped per route. Thread-safe (one mutex). */
#ifndef SLUICE_HTTP_SERVER_IDEM_H
#define SLUICE_HTTP_SERVER_IDEM_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_idem sl_idem;

/* A stored answer. In answers returned by sl_idem_begin every pointer is a
 * malloc'd copy the caller frees with sl_idem_answer_free; NULL fields are
 * absent (body_len 0). */
typedef struct sl_idem_answer {
    int status;
    char *body;
    size_t body_len;
    char *content_type;
    char *location;
} sl_idem_answer;

typedef enum {
    SL_IDEM_NEW = 0,   /* first time: the caller owns the key until sl_idem_finish */
    SL_IDEM_IN_FLIGHT, /* a request with this key is being handled now */
    SL_IDEM_REPLAY,    /* answered before: *replay holds that answer */
    SL_IDEM_NOMEM,     /* out of memory: proceed without dedupe */
} sl_idem_state;

/* Returns a table keeping at most capacity keys (at least 1), each for
 * window_ms after its answer. NULL when out of memory. */
sl_idem *sl_idem_new(size_t capacity, uint64_t window_ms);

/* Frees the table and every stored answer. t may be NULL. */
void sl_idem_free(sl_idem *t);

/* Looks key up at time now_ms. On SL_IDEM_NEW the key is recorded as in
 * flight and *token identifies this claim for sl_idem_finish. On
 * SL_IDEM_REPLAY *replay receives a copy of the stored answer (free it with
 * sl_idem_answer_free); on the other results *replay is zeroed. */
sl_idem_state sl_idem_begin(sl_idem *t, const char *key, size_t key_len, uint64_t now_ms,
                            uint64_t *token, sl_idem_answer *replay);

/* Ends the claim token on key: ans (when not NULL) is copied and kept until
 * now_ms + window; ans NULL forgets the key so that the client can retry.
 * The caller decides what is kept (http_server keeps every answer given once
 * the message was durably appended). A claim that was evicted meanwhile is
 * ignored. Returns 0, or -1 when the answer could not be copied (out of
 * memory; the key is forgotten). */
int sl_idem_finish(sl_idem *t, const char *key, size_t key_len, uint64_t token,
                   const sl_idem_answer *ans, uint64_t now_ms);

/* Records that key was answered ans at answered_ms (a rebuild from the log
 * on start): kept until answered_ms + window, replacing an entry with the
 * same key (unless that one has the same location: the same message,
 * appended again by a redrive, keeps its first answer); nothing is kept when that time is already
 * past now_ms. Entries should be put oldest first (the oldest are evicted first when the table is
 * full). Returns 0, or -1 when out of memory (the key is not kept). */
int sl_idem_put(sl_idem *t, const char *key, size_t key_len, const sl_idem_answer *ans,
                uint64_t answered_ms, uint64_t now_ms);

/* The most keys t holds. */
size_t sl_idem_capacity(const sl_idem *t);

/* Forgets every key. */
void sl_idem_clear(sl_idem *t);

/* The number of keys held (in flight and answered). */
size_t sl_idem_count(sl_idem *t);

/* Frees the copies held by a (not a itself) and zeroes it. a may be NULL. */
void sl_idem_answer_free(sl_idem_answer *a);

#endif
