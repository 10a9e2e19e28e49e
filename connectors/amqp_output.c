/* The AMQP output: a route worker's batch is published on a publisher
 * connection in confirm mode (taken from the connector's pool, so
 * concurrent route workers publish in parallel), then every delivery tag of
 * the batch is waited for: basic.ack is SL_OK, basic.nack, a basic.return
 * (unroutable with mandatory), a timeout or a lost connection are SL_RETRY,
 * so that the route retries and finally dead-letters: nothing is dropped. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "amqp_internal.h"
#include "logging.h"

#define IDLE_MAX_MS 15000 /* reconnect rather than reuse a connection idle this long */

struct sl_amqp_pub {
    amqp_connection_state_t conn;
    uint64_t next_tag; /* the delivery tag the next publish gets (confirm mode counts from 1) */
    int64_t last_used_ms;
    sl_amqp_pub *next;
};

/* What happened to one message of the batch. */
typedef struct slot {
    uint64_t tag; /* 0 when not published */
    bool settled;
    bool returned;
    char rk[256]; /* the routing key it was published with */
} slot;

/* ---- the pool ---- */

static sl_amqp_pub *pool_take(sl_amqp *a)
{
    pthread_mutex_lock(&a->pool_mu);
    sl_amqp_pub *p = a->idle;
    if (p)
        a->idle = p->next;
    pthread_mutex_unlock(&a->pool_mu);
    if (!p)
        p = calloc(1, sizeof *p);
    return p;
}

static void pub_drop(sl_amqp_pub *p, bool graceful)
{
    sl_amqp_disconnect(p->conn, graceful);
    p->conn = NULL;
}

static void pool_put(sl_amqp *a, sl_amqp_pub *p)
{
    if (!p->conn) {
        free(p);
        return;
    }
    pthread_mutex_lock(&a->pool_mu);
    p->next = a->idle;
    a->idle = p;
    pthread_mutex_unlock(&a->pool_mu);
}

void sl_amqp_pool_free(sl_amqp *a)
{
    pthread_mutex_lock(&a->pool_mu);
    sl_amqp_pub *p = a->idle;
    a->idle = NULL;
    pthread_mutex_unlock(&a->pool_mu);
    while (p) {
        sl_amqp_pub *next = p->next;
        pub_drop(p, true);
        free(p);
        p = next;
    }
}

/* Records the loss of a publisher connection (counted as a reconnect once a
 * new one is up) and logs it. */
static void pub_lost(sl_amqp *a, sl_amqp_pub *p, const char *why)
{
    sl_warn("amqp",
            "output %s: publisher connection to %s lost: %s; reconnecting on the next "
            "send",
            a->name, a->target.display, why);
    atomic_fetch_add(&a->pub_lost, 1);
    pub_drop(p, false);
}

/* Opens p's connection in confirm mode, with a send timeout so that a broker
 * that stops reading (a memory alarm) cannot block a route worker forever. */
static int pub_connect(sl_amqp *a, sl_amqp_pub *p, sl_error *err)
{
    p->conn = sl_amqp_connect(a, SL_AMQP_HEARTBEAT_S, err);
    if (!p->conn)
        return -1;
    amqp_confirm_select(p->conn, SL_AMQP_CHANNEL);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(p->conn);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[300];
        sl_error_set(err, SL_EIO, "confirm.select on %s: %s", a->target.display,
                     sl_amqp_reply_text(r, buf, sizeof buf));
        pub_drop(p, false);
        return -1;
    }
    int fd = amqp_get_sockfd(p->conn);
    struct timeval tv = {.tv_sec = a->timeout_ms / 1000, .tv_usec = (a->timeout_ms % 1000) * 1000};
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    p->next_tag = 1;
    p->last_used_ms = sl_amqp_now_ms();
    int lost = atomic_load(&a->pub_lost);
    while (lost > 0 && !atomic_compare_exchange_weak(&a->pub_lost, &lost, lost - 1))
        ;
    if (lost > 0)
        sl_counter_add(a->reconnects, 1);
    if (atomic_exchange(&a->pub_down, false) || lost > 0)
        sl_info("amqp", "output %s: publisher connected to %s", a->name, a->target.display);
    return 0;
}

/* Consumes a basic.return's content. Returns the message_id it carried
 * (into id, NUL-terminated) and 0, or -1 when the connection fails. */
static int read_return(amqp_connection_state_t conn, const amqp_frame_t *f, char *id, size_t cap,
                       char *why, size_t why_cap)
{
    amqp_message_t m;
    amqp_rpc_reply_t r = amqp_read_message(conn, f->channel, &m, 0);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[300];
        snprintf(why, why_cap, "reading a returned message: %s",
                 sl_amqp_reply_text(r, buf, sizeof buf));
        return -1;
    }
    id[0] = '\0';
    if (m.properties._flags & AMQP_BASIC_MESSAGE_ID_FLAG) {
        size_t n = m.properties.message_id.len < cap - 1 ? m.properties.message_id.len : cap - 1;
        memcpy(id, m.properties.message_id.bytes, n);
        id[n] = '\0';
    }
    amqp_destroy_message(&m);
    return 0;
}

/* Before a batch: reads whatever the broker sent while the connection was
 * idle (late confirms, returns, a close), and drops a connection that is
 * closed, broken, or idle for too long. */
static void pub_check(sl_amqp *a, sl_amqp_pub *p)
{
    if (!p->conn)
        return;
    if (sl_amqp_now_ms() - p->last_used_ms > IDLE_MAX_MS) {
        pub_drop(p, true);
        return;
    }
    char why[512];
    for (;;) {
        amqp_maybe_release_buffers(p->conn);
        struct timeval tv = {0, 0};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(p->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            return;
        if (rc != AMQP_STATUS_OK) {
            pub_lost(a, p, amqp_error_string2(rc));
            return;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
            case AMQP_BASIC_RETURN_METHOD: {
                char id[64];
                if (read_return(p->conn, &f, id, sizeof id, why, sizeof why) < 0) {
                    pub_lost(a, p, why);
                    return;
                }
                break;
            }
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD:
                sl_amqp_close_text(&f, why, sizeof why);
                sl_amqp_close_ok(p->conn, &f);
                pub_lost(a, p, why);
                return;
            default:
                break; /* late confirms of an abandoned batch */
        }
    }
}

/* ---- one message ---- */

/* Appends len bytes of s to the buffer out (capacity cap, used *n). Returns
 * -1 when it does not fit. */
static int put(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + len >= cap)
        return -1;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
    return 0;
}

/* Expands the routing key template (literal text with ${header:NAME} and
 * ${$.path} substitutions) against msg into out (at most 255 bytes, the
 * AMQP limit). Returns 0, or -1 with why: the message cannot be routed as
 * configured, a permanent failure. */
static int expand_routing_key(const sl_expr_set *keys, const char *tmpl, sl_msg *msg, char out[256],
                              char *why, size_t why_cap)
{
    size_t n = 0;
    out[0] = '\0';
    const char *s = tmpl ? tmpl : "";
    while (*s) {
        const char *open = strstr(s, "${");
        size_t lit = open ? (size_t)(open - s) : strlen(s);
        if (put(out, 256, &n, s, lit) < 0)
            goto too_long;
        if (!open)
            break;
        const char *close = strchr(open + 2, '}');
        if (!close) {
            snprintf(why, why_cap, "routing key '%s': unterminated ${", tmpl);
            return -1;
        }
        char expr[256];
        size_t elen = (size_t)(close - open - 2);
        if (elen >= sizeof expr) {
            snprintf(why, why_cap, "routing key '%s': expression too long", tmpl);
            return -1;
        }
        memcpy(expr, open + 2, elen);
        expr[elen] = '\0';
        char *val = NULL;
        size_t vlen = 0;
        sl_error err;
        if (sl_expr_set_eval(keys, expr, msg, &val, &vlen, &err) < 0) {
            snprintf(why, why_cap, "routing key '%s': %s", tmpl, err.msg);
            return -1;
        }
        if (!val) {
            snprintf(why, why_cap, "routing key '%s': ${%s} has no value in this message", tmpl,
                     expr);
            return -1;
        }
        int rc = put(out, 256, &n, val, vlen);
        free(val);
        if (rc < 0)
            goto too_long;
        s = close + 1;
    }
    return 0;
too_long:
    snprintf(why, why_cap, "routing key '%s': longer than 255 bytes once expanded", tmpl);
    return -1;
}

/* Headers that travel as AMQP properties or describe where a message came
 * from, not as entries of the headers table. */
static bool is_property_header(const sl_msg *msg, const sl_msg_header *h)
{
    static const char *const names[] = {
        SL_HDR_CONTENT_TYPE, SL_HDR_ID,          "correlation_id",  "reply_to", "type",
        "amqp-exchange",     "amqp-routing-key", "amqp-redelivered"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!strcasecmp(h->name, names[i]))
            return true;
    }
    /* message_id equal to the id is the message_id property itself */
    return !strcasecmp(h->name, "message_id") && strcmp(h->value, msg->id) == 0;
}

static amqp_bytes_t header_bytes(const sl_msg *msg, const char *name, bool *found)
{
    size_t len = 0;
    const char *v = sl_msg_get_header(msg, name, &len);
    *found = v != NULL;
    amqp_bytes_t b = {.len = v ? len : 0, .bytes = (void *)(v ? v : "")};
    return b;
}

/* Publishes one message. entries is scratch for its headers table (room
 * for msg->n_headers). Returns an amqp_status_enum (AMQP_STATUS_OK). */
static int publish_one(amqp_connection_state_t conn, const sl_amqp_output *out, const sl_msg *msg,
                       const char *rk, amqp_table_entry_t *entries)
{
    amqp_basic_properties_t props;
    memset(&props, 0, sizeof props);
    props._flags =
        AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    props.message_id = amqp_cstring_bytes(msg->id);
    props.delivery_mode = out->persistent ? AMQP_DELIVERY_PERSISTENT : AMQP_DELIVERY_NONPERSISTENT;
    props.timestamp = (uint64_t)(msg->timestamp_ms > 0 ? msg->timestamp_ms / 1000 : 0);
    bool found;
    props.content_type = header_bytes(msg, SL_HDR_CONTENT_TYPE, &found);
    if (found)
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
    props.correlation_id = header_bytes(msg, "correlation_id", &found);
    if (found)
        props._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
    props.reply_to = header_bytes(msg, "reply_to", &found);
    if (found)
        props._flags |= AMQP_BASIC_REPLY_TO_FLAG;
    props.type = header_bytes(msg, "type", &found);
    if (found)
        props._flags |= AMQP_BASIC_TYPE_FLAG;
    int ne = 0;
    for (size_t i = 0; i < msg->n_headers; i++) {
        const sl_msg_header *h = &msg->headers[i];
        if (is_property_header(msg, h))
            continue;
        entries[ne].key = amqp_cstring_bytes(h->name);
        entries[ne].value.kind = AMQP_FIELD_KIND_UTF8;
        entries[ne].value.value.bytes.len = h->value_len;
        entries[ne].value.value.bytes.bytes = h->value;
        ne++;
    }
    if (ne > 0) {
        props._flags |= AMQP_BASIC_HEADERS_FLAG;
        props.headers.num_entries = ne;
        props.headers.entries = entries;
    }
    amqp_bytes_t body = {.len = msg->body_len, .bytes = msg->body};
    return amqp_basic_publish(conn, SL_AMQP_CHANNEL,
                              amqp_cstring_bytes(out->exchange ? out->exchange : ""),
                              amqp_cstring_bytes(rk), out->mandatory, 0, &props, body);
}

/* ---- a batch ---- */

typedef struct batch {
    sl_amqp *a;
    const sl_amqp_output *out;
    sl_msg *const *msgs;
    size_t n;
    sl_send_result *res;
    slot *slots;
    uint64_t first_tag; /* tag of the first published message; tags are consecutive */
    size_t *by_tag;     /* index of the message published with first_tag + k */
    size_t n_published;
    size_t unsettled;
    uint64_t ok, failed;
} batch;

static void settle(batch *b, size_t i, bool acked)
{
    slot *s = &b->slots[i];
    if (s->settled)
        return;
    s->settled = true;
    b->unsettled--;
    const char *ex = b->out->exchange ? b->out->exchange : "";
    if (acked && !s->returned) {
        sl_send_result_set(&b->res[i], SL_OK, 0, NULL);
        b->ok++;
    } else if (s->returned) {
        sl_send_result_set(&b->res[i], SL_RETRY, 312,
                           "unroutable: exchange %s routing key %s (NO_ROUTE)", ex, s->rk);
        b->failed++;
    } else {
        sl_send_result_set(&b->res[i], SL_RETRY, 0, "nacked by the broker (exchange %s)", ex);
        b->failed++;
    }
}

/* Settles tag (and every earlier one with multiple) of this batch. */
static void on_confirm(batch *b, uint64_t tag, bool multiple, bool acked)
{
    if (b->n_published == 0 || tag < b->first_tag)
        return; /* a late confirm of an earlier, abandoned batch */
    uint64_t last = tag - b->first_tag;
    if (last >= b->n_published)
        return;
    uint64_t from = multiple ? 0 : last;
    for (uint64_t k = from; k <= last; k++)
        settle(b, b->by_tag[k], acked);
}

static void on_return(batch *b, const char *id)
{
    for (size_t i = 0; i < b->n; i++) {
        if (b->slots[i].tag && !b->slots[i].settled && strcmp(b->msgs[i]->id, id) == 0) {
            b->slots[i].returned = true;
            return;
        }
    }
}

/* Every message without a result gets SL_RETRY with why. */
static void fail_rest(batch *b, const char *why)
{
    for (size_t i = 0; i < b->n; i++) {
        slot *s = &b->slots[i];
        if (s->settled)
            continue;
        s->settled = true;
        if (s->tag)
            b->failed++;
        sl_send_result_set(&b->res[i], SL_RETRY, 0, "%s", why);
    }
    b->unsettled = 0;
}

/* Waits for the confirms of every published message, until the deadline.
 * Returns -1 (with why) when the connection must be dropped. */
static int wait_confirms(batch *b, sl_amqp_pub *p, char *why, size_t why_cap)
{
    int64_t deadline = sl_amqp_now_ms() + b->a->timeout_ms;
    while (b->unsettled > 0) {
        int64_t left = deadline - sl_amqp_now_ms();
        if (left <= 0) {
            snprintf(why, why_cap, "no publisher confirm within %d ms", b->a->timeout_ms);
            return -1;
        }
        struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
        amqp_frame_t f;
        int rc = amqp_simple_wait_frame_noblock(p->conn, &f, &tv);
        if (rc == AMQP_STATUS_TIMEOUT)
            continue;
        if (rc != AMQP_STATUS_OK) {
            snprintf(why, why_cap, "connection lost: %s", amqp_error_string2(rc));
            return -1;
        }
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        switch (f.payload.method.id) {
            case AMQP_BASIC_ACK_METHOD: {
                const amqp_basic_ack_t *m = f.payload.method.decoded;
                on_confirm(b, m->delivery_tag, m->multiple, true);
                break;
            }
            case AMQP_BASIC_NACK_METHOD: {
                const amqp_basic_nack_t *m = f.payload.method.decoded;
                on_confirm(b, m->delivery_tag, m->multiple, false);
                break;
            }
            case AMQP_BASIC_RETURN_METHOD: {
                char id[64];
                if (read_return(p->conn, &f, id, sizeof id, why, why_cap) < 0)
                    return -1;
                on_return(b, id);
                break;
            }
            case AMQP_CHANNEL_CLOSE_METHOD:
            case AMQP_CONNECTION_CLOSE_METHOD: {
                char buf[400];
                snprintf(why, why_cap, "%s", sl_amqp_close_text(&f, buf, sizeof buf));
                sl_amqp_close_ok(p->conn, &f);
                return -1;
            }
            default:
                break;
        }
    }
    return 0;
}

/* Adds each ${...} of routing key template tmpl to keys (what
 * expand_routing_key would evaluate; a malformed template is left to it).
 * Returns -1 with err when out of memory. */
static int compile_template(sl_expr_set *keys, const char *tmpl, sl_error *err)
{
    for (const char *s = tmpl; (s = strstr(s, "${")) != NULL;) {
        const char *close = strchr(s + 2, '}');
        if (!close)
            return 0;
        char expr[256];
        size_t elen = (size_t)(close - s - 2);
        if (elen < sizeof expr) {
            memcpy(expr, s + 2, elen);
            expr[elen] = '\0';
            if (sl_expr_set_add(keys, expr, err) < 0)
                return -1;
        }
        s = close + 1;
    }
    return 0;
}

int sl_amqp_compile_keys(sl_amqp *a, const sl_config *conf, sl_error *err)
{
    if (!conf)
        return 0;
    if (!(a->keys = sl_expr_set_new()))
        return sl_error_set(err, SL_ENOMEM, "amqp connector %s: out of memory", a->name);
    for (size_t i = 0; i < conf->n_routes; i++) {
        for (size_t j = 0; j < conf->routes[i].n_to; j++) {
            const sl_output_conf *out = &conf->routes[i].to[j];
            const sl_amqp_output *ao = out->priv;
            if (out->connector && strcmp(out->connector, a->name) == 0 && ao && ao->routing_key &&
                compile_template(a->keys, ao->routing_key, err) < 0)
                return -1;
        }
    }
    return 0;
}

/* Expands every message's routing key; a message whose key cannot be
 * expanded fails permanently (SL_FAIL), whatever the broker's state. */
static void expand_keys(batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        slot *s = &b->slots[i];
        char err[400];
        if (expand_routing_key(b->a->keys, b->out->routing_key, b->msgs[i], s->rk, err,
                               sizeof err) < 0) {
            s->settled = true;
            b->unsettled--;
            sl_send_result_set(&b->res[i], SL_FAIL, 0, "%s", err);
        }
    }
}

/* Publishes the batch on p and waits for its confirms. Returns -1 (with
 * why) when p's connection must be dropped. */
static int publish_batch(batch *b, sl_amqp_pub *p, char *why, size_t why_cap)
{
    size_t max_headers = 1;
    for (size_t i = 0; i < b->n; i++) {
        if (b->msgs[i]->n_headers > max_headers)
            max_headers = b->msgs[i]->n_headers;
    }
    amqp_table_entry_t *entries = malloc(max_headers * sizeof *entries);
    if (!entries) {
        fail_rest(b, "out of memory");
        return 0;
    }
    int rc = 0;
    b->first_tag = p->next_tag;
    for (size_t i = 0; i < b->n; i++) {
        slot *s = &b->slots[i];
        if (s->settled)
            continue; /* its routing key failed */
        int st = publish_one(p->conn, b->out, b->msgs[i], s->rk, entries);
        if (st != AMQP_STATUS_OK) {
            snprintf(why, why_cap, "publish: %s", amqp_error_string2(st));
            rc = -1;
            break;
        }
        s->tag = p->next_tag++;
        b->by_tag[b->n_published++] = i;
    }
    free(entries);
    if (rc == 0)
        rc = wait_confirms(b, p, why, why_cap);
    return rc;
}

void sl_amqp_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                  sl_send_result *results)
{
    sl_amqp *a = c->state;
    if (n == 0)
        return;
    static const sl_amqp_output defaults = {.persistent = true, .mandatory = true};
    const sl_amqp_output *ao = out && out->priv ? out->priv : &defaults;
    batch b = {.a = a, .out = ao, .msgs = msgs, .n = n, .res = results, .unsettled = n};
    b.slots = calloc(n, sizeof *b.slots);
    b.by_tag = calloc(n, sizeof *b.by_tag);
    sl_amqp_pub *p = NULL;
    if (!b.slots || !b.by_tag) {
        for (size_t i = 0; i < n; i++)
            sl_send_result_set(&results[i], SL_RETRY, 0, "out of memory");
        goto done;
    }
    expand_keys(&b);
    if (b.unsettled == 0)
        goto done;
    p = pool_take(a);
    if (!p) {
        fail_rest(&b, "out of memory");
        goto done;
    }
    pub_check(a, p);
    if (!p->conn) {
        sl_error err;
        if (pub_connect(a, p, &err) < 0) {
            if (!atomic_exchange(&a->pub_down, true))
                sl_warn("amqp", "output %s: %s", a->name, err.msg);
            fail_rest(&b, err.msg);
            free(p);
            goto done;
        }
    }
    char why[512];
    if (publish_batch(&b, p, why, sizeof why) < 0) {
        fail_rest(&b, why);
        pub_lost(a, p, why);
    } else {
        p->last_used_ms = sl_amqp_now_ms();
        amqp_maybe_release_buffers(p->conn);
    }
    pool_put(a, p);
done:
    sl_counter_add(a->published, b.ok);
    sl_counter_add(a->confirm_failures, b.failed);
    free(b.slots);
    free(b.by_tag);
}
