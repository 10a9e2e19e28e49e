/* The Idempotency-Key table of the http_server connector: a chained hash map
 * plus an insertion-ordered list, so that expiry and eviction of the oldest
 * entry are O(1). See http_server_idem.h for the contract. */
#include "http_server_idem.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fnv.h"

enum { ENT_IN_FLIGHT = 0, ENT_DONE };

typedef struct ent {
    struct ent *hnext;       /* bucket chain */
    struct ent *prev, *next; /* insertion order, oldest at head */
    uint64_t hash;
    uint64_t token;
    uint64_t expires_ms;
    int state;
    sl_idem_answer ans;
    size_t key_len;
    char key[];
} ent;

struct sl_idem {
    pthread_mutex_t mu;
    ent **buckets;
    size_t mask;
    ent *head, *tail;
    size_t count;
    size_t capacity;
    uint64_t window_ms;
    uint64_t next_token;
};

/* FNV-1a with its high bits folded down: buckets are picked by the low bits. */
static uint64_t hash_key(const char *k, size_t n)
{
    uint64_t h = sl_fnv1a64(k, n);
    return h ^ (h >> 29);
}

sl_idem *sl_idem_new(size_t capacity, uint64_t window_ms)
{
    sl_idem *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    if (capacity == 0)
        capacity = 1;
    size_t nb = 16;
    while (nb < capacity && nb < ((size_t)1 << 30))
        nb <<= 1;
    t->buckets = calloc(nb, sizeof *t->buckets);
    if (t->buckets == NULL) {
        free(t);
        return NULL;
    }
    t->mask = nb - 1;
    t->capacity = capacity;
    t->window_ms = window_ms;
    t->next_token = 1;
    pthread_mutex_init(&t->mu, NULL);
    return t;
}

void sl_idem_answer_free(sl_idem_answer *a)
{
    if (a == NULL)
        return;
    free(a->body);
    free(a->content_type);
    free(a->location);
    memset(a, 0, sizeof *a);
}

/* Puts e (hash h) into its bucket and at the newest end of the list. */
static void ent_link(sl_idem *t, ent *e, uint64_t h)
{
    e->hnext = t->buckets[h & t->mask];
    t->buckets[h & t->mask] = e;
    e->prev = t->tail;
    if (t->tail != NULL)
        t->tail->next = e;
    else
        t->head = e;
    t->tail = e;
    t->count++;
}

static void ent_unlink(sl_idem *t, ent *e)
{
    ent **pp = &t->buckets[e->hash & t->mask];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp == e)
        *pp = e->hnext;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        t->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        t->tail = e->prev;
    t->count--;
    sl_idem_answer_free(&e->ans);
    free(e);
}

void sl_idem_free(sl_idem *t)
{
    if (t == NULL)
        return;
    while (t->head != NULL)
        ent_unlink(t, t->head);
    pthread_mutex_destroy(&t->mu);
    free(t->buckets);
    free(t);
}

static ent *find(sl_idem *t, const char *key, size_t key_len, uint64_t h)
{
    for (ent *e = t->buckets[h & t->mask]; e != NULL; e = e->hnext)
        if (e->hash == h && e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    return NULL;
}

/* Forgets expired entries at the head of the list (the oldest). An entry
 * that is not expired stops the sweep: later ones are younger, up to the
 * small difference between claim and answer times. */
static void sweep(sl_idem *t, uint64_t now_ms)
{
    while (t->head != NULL && t->head->expires_ms <= now_ms)
        ent_unlink(t, t->head);
}

static char *dup_bytes(const char *s, size_t n, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = malloc(n + 1);
    if (d == NULL) {
        *oom = true;
        return NULL;
    }
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static int copy_answer(sl_idem_answer *dst, const sl_idem_answer *src)
{
    bool oom = false;
    memset(dst, 0, sizeof *dst);
    dst->status = src->status;
    dst->body = dup_bytes(src->body, src->body_len, &oom);
    dst->body_len = src->body != NULL ? src->body_len : 0;
    if (src->content_type != NULL)
        dst->content_type = dup_bytes(src->content_type, strlen(src->content_type), &oom);
    if (src->location != NULL)
        dst->location = dup_bytes(src->location, strlen(src->location), &oom);
    if (oom) {
        sl_idem_answer_free(dst);
        return -1;
    }
    return 0;
}

sl_idem_state sl_idem_begin(sl_idem *t, const char *key, size_t key_len, uint64_t now_ms,
                            uint64_t *token, sl_idem_answer *replay)
{
    uint64_t h = hash_key(key, key_len);
    memset(replay, 0, sizeof *replay);
    pthread_mutex_lock(&t->mu);
    sweep(t, now_ms);
    ent *e = find(t, key, key_len, h);
    if (e != NULL && e->expires_ms <= now_ms) {
        ent_unlink(t, e);
        e = NULL;
    }
    if (e != NULL) {
        sl_idem_state st;
        if (e->state == ENT_IN_FLIGHT)
            st = SL_IDEM_IN_FLIGHT;
        else
            st = copy_answer(replay, &e->ans) == 0 ? SL_IDEM_REPLAY : SL_IDEM_NOMEM;
        pthread_mutex_unlock(&t->mu);
        return st;
    }
    while (t->count >= t->capacity && t->head != NULL)
        ent_unlink(t, t->head);
    e = calloc(1, sizeof *e + key_len);
    if (e == NULL) {
        pthread_mutex_unlock(&t->mu);
        return SL_IDEM_NOMEM;
    }
    e->hash = h;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    e->state = ENT_IN_FLIGHT;
    e->token = t->next_token++;
    /* A claim that is never finished must not pin the key forever. */
    e->expires_ms = now_ms + (t->window_ms > 0 ? t->window_ms : 1);
    ent_link(t, e, h);
    *token = e->token;
    pthread_mutex_unlock(&t->mu);
    return SL_IDEM_NEW;
}

int sl_idem_finish(sl_idem *t, const char *key, size_t key_len, uint64_t token,
                   const sl_idem_answer *ans, uint64_t now_ms)
{
    uint64_t h = hash_key(key, key_len);
    int rc = 0;
    pthread_mutex_lock(&t->mu);
    ent *e = find(t, key, key_len, h);
    if (e != NULL && e->token == token && e->state == ENT_IN_FLIGHT) {
        if (ans != NULL && t->window_ms > 0) {
            if (copy_answer(&e->ans, ans) == 0) {
                e->state = ENT_DONE;
                e->expires_ms = now_ms + t->window_ms;
            } else {
                ent_unlink(t, e);
                rc = -1;
            }
        } else {
            ent_unlink(t, e);
        }
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

static bool same_location(const sl_idem_answer *a, const sl_idem_answer *b)
{
    return a->location != NULL && b->location != NULL && strcmp(a->location, b->location) == 0;
}

int sl_idem_put(sl_idem *t, const char *key, size_t key_len, const sl_idem_answer *ans,
                uint64_t answered_ms, uint64_t now_ms)
{
    if (t->window_ms == 0 || answered_ms + t->window_ms <= now_ms)
        return 0;
    uint64_t h = hash_key(key, key_len);
    ent *e = calloc(1, sizeof *e + key_len);
    if (e == NULL || copy_answer(&e->ans, ans) != 0) {
        free(e);
        return -1;
    }
    e->hash = h;
    e->key_len = key_len;
    memcpy(e->key, key, key_len);
    e->state = ENT_DONE;
    e->expires_ms = answered_ms + t->window_ms;
    pthread_mutex_lock(&t->mu);
    ent *old = find(t, key, key_len, h);
    if (old != NULL && same_location(&old->ans, ans)) {
        /* the same message again (a redrive): its first answer stays */
        pthread_mutex_unlock(&t->mu);
        sl_idem_answer_free(&e->ans);
        free(e);
        return 0;
    }
    if (old != NULL)
        ent_unlink(t, old); /* a later message: its answer is the one a client saw last */
    while (t->count >= t->capacity && t->head != NULL)
        ent_unlink(t, t->head);
    e->token = t->next_token++;
    ent_link(t, e, h);
    pthread_mutex_unlock(&t->mu);
    return 0;
}

size_t sl_idem_capacity(const sl_idem *t)
{
    return t->capacity;
}

void sl_idem_clear(sl_idem *t)
{
    pthread_mutex_lock(&t->mu);
    while (t->head != NULL)
        ent_unlink(t, t->head);
    pthread_mutex_unlock(&t->mu);
}

size_t sl_idem_count(sl_idem *t)
{
    pthread_mutex_lock(&t->mu);
    size_t n = t->count;
    pthread_mutex_unlock(&t->mu);
    return n;
}
