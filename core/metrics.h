/* Metrics: counters, gauges and histograms with fixed label sets, rendered in
 * the Prometheus text format by the admin listener's /metrics. Updating a
 * metric is lock-free (atomics); registering one takes a lock. */
#ifndef SLUICE_METRICS_H
#define SLUICE_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_metrics sl_metrics;
typedef struct sl_counter sl_counter;
typedef struct sl_gauge sl_gauge;
typedef struct sl_histogram sl_histogram;

/* Returns a new empty registry, or NULL when out of memory. */
sl_metrics *sl_metrics_new(void);

/* Frees the registry and every metric in it. m may be NULL. */
void sl_metrics_free(sl_metrics *m);

/* Returns the counter name{labels}, creating it at 0 if needed. labels is
 * the Prometheus label text without braces, e.g. `route="a",output="b"`, or
 * "" for none; the caller escapes values (sl_metrics_escape). help is used
 * the first time a name is seen. The same name and labels give the same
 * counter. Thread-safe. Returns NULL only when out of memory or when name
 * is already registered as another type (a programming error), and the
 * sl_counter_* functions accept NULL and do nothing (get returns 0). */
sl_counter *sl_metrics_counter(sl_metrics *m, const char *name, const char *help,
                               const char *labels);
void sl_counter_add(sl_counter *c, uint64_t n);
uint64_t sl_counter_get(const sl_counter *c);

/* A gauge holding a value set by its owner, or (when fn is given) computed
 * by fn(arg) at every scrape. fn runs on the admin thread and must be
 * thread-safe and must not call into the registry (it runs under the
 * registry lock); the gauge must be removed (sl_metrics_remove_gauge) before
 * arg is freed. The same name and labels give the same gauge; a new fn/arg
 * replaces the old one. NULL as for counters; sl_gauge_set and
 * sl_metrics_remove_gauge accept NULL. Removing frees the gauge: its owner
 * must not use it afterwards. */
sl_gauge *sl_metrics_gauge(sl_metrics *m, const char *name, const char *help, const char *labels,
                           double (*fn)(void *arg), void *arg);
void sl_gauge_set(sl_gauge *g, double v);
void sl_metrics_remove_gauge(sl_metrics *m, sl_gauge *g);

/* A histogram with the given upper bounds (ascending, +Inf implicit), or
 * the default latency buckets (100 us to 10 s) when bounds is NULL. The
 * same name and labels give the same histogram (its first bounds are kept).
 * NULL as for counters; sl_histogram_observe accepts NULL and ignores NaN. */
sl_histogram *sl_metrics_histogram(sl_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t n_bounds);
void sl_histogram_observe(sl_histogram *h, double v);

/* Renders every metric in the Prometheus text exposition format (version
 * 0.0.4) into a malloc'd string (*len bytes, NUL-terminated). Returns NULL
 * when out of memory. Thread-safe. */
char *sl_metrics_render(sl_metrics *m, size_t *len);

/* Writes s escaped for a label value (\\, \" and \n) into out (size cap),
 * always NUL-terminated. Returns out. */
char *sl_metrics_escape(const char *s, char *out, size_t cap);

#endif
