/* Unit tests for the Lua crypto module and ctx.secrets (transforms/
 * lua_crypto.c, lua_ctx.c): HMAC-SHA256 against the RFC 4231 vectors, the
 * other digests and encodings, the module read-only and present in `when:`
 * expressions, and the step's secrets readable but not writable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_host.h"

/* The script: its step function takes the test case from the message body
 * and puts what it computed there. fromhex makes the RFC's keys. */
static const char *const SCRIPT =
    "local function fromhex(h) return (h:gsub('..', function(x)\n"
    "  return string.char(tonumber(x, 16)) end)) end\n"
    "local cases = {\n"
    "  rfc4231_1 = function() return crypto.hmac('sha256', ('\\x0b'):rep(20), 'Hi There') end,\n"
    "  rfc4231_2 = function() return crypto.hmac('sha256', 'Jefe',\n"
    "                'what do ya want for nothing?') end,\n"
    "  rfc4231_3 = function() return crypto.hmac('sha256', ('\\xaa'):rep(20),\n"
    "                ('\\xdd'):rep(50)) end,\n"
    "  rfc4231_4 = function() return crypto.hmac('sha256',\n"
    "                fromhex('0102030405060708090a0b0c0d0e0f10111213141516171819'),\n"
    "                ('\\xcd'):rep(50)) end,\n"
    "  rfc4231_5 = function() return crypto.hmac('sha256', ('\\x0c'):rep(20),\n"
    "                'Test With Truncation'):sub(1, 32) end,\n"
    "  rfc4231_6 = function() return crypto.hmac('sha256', ('\\xaa'):rep(131),\n"
    "                'Test Using Larger Than Block-Size Key - Hash Key First') end,\n"
    "  rfc4231_7 = function() return crypto.hmac('sha256', ('\\xaa'):rep(131),\n"
    "                'This is a test using a larger than block-size key and a larger than '\n"
    "                .. 'block-size data. The key needs to be hashed before being used by '\n"
    "                .. 'the HMAC algorithm.') end,\n"
    "  sha512 = function() return crypto.hmac('sha512', ('\\x0b'):rep(20), 'Hi There') end,\n"
    "  sha1 = function() return crypto.hmac('sha1', ('\\x0b'):rep(20), 'Hi There') end,\n"
    "  b64 = function() return crypto.sha256('abc', 'base64') end,\n"
    "  hex = function() return crypto.sha256('abc') end,\n"
    "  raw = function() return tostring(#crypto.hmac('sha256', 'k', 'd', 'raw')) end,\n"
    "  hash = function() return crypto.hash('sha1', 'abc') end,\n"
    "  equal = function() return tostring(crypto.equal('abc', 'abc')) .. ' '\n"
    "                .. tostring(crypto.equal('abc', 'abd')) .. ' '\n"
    "                .. tostring(crypto.equal('abc', 'abcd')) end,\n"
    "  github = function() return 'sha256=' .. crypto.hmac('sha256', ctx_secret(),\n"
    "                '{\"zen\":\"Keep it logically awesome.\"}') end,\n"
    "  secret = function() return ctx_secret() end,\n"
    "  bad_alg = function() return crypto.hmac('md5', 'k', 'd') end,\n"
    "  bad_enc = function() return crypto.sha256('d', 'base32') end,\n"
    "  write_lib = function() crypto.hmac = nil end,\n"
    "  write_secret = function() the_ctx.secrets.hook = 'x' end,\n"
    "}\n"
    "function step(msg, ctx)\n"
    "  the_ctx = ctx\n"
    "  ctx_secret = function() return ctx.secrets.hook end\n"
    "  msg.body = cases[msg.body]()\n"
    "  return msg\n"
    "end\n";

static const sl_kv SECRETS[] = {{"hook", "It's a Secret to Everybody"}};

static sl_lua_host *host(void)
{
    char path[] = "/tmp/sl_lua_crypto_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(SCRIPT, f);
    fclose(f);
    sl_lua_opts o = {.route = "crypto", .secrets = SECRETS, .n_secrets = 1};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    int rc = sl_lua_host_load_script(h, path, "crypto.lua", "step", &err);
    unlink(path);
    if (rc < 0)
        fail_msg("load failed: %s", err.msg);
    return h;
}

/* Runs case name; returns the step's rc, the body in out (cap bytes). */
static int run_case(sl_lua_host *h, const char *name, char *out, size_t cap, sl_error *err)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, name, strlen(name)), 0);
    int rc = sl_lua_host_run_step(h, m, err);
    snprintf(out, cap, "%.*s", (int)m->body_len, m->body ? m->body : "");
    sl_msg_free(m);
    return rc;
}

static void expect(sl_lua_host *h, const char *name, const char *want)
{
    char got[256];
    sl_error err;
    if (run_case(h, name, got, sizeof got, &err) != SL_STEP_OK)
        fail_msg("%s failed: %s", name, err.msg);
    if (strcmp(got, want) != 0)
        fail_msg("%s: got %s, want %s", name, got, want);
}

static void expect_error(sl_lua_host *h, const char *name, const char *needle)
{
    char got[256];
    sl_error err;
    int rc = run_case(h, name, got, sizeof got, &err);
    if (rc != SL_STEP_FAIL || !strstr(err.msg, needle))
        fail_msg("%s: expected a failure with '%s', got rc %d: %s", name, needle, rc, err.msg);
}

static void test_hmac_sha256_rfc4231(void **state)
{
    (void)state;
    sl_lua_host *h = host();
    expect(h, "rfc4231_1", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    expect(h, "rfc4231_2", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    expect(h, "rfc4231_3", "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    expect(h, "rfc4231_4", "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    expect(h, "rfc4231_5", "a3b6167473100ee06e0c796c2955552b");
    expect(h, "rfc4231_6", "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    expect(h, "rfc4231_7", "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
    sl_lua_host_free(h);
}

static void test_other_digests_and_encodings(void **state)
{
    (void)state;
    sl_lua_host *h = host();
    expect(h, "sha512",
           "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
           "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
    expect(h, "sha1", "b617318655057264e28bc0b6fb378c8ef146be00");
    expect(h, "hex", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(h, "b64", "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    expect(h, "raw", "32");
    expect(h, "hash", "a9993e364706816aba3e25717850c26c9cd0d89d");
    expect(h, "equal", "true false false");
    expect_error(h, "bad_alg", "expected \"sha1\", \"sha256\" or \"sha512\"");
    expect_error(h, "bad_enc", "invalid option 'base32'");
    sl_lua_host_free(h);
}

/* A GitHub-style X-Hub-Signature-256 with the key from ctx.secrets; the
 * value is Python's hmac.new(key, body, "sha256").hexdigest(). */
static void test_github_signature_with_a_secret(void **state)
{
    (void)state;
    sl_lua_host *h = host();
    expect(h, "secret", "It's a Secret to Everybody");
    expect(h, "github", "sha256=b9f180c4171a9926a5055962b54ec47b0ebee85e62e76c83ebdbb382f77b05ac");
    sl_lua_host_free(h);
}

static void test_module_and_secrets_are_read_only(void **state)
{
    (void)state;
    sl_lua_host *h = host();
    expect_error(h, "write_lib", "read-only");
    expect_error(h, "write_secret", "read-only");
    expect(h, "hex", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(h, "secret", "It's a Secret to Everybody");
    sl_lua_host_free(h);
}

/* crypto is there in `when:` and filter expressions too. */
static void test_crypto_in_an_expression(void **state)
{
    (void)state;
    sl_lua_opts o = {.route = "expr"};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    assert_int_equal(
        sl_lua_host_load_expr(h,
                              "crypto.sha256(msg.body) == "
                              "'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'",
                              "when", &err),
        0);
    sl_msg *m = sl_msg_new();
    bool result = false;
    assert_int_equal(sl_msg_set_body(m, "abc", 3), 0);
    assert_int_equal(sl_lua_host_run_expr(h, m, &result, &err), 0);
    assert_true(result);
    assert_int_equal(sl_msg_set_body(m, "abd", 3), 0);
    assert_int_equal(sl_lua_host_run_expr(h, m, &result, &err), 0);
    assert_false(result);
    sl_msg_free(m);
    sl_lua_host_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hmac_sha256_rfc4231),
        cmocka_unit_test(test_other_digests_and_encodings),
        cmocka_unit_test(test_github_signature_with_a_secret),
        cmocka_unit_test(test_module_and_secrets_are_read_only),
        cmocka_unit_test(test_crypto_in_an_expression),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
