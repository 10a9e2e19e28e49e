/* Benchmark for the JSON <-> XML convention (transforms/json_xml.c): MB/s
 * both ways on a ~1 KB and a ~10 MB order document, and the peak RSS of a
 * 50 MB XML -> JSON conversion (run in a child process so that nothing
 * else counts). Usage: bench_json_xml [--rss MB [--dump]] */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "json_xml.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of this thread: unlike wall time, it does not count the time
 * other processes hold the CPU (the benchmark machine is shared). */
static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void die(const char *what, const sl_error *err)
{
    fprintf(stderr, "bench_json_xml: %s: %s\n", what, err ? err->msg : "out of memory");
    exit(1);
}

/* One order as integration traffic looks: attributes, nested objects,
 * repeated items, numbers, booleans, a null, text needing escapes, and
 * some non-ASCII. */
static json_t *make_order(unsigned i)
{
    char buf[128];
    json_t *o = json_object();
    snprintf(buf, sizeof buf, "o-%08u", i);
    json_object_set_new(o, "@id", json_string(buf));
    json_object_set_new(o, "@channel", json_string(i % 3 ? "web" : "edi"));
    json_t *c = json_object();
    json_object_set_new(c, "id", json_integer(100000 + i % 5000));
    snprintf(buf, sizeof buf, "Customer %u M\xc3\xbcller & Partner", i % 5000);
    json_object_set_new(c, "name", json_string(buf));
    snprintf(buf, sizeof buf, "buyer%u@example.com", i % 5000);
    json_object_set_new(c, "email", json_string(buf));
    json_object_set_new(c, "tier", json_string(i % 7 ? "silver" : "gold"));
    json_object_set_new(o, "customer", c);
    json_t *items = json_array();
    for (unsigned k = 0; k < 3; k++) {
        json_t *it = json_object();
        snprintf(buf, sizeof buf, "SKU-%05u-%u", (i * 7 + k) % 100000, k);
        json_object_set_new(it, "sku", json_string(buf));
        json_object_set_new(it, "qty", json_integer(1 + (i + k) % 9));
        json_object_set_new(it, "price", json_real(9.99 + (double)((i + k) % 100) * 0.5));
        json_object_set_new(it, "desc", json_string("Widget <large> & \"special\" \xe2\x9c\x93"));
        json_array_append_new(items, it);
    }
    json_object_set_new(o, "item", items);
    json_object_set_new(o, "paid", json_boolean(i % 2));
    json_object_set_new(o, "coupon", json_null());
    json_object_set_new(o, "created", json_string("2024-04-02T09:00:00Z"));
    return o;
}

/* {"orders":{"@source":"bench","order":[...]}} of about `bytes` JSON. */
static json_t *make_doc(size_t bytes)
{
    json_t *orders = json_object();
    json_object_set_new(orders, "@source", json_string("bench"));
    json_t *list = json_array();
    json_object_set_new(orders, "order", list);
    json_t *doc = json_object();
    json_object_set_new(doc, "orders", orders);
    json_t *o0 = make_order(0);
    char *t = json_dumps(o0, JSON_COMPACT);
    size_t per = strlen(t) + 1;
    free(t);
    json_decref(o0);
    size_t n = bytes / per;
    if (n < 2)
        n = 2;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(list, make_order((unsigned)i));
    return doc;
}

/* Runs body until at least min_s elapsed and min_iter iterations, then
 * cleanup (not timed); reports the best iteration's MB/s over `bytes`, by
 * thread CPU time and by wall time. */
#define BENCH(label, bytes, min_iter, min_s, body, cleanup)                                        \
    do {                                                                                           \
        double best_wall = 1e30, best_cpu = 1e30, start = now_s();                                 \
        int iters = 0;                                                                             \
        while (iters < (min_iter) || now_s() - start < (min_s)) {                                  \
            double w0 = now_s(), c0 = cpu_s();                                                     \
            body;                                                                                  \
            double dc = cpu_s() - c0, dw = now_s() - w0;                                           \
            cleanup;                                                                               \
            if (dw < best_wall)                                                                    \
                best_wall = dw;                                                                    \
            if (dc < best_cpu)                                                                     \
                best_cpu = dc;                                                                     \
            iters++;                                                                               \
        }                                                                                          \
        printf("  %-36s %7.1f MB/s cpu %7.1f MB/s wall  (best of %d: %.3f ms cpu)\n", label,       \
               (double)(bytes) / best_cpu / 1e6, (double)(bytes) / best_wall / 1e6, iters,         \
               best_cpu * 1e3);                                                                    \
    } while (0)

static void bench_size(const char *name, size_t target, int min_iter, double min_s)
{
    json_t *doc = make_doc(target);
    char *json = json_dumps(doc, JSON_COMPACT);
    size_t jlen = strlen(json);
    sl_error err = {0};
    size_t xlen;
    char *xml = sl_json_to_xml(doc, NULL, &xlen, &err);
    if (!xml)
        die("json_to_xml", &err);
    sl_xml_opts co;
    sl_xml_opts_init(&co);
    co.coerce = true;
    printf("%s document: JSON %zu bytes, XML %zu bytes\n", name, jlen, xlen);

    /* each timing covers the conversion; freeing the result is not timed */
    char *x = NULL;
    json_t *j = NULL;
    BENCH(
        "JSON -> XML (tree -> text)", jlen, min_iter, min_s,
        {
            size_t n;
            if (!(x = sl_json_to_xml(doc, NULL, &n, &err)))
                die("json_to_xml", &err);
        },
        free(x));
    BENCH(
        "JSON -> XML (text -> parse -> text)", jlen, min_iter, min_s,
        {
            size_t n;
            j = json_loadb(json, jlen, 0, NULL);
            if (!j || !(x = sl_json_to_xml(j, NULL, &n, &err)))
                die("json_to_xml", &err);
        },
        {
            free(x);
            json_decref(j);
        });
    BENCH(
        "XML -> JSON (text -> tree)", xlen, min_iter, min_s,
        {
            if (!(j = sl_xml_to_json(xml, xlen, NULL, &err)))
                die("xml_to_json", &err);
        },
        json_decref(j));
    BENCH(
        "XML -> JSON coerce (text -> tree)", xlen, min_iter, min_s,
        {
            if (!(j = sl_xml_to_json(xml, xlen, &co, &err)))
                die("xml_to_json", &err);
        },
        json_decref(j));
    BENCH(
        "XML -> JSON (text -> tree -> text)", xlen, min_iter, min_s,
        {
            j = sl_xml_to_json(xml, xlen, NULL, &err);
            if (!j || !(x = json_dumps(j, JSON_COMPACT)))
                die("xml_to_json", &err);
        },
        {
            free(x);
            json_decref(j);
        });
    free(xml);
    free(json);
    json_decref(doc);
}

/* Child mode: builds an XML document of `mb` MB straight as text (no
 * tree), then converts it and reports the peak RSS. */
static int rss_mode(size_t mb, int dump, int text_mode)
{
    size_t target = mb * 1000 * 1000, cap = target + 4096, n = 0;
    char *xml = malloc(cap);
    if (!xml)
        die("rss", NULL);
    n += (size_t)snprintf(xml + n, cap - n, "<?xml version=\"1.0\"?>\n<orders source=\"bench\">");
    for (unsigned i = 0; n + 1024 < target; i++) {
        n += (size_t)snprintf(
            xml + n, cap - n,
            "<order id=\"o-%08u\" channel=\"web\"><customer><id>%u</id><name>Customer %u "
            "M\xc3\xbcller &amp; Partner</name><email>buyer%u@example.com</email><tier>silver"
            "</tier></customer><item><sku>SKU-%05u-0</sku><qty>2</qty><price>12.5</price><desc>"
            "Widget &lt;large&gt; &amp; \"special\"</desc></item><item><sku>SKU-%05u-1</sku><qty>"
            "3</qty><price>10.49</price><desc>Bolt</desc></item><paid>true</paid><coupon "
            "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:nil=\"true\"/>"
            "</order>",
            i, 100000 + i % 5000, i % 5000, i % 5000, i % 100000, i % 100000);
    }
    n += (size_t)snprintf(xml + n, cap - n, "</orders>");
    long before = maxrss_kib();
    sl_error err = {0};
    double t0 = now_s(), c0 = cpu_s();
    json_t *j = NULL;
    char *text = NULL;
    if (text_mode) {
        size_t tl;
        text = sl_xml_to_json_text(xml, n, NULL, &tl, &err);
        if (!text)
            die("xml_to_json_text", &err);
    } else if (!(j = sl_xml_to_json(xml, n, NULL, &err))) {
        die("xml_to_json", &err);
    }
    if (dump && !text_mode) {
        text = json_dumps(j, JSON_COMPACT);
        if (!text)
            die("json_dumps", NULL);
    }
    double dt = now_s() - t0, dc = cpu_s() - c0;
    long after = maxrss_kib();
    printf("  %zu MB XML -> JSON%s: %.2f s cpu, %.2f s wall (%.1f MB/s cpu); peak RSS %.0f MiB "
           "before, %.0f MiB after (%.1fx the XML)\n",
           n / 1000000,
           text_mode ? " as text, no tree (the step above 1 MiB)"
           : dump    ? " + dump"
                     : "",
           dc, dt, (double)n / dc / 1e6, before / 1024.0, after / 1024.0,
           (double)after * 1024.0 / (double)n);
    free(text);
    json_decref(j);
    free(xml);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "--rss") == 0)
        return rss_mode(strtoul(argv[2], NULL, 10), argc >= 4 && !strcmp(argv[3], "--dump"),
                        argc >= 4 && !strcmp(argv[3], "--text"));
    sl_xml_init();
    bench_size("~1 KB", 1000, 2000, 1.0);
    bench_size("~10 MB", 10 * 1000 * 1000, 5, 3.0);
    printf("peak RSS (separate processes):\n");
    fflush(stdout);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --rss 50", argv[0]);
    if (system(cmd) != 0)
        return 1;
    snprintf(cmd, sizeof cmd, "'%s' --rss 50 --dump", argv[0]);
    if (system(cmd) != 0)
        return 1;
    snprintf(cmd, sizeof cmd, "'%s' --rss 50 --text", argv[0]);
    if (system(cmd) != 0)
        return 1;
    return 0;
}
