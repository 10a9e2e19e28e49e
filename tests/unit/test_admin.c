/* Unit tests for the admin API (core/admin.c) through a real admin listener
 * on a port the kernel picks, in front of a gateway whose connectors are
 * captured: routes list and detail, pause and resume, rewind (the message
 * is delivered again), breakers, message status 404/200, the bearer
 * token, topics and records, and the CLI's client (admin_client.c) against
 * the same listener. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "admin.h"
#include "admin_client.h"
#include "config.h"
#include "connector.h"
#include "gateway.h"
#include "logging.h"

/* ---- a capture connector: counts deliveries -------------------------------- */

typedef struct capture {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t n_sent;
} capture;

static int cap_init(sl_connector *c, sl_error *err)
{
    return 0; /* c->state is the capture, preset by sl_gateway_new_as */
}

static int cap_attach(sl_connector *c, sl_route *route, sl_error *err)
{
    return 0;
}

static void cap_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                     sl_send_result *results)
{
    capture *k = c->state;
    pthread_mutex_lock(&k->mu);
    k->n_sent += n;
    for (size_t i = 0; i < n; i++)
        sl_send_result_set(&results[i], SL_OK, 0, "%s", "");
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
}

static void cap_destroy(sl_connector *c)
{
    c->state = NULL;
}

static const sl_connector_type cap_type = {
    .name = "capture",
    .can_input = true,
    .can_output = true,
    .init = cap_init,
    .attach_input = cap_attach,
    .send = cap_send,
    .destroy = cap_destroy,
};

/* Waits up to 10 s for n deliveries in all. */
static void wait_sent(capture *k, size_t n)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 10;
    pthread_mutex_lock(&k->mu);
    int rc = 0;
    while (k->n_sent < n && rc == 0)
        rc = pthread_cond_timedwait(&k->cv, &k->mu, &until);
    size_t got = k->n_sent;
    pthread_mutex_unlock(&k->mu);
    if (got < n)
        fail_msg("%zu of %zu deliveries after 10 s", got, n);
}

/* ---- fixture: a started gateway ---------------------------------------------- */

typedef struct fx {
    char dir[64];
    char conf[128];
    capture cap;
    sl_gateway *gw;
    char base[128]; /* http://127.0.0.1:PORT */
    char msg_id[SL_ID_LEN + 1];
} fx;

/* Starts a gateway with route r (in -> crm, out) and the admin listener on
 * a free port; token "" for none. Appends one message and waits for it. */
static fx *start(const char *token)
{
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    sl_logging_setup(false, SL_LVL_WARN);
    snprintf(f->dir, sizeof f->dir, "/tmp/sl_test_admin_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->conf, sizeof f->conf, "%s/sluice.yaml", f->dir);
    pthread_mutex_init(&f->cap.mu, NULL);
    pthread_cond_init(&f->cap.cv, NULL);
    FILE *fp = fopen(f->conf, "w");
    assert_non_null(fp);
    fprintf(fp,
            "sluice:\n"
            "  data_dir: %s/data\n"
            "  admin: { listen: \"127.0.0.1:0\", token: \"%s\" }\n"
            "connectors:\n"
            "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
            "  crm: { type: http_client, base_url: \"http://127.0.0.1:9\" }\n"
            "  out: { type: stdout }\n"
            "routes:\n"
            "  r:\n"
            "    from: { connector: in, path: /orders }\n"
            "    to:\n"
            "      - { connector: crm, path: /o }\n"
            "      - { connector: out }\n",
            f->dir, token);
    fclose(fp);
    sl_config_errors errs = {0};
    sl_config *conf = sl_config_load(f->conf, &errs);
    if (!conf)
        fail_msg("load: %s", errs.n ? errs.lines[0] : "?");
    sl_config_errors_free(&errs);
    sl_error err;
    f->gw = sl_gateway_new_as(conf, &cap_type, &f->cap, &err);
    if (!f->gw || sl_gateway_start(f->gw, &err) < 0)
        fail_msg("start: %s", err.msg);
    const char *addr = sl_admin_address(sl_gateway_admin(f->gw));
    assert_non_null(strstr(addr, "127.0.0.1:"));
    assert_string_not_equal(addr, "127.0.0.1:0");
    snprintf(f->base, sizeof f->base, "http://%s", addr);
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, "{\"n\":1}", 7), 0);
    assert_int_equal(sl_route_append(sl_gateway_route(f->gw, "r"), m, &err), 0);
    snprintf(f->msg_id, sizeof f->msg_id, "%s", m->id);
    sl_msg_free(m);
    wait_sent(&f->cap, 2); /* crm and out */
    return f;
}

static void stop(fx *f)
{
    sl_gateway_stop(f->gw);
    sl_gateway_free(f->gw);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    pthread_mutex_destroy(&f->cap.mu);
    pthread_cond_destroy(&f->cap.cv);
    free(f);
}

/* ---- an HTTP client ----------------------------------------------------------- */

typedef struct answer {
    long status;
    char body[8192];
    size_t len;
} answer;

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    answer *a = arg;
    size_t len = size * n;
    size_t room = sizeof a->body - 1 - a->len;
    size_t take = len < room ? len : room;
    memcpy(a->body + a->len, p, take);
    a->len += take;
    a->body[a->len] = '\0';
    return len;
}

/* method path [body] [token]: the answer's status and body. */
static answer *call(fx *f, const char *method, const char *path, const char *body,
                    const char *token)
{
    static answer a;
    memset(&a, 0, sizeof a);
    char url[512], auth[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *hdrs = NULL;
    if (token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, auth);
    }
    if (body)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "POST") == 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &a);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a.status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return &a;
}

/* The answer's JSON (the caller decrefs). */
static json_t *json_of(const answer *a)
{
    json_error_t e;
    json_t *j = json_loads(a->body, 0, &e);
    if (!j)
        fail_msg("not JSON (%s): %s", e.text, a->body);
    return j;
}

/* partitions[0] of GET /v1/routes/r. */
static json_t *partition0(fx *f)
{
    answer *a = call(f, "GET", "/v1/routes/r", NULL, NULL);
    assert_int_equal(a->status, 200);
    json_t *j = json_of(a);
    json_t *p = json_incref(json_array_get(json_object_get(j, "partitions"), 0));
    assert_non_null(p);
    json_decref(j);
    return p;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_routes_list_and_detail(void **state)
{
    fx *f = start("");
    answer *a = call(f, "GET", "/v1/routes", NULL, NULL);
    assert_int_equal(a->status, 200);
    json_t *j = json_of(a);
    json_t *r = json_array_get(json_object_get(j, "routes"), 0);
    assert_string_equal(json_string_value(json_object_get(r, "name")), "r");
    assert_int_equal(json_array_size(json_object_get(j, "routes")), 1);
    json_decref(j);

    a = call(f, "GET", "/v1/routes/r", NULL, NULL);
    assert_int_equal(a->status, 200);
    j = json_of(a);
    assert_string_equal(json_string_value(json_object_get(j, "from")), "in");
    assert_string_equal(json_string_value(json_object_get(j, "path")), "/orders");
    json_decref(j);
    json_t *p = partition0(f);
    assert_int_equal(json_integer_value(json_object_get(p, "end_offset")), 1);
    json_decref(p);

    a = call(f, "GET", "/v1/routes/nope", NULL, NULL);
    assert_int_equal(a->status, 404);
    assert_non_null(strstr(a->body, "no route named nope"));
    a = call(f, "DELETE", "/v1/routes/r", NULL, NULL);
    assert_int_equal(a->status, 405);
    stop(f);
}

static void test_pause_resume_and_rewind(void **state)
{
    fx *f = start("");
    answer *a = call(f, "POST", "/v1/routes/r/pause", NULL, NULL);
    assert_int_equal(a->status, 200);
    assert_string_equal(a->body, "{\"route\":\"r\",\"paused\":true}");
    json_t *p = partition0(f);
    assert_true(json_is_true(json_object_get(p, "paused")));
    json_decref(p);
    a = call(f, "POST", "/v1/routes/r/resume", NULL, NULL);
    assert_int_equal(a->status, 200);
    p = partition0(f);
    assert_true(json_is_false(json_object_get(p, "paused")));
    json_decref(p);

    /* rewind to 0: the message is delivered to both outputs again */
    a = call(f, "POST", "/v1/routes/r/rewind", "{\"offset\":0}", NULL);
    assert_int_equal(a->status, 200);
    assert_string_equal(a->body, "{\"route\":\"r\",\"rewound_to\":0}");
    wait_sent(&f->cap, 4);
    a = call(f, "POST", "/v1/routes/r/rewind", "{\"offset\":-1}", NULL);
    assert_int_equal(a->status, 400);
    assert_non_null(strstr(a->body, "\\\"offset\\\" must be an integer >= 0"));
    a = call(f, "GET", "/v1/routes/r/rewind", NULL, NULL);
    assert_int_equal(a->status, 405);
    stop(f);
}

static void test_breakers(void **state)
{
    fx *f = start("");
    answer *a = call(f, "GET", "/v1/breakers", NULL, NULL);
    assert_int_equal(a->status, 200);
    json_t *j = json_of(a);
    json_t *list = json_object_get(j, "breakers");
    assert_int_equal(json_array_size(list), 1); /* crm; neither the input nor stdout */
    json_t *b = json_array_get(list, 0);
    assert_string_equal(json_string_value(json_object_get(b, "connector")), "crm");
    assert_string_equal(json_string_value(json_object_get(b, "state")), "closed");
    json_decref(j);
    a = call(f, "GET", "/v1/breakers/out", NULL, NULL);
    assert_int_equal(a->status, 404);
    assert_non_null(strstr(a->body, "no breaker for connector out"));
    a = call(f, "POST", "/v1/breakers/crm/reset", NULL, NULL);
    assert_int_equal(a->status, 200);
    assert_non_null(strstr(a->body, "\"connector\":\"crm\""));
    stop(f);
}

static void test_messages(void **state)
{
    fx *f = start("");
    char path[128];
    snprintf(path, sizeof path, "/v1/messages/%s", f->msg_id);
    /* both outputs have it; the route marks it delivered once it commits */
    answer *a = NULL;
    for (int i = 0; i < 1000; i++) {
        a = call(f, "GET", path, NULL, NULL);
        if (a->status != 200 || strstr(a->body, "\"state\":\"delivered\""))
            break;
        usleep(10000);
    }
    assert_int_equal(a->status, 200);
    json_t *j = json_of(a);
    assert_string_equal(json_string_value(json_object_get(j, "id")), f->msg_id);
    assert_string_equal(json_string_value(json_object_get(j, "route")), "r");
    assert_int_equal(json_integer_value(json_object_get(j, "offset")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "state")), "delivered");
    json_decref(j);
    a = call(f, "GET", "/v1/messages/01890000-0000-7000-8000-000000000000", NULL, NULL);
    assert_int_equal(a->status, 404);
    assert_non_null(strstr(a->body, "no message 01890000-0000-7000-8000-000000000000"));
    stop(f);
}

static void test_token(void **state)
{
    fx *f = start("s3cret");
    assert_int_equal(call(f, "GET", "/health", NULL, NULL)->status, 200); /* always open */
    answer *a = call(f, "GET", "/v1/routes", NULL, NULL);
    assert_int_equal(a->status, 401);
    assert_non_null(strstr(a->body, "Bearer"));
    assert_int_equal(call(f, "GET", "/v1/routes", NULL, "wrong")->status, 403);
    assert_int_equal(call(f, "POST", "/v1/routes/r/pause", NULL, "wrong")->status, 403);
    assert_int_equal(call(f, "GET", "/v1/routes", NULL, "s3cret")->status, 200);
    assert_int_equal(call(f, "GET", "/metrics", NULL, "s3cret")->status, 200);
    stop(f);
}

static void test_topics_and_records(void **state)
{
    fx *f = start("");
    answer *a = call(f, "GET", "/v1/topics", NULL, NULL);
    assert_int_equal(a->status, 200);
    assert_string_equal(a->body, "{\"topics\":[{\"name\":\"r\",\"partitions\":[{\"partition\":0,"
                                 "\"start\":0,\"end\":1}]},{\"name\":\"r.dlq\",\"partitions\":[{"
                                 "\"partition\":0,\"start\":0,\"end\":0}]}]}");
    a = call(f, "GET", "/v1/topics/r/records?partition=0&from=0&limit=10", NULL, NULL);
    assert_int_equal(a->status, 200);
    json_t *j = json_of(a);
    json_t *recs = json_object_get(j, "records");
    assert_int_equal(json_array_size(recs), 1);
    json_t *r = json_array_get(recs, 0);
    assert_int_equal(json_integer_value(json_object_get(r, "offset")), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(r, "headers"), "message-id")), f->msg_id);
    assert_int_equal(json_integer_value(json_object_get(j, "next_offset")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "end_offset")), 1);
    json_decref(j);
    /* past the end: nothing, and the offset to ask for next stays */
    a = call(f, "GET", "/v1/topics/r/records?from=1", NULL, NULL);
    assert_int_equal(a->status, 200);
    assert_string_equal(a->body, "{\"records\":[],\"next_offset\":1,\"end_offset\":1}");
    a = call(f, "GET", "/v1/topics/r/records?from=-1", NULL, NULL);
    assert_int_equal(a->status, 400);
    a = call(f, "GET", "/v1/topics/r/records?partition=x", NULL, NULL);
    assert_int_equal(a->status, 400);
    a = call(f, "GET", "/v1/topics/r/records?partition=3", NULL, NULL);
    assert_int_equal(a->status, 404);
    assert_non_null(strstr(a->body, "topic r has no partition 3"));
    assert_int_equal(call(f, "GET", "/v1/topics/nope/records", NULL, NULL)->status, 404);
    assert_int_equal(call(f, "GET", "/v1/topics/r/other", NULL, NULL)->status, 404);
    assert_int_equal(call(f, "POST", "/v1/topics", NULL, NULL)->status, 405);
    stop(f);
}

/* The CLI's client (core/admin_client.c) against the real listener. */
static void test_admin_client(void **state)
{
    fx *f = start("s3cret");
    const char *addr = f->base + 7; /* after http:// */
    int status = 0;
    char *body = NULL;
    size_t len = 0;
    sl_error err;
    assert_int_equal(sl_admin_request(addr, NULL, "GET", "/v1/topics", NULL, NULL, 5000, &status,
                                      &body, &len, &err),
                     0);
    assert_int_equal(status, 401);
    assert_non_null(strstr(body, "unauthorized"));
    free(body);
    assert_int_equal(sl_admin_request(addr, NULL, "POST", "/v1/routes/r/rewind", "s3cret",
                                      "{\"offset\":0}", 5000, &status, &body, &len, &err),
                     0);
    assert_int_equal(status, 200);
    assert_string_equal(body, "{\"route\":\"r\",\"rewound_to\":0}");
    assert_int_equal(len, strlen(body));
    free(body);
    assert_int_equal(sl_admin_request("127.0.0.1", NULL, "GET", "/", NULL, NULL, 1000, &status,
                                      &body, &len, &err),
                     -1);
    assert_int_equal(err.code, SL_EINVAL);
    assert_null(body);
    assert_int_equal(sl_admin_request("127.0.0.1:9", NULL, "GET", "/", NULL, NULL, 1000, &status,
                                      &body, &len, &err),
                     -1);
    assert_non_null(strstr(err.msg, "cannot reach the admin API at 127.0.0.1:9"));
    stop(f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_list_and_detail),
        cmocka_unit_test(test_pause_resume_and_rewind),
        cmocka_unit_test(test_breakers),
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_token),
        cmocka_unit_test(test_topics_and_records),
        cmocka_unit_test(test_admin_client),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
