/* Unit tests for core/record.c: encode/decode round trip with key, headers
 * and value; every way a buffer can fail to hold a record (torn, bad CRC,
 * zero length, impossible lengths) and the size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"
#include "record.h"

static const sl_header hdrs[] = {
    {"content-type", 12, "application/json", 16},
    {"x-empty", 7, "", 0},
};

static const sl_record sample = {
    .key = "order-17",
    .key_len = 8,
    .headers = hdrs,
    .n_headers = 2,
    .value = "{\"id\":17}",
    .value_len = 9,
};

static unsigned char *encode_sample(size_t *size)
{
    *size = sl_record_size(&sample);
    assert_int_equal(*size, SL_RECORD_MIN_BYTES + 8 + 9 + 2 * 8 + 12 + 16 + 7);
    unsigned char *buf = calloc(1, *size + 16);
    assert_non_null(buf);
    assert_int_equal(sl_record_encode(buf, &sample, 42, 1700000000123LL), *size);
    return buf;
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t size;
    sl_record_view v;
    sl_header h;
    unsigned char *buf = encode_sample(&size);
    assert_int_equal(sl_record_decode(buf, size + 16, &v), SL_REC_OK);
    assert_int_equal(v.size, size);
    assert_int_equal(v.offset, 42);
    assert_int_equal(v.timestamp_ms, 1700000000123LL);
    assert_int_equal(v.key_len, 8);
    assert_memory_equal(v.key, "order-17", 8);
    assert_int_equal(v.value_len, 9);
    assert_memory_equal(v.value, "{\"id\":17}", 9);
    assert_int_equal(v.n_headers, 2);
    const unsigned char *p = sl_record_next_header(v.headers, &h);
    assert_int_equal(h.name_len, 12);
    assert_memory_equal(h.name, "content-type", 12);
    assert_int_equal(h.value_len, 16);
    assert_memory_equal(h.value, "application/json", 16);
    sl_record_next_header(p, &h);
    assert_int_equal(h.name_len, 7);
    assert_int_equal(h.value_len, 0);
    free(buf);
}

static void test_empty_record(void **state)
{
    (void)state;
    sl_record r = {0};
    unsigned char buf[SL_RECORD_MIN_BYTES];
    sl_record_view v;
    assert_int_equal(sl_record_size(&r), SL_RECORD_MIN_BYTES);
    sl_record_encode(buf, &r, -1, -5);
    assert_int_equal(sl_record_decode(buf, sizeof buf, &v), SL_REC_OK);
    assert_int_equal(v.offset, -1);
    assert_int_equal(v.timestamp_ms, -5);
    assert_int_equal(v.key_len, 0);
    assert_int_equal(v.value_len, 0);
    assert_int_equal(v.n_headers, 0);
}

static void test_torn(void **state)
{
    (void)state;
    size_t size;
    sl_record_view v;
    unsigned char *buf = encode_sample(&size);
    for (size_t avail = 1; avail < size; avail++)
        assert_int_equal(sl_record_decode(buf, avail, &v), SL_REC_TORN);
    assert_int_equal(sl_record_decode(buf, size, &v), SL_REC_OK);
    free(buf);
}

static void test_bad_crc(void **state)
{
    (void)state;
    size_t size;
    sl_record_view v;
    unsigned char *buf = encode_sample(&size);
    for (size_t i = 4; i < size; i++) {
        buf[i] ^= 0x10;
        assert_int_equal(sl_record_decode(buf, size, &v), SL_REC_BADCRC);
        buf[i] ^= 0x10;
    }
    free(buf);
}

static void test_zero_is_end(void **state)
{
    (void)state;
    unsigned char zeros[64] = {0};
    sl_record_view v;
    assert_int_equal(sl_record_decode(zeros, sizeof zeros, &v), SL_REC_END);
    assert_int_equal(sl_record_decode(zeros, 3, &v), SL_REC_END);
    assert_int_equal(sl_record_decode(zeros, 0, &v), SL_REC_END);
    zeros[1] = 1;
    assert_int_equal(sl_record_decode(zeros, 3, &v), SL_REC_TORN);
}

static void test_bad_lengths(void **state)
{
    (void)state;
    unsigned char buf[64] = {0};
    sl_record_view v;
    buf[0] = 5; /* shorter than the fixed fields */
    assert_int_equal(sl_record_decode(buf, sizeof buf, &v), SL_REC_BADLEN);
    memset(buf, 0xff, 4); /* over the maximum record size */
    assert_int_equal(sl_record_decode(buf, sizeof buf, &v), SL_REC_BADLEN);

    /* an inner length that disagrees with the frame, with a valid CRC */
    size_t size;
    unsigned char *rec = encode_sample(&size);
    rec[24] = 200; /* key_len */
    uint32_t crc = sl_crc32c(0, rec + 8, size - 8);
    memcpy(rec + 4, &crc, 4);
    assert_int_equal(sl_record_decode(rec, size, &v), SL_REC_BADLEN);
    free(rec);
}

static void test_too_large(void **state)
{
    (void)state;
    sl_record r = {0};
    r.value_len = SL_RECORD_MAX_BYTES;
    assert_int_equal(sl_record_size(&r), 0);
    r.value_len = SL_RECORD_MAX_BYTES - SL_RECORD_MIN_BYTES;
    assert_int_equal(sl_record_size(&r), SL_RECORD_MAX_BYTES);
    sl_header h = {"a", 1, "b", (size_t)1 << 33};
    sl_record r2 = {.headers = &h, .n_headers = 1};
    assert_int_equal(sl_record_size(&r2), 0);
}

/* Three records 10, 11, 12 back to back, the middle one damaged: the
 * resynchronisation from inside it finds 12 at its exact position, and
 * nothing when 12 is outside (after, below) or past avail. */
static void test_resync(void **state)
{
    (void)state;
    size_t n = sl_record_size(&sample);
    unsigned char *buf = calloc(1, 3 * n);
    sl_record_view v;
    assert_non_null(buf);
    for (int i = 0; i < 3; i++)
        sl_record_encode(buf + (size_t)i * n, &sample, 10 + i, 5);
    buf[n + n / 2] ^= 0x20;
    assert_int_equal(sl_record_decode(buf + n, 2 * n, &v), SL_REC_BADCRC);
    assert_int_equal(sl_record_resync(buf, 3 * n, n + 1, 10, 100, &v), 2 * n);
    assert_int_equal(v.offset, 12);
    assert_int_equal(sl_record_resync(buf, 3 * n, 0, 9, 100, &v), 0); /* 10 is good */
    assert_int_equal(sl_record_resync(buf, 3 * n, n + 1, 12, 100, &v), SIZE_MAX);
    assert_int_equal(sl_record_resync(buf, 3 * n, n + 1, 10, 12, &v), SIZE_MAX);
    assert_int_equal(sl_record_resync(buf, 3 * n - 1, n + 1, 10, 100, &v), SIZE_MAX);
    free(buf);
}

static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(sl_rec_status_name(SL_REC_OK), "ok");
    assert_string_equal(sl_rec_status_name(SL_REC_BADCRC), "bad crc");
    assert_string_equal(sl_rec_status_name(SL_REC_TORN), "torn");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),  cmocka_unit_test(test_empty_record),
        cmocka_unit_test(test_torn),        cmocka_unit_test(test_bad_crc),
        cmocka_unit_test(test_zero_is_end), cmocka_unit_test(test_bad_lengths),
        cmocka_unit_test(test_too_large),   cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_resync),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
