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

/* One message, compact (the ring is large and walked at random): the route
 * name is interned, the last error kept out of line, only once there is one. */
typedef struct entry {
    char id[SL_ID_LEN + 1];
    bool live; /* false for a slot freed by a re-accepted id */
    sl_msg_state state;
    int partition;
    int attempts;
    int64_t offset;
    int64_t updated_ms;
    uint64_t hash;
    const char *route; /* interned: lives as long as the table */
    char *last_error;  /* malloc'd, cut to fit sl_msg_status; NULL for none */
} entry;

/* Route names seen, each kept once (few, and never forgotten). */
typedef struct route_name {
    struct route_name *next;
    char name[sizeof(((sl_msg_status *)0)->route)];
} route_name;

struct sl_status {
    pthread_mutex_t lock;
    size_t capacity;
    entry *ring;     /* capacity slots, oldest at head */
    size_t head;     /* oldest ring position */
    size_t used;     /* ring positions in use from head, holes included */
    uint64_t *index; /* index_size slots: 0 when empty, else (ring slot + 1) << 32
                      * | the id's hash cut to 32 bits, so that a probe
                      * compares hashes without touching the ring */
    size_t index_mask;
    route_name *routes; /* (lock) */
};

static uint64_t id_hash(const char *id)
{
    return sl_fnv1a64_str(id);
}

/* The index value of ring slot r holding an id of hash h. */
static uint64_t index_value(size_t r, uint64_t h)
{
    return ((uint64_t)(r + 1) << 32) | (uint32_t)h;
}

/* The ring slot + 1 that index position pos holds, or 0 when empty. */
static size_t index_slot(const sl_status *s, size_t pos)
{
    return (size_t)(s->index[pos] >> 32);
}

sl_status *sl_status_new(size_t capacity)
{
    size_t size = 16;
    if (capacity > UINT32_MAX / 2) /* ring slots and hash positions fit in 32 bits */
        return NULL;
    while (size < capacity * 2)
        size *= 2;
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
    for (size_t i = 0; i < s->capacity; i++)
        free(s->ring[i].last_error);
    while (s->routes) {
        route_name *next = s->routes->next;
        free(s->routes);
        s->routes = next;
    }
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
        uint64_t v = s->index[i];
        if (v == 0)
            return i;
        if ((uint32_t)v == (uint32_t)h) {
            const entry *e = &s->ring[(v >> 32) - 1];
            if (e->hash == h && strcmp(e->id, id) == 0)
                return i;
        }
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
        uint64_t v;
        for (;;) {
            j = (j + 1) & s->index_mask;
            v = s->index[j];
            if (v == 0)
                return;
            size_t home = (size_t)(uint32_t)v & s->index_mask; /* the mask fits in 32 bits */
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
    index_delete(s, index_find(s, e->id, e->hash));
    e->live = false;
    free(e->last_error);
    e->last_error = NULL;
}

/* The interned copy of route (cut to fit sl_msg_status), or "" when out of
 * memory. Called with the lock held. */
static const char *intern_route(sl_status *s, const char *route)
{
    size_t n = strnlen(route, sizeof s->routes->name - 1);
    for (const route_name *r = s->routes; r; r = r->next)
        if (strncmp(r->name, route, n) == 0 && r->name[n] == '\0')
            return r->name;
    route_name *r = malloc(sizeof *r);
    if (!r)
        return "";
    memcpy(r->name, route, n);
    r->name[n] = '\0';
    r->next = s->routes;
    s->routes = r;
    return r->name;
}

void sl_status_accepted(sl_status *s, const char *id, const char *route, int partition,
                        int64_t offset)
{
    if (!s || s->capacity == 0)
        return;
    size_t id_len = strlen(id);
    if (id_len > SL_ID_LEN)
        return;
    uint64_t hash = id_hash(id);
    int64_t now = sl_wall_ms();
    pthread_mutex_lock(&s->lock);
    size_t pos = index_find(s, id, hash);
    if (index_slot(s, pos) != 0) {
        /* Re-accepted (a replay, a redrive): it becomes the newest entry. */
        forget(s, index_slot(s, pos) - 1);
    }
    if (s->used == s->capacity) {
        forget(s, s->head);
        s->head = (s->head + 1) % s->capacity;
        s->used--;
    }
    size_t r = (s->head + s->used) % s->capacity;
    entry *e = &s->ring[r];
    free(e->last_error); /* NULL: forget() dropped it; kept for safety */
    *e = (entry){.live = true,
                 .state = SL_MSG_ACCEPTED,
                 .partition = partition,
                 .offset = offset,
                 .updated_ms = now,
                 .hash = hash,
                 .route = intern_route(s, route ? route : "")};
    memcpy(e->id, id, id_len + 1);
    s->used++;
    s->index[index_find(s, id, hash)] = index_value(r, hash);
    pthread_mutex_unlock(&s->lock);
}

/* Keeps a copy of err (cut to fit sl_msg_status) as e's last error; when
 * out of memory e keeps none. Called with the lock held. */
static void set_last_error(entry *e, const char *err)
{
    size_t n = strnlen(err, sizeof(((sl_msg_status *)0)->last_error) - 1);
    char *copy = realloc(e->last_error, n + 1);
    if (!copy) {
        free(e->last_error);
        e->last_error = NULL;
        return;
    }
    memcpy(copy, err, n);
    copy[n] = '\0';
    e->last_error = copy;
}

void sl_status_update(sl_status *s, const char *id, sl_msg_state state, int attempts,
                      const char *last_error)
{
    if (!s || s->capacity == 0)
        return;
    uint64_t h = id_hash(id);
    int64_t now = sl_wall_ms();
    pthread_mutex_lock(&s->lock);
    size_t v = index_slot(s, index_find(s, id, h));
    if (v != 0) {
        entry *e = &s->ring[v - 1];
        e->state = state;
        e->attempts = attempts;
        if (last_error)
            set_last_error(e, last_error);
        e->updated_ms = now;
    }
    pthread_mutex_unlock(&s->lock);
}

void sl_status_set_offset(sl_status *s, const char *id, int64_t offset)
{
    if (!s || s->capacity == 0)
        return;
    uint64_t h = id_hash(id);
    pthread_mutex_lock(&s->lock);
    size_t v = index_slot(s, index_find(s, id, h));
    if (v != 0)
        s->ring[v - 1].offset = offset;
    pthread_mutex_unlock(&s->lock);
}

void sl_status_forget(sl_status *s, const char *id)
{
    if (!s || s->capacity == 0)
        return;
    uint64_t h = id_hash(id);
    pthread_mutex_lock(&s->lock);
    size_t v = index_slot(s, index_find(s, id, h));
    if (v != 0)
        forget(s, v - 1);
    pthread_mutex_unlock(&s->lock);
}

void sl_status_put(sl_status *s, const sl_msg_status *st)
{
    if (!s || s->capacity == 0 || strnlen(st->id, sizeof st->id) > SL_ID_LEN)
        return;
    uint64_t h = id_hash(st->id);
    pthread_mutex_lock(&s->lock);
    size_t v = index_slot(s, index_find(s, st->id, h));
    pthread_mutex_unlock(&s->lock);
    if (v == 0)
        sl_status_accepted(s, st->id, st->route, st->partition, st->offset);
    pthread_mutex_lock(&s->lock);
    v = index_slot(s, index_find(s, st->id, h));
    if (v != 0) {
        entry *e = &s->ring[v - 1];
        e->partition = st->partition;
        if (st->offset >= 0)
            e->offset = st->offset;
        e->state = st->state;
        e->attempts = st->attempts;
        if (st->last_error[0])
            set_last_error(e, st->last_error);
        e->updated_ms = sl_wall_ms();
    }
    pthread_mutex_unlock(&s->lock);
}

/* Fills out from e. */
static void copy_out(const entry *e, sl_msg_status *out)
{
    memset(out, 0, sizeof *out);
    memcpy(out->id, e->id, sizeof out->id);
    snprintf(out->route, sizeof out->route, "%s", e->route);
    out->partition = e->partition;
    out->offset = e->offset;
    out->state = e->state;
    out->attempts = e->attempts;
    snprintf(out->last_error, sizeof out->last_error, "%s", e->last_error ? e->last_error : "");
    out->updated_ms = e->updated_ms;
}

int sl_status_get(sl_status *s, const char *id, sl_msg_status *out)
{
    if (!s || s->capacity == 0)
        return -1;
    uint64_t h = id_hash(id);
    int rc = -1;
    pthread_mutex_lock(&s->lock);
    size_t v = index_slot(s, index_find(s, id, h));
    if (v != 0) {
        copy_out(&s->ring[v - 1], out);
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
