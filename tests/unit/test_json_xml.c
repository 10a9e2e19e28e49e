/* Unit tests for transforms/json_xml.c and json_xml_step.c: the JSON <-> XML
 * convention (a corpus and a fixed-seed property test of the round trip),
 * real-world shaped XML (SOAP, RSS, UBL), the hardening (billion laughs,
 * XXE, depth, size, malformed input), XPath keys, and the two steps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <libxml/tree.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_xml.h"
#include "message.h"
#include "step.h"

extern const sl_step_type sl_json_to_xml_step;
extern const sl_step_type sl_xml_to_json_step;

/* ---- helpers ------------------------------------------------------------------ */

/* json_equal, but reals must have the same bits (so -0.0 != 0.0). */
static bool same_json(const json_t *a, const json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return false;
    switch (json_typeof(a)) {
        case JSON_OBJECT: {
            if (json_object_size(a) != json_object_size(b))
                return false;
            const char *k;
            json_t *v;
            json_object_foreach((json_t *)a, k, v)
            {
                const json_t *w = json_object_get(b, k);
                if (!w || !same_json(v, w))
                    return false;
            }
            return true;
        }
        case JSON_ARRAY:
            if (json_array_size(a) != json_array_size(b))
                return false;
            for (size_t i = 0; i < json_array_size(a); i++) {
                if (!same_json(json_array_get(a, i), json_array_get(b, i)))
                    return false;
            }
            return true;
        case JSON_REAL: {
            double x = json_real_value(a), y = json_real_value(b);
            return memcmp(&x, &y, sizeof x) == 0;
        }
        default:
            return json_equal(a, b);
    }
}

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("test JSON does not parse: %s: %s", je.text, text);
    return j;
}

/* JSON -> XML -> JSON; returns true when the result is the same document,
 * else prints the document, the XML and the result. */
/* sl_xml_to_json_text must write exactly json_dumps(JSON_COMPACT) of
 * sl_xml_to_json's tree (or fail the same way). */
static bool text_mode_agrees(const char *xml, size_t n, const sl_xml_opts *o, const json_t *tree,
                             const char *label)
{
    sl_error err = {0};
    size_t tl = 0;
    char *text = sl_xml_to_json_text(xml, n, o, &tl, &err);
    char *want = tree ? json_dumps(tree, JSON_COMPACT) : NULL;
    bool ok = (!text && !want) || (text && want && strcmp(text, want) == 0 && tl == strlen(want));
    if (!ok && text && want && o && o->coerce) {
        /* numbers are written as the XML has them: equal values, not equal text */
        json_t *back = json_loadb(text, tl, JSON_DECODE_ANY, NULL);
        ok = back && same_json(tree, back);
        json_decref(back);
    }
    if (!ok)
        print_error("%s: text mode differs\n  xml:  %s\n  tree: %s\n  text: %s\n", label, xml,
                    want ? want : "(failed)", text ? text : err.msg);
    free(text);
    free(want);
    return ok;
}

static bool round_trip(const json_t *doc, const sl_xml_opts *o, const char *label)
{
    sl_error err = {0};
    size_t n;
    char *xml = sl_json_to_xml(doc, o, &n, &err);
    char *in = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!xml) {
        print_error("%s: JSON -> XML failed: %s\n  doc: %s\n", label, err.msg, in);
        free(in);
        return false;
    }
    json_t *back = sl_xml_to_json(xml, n, o, &err);
    bool ok = back && same_json(doc, back) && text_mode_agrees(xml, n, o, back, label);
    if (!ok) {
        char *out = back ? json_dumps(back, JSON_COMPACT) : NULL;
        print_error("%s: round trip differs\n  doc:  %s\n  xml:  %s\n  back: %s\n", label, in, xml,
                    out ? out : err.msg);
        free(out);
    }
    json_decref(back);
    free(in);
    free(xml);
    return ok;
}

static char *to_xml(const char *json, const sl_xml_opts *o)
{
    json_t *j = parse_json(json);
    sl_error err = {0};
    size_t n;
    char *xml = sl_json_to_xml(j, o, &n, &err);
    json_decref(j);
    if (!xml)
        fail_msg("sl_json_to_xml failed: %s", err.msg);
    assert_int_equal(strlen(xml), n);
    return xml;
}

static json_t *from_xml(const char *xml, const sl_xml_opts *o)
{
    sl_error err = {0};
    json_t *j = sl_xml_to_json(xml, strlen(xml), o, &err);
    if (!j)
        fail_msg("sl_xml_to_json failed: %s\n%s", err.msg, xml);
    if (!text_mode_agrees(xml, strlen(xml), o, j, "from_xml"))
        fail_msg("sl_xml_to_json_text disagrees with the tree");
    return j;
}

/* Converts xml and asserts that it fails with an error containing want. */
static void expect_xml_error(const char *xml, const sl_xml_opts *o, const char *want)
{
    sl_error err = {0};
    json_t *j = sl_xml_to_json(xml, strlen(xml), o, &err);
    if (j) {
        char *t = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        fail_msg("expected an error containing '%s', got %s", want, t);
    }
    if (!strstr(err.msg, want))
        fail_msg("error '%s' does not contain '%s'", err.msg, want);
}

/* Asserts that the JSON value at a '/'-separated path of doc is the JSON
 * text want (compared as JSON). Path parts that are numbers index arrays. */
static void expect_at(const json_t *doc, const char *path, const char *want)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s", path);
    const json_t *cur = doc;
    for (char *save = NULL, *p = strtok_r(buf, "/", &save); p && cur;
         p = strtok_r(NULL, "/", &save)) {
        if (json_is_array(cur))
            cur = json_array_get(cur, strtoul(p, NULL, 10));
        else
            cur = json_object_get(cur, p);
    }
    json_t *w = parse_json(want);
    if (!cur || !same_json(cur, w)) {
        char *got = cur ? json_dumps(cur, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(w);
        fail_msg("at %s: expected %s, got %s", path, want, got ? got : "(missing)");
    }
    json_decref(w);
}

/* ---- the corpus ------------------------------------------------------------------ */

typedef struct corpus_doc {
    const char *json;
    bool coerce;
    const char *force[3];
} corpus_doc;

static const corpus_doc CORPUS[] = {
    /* shapes */
    {"{\"a\":\"x\"}", false, {0}},
    {"{\"a\":\"\"}", false, {0}},
    {"{\"a\":null}", false, {0}},
    {"{\"order\":{\"id\":\"1\",\"customer\":{\"name\":\"Ann\",\"tier\":\"gold\"}}}", false, {0}},
    {"{\"order\":{\"item\":[\"a\",\"b\",\"c\"]}}", false, {0}},
    {"{\"order\":{\"item\":[{\"sku\":\"A\",\"qty\":\"1\"},{\"sku\":\"B\",\"qty\":\"2\"}]}}",
     false,
     {0}},
    {"{\"order\":{\"item\":[{\"sku\":\"A\"}]}}", false, {"item"}},
    {"{\"order\":{\"item\":[\"only\"]}}", false, {"/order/item"}},
    {"{\"order\":{\"item\":[],\"id\":\"7\"}}", false, {"/order/item"}},
    {"{\"order\":{\"lines\":{\"line\":[]}}}", false, {"/order/lines/line"}},
    {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":\"deep\"}}}}}}}", false, {0}},
    {"{\"a\":{\"x\":[null,\"\",\"v\",{\"k\":\"w\"}]}}", false, {0}},
    {"{\"a\":{\"x\":[null,null]}}", false, {0}},
    {"{\"a\":{\"b\":\"1\",\"c\":[\"2\",\"3\"],\"d\":{\"e\":[{\"f\":\"4\"},{\"f\":\"5\"}]}}}",
     false,
     {0}},
    /* attributes and text */
    {"{\"order\":{\"@id\":\"1\",\"@status\":\"new\"}}", false, {0}},
    {"{\"price\":{\"@currency\":\"EUR\",\"#text\":\"12.50\"}}", false, {0}},
    {"{\"p\":{\"#text\":\"hello \",\"b\":\"bold\"}}", false, {0}},
    {"{\"a\":{\"@x\":\"\",\"@y\":\" \"}}", false, {0}},
    {"{\"a\":{\"@id\":\"1\",\"#text\":\"   \"}}", false, {0}},
    {"{\"a\":{\"@id\":\"1\",\"b\":[{\"@n\":\"1\"},{\"@n\":\"2\",\"#text\":\"t\"}]}}", false, {0}},
    {"{\"a\":{\"@xml:lang\":\"he\",\"#text\":\"\\u05e9\\u05dc\\u05d5\\u05dd\"}}", false, {0}},
    /* namespaces and prefixes */
    {"{\"p:a\":{\"@xmlns:p\":\"urn:p\",\"p:b\":\"x\"}}", false, {0}},
    {"{\"a\":{\"@xmlns\":\"urn:default\",\"b\":\"x\"}}", false, {0}},
    {"{\"s:Envelope\":{\"@xmlns:s\":\"http://schemas.xmlsoap.org/soap/envelope/\","
     "\"s:Body\":{\"m:Get\":{\"@xmlns:m\":\"urn:m\",\"m:id\":\"1\"}}}}",
     false,
     {0}},
    {"{\"a\":{\"@xmlns:x\":\"urn:x\",\"@x:attr\":\"v\",\"x:b\":[\"1\",\"2\"]}}", false, {0}},
    {"{\"u:a\":{\"u:b\":\"undeclared prefixes pass through\"}}", false, {0}},
    /* names that XML does not allow, kept through _xHHHH_ escapes */
    {"{\"a\":{\"first name\":\"x\",\"1st\":\"y\",\"$ref\":\"z\",\"a/b\":\"w\"}}", false, {0}},
    {"{\"a\":{\"_x0041_\":\"literal escape-looking key\",\"my_xml\":\"q\",\"_x\":\"r\"}}",
     false,
     {0}},
    {"{\"a\":{\"a:b:c\":\"colons\",\":x\":\"lead\",\"y:\":\"trail\"}}", false, {0}},
    {"{\"a\":{\"@data-1\":\"v\",\"@1x\":\"w\",\"@a b\":\"z\"}}", false, {0}},
    {"{\"\\u540d\\u524d\":{\"\\u0627\\u0644\\u0627\\u0633\\u0645\":\"RTL key\"}}", false, {0}},
    {"{\"a\":{\"#comment\":\"a key that starts with #\",\"@#text\":\"attr\"}}", false, {0}},
    /* unicode */
    {"{\"a\":\"\\u00e9\\u00e8\\u00ea caf\\u00e9\"}", false, {0}},
    {"{\"a\":\"\\ud83d\\ude00 \\ud834\\udd1e \\ud800\\udc00 \\udbff\\udfff\"}", false, {0}},
    {"{\"a\":\"\\u05e9\\u05dc\\u05d5\\u05dd \\u0645\\u0631\\u062d\\u0628\\u0627 mixed LTR\"}",
     false,
     {0}},
    {"{\"a\":\"\\u202e\\u202d\\u200f\\u200e bidi controls\"}", false, {0}},
    {"{\"a\":\"\\u4e2d\\u6587 \\ud55c\\uad6d\\uc5b4 \\u65e5\\u672c\\u8a9e\"}", false, {0}},
    {"{\"a\":\"\\u0080\\u009f\\u00a0\\ufffd\\ue000\\ufdd0\"}", false, {0}},
    /* escapes */
    {"{\"a\":\"<tag> & \\\"quotes\\\" 'apos' ]]> &amp;\"}", false, {0}},
    {"{\"a\":{\"@q\":\"<tag> & \\\"quotes\\\" 'apos' ]]> &amp;\"}}", false, {0}},
    {"{\"a\":\"tab\\tnewline\\ncr\\rcrlf\\r\\n\"}", false, {0}},
    {"{\"a\":{\"@v\":\"tab\\tnewline\\ncr\\rcrlf\\r\\n\"}}", false, {0}},
    {"{\"a\":\"  leading and trailing spaces  \"}", false, {0}},
    {"{\"a\":\"\\n\\n\"}", false, {0}},
    {"{\"a\":\"\\u007f del is allowed\"}", false, {0}},
    {"{\"a\":\"&lt; is text, not an entity\"}", false, {0}},
    /* numbers and booleans (coerce) */
    {"{\"n\":{\"i\":42,\"neg\":-7,\"zero\":0,\"r\":3.25,\"t\":true,\"f\":false}}", true, {0}},
    {"{\"n\":{\"max\":1e308,\"min\":5e-324,\"tiny\":2.2250738585072014e-308}}", true, {0}},
    {"{\"n\":{\"big\":9007199254740993,\"i64max\":9223372036854775807,"
     "\"i64min\":-9223372036854775808}}",
     true,
     {0}},
    {"{\"n\":{\"negzero\":-0.0,\"one\":1.0,\"tenth\":0.1,\"third\":0.3333333333333333}}",
     true,
     {0}},
    {"{\"n\":{\"@count\":3,\"@ok\":true,\"#text\":2.5}}", true, {0}},
    {"{\"n\":{\"v\":[1,2.5,true,null,\"text\"]}}", true, {0}},
    {"{\"n\":{\"s\":\"007\",\"e\":\"1e\",\"x\":\"0x10\",\"sp\":\" 1\",\"True\":\"True\"}}",
     true,
     {0}},
    {"{\"n\":{\"pi\":3.141592653589793,\"e\":2.718281828459045,\"avogadro\":6.02214076e23}}",
     true,
     {0}},
    /* top level */
    {"{\"root\":{\"a\":\"1\"}}", false, {0}},
    {"{\"a\":{\"@id\":\"only attributes\"}}", false, {0}},
    {"{\"a\":{\"b\":{\"@id\":\"x\"},\"c\":\"\"}}", false, {0}},
};

static void test_corpus_round_trip(void **state)
{
    (void)state;
    size_t n = sizeof CORPUS / sizeof CORPUS[0];
    assert_true(n >= 50);
    size_t failed = 0;
    for (size_t i = 0; i < n; i++) {
        for (int pretty = 0; pretty < 2; pretty++) {
            sl_xml_opts o;
            sl_xml_opts_init(&o);
            o.coerce = CORPUS[i].coerce;
            o.pretty = pretty;
            size_t nf = 0;
            while (nf < 3 && CORPUS[i].force[nf])
                nf++;
            o.force_array = CORPUS[i].force;
            o.n_force_array = nf;
            json_t *doc = parse_json(CORPUS[i].json);
            char label[64];
            snprintf(label, sizeof label, "corpus[%zu]%s", i, pretty ? " (pretty)" : "");
            failed += !round_trip(doc, &o, label);
            json_decref(doc);
        }
    }
    assert_int_equal(failed, 0);
}

/* Nesting as deep as the limit round-trips; one level more is refused. */
static void test_deep_nesting(void **state)
{
    (void)state;
    json_t *doc = json_string("bottom");
    for (int i = 0; i < SL_XML_MAX_DEPTH; i++) {
        json_t *o = json_object();
        json_object_set_new(o, i % 2 ? "b" : "a", doc);
        doc = o;
    }
    assert_true(round_trip(doc, NULL, "depth 256"));
    json_t *deeper = json_object();
    json_object_set_new(deeper, "z", doc);
    sl_error err = {0};
    assert_null(sl_json_to_xml(deeper, NULL, NULL, &err));
    assert_non_null(strstr(err.msg, "deeper than 256"));
    json_decref(deeper);
}

/* ---- exact output ------------------------------------------------------------------ */

static void test_exact_output(void **state)
{
    (void)state;
    char *x =
        to_xml("{\"order\":{\"@id\":\"1\",\"item\":[\"a\",\"b\"],\"note\":null,\"e\":\"\"}}", NULL);
    assert_string_equal(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                           "<order id=\"1\"><item>a</item><item>b</item>"
                           "<note xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                           "xsi:nil=\"true\"/><e/></order>");
    free(x);

    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.declaration = false;
    x = to_xml("{\"a\":{\"@q\":\"<\\\"&\\t\\n\\r>\",\"#text\":\"<&>\\r\\t\\n\\\"'\"}}", &o);
    assert_string_equal(x,
                        "<a q=\"&lt;&quot;&amp;&#9;&#10;&#13;&gt;\">&lt;&amp;&gt;&#13;\t\n\"'</a>");
    free(x);

    /* numbers as JSON text; reals always read back as reals */
    x = to_xml("{\"n\":{\"i\":-12,\"r\":1.0,\"z\":-0.0,\"t\":0.1,\"b\":true,\"big\":1e300}}", &o);
    assert_string_equal(x, "<n><i>-12</i><r>1.0</r><z>-0.0</z><t>0.1</t><b>true</b>"
                           "<big>1e+300</big></n>");
    free(x);

    /* without root: anything but a one-member object is wrapped in <root> */
    x = to_xml("{\"a\":\"1\",\"b\":\"2\"}", &o);
    assert_string_equal(x, "<root><a>1</a><b>2</b></root>");
    free(x);
    x = to_xml("{\"a\":[\"1\",\"2\"]}", &o);
    assert_string_equal(x, "<root><a>1</a><a>2</a></root>");
    free(x);
    x = to_xml("[\"1\",[\"2\",\"3\"]]", &o);
    assert_string_equal(x, "<root><item>1</item><item><item>2</item><item>3</item></item></root>");
    free(x);
    x = to_xml("\"just text\"", &o);
    assert_string_equal(x, "<root>just text</root>");
    free(x);

    /* with root: always wrapped */
    o.root = "order";
    x = to_xml("{\"id\":\"1\",\"customer\":{\"name\":\"Ann\"}}", &o);
    assert_string_equal(x, "<order><id>1</id><customer><name>Ann</name></customer></order>");
    free(x);
    x = to_xml("{\"customer\":\"Ann\"}", &o);
    assert_string_equal(x, "<order><customer>Ann</customer></order>");
    free(x);
    o.root = NULL;

    /* names */
    x = to_xml("{\"a\":{\"first name\":\"1\",\"2x\":\"2\",\"_x0041_\":\"3\",\"p:q\":\"4\"}}", &o);
    assert_string_equal(x, "<a><first_x0020_name>1</first_x0020_name><_x0032_x>2</_x0032_x>"
                           "<_x005F_x0041_>3</_x005F_x0041_><p:q>4</p:q></a>");
    free(x);

    /* pretty: indented, mixed content left alone */
    o.pretty = true;
    o.declaration = true;
    x = to_xml("{\"a\":{\"@id\":\"1\",\"b\":[\"x\",\"y\"],\"c\":{\"d\":\"z\"},"
               "\"p\":{\"#text\":\"t \",\"i\":\"u\"}}}",
               &o);
    assert_string_equal(x, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                           "<a id=\"1\">\n"
                           "  <b>x</b>\n"
                           "  <b>y</b>\n"
                           "  <c>\n"
                           "    <d>z</d>\n"
                           "  </c>\n"
                           "  <p>t <i>u</i></p>\n"
                           "</a>\n");
    free(x);
}

static void test_encoding_option(void **state)
{
    (void)state;
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.encoding = "ISO-8859-1";
    json_t *doc = parse_json("{\"a\":\"caf\\u00e9 \\u4e2d\"}");
    size_t n;
    sl_error err = {0};
    char *x = sl_json_to_xml(doc, &o, &n, &err);
    assert_non_null(x);
    /* é is one Latin-1 byte; the CJK character becomes a character reference */
    const char *want = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<a>caf\xe9 &#20013;</a>";
    assert_int_equal(n, strlen(want));
    assert_memory_equal(x, want, n);
    json_t *back = sl_xml_to_json(x, n, NULL, &err);
    assert_non_null(back);
    assert_true(same_json(doc, back));
    json_decref(back);
    free(x);

    o.encoding = "NO-SUCH-ENCODING";
    assert_null(sl_json_to_xml(doc, &o, &n, &err));
    assert_non_null(strstr(err.msg, "unknown encoding"));
    json_decref(doc);
}

/* What cannot be written says why. */
static void test_json_to_xml_errors(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        const char *want;
    } cases[] = {
        {"{\"a\":\"bell\\u0007\"}", "U+0007, which XML 1.0 cannot carry"},
        {"{\"a\":\"nul\\u0000\"}", "U+0000"},
        {"{\"a\":\"\\uffff\"}", "U+FFFF"},
        {"{\"a\":{\"@b\":{\"c\":1}}}", "attribute '@b' of <a> must be a string"},
        {"{\"a\":{\"#text\":[1]}}", "#text of <a> must be"},
        {"{\"a\":{\"\":\"x\"}}", "empty key"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_error_t je;
        json_t *j = json_loads(cases[i].json, JSON_ALLOW_NUL, &je);
        assert_non_null(j);
        sl_error err = {0};
        char *x = sl_json_to_xml(j, NULL, NULL, &err);
        if (x)
            fail_msg("case %zu: expected an error, got %s", i, x);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: '%s' does not contain '%s'", i, err.msg, cases[i].want);
        assert_int_equal(err.code, SL_EINVAL);
        json_decref(j);
    }
}

/* ---- XML -> JSON details --------------------------------------------------------- */

static void test_xml_to_json_rules(void **state)
{
    (void)state;
    json_t *j = from_xml("<?xml version=\"1.0\"?>\n<!-- a comment -->\n<?pi before?>\n"
                         "<a x=\"1\">\n  <b>t</b>\n  <b>u</b>\n  <c/>\n  <d></d>\n"
                         "  <e><![CDATA[<not> & markup]]></e>\n"
                         "  <f>one<!-- dropped -->two<?pi dropped?><![CDATA[three]]></f>\n"
                         "  <g xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" "
                         "xsi:nil=\"true\"/>\n"
                         "  <h y=\"&amp;&lt;&#38;&#x41;\">&#x1F600;&amp;</h>\n"
                         "  <m>mixed <i>in</i> text</m>\n"
                         "</a>",
                         NULL);
    expect_at(j, "a/@x", "\"1\"");
    expect_at(j, "a/b", "[\"t\",\"u\"]");
    expect_at(j, "a/c", "\"\"");
    expect_at(j, "a/d", "\"\"");
    expect_at(j, "a/e", "\"<not> & markup\"");
    expect_at(j, "a/f", "\"onetwothree\"");
    expect_at(j, "a/g", "null");
    expect_at(j, "a/h/@y", "\"&<&A\"");
    expect_at(j, "a/h/#text", "\"\\ud83d\\ude00&\"");
    expect_at(j, "a/m/#text", "\"mixed  text\"");
    expect_at(j, "a/m/i", "\"in\"");
    assert_int_equal(json_object_size(json_object_get(j, "a")), 9);
    json_decref(j);

    /* coerce: JSON numbers and booleans only */
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.coerce = true;
    j = from_xml("<n a=\"1\"><i>-12</i><r>1.5e3</r><t>true</t><f>false</f><s>007</s>"
                 "<x>0x1F</x><p>+1</p><d>1.</d><b>99999999999999999999</b><h>1e999</h>"
                 "<T>True</T><e></e><sp> 1</sp></n>",
                 &o);
    expect_at(j, "n/@a", "1");
    expect_at(j, "n/i", "-12");
    expect_at(j, "n/r", "1500.0");
    expect_at(j, "n/t", "true");
    expect_at(j, "n/f", "false");
    expect_at(j, "n/s", "\"007\"");
    expect_at(j, "n/x", "\"0x1F\"");
    expect_at(j, "n/p", "\"+1\"");
    expect_at(j, "n/d", "\"1.\"");
    expect_at(j, "n/b", "\"99999999999999999999\""); /* does not fit an integer: kept */
    expect_at(j, "n/h", "\"1e999\"");                /* not a finite double: kept */
    expect_at(j, "n/T", "\"True\"");
    expect_at(j, "n/e", "\"\"");
    expect_at(j, "n/sp", "\" 1\"");
    json_decref(j);

    /* force_array: by name anywhere, by path from the root; [] comes back
     * for a missing path */
    static const char *const force[] = {"item", "/r/list/entry", "/r/none", "/r/x/empty"};
    o.coerce = false;
    o.force_array = force;
    o.n_force_array = 4;
    j = from_xml("<r><item>1</item><list><entry>a</entry></list><sub><item>2</item>"
                 "<entry>b</entry></sub><x>text</x></r>",
                 &o);
    expect_at(j, "r/item", "[\"1\"]");
    expect_at(j, "r/list/entry", "[\"a\"]");
    expect_at(j, "r/sub/item", "[\"2\"]");
    expect_at(j, "r/sub/entry", "\"b\""); /* not that path */
    expect_at(j, "r/none", "[]");
    expect_at(j, "r/x", "{\"#text\":\"text\",\"empty\":[]}");
    json_decref(j);
}

static void test_xml_encodings_in(void **state)
{
    (void)state;
    const char latin1[] = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>caf\xe9</a>";
    sl_error err = {0};
    json_t *j = sl_xml_to_json(latin1, sizeof latin1 - 1, NULL, &err);
    assert_non_null(j);
    expect_at(j, "a", "\"caf\\u00e9\"");
    json_decref(j);
    /* UTF-16LE with a BOM */
    const char utf16[] = "\xff\xfe<\0a\0>\0\xe9\0<\0/\0a\0>\0";
    j = sl_xml_to_json(utf16, sizeof utf16 - 1, NULL, &err);
    assert_non_null(j);
    expect_at(j, "a", "\"\\u00e9\"");
    json_decref(j);
}

/* ---- real-world shaped documents ---------------------------------------------- */

static const char SOAP_11[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"\n"
    "               xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n"
    "               xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\">\n"
    "  <soap:Header>\n"
    "    <wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/"
    "oasis-200401-wss-wssecurity-secext-1.0.xsd\" soap:mustUnderstand=\"1\">\n"
    "      <wsse:UsernameToken>\n"
    "        <wsse:Username>gateway</wsse:Username>\n"
    "        <wsse:Password Type=\"PasswordText\">s3cr&amp;t</wsse:Password>\n"
    "      </wsse:UsernameToken>\n"
    "    </wsse:Security>\n"
    "  </soap:Header>\n"
    "  <soap:Body>\n"
    "    <m:GetStockPriceResponse xmlns:m=\"http://example.com/stock\">\n"
    "      <m:Symbol>IBM</m:Symbol>\n"
    "      <m:Price xsi:type=\"xsd:decimal\">134.50</m:Price>\n"
    "      <m:Volume>1200000</m:Volume>\n"
    "      <m:Halted>false</m:Halted>\n"
    "      <m:Note xsi:nil=\"true\"/>\n"
    "    </m:GetStockPriceResponse>\n"
    "  </soap:Body>\n"
    "</soap:Envelope>\n";

static const char SOAP_FAULT[] =
    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body><s:Fault>"
    "<faultcode>s:Client</faultcode><faultstring xml:lang=\"en\">Invalid order id</faultstring>"
    "<detail><e:Error xmlns:e=\"urn:erp\"><e:Code>E042</e:Code></e:Error></detail>"
    "</s:Fault></s:Body></s:Envelope>";

static const char RSS_20[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<rss version=\"2.0\" xmlns:atom=\"http://www.w3.org/2005/Atom\" "
    "xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n"
    "<channel>\n"
    "  <title>Sluice release notes</title>\n"
    "  <link>https://sluice.example/releases</link>\n"
    "  <description>New versions &amp; fixes</description>\n"
    "  <language>en-us</language>\n"
    "  <atom:link href=\"https://sluice.example/feed.xml\" rel=\"self\" "
    "type=\"application/rss+xml\"/>\n"
    "  <item>\n"
    "    <title>0.2.0</title>\n"
    "    <link>https://sluice.example/releases/0.2.0</link>\n"
    "    <description><![CDATA[<p>Kafka output &amp; <b>breakers</b></p>]]></description>\n"
    "    <dc:creator>The Sluice team</dc:creator>\n"
    "    <category>release</category>\n"
    "    <category>kafka</category>\n"
    "    <guid isPermaLink=\"false\">rel-0.2.0</guid>\n"
    "    <pubDate>Tue, 02 Apr 2024 09:00:00 GMT</pubDate>\n"
    "  </item>\n"
    "  <item>\n"
    "    <title>0.1.0</title>\n"
    "    <link>https://sluice.example/releases/0.1.0</link>\n"
    "    <description>First release</description>\n"
    "    <category>release</category>\n"
    "    <guid isPermaLink=\"false\">rel-0.1.0</guid>\n"
    "    <enclosure url=\"https://sluice.example/sluice-0.1.0.tar.gz\" length=\"482133\" "
    "type=\"application/gzip\"/>\n"
    "  </item>\n"
    "</channel>\n"
    "</rss>\n";

static const char UBL_21[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Invoice xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\"\n"
    "  xmlns:cac=\"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2\"\n"
    "  xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2\">\n"
    "  <cbc:UBLVersionID>2.1</cbc:UBLVersionID>\n"
    "  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>\n"
    "  <cbc:ID>INV-2024-0042</cbc:ID>\n"
    "  <cbc:IssueDate>2024-03-31</cbc:IssueDate>\n"
    "  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>\n"
    "  <cbc:Note>M\xc3\xbcller &amp; S\xc3\xb6hne \xe2\x80\x93 Lieferung M\xc3\xa4rz</cbc:Note>\n"
    "  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>\n"
    "  <cac:AccountingSupplierParty><cac:Party>\n"
    "    <cbc:EndpointID schemeID=\"0088\">4012345000009</cbc:EndpointID>\n"
    "    <cac:PartyName><cbc:Name>M\xc3\xbcller GmbH</cbc:Name></cac:PartyName>\n"
    "    <cac:PostalAddress><cbc:StreetName>Hauptstra\xc3\x9f"
    "e 1</cbc:StreetName><cbc:CityName>Berlin</cbc:CityName>\n"
    "      <cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country>\n"
    "    </cac:PostalAddress>\n"
    "  </cac:Party></cac:AccountingSupplierParty>\n"
    "  <cac:TaxTotal><cbc:TaxAmount currencyID=\"EUR\">38.00</cbc:TaxAmount></cac:TaxTotal>\n"
    "  <cac:LegalMonetaryTotal>\n"
    "    <cbc:LineExtensionAmount currencyID=\"EUR\">200.00</cbc:LineExtensionAmount>\n"
    "    <cbc:PayableAmount currencyID=\"EUR\">238.00</cbc:PayableAmount>\n"
    "  </cac:LegalMonetaryTotal>\n"
    "  <cac:InvoiceLine>\n"
    "    <cbc:ID>1</cbc:ID>\n"
    "    <cbc:InvoicedQuantity unitCode=\"C62\">4</cbc:InvoicedQuantity>\n"
    "    <cbc:LineExtensionAmount currencyID=\"EUR\">120.00</cbc:LineExtensionAmount>\n"
    "    <cac:Item><cbc:Name>Ventil DN50</cbc:Name></cac:Item>\n"
    "  </cac:InvoiceLine>\n"
    "  <cac:InvoiceLine>\n"
    "    <cbc:ID>2</cbc:ID>\n"
    "    <cbc:InvoicedQuantity unitCode=\"C62\">2</cbc:InvoicedQuantity>\n"
    "    <cbc:LineExtensionAmount currencyID=\"EUR\">80.00</cbc:LineExtensionAmount>\n"
    "    <cac:Item><cbc:Name>Dichtung</cbc:Name></cac:Item>\n"
    "  </cac:InvoiceLine>\n"
    "</Invoice>\n";

/* The JSON read from a real-world document converts back and reads the same. */
static void assert_stable(const json_t *j, const sl_xml_opts *o, const char *label)
{
    assert_true(round_trip(j, o, label));
}

static void test_soap(void **state)
{
    (void)state;
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.coerce = true;
    json_t *j = from_xml(SOAP_11, &o);
    const char *env = "soap:Envelope";
    (void)env;
    expect_at(j, "soap:Envelope/@xmlns:soap", "\"http://schemas.xmlsoap.org/soap/envelope/\"");
    expect_at(j, "soap:Envelope/soap:Header/wsse:Security/@soap:mustUnderstand", "1");
    expect_at(j, "soap:Envelope/soap:Header/wsse:Security/wsse:UsernameToken/wsse:Username",
              "\"gateway\"");
    expect_at(j, "soap:Envelope/soap:Header/wsse:Security/wsse:UsernameToken/wsse:Password",
              "{\"@Type\":\"PasswordText\",\"#text\":\"s3cr&t\"}");
    const char *resp = "soap:Envelope/soap:Body/m:GetStockPriceResponse";
    char p[200];
    snprintf(p, sizeof p, "%s/@xmlns:m", resp);
    expect_at(j, p, "\"http://example.com/stock\"");
    snprintf(p, sizeof p, "%s/m:Symbol", resp);
    expect_at(j, p, "\"IBM\"");
    snprintf(p, sizeof p, "%s/m:Price", resp);
    expect_at(j, p, "{\"@xsi:type\":\"xsd:decimal\",\"#text\":134.5}");
    snprintf(p, sizeof p, "%s/m:Volume", resp);
    expect_at(j, p, "1200000");
    snprintf(p, sizeof p, "%s/m:Halted", resp);
    expect_at(j, p, "false");
    snprintf(p, sizeof p, "%s/m:Note", resp);
    expect_at(j, p, "null");
    assert_stable(j, &o, "soap");
    json_decref(j);

    j = from_xml(SOAP_FAULT, NULL);
    expect_at(j, "s:Envelope/s:Body/s:Fault/faultcode", "\"s:Client\"");
    expect_at(j, "s:Envelope/s:Body/s:Fault/faultstring",
              "{\"@xml:lang\":\"en\",\"#text\":\"Invalid order id\"}");
    expect_at(j, "s:Envelope/s:Body/s:Fault/detail/e:Error/e:Code", "\"E042\"");
    assert_stable(j, NULL, "soap fault");
    json_decref(j);

    /* the key of a SOAP message, by XPath with the document's prefixes */
    char *out;
    size_t n;
    sl_error err = {0};
    assert_int_equal(sl_xml_eval_xpath(SOAP_11, strlen(SOAP_11),
                                       "/soap:Envelope/soap:Body/m:GetStockPriceResponse/m:Symbol",
                                       &out, &n, &err),
                     0);
    assert_string_equal(out, "IBM");
    assert_int_equal(n, 3);
    free(out);
}

static void test_rss(void **state)
{
    (void)state;
    static const char *const force[] = {"item", "category"};
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.force_array = force;
    o.n_force_array = 2;
    json_t *j = from_xml(RSS_20, &o);
    expect_at(j, "rss/@version", "\"2.0\"");
    expect_at(j, "rss/channel/title", "\"Sluice release notes\"");
    expect_at(j, "rss/channel/description", "\"New versions & fixes\"");
    expect_at(j, "rss/channel/atom:link/@rel", "\"self\"");
    expect_at(j, "rss/channel/item/0/title", "\"0.2.0\"");
    expect_at(j, "rss/channel/item/0/description", "\"<p>Kafka output &amp; <b>breakers</b></p>\"");
    expect_at(j, "rss/channel/item/0/dc:creator", "\"The Sluice team\"");
    expect_at(j, "rss/channel/item/0/category", "[\"release\",\"kafka\"]");
    expect_at(j, "rss/channel/item/0/guid", "{\"@isPermaLink\":\"false\",\"#text\":\"rel-0.2.0\"}");
    expect_at(j, "rss/channel/item/1/category", "[\"release\"]");
    expect_at(j, "rss/channel/item/1/enclosure/@length", "\"482133\"");
    assert_int_equal(json_array_size(json_object_get(
                         json_object_get(json_object_get(j, "rss"), "channel"), "item")),
                     2);
    assert_stable(j, &o, "rss");
    json_decref(j);
}

static void test_ubl(void **state)
{
    (void)state;
    static const char *const force[] = {"/Invoice/cac:InvoiceLine"};
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.force_array = force;
    o.n_force_array = 1;
    json_t *j = from_xml(UBL_21, &o);
    expect_at(j, "Invoice/@xmlns", "\"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2\"");
    expect_at(j, "Invoice/cbc:ID", "\"INV-2024-0042\"");
    expect_at(j, "Invoice/cbc:UBLVersionID", "\"2.1\"");
    expect_at(j, "Invoice/cbc:Note", "\"M\\u00fcller & S\\u00f6hne \\u2013 Lieferung M\\u00e4rz\"");
    expect_at(j, "Invoice/cac:AccountingSupplierParty/cac:Party/cbc:EndpointID",
              "{\"@schemeID\":\"0088\",\"#text\":\"4012345000009\"}");
    expect_at(j, "Invoice/cac:AccountingSupplierParty/cac:Party/cac:PostalAddress/cbc:StreetName",
              "\"Hauptstra\\u00dfe 1\"");
    expect_at(j, "Invoice/cac:LegalMonetaryTotal/cbc:PayableAmount",
              "{\"@currencyID\":\"EUR\",\"#text\":\"238.00\"}");
    expect_at(j, "Invoice/cac:InvoiceLine/1/cac:Item/cbc:Name", "\"Dichtung\"");
    expect_at(j, "Invoice/cac:InvoiceLine/0/cbc:InvoicedQuantity/@unitCode", "\"C62\"");
    assert_stable(j, &o, "ubl");
    json_decref(j);

    /* a default namespace: XPath 1.0 needs local-name() for unprefixed names */
    char *out = NULL;
    sl_error err = {0};
    assert_int_equal(sl_xml_eval_xpath(UBL_21, strlen(UBL_21), "/*[local-name()='Invoice']/cbc:ID",
                                       &out, NULL, &err),
                     0);
    assert_string_equal(out, "INV-2024-0042");
    free(out);
}

/* ---- property test ---------------------------------------------------------------- */

typedef struct prng {
    uint64_t s;
} prng;

static uint64_t next_u64(prng *r)
{
    r->s += 0x9E3779B97F4A7C15ULL; /* splitmix64 */
    uint64_t z = r->s;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned pick(prng *r, unsigned n)
{
    return (unsigned)(next_u64(r) % n);
}

/* Whether s would come back as a number or boolean under coerce. */
static bool reads_as_scalar(const char *s)
{
    if (!strcmp(s, "true") || !strcmp(s, "false"))
        return true;
    json_error_t je;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
    bool num = j && json_is_number(j) && s[0] != ' ' && s[strlen(s) - 1] != ' ' &&
               !strchr(s, '\n') && !strchr(s, '\t') && !strchr(s, '\r');
    json_decref(j);
    return num;
}

static const char *const PIECES[] = {"a",
                                     "Z",
                                     "q",
                                     "0",
                                     "7",
                                     " ",
                                     "  ",
                                     "\t",
                                     "\n",
                                     "\r",
                                     "\r\n",
                                     "<",
                                     ">",
                                     "&",
                                     "\"",
                                     "'",
                                     "]]>",
                                     "&amp;",
                                     "\xc3\xa9",
                                     "\xd7\xa9\xd7\x9c",
                                     "\xd9\x85",
                                     "\xe4\xb8\xad",
                                     "\xf0\x9f\x98\x80",
                                     "\xf0\x9d\x84\x9e",
                                     "\xe2\x80\x8f",
                                     "\xef\xbf\xbd",
                                     "\xc2\xa0",
                                     "_x0041_",
                                     "-",
                                     ".",
                                     "1e5",
                                     "true",
                                     "x",
                                     "yz"};

static char *gen_text(prng *r, bool coerce, bool need_nonws)
{
    for (;;) {
        char buf[256] = "";
        size_t n = pick(r, 8);
        for (size_t i = 0; i < n; i++)
            strcat(buf, PIECES[pick(r, sizeof PIECES / sizeof PIECES[0])]);
        if (coerce && reads_as_scalar(buf))
            continue;
        bool nonws = false;
        for (const char *p = buf; *p; p++)
            nonws = nonws || !(*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r');
        if (need_nonws && !nonws)
            continue;
        return strdup(buf);
    }
}

static json_t *gen_scalar(prng *r, bool coerce, bool allow_null, bool need_nonws)
{
    unsigned k = pick(r, coerce ? 10 : 5);
    if (allow_null && k == 0)
        return json_null();
    if (coerce && k >= 5) {
        static const double reals[] = {-0.0, 1e308, 5e-324,     0.1,
                                       1.0,  -2.5,  123456.789, 2.2250738585072014e-308};
        switch (k) {
            case 5:
                return json_integer((json_int_t)next_u64(r));
            case 6:
                return json_integer((json_int_t)pick(r, 2000) - 1000);
            case 7: {
                double d;
                do {
                    uint64_t bits = next_u64(r);
                    memcpy(&d, &bits, sizeof d);
                } while (!isfinite(d));
                return json_real(d);
            }
            case 8: {
                /* decimal-looking reals (the writer's fixed-notation path) */
                static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e9, 1e12};
                if (pick(r, 3) == 0)
                    return json_real(reals[pick(r, sizeof reals / sizeof reals[0])]);
                double m = (double)(next_u64(r) >> pick(r, 64));
                double d = m / p10[pick(r, sizeof p10 / sizeof p10[0])];
                return json_real(pick(r, 2) ? -d : d);
            }
            default:
                return json_boolean(pick(r, 2));
        }
    }
    char *s = gen_text(r, coerce, need_nonws);
    json_t *j = json_string(s);
    free(s);
    return j;
}

static const char *const ELEM_NAMES[] = {"a",
                                         "b",
                                         "item",
                                         "x-y",
                                         "x.y",
                                         "_u",
                                         "p:q",
                                         "ns1:el",
                                         "first name",
                                         "1abc",
                                         "\xc3\xa9t\xc3\xa9",
                                         "\xe5\x90\x8d\xe5\x89\x8d",
                                         "a_x0041_b",
                                         "_x",
                                         "my_xml",
                                         "dollar$",
                                         "a:b:c",
                                         "lst",
                                         "\xd7\xa9\xd7\x9d"};
static const char *const ATTR_NAMES[] = {"@id",     "@p:at", "@x y",    "@xml:lang",
                                         "@data-v", "@1st",  "@_x0020_"};

static json_t *gen_value(prng *r, bool coerce, int depth);

/* An object within the convention: not empty, not only #text, #text with
 * child elements has a non-space character. */
static json_t *gen_object(prng *r, bool coerce, int depth)
{
    json_t *o = json_object();
    unsigned n_attrs = pick(r, 3), n_children = pick(r, 4);
    if (n_attrs == 0 && n_children == 0)
        n_children = 1;
    for (unsigned i = 0; i < n_attrs; i++)
        json_object_set_new(o, ATTR_NAMES[pick(r, sizeof ATTR_NAMES / sizeof ATTR_NAMES[0])],
                            gen_scalar(r, coerce, false, false));
    if (pick(r, 6) == 0)
        json_object_set_new(o, "@xmlns:zz", json_string("urn:zz"));
    for (unsigned i = 0; i < n_children; i++) {
        const char *k = ELEM_NAMES[pick(r, sizeof ELEM_NAMES / sizeof ELEM_NAMES[0])];
        if (!strcmp(k, "lst")) { /* force_array by name: any length from 1 */
            json_t *arr = json_array();
            unsigned n = 1 + pick(r, 3);
            for (unsigned j = 0; j < n; j++)
                json_array_append_new(arr, gen_value(r, coerce, depth + 1));
            json_object_set_new(o, k, arr);
        } else if (pick(r, 5) == 0) { /* repeated siblings: at least two */
            json_t *arr = json_array();
            unsigned n = 2 + pick(r, 3);
            for (unsigned j = 0; j < n; j++)
                json_array_append_new(arr, gen_value(r, coerce, depth + 1));
            json_object_set_new(o, k, arr);
        } else {
            json_object_set_new(o, k, gen_value(r, coerce, depth + 1));
        }
    }
    bool has_children = false;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        has_children = has_children || k[0] != '@';
    }
    if (pick(r, 4) == 0) {
        json_t *t = gen_scalar(r, coerce, false, has_children);
        if (json_is_string(t) && json_string_length(t) == 0) {
            json_decref(t);
            t = json_string("t");
        }
        json_object_set_new(o, "#text", t);
    }
    return o;
}

static json_t *gen_value(prng *r, bool coerce, int depth)
{
    if (depth < 6 && pick(r, 3) == 0)
        return gen_object(r, coerce, depth);
    return gen_scalar(r, coerce, true, false);
}

static void test_property_round_trip(void **state)
{
    (void)state;
    uint64_t seed = 0x5EEDC0DE2024ULL;
    const char *env = getenv("JSON_XML_SEED");
    if (env)
        seed = strtoull(env, NULL, 0);
    const int cases = 6000;
    print_message("property test: seed 0x%llx (set JSON_XML_SEED to change), %d cases\n",
                  (unsigned long long)seed, cases);
    prng r = {seed};
    static const char *const force[] = {"lst"};
    int failed = 0;
    for (int i = 0; i < cases && failed < 5; i++) {
        bool coerce = i % 2;
        json_t *doc = json_object();
        const char *root = ELEM_NAMES[pick(&r, sizeof ELEM_NAMES / sizeof ELEM_NAMES[0])];
        if (!strcmp(root, "lst"))
            root = "a";
        json_object_set_new(doc, root, gen_value(&r, coerce, 1));
        sl_xml_opts o;
        sl_xml_opts_init(&o);
        o.coerce = coerce;
        o.pretty = pick(&r, 4) == 0;
        o.force_array = force;
        o.n_force_array = 1;
        char label[96];
        snprintf(label, sizeof label, "property case %d (seed 0x%llx)", i,
                 (unsigned long long)seed);
        failed += !round_trip(doc, &o, label);
        json_decref(doc);
    }
    assert_int_equal(failed, 0);
}

/* ---- hardening -------------------------------------------------------------------- */

static void test_billion_laughs(void **state)
{
    (void)state;
    const char *lol = "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE lolz [\n"
                      " <!ENTITY lol \"lol\">\n"
                      " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
                      " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
                      " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
                      " <!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
                      "]>\n"
                      "<lolz>&lol9;</lolz>";
    expect_xml_error(lol, NULL,
                     "XML line 3: the DOCTYPE declares entity 'lol': entity declarations are "
                     "refused");
    /* parameter entities too */
    expect_xml_error("<!DOCTYPE a [<!ENTITY % p \"x\"> %p;]><a/>", NULL, "declares entity 'p'");
    /* the tree parser (validate, XPath) refuses the same */
    sl_error err = {0};
    assert_null(sl_xml_parse_tree(lol, strlen(lol), &err));
    assert_non_null(strstr(err.msg, "XML line 3: the DOCTYPE declares entity 'lol'"));
    char *out = (char *)"untouched";
    assert_int_equal(sl_xml_eval_xpath(lol, strlen(lol), "/lolz", &out, NULL, &err), -1);
    assert_null(out);
}

static void test_xxe(void **state)
{
    (void)state;
    const char *xxe = "<?xml version=\"1.0\"?>\n"
                      "<!DOCTYPE foo [ <!ENTITY xxe SYSTEM \"file:///etc/passwd\"> ]>\n"
                      "<foo>&xxe;</foo>";
    expect_xml_error(xxe, NULL,
                     "XML line 2: the DOCTYPE declares entity 'xxe' (an external entity): "
                     "entity declarations are refused");
    expect_xml_error("<!DOCTYPE foo [<!ENTITY % dtd SYSTEM \"http://127.0.0.1:1/x.dtd\"> %dtd;]>"
                     "<foo/>",
                     NULL, "declares entity 'dtd'");
    sl_error err = {0};
    assert_null(sl_xml_parse_tree(xxe, strlen(xxe), &err));
    assert_non_null(strstr(err.msg, "declares entity 'xxe'"));
    char *out = NULL;
    assert_int_equal(sl_xml_eval_xpath(xxe, strlen(xxe), "string(/foo)", &out, NULL, &err), -1);
    assert_null(out);

    /* an external DTD is never loaded: the file's content never shows up */
    const char *ext = "<!DOCTYPE foo SYSTEM \"file:///etc/passwd\"><foo>a&xxe;b</foo>";
    json_t *j = from_xml(ext, NULL);
    expect_at(j, "foo", "\"ab\"");
    json_decref(j);
    xmlDocPtr doc = sl_xml_parse_tree(ext, strlen(ext), &err);
    assert_non_null(doc);
    xmlFreeDoc(doc);
    assert_int_equal(sl_xml_eval_xpath(ext, strlen(ext), "string(/foo)", &out, NULL, &err), 0);
    assert_string_equal(out, "ab");
    free(out);
    /* a DOCTYPE without entities is fine */
    j = from_xml("<!DOCTYPE note [<!ELEMENT note (#PCDATA)>]><note>hi</note>", NULL);
    expect_at(j, "note", "\"hi\"");
    json_decref(j);
}

static char *nested_xml(int depth)
{
    size_t cap = (size_t)depth * 8 + 16;
    char *s = malloc(cap);
    size_t n = 0;
    for (int i = 0; i < depth; i++)
        n += (size_t)snprintf(s + n, cap - n, "<e>");
    n += (size_t)snprintf(s + n, cap - n, "x");
    for (int i = 0; i < depth; i++)
        n += (size_t)snprintf(s + n, cap - n, "</e>");
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    char *ok = nested_xml(SL_XML_MAX_DEPTH);
    json_t *j = from_xml(ok, NULL);
    json_decref(j);
    free(ok);
    char *deep = nested_xml(SL_XML_MAX_DEPTH + 1);
    expect_xml_error(deep, NULL, "XML line 1: elements nest deeper than 256 levels");
    free(deep);
    deep = nested_xml(100000);
    expect_xml_error(deep, NULL, "nest deeper than 256");
    free(deep);

    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.max_depth = 3;
    expect_xml_error("<a><b><c><d/></c></b></a>", &o, "deeper than 3 levels");
    o.max_size = 10;
    expect_xml_error("<a>0123456789</a>", &o, "larger than the limit of 10");
}

static void test_malformed(void **state)
{
    (void)state;
    static const struct {
        const char *xml;
        const char *want;
    } cases[] = {
        {"<a>\n<b>\n</a>", "XML line 3: Opening and ending tag mismatch: b line 2 and a"},
        {"<a>\n  <b x=\"1\" x=\"2\"/>\n</a>", "XML line 2: Attribute x redefined"},
        {"<a>&undefined;</a>", "XML line 1: Entity 'undefined' not defined"},
        {"<a>1</a><b>2</b>", "Extra content at the end of the document"},
        {"", "the document is empty"},
        {"   ", "XML line 1: Start tag expected"},
        {"just text", "Start tag expected"},
        {"<a>\n\n\n<", "XML line 4:"},
        {"<a>\xff\xfe</a>", "Input is not proper UTF-8"},
        {"<a b=1/>", "AttValue: \" or ' expected"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_xml_error(cases[i].xml, NULL, cases[i].want);
}

/* ---- XPath --------------------------------------------------------------------------- */

static void test_xpath(void **state)
{
    (void)state;
    const char *x = "<order id=\"o-7\"><customer><id>42</id></customer>"
                    "<item>a</item><item>b</item></order>";
    size_t xl = strlen(x);
    char *out = NULL;
    size_t n = 0;
    sl_error err = {0};
    assert_int_equal(sl_xml_eval_xpath(x, xl, "/order/customer/id", &out, &n, &err), 0);
    assert_string_equal(out, "42");
    assert_int_equal(n, 2);
    free(out);
    assert_int_equal(sl_xml_eval_xpath(x, xl, "/order/@id", &out, &n, &err), 0);
    assert_string_equal(out, "o-7");
    free(out);
    assert_int_equal(sl_xml_eval_xpath(x, xl, "/order/item", &out, &n, &err), 0);
    assert_string_equal(out, "a"); /* the first in document order */
    free(out);
    assert_int_equal(sl_xml_eval_xpath(x, xl, "count(/order/item)", &out, &n, &err), 0);
    assert_string_equal(out, "2");
    free(out);
    assert_int_equal(sl_xml_eval_xpath(x, xl, "/order/nothing", &out, &n, &err), 0);
    assert_null(out);
    assert_int_equal(n, 0);
    assert_int_equal(sl_xml_eval_xpath(x, xl, "/order/[", &out, &n, &err), -1);
    assert_non_null(strstr(err.msg, "XPath '/order/['"));
    assert_int_equal(sl_xml_eval_xpath("<a>", 3, "/a", &out, &n, &err), -1);
    assert_non_null(strstr(err.msg, "XML line 1"));

    assert_int_equal(sl_xml_xpath_check("/a/b[@c='d']", &err), 0);
    assert_int_equal(sl_xml_xpath_check("/a/b[", &err), -1);
    assert_non_null(strstr(err.msg, "XPath '/a/b['"));
}

/* ---- the steps ------------------------------------------------------------------------ */

/* A hand-built node tree: nodes are freed by free_node. */
static sl_node *mk_scalar(const char *v)
{
    sl_node *n = calloc(1, sizeof *n);
    n->kind = SL_NODE_SCALAR;
    n->scalar = strdup(v);
    n->pos = (sl_conf_pos){"route.yaml", 3, 7};
    return n;
}

static sl_node *mk_seq(int n, ...)
{
    sl_node *s = calloc(1, sizeof *s);
    s->kind = SL_NODE_SEQ;
    s->items = calloc((size_t)n, sizeof *s->items);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++)
        s->items[s->n_items++] = va_arg(ap, sl_node *);
    va_end(ap);
    return s;
}

/* mk_map(n, "key", node, "key", node, ...) */
static sl_node *mk_map(int n, ...)
{
    sl_node *m = calloc(1, sizeof *m);
    m->kind = SL_NODE_MAP;
    m->pos = (sl_conf_pos){"route.yaml", 3, 5};
    m->pairs = calloc((size_t)(n ? n : 1), sizeof *m->pairs);
    va_list ap;
    va_start(ap, n);
    for (int i = 0; i < n; i++) {
        sl_node_pair *p = &m->pairs[m->n_pairs++];
        p->key = strdup(va_arg(ap, const char *));
        p->key_pos = (sl_conf_pos){"route.yaml", 4 + i, 9};
        p->value = va_arg(ap, sl_node *);
    }
    va_end(ap);
    return m;
}

static void free_node(sl_node *n)
{
    if (!n)
        return;
    free(n->scalar);
    for (size_t i = 0; i < n->n_pairs; i++) {
        free(n->pairs[i].key);
        free_node(n->pairs[i].value);
    }
    free(n->pairs);
    for (size_t i = 0; i < n->n_items; i++)
        free_node(n->items[i]);
    free(n->items);
    free(n);
}

typedef struct step_fixture {
    sl_step_conf conf;
    sl_step step;
    sl_node *node;
    sl_pool pool; /* the parsed settings (conf.priv) */
} step_fixture;

static int step_init(step_fixture *f, const sl_step_type *t, sl_node *node, sl_error *err)
{
    memset(f, 0, sizeof *f);
    f->node = node;
    f->conf.pos = (sl_conf_pos){"route.yaml", 3, 5};
    f->step.type = t;
    f->step.conf = &f->conf;
    f->step.route = "test";
    /* as a config load does: the type parses its settings, then init */
    if (sl_step_conf_parse(t, &f->conf, node, &f->pool, err) < 0 || t->init(&f->step, err) < 0) {
        sl_pool_free(&f->pool); /* the caller frees only the node on failure */
        return -1;
    }
    return 0;
}

static void step_done(step_fixture *f)
{
    if (f->step.type->destroy)
        f->step.type->destroy(&f->step);
    free_node(f->node);
    sl_pool_free(&f->pool);
}

static sl_msg *msg_with(const char *body)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    return m;
}

static void test_step_json_to_xml(void **state)
{
    (void)state;
    step_fixture f;
    sl_error err = {0};
    assert_int_equal(step_init(&f, &sl_json_to_xml_step,
                               mk_map(3, "root", mk_scalar("order"), "declaration",
                                      mk_scalar("false"), "pretty", mk_scalar("no")),
                               &err),
                     0);
    sl_msg *m = msg_with("{\"@id\":\"7\",\"customer\":{\"id\":\"42\"},\"item\":[\"a\",\"b\"]}");
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "<order id=\"7\"><customer><id>42</id></customer>"
                                 "<item>a</item><item>b</item></order>");
    assert_int_equal(m->body_len, strlen(m->body));
    assert_string_equal(sl_msg_get_header(m, "content-type", NULL), "application/xml");
    assert_null(m->json);

    /* a body that is not JSON is a permanent failure that says why */
    assert_int_equal(sl_msg_set_body(m, "{\"a\":", 5), 0);
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "json_to_xml: body is not JSON"));
    assert_int_equal(sl_msg_set_body(m, "{\"a\":\"\\u0001\"}", 14), 0);
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "json_to_xml: a string in <a> contains U+0001"));
    sl_msg_free(m);
    step_done(&f);

    /* defaults (a null node), and the cached tree is used */
    assert_int_equal(step_init(&f, &sl_json_to_xml_step, NULL, &err), 0);
    m = msg_with("not even json");
    m->json = parse_json("{\"a\":\"cached\"}");
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<a>cached</a>");
    sl_msg_free(m);
    step_done(&f);

    /* encoding sets the charset */
    assert_int_equal(
        step_init(&f, &sl_json_to_xml_step, mk_map(1, "encoding", mk_scalar("ISO-8859-1")), &err),
        0);
    m = msg_with("{\"a\":\"\\u00e9\"}");
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(sl_msg_get_header(m, "content-type", NULL),
                        "application/xml; charset=ISO-8859-1");
    assert_non_null(strstr(m->body, "<a>\xe9</a>"));
    sl_msg_free(m);
    step_done(&f);

    /* bad settings fail as a config load reports them, with the position */
    assert_int_equal(step_init(&f, &sl_json_to_xml_step, mk_map(1, "rooot", mk_scalar("x")), &err),
                     -1);
    assert_string_equal(err.msg, "route.yaml:4:9: unknown key 'rooot' in json_to_xml (expected "
                                 "one of: root, declaration, encoding, pretty, envelope, wrap, "
                                 "namespaces)");
    free_node(f.node);
    assert_int_equal(
        step_init(&f, &sl_json_to_xml_step, mk_map(1, "pretty", mk_scalar("maybe")), &err), -1);
    assert_string_equal(err.msg,
                        "route.yaml:3:7: json_to_xml.pretty: expected true or false, got 'maybe'");
    free_node(f.node);
    assert_int_equal(
        step_init(&f, &sl_json_to_xml_step, mk_map(1, "encoding", mk_scalar("KLINGON")), &err), -1);
    assert_non_null(strstr(err.msg, "unknown encoding 'KLINGON'"));
    free_node(f.node);
}

static void test_step_xml_to_json(void **state)
{
    (void)state;
    step_fixture f;
    sl_error err = {0};
    assert_int_equal(
        step_init(&f, &sl_xml_to_json_step,
                  mk_map(2, "force_array", mk_seq(2, mk_scalar("/order/item"), mk_scalar("tag")),
                         "coerce", mk_scalar("true")),
                  &err),
        0);
    sl_msg *m = msg_with("<order id=\"7\"><item><qty>2</qty><tag>x</tag></item>"
                         "<paid>true</paid></order>");
    assert_int_equal(sl_xml_to_json_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(
        m->body, "{\"order\":{\"@id\":7,\"item\":[{\"qty\":2,\"tag\":[\"x\"]}],\"paid\":true}}");
    assert_string_equal(sl_msg_get_header(m, "content-type", NULL), "application/json");
    /* with coerce the body is written as text (exact numbers): no tree cached */
    assert_null(m->json);

    /* the next step (json_to_xml) uses that tree: the round trip */
    step_fixture g;
    assert_int_equal(
        step_init(&g, &sl_json_to_xml_step, mk_map(1, "declaration", mk_scalar("false")), &err), 0);
    assert_int_equal(sl_json_to_xml_step.process(&g.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "<order id=\"7\"><item><qty>2</qty><tag>x</tag></item>"
                                 "<paid>true</paid></order>");
    step_done(&g);

    assert_int_equal(sl_msg_set_body(m, "<order><item>", 13), 0);
    assert_int_equal(sl_xml_to_json_step.process(&f.step, m, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "xml_to_json: XML line 1:"));
    assert_string_equal(m->body, "<order><item>"); /* unchanged on failure */
    sl_msg_free(m);
    step_done(&f);

    /* a single force_array scalar is accepted; a map is not */
    assert_int_equal(
        step_init(&f, &sl_xml_to_json_step, mk_map(1, "force_array", mk_scalar("b")), &err), 0);
    m = msg_with("<a><b>1</b></a>");
    assert_int_equal(sl_xml_to_json_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "{\"a\":{\"b\":[\"1\"]}}");
    sl_msg_free(m);
    step_done(&f);
    assert_int_equal(step_init(&f, &sl_xml_to_json_step, mk_map(1, "force_array", mk_map(0)), &err),
                     -1);
    assert_non_null(strstr(err.msg, "xml_to_json.force_array: expected a list, got a map"));
    free_node(f.node);
}

/* ---- allocation failures ------------------------------------------------------------ */

/* Above 1 MiB the step writes JSON text without a tree: the same text,
 * nothing cached. */
static void test_step_xml_to_json_large_body(void **state)
{
    (void)state;
    size_t cap = (2u << 20) + 4096, n = 0;
    char *xml = malloc(cap);
    assert_non_null(xml);
    n += (size_t)snprintf(xml + n, cap - n, "<orders>");
    for (unsigned i = 0; n + 200 < (size_t)(2u << 20); i++)
        n += (size_t)snprintf(xml + n, cap - n,
                              "<order id=\"%u\"><qty>%u</qty><tag>a&amp;b</tag></order>", i, i % 7);
    n += (size_t)snprintf(xml + n, cap - n, "</orders>");
    sl_step_conf conf = {.type = (char *)"xml_to_json", .pos = {"route.yaml", 1, 1}};
    sl_step step = {.type = &sl_xml_to_json_step, .conf = &conf};
    sl_error err = {0};
    assert_int_equal(sl_xml_to_json_step.init(&step, &err), 0);
    sl_msg *m = sl_msg_new();
    assert_int_equal(sl_msg_set_body(m, xml, n), 0);
    assert_int_equal(sl_xml_to_json_step.process(&step, m, &err), SL_STEP_OK);
    json_t *tree = sl_xml_to_json(xml, n, NULL, &err);
    assert_non_null(tree);
    char *want = json_dumps(tree, JSON_COMPACT);
    assert_string_equal(m->body, want);
    assert_null(m->json); /* no tree was built */
    assert_string_equal(sl_msg_get_header(m, "content-type", NULL), "application/json");
    free(want);
    json_decref(tree);
    sl_msg_free(m);
    sl_xml_to_json_step.destroy(&step);
    free(xml);
}

static long alloc_budget = -1; /* allocations left before failing; -1: never fail */

static void *failing_malloc(size_t n)
{
    if (alloc_budget == 0)
        return NULL;
    if (alloc_budget > 0)
        alloc_budget--;
    return malloc(n);
}

/* Every jansson allocation of the reader (and of the step's dump) fails in
 * turn: each run must return NULL with SL_ENOMEM or succeed, and leak
 * nothing (ASan, valgrind). */
static void test_allocation_failures(void **state)
{
    (void)state;
    static const char *const force[] = {"/soap:Envelope/soap:Body/none", "m:Symbol"};
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.coerce = true;
    o.force_array = force;
    o.n_force_array = 2;
    json_set_alloc_funcs(failing_malloc, free);
    bool succeeded = false;
    int failures = 0;
    for (long n = 0; n < 5000 && !succeeded; n++) {
        sl_error err = {0};
        alloc_budget = n;
        json_t *j = sl_xml_to_json(SOAP_11, strlen(SOAP_11), &o, &err);
        alloc_budget = -1;
        if (j) {
            succeeded = true;
            json_decref(j);
        } else {
            if (err.code != SL_ENOMEM)
                fail_msg("after %ld allocations: %s (%s)", n, err.msg, sl_errcode_name(err.code));
            failures++;
        }
    }
    assert_true(succeeded);
    assert_true(failures > 50);

    /* the xml_to_json step: any failure is SL_STEP_FAIL, the message stays usable */
    sl_step_conf conf = {.type = (char *)"xml_to_json", .pos = {"route.yaml", 1, 1}};
    sl_step step = {.type = &sl_xml_to_json_step, .conf = &conf};
    sl_error err = {0};
    assert_int_equal(sl_xml_to_json_step.init(&step, &err), 0);
    succeeded = false;
    for (long n = 0; n < 5000 && !succeeded; n++) {
        sl_msg *m = sl_msg_new();
        assert_non_null(m);
        assert_int_equal(sl_msg_set_body(m, RSS_20, strlen(RSS_20)), 0);
        alloc_budget = n;
        int rc = sl_xml_to_json_step.process(&step, m, &err);
        alloc_budget = -1;
        if (rc == SL_STEP_OK) {
            succeeded = true;
            assert_non_null(m->json);
        } else {
            assert_int_equal(rc, SL_STEP_FAIL);
            assert_int_equal(err.code, SL_ENOMEM);
            assert_non_null(strstr(err.msg, "xml_to_json: out of memory"));
        }
        sl_msg_free(m);
    }
    sl_xml_to_json_step.destroy(&step);
    json_set_alloc_funcs(malloc, free);
    assert_true(succeeded);
}

/* ---- options: exact numbers, strip_namespaces, unwrap, wrap ---------------------- */

/* The JSON text sl_xml_to_json_text gives for xml (fails the test on error);
 * the caller frees it. The tree must hold the same values (from_xml). */
static char *json_text(const char *xml, const sl_xml_opts *o)
{
    json_decref(from_xml(xml, o));
    sl_error err = {0};
    size_t n = 0;
    char *t = sl_xml_to_json_text(xml, strlen(xml), o, &n, &err);
    if (!t)
        fail_msg("sl_xml_to_json_text failed: %s", err.msg);
    assert_int_equal(strlen(t), n);
    return t;
}

static void expect_json_text(const char *xml, const sl_xml_opts *o, const char *want)
{
    char *t = json_text(xml, o);
    assert_string_equal(t, want);
    free(t);
}

static void test_coerce_exact_numbers(void **state)
{
    (void)state;
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.coerce = true;
    expect_json_text("<o><p>123.40</p><q a=\"1.50\">0.1</q><e>1.5E3</e><i>-0</i><b>1e999</b>"
                     "<t>true</t></o>",
                     &o,
                     "{\"o\":{\"p\":123.40,\"q\":{\"@a\":1.50,\"#text\":0.1},\"e\":1.5E3,\"i\":-0,"
                     "\"b\":\"1e999\",\"t\":true}}");
    /* the tree holds the double */
    json_t *j = from_xml("<p>123.40</p>", &o);
    assert_true(json_is_real(json_object_get(j, "p")));
    assert_true(json_real_value(json_object_get(j, "p")) == 123.40);
    json_decref(j);

    /* the step writes the text: 123.40, not 123.40000000000001 */
    step_fixture f;
    sl_error err = {0};
    assert_int_equal(
        step_init(&f, &sl_xml_to_json_step, mk_map(1, "coerce", mk_scalar("true")), &err), 0);
    sl_msg *m = msg_with("<Order><Price>123.40</Price><Qty>3</Qty></Order>");
    assert_int_equal(sl_xml_to_json_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "{\"Order\":{\"Price\":123.40,\"Qty\":3}}");
    sl_msg_free(m);
    step_done(&f);
}

static const char SOAP_ORDER[] =
    "<?xml version=\"1.0\"?>\n"
    "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
    "xmlns:m=\"urn:example:orders\">"
    "<soap:Header><m:Trace m:id=\"t-1\"/></soap:Header>"
    "<soap:Body><m:Order m:status=\"new\"><m:Sku>A-1</m:Sku><m:Qty>2</m:Qty></m:Order></soap:Body>"
    "</soap:Envelope>";

static void test_strip_namespaces(void **state)
{
    (void)state;
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.strip_namespaces = true;
    expect_json_text(SOAP_ORDER, &o,
                     "{\"Envelope\":{\"Header\":{\"Trace\":{\"@id\":\"t-1\"}},\"Body\":{\"Order\":"
                     "{\"@status\":\"new\",\"Sku\":\"A-1\",\"Qty\":\"2\"}}}}");
    /* xsi:nil is still read by its namespace */
    expect_json_text("<a xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\"><b i:nil=\"true\"/>"
                     "</a>",
                     &o, "{\"a\":{\"b\":null}}");
    /* without the option the prefixes and declarations stay */
    o.strip_namespaces = false;
    char *t = json_text(SOAP_ORDER, &o);
    assert_non_null(strstr(t, "{\"soap:Envelope\":{\"@xmlns:soap\":"));
    free(t);
}

static void test_unwrap(void **state)
{
    (void)state;
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.strip_namespaces = true;
    o.coerce = true;
    o.unwrap = "/Envelope/Body";
    expect_json_text(SOAP_ORDER, &o, "{\"Order\":{\"@status\":\"new\",\"Sku\":\"A-1\",\"Qty\":2}}");
    /* with prefixes, the path names them */
    o.strip_namespaces = false;
    o.unwrap = "/soap:Envelope/soap:Body/";
    expect_json_text(SOAP_ORDER, &o,
                     "{\"m:Order\":{\"@m:status\":\"new\",\"m:Sku\":\"A-1\",\"m:Qty\":2}}");
    /* the first element at the path */
    o.unwrap = "/r/x";
    expect_json_text("<r><x><a>1</a></x><x><b>2</b></x></r>", &o, "{\"a\":1}");
    o.unwrap = "/r/y";
    expect_xml_error("<r><x><a>1</a></x></r>", &o, "unwrap: the document has no element at /r/y");
    o.unwrap = "/r/x";
    expect_xml_error("<r><x>text</x></r>", &o, "unwrap: no child elements or attributes in /r/x");
    sl_error err = {0};
    assert_null(sl_xml_to_json_text("<r><x>t</x></r>", 15, &o, NULL, &err));
    assert_non_null(strstr(err.msg, "unwrap: no child elements"));
}

static void test_wrap(void **state)
{
    (void)state;
    sl_xml_opts o;
    sl_xml_opts_init(&o);
    o.declaration = false;
    static const char *const ns[] = {"soap", "http://schemas.xmlsoap.org/soap/envelope/", "",
                                     "urn:example:orders"};
    o.wrap = "/soap:Envelope/soap:Body";
    o.wrap_ns = ns;
    o.n_wrap_ns = 2;
    char *x = to_xml("{\"Order\":{\"Sku\":\"A-1\",\"Qty\":2}}", &o);
    assert_string_equal(x,
                        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" "
                        "xmlns=\"urn:example:orders\"><soap:Body><Order><Sku>A-1</Sku>"
                        "<Qty>2</Qty></Order></soap:Body></soap:Envelope>");
    free(x);
    /* root names the element inside the innermost wrapper */
    o.root = "Order";
    o.n_wrap_ns = 1;
    x = to_xml("{\"Sku\":\"A-1\"}", &o);
    assert_string_equal(x,
                        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\">"
                        "<soap:Body><Order><Sku>A-1</Sku></Order></soap:Body></soap:Envelope>");
    free(x);
    /* the round trip: unwrap + strip_namespaces give the document back */
    o.root = NULL;
    o.wrap = "/Envelope/Body";
    json_t *doc = parse_json("{\"Order\":{\"Sku\":\"A-1\",\"Qty\":2}}");
    sl_error err = {0};
    size_t n;
    x = sl_json_to_xml(doc, &o, &n, &err);
    assert_non_null(x);
    sl_xml_opts back;
    sl_xml_opts_init(&back);
    back.coerce = true;
    back.strip_namespaces = true;
    back.unwrap = "/Envelope/Body";
    json_t *j = sl_xml_to_json(x, n, &back, &err);
    assert_non_null(j);
    assert_true(json_equal(doc, j));
    json_decref(j);
    free(x);
    /* not an object: refused */
    json_t *arr = parse_json("[1,2]");
    assert_null(sl_json_to_xml(arr, &o, &n, &err));
    assert_non_null(strstr(err.msg, "wrap: the document must be a JSON object"));
    json_decref(arr);
    o.wrap = "Envelope";
    assert_null(sl_json_to_xml(doc, &o, &n, &err));
    assert_non_null(strstr(err.msg, "is not a path"));
    json_decref(doc);
}

static void test_step_options(void **state)
{
    (void)state;
    step_fixture f;
    sl_error err = {0};
    assert_int_equal(step_init(&f, &sl_xml_to_json_step,
                               mk_map(3, "strip_namespaces", mk_scalar("true"), "unwrap",
                                      mk_scalar("/Envelope/Body"), "coerce", mk_scalar("true")),
                               &err),
                     0);
    sl_msg *m = msg_with(SOAP_ORDER);
    assert_int_equal(sl_xml_to_json_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "{\"Order\":{\"@status\":\"new\",\"Sku\":\"A-1\",\"Qty\":2}}");
    sl_msg_free(m);
    step_done(&f);

    assert_int_equal(
        step_init(&f, &sl_json_to_xml_step,
                  mk_map(2, "envelope", mk_scalar("soap11"), "declaration", mk_scalar("false")),
                  &err),
        0);
    m = msg_with("{\"Order\":{\"Sku\":\"A-1\"}}");
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/"
                                 "envelope/\"><soap:Body><Order><Sku>A-1</Sku></Order></soap:Body>"
                                 "</soap:Envelope>");
    assert_string_equal(sl_msg_get_header(m, "content-type", NULL), "text/xml");
    sl_msg_free(m);
    step_done(&f);

    sl_node *ns = mk_map(1, "m", mk_scalar("urn:m"));
    assert_int_equal(step_init(&f, &sl_json_to_xml_step,
                               mk_map(3, "wrap", mk_scalar("/m:Doc"), "namespaces", ns,
                                      "declaration", mk_scalar("false")),
                               &err),
                     0);
    m = msg_with("{\"m:A\":1}");
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "<m:Doc xmlns:m=\"urn:m\"><m:A>1</m:A></m:Doc>");
    sl_msg_free(m);
    step_done(&f);

    /* bad settings */
    assert_int_equal(
        step_init(&f, &sl_xml_to_json_step, mk_map(1, "unwrap", mk_scalar("Envelope")), &err), -1);
    assert_non_null(strstr(err.msg, "'unwrap' must be an element path"));
    free_node(f.node);
    assert_int_equal(
        step_init(&f, &sl_json_to_xml_step, mk_map(1, "envelope", mk_scalar("soap13")), &err), -1);
    assert_non_null(strstr(err.msg, "envelope"));
    free_node(f.node);
    assert_int_equal(step_init(&f, &sl_json_to_xml_step,
                               mk_map(2, "envelope", mk_scalar("soap11"), "wrap", mk_scalar("/a")),
                               &err),
                     -1);
    assert_non_null(strstr(err.msg, "cannot both be set"));
    free_node(f.node);
    assert_int_equal(step_init(&f, &sl_json_to_xml_step,
                               mk_map(1, "namespaces", mk_map(1, "m", mk_scalar("urn:m"))), &err),
                     -1);
    assert_non_null(strstr(err.msg, "set wrap"));
    free_node(f.node);
}

/* json_to_xml writes members in the JSON document's order */
static void test_step_keeps_order(void **state)
{
    (void)state;
    step_fixture f;
    sl_error err = {0};
    assert_int_equal(
        step_init(&f, &sl_json_to_xml_step, mk_map(1, "declaration", mk_scalar("false")), &err), 0);
    sl_msg *m = msg_with("{\"Line\":{\"Sku\":\"A\",\"Qty\":1,\"Price\":2.5}}");
    assert_int_equal(sl_json_to_xml_step.process(&f.step, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "<Line><Sku>A</Sku><Qty>1</Qty><Price>2.5</Price></Line>");
    sl_msg_free(m);
    step_done(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_round_trip),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_exact_output),
        cmocka_unit_test(test_encoding_option),
        cmocka_unit_test(test_json_to_xml_errors),
        cmocka_unit_test(test_xml_to_json_rules),
        cmocka_unit_test(test_xml_encodings_in),
        cmocka_unit_test(test_soap),
        cmocka_unit_test(test_rss),
        cmocka_unit_test(test_ubl),
        cmocka_unit_test(test_property_round_trip),
        cmocka_unit_test(test_billion_laughs),
        cmocka_unit_test(test_xxe),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_xpath),
        cmocka_unit_test(test_step_json_to_xml),
        cmocka_unit_test(test_step_xml_to_json),
        cmocka_unit_test(test_step_xml_to_json_large_body),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_coerce_exact_numbers),
        cmocka_unit_test(test_strip_namespaces),
        cmocka_unit_test(test_unwrap),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_step_options),
        cmocka_unit_test(test_step_keeps_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
