/* Unit tests for core/crc32c.c: known CRC32C vectors (RFC 3720 iSCSI and
 * the "123456789" check value) on both the SSE4.2 and the table path, and
 * agreement of the two paths on every length and alignment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "crc32c.h"

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn f)
{
    unsigned char buf[48];
    assert_int_equal(f(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(f(0, NULL, 0), 0);
    memset(buf, 0, 32);
    assert_int_equal(f(0, buf, 32), 0x8A9136AAu);
    memset(buf, 0xff, 32);
    assert_int_equal(f(0, buf, 32), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_int_equal(f(0, buf, 32), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    assert_int_equal(f(0, buf, 32), 0x113FDB5Cu);
    /* iSCSI SCSI Read (10) command PDU */
    static const unsigned char pdu[48] = {
        0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    assert_int_equal(f(0, pdu, sizeof pdu), 0xD9963A56u);
    /* chaining gives the CRC of the concatenation */
    assert_int_equal(f(f(0, "1234", 4), "56789", 5), 0xE3069283u);
}

static void test_table_vectors(void **state)
{
    (void)state;
    check_vectors(sl_crc32c_sw);
}

static void test_hw_vectors(void **state)
{
    (void)state;
    if (!sl_crc32c_hw_available())
        skip();
    check_vectors(sl_crc32c_hw);
}

static void test_dispatch_vectors(void **state)
{
    (void)state;
    check_vectors(sl_crc32c);
}

static void test_paths_agree(void **state)
{
    (void)state;
    unsigned char buf[600];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof buf; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len + off <= sizeof buf; len += 7) {
            uint32_t sw = sl_crc32c_sw(0x5a5a5a5au, buf + off, len);
            assert_int_equal(sl_crc32c(0x5a5a5a5au, buf + off, len), sw);
            if (sl_crc32c_hw_available())
                assert_int_equal(sl_crc32c_hw(0x5a5a5a5au, buf + off, len), sw);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_vectors),
        cmocka_unit_test(test_hw_vectors),
        cmocka_unit_test(test_dispatch_vectors),
        cmocka_unit_test(test_paths_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
