/* Circuit breakers: a count-based sliding window of the last calls' outcomes,
 * the closed / open / half-open state machine of SPEC.md section 8, and its
 * metrics. See breaker.h for the contract. */
#include "breaker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "logging.h"

struct sl_breaker {
    char name[128];
    sl_breaker_conf conf;
    pthread_mutex_t mu;
    sl_breaker_state state;
    bool *window; /* ring of outcomes: true = failure */
    size_t window_cap;
    size_t window_len;
    size_t window_pos;
    size_t failures;
    int consecutive;
    int64_t opened_at_ms;
    int64_t open_for_ms;  /* the current open period */
    int probes_in_flight; /* half-open */
    int probes_ok;        /* half-open successes so far */
    uint64_t rejected;
    sl_gauge *state_gauge;
    sl_counter *to_open;
    sl_counter *to_half_open;
    sl_counter *to_closed;
    sl_counter *rejected_total;
    pthread_mutex_t watch_mu; /* guards watches; held while they run */
    struct breaker_watch {
        sl_breaker_closed_fn fn;
        void *arg;
    } * watches;
    size_t n_watches, cap_watches;
};

const char *sl_breaker_state_name(sl_breaker_state s)
{
    switch (s) {
        case SL_BREAKER_CLOSED:
            return "closed";
        case SL_BREAKER_HALF_OPEN:
            return "half_open";
        case SL_BREAKER_OPEN:
            return "open";
    }
    return "unknown";
}

sl_breaker *sl_breaker_new(const char *name, const sl_breaker_conf *conf, sl_metrics *m)
{
    sl_breaker *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    snprintf(b->name, sizeof b->name, "%s", name);
    b->conf = *conf;
    if (b->conf.window <= 0)
        b->conf.window = 20;
    if (b->conf.min_calls <= 0)
        b->conf.min_calls = 10;
    if (b->conf.failure_rate <= 0.0)
        b->conf.failure_rate = 0.5;
    if (b->conf.open_for_ms == 0)
        b->conf.open_for_ms = 10000;
    if (b->conf.max_open_for_ms < b->conf.open_for_ms)
        b->conf.max_open_for_ms = b->conf.open_for_ms * 30;
    if (b->conf.half_open_calls <= 0)
        b->conf.half_open_calls = 3;
    b->window_cap = (size_t)b->conf.window;
    b->window = calloc(b->window_cap, sizeof *b->window);
    if (!b->window) {
        free(b);
        return NULL;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->watch_mu, NULL);
    b->open_for_ms = (int64_t)b->conf.open_for_ms;
    if (m) {
        char esc[256], labels[512];
        sl_metrics_escape(name, esc, sizeof esc);
        snprintf(labels, sizeof labels, "connector=\"%s\"", esc);
        b->state_gauge = sl_metrics_gauge(m, "sluice_breaker_state",
                                          "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
                                          labels, NULL, NULL);
        b->rejected_total =
            sl_metrics_counter(m, "sluice_breaker_rejected_total",
                               "Calls refused without touching the network while open.", labels);
        const char *help = "Circuit breaker state changes.";
        snprintf(labels, sizeof labels, "connector=\"%s\",to=\"open\"", esc);
        b->to_open = sl_metrics_counter(m, "sluice_breaker_transitions_total", help, labels);
        snprintf(labels, sizeof labels, "connector=\"%s\",to=\"half_open\"", esc);
        b->to_half_open = sl_metrics_counter(m, "sluice_breaker_transitions_total", help, labels);
        snprintf(labels, sizeof labels, "connector=\"%s\",to=\"closed\"", esc);
        b->to_closed = sl_metrics_counter(m, "sluice_breaker_transitions_total", help, labels);
        sl_gauge_set(b->state_gauge, 0);
    }
    return b;
}

void sl_breaker_free(sl_breaker *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    pthread_mutex_destroy(&b->watch_mu);
    free(b->watches);
    free(b->window);
    free(b);
}

const char *sl_breaker_name(const sl_breaker *b)
{
    return b->name;
}

static void clear_window(sl_breaker *b)
{
    memset(b->window, 0, b->window_cap * sizeof *b->window);
    b->window_len = 0;
    b->window_pos = 0;
    b->failures = 0;
    b->consecutive = 0;
}

/* Moves to state s; called with the mutex held. */
static void transition(sl_breaker *b, sl_breaker_state s)
{
    if (b->state == s)
        return;
    sl_breaker_state from = b->state;
    b->state = s;
    sl_gauge_set(b->state_gauge, (double)s);
    switch (s) {
        case SL_BREAKER_OPEN:
            sl_counter_add(b->to_open, 1);
            if (from == SL_BREAKER_HALF_OPEN) {
                b->open_for_ms *= 2;
                if (b->open_for_ms > (int64_t)b->conf.max_open_for_ms)
                    b->open_for_ms = (int64_t)b->conf.max_open_for_ms;
            }
            b->opened_at_ms = sl_mono_ms();
            b->probes_in_flight = 0;
            b->probes_ok = 0;
            sl_warn("breaker",
                    "breaker %s opened for %lld ms (%zu of the last %zu calls failed, "
                    "%d in a row)",
                    b->name, (long long)b->open_for_ms, b->failures, b->window_len, b->consecutive);
            break;
        case SL_BREAKER_HALF_OPEN:
            sl_counter_add(b->to_half_open, 1);
            b->probes_in_flight = 0;
            b->probes_ok = 0;
            sl_info("breaker", "breaker %s half-open: letting %d probe(s) through", b->name,
                    b->conf.half_open_calls);
            break;
        case SL_BREAKER_CLOSED:
            sl_counter_add(b->to_closed, 1);
            b->open_for_ms = (int64_t)b->conf.open_for_ms;
            clear_window(b);
            sl_info("breaker", "breaker %s closed", b->name);
            break;
    }
}

/* Open past its period becomes half-open; called with the mutex held. */
static void maybe_half_open(sl_breaker *b)
{
    if (b->state == SL_BREAKER_OPEN && sl_mono_ms() - b->opened_at_ms >= b->open_for_ms)
        transition(b, SL_BREAKER_HALF_OPEN);
}

int sl_breaker_watch(sl_breaker *b, sl_breaker_closed_fn fn, void *arg)
{
    pthread_mutex_lock(&b->watch_mu);
    int rc = 0;
    if (b->n_watches == b->cap_watches) {
        size_t cap = b->cap_watches ? b->cap_watches * 2 : 4;
        struct breaker_watch *v = realloc(b->watches, cap * sizeof *v);
        if (v) {
            b->watches = v;
            b->cap_watches = cap;
        } else {
            rc = -1;
        }
    }
    if (rc == 0) {
        b->watches[b->n_watches].fn = fn;
        b->watches[b->n_watches].arg = arg;
        b->n_watches++;
    }
    pthread_mutex_unlock(&b->watch_mu);
    return rc;
}

void sl_breaker_unwatch(sl_breaker *b, sl_breaker_closed_fn fn, const void *arg)
{
    pthread_mutex_lock(&b->watch_mu);
    for (size_t i = 0; i < b->n_watches; i++) {
        if (b->watches[i].fn == fn && b->watches[i].arg == arg) {
            b->watches[i] = b->watches[--b->n_watches];
            break;
        }
    }
    pthread_mutex_unlock(&b->watch_mu);
}

/* Tells the watchers that b closed; called without b->mu held. */
static void notify_closed(sl_breaker *b)
{
    pthread_mutex_lock(&b->watch_mu);
    for (size_t i = 0; i < b->n_watches; i++)
        b->watches[i].fn(b->watches[i].arg);
    pthread_mutex_unlock(&b->watch_mu);
}

size_t sl_breaker_acquire(sl_breaker *b, size_t want)
{
    pthread_mutex_lock(&b->mu);
    maybe_half_open(b);
    size_t granted = 0;
    switch (b->state) {
        case SL_BREAKER_CLOSED:
            granted = want;
            break;
        case SL_BREAKER_HALF_OPEN: {
            int left = b->conf.half_open_calls - b->probes_in_flight - b->probes_ok;
            granted = left > 0 ? ((size_t)left < want ? (size_t)left : want) : 0;
            b->probes_in_flight += (int)granted;
            break;
        }
        case SL_BREAKER_OPEN:
            granted = 0;
            break;
    }
    if (granted < want && want > 0 && b->state == SL_BREAKER_OPEN) {
        b->rejected += want - granted;
        sl_counter_add(b->rejected_total, want - granted);
    }
    pthread_mutex_unlock(&b->mu);
    return granted;
}

void sl_breaker_release(sl_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->state == SL_BREAKER_HALF_OPEN && b->probes_in_flight > 0)
        b->probes_in_flight--;
    pthread_mutex_unlock(&b->mu);
}

void sl_breaker_record(sl_breaker *b, bool success)
{
    pthread_mutex_lock(&b->mu);
    if (b->state == SL_BREAKER_HALF_OPEN) {
        if (b->probes_in_flight > 0)
            b->probes_in_flight--;
        bool closed = false;
        if (!success) {
            transition(b, SL_BREAKER_OPEN);
        } else if (++b->probes_ok >= b->conf.half_open_calls) {
            transition(b, SL_BREAKER_CLOSED);
            closed = true;
        }
        pthread_mutex_unlock(&b->mu);
        if (closed)
            notify_closed(b);
        return;
    }
    if (b->state == SL_BREAKER_OPEN) {
        /* a call granted before it opened: it no longer counts */
        pthread_mutex_unlock(&b->mu);
        return;
    }
    if (b->window_len == b->window_cap) {
        if (b->window[b->window_pos])
            b->failures--;
    } else {
        b->window_len++;
    }
    b->window[b->window_pos] = !success;
    b->window_pos = (b->window_pos + 1) % b->window_cap;
    if (!success) {
        b->failures++;
        b->consecutive++;
    } else {
        b->consecutive = 0;
    }
    bool by_rate = b->window_len >= (size_t)b->conf.min_calls &&
                   (double)b->failures >= b->conf.failure_rate * (double)b->window_len;
    bool by_run =
        b->conf.consecutive_failures > 0 && b->consecutive >= b->conf.consecutive_failures;
    if (!success && (by_rate || by_run))
        transition(b, SL_BREAKER_OPEN);
    pthread_mutex_unlock(&b->mu);
}

sl_breaker_state sl_breaker_get_state(sl_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    maybe_half_open(b);
    sl_breaker_state s = b->state;
    pthread_mutex_unlock(&b->mu);
    return s;
}

int64_t sl_breaker_retry_in_ms(sl_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    int64_t left = 0;
    if (b->state == SL_BREAKER_OPEN) {
        left = b->open_for_ms - (sl_mono_ms() - b->opened_at_ms);
        if (left < 0)
            left = 0;
    }
    pthread_mutex_unlock(&b->mu);
    return left;
}

void sl_breaker_reset(sl_breaker *b)
{
    pthread_mutex_lock(&b->mu);
    if (b->state != SL_BREAKER_CLOSED) {
        transition(b, SL_BREAKER_CLOSED);
    } else {
        clear_window(b);
        b->open_for_ms = (int64_t)b->conf.open_for_ms;
    }
    pthread_mutex_unlock(&b->mu);
    notify_closed(b);
}

void sl_breaker_get_info(sl_breaker *b, sl_breaker_info *info)
{
    pthread_mutex_lock(&b->mu);
    maybe_half_open(b);
    info->state = b->state;
    info->calls = b->window_len;
    info->failures = b->failures;
    info->consecutive_failures = b->consecutive;
    info->open_for_ms = b->open_for_ms;
    info->retry_in_ms = 0;
    if (b->state == SL_BREAKER_OPEN) {
        info->retry_in_ms = b->open_for_ms - (sl_mono_ms() - b->opened_at_ms);
        if (info->retry_in_ms < 0)
            info->retry_in_ms = 0;
    }
    info->rejected = b->rejected;
    pthread_mutex_unlock(&b->mu);
}
