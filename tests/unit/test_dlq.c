/* Unit tests for the dead letter state (core/dlq.c) on a real log: the depth
 * counts entries neither redriven nor purged, marker records survive a
 * reopen, entries of another route sharing the topic are not counted, and a
 * dead letter gives back its original message or the transformed one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "metrics.h"

typedef struct fx {
    char dir[64];
    sl_log *log;
    sl_metrics *metrics;
    sl_partition *p;
} fx;

static void open_log(fx *f)
{
    char data[128];
    snprintf(data, sizeof data, "%s/data", f->dir);
    sl_log_options o;
    sl_log_options_default(&o);
    sl_error err;
    f->log = sl_log_open(data, &o, &err);
    if (!f->log)
        fail_msg("log: %s", err.msg);
    sl_topic *t = sl_log_topic(f->log, "r.dlq", 1, &err);
    assert_non_null(t);
    f->p = sl_topic_partition(t, 0);
}

static int setup(void **state)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl_dlq_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    open_log(f);
    f->metrics = sl_metrics_new();
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    sl_log_close(f->log);
    sl_metrics_free(f->metrics);
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Appends a dead letter of route `route` with body and the original
 * (orig_body, or none) and returns its offset. */
static int64_t add_entry(fx *f, const char *route, const char *body, const char *orig_body)
{
    sl_header h[4] = {
        {SL_HDR_ID, strlen(SL_HDR_ID), "0190a0b0-0000-7000-8000-000000000001", 36},
        {SL_DLQ_ROUTE, strlen(SL_DLQ_ROUTE), route, strlen(route)},
        {"x-tenant", 8, "t1", 2},
        {SL_DLQ_ORIG_BODY, strlen(SL_DLQ_ORIG_BODY), orig_body, orig_body ? strlen(orig_body) : 0},
    };
    sl_record rec = {
        .headers = h, .n_headers = orig_body ? 4 : 3, .value = body, .value_len = strlen(body)};
    sl_error err;
    int64_t off = sl_partition_append(f->p, &rec, &err);
    assert_true(off >= 0);
    assert_int_equal(sl_partition_wait_durable(f->p, off, -1, &err), 0);
    return off;
}

static void test_depth_and_markers_survive_a_reopen(void **state)
{
    fx *f = *state;
    int64_t e[3];
    for (int i = 0; i < 3; i++)
        e[i] = add_entry(f, "r", "mapped", "raw");
    add_entry(f, "other", "x", NULL); /* another route's entry in the same topic */
    sl_error err;
    sl_dlq *q = sl_dlq_open(f->p, f->metrics, "r", &err);
    assert_non_null(q);
    assert_int_equal(sl_dlq_depth(q), 3);
    assert_int_equal(sl_dlq_state_at(q, e[0]), SL_DLQ_PENDING);
    assert_int_equal(sl_dlq_state_at(q, e[2] + 1), SL_DLQ_FOREIGN);
    assert_int_equal(sl_dlq_mark(q, &e[0], 1, SL_DLQ_REDRIVEN, "admin", &err), 0);
    assert_int_equal(sl_dlq_mark(q, &e[1], 1, SL_DLQ_PURGED, "ops", &err), 0);
    assert_int_equal(sl_dlq_mark(q, &e[1], 1, SL_DLQ_PURGED, "ops", &err), 0); /* no-op */
    assert_int_equal(sl_dlq_depth(q), 1);
    sl_dlq_free(q);

    sl_log_close(f->log);
    open_log(f); /* a restart */
    q = sl_dlq_open(f->p, f->metrics, "r", &err);
    assert_non_null(q);
    assert_int_equal(sl_dlq_depth(q), 1);
    assert_int_equal(sl_dlq_state_at(q, e[0]), SL_DLQ_REDRIVEN);
    assert_int_equal(sl_dlq_state_at(q, e[1]), SL_DLQ_PURGED);
    assert_int_equal(sl_dlq_state_at(q, e[2]), SL_DLQ_PENDING);
    int64_t at;
    char by[64];
    sl_dlq_marked_by(q, e[1], &at, by, sizeof by);
    assert_string_equal(by, "ops");
    assert_true(at > 0);
    size_t len;
    char *text = sl_metrics_render(f->metrics, &len);
    assert_non_null(strstr(text, "sluice_dlq_depth{route=\"r\"} 1"));
    free(text);
    sl_dlq_free(q);
}

static void test_original_and_transformed_messages(void **state)
{
    fx *f = *state;
    /* what the worker does: the dead message gets the original record's body */
    sl_header oh[2] = {{SL_HDR_ID, strlen(SL_HDR_ID), "0190a0b0-0000-7000-8000-000000000002", 36},
                       {"x-tenant", 8, "t1", 2}};
    sl_record orig = {
        .headers = oh, .n_headers = 2, .key = "k", .key_len = 1, .value = "raw", .value_len = 3};
    sl_msg *dead = sl_msg_new();
    assert_non_null(dead);
    assert_int_equal(sl_msg_set_body(dead, "mapped", 6), 0);
    assert_int_equal(sl_msg_set_header(dead, SL_DLQ_ERROR, "output b: 400", 13), 0);
    assert_int_equal(sl_dlq_add_original(dead, &orig), 0);
    size_t len;
    const char *v = sl_msg_get_header(dead, SL_DLQ_ORIG_BODY, &len);
    assert_non_null(v);
    assert_memory_equal(v, "raw", 3);
    assert_non_null(sl_msg_get_header(dead, SL_DLQ_ORIG_HEADER "x-tenant", NULL));
    assert_null(sl_msg_get_header(dead, SL_DLQ_ORIG_HEADER SL_HDR_ID, NULL));

    sl_header hdrs[16];
    sl_record rec;
    assert_int_equal(sl_msg_to_record(dead, &rec, hdrs, 16), 0);
    sl_error err;
    sl_msg *m = sl_dlq_message(&rec, true, false, &err); /* rerun: the original */
    assert_non_null(m);
    assert_string_equal(m->body, "raw");
    assert_string_equal(m->id, dead->id);
    assert_int_equal(m->key_len, 1);
    assert_non_null(sl_msg_get_header(m, "x-tenant", NULL));
    assert_null(sl_msg_get_header(m, SL_DLQ_ERROR, NULL));
    sl_msg_free(m);
    m = sl_dlq_message(&rec, false, true, &err); /* to the failed outputs, original kept */
    assert_non_null(m);
    assert_string_equal(m->body, "mapped");
    assert_null(sl_msg_get_header(m, SL_DLQ_ERROR, NULL));
    assert_non_null(sl_msg_get_header(m, SL_DLQ_ORIG_BODY, NULL));
    sl_msg_free(m);
    m = sl_dlq_message(&rec, false, false, &err); /* as delivered: no x-sluice-* at all */
    assert_non_null(m);
    assert_null(sl_msg_get_header(m, SL_DLQ_ORIG_BODY, NULL));
    sl_msg_free(m);
    sl_msg_free(dead);
    (void)f;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_depth_and_markers_survive_a_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_original_and_transformed_messages, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
