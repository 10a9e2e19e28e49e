/* Unit tests for lib/crypto.c and the hex text in lib/hex.c: RFC 4231
 * HMAC-SHA-2 vectors, RFC 2202 HMAC-SHA-1, FIPS 180 digests, RFC 4648
 * base64 vectors and refusals, and the constant-time comparison's answers
 * (equal, one byte off at each end, different lengths, empty). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "crypto.h"

static void expect_hex(const uint8_t *mac, size_t len, const char *want)
{
    char hex[2 * SL_DIGEST_MAX + 1];
    sl_hex_encode(mac, len, hex);
    assert_string_equal(hex, want);
}

/* RFC 4231 test case 2 ("Jefe"), all three digests, and test case 1's
 * 20-byte 0x0b key for SHA-256; RFC 2202 test case 2 for SHA-1. */
static void test_hmac_vectors(void **state)
{
    (void)state;
    const char *data = "what do ya want for nothing?";
    uint8_t mac[SL_DIGEST_MAX];
    assert_int_equal(sl_hmac(SL_DIGEST_SHA256, "Jefe", 4, data, strlen(data), mac), 0);
    expect_hex(mac, 32, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_int_equal(sl_hmac(SL_DIGEST_SHA512, "Jefe", 4, data, strlen(data), mac), 0);
    expect_hex(mac, 64,
               "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
               "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
    assert_int_equal(sl_hmac(SL_DIGEST_SHA1, "Jefe", 4, data, strlen(data), mac), 0);
    expect_hex(mac, 20, "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    uint8_t key[20];
    memset(key, 0x0b, sizeof key);
    assert_int_equal(sl_hmac(SL_DIGEST_SHA256, key, sizeof key, "Hi There", 8, mac), 0);
    expect_hex(mac, 32, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
}

static void test_hash_vectors(void **state)
{
    (void)state;
    uint8_t d[SL_DIGEST_MAX];
    assert_int_equal(sl_hash(SL_DIGEST_SHA256, "abc", 3, d), 0);
    expect_hex(d, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(sl_hash(SL_DIGEST_SHA1, "abc", 3, d), 0);
    expect_hex(d, 20, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_int_equal(sl_hash(SL_DIGEST_SHA256, "", 0, d), 0);
    expect_hex(d, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_digest_names(void **state)
{
    (void)state;
    sl_digest d = SL_DIGEST_SHA1;
    assert_int_equal(sl_digest_parse("sha512", &d), 0);
    assert_int_equal(d, SL_DIGEST_SHA512);
    assert_int_equal(sl_digest_len(d), 64);
    assert_string_equal(sl_digest_name(d), "sha512");
    assert_int_equal(sl_digest_parse("SHA256", &d), -1);
    assert_int_equal(sl_digest_parse("md5", &d), -1);
    assert_int_equal(d, SL_DIGEST_SHA512); /* untouched on refusal */
}

static void test_ct_equal(void **state)
{
    (void)state;
    assert_true(sl_ct_equal("secret-token", 12, "secret-token", 12));
    assert_false(sl_ct_equal("secret-token", 12, "Secret-token", 12));
    assert_false(sl_ct_equal("secret-token", 12, "secret-tokem", 12));
    assert_false(sl_ct_equal("secret-token", 12, "secret-toke", 11));
    assert_false(sl_ct_equal("secret-token", 12, "secret-tokenn", 13));
    assert_false(sl_ct_equal("abcabc", 6, "abc", 3)); /* a repeat is not equal */
    assert_false(sl_ct_equal("", 0, "a", 1));
    assert_false(sl_ct_equal("a", 1, "", 0));
    assert_true(sl_ct_equal("", 0, "", 0));
}

static void expect_b64(const char *in, const char *want)
{
    char *s = sl_base64_encode(in, strlen(in));
    assert_string_equal(s, want);
    uint8_t *back = NULL;
    size_t n = 0;
    assert_int_equal(sl_base64_decode(s, strlen(s), &back, &n), 0);
    assert_int_equal(n, strlen(in));
    assert_memory_equal(back, in, n);
    free(back);
    free(s);
}

static void test_base64(void **state)
{
    (void)state;
    expect_b64("", "");
    expect_b64("f", "Zg==");
    expect_b64("fo", "Zm8=");
    expect_b64("foo", "Zm9v");
    expect_b64("foob", "Zm9vYg==");
    expect_b64("fooba", "Zm9vYmE=");
    expect_b64("foobar", "Zm9vYmFy");
    uint8_t *out = NULL;
    size_t n = 0;
    assert_int_equal(sl_base64_decode("Zm9vYg", 6, &out, &n), 0); /* padding optional */
    assert_int_equal(n, 4);
    assert_memory_equal(out, "foob", 4);
    free(out);
    assert_int_equal(sl_base64_decode("Zm9v!", 5, &out, &n), -1);
    assert_null(out);
    assert_int_equal(sl_base64_decode("Zm=v", 4, &out, &n), -1);
    assert_int_equal(sl_base64_decode("Z", 1, &out, &n), -1);
    assert_int_equal(sl_base64_decode("Zg=", 3, &out, &n), -1);
    assert_int_equal(sl_base64_decode("Zm9v\n", 5, &out, &n), -1);
}

static void test_hex_text(void **state)
{
    (void)state;
    char hex[9];
    sl_hex_encode("\x00\x9f\xff\x10", 4, hex);
    assert_string_equal(hex, "009fff10");
    uint8_t b[4];
    assert_int_equal(sl_hex_decode("009FfF10", 8, b, sizeof b), 4);
    assert_memory_equal(b, "\x00\x9f\xff\x10", 4);
    assert_int_equal(sl_hex_decode("009", 3, b, sizeof b), -1);
    assert_int_equal(sl_hex_decode("0g", 2, b, sizeof b), -1);
    assert_int_equal(sl_hex_decode("0011223344", 10, b, sizeof b), -1);
}

static void test_random(void **state)
{
    (void)state;
    uint8_t a[16] = {0}, b[16] = {0};
    assert_int_equal(sl_random(a, sizeof a), 0);
    assert_int_equal(sl_random(b, sizeof b), 0);
    assert_memory_not_equal(a, b, sizeof a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_vectors), cmocka_unit_test(test_hash_vectors),
        cmocka_unit_test(test_digest_names), cmocka_unit_test(test_ct_equal),
        cmocka_unit_test(test_base64),       cmocka_unit_test(test_hex_text),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
