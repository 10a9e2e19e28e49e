/* Metrics registry (see metrics.h): every module registers its counters,
 * gauges and histograms here once and updates them with atomics on the hot
 * path; the admin listener renders the whole registry for GET /metrics. */
#include "metrics.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "fnv.h"

typedef enum { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM } metric_kind;

struct sl_counter {
    _Atomic uint64_t value;
};

struct sl_gauge {
    _Atomic uint64_t bits; /* the double's bits */
    double (*fn)(void *arg);
    void *arg;
};

struct sl_histogram {
    size_t n_bounds;
    double *bounds;
    _Atomic uint64_t *buckets; /* n_bounds + 1, not cumulative; last is +Inf */
    _Atomic uint64_t sum_bits;
};

typedef struct family family;

/* One label set of one metric name. */
typedef struct series {
    struct series *next;      /* in the family, in registration order */
    struct series *hash_next; /* in the registry's bucket */
    family *fam;
    char *labels;
    uint64_t hash;
    union {
        struct sl_counter counter;
        struct sl_gauge gauge;
        struct sl_histogram histogram;
    } u;
} series;

/* Every label set of one metric name; rendered under one HELP and TYPE. */
struct family {
    family *next;
    char *name;
    char *help;
    metric_kind kind;
    series *first;
    series *last;
};

#define N_BUCKETS 256 /* hash buckets; chains stay short for thousands of series */

struct sl_metrics {
    pthread_mutex_t lock;
    family *first;
    family *last;
    series *table[N_BUCKETS];
};

static const double default_bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                        0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* FNV-1a over name, a separator and labels. */
static uint64_t series_hash(const char *name, const char *labels)
{
    static const unsigned char separator = 0xff; /* never inside a name */
    uint64_t h = sl_fnv1a64_str(name);
    h = sl_fnv1a64_add(h, &separator, 1);
    return sl_fnv1a64_add(h, labels, strlen(labels));
}

sl_metrics *sl_metrics_new(void)
{
    sl_metrics *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->lock, NULL) != 0) {
        free(m);
        return NULL;
    }
    return m;
}

static void series_free(series *s)
{
    if (!s)
        return;
    if (s->fam && s->fam->kind == KIND_HISTOGRAM) {
        free(s->u.histogram.bounds);
        free((void *)s->u.histogram.buckets);
    }
    free(s->labels);
    free(s);
}

void sl_metrics_free(sl_metrics *m)
{
    if (!m)
        return;
    family *f = m->first;
    while (f) {
        family *fnext = f->next;
        series *s = f->first;
        while (s) {
            series *snext = s->next;
            series_free(s);
            s = snext;
        }
        free(f->name);
        free(f->help);
        free(f);
        f = fnext;
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* Finds the family of name, or creates it. Returns NULL when out of memory
 * or when name exists with another kind. Called with the lock held. */
static family *family_get(sl_metrics *m, const char *name, const char *help, metric_kind kind)
{
    for (family *f = m->first; f; f = f->next) {
        if (strcmp(f->name, name) == 0)
            return f->kind == kind ? f : NULL;
    }
    family *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->name = strdup(name);
    f->help = strdup(help ? help : "");
    if (!f->name || !f->help) {
        free(f->name);
        free(f->help);
        free(f);
        return NULL;
    }
    f->kind = kind;
    if (m->last)
        m->last->next = f;
    else
        m->first = f;
    m->last = f;
    return f;
}

/* Returns the series name{labels} and sets *created when it is new (its
 * kind-specific part is then zeroed and must be set up by the caller, which
 * calls series_drop on failure). NULL when out of memory or on a kind
 * mismatch. Called with the lock held. */
static series *series_get(sl_metrics *m, const char *name, const char *help, const char *labels,
                          metric_kind kind, bool *created)
{
    if (!labels)
        labels = "";
    uint64_t h = series_hash(name, labels);
    *created = false;
    for (series *s = m->table[h % N_BUCKETS]; s; s = s->hash_next) {
        if (s->hash == h && strcmp(s->labels, labels) == 0 && strcmp(s->fam->name, name) == 0)
            return s->fam->kind == kind ? s : NULL;
    }
    family *f = family_get(m, name, help, kind);
    if (!f)
        return NULL;
    series *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->labels = strdup(labels);
    if (!s->labels) {
        free(s);
        return NULL;
    }
    s->fam = f;
    s->hash = h;
    s->hash_next = m->table[h % N_BUCKETS];
    m->table[h % N_BUCKETS] = s;
    if (f->last)
        f->last->next = s;
    else
        f->first = s;
    f->last = s;
    *created = true;
    return s;
}

/* Unlinks s from its family and the hash table and frees it. Called with
 * the lock held. */
static void series_drop(sl_metrics *m, series *s)
{
    series **pp = &m->table[s->hash % N_BUCKETS];
    while (*pp && *pp != s)
        pp = &(*pp)->hash_next;
    if (*pp)
        *pp = s->hash_next;
    family *f = s->fam;
    series *prev = NULL;
    for (series *it = f->first; it; prev = it, it = it->next) {
        if (it == s) {
            if (prev)
                prev->next = s->next;
            else
                f->first = s->next;
            if (f->last == s)
                f->last = prev;
            break;
        }
    }
    series_free(s);
}

sl_counter *sl_metrics_counter(sl_metrics *m, const char *name, const char *help,
                               const char *labels)
{
    bool created;
    pthread_mutex_lock(&m->lock);
    series *s = series_get(m, name, help, labels, KIND_COUNTER, &created);
    pthread_mutex_unlock(&m->lock);
    return s ? &s->u.counter : NULL;
}

void sl_counter_add(sl_counter *c, uint64_t n)
{
    if (c)
        atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

uint64_t sl_counter_get(const sl_counter *c)
{
    return c ? atomic_load_explicit(&c->value, memory_order_relaxed) : 0;
}

sl_gauge *sl_metrics_gauge(sl_metrics *m, const char *name, const char *help, const char *labels,
                           double (*fn)(void *arg), void *arg)
{
    bool created;
    pthread_mutex_lock(&m->lock);
    series *s = series_get(m, name, help, labels, KIND_GAUGE, &created);
    if (s && (created || fn)) {
        s->u.gauge.fn = fn;
        s->u.gauge.arg = arg;
    }
    pthread_mutex_unlock(&m->lock);
    return s ? &s->u.gauge : NULL;
}

void sl_gauge_set(sl_gauge *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, double_bits(v), memory_order_relaxed);
}

/* g is not const: the gauge it points at is freed. */
// cppcheck-suppress constParameter
void sl_metrics_remove_gauge(sl_metrics *m, sl_gauge *g)
{
    if (!m || !g)
        return;
    pthread_mutex_lock(&m->lock);
    /* Look g up rather than trusting it, so a second removal is harmless. */
    for (family *f = m->first; f; f = f->next) {
        if (f->kind != KIND_GAUGE)
            continue;
        for (series *s = f->first; s; s = s->next) {
            if (&s->u.gauge == g) {
                series_drop(m, s);
                pthread_mutex_unlock(&m->lock);
                return;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
}

sl_histogram *sl_metrics_histogram(sl_metrics *m, const char *name, const char *help,
                                   const char *labels, const double *bounds, size_t n_bounds)
{
    if (!bounds) {
        bounds = default_bounds;
        n_bounds = sizeof default_bounds / sizeof default_bounds[0];
    }
    bool created;
    pthread_mutex_lock(&m->lock);
    series *s = series_get(m, name, help, labels, KIND_HISTOGRAM, &created);
    if (s && created) {
        sl_histogram *h = &s->u.histogram;
        h->bounds = malloc((n_bounds ? n_bounds : 1) * sizeof *h->bounds);
        h->buckets = calloc(n_bounds + 1, sizeof *h->buckets);
        if (!h->bounds || !h->buckets) {
            series_drop(m, s);
            s = NULL;
        } else {
            if (n_bounds)
                memcpy(h->bounds, bounds, n_bounds * sizeof *bounds);
            h->n_bounds = n_bounds;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return s ? &s->u.histogram : NULL;
}

void sl_histogram_observe(sl_histogram *h, double v)
{
    if (!h || isnan(v))
        return;
    size_t i = 0;
    while (i < h->n_bounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    uint64_t old = atomic_load_explicit(&h->sum_bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&h->sum_bits, &old,
                                                  double_bits(bits_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* ---- rendering ------------------------------------------------------------- */

static void buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void buf_printf(sl_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sl_buf_put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* Writes d the way Prometheus reads it: NaN, +Inf, -Inf, or the shortest
 * decimal text that reads back as d. */
static void format_double(double d, char *out, size_t cap)
{
    if (isnan(d)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(d)) {
        snprintf(out, cap, d > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            return;
    }
}

static void put_double(sl_buf *b, double d)
{
    char tmp[64];
    format_double(d, tmp, sizeof tmp);
    sl_buf_puts(b, tmp);
}

/* HELP text escapes only backslash and newline. */
static void put_help(sl_buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            sl_buf_put(b, "\\\\", 2);
        else if (*s == '\n')
            sl_buf_put(b, "\\n", 2);
        else
            sl_buf_put(b, s, 1);
    }
}

/* name<suffix>{labels[,le="..."]} */
static void put_sample_name(sl_buf *b, const family *f, const char *suffix, const series *s,
                            const char *le)
{
    sl_buf_puts(b, f->name);
    sl_buf_puts(b, suffix);
    if (!s->labels[0] && !le)
        return;
    sl_buf_put(b, "{", 1);
    sl_buf_puts(b, s->labels);
    if (le) {
        if (s->labels[0])
            sl_buf_put(b, ",", 1);
        sl_buf_puts(b, "le=\"");
        sl_buf_puts(b, le);
        sl_buf_put(b, "\"", 1);
    }
    sl_buf_put(b, "}", 1);
}

static void render_histogram(sl_buf *b, const family *f, const series *s)
{
    const sl_histogram *h = &s->u.histogram;
    uint64_t cumulative = 0;
    char le[64];
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->n_bounds)
            format_double(h->bounds[i], le, sizeof le);
        else
            snprintf(le, sizeof le, "+Inf");
        put_sample_name(b, f, "_bucket", s, le);
        buf_printf(b, " %" PRIu64 "\n", cumulative);
    }
    put_sample_name(b, f, "_sum", s, NULL);
    sl_buf_put(b, " ", 1);
    put_double(b, bits_double(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)));
    sl_buf_put(b, "\n", 1);
    /* The count is the +Inf bucket, so the two always agree in one scrape. */
    put_sample_name(b, f, "_count", s, NULL);
    buf_printf(b, " %" PRIu64 "\n", cumulative);
}

static const char *kind_name(metric_kind k)
{
    switch (k) {
        case KIND_COUNTER:
            return "counter";
        case KIND_GAUGE:
            return "gauge";
        case KIND_HISTOGRAM:
            return "histogram";
    }
    return "untyped";
}

char *sl_metrics_render(sl_metrics *m, size_t *len)
{
    sl_buf b = {0};
    sl_buf_reserve(&b, 4095); /* the first 4 KiB at once */
    pthread_mutex_lock(&m->lock);
    for (const family *f = m->first; f; f = f->next) {
        if (!f->first)
            continue; /* every gauge of the name was removed */
        sl_buf_puts(&b, "# HELP ");
        sl_buf_puts(&b, f->name);
        sl_buf_put(&b, " ", 1);
        put_help(&b, f->help);
        sl_buf_puts(&b, "\n# TYPE ");
        sl_buf_puts(&b, f->name);
        sl_buf_put(&b, " ", 1);
        sl_buf_puts(&b, kind_name(f->kind));
        sl_buf_put(&b, "\n", 1);
        for (const series *s = f->first; s; s = s->next) {
            switch (f->kind) {
                case KIND_COUNTER:
                    put_sample_name(&b, f, "", s, NULL);
                    buf_printf(&b, " %" PRIu64 "\n", sl_counter_get(&s->u.counter));
                    break;
                case KIND_GAUGE: {
                    const sl_gauge *g = &s->u.gauge;
                    double v =
                        g->fn ? g->fn(g->arg)
                              : bits_double(atomic_load_explicit(&g->bits, memory_order_relaxed));
                    put_sample_name(&b, f, "", s, NULL);
                    sl_buf_put(&b, " ", 1);
                    put_double(&b, v);
                    sl_buf_put(&b, "\n", 1);
                    break;
                }
                case KIND_HISTOGRAM:
                    render_histogram(&b, f, s);
                    break;
            }
        }
    }
    pthread_mutex_unlock(&m->lock);
    char *text = sl_buf_cstr(&b); /* an empty registry still renders "" */
    if (!text) {
        sl_buf_free(&b);
        return NULL;
    }
    if (len)
        *len = b.len;
    return text;
}

char *sl_metrics_escape(const char *s, char *out, size_t cap)
{
    if (cap == 0)
        return out;
    size_t o = 0;
    for (; *s; s++) {
        char esc = 0;
        if (*s == '\\')
            esc = '\\';
        else if (*s == '"')
            esc = '"';
        else if (*s == '\n')
            esc = 'n';
        size_t need = esc ? 2 : 1;
        if (o + need >= cap)
            break; /* never split an escape sequence */
        if (esc) {
            out[o++] = '\\';
            out[o++] = esc;
        } else {
            out[o++] = *s;
        }
    }
    out[o] = '\0';
    return out;
}
