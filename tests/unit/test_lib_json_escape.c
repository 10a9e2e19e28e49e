/* Unit tests for lib/json_escape.c: the exact bytes each dialect writes
 * (file/stdout outputs and log dump: LATIN1; JSON log lines: REPLACE |
 * TERMINAL; HTTP error bodies: RAW | TERMINAL; Lua json.encode: RAW), that
 * a piece is never cut, and that the output always parses back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "json_escape.h"

/* Controls, quote, backslash, DEL, NUL, valid 2/3/4-byte UTF-8, then a
 * stray continuation byte, an overlong '/', a surrogate and a truncated
 * sequence. */
static const char mixed[] = "\"\\\b\f\n\r\t\x1f\x7f"
                            "\0"
                            "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                            "\x80\xc0\xaf\xed\xa0\x80\xe2\x82";
#define MIXED_LEN (sizeof mixed - 1)

static void expect(unsigned flags, const char *want, size_t want_len)
{
    char out[MIXED_LEN * SL_JSON_ESC_MAX_GROWTH];
    size_t w = 0;
    assert_int_equal(sl_json_escape(mixed, MIXED_LEN, flags, out, sizeof out, &w), MIXED_LEN);
    assert_int_equal(w, want_len);
    assert_memory_equal(out, want, w);
}

static void test_latin1_dialect(void **state)
{
    static const char want[] = "\\\"\\\\\\b\\f\\n\\r\\t\\u001f\x7f\\u0000"
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                               "\\u0080\\u00c0\\u00af\\u00ed\\u00a0\\u0080\\u00e2\\u0082";
    expect(SL_JSON_ESC_LATIN1, want, sizeof want - 1);
}

static void test_replace_terminal_dialect(void **state)
{
    static const char want[] = "\\\"\\\\\\u0008\\u000c\\n\\r\\t\\u001f\\u007f\\u0000"
                               "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                               "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd";
    expect(SL_JSON_ESC_REPLACE | SL_JSON_ESC_TERMINAL, want, sizeof want - 1);
}

static void test_raw_dialects(void **state)
{
    static const char tail[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                               "\x80\xc0\xaf\xed\xa0\x80\xe2\x82";
    char want[128];
    static const char lua_head[] = "\\\"\\\\\\b\\f\\n\\r\\t\\u001f\x7f\\u0000";
    memcpy(want, lua_head, sizeof lua_head - 1);
    memcpy(want + sizeof lua_head - 1, tail, sizeof tail - 1);
    expect(SL_JSON_ESC_RAW, want, sizeof lua_head + sizeof tail - 2);
    static const char http_head[] = "\\\"\\\\\\u0008\\u000c\\n\\r\\t\\u001f\\u007f\\u0000";
    memcpy(want, http_head, sizeof http_head - 1);
    memcpy(want + sizeof http_head - 1, tail, sizeof tail - 1);
    expect(SL_JSON_ESC_RAW | SL_JSON_ESC_TERMINAL, want, sizeof http_head + sizeof tail - 2);
}

/* Every dialect but RAW writes valid JSON that reads back as the input
 * where the input was valid UTF-8. */
static void test_output_parses_back(void **state)
{
    static const char text[] = "a\"b\\c\n\x01\x7f caf\xc3\xa9 \xf0\x9f\x98\x80 /";
    static const unsigned dialects[] = {SL_JSON_ESC_LATIN1, SL_JSON_ESC_REPLACE,
                                        SL_JSON_ESC_REPLACE | SL_JSON_ESC_TERMINAL};
    for (size_t d = 0; d < sizeof dialects / sizeof dialects[0]; d++) {
        char out[256];
        size_t w;
        out[0] = '"';
        sl_json_escape(text, sizeof text - 1, dialects[d], out + 1, sizeof out - 2, &w);
        out[w + 1] = '"';
        json_error_t jerr;
        json_t *j = json_loadb(out, w + 2, JSON_DECODE_ANY, &jerr);
        assert_non_null(j);
        assert_int_equal(json_string_length(j), sizeof text - 1);
        assert_memory_equal(json_string_value(j), text, sizeof text - 1);
        json_decref(j);
    }
}

static void test_never_cuts_a_piece(void **state)
{
    char out[8];
    size_t w;
    /* "ab" fits, the 2-byte escape of '"' does not fit in the 3rd byte */
    assert_int_equal(sl_json_escape("ab\"c", 4, 0, out, 3, &w), 2);
    assert_int_equal(w, 2);
    /* a 3-byte UTF-8 character is not split */
    assert_int_equal(sl_json_escape("a\xe2\x82\xac", 4, 0, out, 3, &w), 1);
    assert_int_equal(w, 1);
    /* a \u00XX escape needs all 6 bytes */
    assert_int_equal(sl_json_escape("\x01", 1, 0, out, 5, &w), 0);
    assert_int_equal(w, 0);
    assert_int_equal(sl_json_escape("", 0, 0, out, 0, &w), 0);
    assert_int_equal(w, 0);
}

static void test_cstr_form(void **state)
{
    char out[64];
    size_t pos = 0;
    unsigned f = SL_JSON_ESC_RAW | SL_JSON_ESC_TERMINAL;
    assert_true(sl_json_escape_cstr("a\"b\\c\n\x01", 7, f, out, sizeof out, &pos));
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001");
    assert_int_equal(pos, strlen(out));
    /* appends at *pos */
    assert_true(sl_json_escape_cstr("!", 1, f, out, sizeof out, &pos));
    assert_string_equal(out, "a\\\"b\\\\c\\n\\u0001!");
    char tiny[5];
    pos = 0;
    assert_false(sl_json_escape_cstr("abcdef", 6, f, tiny, sizeof tiny, &pos));
    assert_string_equal(tiny, "abcd");
    assert_int_equal(pos, 4);
    pos = 0;
    assert_false(sl_json_escape_cstr("ab\"", 3, f, tiny, 4, &pos));
    assert_string_equal(tiny, "ab"); /* an escape is never cut in half */
    /* full already: nothing more, still terminated */
    pos = 4;
    assert_false(sl_json_escape_cstr("x", 1, f, tiny, sizeof tiny, &pos));
    assert_string_equal(tiny, "ab");
    assert_int_equal(pos, 4);
    assert_false(sl_json_escape_cstr("x", 1, f, tiny, 0, &pos));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_latin1_dialect),     cmocka_unit_test(test_replace_terminal_dialect),
        cmocka_unit_test(test_raw_dialects),       cmocka_unit_test(test_output_parses_back),
        cmocka_unit_test(test_never_cuts_a_piece), cmocka_unit_test(test_cstr_form),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
