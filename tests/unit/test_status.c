/* Unit tests for core/status.c: put, get and update, eviction of the oldest
 * entries at capacity, unknown ids, re-acceptance and concurrent use. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "status.h"

static void make_id(char *out, int n)
{
    snprintf(out, SL_ID_LEN + 1, "0190a000-0000-7000-8000-%012d", n);
}

static void test_accept_get_update(void **state)
{
    sl_status *s = sl_status_new(8);
    assert_non_null(s);
    char id[SL_ID_LEN + 1];
    sl_uuid7(id);
    sl_status_accepted(s, id, "orders", 2, 41);

    sl_msg_status st;
    assert_int_equal(sl_status_get(s, id, &st), 0);
    assert_string_equal(st.id, id);
    assert_string_equal(st.route, "orders");
    assert_int_equal(st.partition, 2);
    assert_int_equal(st.offset, 41);
    assert_int_equal(st.state, SL_MSG_ACCEPTED);
    assert_int_equal(st.attempts, 0);
    assert_string_equal(st.last_error, "");
    assert_true(st.updated_ms > 1700000000000LL);

    sl_status_update(s, id, SL_MSG_RETRYING, 1, "HTTP 503 from billing");
    assert_int_equal(sl_status_get(s, id, &st), 0);
    assert_int_equal(st.state, SL_MSG_RETRYING);
    assert_int_equal(st.attempts, 1);
    assert_string_equal(st.last_error, "HTTP 503 from billing");

    /* NULL keeps the last error. */
    sl_status_update(s, id, SL_MSG_DELIVERED, 2, NULL);
    assert_int_equal(sl_status_get(s, id, &st), 0);
    assert_int_equal(st.state, SL_MSG_DELIVERED);
    assert_int_equal(st.attempts, 2);
    assert_string_equal(st.last_error, "HTTP 503 from billing");
    assert_string_equal(st.route, "orders");

    /* Long routes and errors are cut to fit. */
    char long_text[1000];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    sl_status_update(s, id, SL_MSG_DEAD_LETTERED, 5, long_text);
    assert_int_equal(sl_status_get(s, id, &st), 0);
    assert_int_equal(strlen(st.last_error), sizeof st.last_error - 1);
    sl_status_accepted(s, id, long_text, 0, 0);
    assert_int_equal(sl_status_get(s, id, &st), 0);
    assert_int_equal(strlen(st.route), sizeof st.route - 1);
    assert_int_equal(st.state, SL_MSG_ACCEPTED); /* re-accepted resets it */
    sl_status_free(s);
}

static void test_unknown_id(void **state)
{
    sl_status *s = sl_status_new(4);
    assert_non_null(s);
    sl_msg_status st;
    assert_int_equal(sl_status_get(s, "nope", &st), -1);
    /* Updating an unknown id does not create it. */
    sl_status_update(s, "nope", SL_MSG_DELIVERED, 1, "x");
    assert_int_equal(sl_status_get(s, "nope", &st), -1);
    /* Ids longer than SL_ID_LEN are never stored. */
    char too_long[SL_ID_LEN + 2];
    memset(too_long, 'a', SL_ID_LEN + 1);
    too_long[SL_ID_LEN + 1] = '\0';
    sl_status_accepted(s, too_long, "r", 0, 0);
    assert_int_equal(sl_status_get(s, too_long, &st), -1);
    sl_status_free(s);

    /* NULL table and zero capacity keep nothing and do not crash. */
    sl_status_accepted(NULL, "a", "r", 0, 0);
    assert_int_equal(sl_status_get(NULL, "a", &st), -1);
    sl_status_free(NULL);
    s = sl_status_new(0);
    assert_non_null(s);
    sl_status_accepted(s, "a", "r", 0, 0);
    assert_int_equal(sl_status_get(s, "a", &st), -1);
    sl_status_free(s);
}

static void test_eviction_of_oldest(void **state)
{
    enum { CAP = 100, TOTAL = 1000 };
    sl_status *s = sl_status_new(CAP);
    assert_non_null(s);
    char id[SL_ID_LEN + 1];
    sl_msg_status st;
    for (int i = 0; i < TOTAL; i++) {
        make_id(id, i);
        sl_status_accepted(s, id, "r", 0, i);
        /* Exactly the newest CAP entries are known at every point. */
        if (i % 97 == 0 || i == TOTAL - 1) {
            for (int j = 0; j <= i; j++) {
                make_id(id, j);
                int known = sl_status_get(s, id, &st) == 0;
                assert_int_equal(known, j > i - CAP);
                if (known)
                    assert_int_equal(st.offset, j);
            }
        }
    }
    sl_status_free(s);
}

static void test_reaccepted_id_becomes_newest(void **state)
{
    sl_status *s = sl_status_new(3);
    assert_non_null(s);
    sl_msg_status st;
    sl_status_accepted(s, "a", "r", 0, 1);
    sl_status_accepted(s, "b", "r", 0, 2);
    sl_status_accepted(s, "c", "r", 0, 3);
    sl_status_accepted(s, "a", "r", 1, 10); /* replay: a is now the newest */
    assert_int_equal(sl_status_get(s, "a", &st), 0);
    assert_int_equal(st.partition, 1);
    assert_int_equal(st.offset, 10);
    sl_status_accepted(s, "d", "r", 0, 4);
    sl_status_accepted(s, "e", "r", 0, 5);
    /* b and c were older than the second a */
    assert_int_equal(sl_status_get(s, "b", &st), -1);
    assert_int_equal(sl_status_get(s, "c", &st), -1);
    assert_int_equal(sl_status_get(s, "a", &st), 0);
    assert_int_equal(sl_status_get(s, "d", &st), 0);
    assert_int_equal(sl_status_get(s, "e", &st), 0);
    sl_status_accepted(s, "f", "r", 0, 6);
    assert_int_equal(sl_status_get(s, "a", &st), -1);
    sl_status_free(s);
}

typedef struct {
    sl_status *s;
    int base;
} worker_arg;

static void *worker(void *p)
{
    const worker_arg *a = p;
    char id[SL_ID_LEN + 1];
    sl_msg_status st;
    for (int i = 0; i < 20000; i++) {
        make_id(id, a->base + i);
        sl_status_accepted(a->s, id, "r", 0, i);
        sl_status_update(a->s, id, SL_MSG_DELIVERED, 1, NULL);
        if (sl_status_get(a->s, id, &st) == 0 && strcmp(st.id, id) != 0)
            return (void *)1;
    }
    return NULL;
}

static void test_concurrent(void **state)
{
    sl_status *s = sl_status_new(512);
    assert_non_null(s);
    pthread_t t[4];
    worker_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg){s, i * 1000000};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_null(rc);
    }
    /* The table still holds exactly its capacity, the last writes among them. */
    int known = 0;
    char id[SL_ID_LEN + 1];
    sl_msg_status st;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < 20000; j++) {
            make_id(id, i * 1000000 + j);
            known += sl_status_get(s, id, &st) == 0;
        }
    }
    assert_int_equal(known, 512);
    sl_status_free(s);
}

/* The route records a message as accepted before its append is visible to
 * workers, so a delivery that comes first is not overwritten: the offset
 * is filled in afterwards and the state kept; a failed append forgets it. */
static void test_offset_after_append_keeps_state(void **state)
{
    (void)state;
    sl_status *s = sl_status_new(4);
    assert_non_null(s);
    const char *id = "01890000-0000-7000-8000-000000000001";
    sl_status_accepted(s, id, "r", 2, -1);
    sl_status_update(s, id, SL_MSG_DELIVERED, 1, NULL); /* a worker was quicker */
    sl_status_set_offset(s, id, 41);
    sl_msg_status st;
    assert_int_equal(sl_status_get(s, id, &st), 0);
    assert_int_equal(st.state, SL_MSG_DELIVERED);
    assert_int_equal(st.partition, 2);
    assert_int_equal(st.offset, 41);
    sl_status_forget(s, id);
    assert_int_equal(sl_status_get(s, id, &st), -1);
    sl_status_set_offset(s, id, 1); /* unknown: ignored */
    sl_status_forget(s, id);
    assert_int_equal(sl_status_get(s, id, &st), -1);
    sl_status_free(s);
}

/* sl_status_put: an id this table never accepted is added (as the newest,
 * evicting the oldest when full); a known one takes the outcome and keeps
 * its offset when the put has none. */
static void test_put_from_elsewhere(void **state)
{
    (void)state;
    sl_status *s = sl_status_new(2);
    assert_non_null(s);
    char a[SL_ID_LEN + 1], b[SL_ID_LEN + 1], c[SL_ID_LEN + 1];
    make_id(a, 1);
    make_id(b, 2);
    make_id(c, 3);
    sl_status_accepted(s, a, "orders", 0, -1);
    sl_status_set_offset(s, a, 7);
    sl_status_accepted(s, b, "orders", 0, 8);

    sl_msg_status put = {.partition = 0, .offset = -1, .state = SL_MSG_DELIVERED, .attempts = 1};
    snprintf(put.id, sizeof put.id, "%s", a);
    snprintf(put.route, sizeof put.route, "orders");
    sl_status_put(s, &put);
    sl_msg_status st;
    assert_int_equal(sl_status_get(s, a, &st), 0);
    assert_int_equal(st.state, SL_MSG_DELIVERED);
    assert_int_equal(st.attempts, 1);
    assert_int_equal(st.offset, 7);

    sl_msg_status other = {
        .partition = 3, .offset = 99, .state = SL_MSG_DEAD_LETTERED, .attempts = 2};
    snprintf(other.id, sizeof other.id, "%s", c);
    snprintf(other.route, sizeof other.route, "orders");
    snprintf(other.last_error, sizeof other.last_error, "HTTP 400 from partner");
    sl_status_put(s, &other); /* full: a, the oldest, goes */
    assert_int_equal(sl_status_get(s, c, &st), 0);
    assert_string_equal(st.route, "orders");
    assert_int_equal(st.partition, 3);
    assert_int_equal(st.offset, 99);
    assert_int_equal(st.state, SL_MSG_DEAD_LETTERED);
    assert_int_equal(st.attempts, 2);
    assert_string_equal(st.last_error, "HTTP 400 from partner");
    assert_int_equal(sl_status_get(s, a, &st), -1);
    assert_int_equal(sl_status_get(s, b, &st), 0);
    sl_status_free(s);
}

static void test_state_names(void **state)
{
    assert_string_equal(sl_msg_state_name(SL_MSG_ACCEPTED), "accepted");
    assert_string_equal(sl_msg_state_name(SL_MSG_DELIVERED), "delivered");
    assert_string_equal(sl_msg_state_name(SL_MSG_RETRYING), "retrying");
    assert_string_equal(sl_msg_state_name(SL_MSG_DEAD_LETTERED), "dead_lettered");
    assert_string_equal(sl_msg_state_name(SL_MSG_DROPPED), "dropped");
    assert_string_equal(sl_msg_state_name((sl_msg_state)42), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_get_update),
        cmocka_unit_test(test_unknown_id),
        cmocka_unit_test(test_eviction_of_oldest),
        cmocka_unit_test(test_reaccepted_id_becomes_newest),
        cmocka_unit_test(test_offset_after_append_keeps_state),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_put_from_elsewhere),
        cmocka_unit_test(test_state_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
