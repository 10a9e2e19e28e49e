/* The AMQP 0-9-1 connector (type: amqp) on rabbitmq-c: its table of
 * functions, its settings (URL, credentials, TLS) and the connection helpers
 * that the input side (amqp_input.c: consume, append durably, then ack) and
 * the output side (amqp_output.c: publish with confirms) share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "amqp_internal.h"
#include "connector.h"
#include "metrics.h"
#include "logging.h"

#define SYSTEM_CA_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

int64_t sl_amqp_now_ms(void)
{
    return sl_mono_ms();
}

void sl_amqp_sleep(int ms, const atomic_bool *stop)
{
    while (ms > 0 && !(stop && atomic_load(stop))) {
        int step = ms < 50 ? ms : 50;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)step * 1000000L};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
            ;
        ms -= step;
    }
}

/* ---- settings ---- */

/* True when url carries user info ("amqp://user:pass@host/..."). */
static bool url_has_userinfo(const char *url)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t auth = strcspn(p, "/?#");
    const char *at = memchr(p, '@', auth);
    return at != NULL;
}

/* Reads a boolean scalar ("true"/"false"/"yes"/"no"). Returns 0, or -1. */
static int node_bool(const sl_node *n, bool *out)
{
    if (!n || n->kind != SL_NODE_SCALAR)
        return -1;
    if (!strcasecmp(n->scalar, "true") || !strcasecmp(n->scalar, "yes")) {
        *out = true;
        return 0;
    }
    if (!strcasecmp(n->scalar, "false") || !strcasecmp(n->scalar, "no")) {
        *out = false;
        return 0;
    }
    return -1;
}

/* Reads the optional `tls: { ca_file, verify }` of the connector. */
static int parse_tls(sl_amqp *a, sl_error *err)
{
    const sl_connector_conf *cc = a->c->conf;
    const sl_node *tls = cc->node ? sl_node_get(cc->node, "tls") : NULL;
    a->target.tls_verify = true;
    if (!tls)
        return 0;
    if (tls->kind != SL_NODE_MAP)
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: connectors.%s.tls: expected a mapping",
                            tls->pos.file, tls->pos.line, tls->pos.col, cc->name);
    for (size_t i = 0; i < tls->n_pairs; i++) {
        const sl_node_pair *kv = &tls->pairs[i];
        if (strcmp(kv->key, "verify") == 0) {
            if (node_bool(kv->value, &a->target.tls_verify) < 0)
                return sl_error_set(
                    err, SL_ECONFIG, "%s:%d:%d: connectors.%s.tls.verify: expected true or false",
                    kv->value->pos.file, kv->value->pos.line, kv->value->pos.col, cc->name);
        } else if (strcmp(kv->key, "ca_file") == 0) {
            if (kv->value->kind != SL_NODE_SCALAR)
                return sl_error_set(
                    err, SL_ECONFIG, "%s:%d:%d: connectors.%s.tls.ca_file: expected a path",
                    kv->value->pos.file, kv->value->pos.line, kv->value->pos.col, cc->name);
            free(a->target.ca_file);
            a->target.ca_file = strdup(kv->value->scalar);
            if (!a->target.ca_file)
                return sl_error_set(err, SL_ENOMEM, "amqp connector %s: out of memory", cc->name);
        } else {
            return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: connectors.%s.tls: unknown key '%s'",
                                kv->key_pos.file, kv->key_pos.line, kv->key_pos.col, cc->name,
                                kv->key);
        }
    }
    return 0;
}

/* Parses the URL (amqp_parse_url), the credentials (from the URL, else
 * AMQP_USER / AMQP_PASSWORD, else guest) and the TLS options. */
static int parse_target(sl_amqp *a, sl_error *err)
{
    const sl_connector_conf *cc = a->c->conf;
    const sl_amqp_conf *ac = cc->priv;
    sl_amqp_target *t = &a->target;
    if (!ac || !ac->url)
        return sl_error_set(err, SL_ECONFIG, "connectors.%s: url is required", cc->name);
    char *buf = strdup(ac->url);
    if (!buf)
        return sl_error_set(err, SL_ENOMEM, "amqp connector %s: out of memory", cc->name);
    struct amqp_connection_info info;
    amqp_default_connection_info(&info);
    int rc = amqp_parse_url(buf, &info);
    if (rc != AMQP_STATUS_OK) {
        free(buf);
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: connectors.%s.url: not a valid AMQP URL",
                            cc->pos.file, cc->pos.line, cc->pos.col, cc->name);
    }
    const char *user = info.user, *password = info.password;
    if (!url_has_userinfo(ac->url)) {
        const char *eu = getenv("AMQP_USER"), *ep = getenv("AMQP_PASSWORD");
        if (eu && *eu) {
            user = eu;
            password = ep ? ep : "";
        }
    }
    /* "amqp://host/" names the default vhost, as most clients read it. */
    const char *vhost = info.vhost && *info.vhost ? info.vhost : "/";
    t->host = strdup(info.host);
    t->vhost = strdup(vhost);
    t->user = strdup(user);
    t->password = strdup(password);
    t->port = info.port;
    t->tls = info.ssl != 0;
    snprintf(t->display, sizeof t->display, "%s://%s:%d%s%s", t->tls ? "amqps" : "amqp", info.host,
             info.port, vhost[0] == '/' ? "" : "/", vhost);
    free(buf);
    if (!t->host || !t->vhost || !t->user || !t->password)
        return sl_error_set(err, SL_ENOMEM, "amqp connector %s: out of memory", cc->name);
    if (parse_tls(a, err) < 0)
        return -1;
    if (t->tls && t->tls_verify && !t->ca_file) {
        if (access(SYSTEM_CA_BUNDLE, R_OK) != 0)
            return sl_error_set(err, SL_ECONFIG,
                                "connectors.%s: amqps:// verifies the broker's certificate: set "
                                "tls.ca_file (no %s here), or tls.verify: false",
                                cc->name, SYSTEM_CA_BUNDLE);
        t->ca_file = strdup(SYSTEM_CA_BUNDLE);
        if (!t->ca_file)
            return sl_error_set(err, SL_ENOMEM, "amqp connector %s: out of memory", cc->name);
    }
    return 0;
}

static void target_free(sl_amqp_target *t)
{
    free(t->host);
    free(t->vhost);
    free(t->user);
    if (t->password) {
        explicit_bzero(t->password, strlen(t->password));
        free(t->password);
    }
    free(t->ca_file);
    memset(t, 0, sizeof *t);
}

/* ---- connections ---- */

const char *sl_amqp_close_text(const amqp_frame_t *f, char *buf, size_t cap)
{
    if (f->frame_type == AMQP_FRAME_METHOD &&
        f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *m = f->payload.method.decoded;
        snprintf(buf, cap, "connection closed by the broker: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    } else if (f->frame_type == AMQP_FRAME_METHOD &&
               f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *m = f->payload.method.decoded;
        snprintf(buf, cap, "channel closed by the broker: %u %.*s", m->reply_code,
                 (int)m->reply_text.len, (const char *)m->reply_text.bytes);
    } else {
        snprintf(buf, cap, "unexpected frame from the broker");
    }
    return buf;
}

const char *sl_amqp_reply_text(amqp_rpc_reply_t r, char *buf, size_t cap)
{
    switch (r.reply_type) {
        case AMQP_RESPONSE_NORMAL:
            snprintf(buf, cap, "ok");
            break;
        case AMQP_RESPONSE_NONE:
            snprintf(buf, cap, "no reply from the broker");
            break;
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            snprintf(buf, cap, "%s", amqp_error_string2(r.library_error));
            break;
        case AMQP_RESPONSE_SERVER_EXCEPTION: {
            amqp_frame_t f;
            memset(&f, 0, sizeof f);
            f.frame_type = AMQP_FRAME_METHOD;
            f.payload.method = r.reply;
            sl_amqp_close_text(&f, buf, cap);
            break;
        }
        default:
            snprintf(buf, cap, "unknown reply type %d", (int)r.reply_type);
            break;
    }
    return buf;
}

void sl_amqp_close_ok(amqp_connection_state_t conn, const amqp_frame_t *f)
{
    if (f->frame_type != AMQP_FRAME_METHOD)
        return;
    if (f->payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_ok_t ok = {0};
        amqp_send_method(conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    } else if (f->payload.method.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_ok_t ok = {0};
        amqp_send_method(conn, f->channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    }
}

/* Opens conn's TCP or TLS socket to a's target within tv (then also the
 * handshake and RPC timeouts). Returns -1 with err set; the caller
 * destroys conn. */
static int open_socket(const sl_amqp *a, amqp_connection_state_t conn, struct timeval *tv,
                       sl_error *err)
{
    const sl_amqp_target *t = &a->target;
    amqp_socket_t *s = t->tls ? amqp_ssl_socket_new(conn) : amqp_tcp_socket_new(conn);
    if (!s) {
        sl_error_set(err, SL_ENOMEM, "amqp %s: cannot create a %s socket", a->name,
                     t->tls ? "TLS" : "TCP");
        return -1;
    }
    if (t->tls) {
        amqp_ssl_socket_set_verify_peer(s, t->tls_verify);
        amqp_ssl_socket_set_verify_hostname(s, t->tls_verify);
        if (t->ca_file && amqp_ssl_socket_set_cacert(s, t->ca_file) != AMQP_STATUS_OK) {
            sl_error_set(err, SL_EIO, "amqp %s: cannot load CA file %s", a->name, t->ca_file);
            return -1;
        }
    }
    int rc = amqp_socket_open_noblock(s, t->host, t->port, tv);
    if (rc != AMQP_STATUS_OK) {
        sl_error_set(err, SL_EIO, "connect to %s: %s", t->display, amqp_error_string2(rc));
        return -1;
    }
    amqp_set_handshake_timeout(conn, tv);
    amqp_set_rpc_timeout(conn, tv);
    return 0;
}

/* Logs in on the open conn (PLAIN, connection_name "sluice NAME").
 * Returns -1 with err set; the caller destroys conn. */
static int login(const sl_amqp *a, amqp_connection_state_t conn, int heartbeat_s, sl_error *err)
{
    const sl_amqp_target *t = &a->target;
    char cname[200];
    snprintf(cname, sizeof cname, "sluice %s", a->name);
    amqp_table_entry_t prop = {
        .key = amqp_cstring_bytes("connection_name"),
        .value = {.kind = AMQP_FIELD_KIND_UTF8, .value.bytes = amqp_cstring_bytes(cname)}};
    amqp_table_t props = {.num_entries = 1, .entries = &prop};
    amqp_rpc_reply_t r =
        amqp_login_with_properties(conn, t->vhost, 0, SL_AMQP_FRAME_MAX, heartbeat_s, &props,
                                   AMQP_SASL_METHOD_PLAIN, t->user, t->password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        char why[300];
        sl_error_set(err, SL_EIO, "login to %s as %s: %s", t->display, t->user,
                     sl_amqp_reply_text(r, why, sizeof why));
        return -1;
    }
    return 0;
}

amqp_connection_state_t sl_amqp_connect(const sl_amqp *a, int heartbeat_s, sl_error *err)
{
    amqp_connection_state_t conn = amqp_new_connection();
    if (!conn) {
        sl_error_set(err, SL_ENOMEM, "amqp %s: out of memory", a->name);
        return NULL;
    }
    struct timeval tv = {.tv_sec = a->timeout_ms / 1000, .tv_usec = (a->timeout_ms % 1000) * 1000};
    if (open_socket(a, conn, &tv, err) < 0 || login(a, conn, heartbeat_s, err) < 0) {
        amqp_destroy_connection(conn);
        return NULL;
    }
    if (!amqp_channel_open(conn, SL_AMQP_CHANNEL)) {
        char why[300];
        sl_error_set(err, SL_EIO, "open a channel on %s: %s", a->target.display,
                     sl_amqp_reply_text(amqp_get_rpc_reply(conn), why, sizeof why));
        amqp_destroy_connection(conn);
        return NULL;
    }
    return conn;
}

void sl_amqp_disconnect(amqp_connection_state_t conn, bool graceful)
{
    if (!conn)
        return;
    if (graceful)
        amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
}

/* ---- the connector table ---- */

static void amqp_destroy(sl_connector *c);

static int amqp_init(sl_connector *c, sl_error *err)
{
    sl_amqp *a = calloc(1, sizeof *a);
    if (!a)
        return sl_error_set(err, SL_ENOMEM, "amqp connector: out of memory");
    if (pthread_mutex_init(&a->pool_mu, NULL) != 0) {
        free(a);
        return sl_error_set(err, SL_ENOMEM, "amqp connector: cannot create a mutex");
    }
    c->state = a;
    a->c = c;
    a->name = c->conf->name;
    const sl_amqp_conf *ac = c->conf->priv;
    a->timeout_ms = ac && ac->timeout_ms > 0 ? (int)ac->timeout_ms : 5000;
    if (parse_target(a, err) < 0 ||
        sl_amqp_compile_keys(a, c->env ? c->env->conf : NULL, err) < 0) {
        amqp_destroy(c);
        return -1;
    }
    char esc[200], labels[240];
    sl_metrics_escape(a->name, esc, sizeof esc);
    snprintf(labels, sizeof labels, "connector=\"%s\"", esc);
    sl_metrics *m = sl_connector_metrics(c);
    if (m) {
        a->published =
            sl_metrics_counter(m, "sluice_amqp_published_total",
                               "Messages published to AMQP and confirmed by the broker.", labels);
        a->confirm_failures = sl_metrics_counter(
            m, "sluice_amqp_confirm_failures_total",
            "AMQP publishes not confirmed: nacked, returned unroutable, timed out or lost.",
            labels);
        a->consumed =
            sl_metrics_counter(m, "sluice_amqp_consumed_total",
                               "AMQP deliveries appended to the log and acknowledged.", labels);
        a->reconnects = sl_metrics_counter(m, "sluice_amqp_reconnects_total",
                                           "AMQP connections re-established after a loss.", labels);
    }
    return 0;
}

static int amqp_attach_input(sl_connector *c, sl_route *route, sl_error *err)
{
    sl_amqp *a = c->state;
    sl_amqp_input **grown = realloc(a->inputs, (a->n_inputs + 1) * sizeof *grown);
    if (!grown)
        return sl_error_set(err, SL_ENOMEM, "amqp connector %s: out of memory", a->name);
    a->inputs = grown;
    sl_amqp_input *in = sl_amqp_input_new(a, route, err);
    if (!in)
        return -1;
    a->inputs[a->n_inputs++] = in;
    return 0;
}

static int amqp_start(sl_connector *c, sl_error *err)
{
    sl_amqp *a = c->state;
    for (size_t i = 0; i < a->n_inputs; i++) {
        if (sl_amqp_input_start(a->inputs[i], err) < 0)
            return -1;
    }
    return 0;
}

static void amqp_stop(sl_connector *c)
{
    sl_amqp *a = c->state;
    if (!a)
        return;
    for (size_t i = 0; i < a->n_inputs; i++)
        sl_amqp_input_stop(a->inputs[i]);
}

static void amqp_destroy(sl_connector *c)
{
    sl_amqp *a = c->state;
    if (!a)
        return;
    for (size_t i = 0; i < a->n_inputs; i++) {
        sl_amqp_input_stop(a->inputs[i]);
        sl_amqp_input_free(a->inputs[i]);
    }
    free(a->inputs);
    sl_amqp_pool_free(a);
    pthread_mutex_destroy(&a->pool_mu);
    target_free(&a->target);
    sl_expr_set_free(a->keys);
    free(a);
    c->state = NULL;
}

/* /ready: every input connected and consuming. */
static bool amqp_ready(sl_connector *c)
{
    sl_amqp *a = c->state;
    for (size_t i = 0; a && i < a->n_inputs; i++) {
        if (!sl_amqp_input_ready(a->inputs[i]))
            return false;
    }
    return true;
}

const sl_connector_type sl_amqp_connector = {
    .name = "amqp",
    .can_input = true,
    .can_output = true,
    .has_breaker = true,
    .conf_keys = sl_amqp_conf_keys,
    .input_keys = sl_amqp_input_keys,
    .output_keys = sl_amqp_output_keys,
    .summary = "AMQP 0-9-1 (RabbitMQ): consume a queue, publish to an exchange with confirms",
    .conf_doc = sl_amqp_conf_doc,
    .input_doc = sl_amqp_input_doc,
    .output_doc = sl_amqp_output_doc,
    .parse_conf = sl_amqp_parse_conf,
    .parse_input = sl_amqp_parse_input,
    .parse_output = sl_amqp_parse_output,
    .init = amqp_init,
    .attach_input = amqp_attach_input,
    .start = amqp_start,
    .send = sl_amqp_send,
    .stop = amqp_stop,
    .destroy = amqp_destroy,
    .feeds_external_log = true, /* acks through sl_route_on_durable */
    .source_keeps_messages = true,
    .ready = amqp_ready,
};
