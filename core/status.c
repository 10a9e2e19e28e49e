/* Message status table (see status.h): inputs record each accepted message,
 * route workers record deliveries, retries and dead letters, and the admin
 * API reads it for GET /v1/messages/ID. Entries live in a ring (oldest first
 * out) indexed by an open-addressing hash of the id; one short lock. */
#include "clock.h"
#include "fnv.h"
#include "status.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    sl_msg_status st;
    uint64_t hash;
    bool live; /* false for a slot freed by a re-accepted id */
} entry;

struct sl_status {
    pthread_mutex_t lock;
    size_t capacity;
    entry *ring;   /* capacity slots, oldest at head */
    size_t head;   /* oldest ring position */
    size_t used;   /* ring positions in use from head, holes included */
    size_t *index; /* index_size slots: ring slot + 1, or 0 when empty */
    size_t index_mask;
};

static uint64_t id_hash(const char *id)
{
    return sl_fnv1a64_str(id);
}

sl_status *sl_status_new(size_t capacity)
{
    size_t size = 16;
    while (size < capacity * 2) {
        if (size > SIZE_MAX / 2 / sizeof(size_t))
            return NULL;
        size *= 2;
    }
    sl_status *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->capacity = capacity;
    s->ring = calloc(capacity ? capacity : 1, sizeof *s->ring);
    s->index = calloc(size, sizeof *s->index);
    s->index_mask = size - 1;
    if (!s->ring || !s->index || pthread_mutex_init(&s->lock, NULL) != 0) {
        free(s->ring);
        free(s->index);
        free(s);
        return NULL;
    }
    return s;
}

void sl_status_free(sl_status *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s->ring);
    free(s->index);
    free(s);
}

/* Returns the index position holding id, or the empty position where it
 * would go. Called with the lock held. */
static size_t index_find(const sl_status *s, const char *id, uint64_t h)
{
    size_t i = (size_t)h & s->index_mask;
    for (;;) {
        size_t v = s->index[i];
        if (v == 0)
            return i;
        const entry *e = &s->ring[v - 1];
        if (e->hash == h && strcmp(e->st.id, id) == 0)
            return i;
        i = (i + 1) & s->index_mask;
    }
}

/* Empties index position i and shifts later members of its probe run back
 * (linear probing without tombstones). Called with the lock held. */
static void index_delete(sl_status *s, size_t i)
{
    size_t j = i;
    for (;;) {
        s->index[i] = 0;
        size_t v;
        for (;;) {
            j = (j + 1) & s->index_mask;
            v = s->index[j];
            if (v == 0)
                return;
            size_t home = (size_t)s->ring[v - 1].hash & s->index_mask;
            /* Move v into the hole at i unless its home lies cyclically in (i, j]. */
            bool stays = (i <= j) ? (i < home && home <= j) : (i < home || home <= j);
            if (!stays)
                break;
        }
        s->index[i] = v;
        i = j;
    }
}

/* Forgets the entry in ring slot r. Called with the lock held. */
static void forget(sl_status *s, size_t r)
{
    entry *e = &s->ring[r];
    if (!e->live)
        return;
    index_delete(s, index_find(s, e->st.id, e->hash));
    e->live = false;
}

void sl_status_accepted(sl_status *s, const char *id, const char *route, int partition,
                        int64_t offset)
{
    if (!s || s->capacity == 0 || strlen(id) > SL_ID_LEN)
        return;
    entry fresh = {0};
    memcpy(fresh.st.id, id, strlen(id) + 1);
    snprintf(fresh.st.route, sizeof fresh.st.route, "%s", route ? route : "");
    fresh.st.partition = partition;
    fresh.st.offset = offset;
    fresh.st.state = SL_MSG_ACCEPTED;
    fresh.st.updated_ms = sl_wall_ms();
    fresh.hash = id_hash(id);
    fresh.live = true;

    pthread_mutex_lock(&s->lock);
    size_t pos = index_find(s, id, fresh.hash);
    if (s->index[pos] != 0) {
        /* Re-accepted (a replay, a redrive): it becomes the newest entry. */
        forget(s, s->index[pos] - 1);
    }
    if (s->used == s->capacity) {
        forget(s, s->head);
        s->head = (s->head + 1) % s->capacity;
        s->used--;
    }
    size_t r = (s->head + s->used) % s->capacity;
    s->ring[r] = fresh;
    s->used++;
    s->index[index_find(s, id, fresh.hash)] = r + 1;
    pthread_mutex_unlock(&s->lock);
}

void sl_status_update(sl_status *s, const char *id, sl_msg_state state, int attempts,
                      const char *last_error)
{
    if (!s || s->capacity == 0)
        return;
    uint64_t h = id_hash(id);
    int64_t now = sl_wall_ms();
    pthread_mutex_lock(&s->lock);
    size_t v = s->index[index_find(s, id, h)];
    if (v != 0) {
        sl_msg_status *st = &s->ring[v - 1].st;
        st->state = state;
        st->attempts = attempts;
        if (last_error)
            snprintf(st->last_error, sizeof st->last_error, "%s", last_error);
        st->updated_ms = now;
    }
    pthread_mutex_unlock(&s->lock);
}

void sl_status_set_offset(sl_status *s, const char *id, int64_t offset)
{
    if (!s || s->capacity == 0)
        return;
    uint64_t h = id_hash(id);
    pthread_mutex_lock(&s->lock);
    size_t v = s->index[index_find(s, id, h)];
    if (v != 0)
        s->ring[v - 1].st.offset = offset;
    pthread_mutex_unlock(&s->lock);
}

void sl_status_forget(sl_status *s, const char *id)
{
    if (!s || s->capacity == 0)
        return;
    uint64_t h = id_hash(id);
    pthread_mutex_lock(&s->lock);
    size_t v = s->index[index_find(s, id, h)];
    if (v != 0)
        forget(s, v - 1);
    pthread_mutex_unlock(&s->lock);
}

int sl_status_get(sl_status *s, const char *id, sl_msg_status *out)
{
    if (!s || s->capacity == 0)
        return -1;
    uint64_t h = id_hash(id);
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    size_t v = s->index[index_find(s, id, h)];
    if (v != 0) {
        *out = s->ring[v - 1].st;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

const char *sl_msg_state_name(sl_msg_state st)
{
    switch (st) {
        case SL_MSG_ACCEPTED:
            return "accepted";
        case SL_MSG_DELIVERED:
            return "delivered";
        case SL_MSG_RETRYING:
            return "retrying";
        case SL_MSG_DEAD_LETTERED:
            return "dead_lettered";
        case SL_MSG_DROPPED:
            return "dropped";
    }
    return "unknown";
}
