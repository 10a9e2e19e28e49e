/* Message status for GET /v1/messages/ID: a bounded in-memory table from
 * message id to where the message is (route, partition, offset) and what
 * happened to it (accepted, delivered, retrying, dead_lettered). The oldest
 * entries are forgotten first when it is full. */
#ifndef SLUICE_STATUS_H
#define SLUICE_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "message.h"

typedef enum {
    SL_MSG_ACCEPTED = 0,
    SL_MSG_DELIVERED,
    SL_MSG_RETRYING,
    SL_MSG_DEAD_LETTERED,
    SL_MSG_DROPPED, /* a filter or step dropped it */
} sl_msg_state;

typedef struct sl_msg_status {
    char id[SL_ID_LEN + 1];
    char route[128];
    int partition;
    int64_t offset;
    sl_msg_state state;
    int attempts;
    char last_error[256];
    int64_t updated_ms;
} sl_msg_status;

typedef struct sl_status sl_status;

/* Returns a table that keeps at most capacity entries (0 keeps none), or
 * NULL when out of memory. Every function below accepts s NULL and then
 * does nothing (sl_status_get returns -1). Free with sl_status_free. */
sl_status *sl_status_new(size_t capacity);
void sl_status_free(sl_status *s);

/* Records that id was appended to route at partition/offset (state
 * accepted, 0 attempts), forgetting the oldest entry when the table is full.
 * Replaces an older entry with the same id (which then counts as the
 * newest). route is truncated to fit; an id longer than SL_ID_LEN is
 * ignored. Cannot fail; thread-safe. */
void sl_status_accepted(sl_status *s, const char *id, const char *route, int partition,
                        int64_t offset);

/* Fills in the offset of id once its append returned (the state, which a
 * worker may have moved on already, is kept); an id not in the table is
 * ignored. Thread-safe. */
void sl_status_set_offset(sl_status *s, const char *id, int64_t offset);

/* Forgets id (an append that failed after sl_status_accepted); an id not in
 * the table is ignored. Thread-safe. */
void sl_status_forget(sl_status *s, const char *id);

/* Updates the state, attempts and last error (NULL keeps the old one) of id;
 * an id not in the table is ignored. Thread-safe. */
void sl_status_update(sl_status *s, const char *id, sl_msg_state state, int attempts,
                      const char *last_error);

/* Records st as learnt from elsewhere (another gateway finished the
 * message): an entry for st->id takes st's partition, offset (unless st's is
 * -1), state, attempts and last error (when st has one); an id not in the
 * table is added as the newest entry, forgetting the oldest when the table is
 * full, as sl_status_accepted does. An id longer than SL_ID_LEN is ignored.
 * Thread-safe. */
void sl_status_put(sl_status *s, const sl_msg_status *st);

/* Copies the entry for id into out and returns 0, or returns -1 when the id
 * is unknown (never seen, or forgotten). Thread-safe. */
int sl_status_get(sl_status *s, const char *id, sl_msg_status *out);

/* "accepted", "delivered", "retrying", "dead_lettered", "dropped". */
const char *sl_msg_state_name(sl_msg_state st);

#endif
