/* The AMQP input: one thread and one connection per route whose `from:`
 * names an amqp connector. It consumes a queue with basic.qos prefetch,
 * turns each delivery into a message, appends it to the route's log and
 * acknowledges the broker (one basic.ack, multiple) only once the append is
 * durable. Appends and acks are pipelined: the thread never blocks on the
 * log's fsync; the log's flusher wakes it (an eventfd) when offsets become
 * durable, and it polls that and the socket together. Back-pressure keeps
 * deliveries unacked with the broker; a lost connection is re-established
 * with backoff (the broker redelivers). On a route whose log a connector
 * holds (`log:`, Kafka), each delivery waits for its own append's delivery
 * report (a report cell) instead of the partition's durable offset: stored
 * is acked; after a failed report the input appends nothing more, waits for
 * the reports still due, acks what was stored before the failed delivery
 * and reconnects, so that the broker redelivers the failed delivery and all
 * after it in their order (per-key order holds; some are duplicates). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "amqp_internal.h"
#include "logging.h"
#include "route.h"
#include "uuid.h"

_Static_assert(SL_ID_LEN == SL_UUID_TEXT_LEN, "a message id is a UUID in text form");

#define IDLE_WAIT_MS 200 /* longest frame wait: how soon a stop is noticed */
#define STOP_DURABLE_WAIT_MS 5000
#define BP_MIN_MS 50
#define BP_MAX_MS 1000

typedef enum { E_NEW, E_APPENDED, E_SETTLED } entry_state;

typedef struct report_cell report_cell;

/* One unacknowledged delivery, in delivery-tag order. */
typedef struct entry {
    uint64_t tag;
    entry_state st;
    sl_msg *msg; /* E_NEW: waiting for its append (back-pressure) */
    int part;    /* E_APPENDED: where it went */
    int64_t off;
    report_cell *cell; /* E_APPENDED to a connector's log: its delivery report */
} entry;

/* Wakes the consumer thread from the log's flusher when an offset it waits
 * for is durable. Shared by the input and its pending durability callbacks
 * (refs), so that a callback firing after the input is gone finds it alive;
 * the last reference closes the eventfd. */
typedef struct notifier notifier;
typedef struct notify_slot {
    notifier *n;
    atomic_bool armed; /* a callback is registered for this partition */
} notify_slot;
struct notifier {
    atomic_int refs;
    int efd;
    int n_parts;
    notify_slot slots[];
};

static void notifier_unref(notifier *n)
{
    if (n && atomic_fetch_sub(&n->refs, 1) == 1) {
        if (n->efd >= 0)
            close(n->efd);
        free(n);
    }
}

/* sl_partition_on_durable callback (flusher thread, or inline). */
static void on_durable(void *arg, int64_t offset, const sl_error *err)
{
    notify_slot *slot = arg;
    notifier *n = slot->n;
    (void)offset;
    (void)err;
    atomic_store(&slot->armed, false);
    uint64_t one = 1;
    ssize_t w = write(n->efd, &one, sizeof one); /* EAGAIN: already signalled */
    (void)w;
    notifier_unref(n);
}

/* The delivery report of one append to a connector's log (`log:`): shared
 * by the entry and the pending sl_route_on_durable callback until both are
 * done with it; the callback stores the outcome and wakes the thread. */
enum { CELL_PENDING, CELL_STORED, CELL_FAILED };
struct report_cell {
    atomic_int refs;
    atomic_int state;
    notifier *n; /* a reference of its own */
};

static void cell_unref(report_cell *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        notifier_unref(c->n);
        free(c);
    }
}

/* sl_route_on_durable callback for a cell (the log's thread, or inline). */
static void on_report(void *arg, int64_t offset, const sl_error *err)
{
    report_cell *c = arg;
    (void)offset;
    atomic_store(&c->state, err ? CELL_FAILED : CELL_STORED);
    uint64_t one = 1;
    ssize_t w = write(c->n->efd, &one, sizeof one); /* EAGAIN: already signalled */
    (void)w;
    cell_unref(c);
}

typedef struct binding {
    const char *exchange; /* strings borrowed from the config, which outlives us */
    const char *routing_key;
} binding;

struct sl_amqp_input {
    sl_amqp *a;
    sl_route *route;
    const char *route_name;
    const char *queue;
    int prefetch;
    /* declare: */
    bool declare;
    bool durable, exclusive, auto_delete;
    amqp_table_entry_t *args;
    size_t n_args;
    /* bind: */
    binding *binds;
    size_t n_binds;
    /* the thread */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool consuming; /* connected and consuming, for /ready */
    /* owned by the thread: */
    amqp_connection_state_t conn;
    char consumer_tag[256];
    entry *ring; /* unacked deliveries: settled ones first, new (unappended) ones last */
    size_t cap, head, count;
    size_t n_new; /* E_NEW entries, all at the tail */
    int n_parts;
    int64_t *last_off; /* scratch: per partition, last appended offset not yet acked */
    notifier *notify;
    bool report_failed; /* a delivery report failed: append nothing more, reconnect */
    int bp_ms;          /* back-pressure retry delay, 0 when not under back-pressure */
    int64_t bp_until;
    char why[512]; /* why the connection was lost */
};

/* ---- config ---- */

static int conf_error(sl_error *err, const sl_node *n, const char *route, const char *what,
                      const char *detail)
{
    return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: routes.%s.from.%s: %s", n->pos.file,
                        n->pos.line, n->pos.col, route, what, detail);
}

static int scalar_bool(const sl_node *n, bool *out)
{
    if (!n || n->kind != SL_NODE_SCALAR || n->quoted)
        return -1;
    if (!strcasecmp(n->scalar, "true") || !strcasecmp(n->scalar, "yes"))
        *out = true;
    else if (!strcasecmp(n->scalar, "false") || !strcasecmp(n->scalar, "no"))
        *out = false;
    else
        return -1;
    return 0;
}

/* Fills one queue argument from a YAML scalar: unquoted integers and
 * booleans keep their type (x-max-length: 1000), the rest are strings. */
static int argument_value(const sl_node *n, amqp_field_value_t *v)
{
    if (n->kind != SL_NODE_SCALAR)
        return -1;
    bool b;
    if (!n->quoted && scalar_bool(n, &b) == 0) {
        v->kind = AMQP_FIELD_KIND_BOOLEAN;
        v->value.boolean = b;
        return 0;
    }
    if (!n->quoted && n->scalar[0]) {
        char *end;
        errno = 0;
        long long x = strtoll(n->scalar, &end, 10);
        if (*end == '\0' && errno == 0) {
            v->kind = AMQP_FIELD_KIND_I64;
            v->value.i64 = x;
            return 0;
        }
    }
    v->kind = AMQP_FIELD_KIND_UTF8;
    v->value.bytes = amqp_cstring_bytes(n->scalar);
    return 0;
}

static int parse_declare(sl_amqp_input *in, const sl_node *d, sl_error *err)
{
    const char *r = in->route_name;
    if (d->kind == SL_NODE_NULL)
        return 0;
    if (d->kind != SL_NODE_MAP)
        return conf_error(err, d, r, "declare", "expected a mapping");
    for (size_t i = 0; i < d->n_pairs; i++) {
        const sl_node_pair *kv = &d->pairs[i];
        bool *flag = NULL;
        if (strcmp(kv->key, "durable") == 0)
            flag = &in->durable;
        else if (strcmp(kv->key, "exclusive") == 0)
            flag = &in->exclusive;
        else if (strcmp(kv->key, "auto_delete") == 0)
            flag = &in->auto_delete;
        if (flag) {
            if (scalar_bool(kv->value, flag) < 0)
                return conf_error(err, kv->value, r, "declare", "expected true or false");
            continue;
        }
        if (strcmp(kv->key, "arguments") != 0) {
            char msg[200];
            snprintf(msg, sizeof msg,
                     "unknown key '%s' (durable, exclusive, auto_delete, arguments)", kv->key);
            return conf_error(err, kv->value, r, "declare", msg);
        }
        const sl_node *args = kv->value;
        if (args->kind != SL_NODE_MAP)
            return conf_error(err, args, r, "declare.arguments", "expected a mapping");
        free(in->args);
        in->args = calloc(args->n_pairs ? args->n_pairs : 1, sizeof *in->args);
        if (!in->args)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
        in->n_args = args->n_pairs;
        for (size_t j = 0; j < args->n_pairs; j++) {
            in->args[j].key = amqp_cstring_bytes(args->pairs[j].key);
            if (argument_value(args->pairs[j].value, &in->args[j].value) < 0)
                return conf_error(err, args->pairs[j].value, r, "declare.arguments",
                                  "expected a scalar");
        }
    }
    return 0;
}

static int parse_bind(sl_amqp_input *in, const sl_node *b, sl_error *err)
{
    const char *r = in->route_name;
    if (b->kind == SL_NODE_NULL)
        return 0;
    if (b->kind != SL_NODE_SEQ)
        return conf_error(err, b, r, "bind", "expected a list");
    in->binds = calloc(b->n_items ? b->n_items : 1, sizeof *in->binds);
    if (!in->binds)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    for (size_t i = 0; i < b->n_items; i++) {
        const sl_node *it = b->items[i];
        if (it->kind != SL_NODE_MAP)
            return conf_error(err, it, r, "bind", "expected { exchange: E, routing_key: K }");
        binding *bd = &in->binds[in->n_binds++];
        bd->routing_key = "";
        for (size_t j = 0; j < it->n_pairs; j++) {
            const sl_node_pair *kv = &it->pairs[j];
            const char **dst = NULL;
            if (strcmp(kv->key, "exchange") == 0)
                dst = &bd->exchange;
            else if (strcmp(kv->key, "routing_key") == 0)
                dst = &bd->routing_key;
            if (!dst) {
                char msg[200];
                snprintf(msg, sizeof msg, "unknown key '%s' (exchange, routing_key)", kv->key);
                return conf_error(err, kv->value, r, "bind", msg);
            }
            if (kv->value->kind != SL_NODE_SCALAR)
                return conf_error(err, kv->value, r, "bind", "expected a string");
            *dst = kv->value->scalar;
        }
        if (!bd->exchange)
            return conf_error(err, it, r, "bind", "exchange is required");
    }
    return 0;
}

/* Fills in's settings from the route's from: and the connector's config:
 * queue, prefetch (from:, else the connector's, else 256). Cannot fail. */
static void input_settings(sl_amqp_input *in, sl_amqp *a, sl_route *route,
                           const sl_input_conf *from)
{
    in->a = a;
    in->route = route;
    in->route_name = sl_route_name(route);
    const sl_amqp_from *af = from->priv;
    const sl_amqp_conf *ac = a->c->conf->priv;
    in->queue = af ? af->queue : NULL;
    in->durable = true;
    atomic_init(&in->stop, false);
    in->prefetch = af && af->prefetch > 0 ? af->prefetch : ac ? ac->prefetch : 0;
    if (in->prefetch <= 0)
        in->prefetch = 256;
}

/* Checks the queue and reads from:'s declare: and bind:. Returns -1 with
 * err set (SL_ECONFIG) on a bad key. */
static int input_parse_from(sl_amqp_input *in, const sl_input_conf *from, sl_error *err)
{
    if (!in->queue || !in->queue[0]) {
        sl_error_set(err, SL_ECONFIG, "%s:%d:%d: routes.%s.from: queue is required", from->pos.file,
                     from->pos.line, from->pos.col, in->route_name);
        return -1;
    }
    const sl_node *d = from->node ? sl_node_get(from->node, "declare") : NULL;
    if (d) {
        in->declare = true;
        if (parse_declare(in, d, err) < 0)
            return -1;
    }
    const sl_node *b = from->node ? sl_node_get(from->node, "bind") : NULL;
    if (b && parse_bind(in, b, err) < 0)
        return -1;
    return 0;
}

/* Allocates the ring of unacked deliveries (prefetch + 8) and the last
 * offset of each partition. Returns -1 with err set (SL_ENOMEM). */
static int input_alloc_ring(sl_amqp_input *in, sl_route *route, sl_error *err)
{
    in->cap = (size_t)in->prefetch + 8;
    in->ring = calloc(in->cap, sizeof *in->ring);
    in->n_parts = sl_route_partition_count(route);
    in->last_off = calloc(in->n_parts > 0 ? (size_t)in->n_parts : 1, sizeof *in->last_off);
    if (!in->ring || !in->last_off) {
        sl_error_set(err, SL_ENOMEM, "amqp %s: out of memory", in->a->name);
        return -1;
    }
    return 0;
}

/* Allocates the durability notifier: one slot per partition and an
 * eventfd. Returns -1 with err set (SL_ENOMEM or SL_EIO). */
static int input_new_notify(sl_amqp_input *in, sl_error *err)
{
    size_t np = in->n_parts > 0 ? (size_t)in->n_parts : 1;
    in->notify = calloc(1, sizeof *in->notify + np * sizeof(notify_slot));
    if (!in->notify) {
        sl_error_set(err, SL_ENOMEM, "amqp %s: out of memory", in->a->name);
        return -1;
    }
    atomic_init(&in->notify->refs, 1);
    in->notify->n_parts = (int)np;
    for (size_t i = 0; i < np; i++) {
        in->notify->slots[i].n = in->notify;
        atomic_init(&in->notify->slots[i].armed, false);
    }
    in->notify->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (in->notify->efd < 0) {
        sl_error_set(err, SL_EIO, "amqp %s: eventfd: %s", in->a->name, strerror(errno));
        return -1;
    }
    return 0;
}

sl_amqp_input *sl_amqp_input_new(sl_amqp *a, sl_route *route, sl_error *err)
{
    const sl_input_conf *from = &sl_route_get_conf(route)->from;
    sl_amqp_input *in = calloc(1, sizeof *in);
    if (!in) {
        sl_error_set(err, SL_ENOMEM, "amqp %s: out of memory", a->name);
        return NULL;
    }
    input_settings(in, a, route, from);
    if (input_parse_from(in, from, err) < 0 || input_alloc_ring(in, route, err) < 0 ||
        input_new_notify(in, err) < 0) {
        sl_amqp_input_free(in);
        return NULL;
    }
    return in;
}

/* ---- the ring of unacked deliveries ---- */

static entry *at(sl_amqp_input *in, size_t i)
{
    return &in->ring[(in->head + i) % in->cap];
}

/* Forgets every delivery (after a lost connection, or at stop): the broker
 * requeues whatever we did not acknowledge. */
static void ring_clear(sl_amqp_input *in)
{
    for (size_t i = 0; i < in->count; i++) {
        entry *e = at(in, i);
        sl_msg_free(e->msg);
        e->msg = NULL;
        cell_unref(e->cell);
        e->cell = NULL;
    }
    in->head = in->count = in->n_new = 0;
}

/* Whether appended delivery e is settled: 1 stored (durable), 0 not yet,
 * -1 never (its delivery report failed). */
static int appended_state(sl_amqp_input *in, const entry *e)
{
    if (e->cell) {
        int st = atomic_load(&e->cell->state);
        return st == CELL_STORED ? 1 : st == CELL_FAILED ? -1 : 0;
    }
    if (sl_route_external_log(in->route))
        return -1; /* no cell (out of memory): nothing will tell */
    sl_partition *p = sl_route_partition(in->route, e->part);
    return p && sl_partition_durable_offset(p) > e->off ? 1 : 0;
}

/* Acknowledges, with one basic.ack (multiple), every delivery at the head of
 * the ring whose append is durable, up to the first one that is not; one
 * whose report failed stays at the head and sets report_failed. Returns -1
 * when the ack cannot be sent. */
static int ack_durable(sl_amqp_input *in)
{
    uint64_t tag = 0;
    size_t acked = 0;
    while (in->count > 0) {
        entry *e = at(in, 0);
        if (e->st == E_NEW)
            break;
        if (e->st == E_APPENDED) {
            int st = appended_state(in, e);
            in->report_failed |= st < 0;
            if (st <= 0)
                break;
            tag = e->tag;
            acked++;
            cell_unref(e->cell);
            e->cell = NULL;
        }
        in->head = (in->head + 1) % in->cap;
        in->count--;
    }
    if (tag == 0)
        return 0;
    int rc = amqp_basic_ack(in->conn, SL_AMQP_CHANNEL, tag, 1);
    if (rc != AMQP_STATUS_OK) {
        snprintf(in->why, sizeof in->why, "basic.ack: %s", amqp_error_string2(rc));
        return -1;
    }
    sl_counter_add(in->a->consumed, acked);
    return 0;
}

/* Whether some appended delivery still waits for its delivery report. */
static bool reports_pending(sl_amqp_input *in)
{
    for (size_t i = 0; i < in->count; i++) {
        const entry *e = at(in, i);
        if (e->st == E_APPENDED && appended_state(in, e) == 0)
            return true;
    }
    return false;
}

/* wait_durable on a connector's log: until no appended delivery's report
 * is pending, at most timeout_ms in all. */
static void wait_reports(sl_amqp_input *in, int timeout_ms)
{
    int64_t until = sl_amqp_now_ms() + timeout_ms;
    for (;;) {
        bool pending = reports_pending(in);
        int64_t left = until - sl_amqp_now_ms();
        if (!pending || left <= 0)
            return;
        struct pollfd pfd = {.fd = in->notify->efd, .events = POLLIN};
        if (poll(&pfd, 1, left < IDLE_WAIT_MS ? (int)left : IDLE_WAIT_MS) > 0) {
            uint64_t v;
            ssize_t r = read(in->notify->efd, &v, sizeof v);
            (void)r;
        }
    }
}

/* Blocks until every appended delivery in the ring is durable (one wait per
 * partition, on its last offset), at most timeout_ms each. */
static void wait_durable(sl_amqp_input *in, int timeout_ms)
{
    if (sl_route_external_log(in->route)) {
        wait_reports(in, timeout_ms);
        return;
    }
    for (int p = 0; p < in->n_parts; p++)
        in->last_off[p] = -1;
    for (size_t i = 0; i < in->count; i++) {
        const entry *e = at(in, i);
        if (e->st == E_APPENDED && e->part >= 0 && e->part < in->n_parts)
            in->last_off[e->part] = e->off;
    }
    for (int p = 0; p < in->n_parts; p++) {
        if (in->last_off[p] < 0)
            continue;
        sl_error err;
        if (sl_partition_wait_durable(sl_route_partition(in->route, p), in->last_off[p], timeout_ms,
                                      &err) < 0 &&
            err.code != SL_ETIMEOUT && err.code != SL_ECLOSED)
            sl_err("amqp",
                   "input %s: the log did not make offset %" PRId64
                   " of partition %d durable: %s; the deliveries stay unacked",
                   in->route_name, in->last_off[p], p, err.msg);
    }
}

/* Asks the log to wake the thread once the last appended delivery of each
 * partition is durable (one pending callback per partition at most). */
static void arm_durable(sl_amqp_input *in)
{
    for (int p = 0; p < in->n_parts; p++)
        in->last_off[p] = -1;
    for (size_t i = 0; i < in->count; i++) {
        const entry *e = at(in, i);
        if (e->st == E_APPENDED && e->part >= 0 && e->part < in->n_parts)
            in->last_off[e->part] = e->off;
    }
    for (int p = 0; p < in->n_parts; p++) {
        notify_slot *slot = &in->notify->slots[p];
        sl_partition *part = sl_route_partition(in->route, p);
        if (in->last_off[p] < 0 || !part || atomic_load(&slot->armed) ||
            sl_partition_durable_offset(part) > in->last_off[p])
            continue;
        atomic_store(&slot->armed, true);
        atomic_fetch_add(&in->notify->refs, 1);
        sl_error err;
        if (sl_partition_on_durable(part, in->last_off[p], on_durable, slot, &err) < 0) {
            atomic_store(&slot->armed, false);
            atomic_fetch_sub(&in->notify->refs, 1);
        }
    }
}

/* On a connector's log: asks for e's delivery report in a new cell. When
 * that cannot be asked, the cell says failed (the delivery is requeued). */
static void watch_report(sl_amqp_input *in, entry *e)
{
    report_cell *c = calloc(1, sizeof *c);
    if (!c) { /* no cell: pending forever would hold the ring; requeue instead */
        sl_err("amqp", "input %s: out of memory; requeuing delivery %" PRIu64, in->route_name,
               e->tag);
        return;
    }
    atomic_init(&c->refs, 2); /* the entry's and the callback's */
    atomic_init(&c->state, CELL_PENDING);
    c->n = in->notify;
    atomic_fetch_add(&in->notify->refs, 1);
    e->cell = c;
    sl_error err;
    if (sl_route_on_durable(in->route, e->part, e->off, on_report, c, &err) < 0) {
        sl_err("amqp", "input %s: delivery %" PRIu64 ": %s", in->route_name, e->tag, err.msg);
        atomic_store(&c->state, CELL_FAILED);
        cell_unref(c); /* the callback's: it will never run */
    }
}

/* The oldest new delivery e is in the log: remember where, drop its
 * message, and end back-pressure if it was on. */
static void mark_appended(sl_amqp_input *in, entry *e)
{
    e->part = e->msg->partition;
    e->off = e->msg->offset;
    e->st = E_APPENDED;
    if (sl_route_external_log(in->route))
        watch_report(in, e);
    sl_msg_free(e->msg);
    e->msg = NULL;
    in->n_new--;
    if (in->bp_ms > 0) {
        sl_info("amqp", "input %s: the log takes appends again; consuming %s", in->route_name,
                in->queue);
        in->bp_ms = 0;
    }
}

/* The append of e failed for good (SL_EINVAL: its key cannot be evaluated
 * on its body): reject it without requeue, so that the broker dead-letters
 * it when the queue has a dead letter exchange. Returns -1 when the reject
 * could not be sent (in->why set). */
static int reject_delivery(sl_amqp_input *in, entry *e, const sl_error *err)
{
    sl_warn("amqp", "input %s: rejecting delivery %" PRIu64 " from %s: %s", in->route_name, e->tag,
            in->queue, err->msg);
    int rc = amqp_basic_reject(in->conn, SL_AMQP_CHANNEL, e->tag, 0);
    sl_msg_free(e->msg);
    e->msg = NULL;
    e->st = E_SETTLED;
    in->n_new--;
    if (rc != AMQP_STATUS_OK) {
        snprintf(in->why, sizeof in->why, "basic.reject: %s", amqp_error_string2(rc));
        return -1;
    }
    return 0;
}

/* SL_EFULL (back-pressure), SL_EIO, SL_ECLOSED: the new deliveries stay
 * unacked; retry after a backoff that doubles from BP_MIN_MS to BP_MAX_MS. */
static void back_off(sl_amqp_input *in, const sl_error *err)
{
    if (in->bp_ms == 0) {
        if (err->code == SL_EFULL)
            sl_warn("amqp", "input %s: back-pressure (%s); holding %zu deliveries unacked",
                    in->route_name, err->msg, in->n_new);
        else if (err->code != SL_ECLOSED)
            sl_err("amqp", "input %s: append failed: %s; retrying", in->route_name, err->msg);
        in->bp_ms = BP_MIN_MS;
    } else if (in->bp_ms < BP_MAX_MS) {
        in->bp_ms *= 2;
    }
    in->bp_until = sl_amqp_now_ms() + in->bp_ms;
}

/* Appends the new deliveries in order until one cannot be appended now.
 * Returns -1 when the connection fails (a reject could not be sent). */
static int append_new(sl_amqp_input *in)
{
    if (in->n_new == 0 || in->report_failed)
        return 0;
    if (in->bp_ms > 0 && sl_amqp_now_ms() < in->bp_until)
        return 0;
    while (in->n_new > 0) {
        entry *e = at(in, in->count - in->n_new);
        sl_error err;
        if (sl_route_append(in->route, e->msg, &err) == 0) {
            mark_appended(in, e);
        } else if (err.code == SL_EINVAL) {
            if (reject_delivery(in, e, &err) < 0)
                return -1;
        } else {
            back_off(in, &err);
            break;
        }
    }
    return 0;
}

/* ---- deliveries into messages ---- */

/* Writes the text of v, a numeric field (integers, floats, decimal,
 * timestamp), into buf; returns its length, or -1 when v is not numeric. */
static int number_text(const amqp_field_value_t *v, char *buf, size_t cap)
{
    switch (v->kind) {
        case AMQP_FIELD_KIND_I8:
            return snprintf(buf, cap, "%d", v->value.i8);
        case AMQP_FIELD_KIND_U8:
            return snprintf(buf, cap, "%u", v->value.u8);
        case AMQP_FIELD_KIND_I16:
            return snprintf(buf, cap, "%d", v->value.i16);
        case AMQP_FIELD_KIND_U16:
            return snprintf(buf, cap, "%u", v->value.u16);
        case AMQP_FIELD_KIND_I32:
            return snprintf(buf, cap, "%" PRId32, v->value.i32);
        case AMQP_FIELD_KIND_U32:
            return snprintf(buf, cap, "%" PRIu32, v->value.u32);
        case AMQP_FIELD_KIND_I64:
            return snprintf(buf, cap, "%" PRId64, v->value.i64);
        case AMQP_FIELD_KIND_U64:
        case AMQP_FIELD_KIND_TIMESTAMP:
            return snprintf(buf, cap, "%" PRIu64, v->value.u64);
        case AMQP_FIELD_KIND_F32:
            return snprintf(buf, cap, "%.9g", (double)v->value.f32);
        case AMQP_FIELD_KIND_F64:
            return snprintf(buf, cap, "%.17g", v->value.f64);
        case AMQP_FIELD_KIND_DECIMAL: {
            double x = v->value.decimal.value;
            for (unsigned i = 0; i < v->value.decimal.decimals; i++)
                x /= 10;
            return snprintf(buf, cap, "%.*f", (int)v->value.decimal.decimals, x);
        }
        default:
            return -1;
    }
}

/* Sets header name to a header table value written as text. Arrays and
 * nested tables (x-death, for one) are left out. Returns -1 when out of
 * memory. */
static int set_field(sl_msg *msg, const char *name, const amqp_field_value_t *v)
{
    switch (v->kind) {
        case AMQP_FIELD_KIND_BOOLEAN:
            return sl_msg_set_header(msg, name, v->value.boolean ? "true" : "false",
                                     v->value.boolean ? 4 : 5);
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            return sl_msg_set_header(msg, name, v->value.bytes.len ? v->value.bytes.bytes : "",
                                     v->value.bytes.len);
        case AMQP_FIELD_KIND_VOID:
            return sl_msg_set_header(msg, name, "", 0);
        default: {
            char buf[64];
            int len = number_text(v, buf, sizeof buf);
            return len < 0 ? 0 : sl_msg_set_header(msg, name, buf, (size_t)len);
        }
    }
}

static int set_bytes(sl_msg *msg, const char *name, amqp_bytes_t b)
{
    return sl_msg_set_header(msg, name, b.len ? b.bytes : "", b.len);
}

/* Builds a message from a delivery: body, user headers as text, properties
 * as headers (content-type, message_id, correlation_id, reply_to, type) and
 * where it came from (amqp-exchange, amqp-routing-key). A message_id that
 * is a UUID becomes the message id. Returns NULL when out of memory. */
static sl_msg *delivery_to_msg(const amqp_message_t *m, const char *exchange,
                               const char *routing_key, bool redelivered)
{
    sl_msg *msg = sl_msg_new();
    if (!msg)
        return NULL;
    const amqp_basic_properties_t *p = &m->properties;
    int rc = sl_msg_set_body(msg, m->body.len ? m->body.bytes : "", m->body.len);
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p->headers.num_entries && rc == 0; i++) {
            const amqp_table_entry_t *te = &p->headers.entries[i];
            char name[256];
            if (te->key.len == 0 || te->key.len >= sizeof name ||
                memchr(te->key.bytes, '\0', te->key.len))
                continue;
            memcpy(name, te->key.bytes, te->key.len);
            name[te->key.len] = '\0';
            if (!strcasecmp(name, SL_HDR_ID))
                continue; /* the log's own id header is not for senders to set */
            rc = set_field(msg, name, &te->value);
        }
    }
    if (rc == 0 && (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG))
        rc = set_bytes(msg, SL_HDR_CONTENT_TYPE, p->content_type);
    if (rc == 0 && (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)) {
        rc = set_bytes(msg, "message_id", p->message_id);
        if (sl_is_uuid(p->message_id.bytes, p->message_id.len)) {
            for (size_t i = 0; i < SL_ID_LEN; i++) {
                char ch = ((const char *)p->message_id.bytes)[i];
                msg->id[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
            }
            msg->id[SL_ID_LEN] = '\0';
        }
    }
    if (rc == 0 && (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG))
        rc = set_bytes(msg, "correlation_id", p->correlation_id);
    if (rc == 0 && (p->_flags & AMQP_BASIC_REPLY_TO_FLAG))
        rc = set_bytes(msg, "reply_to", p->reply_to);
    if (rc == 0 && (p->_flags & AMQP_BASIC_TYPE_FLAG))
        rc = set_bytes(msg, "type", p->type);
    if (rc == 0)
        rc = sl_msg_set_header(msg, "amqp-exchange", exchange, strlen(exchange));
    if (rc == 0)
        rc = sl_msg_set_header(msg, "amqp-routing-key", routing_key, strlen(routing_key));
    if (rc == 0 && redelivered)
        rc = sl_msg_set_header(msg, "amqp-redelivered", "true", 4);
    if (rc != 0) {
        sl_msg_free(msg);
        return NULL;
    }
    return msg;
}

/* Copies a short string (at most 255 bytes in AMQP) into out. */
static void copy_short(char out[256], amqp_bytes_t b)
{
    snprintf(out, 256, "%.*s", (int)(b.len < 255 ? b.len : 255),
             b.len ? (const char *)b.bytes : "");
}

/* Reads the content of a basic.deliver and queues it. Returns -1 when the
 * connection fails. */
static int on_deliver(sl_amqp_input *in, const amqp_frame_t *f)
{
    const amqp_basic_deliver_t *d = f->payload.method.decoded;
    uint64_t tag = d->delivery_tag;
    bool redelivered = d->redelivered;
    char exchange[256], rk[256];
    copy_short(exchange, d->exchange);
    copy_short(rk, d->routing_key);
    amqp_message_t m;
    amqp_rpc_reply_t r = amqp_read_message(in->conn, f->channel, &m, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[300];
        snprintf(in->why, sizeof in->why, "reading a delivery: %s",
                 sl_amqp_reply_text(r, buf, sizeof buf));
        return -1;
    }
    sl_msg *msg = in->count < in->cap ? delivery_to_msg(&m, exchange, rk, redelivered) : NULL;
    amqp_destroy_message(&m);
    if (!msg) {
        /* Out of memory (or a broker ignoring basic.qos): hand it back. */
        sl_err("amqp", "input %s: cannot take delivery %" PRIu64 " (%s); requeued", in->route_name,
               tag, in->count < in->cap ? "out of memory" : "prefetch exceeded");
        int rc = amqp_basic_reject(in->conn, SL_AMQP_CHANNEL, tag, 1);
        if (rc != AMQP_STATUS_OK) {
            snprintf(in->why, sizeof in->why, "basic.reject: %s", amqp_error_string2(rc));
            return -1;
        }
        return 0;
    }
    entry *e = at(in, in->count++);
    e->tag = tag;
    e->st = E_NEW;
    e->msg = msg;
    e->part = -1;
    e->off = -1;
    e->cell = NULL;
    in->n_new++;
    return 0;
}

/* ---- the consumer thread ---- */

static int rpc_check(sl_amqp_input *in, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(in->conn);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return 0;
    char buf[300];
    snprintf(in->why, sizeof in->why, "%s: %s", what, sl_amqp_reply_text(r, buf, sizeof buf));
    return -1;
}

/* Connects, sets the prefetch, declares and binds the queue, and starts the
 * consumer. Returns -1 with in->why. */
static int connect_and_consume(sl_amqp_input *in)
{
    sl_error err;
    in->conn = sl_amqp_connect(in->a, SL_AMQP_HEARTBEAT_S, &err);
    if (!in->conn) {
        snprintf(in->why, sizeof in->why, "%s", err.msg);
        return -1;
    }
    char what[600];
    amqp_basic_qos(in->conn, SL_AMQP_CHANNEL, 0, (uint16_t)in->prefetch, 0);
    if (rpc_check(in, "basic.qos") < 0)
        return -1;
    amqp_bytes_t q = amqp_cstring_bytes(in->queue);
    if (in->declare) {
        amqp_table_t args = {.num_entries = (int)in->n_args, .entries = in->args};
        amqp_queue_declare(in->conn, SL_AMQP_CHANNEL, q, 0, in->durable, in->exclusive,
                           in->auto_delete, args);
        snprintf(what, sizeof what, "declare queue %s", in->queue);
        if (rpc_check(in, what) < 0)
            return -1;
    }
    for (size_t i = 0; i < in->n_binds; i++) {
        amqp_queue_bind(in->conn, SL_AMQP_CHANNEL, q, amqp_cstring_bytes(in->binds[i].exchange),
                        amqp_cstring_bytes(in->binds[i].routing_key), amqp_empty_table);
        snprintf(what, sizeof what, "bind queue %s to exchange %s with key '%s'", in->queue,
                 in->binds[i].exchange, in->binds[i].routing_key);
        if (rpc_check(in, what) < 0)
            return -1;
    }
    amqp_basic_consume_ok_t *ok = amqp_basic_consume(in->conn, SL_AMQP_CHANNEL, q, amqp_empty_bytes,
                                                     0, 0, 0, amqp_empty_table);
    snprintf(what, sizeof what, "consume queue %s", in->queue);
    if (!ok || rpc_check(in, what) < 0) {
        if (!ok && !in->why[0])
            snprintf(in->why, sizeof in->why, "%s: failed", what);
        return -1;
    }
    copy_short(in->consumer_tag, ok->consumer_tag);
    return 0;
}

/* Drops the connection (lost or failed) and every unacked delivery. */
static void drop_connection(sl_amqp_input *in)
{
    sl_amqp_disconnect(in->conn, false);
    in->conn = NULL;
    ring_clear(in);
    in->bp_ms = 0;
    in->report_failed = false;
}

static int on_frame(sl_amqp_input *in, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return 0; /* stray content frames: nothing to do */
    switch (f->payload.method.id) {
        case AMQP_BASIC_DELIVER_METHOD:
            return on_deliver(in, f);
        case AMQP_BASIC_CANCEL_METHOD:
            snprintf(in->why, sizeof in->why,
                     "the broker cancelled the consumer (queue %s deleted?)", in->queue);
            return -1;
        case AMQP_CHANNEL_CLOSE_METHOD:
        case AMQP_CONNECTION_CLOSE_METHOD:
            sl_amqp_close_text(f, in->why, sizeof in->why);
            sl_amqp_close_ok(in->conn, f);
            return -1;
        default:
            return 0;
    }
}

/* One turn of the consumer loop: take every frame the broker has sent,
 * append the deliveries, acknowledge what is durable, then sleep until the
 * socket is readable, the log makes something durable, or 200 ms pass.
 * Returns -1 when the connection is lost, with the reason in in->why. */
static int consume_step(sl_amqp_input *in)
{
    amqp_maybe_release_buffers(in->conn);
    for (unsigned n = 1;; n++) {
        struct timeval tv = {0, 0};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(in->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            break;
        if (rc != AMQP_STATUS_OK) {
            snprintf(in->why, sizeof in->why, "%s", amqp_error_string2(rc));
            return -1;
        }
        /* append each delivery at once, so that the log's flusher syncs
         * while more arrive; acknowledge now and then on the way */
        if (on_frame(in, &f) < 0 || append_new(in) < 0)
            return -1;
        amqp_maybe_release_buffers(in->conn); /* everything was copied out */
        if (n % 128 == 0 && ack_durable(in) < 0)
            return -1;
    }
    if (append_new(in) < 0)
        return -1;
    arm_durable(in);
    if (ack_durable(in) < 0)
        return -1;
    if (in->report_failed && !reports_pending(in)) {
        snprintf(in->why, sizeof in->why,
                 "Kafka did not store delivery %" PRIu64 " (its delivery report failed); the "
                 "broker redelivers it and those after it",
                 at(in, 0)->tag);
        return -1;
    }
    int timeout_ms = IDLE_WAIT_MS;
    if (in->n_new > 0) {
        int64_t left = in->bp_until - sl_amqp_now_ms();
        timeout_ms = left <= 0 ? 0 : left < IDLE_WAIT_MS ? (int)left : IDLE_WAIT_MS;
    }
    struct pollfd pfd[2] = {{.fd = amqp_get_sockfd(in->conn), .events = POLLIN},
                            {.fd = in->notify->efd, .events = POLLIN}};
    if (poll(pfd, 2, timeout_ms) > 0 && (pfd[1].revents & POLLIN)) {
        uint64_t v;
        ssize_t r = read(in->notify->efd, &v, sizeof v);
        (void)r;
    }
    return 0;
}

/* At stop: cancel the consumer, acknowledge what is durable, close. What
 * was not appended stays with the broker. */
static void consume_shutdown(sl_amqp_input *in)
{
    if (!in->conn)
        return;
    if (in->consumer_tag[0]) {
        amqp_basic_cancel(in->conn, SL_AMQP_CHANNEL, amqp_cstring_bytes(in->consumer_tag));
        amqp_rpc_reply_t r = amqp_get_rpc_reply(in->conn);
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            char buf[300];
            sl_warn("amqp", "input %s: cancelling the consumer: %s", in->route_name,
                    sl_amqp_reply_text(r, buf, sizeof buf));
            drop_connection(in);
            return;
        }
    }
    wait_durable(in, STOP_DURABLE_WAIT_MS);
    bool ok = ack_durable(in) == 0;
    size_t left = in->count;
    sl_amqp_disconnect(in->conn, ok);
    in->conn = NULL;
    ring_clear(in);
    sl_info("amqp", "input %s: stopped consuming %s (%zu unacked deliveries left to the broker)",
            in->route_name, in->queue, left);
}

static void *consume_main(void *arg)
{
    sl_amqp_input *in = arg;
    sl_amqp *a = in->a;
    int backoff = SL_AMQP_BACKOFF_MIN_MS;
    bool lost = false;
    while (!atomic_load(&in->stop)) {
        if (!in->conn) {
            in->why[0] = '\0';
            in->consumer_tag[0] = '\0';
            if (connect_and_consume(in) < 0) {
                sl_warn("amqp", "input %s: %s; retrying in %d ms", in->route_name, in->why,
                        backoff);
                drop_connection(in);
                sl_amqp_sleep(backoff, &in->stop);
                backoff =
                    backoff * 2 < SL_AMQP_BACKOFF_MAX_MS ? backoff * 2 : SL_AMQP_BACKOFF_MAX_MS;
                continue;
            }
            if (lost) {
                sl_counter_add(a->reconnects, 1);
                sl_info("amqp", "input %s: reconnected to %s, consuming %s again", in->route_name,
                        a->target.display, in->queue);
            } else {
                sl_info("amqp", "input %s: consuming %s on %s (prefetch %d)", in->route_name,
                        in->queue, a->target.display, in->prefetch);
            }
            backoff = SL_AMQP_BACKOFF_MIN_MS;
            atomic_store(&in->consuming, true);
        }
        if (consume_step(in) < 0) {
            atomic_store(&in->consuming, false);
            sl_warn("amqp",
                    "input %s: connection to %s lost: %s; %zu unacked deliveries will be "
                    "redelivered; reconnecting",
                    in->route_name, a->target.display, in->why, in->count);
            drop_connection(in);
            lost = true;
            sl_amqp_sleep(backoff, &in->stop);
        }
    }
    consume_shutdown(in);
    return NULL;
}

bool sl_amqp_input_ready(sl_amqp_input *in)
{
    return atomic_load(&in->consuming);
}

int sl_amqp_input_start(sl_amqp_input *in, sl_error *err)
{
    if (in->started)
        return 0;
    atomic_store(&in->stop, false);
    int rc = pthread_create(&in->thread, NULL, consume_main, in);
    if (rc != 0)
        return sl_error_set(err, SL_EIO, "amqp input %s: cannot start a thread: %s", in->route_name,
                            strerror(rc));
    pthread_setname_np(in->thread, "sluice-amqp-in");
    in->started = true;
    return 0;
}

void sl_amqp_input_stop(sl_amqp_input *in)
{
    if (!in || !in->started)
        return;
    atomic_store(&in->stop, true);
    pthread_join(in->thread, NULL);
    in->started = false;
}

void sl_amqp_input_free(sl_amqp_input *in)
{
    if (!in)
        return;
    if (in->ring)
        ring_clear(in);
    free(in->ring);
    free(in->last_off);
    notifier_unref(in->notify);
    free(in->args);
    free(in->binds);
    free(in);
}
