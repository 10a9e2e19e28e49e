/* The live tail of a route: its workers and its inputs publish a small
 * summary of each message as it is accepted and delivered (id, key,
 * partition, offset, size, a bounded body preview) into every subscriber's
 * own ring; the admin listener streams a subscriber's ring as Server-Sent
 * Events (core/admin_tail.c). Publishing never waits for a subscriber: a
 * full ring drops the event and counts it for that subscriber. */
#ifndef SLUICE_TAIL_H
#define SLUICE_TAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "message.h"
#include "metrics.h"

#define SL_TAIL_PREVIEW 256   /* body bytes kept per event */
#define SL_TAIL_RING 256      /* events a subscriber may be behind before drops */
#define SL_TAIL_MAX_CLIENTS 8 /* subscribers per route */

typedef struct sl_tail sl_tail;
typedef struct sl_tail_client sl_tail_client;

/* One published message. */
typedef struct sl_tail_event {
    const char *kind; /* "accepted" or "delivered" (static strings) */
    char id[SL_ID_LEN + 1];
    char key[128]; /* the key cut to fit, NUL-terminated; has_key false when none */
    bool has_key;
    int partition;
    int64_t offset;
    size_t size; /* the whole body */
    int64_t ts_ms;
    size_t preview_len; /* min(size, SL_TAIL_PREVIEW) */
    char preview[SL_TAIL_PREVIEW];
} sl_tail_event;

/* A new hub with no subscribers, or NULL when out of memory. */
sl_tail *sl_tail_new(void);

/* Frees a hub that has no subscribers left (sl_tail_unsubscribe each
 * first). t may be NULL. */
void sl_tail_free(sl_tail *t);

/* Adds every event a full ring drops, for any subscriber, to c (the
 * route's sluice_tail_dropped_total{route}); NULL stops counting. c must
 * outlive t or be replaced first. Thread-safe. */
void sl_tail_count_drops(sl_tail *t, sl_counter *c);

/* Publishes msg (kind "accepted" or "delivered", at partition/offset) to
 * every subscriber: one atomic load when there is none; else a copy of its
 * summary into each ring, or a drop counted for a subscriber whose ring is
 * full. Never blocks on a subscriber (its lock is held only for the copy).
 * Thread-safe; t may be NULL. */
void sl_tail_publish(sl_tail *t, const char *kind, const sl_msg *msg, int partition,
                     int64_t offset);

/* Called (from a publishing thread, or sl_tail_ping's) when a subscriber
 * that said it sleeps has something to read. Must not call back into the
 * tail. */
typedef void (*sl_tail_wake_fn)(void *arg);

/* Subscribes to t. Returns the client, or NULL when t already has
 * SL_TAIL_MAX_CLIENTS subscribers or memory ran out. Thread-safe. */
sl_tail_client *sl_tail_subscribe(sl_tail *t, sl_tail_wake_fn wake, void *arg);

/* Removes and frees c: after it returns, wake is never called again for
 * it. Thread-safe. */
void sl_tail_unsubscribe(sl_tail *t, sl_tail_client *c);

/* What a reader got from its ring. */
typedef enum {
    SL_TAIL_EVENT,  /* *ev filled */
    SL_TAIL_DROPS,  /* *dropped set: the total dropped so far went up since last told */
    SL_TAIL_PING,   /* a keep-alive was asked for (sl_tail_ping) */
    SL_TAIL_CLOSED, /* sl_tail_close: end the stream */
    SL_TAIL_EMPTY,  /* nothing: the client is marked asleep; wake runs once there is */
} sl_tail_read;

/* Takes the next thing for c to send. On SL_TAIL_EMPTY, sleep() (when not
 * NULL) was called with arg while c's lock is held, so that a wake can
 * never run before it (suspend the connection in it). Thread-safe. */
sl_tail_read sl_tail_next(sl_tail_client *c, sl_tail_event *ev, uint64_t *dropped,
                          void (*sleep)(void *arg), void *arg);

/* Asks every subscriber for a keep-alive (a sleeping one is woken). */
void sl_tail_ping(sl_tail *t);

/* Tells every subscriber to end its stream (a sleeping one is woken). */
void sl_tail_close(sl_tail *t);

#endif
