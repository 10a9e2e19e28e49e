/* Unit tests for lib/uuid.c: which source message ids the AMQP and Kafka
 * inputs keep (a UUID in 8-4-4-4-12 text form) and which they replace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "uuid.h"

static bool uuid(const char *s)
{
    return sl_is_uuid(s, strlen(s));
}

static void test_accepts_text_form(void **state)
{
    assert_true(uuid("019a0b3c-1d2e-7f40-8a5b-6c7d8e9f0a1b"));
    assert_true(uuid("019A0B3C-1D2E-7F40-8A5B-6C7D8E9F0A1B")); /* either case */
    assert_true(uuid("00000000-0000-0000-0000-000000000000")); /* version not checked */
    /* the length given counts, not a NUL */
    assert_true(sl_is_uuid("019a0b3c-1d2e-7f40-8a5b-6c7d8e9f0a1bXYZ", SL_UUID_TEXT_LEN));
}

static void test_refuses_other_text(void **state)
{
    assert_false(uuid(""));
    assert_false(uuid("019a0b3c-1d2e-7f40-8a5b-6c7d8e9f0a1"));   /* 35 */
    assert_false(uuid("019a0b3c-1d2e-7f40-8a5b-6c7d8e9f0a1bc")); /* 37 */
    assert_false(uuid("019a0b3c1d2e-7f40-8a5b-6c7d8e9f0a1b-"));  /* dash misplaced */
    assert_false(uuid("019a0b3g-1d2e-7f40-8a5b-6c7d8e9f0a1b"));  /* not hex */
    assert_false(uuid("{19a0b3c-1d2e-7f40-8a5b-6c7d8e9f0a1b}"));
    assert_false(sl_is_uuid("019a0b3c-1d2e-7f40-8a5b-6c7d8e9f0a\0b", SL_UUID_TEXT_LEN));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_text_form),
        cmocka_unit_test(test_refuses_other_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
