/* Unit tests for sl_conf_secret (core/config_secret.c), through a test step
 * type whose parse callback reads one secret: a plain value, "file:PATH"
 * relative to the naming YAML file's directory (trailing newline stripped),
 * an absolute path, and the errors (missing, empty, unreadable), none of
 * which may contain the secret's value. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "step.h"

static void parse_secret(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    const char *v = NULL;
    if (sl_conf_secret(r, n, "secret", path, true, &v))
        st->priv = (void *)v;
}

static const sl_step_type SECRET_STEP = {.name = "secret_test", .parse_conf = parse_secret};

/* Parses { secret: VALUE } written in YAML file conf_file; returns the
 * secret (pool memory) or NULL with err set. */
static const char *read_secret(const char *conf_file, const char *value, sl_pool *pool,
                               sl_error *err)
{
    static sl_node scalar, map;
    static sl_node_pair pair;
    scalar = (sl_node){.kind = SL_NODE_SCALAR, .scalar = (char *)value, .pos = {conf_file, 4, 13}};
    pair = (sl_node_pair){.key = "secret", .key_pos = {conf_file, 4, 5}, .value = &scalar};
    map = (sl_node){
        .kind = SL_NODE_MAP, .pairs = &pair, .n_pairs = value ? 1 : 0, .pos = {conf_file, 4, 5}};
    sl_step_conf st = {0};
    if (sl_step_conf_parse(&SECRET_STEP, &st, &map, pool, err) < 0)
        return NULL;
    return st.priv;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_plain_and_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/sluice-test-secret-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char conf[512], tok[512], abs[600];
    snprintf(conf, sizeof conf, "%s/routes.yaml", dir);
    snprintf(tok, sizeof tok, "%s/token", dir);
    write_file(tok, "s3cr3t-from-file\n");
    sl_pool pool = {0};
    sl_error err;
    const char *v = read_secret(conf, "plain-s3cr3t", &pool, &err);
    assert_string_equal(v, "plain-s3cr3t");
    v = read_secret(conf, "file:token", &pool, &err); /* beside routes.yaml */
    assert_string_equal(v, "s3cr3t-from-file");
    snprintf(abs, sizeof abs, "file:%s", tok);
    v = read_secret("elsewhere/x.yaml", abs, &pool, &err);
    assert_string_equal(v, "s3cr3t-from-file");
    write_file(tok, "crlf-s3cr3t\r\n");
    v = read_secret(conf, "file:token", &pool, &err);
    assert_string_equal(v, "crlf-s3cr3t");
    unlink(tok);
    rmdir(dir);
    sl_pool_free(&pool);
}

static void test_errors_never_show_the_value(void **state)
{
    (void)state;
    sl_pool pool = {0};
    sl_error err;
    assert_null(read_secret("conf/a.yaml", NULL, &pool, &err));
    assert_string_equal(err.msg, "conf/a.yaml:4:5: secret_test: missing required key 'secret'");
    assert_null(read_secret("conf/a.yaml", "", &pool, &err));
    assert_string_equal(
        err.msg, "conf/a.yaml:4:13: secret_test.secret: the secret is empty (an unset variable?)");
    assert_null(read_secret("conf/a.yaml", "file:no-such-s3cr3t", &pool, &err));
    assert_string_equal(err.msg, "conf/a.yaml:4:13: secret_test.secret: secret file "
                                 "conf/no-such-s3cr3t: No such file or directory");
    sl_pool_free(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_files),
        cmocka_unit_test(test_errors_never_show_the_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
