/* Unit tests for the route engine (core/route.c) with a real log and a tiny
 * in-test connector table as output: order per key, retry and backoff,
 * dead letters, commit only once every output acknowledged, fan-out with
 * one failing output, steps that ask for a retry, and topic outputs over
 * more than 64 partitions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "connector.h"
#include "metrics.h"
#include "route.h"
#include "status.h"
#include "step.h"

#define MAX_SEEN 1024
#define MAX_ATTEMPTS_KEPT 8

/* ---- a scripted output connector ---------------------------------------------- */

typedef struct seen_msg {
    char key[32];
    char body[128];
    int attempts;
    double at[MAX_ATTEMPTS_KEPT]; /* monotonic seconds of the attempts */
    bool delivered;
} seen_msg;

/* What one output does; all under the fixture's lock. */
typedef struct mock_out {
    int fail_first;   /* each message fails transiently this many times first */
    sl_result always; /* SL_OK: behave; SL_RETRY or SL_FAIL: every attempt */
    bool gate_closed; /* while true: transient failure */
    seen_msg seen[MAX_SEEN];
    size_t n_seen;             /* distinct messages, in the order first seen */
    char order[MAX_SEEN][128]; /* bodies delivered, in delivery order */
    size_t n_delivered;
} mock_out;

static pthread_mutex_t mock_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mock_cond = PTHREAD_COND_INITIALIZER;

static seen_msg *seen_of(mock_out *o, const sl_msg *m)
{
    for (size_t i = 0; i < o->n_seen; i++) {
        if (strcmp(o->seen[i].body, m->body) == 0)
            return &o->seen[i];
    }
    assert_true(o->n_seen < MAX_SEEN);
    seen_msg *s = &o->seen[o->n_seen++];
    memset(s, 0, sizeof *s);
    snprintf(s->body, sizeof s->body, "%.*s", (int)m->body_len, m->body);
    if (m->key)
        snprintf(s->key, sizeof s->key, "%.*s", (int)m->key_len, m->key);
    return s;
}

static void mock_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                      sl_send_result *results)
{
    mock_out *o = c->state;
    pthread_mutex_lock(&mock_mu);
    for (size_t i = 0; i < n; i++) {
        seen_msg *s = seen_of(o, msgs[i]);
        if (s->attempts < MAX_ATTEMPTS_KEPT)
            s->at[s->attempts] = sl_mono_seconds();
        s->attempts++;
        if (o->always != SL_OK)
            sl_send_result_set(&results[i], o->always, 503, "scripted failure");
        else if (o->gate_closed || s->attempts <= o->fail_first)
            sl_send_result_set(&results[i], SL_RETRY, 503, "HTTP 503 from mock");
        else {
            sl_send_result_set(&results[i], SL_OK, 200, NULL);
            s->delivered = true;
            snprintf(o->order[o->n_delivered++], sizeof o->order[0], "%s", s->body);
        }
    }
    pthread_cond_broadcast(&mock_cond);
    pthread_mutex_unlock(&mock_mu);
}

static int mock_init(sl_connector *c, sl_error *err)
{
    return 0;
}

static void mock_destroy(sl_connector *c)
{
}

static const sl_connector_type mock_type = {
    .name = "mock",
    .can_output = true,
    .init = mock_init,
    .send = mock_send,
    .destroy = mock_destroy,
};

/* ---- step services: a partner that fails the first calls -------------------------- */

typedef struct partner {
    int calls;
    int fail_first; /* < 0: always */
} partner;

static int partner_call(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                        sl_call_resp *resp)
{
    partner *p = svc->arg;
    pthread_mutex_lock(&mock_mu);
    int n = ++p->calls;
    pthread_cond_broadcast(&mock_cond);
    pthread_mutex_unlock(&mock_mu);
    if (p->fail_first < 0 || n <= p->fail_first)
        return sl_call_resp_fail(resp, SL_RETRY, "HTTP 503 from %s", connector);
    memset(resp, 0, sizeof *resp);
    resp->result = SL_OK;
    resp->status = 200;
    resp->body = strdup("enriched");
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    return SL_OK;
}

/* ---- the fixture --------------------------------------------------------------- */

typedef struct fx {
    char dir[64];
    sl_log *log;
    sl_metrics *metrics;
    sl_status *status;
    sl_config *cfg;
    mock_out out[2];
    sl_connector conn[2];
    partner partner;
    sl_step_services services;
    sl_route *r;
} fx;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl_route_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char data[128];
    snprintf(data, sizeof data, "%s/data", f->dir);
    sl_log_options o;
    sl_log_options_default(&o);
    sl_error err;
    f->log = sl_log_open(data, &o, &err);
    if (!f->log)
        fail_msg("log: %s", err.msg);
    f->metrics = sl_metrics_new();
    f->status = sl_status_new(4096);
    for (int i = 0; i < 2; i++) {
        f->conn[i].type = &mock_type;
        f->conn[i].state = &f->out[i];
        f->out[i].always = SL_OK;
    }
    f->services.call = partner_call;
    f->services.arg = &f->partner;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sl_route_free(f->r);
    sl_log_close(f->log);
    sl_status_free(f->status);
    sl_metrics_free(f->metrics);
    sl_config_free(f->cfg);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Loads a config whose one route r is given by route_yaml (indented under
 * `r:`), with connectors a and b, and builds the route on the mocks. */
static void make_route(fx *f, const char *route_yaml)
{
    char path[128], text[4096];
    snprintf(path, sizeof path, "%s/sluice.yaml", f->dir);
    snprintf(text, sizeof text,
             "connectors:\n"
             "  a: { type: stdout }\n"
             "  b: { type: stdout }\n"
             "routes:\n"
             "  r:\n"
             "    from: { topic: t_in }\n"
             "%s",
             route_yaml);
    write_file(path, text);
    sl_config_errors errs = {0};
    f->cfg = sl_config_load(path, &errs);
    if (!f->cfg)
        fail_msg("config: %s", errs.n ? errs.lines[0] : "?");
    sl_config_errors_free(&errs);
    const sl_route_conf *rc = &f->cfg->routes[0];
    sl_route_output_env outs[2] = {{0}};
    for (size_t i = 0; i < rc->n_to && i < 2; i++)
        outs[i].conn = rc->to[i].connector ? &f->conn[rc->to[i].connector[0] - 'a'] : NULL;
    sl_route_env env = {.log = f->log,
                        .metrics = f->metrics,
                        .status = f->status,
                        .services = &f->services,
                        .outs = outs};
    sl_error err;
    f->r = sl_route_new(&env, rc, &err);
    if (!f->r)
        fail_msg("route: %s", err.msg);
    assert_int_equal(sl_route_start(f->r, &err), 0);
}

/* Appends a message with body and key (may be NULL); returns its id in id. */
static void append(fx *f, const char *body, char id[SL_ID_LEN + 1])
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    sl_error err;
    if (sl_route_append(f->r, m, &err) < 0)
        fail_msg("append: %s", err.msg);
    if (id)
        memcpy(id, m->id, SL_ID_LEN + 1);
    sl_msg_free(m);
}

static int64_t committed_total(fx *f)
{
    int64_t sum = 0;
    for (int i = 0; i < sl_route_partition_count(f->r); i++) {
        sl_route_partition_info info;
        assert_int_equal(sl_route_get_partition_info(f->r, i, &info), 0);
        sum += info.committed;
    }
    return sum;
}

typedef bool (*pred_fn)(fx *f, long arg);

/* Waits (on the mock's condition, rechecking every 20 ms for what the
 * connector does not signal, such as a commit) until pred holds; fails the
 * test after 20 s. */
static void wait_for(fx *f, pred_fn pred, long arg, const char *what)
{
    double deadline = sl_mono_seconds() + 20.0;
    for (;;) {
        if (pred(f, arg))
            return;
        if (sl_mono_seconds() > deadline)
            fail_msg("timed out waiting for %s", what);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&mock_mu);
        pthread_cond_timedwait(&mock_cond, &mock_mu, &ts);
        pthread_mutex_unlock(&mock_mu);
    }
}

static bool committed_at_least(fx *f, long n)
{
    return committed_total(f) >= n;
}

static bool delivered_a_at_least(fx *f, long n)
{
    pthread_mutex_lock(&mock_mu);
    bool ok = (long)f->out[0].n_delivered >= n;
    pthread_mutex_unlock(&mock_mu);
    return ok;
}

static bool b_attempts_at_least(fx *f, long n)
{
    pthread_mutex_lock(&mock_mu);
    bool ok = f->out[1].n_seen > 0 && f->out[1].seen[0].attempts >= n;
    pthread_mutex_unlock(&mock_mu);
    return ok;
}

static uint64_t counter(fx *f, const char *name, const char *help, const char *labels)
{
    return sl_counter_get(sl_metrics_counter(f->metrics, name, help, labels));
}

static uint64_t retried(fx *f, const char *labels)
{
    return counter(f, "sluice_messages_retried_total",
                   "Delivery attempts that failed transiently and were retried.", labels);
}

/* The route's dead letters (at most 8), oldest first. */
static size_t dead_letters(fx *f, sl_dlq_entry **entries)
{
    size_t n;
    int64_t pending;
    sl_error err;
    assert_int_equal(sl_route_dlq_list(f->r, 0, 8, entries, &n, &pending, &err), 0);
    return n;
}

static sl_msg_status status_of(fx *f, const char *id)
{
    sl_msg_status st;
    assert_int_equal(sl_status_get(f->status, id, &st), 0);
    return st;
}

/* ---- tests --------------------------------------------------------------------- */

static void test_order_per_key(void **state)
{
    fx *f = *state;
    make_route(f, "    partitions: 4\n"
                  "    key: \"$.k\"\n"
                  "    to: [ { connector: a } ]\n");
    for (int i = 0; i < 200; i++) {
        char body[64];
        snprintf(body, sizeof body, "{\"k\":\"k%d\",\"n\":%d}", i % 7, i);
        append(f, body, NULL);
    }
    wait_for(f, committed_at_least, 200, "200 messages committed");
    mock_out *o = &f->out[0];
    assert_int_equal(o->n_delivered, 200);
    int last[7] = {-1, -1, -1, -1, -1, -1, -1};
    for (size_t i = 0; i < o->n_delivered; i++) {
        int k, n;
        assert_int_equal(sscanf(o->order[i], "{\"k\":\"k%d\",\"n\":%d}", &k, &n), 2);
        assert_true(n > last[k]); /* each key's messages arrive in the order appended */
        last[k] = n;
    }
}

static void test_retry_with_backoff_then_delivered(void **state)
{
    fx *f = *state;
    f->out[0].fail_first = 2;
    make_route(f, "    to: [ { connector: a } ]\n"
                  "    on_error:\n"
                  "      retry: { max_attempts: 5, initial_backoff: 40ms, max_backoff: 40ms }\n");
    char id[SL_ID_LEN + 1];
    append(f, "{\"n\":1}", id);
    wait_for(f, committed_at_least, 1, "the message committed");
    seen_msg *s = &f->out[0].seen[0];
    assert_int_equal(s->attempts, 3);
    assert_true(s->delivered);
    /* equal jitter over 40 ms: each wait is at least half of it */
    assert_true(s->at[1] - s->at[0] >= 0.020);
    assert_true(s->at[2] - s->at[1] >= 0.020);
    assert_int_equal(retried(f, "route=\"r\",output=\"a\""), 2);
    sl_msg_status st = status_of(f, id);
    assert_int_equal(st.state, SL_MSG_DELIVERED);
    assert_int_equal(st.attempts, 3);
    sl_dlq_entry *e;
    assert_int_equal(dead_letters(f, &e), 0);
    sl_dlq_entries_free(e, 0);
}

static void test_dead_letter_after_max_attempts(void **state)
{
    fx *f = *state;
    f->out[0].always = SL_RETRY;
    make_route(f, "    to: [ { connector: a } ]\n"
                  "    on_error:\n"
                  "      retry: { max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms }\n");
    char id[SL_ID_LEN + 1];
    append(f, "{\"n\":1}", id);
    wait_for(f, committed_at_least, 1, "the message committed");
    assert_int_equal(f->out[0].seen[0].attempts, 3);
    assert_int_equal(f->out[0].n_delivered, 0);
    sl_dlq_entry *e;
    assert_int_equal(dead_letters(f, &e), 1);
    assert_string_equal(e[0].id, id);
    assert_int_equal(e[0].attempts, 3);
    assert_non_null(strstr(e[0].error, "output a: scripted failure (gave up after 3 attempts)"));
    assert_string_equal(e[0].body, "{\"n\":1}");
    sl_dlq_entries_free(e, 1);
    assert_int_equal(status_of(f, id).state, SL_MSG_DEAD_LETTERED);
}

static void test_commit_only_after_every_output_acknowledged(void **state)
{
    fx *f = *state;
    f->out[1].gate_closed = true;
    make_route(f,
               "    to: [ { connector: a }, { connector: b } ]\n"
               "    on_error:\n"
               "      retry: { max_attempts: 1000, initial_backoff: 10ms, max_backoff: 20ms }\n");
    append(f, "{\"n\":1}", NULL);
    wait_for(f, delivered_a_at_least, 1, "output a to acknowledge");
    wait_for(f, b_attempts_at_least, 3, "output b to be retried");
    assert_int_equal(committed_total(f), 0);         /* b has not acknowledged: nothing committed */
    assert_int_equal(f->out[0].seen[0].attempts, 1); /* a is not sent it again */
    pthread_mutex_lock(&mock_mu);
    f->out[1].gate_closed = false;
    pthread_mutex_unlock(&mock_mu);
    wait_for(f, committed_at_least, 1, "the commit once b acknowledged");
    assert_int_equal(f->out[1].n_delivered, 1);
    assert_int_equal(f->out[0].n_delivered, 1);
}

static void test_fan_out_with_one_failing_output(void **state)
{
    fx *f = *state;
    f->out[1].always = SL_FAIL;
    make_route(f, "    to: [ { connector: a }, { connector: b } ]\n");
    char id[SL_ID_LEN + 1];
    append(f, "{\"n\":1}", id);
    wait_for(f, committed_at_least, 1, "the message committed");
    assert_int_equal(f->out[0].n_delivered, 1);      /* the healthy output has it */
    assert_int_equal(f->out[1].seen[0].attempts, 1); /* permanent: not retried */
    sl_dlq_entry *e;
    assert_int_equal(dead_letters(f, &e), 1);
    assert_non_null(strstr(e[0].error, "output b: scripted failure"));
    sl_dlq_entries_free(e, 1);
    assert_int_equal(counter(f, "sluice_output_failed_total",
                             "Messages that failed permanently at an output (then dead-lettered).",
                             "route=\"r\",output=\"b\""),
                     1);
    assert_int_equal(counter(f, "sluice_messages_failed_total",
                             "Messages that failed (steps, outputs or input) and were "
                             "dead-lettered; always equals sluice_dead_letter_total.",
                             "route=\"r\""),
                     1);
    assert_int_equal(status_of(f, id).state, SL_MSG_DEAD_LETTERED);
}

/* A lua step whose lookup fails transiently, then answers. */
static void make_lookup_route(fx *f, int max_attempts)
{
    char script[128], yaml[512];
    snprintf(script, sizeof script, "%s/lookup.lua", f->dir);
    write_file(script, "function step(msg, ctx)\n"
                       "  local r = ctx.http('crm', { path = '/c/1' })\n"
                       "  assert(r.ok, r.error)\n"
                       "  msg.body = r.body\n"
                       "  return msg\n"
                       "end\n");
    snprintf(yaml, sizeof yaml,
             "    steps:\n"
             "      - lua: { file: lookup.lua, function: step }\n"
             "    to: [ { connector: a } ]\n"
             "    on_error:\n"
             "      retry: { max_attempts: %d, initial_backoff: 10ms, max_backoff: 20ms }\n",
             max_attempts);
    make_route(f, yaml);
}

static void test_step_retry_then_delivered(void **state)
{
    fx *f = *state;
    f->partner.fail_first = 2;
    make_lookup_route(f, 5);
    char id[SL_ID_LEN + 1];
    append(f, "{\"n\":1}", id);
    append(f, "{\"n\":2}", NULL);
    wait_for(f, committed_at_least, 2, "both messages committed");
    assert_int_equal(f->partner.calls, 4); /* 2 failures and 1 success, then the second */
    assert_int_equal(f->out[0].n_delivered, 2);
    assert_string_equal(f->out[0].order[0], "enriched");
    assert_int_equal(retried(f, "route=\"r\",step=\"1-lua\""), 2);
    sl_msg_status st = status_of(f, id);
    assert_int_equal(st.state, SL_MSG_DELIVERED);
    sl_dlq_entry *e;
    assert_int_equal(dead_letters(f, &e), 0);
    sl_dlq_entries_free(e, 0);
}

static void test_step_retry_dead_letters_after_max_attempts(void **state)
{
    fx *f = *state;
    f->partner.fail_first = -1;
    make_lookup_route(f, 3);
    char id[SL_ID_LEN + 1];
    append(f, "{\"n\":1}", id);
    wait_for(f, committed_at_least, 1, "the message committed");
    assert_int_equal(f->partner.calls, 3);
    assert_int_equal(f->out[0].n_delivered, 0);
    sl_dlq_entry *e;
    assert_int_equal(dead_letters(f, &e), 1);
    assert_int_equal(e[0].attempts, 3);
    assert_string_equal(e[0].body, "{\"n\":1}"); /* as it was read, before the steps */
    assert_non_null(strstr(e[0].error, "step 1 (lua): "));
    assert_non_null(strstr(e[0].error, "HTTP 503 from crm"));
    assert_non_null(strstr(e[0].error, "(gave up after 3 attempts)"));
    sl_dlq_entries_free(e, 1);
    assert_int_equal(retried(f, "route=\"r\",step=\"1-lua\""), 3);
    assert_int_equal(status_of(f, id).state, SL_MSG_DEAD_LETTERED);
}

/* The partition a key lands on in a topic of n partitions (FNV-1a, as the
 * route hashes keys). */
static int partition_of(const char *key, int n)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = key; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ULL;
    }
    return (int)(h % (uint64_t)n);
}

static bool wide_durable(fx *f, long arg)
{
    sl_partition *part = (sl_partition *)arg;
    return sl_partition_durable_offset(part) >= sl_partition_end_offset(part);
}

static void slow_fsync(void *arg, double seconds)
{
    usleep(30 * 1000); /* the flusher falls behind: durability lags appends */
}

/* Reopens the fixture's log with a flusher slowed by 30 ms per fsync, so
 * that a route that did not wait for durability would commit first. */
static void reopen_log_with_slow_fsync(fx *f)
{
    char data[128];
    snprintf(data, sizeof data, "%s/data", f->dir);
    sl_log_close(f->log);
    sl_log_options o;
    sl_log_options_default(&o);
    o.on_fsync = slow_fsync;
    sl_error err;
    f->log = sl_log_open(data, &o, &err);
    if (!f->log)
        fail_msg("log: %s", err.msg);
}

/* A topic output over 128 partitions, fed keys that all land on partitions
 * 64 and up: the route commits a message only once what it appended there
 * is durable (it used to wait on partitions 0-63 only). */
static void test_topic_output_waits_on_every_partition(void **state)
{
    fx *f = *state;
    sl_error err;
    reopen_log_with_slow_fsync(f);
    sl_topic *wide = sl_log_topic(f->log, "wide", 128, &err);
    assert_non_null(wide);
    make_route(f, "    to: [ { topic: wide } ]\n");
    int sent = 0;
    for (int i = 0; sent < 20; i++) {
        char key[32], body[64];
        snprintf(key, sizeof key, "key-%d", i);
        int p = partition_of(key, 128);
        if (p < 64)
            continue;
        sl_partition *part = sl_topic_partition(wide, p);
        int64_t before = sl_partition_end_offset(part);
        snprintf(body, sizeof body, "{\"n\":%d}", i);
        sl_msg *m = sl_msg_new();
        assert_non_null(m);
        assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
        assert_int_equal(sl_msg_set_key(m, key, strlen(key)), 0);
        assert_int_equal(sl_route_append(f->r, m, &err), 0);
        sl_msg_free(m);
        sent++;
        wait_for(f, committed_at_least, sent, "the message committed");
        /* committed: what it appended to partition p is there and durable */
        assert_int_equal(sl_partition_end_offset(part), before + 1);
        assert_true(wide_durable(f, (long)part));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_per_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_with_backoff_then_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_after_max_attempts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_only_after_every_output_acknowledged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fan_out_with_one_failing_output, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_retry_then_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_step_retry_dead_letters_after_max_attempts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_topic_output_waits_on_every_partition, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
