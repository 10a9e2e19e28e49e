/* Circuit breakers (SPEC.md section 8): one per outbound connector, shared by
 * every route and every ctx.http call that uses it. Closed until, over the
 * last `window` calls, at least `min_calls` were made and the failure rate
 * reached `failure_rate`, or `consecutive_failures` failed in a row; then open
 * for `open_for` (doubling on each reopen up to `max_open_for`), then
 * half-open for `half_open_calls` probes: all succeed and it closes, one
 * fails and it reopens. Thread-safe (one mutex, held for a few instructions). */
#ifndef SLUICE_BREAKER_H
#define SLUICE_BREAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "metrics.h"

typedef enum {
    SL_BREAKER_CLOSED = 0,
    SL_BREAKER_HALF_OPEN = 1,
    SL_BREAKER_OPEN = 2,
} sl_breaker_state;

typedef struct sl_breaker sl_breaker;

/* Returns a closed breaker for connector name with conf's settings (copied),
 * registering its metrics in m (may be NULL): sluice_breaker_state{connector},
 * sluice_breaker_transitions_total{connector,to}, and
 * sluice_breaker_rejected_total{connector}. Returns NULL when out of memory. */
sl_breaker *sl_breaker_new(const char *name, const sl_breaker_conf *conf, sl_metrics *m);

/* Frees b. b may be NULL. */
void sl_breaker_free(sl_breaker *b);

/* Asks for up to `want` calls. Returns how many may go to the network now:
 * want when closed; 0 when open (the rejection is counted); in half-open, what
 * is left of half_open_calls probes (0 when they are all in flight). Every
 * permit granted must be answered by sl_breaker_record. An open breaker whose
 * open_for has passed turns half-open here. */
size_t sl_breaker_acquire(sl_breaker *b, size_t want);

/* Records the outcome of one granted call: success (the partner answered,
 * even with a permanent error such as HTTP 400) or failure (timeout,
 * connection error, 5xx, 429, nack, lost connection, delivery error). */
void sl_breaker_record(sl_breaker *b, bool success);

/* Gives back a granted permit that was not used (the call was never made). */
void sl_breaker_release(sl_breaker *b);

/* The current state (an open breaker past its open_for reads half-open). */
sl_breaker_state sl_breaker_get_state(sl_breaker *b);

/* Milliseconds until an open breaker lets probes through (0 otherwise). */
int64_t sl_breaker_retry_in_ms(sl_breaker *b);

/* Closes the breaker and forgets its window and its open_for doubling.
 * Watchers are told (sl_breaker_watch). */
void sl_breaker_reset(sl_breaker *b);

/* Called when a breaker closes (its probes succeeded, or it was reset), on
 * the thread that closed it, without the breaker's lock held. Must be quick
 * and must not call sl_breaker_watch or sl_breaker_unwatch. */
typedef void (*sl_breaker_closed_fn)(void *arg);

/* Asks for fn(arg) each time b closes (route workers waiting for it wake up
 * at once). Returns 0, or -1 when out of memory. Thread-safe. */
int sl_breaker_watch(sl_breaker *b, sl_breaker_closed_fn fn, void *arg);

/* Removes a watch added with the same fn and arg. When it returns, fn(arg)
 * is not running and will not run again. Thread-safe. */
void sl_breaker_unwatch(sl_breaker *b, sl_breaker_closed_fn fn, const void *arg);

typedef struct sl_breaker_info {
    sl_breaker_state state;
    size_t calls;    /* in the window */
    size_t failures; /* in the window */
    int consecutive_failures;
    int64_t open_for_ms; /* current open period */
    int64_t retry_in_ms;
    uint64_t rejected; /* calls refused while open, since start */
} sl_breaker_info;

/* Fills info with a consistent snapshot. */
void sl_breaker_get_info(sl_breaker *b, sl_breaker_info *info);

/* The breaker's connector name. */
const char *sl_breaker_name(const sl_breaker *b);

/* "closed", "half_open", "open". */
const char *sl_breaker_state_name(sl_breaker_state s);

#endif
