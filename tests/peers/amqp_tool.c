/* A small AMQP 0-9-1 client (rabbitmq-c) for Sluice's integration tests:
 * declares exchanges and queues, publishes lines of stdin as messages with
 * publisher confirms, and consumes a queue printing one JSON line per message
 * (body, properties, headers), acknowledging what it printed.
 *
 *   amqp_tool URL declare-exchange NAME [TYPE]
 *   amqp_tool URL declare-queue NAME [EXCHANGE KEY]
 *   amqp_tool URL delete-queue NAME
 *   amqp_tool URL publish EXCHANGE KEY [-t TYPE] [-H name=value]... [-i ID_PREFIX] [-u]
 *                                      [-p PROP=VALUE]... [-m] [-s]  (bodies: stdin lines;
 *                                      -s: each line is MESSAGE_ID<TAB>BODY)
 *   amqp_tool URL consume QUEUE [-n COUNT] [-w IDLE_MS] [-T TOTAL_MS]
 *
 * amqps:// URLs verify the broker against $AMQP_CACERT. Exit 0 on success. */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_include) && __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#include <rabbitmq-c/ssl_socket.h>
#include <rabbitmq-c/tcp_socket.h>
#else
#include <amqp.h>
#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#endif

#include "message.h"

#define CH 1

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("amqp_tool: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check_reply(amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL)
        return;
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        die("%s: %s", what, amqp_error_string2(r.library_error));
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
        (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD || r.reply.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        const amqp_channel_close_t *m = r.reply.decoded; /* same layout for both */
        die("%s: %u %.*s", what, m->reply_code, (int)m->reply_text.len,
            (const char *)m->reply_text.bytes);
    }
    die("%s: failed (%d)", what, (int)r.reply_type);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static amqp_connection_state_t open_conn(const char *url_in)
{
    char *url = strdup(url_in);
    struct amqp_connection_info ci;
    if (!url || amqp_parse_url(url, &ci) != AMQP_STATUS_OK)
        die("bad URL %s", url_in);
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = ci.ssl ? amqp_ssl_socket_new(c) : amqp_tcp_socket_new(c);
    if (!s)
        die("cannot create a socket");
    if (ci.ssl) {
        const char *ca = getenv("AMQP_CACERT");
        if (ca && amqp_ssl_socket_set_cacert(s, ca) != AMQP_STATUS_OK)
            die("cannot load %s", ca);
        amqp_ssl_socket_set_verify_peer(s, ca != NULL);
        amqp_ssl_socket_set_verify_hostname(s, ca != NULL);
    }
    struct timeval tv = {10, 0};
    int rc = amqp_socket_open_noblock(s, ci.host, ci.port, &tv);
    if (rc != AMQP_STATUS_OK)
        die("connect %s:%d: %s", ci.host, ci.port, amqp_error_string2(rc));
    amqp_rpc_reply_t r = amqp_login(c, ci.vhost && *ci.vhost ? ci.vhost : "/", 0, 131072, 30,
                                    AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        die("login failed");
    amqp_channel_open(c, CH);
    check_reply(c, "channel.open");
    free(url);
    return c;
}

static void close_conn(amqp_connection_state_t c)
{
    amqp_channel_close(c, CH, AMQP_REPLY_SUCCESS);
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* ---- publish ---- */

/* -H NAME=VALUE: a text header; NAME=TYPE:VALUE with TYPE b (boolean, 0 or
 * 1), i (32-bit integer), l (64-bit), d (double) or D (decimal written
 * DECIMALS:VALUE, e.g. D:2:12340 for 123.40) sends a typed table value. */
static void parse_header(char *arg, amqp_table_entry_t *h)
{
    char *eq = strchr(arg, '=');
    if (!eq)
        die("-H name=value");
    *eq = '\0';
    h->key = amqp_cstring_bytes(arg);
    const char *v = eq + 1;
    amqp_field_value_t *f = &h->value;
    if (strlen(v) < 2 || v[1] != ':' || !strchr("bildD", v[0])) {
        f->kind = AMQP_FIELD_KIND_UTF8;
        f->value.bytes = amqp_cstring_bytes(v);
    } else if (v[0] == 'b') {
        f->kind = AMQP_FIELD_KIND_BOOLEAN;
        f->value.boolean = atoi(v + 2) != 0;
    } else if (v[0] == 'i') {
        f->kind = AMQP_FIELD_KIND_I32;
        f->value.i32 = (int32_t)strtol(v + 2, NULL, 10);
    } else if (v[0] == 'l') {
        f->kind = AMQP_FIELD_KIND_I64;
        f->value.i64 = strtoll(v + 2, NULL, 10);
    } else if (v[0] == 'd') {
        f->kind = AMQP_FIELD_KIND_F64;
        f->value.f64 = strtod(v + 2, NULL);
    } else {
        char *end;
        f->kind = AMQP_FIELD_KIND_DECIMAL;
        f->value.decimal.decimals = (uint8_t)strtoul(v + 2, &end, 10);
        f->value.decimal.value = (uint32_t)strtoul(end + (*end == ':'), NULL, 10);
    }
}

typedef struct pub_opts {
    const char *content_type;
    const char *id_prefix;
    bool uuid_ids;
    bool mandatory;
    bool id_in_line; /* each line is MESSAGE_ID<TAB>BODY */
    amqp_table_entry_t hdrs[32];
    int n_hdrs;
    const char *correlation_id, *reply_to, *type;
} pub_opts;

/* Waits until every tag up to last is confirmed. Returns the number nacked or
 * returned. */
static long wait_confirms(amqp_connection_state_t c, uint64_t last, uint64_t *confirmed)
{
    long bad = 0;
    while (*confirmed < last) {
        amqp_frame_t f;
        struct timeval tv = {30, 0};
        int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
        if (rc != AMQP_STATUS_OK)
            die("waiting for confirms: %s", amqp_error_string2(rc));
        if (f.frame_type != AMQP_FRAME_METHOD)
            continue;
        if (f.payload.method.id == AMQP_BASIC_ACK_METHOD) {
            const amqp_basic_ack_t *a = f.payload.method.decoded;
            *confirmed = a->delivery_tag > *confirmed ? a->delivery_tag : *confirmed;
        } else if (f.payload.method.id == AMQP_BASIC_NACK_METHOD) {
            const amqp_basic_nack_t *a = f.payload.method.decoded;
            *confirmed = a->delivery_tag > *confirmed ? a->delivery_tag : *confirmed;
            bad++;
        } else if (f.payload.method.id == AMQP_BASIC_RETURN_METHOD) {
            amqp_message_t m;
            amqp_read_message(c, f.channel, &m, 0);
            amqp_destroy_message(&m);
            bad++;
        } else if (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD ||
                   f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD) {
            die("channel closed by the broker while publishing");
        }
    }
    return bad;
}

static int cmd_publish(amqp_connection_state_t c, const char *exchange, const char *key,
                       const pub_opts *o)
{
    amqp_confirm_select(c, CH);
    check_reply(c, "confirm.select");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t tag = 0, confirmed = 0;
    long bad = 0;
    while ((len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        amqp_basic_properties_t p;
        memset(&p, 0, sizeof p);
        p._flags = AMQP_BASIC_DELIVERY_MODE_FLAG;
        p.delivery_mode = AMQP_DELIVERY_PERSISTENT;
        char id[128];
        char *text = line;
        if (o->id_in_line) {
            char *tab = strchr(line, '\t');
            if (!tab)
                die("-s: a line without a tab");
            *tab = '\0';
            snprintf(id, sizeof id, "%s", line);
            text = tab + 1;
            len -= (ssize_t)(text - line);
        } else if (o->uuid_ids) {
            sl_uuid7(id);
        } else if (o->id_prefix) {
            snprintf(id, sizeof id, "%s%" PRIu64, o->id_prefix, tag + 1);
        }
        if (o->uuid_ids || o->id_prefix || o->id_in_line) {
            p._flags |= AMQP_BASIC_MESSAGE_ID_FLAG;
            p.message_id = amqp_cstring_bytes(id);
        }
        if (o->content_type) {
            p._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
            p.content_type = amqp_cstring_bytes(o->content_type);
        }
        if (o->correlation_id) {
            p._flags |= AMQP_BASIC_CORRELATION_ID_FLAG;
            p.correlation_id = amqp_cstring_bytes(o->correlation_id);
        }
        if (o->reply_to) {
            p._flags |= AMQP_BASIC_REPLY_TO_FLAG;
            p.reply_to = amqp_cstring_bytes(o->reply_to);
        }
        if (o->type) {
            p._flags |= AMQP_BASIC_TYPE_FLAG;
            p.type = amqp_cstring_bytes(o->type);
        }
        if (o->n_hdrs) {
            p._flags |= AMQP_BASIC_HEADERS_FLAG;
            p.headers.num_entries = o->n_hdrs;
            p.headers.entries = (amqp_table_entry_t *)o->hdrs;
        }
        amqp_bytes_t body = {.len = (size_t)len, .bytes = text};
        int rc = amqp_basic_publish(c, CH, amqp_cstring_bytes(exchange), amqp_cstring_bytes(key),
                                    o->mandatory, 0, &p, body);
        if (rc != AMQP_STATUS_OK)
            die("publish: %s", amqp_error_string2(rc));
        tag++;
        if (tag - confirmed >= 500)
            bad += wait_confirms(c, tag - 250, &confirmed);
    }
    bad += wait_confirms(c, tag, &confirmed);
    free(line);
    printf("%" PRIu64 " published, %ld nacked or returned\n", tag, bad);
    return bad ? 1 : 0;
}

/* ---- consume ---- */

static json_t *bytes_json(amqp_bytes_t b)
{
    json_t *s = json_stringn(b.len ? b.bytes : "", b.len);
    return s ? s : json_string("<not UTF-8>");
}

static json_t *field_json(const amqp_field_value_t *v)
{
    switch (v->kind) {
        case AMQP_FIELD_KIND_UTF8:
        case AMQP_FIELD_KIND_BYTES:
            return bytes_json(v->value.bytes);
        case AMQP_FIELD_KIND_BOOLEAN:
            return json_boolean(v->value.boolean);
        case AMQP_FIELD_KIND_I32:
            return json_integer(v->value.i32);
        case AMQP_FIELD_KIND_I64:
            return json_integer(v->value.i64);
        case AMQP_FIELD_KIND_F64:
            return json_real(v->value.f64);
        default:
            return json_string("<other>");
    }
}

static void print_message(const amqp_envelope_t *e)
{
    json_t *o = json_object();
    const amqp_basic_properties_t *p = &e->message.properties;
    json_object_set_new(o, "body", bytes_json(e->message.body));
    json_object_set_new(o, "exchange", bytes_json(e->exchange));
    json_object_set_new(o, "routing_key", bytes_json(e->routing_key));
    json_object_set_new(o, "redelivered", json_boolean(e->redelivered));
    if (p->_flags & AMQP_BASIC_MESSAGE_ID_FLAG)
        json_object_set_new(o, "message_id", bytes_json(p->message_id));
    if (p->_flags & AMQP_BASIC_CONTENT_TYPE_FLAG)
        json_object_set_new(o, "content_type", bytes_json(p->content_type));
    if (p->_flags & AMQP_BASIC_CORRELATION_ID_FLAG)
        json_object_set_new(o, "correlation_id", bytes_json(p->correlation_id));
    if (p->_flags & AMQP_BASIC_REPLY_TO_FLAG)
        json_object_set_new(o, "reply_to", bytes_json(p->reply_to));
    if (p->_flags & AMQP_BASIC_TYPE_FLAG)
        json_object_set_new(o, "type", bytes_json(p->type));
    if (p->_flags & AMQP_BASIC_DELIVERY_MODE_FLAG)
        json_object_set_new(o, "delivery_mode", json_integer(p->delivery_mode));
    json_t *h = json_object();
    if (p->_flags & AMQP_BASIC_HEADERS_FLAG) {
        for (int i = 0; i < p->headers.num_entries; i++) {
            const amqp_table_entry_t *te = &p->headers.entries[i];
            char k[256];
            snprintf(k, sizeof k, "%.*s", (int)te->key.len, (const char *)te->key.bytes);
            json_object_set_new(h, k, field_json(&te->value));
        }
    }
    json_object_set_new(o, "headers", h);
    char *s = json_dumps(o, JSON_COMPACT);
    puts(s);
    free(s);
    json_decref(o);
}

static int cmd_consume(amqp_connection_state_t c, const char *queue, long count, int idle_ms,
                       int total_ms)
{
    amqp_basic_qos(c, CH, 0, 1000, 0);
    check_reply(c, "basic.qos");
    amqp_basic_consume(c, CH, amqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0,
                       amqp_empty_table);
    check_reply(c, "basic.consume");
    long got = 0;
    uint64_t last_tag = 0, acked = 0;
    int64_t start = now_ms(), last = start;
    while (count < 0 || got < count) {
        int64_t t = now_ms();
        if (t - last > idle_ms || (total_ms > 0 && t - start > total_ms))
            break;
        amqp_maybe_release_buffers(c);
        amqp_envelope_t e;
        struct timeval tv = {0, 100000};
        amqp_rpc_reply_t r = amqp_consume_message(c, &e, &tv, 0);
        if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
            r.library_error == AMQP_STATUS_TIMEOUT) {
            if (last_tag > acked) {
                amqp_basic_ack(c, CH, last_tag, 1);
                acked = last_tag;
                fflush(stdout);
            }
            continue;
        }
        if (r.reply_type != AMQP_RESPONSE_NORMAL) {
            if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION &&
                r.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
                amqp_frame_t f;
                if (amqp_simple_wait_frame(c, &f) != AMQP_STATUS_OK)
                    die("consume: connection lost");
                continue;
            }
            die("consume failed");
        }
        print_message(&e);
        got++;
        last = now_ms();
        last_tag = e.delivery_tag;
        amqp_destroy_envelope(&e);
        if (last_tag - acked >= 200) {
            amqp_basic_ack(c, CH, last_tag, 1);
            acked = last_tag;
        }
    }
    if (last_tag > acked)
        amqp_basic_ack(c, CH, last_tag, 1);
    fflush(stdout);
    fprintf(stderr, "amqp_tool: consumed %ld\n", got);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        die("usage: amqp_tool URL declare-exchange|declare-queue|delete-queue|publish|consume ...");
    const char *url = argv[1], *cmd = argv[2];
    amqp_connection_state_t c = open_conn(url);
    int rc = 0;
    if (strcmp(cmd, "declare-exchange") == 0) {
        const char *type = argc > 4 ? argv[4] : "topic";
        amqp_exchange_declare(c, CH, amqp_cstring_bytes(argv[3]), amqp_cstring_bytes(type), 0, 1, 0,
                              0, amqp_empty_table);
        check_reply(c, "exchange.declare");
    } else if (strcmp(cmd, "declare-queue") == 0) {
        amqp_queue_declare(c, CH, amqp_cstring_bytes(argv[3]), 0, 1, 0, 0, amqp_empty_table);
        check_reply(c, "queue.declare");
        if (argc > 5) {
            amqp_queue_bind(c, CH, amqp_cstring_bytes(argv[3]), amqp_cstring_bytes(argv[4]),
                            amqp_cstring_bytes(argv[5]), amqp_empty_table);
            check_reply(c, "queue.bind");
        }
    } else if (strcmp(cmd, "delete-queue") == 0) {
        amqp_queue_delete(c, CH, amqp_cstring_bytes(argv[3]), 0, 0);
        check_reply(c, "queue.delete");
    } else if (strcmp(cmd, "publish") == 0) {
        if (argc < 5)
            die("publish EXCHANGE KEY [options]");
        pub_opts o;
        memset(&o, 0, sizeof o);
        int opt;
        optind = 5;
        while ((opt = getopt(argc, argv, "t:H:i:up:ms")) != -1) {
            switch (opt) {
                case 't':
                    o.content_type = optarg;
                    break;
                case 'H':
                    if (o.n_hdrs == 32)
                        die("at most 32 -H");
                    parse_header(optarg, &o.hdrs[o.n_hdrs++]);
                    break;
                case 'i':
                    o.id_prefix = optarg;
                    break;
                case 'u':
                    o.uuid_ids = true;
                    break;
                case 'p': {
                    char *eq = strchr(optarg, '=');
                    if (!eq)
                        die("-p PROP=VALUE");
                    *eq = '\0';
                    if (!strcmp(optarg, "correlation_id"))
                        o.correlation_id = eq + 1;
                    else if (!strcmp(optarg, "reply_to"))
                        o.reply_to = eq + 1;
                    else if (!strcmp(optarg, "type"))
                        o.type = eq + 1;
                    else
                        die("unknown property %s", optarg);
                    break;
                }
                case 'm':
                    o.mandatory = true;
                    break;
                case 's':
                    o.id_in_line = true;
                    break;
                default:
                    die("bad publish option");
            }
        }
        rc = cmd_publish(c, argv[3], argv[4], &o);
    } else if (strcmp(cmd, "consume") == 0) {
        long count = -1;
        int idle = 3000, total = 0, opt;
        optind = 4;
        while ((opt = getopt(argc, argv, "n:w:T:")) != -1) {
            if (opt == 'n')
                count = atol(optarg);
            else if (opt == 'w')
                idle = atoi(optarg);
            else if (opt == 'T')
                total = atoi(optarg);
            else
                die("bad consume option");
        }
        rc = cmd_consume(c, argv[3], count, idle, total);
    } else {
        die("unknown command %s", cmd);
    }
    close_conn(c);
    return rc;
}
