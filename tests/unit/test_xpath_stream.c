/* Unit tests for transforms/xpath_stream.c: the streaming XPath key gives
 * the tree evaluator's answer (first match in document order, descendant
 * text, attribute values with entities, namespaces, no match, malformed
 * XML, refused entities) on a table of documents, knows which paths it
 * takes; an element with more than 256 attributes (80,000: libxml2's
 * start-tag parser is quadratic in them) is refused by a linear pre-scan
 * on every XML path (streamed key, tree, xml_to_json), whose cost grows
 * linearly (4x the attributes cost less than 8x the CPU time; quadratic
 * would be 16x). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "json_xml.h"
#include "xpath_stream.h"

/* CPU time of this thread: what a cost costs, whatever else the machine
 * runs. */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Asserts that the cost at 4n is under 8x the cost at n (linear growth
 * gives about 4x, quadratic 16x). */
static void assert_linear(const char *what, double at_n, double at_4n)
{
    printf("  %s: %.4f s, at 4x the size %.4f s (%.1fx)\n", what, at_n, at_4n, at_4n / at_n);
    if (at_4n >= 8 * at_n)
        fail_msg("%s grows faster than linearly: %.4f s, then %.4f s at 4x the size", what, at_n,
                 at_4n);
}

static void test_subset(void **state)
{
    (void)state;
    const char *in[] = {"/a", "/a/b/c", "/a/*/c", "/a/b/@id", "/*/@x", "/a-b/c.d/_e", NULL};
    const char *out[] = {"a",        "/a/b[1]",   "//a",   "/a/@*",       "/p:a",
                         "/a/@p:id", "/a/text()", "/a/b/", "a/b",         "/a/@id/b",
                         "/a | /b",  "/a/..",     "/a//b", "/1a",         "",
                         "/",        "/a/@",      "/a/*x", "/a/b/@id/@x", NULL};
    for (size_t i = 0; in[i]; i++) {
        sl_xps *p = sl_xps_compile(in[i]);
        if (!p)
            fail_msg("%s: not taken", in[i]);
        sl_xps_free(p);
    }
    for (size_t i = 0; out[i]; i++) {
        sl_xps *p = sl_xps_compile(out[i]);
        if (p)
            fail_msg("%s: taken", out[i]);
    }
}

typedef struct xcase {
    const char *doc;
    const char *path;
} xcase;

static void test_same_answer_as_the_tree(void **state)
{
    (void)state;
    const char *order = "<?xml version=\"1.0\"?>\n"
                        "<order id=\"o&amp;1\" n=\"a&#38;b &lt; &#x41;\">"
                        "<c id=\"c1\">x<d>y</d><![CDATA[z<]]><!-- no -->w</c>"
                        "<c id=\"c2\">second</c><e xmlns=\"urn:x\"><c id=\"c3\"/></e>"
                        "<p:c xmlns:p=\"urn:p\" id=\"c4\"/><f><c>deep</c></f></order>";
    const xcase cases[] = {
        {order, "/order/@id"},
        {order, "/order/@n"},
        {order, "/order/c"},
        {order, "/order/c/@id"},
        {order, "/order/c/d"},
        {order, "/order/*/c"},
        {order, "/order/*/c/@id"},
        {order, "/order/e/c"},
        {order, "/order/missing"},
        {order, "/order/@missing"},
        {order, "/other"},
        {order, "/order"},
        {order, "/*/*/@id"},
        {"<a><b/><b id=''/><b id='2'/></a>", "/a/b/@id"},
        {"<a><b/></a>", "/a/b"},
        {"<a> <b>1</b>\n <b>2</b> </a>", "/a"},
        {"<a><b>1</b></a><a>", "/a/b"},
        {"<a><b>1</b>", "/a/b"},
        {"not xml", "/a"},
        {"<!DOCTYPE a [<!ENTITY e \"x\">]><a>&e;</a>", "/a"},
        {"<!DOCTYPE a SYSTEM \"http://127.0.0.1:9/x.dtd\"><a>1</a>", "/a"},
        {"<a>&undeclared;</a>", "/a"},
        {"<a id=\"&undeclared;\"/>", "/a/@id"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const xcase *c = &cases[i];
        size_t len = strlen(c->doc);
        char *want = NULL, *got = NULL;
        size_t want_len = 0, got_len = 0;
        sl_error we, ge;
        sl_error_clear(&we);
        sl_error_clear(&ge);
        int wrc = sl_xml_eval_xpath(c->doc, len, c->path, &want, &want_len, &we);
        sl_xps *p = sl_xps_compile(c->path);
        assert_non_null(p);
        int grc = sl_xps_eval(p, c->doc, len, &got, &got_len, &ge);
        sl_xps_free(p);
        if (wrc != grc || (want == NULL) != (got == NULL) ||
            (want && (want_len != got_len || memcmp(want, got, want_len) != 0)))
            fail_msg("case %zu %s: tree %d '%s' (%s), stream %d '%s' (%s)", i, c->path, wrc,
                     want ? want : "(none)", we.msg, grc, got ? got : "(none)", ge.msg);
        if (wrc < 0)
            assert_int_equal(ge.code, we.code);
        free(want);
        free(got);
    }
}

static char *many_attrs(int n, size_t *len)
{
    size_t cap = (size_t)n * 16 + 64;
    char *doc = malloc(cap);
    assert_non_null(doc);
    size_t o = (size_t)snprintf(doc, cap, "<order id=\"o1\"");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(doc + o, cap - o, " a%x=\"1\"", (unsigned)i);
    o += (size_t)snprintf(doc + o, cap - o, "/>");
    *len = o;
    return doc;
}

/* The CPU time the three XML paths take to refuse one element with
 * nattrs attributes (each must refuse it with want). */
static double refuse_attrs_cpu(size_t nattrs)
{
    size_t len;
    char *doc = many_attrs(nattrs, &len);
    sl_xps *p = sl_xps_compile("/order/@id");
    assert_non_null(p);
    char *out = NULL;
    size_t n = 0;
    sl_error err;
    const char *want = "XML line 1: element <order> has more than 256 attributes";
    double t0 = cpu_s();
    assert_int_equal(sl_xps_eval(p, doc, len, &out, &n, &err), -1);
    assert_null(out);
    assert_string_equal(err.msg, want);
    assert_int_equal(sl_xml_eval_xpath(doc, len, "/order[1]/@id", &out, &n, &err), -1);
    assert_null(out);
    assert_int_equal(err.code, SL_EINVAL);
    assert_string_equal(err.msg, want);
    assert_null(sl_xml_to_json(doc, len, NULL, &err));
    assert_string_equal(err.msg, want);
    double cpu = cpu_s() - t0;
    sl_xps_free(p);
    free(doc);
    return cpu;
}

/* 80,000 attributes took 12.8 s before the pre-scan (quadratic). */
static void test_80000_attributes(void **state)
{
    (void)state;
    double at_n = refuse_attrs_cpu(80000);
    assert_linear("80,000 attributes refused on the three paths", at_n, refuse_attrs_cpu(320000));
}

/* The CPU time the tree key takes on a body of nelem elements with 256
 * attributes each (the most the limit lets through). */
static double elements_at_limit_cpu(int nelem)
{
    sl_buf b = {0};
    sl_buf_puts(&b, "<order id=\"o1\">");
    for (int e = 0; e < nelem; e++) {
        sl_buf_puts(&b, "<e");
        for (int i = 0; i < SL_XML_MAX_ATTRS; i++) {
            char a[32];
            snprintf(a, sizeof a, " a%x=\"1\"", (unsigned)i);
            sl_buf_puts(&b, a);
        }
        sl_buf_puts(&b, "/>");
    }
    sl_buf_puts(&b, "</order>");
    char *out = NULL;
    size_t n = 0;
    sl_error err;
    double t0 = cpu_s();
    assert_int_equal(sl_xml_eval_xpath(b.p, b.len, "/order[1]/@id", &out, &n, &err), 0);
    double cpu = cpu_s() - t0;
    assert_string_equal(out, "o1");
    free(out);
    sl_buf_free(&b);
    return cpu;
}

/* The worst the limit lets through: a body of elements with 256
 * attributes each keys on the tree in time linear in its size. */
static void test_many_elements_at_the_limit(void **state)
{
    (void)state;
    double at_n = elements_at_limit_cpu(80);
    assert_linear("elements of 256 attributes, tree key", at_n, elements_at_limit_cpu(320));
}

/* Quoted '=' and '>' and markup that is not a tag do not count; the
 * limit itself passes on both paths. */
static void test_attribute_count(void **state)
{
    (void)state;
    size_t len;
    char *doc = many_attrs(SL_XML_MAX_ATTRS - 1, &len);
    sl_error err;
    assert_int_equal(sl_xml_check_attrs(doc, len, &err), 0);
    free(doc);
    doc = many_attrs(SL_XML_MAX_ATTRS, &len);
    assert_int_equal(sl_xml_check_attrs(doc, len, &err), -1);
    free(doc);
    sl_buf b = {0};
    sl_buf_puts(&b, "<?xml version=\"1.0\"?>\n<!-- a=b a=b -->\n<a x='=>=' y=\"'='\">");
    for (int i = 0; i < 2000; i++)
        sl_buf_puts(&b, "<![CDATA[=]]>=<?pi a=b?>");
    sl_buf_puts(&b, "\n<b\n");
    for (int i = 0; i < 257; i++)
        sl_buf_puts(&b, " q=''");
    sl_buf_puts(&b, "/></a>");
    assert_int_equal(sl_xml_check_attrs(b.p, b.len, &err), -1);
    assert_string_equal(err.msg, "XML line 4: element <b> has more than 256 attributes");
    sl_buf_free(&b);
}

/* The name in the message is read within the input: a buffer that is not
 * NUL-terminated and ends inside the tag (fuzz_xml found this overread). */
static void test_attribute_count_unterminated(void **state)
{
    (void)state;
    size_t len = 2 + SL_XML_MAX_ATTRS + 1;
    char *doc = malloc(len);
    assert_non_null(doc);
    memcpy(doc, "<a", 2);
    memset(doc + 2, '=', len - 2);
    sl_error err;
    assert_int_equal(sl_xml_check_attrs(doc, len, &err), -1);
    assert_non_null(strstr(err.msg, "element <a===="));
    free(doc);
}

static void test_attributes_at_the_limit_pass(void **state)
{
    (void)state;
    size_t len;
    char *doc = many_attrs(SL_XML_MAX_ATTRS - 1, &len);
    char *out = NULL;
    size_t n = 0;
    sl_error err;
    assert_int_equal(sl_xml_eval_xpath(doc, len, "/order[1]/@id", &out, &n, &err), 0);
    assert_string_equal(out, "o1");
    free(out);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_subset),
        cmocka_unit_test(test_same_answer_as_the_tree),
        cmocka_unit_test(test_80000_attributes),
        cmocka_unit_test(test_attributes_at_the_limit_pass),
        cmocka_unit_test(test_attribute_count),
        cmocka_unit_test(test_attribute_count_unterminated),
        cmocka_unit_test(test_many_elements_at_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
