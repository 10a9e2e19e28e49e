/* The live tail hub of a route (see tail.h): a fixed set of subscribers,
 * each with its own ring of event summaries. Publishers (route workers,
 * inputs appending) copy into each ring under that subscriber's lock only;
 * a full ring drops the event for that subscriber and counts it. A reader
 * that finds its ring empty is marked asleep and woken once, by the first
 * publisher that gives it something. */
#include "tail.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

struct sl_tail_client {
    pthread_mutex_t mu;
    sl_tail_event ring[SL_TAIL_RING];
    size_t head, count;
    uint64_t dropped, told; /* dropped in all; the total the reader was last told */
    bool asleep;            /* the reader waits for a wake */
    bool ping, closed;
    sl_tail_wake_fn wake;
    void *arg;
};

struct sl_tail {
    pthread_mutex_t mu; /* guards clients[] and drops */
    atomic_int n;
    sl_tail_client *clients[SL_TAIL_MAX_CLIENTS];
    sl_counter *drops; /* every drop of every ring; NULL: not counted */
};

sl_tail *sl_tail_new(void)
{
    sl_tail *t = calloc(1, sizeof *t);
    if (t)
        pthread_mutex_init(&t->mu, NULL);
    return t;
}

void sl_tail_free(sl_tail *t)
{
    if (!t)
        return;
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Fills ev from msg. */
static void summarize(sl_tail_event *ev, const char *kind, const sl_msg *msg, int partition,
                      int64_t offset)
{
    ev->kind = kind;
    memcpy(ev->id, msg->id, sizeof ev->id);
    ev->has_key = msg->key != NULL;
    size_t kl = msg->key ? msg->key_len : 0;
    if (kl >= sizeof ev->key)
        kl = sizeof ev->key - 1;
    if (kl)
        memcpy(ev->key, msg->key, kl);
    ev->key[kl] = '\0';
    ev->partition = partition;
    ev->offset = offset;
    ev->size = msg->body_len;
    ev->ts_ms = sl_wall_ms();
    size_t n = msg->body_len < SL_TAIL_PREVIEW ? msg->body_len : SL_TAIL_PREVIEW;
    /* cut before a UTF-8 sequence the preview would split */
    while (n < msg->body_len && n > 0 && ((unsigned char)msg->body[n] & 0xC0) == 0x80)
        n--;
    ev->preview_len = n;
    if (ev->preview_len)
        memcpy(ev->preview, msg->body, ev->preview_len);
}

void sl_tail_count_drops(sl_tail *t, sl_counter *c)
{
    pthread_mutex_lock(&t->mu);
    t->drops = c;
    pthread_mutex_unlock(&t->mu);
}

/* Puts ev into c's ring, or counts a drop (for c, and in drops). Returns
 * true when the reader must be woken (it slept). Caller holds c->mu. */
static bool push(sl_tail_client *c, const sl_tail_event *ev, sl_counter *drops)
{
    if (c->count == SL_TAIL_RING) {
        c->dropped++;
        sl_counter_add(drops, 1);
    } else {
        c->ring[(c->head + c->count) % SL_TAIL_RING] = *ev;
        c->count++;
    }
    bool wake = c->asleep;
    c->asleep = false;
    return wake;
}

/* Who to wake once the hub's lock is released. */
typedef struct wake_list {
    sl_tail_wake_fn fn[SL_TAIL_MAX_CLIENTS];
    void *arg[SL_TAIL_MAX_CLIENTS];
    size_t n;
} wake_list;

/* Runs the wakes: outside every tail lock. A client that slept cannot go
 * away before it is woken (its reader is suspended), so arg stays valid. */
static void run_wakes(const wake_list *wl)
{
    for (size_t i = 0; i < wl->n; i++)
        wl->fn[i](wl->arg[i]);
}

void sl_tail_publish(sl_tail *t, const char *kind, const sl_msg *msg, int partition, int64_t offset)
{
    if (!t || atomic_load_explicit(&t->n, memory_order_relaxed) == 0)
        return;
    sl_tail_event ev;
    summarize(&ev, kind, msg, partition, offset);
    wake_list wl = {.n = 0};
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < SL_TAIL_MAX_CLIENTS; i++) {
        sl_tail_client *c = t->clients[i];
        if (!c)
            continue;
        pthread_mutex_lock(&c->mu);
        if (push(c, &ev, t->drops)) {
            wl.fn[wl.n] = c->wake;
            wl.arg[wl.n++] = c->arg;
        }
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&t->mu);
    run_wakes(&wl);
}

sl_tail_client *sl_tail_subscribe(sl_tail *t, sl_tail_wake_fn wake, void *arg)
{
    sl_tail_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutex_init(&c->mu, NULL);
    c->wake = wake;
    c->arg = arg;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < SL_TAIL_MAX_CLIENTS; i++) {
        if (!t->clients[i]) {
            t->clients[i] = c;
            atomic_fetch_add(&t->n, 1);
            pthread_mutex_unlock(&t->mu);
            return c;
        }
    }
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return NULL;
}

void sl_tail_unsubscribe(sl_tail *t, sl_tail_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < SL_TAIL_MAX_CLIENTS; i++) {
        if (t->clients[i] == c) {
            t->clients[i] = NULL;
            atomic_fetch_sub(&t->n, 1);
        }
    }
    pthread_mutex_unlock(&t->mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

sl_tail_read sl_tail_next(sl_tail_client *c, sl_tail_event *ev, uint64_t *dropped,
                          void (*sleep)(void *arg), void *arg)
{
    sl_tail_read what = SL_TAIL_EMPTY;
    pthread_mutex_lock(&c->mu);
    if (c->closed) {
        what = SL_TAIL_CLOSED;
    } else if (c->dropped != c->told) {
        c->told = c->dropped;
        *dropped = c->dropped;
        what = SL_TAIL_DROPS;
    } else if (c->count > 0) {
        *ev = c->ring[c->head];
        c->head = (c->head + 1) % SL_TAIL_RING;
        c->count--;
        what = SL_TAIL_EVENT;
    } else if (c->ping) {
        c->ping = false;
        what = SL_TAIL_PING;
    } else {
        c->asleep = true;
        if (sleep)
            sleep(arg);
    }
    pthread_mutex_unlock(&c->mu);
    return what;
}

/* Sets ping or closed on every subscriber and wakes the sleeping ones. */
static void signal_all(sl_tail *t, bool close)
{
    wake_list wl = {.n = 0};
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < SL_TAIL_MAX_CLIENTS; i++) {
        sl_tail_client *c = t->clients[i];
        if (!c)
            continue;
        pthread_mutex_lock(&c->mu);
        if (close)
            c->closed = true;
        else
            c->ping = true;
        if (c->asleep) {
            c->asleep = false;
            wl.fn[wl.n] = c->wake;
            wl.arg[wl.n++] = c->arg;
        }
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&t->mu);
    run_wakes(&wl);
}

void sl_tail_ping(sl_tail *t)
{
    if (t && atomic_load(&t->n) > 0)
        signal_all(t, false);
}

void sl_tail_close(sl_tail *t)
{
    if (t)
        signal_all(t, true);
}
