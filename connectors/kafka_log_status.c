/* Message status shared by every gateway of a Kafka-backed route
 * (core/log_backend.h, status_*): a compacted topic (`log.status_topic`,
 * default TOPIC.status) to which a gateway's worker produces one record
 * per message it finished (key = message id, value = the status JSON of
 * GET /v1/messages/ID: state, partition, offset, attempts, last_error), and
 * which every gateway reads in full with its own consumer (no group, every
 * partition from the beginning) into its status table (core/status.h).
 * Best effort and eventual: records are produced without waiting, and one
 * that is lost (cluster down past its timeout) leaves the other gateways
 * at what they knew. The topic is created when missing (compacted, kept
 * KS_RETENTION_MS) without holding the start up: until it exists, nothing
 * is produced or read. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "kafka_log.h"
#include "logging.h"
#include "thread_name.h"

#define KS_RETENTION "86400000" /* a day: what GET /v1/messages/ID can be asked for */
#define KS_LOOK_MS 1000         /* how often a missing topic is looked for */
#define KS_TIMEOUT_MS "30000"   /* a status record not sent by then is dropped */

struct kl_status {
    sl_log_backend *b;
    sl_status *table;
    char *topic;
    rd_kafka_t *cons;
    rd_kafka_topic_t *rkt; /* the producer's handle, with its own timeout */
    rd_kafka_queue_t *create_q;
    sl_kafka_client cl;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_bool ready; /* the topic exists and is read: records are produced */
};

/* ---- reading ---- */

static sl_msg_state ks_state(const char *name)
{
    static const sl_msg_state all[] = {SL_MSG_ACCEPTED, SL_MSG_DELIVERED, SL_MSG_RETRYING,
                                       SL_MSG_DEAD_LETTERED, SL_MSG_DROPPED};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(sl_msg_state_name(all[i]), name) == 0)
            return all[i];
    return SL_MSG_ACCEPTED;
}

/* Puts one record of the topic into the table. */
static void ks_apply(kl_status *s, const rd_kafka_message_t *m)
{
    if (m->err || !m->key || m->key_len == 0 || m->key_len > SL_ID_LEN || !m->payload)
        return;
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return;
    }
    sl_msg_status st = {0};
    memcpy(st.id, m->key, m->key_len);
    snprintf(st.route, sizeof st.route, "%s", s->b->route->name);
    const char *state = json_string_value(json_object_get(j, "state"));
    const char *error = json_string_value(json_object_get(j, "last_error"));
    st.state = ks_state(state ? state : "");
    st.partition = (int)json_integer_value(json_object_get(j, "partition"));
    st.offset = json_is_integer(json_object_get(j, "offset"))
                    ? json_integer_value(json_object_get(j, "offset"))
                    : -1;
    st.attempts = (int)json_integer_value(json_object_get(j, "attempts"));
    snprintf(st.last_error, sizeof st.last_error, "%s", error ? error : "");
    json_decref(j);
    if (st.state != SL_MSG_ACCEPTED)
        sl_status_put(s->table, &st);
}

/* Logs the answer to the topic's creation, when it came. */
static void ks_created(kl_status *s)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(s->create_q, 0);
    if (!ev)
        return;
    const char *why = sl_kafka_log_topic_created(ev);
    if (why)
        sl_warn(SL_KAFKA_COMPONENT,
                "route %s: could not create the status topic %s: %s; create it, compacted "
                "(message status stays on each gateway until then)",
                s->b->route->name, s->topic, why);
    rd_kafka_event_destroy(ev);
}

/* Waits until the topic exists (asking once for its creation), then
 * consumes it. Returns 0, or -1 when stopped or the consumer failed. */
static int ks_find(kl_status *s)
{
    static const char *const configs[] = {"cleanup.policy", "compact,delete", "retention.ms",
                                          KS_RETENTION, NULL};
    bool asked = false;
    while (!atomic_load(&s->stop)) {
        sl_error err;
        int n = sl_kafka_log_topic_partitions(s->b, s->topic, &err);
        if (n > 0) {
            if ((s->cons = sl_kafka_log_read_all(s->b, &s->cl, s->topic, n, &err)) == NULL) {
                sl_warn(SL_KAFKA_COMPONENT, "route %s: status topic %s: %s", s->b->route->name,
                        s->topic, err.msg);
                return -1;
            }
            sl_info(SL_KAFKA_COMPONENT, "route %s: message status shared through %s",
                    s->b->route->name, s->topic);
            return 0;
        }
        if (n == 0 && !asked && s->create_q) {
            asked = sl_kafka_log_topic_create_async(s->b, s->topic, s->b->n_parts, configs,
                                                    s->create_q) == 0;
            if (asked)
                sl_info(SL_KAFKA_COMPONENT, "route %s: the status topic %s is missing; creating it",
                        s->b->route->name, s->topic);
        }
        if (s->create_q)
            ks_created(s);
        for (int i = 0; i < KS_LOOK_MS / 100 && !atomic_load(&s->stop); i++)
            usleep(100 * 1000);
    }
    return -1;
}

static void *ks_main(void *arg)
{
    kl_status *s = arg;
    if (ks_find(s) < 0)
        return NULL;
    atomic_store(&s->ready, true);
    while (!atomic_load(&s->stop)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(s->cons, 100);
        if (!m)
            continue;
        if (m->err && m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            sl_warn(SL_KAFKA_COMPONENT, "%s: %s", s->cl.role, rd_kafka_message_errstr(m));
        else if (!m->err)
            ks_apply(s, m);
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

/* ---- the backend's calls ---- */

/* The producer's handle on the topic, with a delivery timeout of its own
 * (the log's appends may have none). NULL when it cannot be made. */
static rd_kafka_topic_t *ks_topic(kl_status *s)
{
    rd_kafka_topic_conf_t *tc = rd_kafka_topic_conf_new();
    char errstr[256];
    if (tc && rd_kafka_topic_conf_set(tc, "message.timeout.ms", KS_TIMEOUT_MS, errstr,
                                      sizeof errstr) != RD_KAFKA_CONF_OK) {
        rd_kafka_topic_conf_destroy(tc);
        tc = NULL;
    }
    rd_kafka_topic_t *t = rd_kafka_topic_new(s->b->prod, s->topic, tc);
    if (!t && tc)
        rd_kafka_topic_conf_destroy(tc);
    return t;
}

int sl_kafka_log_status_open(sl_log_backend *b, sl_status *table, sl_error *err)
{
    if (b->status || !table)
        return 0;
    kl_status *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    const sl_kafka_log_conf *lc = b->route->log.priv;
    s->b = b;
    s->table = table;
    s->topic = strdup(lc->status_topic);
    s->cl.k = b->k;
    snprintf(s->cl.role, sizeof s->cl.role, "message status of route %s", b->route->name);
    b->status = s;
    if (!s->topic)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->rkt = ks_topic(s);
    s->create_q = rd_kafka_queue_new(b->prod);
    if (!s->rkt)
        return sl_error_set(err, SL_EIO, "route %s: status topic %s: %s", b->route->name, s->topic,
                            rd_kafka_err2str(rd_kafka_last_error()));
    if (pthread_create(&s->thread, NULL, ks_main, s) != 0)
        return sl_error_set(err, SL_EIO, "%s: cannot start its thread", s->cl.role);
    sl_thread_name(s->thread, "klog-status");
    s->running = true;
    return 0;
}

void sl_kafka_log_status_finished(sl_log_backend *b, const sl_msg_status *st)
{
    kl_status *s = b->status;
    if (!s || !atomic_load(&s->ready) || atomic_load(&b->stopped))
        return;
    json_t *j =
        json_pack("{s:s, s:i, s:I, s:i}", "state", sl_msg_state_name(st->state), "partition",
                  st->partition, "offset", (json_int_t)st->offset, "attempts", st->attempts);
    if (j && st->last_error[0])
        json_object_set_new(j, "last_error", json_string(st->last_error));
    char *val = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!val)
        return;
    rd_kafka_resp_err_t e = rd_kafka_producev(
        b->prod, RD_KAFKA_V_RKT(s->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(st->id, strlen(st->id)), RD_KAFKA_V_VALUE(val, strlen(val)), RD_KAFKA_V_END);
    if (e)
        sl_debug(SL_KAFKA_COMPONENT, "route %s: status of %s not shared: %s", b->route->name,
                 st->id, rd_kafka_err2str(e));
    free(val);
}

void sl_kafka_log_status_stop(sl_log_backend *b)
{
    kl_status *s = b->status;
    if (!s)
        return;
    atomic_store(&s->stop, true);
    atomic_store(&s->ready, false);
    if (s->running)
        pthread_join(s->thread, NULL);
    s->running = false;
    sl_kafka_log_reader_close(&s->cons);
    if (s->create_q) {
        rd_kafka_queue_destroy(s->create_q);
        s->create_q = NULL;
    }
    if (s->rkt) { /* before the producer goes (kl_stop) */
        rd_kafka_topic_destroy(s->rkt);
        s->rkt = NULL;
    }
}

void sl_kafka_log_status_free(sl_log_backend *b)
{
    kl_status *s = b->status;
    if (!s)
        return;
    sl_kafka_log_status_stop(b);
    free(s->topic);
    free(s);
    b->status = NULL;
}
