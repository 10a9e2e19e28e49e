/* Unit tests for core/tail.c: events reach every subscriber in order with a
 * bounded, UTF-8-safe preview; a full ring drops and counts for its own
 * subscriber only, and every drop adds to the route's counter; a sleeping reader is woken exactly
 * once per sleep and never before it slept; ping and close; the subscriber limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"
#include "tail.h"

typedef struct waker {
    int wakes;
    int sleeps;
} waker;

static void on_wake(void *arg)
{
    ((waker *)arg)->wakes++;
}

static void on_sleep(void *arg)
{
    ((waker *)arg)->sleeps++;
}

static sl_msg *msg_with(const char *body, const char *key)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    if (key)
        assert_int_equal(sl_msg_set_key(m, key, strlen(key)), 0);
    return m;
}

static void test_events_in_order_with_their_fields(void **state)
{
    (void)state;
    sl_tail *t = sl_tail_new();
    waker w = {0, 0};
    sl_tail_client *c = sl_tail_subscribe(t, on_wake, &w);
    assert_non_null(c);
    sl_msg *m = msg_with("{\"a\":1}", "k1");
    sl_tail_publish(t, "accepted", m, 1, 41);
    sl_tail_publish(t, "delivered", m, 1, 41);
    sl_tail_event ev;
    uint64_t dropped = 0;
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EVENT);
    assert_string_equal(ev.kind, "accepted");
    assert_string_equal(ev.id, m->id);
    assert_true(ev.has_key);
    assert_string_equal(ev.key, "k1");
    assert_int_equal(ev.partition, 1);
    assert_int_equal(ev.offset, 41);
    assert_int_equal(ev.size, 7);
    assert_int_equal(ev.preview_len, 7);
    assert_memory_equal(ev.preview, "{\"a\":1}", 7);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EVENT);
    assert_string_equal(ev.kind, "delivered");
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EMPTY);
    assert_int_equal(w.sleeps, 1);
    assert_int_equal(w.wakes, 0);
    sl_msg_free(m);
    sl_tail_unsubscribe(t, c);
    sl_tail_free(t);
}

static void test_preview_is_cut_before_a_split_utf8_sequence(void **state)
{
    (void)state;
    char body[600];
    body[0] = 'x'; /* then "é" (2 bytes) pairs: byte 256 falls inside one */
    size_t n = 1;
    while (n + 2 < sizeof body) {
        memcpy(body + n, "\xc3\xa9", 2);
        n += 2;
    }
    body[n] = '\0';
    sl_tail *t = sl_tail_new();
    waker w = {0, 0};
    sl_tail_client *c = sl_tail_subscribe(t, on_wake, &w);
    sl_msg *m = msg_with(body, NULL);
    sl_tail_publish(t, "accepted", m, 0, 0);
    sl_tail_event ev;
    uint64_t dropped;
    assert_int_equal(sl_tail_next(c, &ev, &dropped, NULL, NULL), SL_TAIL_EVENT);
    assert_false(ev.has_key);
    assert_int_equal(ev.size, n);
    assert_int_equal(ev.preview_len, SL_TAIL_PREVIEW - 1);
    assert_memory_equal(ev.preview, body, SL_TAIL_PREVIEW - 1);
    sl_msg_free(m);
    sl_tail_unsubscribe(t, c);
    sl_tail_free(t);
}

static void test_full_ring_drops_and_counts_for_that_client_only(void **state)
{
    (void)state;
    sl_tail *t = sl_tail_new();
    waker w1 = {0, 0}, w2 = {0, 0};
    sl_tail_client *slow = sl_tail_subscribe(t, on_wake, &w1);
    sl_tail_client *fast = sl_tail_subscribe(t, on_wake, &w2);
    sl_msg *m = msg_with("x", NULL);
    sl_tail_event ev;
    uint64_t dropped = 0;
    for (int i = 0; i < SL_TAIL_RING + 10; i++) {
        sl_tail_publish(t, "accepted", m, 0, i);
        assert_int_equal(sl_tail_next(fast, &ev, &dropped, NULL, NULL), SL_TAIL_EVENT);
        assert_int_equal(ev.offset, i);
    }
    /* the slow one is told about the drops first, then gets the oldest kept */
    assert_int_equal(sl_tail_next(slow, &ev, &dropped, NULL, NULL), SL_TAIL_DROPS);
    assert_int_equal(dropped, 10);
    for (int i = 0; i < SL_TAIL_RING; i++) {
        assert_int_equal(sl_tail_next(slow, &ev, &dropped, NULL, NULL), SL_TAIL_EVENT);
        assert_int_equal(ev.offset, i);
    }
    assert_int_equal(sl_tail_next(slow, &ev, &dropped, NULL, NULL), SL_TAIL_EMPTY);
    assert_int_equal(sl_tail_next(fast, &ev, &dropped, NULL, NULL), SL_TAIL_EMPTY);
    sl_msg_free(m);
    sl_tail_unsubscribe(t, slow);
    sl_tail_unsubscribe(t, fast);
    sl_tail_free(t);
}

static void test_drops_of_every_ring_add_to_the_route_counter(void **state)
{
    (void)state;
    sl_metrics *reg = sl_metrics_new();
    sl_counter *dropped_total =
        sl_metrics_counter(reg, "sluice_tail_dropped_total", "test", "route=\"r\"");
    sl_tail *t = sl_tail_new();
    sl_tail_count_drops(t, dropped_total);
    waker w1 = {0, 0}, w2 = {0, 0};
    sl_tail_client *a = sl_tail_subscribe(t, on_wake, &w1);
    sl_tail_client *b = sl_tail_subscribe(t, on_wake, &w2);
    sl_msg *m = msg_with("x", NULL);
    for (int i = 0; i < SL_TAIL_RING + 3; i++)
        sl_tail_publish(t, "accepted", m, 0, i);
    assert_int_equal(sl_counter_get(dropped_total), 6); /* 3 for each of two readers */
    size_t len = 0;
    char *text = sl_metrics_render(reg, &len);
    assert_non_null(strstr(text, "sluice_tail_dropped_total{route=\"r\"} 6\n"));
    free(text);
    sl_tail_count_drops(t, NULL);
    sl_tail_publish(t, "accepted", m, 0, 0);
    assert_int_equal(sl_counter_get(dropped_total), 6);
    sl_msg_free(m);
    sl_tail_unsubscribe(t, a);
    sl_tail_unsubscribe(t, b);
    sl_tail_free(t);
    sl_metrics_free(reg);
}

static void test_a_sleeping_reader_is_woken_once(void **state)
{
    (void)state;
    sl_tail *t = sl_tail_new();
    waker w = {0, 0};
    sl_tail_client *c = sl_tail_subscribe(t, on_wake, &w);
    sl_msg *m = msg_with("x", NULL);
    sl_tail_publish(t, "accepted", m, 0, 0); /* not asleep: no wake */
    assert_int_equal(w.wakes, 0);
    sl_tail_event ev;
    uint64_t dropped;
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EVENT);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EMPTY);
    sl_tail_publish(t, "accepted", m, 0, 1);
    sl_tail_publish(t, "delivered", m, 0, 1);
    assert_int_equal(w.wakes, 1);
    sl_tail_ping(t); /* awake already: no second wake */
    assert_int_equal(w.wakes, 1);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EVENT);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EVENT);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_PING);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_EMPTY);
    sl_tail_close(t);
    assert_int_equal(w.wakes, 2);
    assert_int_equal(sl_tail_next(c, &ev, &dropped, on_sleep, &w), SL_TAIL_CLOSED);
    assert_int_equal(w.sleeps, 2);
    sl_msg_free(m);
    sl_tail_unsubscribe(t, c);
    sl_tail_free(t);
}

static void test_subscriber_limit(void **state)
{
    (void)state;
    sl_tail *t = sl_tail_new();
    waker w = {0, 0};
    sl_tail_client *c[SL_TAIL_MAX_CLIENTS];
    for (int i = 0; i < SL_TAIL_MAX_CLIENTS; i++)
        assert_non_null(c[i] = sl_tail_subscribe(t, on_wake, &w));
    assert_null(sl_tail_subscribe(t, on_wake, &w));
    sl_tail_unsubscribe(t, c[3]);
    c[3] = sl_tail_subscribe(t, on_wake, &w);
    assert_non_null(c[3]);
    for (int i = 0; i < SL_TAIL_MAX_CLIENTS; i++)
        sl_tail_unsubscribe(t, c[i]);
    sl_msg *m = msg_with("x", NULL);
    sl_tail_publish(t, "accepted", m, 0, 0); /* nobody: nothing happens */
    sl_tail_publish(NULL, "accepted", m, 0, 0);
    sl_msg_free(m);
    sl_tail_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_in_order_with_their_fields),
        cmocka_unit_test(test_preview_is_cut_before_a_split_utf8_sequence),
        cmocka_unit_test(test_full_ring_drops_and_counts_for_that_client_only),
        cmocka_unit_test(test_drops_of_every_ring_add_to_the_route_counter),
        cmocka_unit_test(test_a_sleeping_reader_is_woken_once),
        cmocka_unit_test(test_subscriber_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
