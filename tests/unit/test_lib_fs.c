/* Unit tests for lib/fs.c: sl_mkdir_p creates every missing parent, takes
 * existing directories, and names the part of the path it could not make. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fs.h"

static char base[] = "/tmp/sl_test_fs_XXXXXX";

static int make_base(void **state)
{
    return mkdtemp(base) ? 0 : -1;
}

static int remove_base(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : -1;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_creates_parents(void **state)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/a/b/c", base);
    assert_int_equal(sl_mkdir_p(path, 0755, NULL), 0);
    assert_true(is_dir(path));
    /* again: everything exists already */
    assert_int_equal(sl_mkdir_p(path, 0755, NULL), 0);
    /* a trailing slash and a doubled one are fine */
    snprintf(path, sizeof path, "%s/a//d/", base);
    assert_int_equal(sl_mkdir_p(path, 0755, NULL), 0);
    snprintf(path, sizeof path, "%s/a/d", base);
    assert_true(is_dir(path));
}

/* The durable variant creates the same directories, each with the mode
 * asked for (under a zero umask), and takes existing ones. */
static void test_durable_modes(void **state)
{
    char path[PATH_MAX];
    struct stat st;
    mode_t old = umask(0);
    snprintf(path, sizeof path, "%s/p/q/r", base);
    assert_int_equal(sl_mkdir_p_durable(path, 0750, NULL), 0);
    assert_int_equal(sl_mkdir_p_durable(path, 0750, NULL), 0);
    umask(old);
    assert_true(is_dir(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);
    snprintf(path, sizeof path, "%s/p", base);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0750);
}

static void test_names_the_failed_prefix(void **state)
{
    char file[PATH_MAX], path[PATH_MAX];
    snprintf(file, sizeof file, "%s/plain", base);
    FILE *f = fopen(file, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(path, sizeof path, "%s/sub/x", file);
    size_t failed = 0;
    errno = 0;
    assert_int_equal(sl_mkdir_p(path, 0755, &failed), -1);
    assert_int_equal(errno, ENOTDIR);
    assert_int_equal(failed, strlen(file) + strlen("/sub"));
}

static void test_refuses_empty_and_long(void **state)
{
    size_t failed = 99;
    errno = 0;
    assert_int_equal(sl_mkdir_p("", 0755, &failed), -1);
    assert_int_equal(errno, ENOENT);
    char *long_path = malloc(PATH_MAX + 2);
    assert_non_null(long_path);
    memset(long_path, 'a', PATH_MAX + 1);
    long_path[PATH_MAX + 1] = '\0';
    errno = 0;
    assert_int_equal(sl_mkdir_p(long_path, 0755, NULL), -1);
    assert_int_equal(errno, ENAMETOOLONG);
    free(long_path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_creates_parents),
        cmocka_unit_test(test_names_the_failed_prefix),
        cmocka_unit_test(test_durable_modes),
        cmocka_unit_test(test_refuses_empty_and_long),
    };
    return cmocka_run_group_tests(tests, make_base, remove_base);
}
