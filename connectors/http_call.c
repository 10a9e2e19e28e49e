/* Synchronous HTTP calls from steps (see http_call.h): one request on the
 * calling thread's cached CURL easy handle (so keep-alive connections are
 * reused across calls), the response collected with a size cap, and the
 * outcome mapped to SL_OK / SL_RETRY / SL_FAIL like the http_client output. */
#include "http_call.h"
#include "http_common.h"

#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "http_client.h"
#include "http_client_auth.h"

#define DEFAULT_TIMEOUT_MS 5000

static pthread_once_t once = PTHREAD_ONCE_INIT;
static pthread_key_t handle_key;
static bool init_ok;

static void free_handle(void *h)
{
    curl_easy_cleanup(h);
}

static void init_once(void)
{
    init_ok = curl_global_init(CURL_GLOBAL_ALL) == CURLE_OK &&
              pthread_key_create(&handle_key, free_handle) == 0;
}

/* The calling thread's handle, created on first use; NULL when out of memory. */
static CURL *thread_handle(void)
{
    pthread_once(&once, init_once);
    if (!init_ok)
        return NULL;
    CURL *h = pthread_getspecific(handle_key);
    if (h) {
        curl_easy_reset(h); /* options go, the connection cache stays */
        return h;
    }
    h = curl_easy_init();
    if (h && pthread_setspecific(handle_key, h) != 0) {
        curl_easy_cleanup(h);
        h = NULL;
    }
    return h;
}

void sl_http_call_thread_cleanup(void)
{
    pthread_once(&once, init_once);
    if (!init_ok)
        return;
    CURL *h = pthread_getspecific(handle_key);
    if (h) {
        curl_easy_cleanup(h);
        pthread_setspecific(handle_key, NULL);
    }
}

void sl_http_call_resp_free(sl_http_call_resp *resp)
{
    sl_call_resp_free(resp);
}

typedef struct call_ctx {
    sl_http_call_resp *resp;
    size_t body_cap;
    size_t hdr_cap;
    bool too_big;
    bool oom;
} call_ctx;

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    call_ctx *c = arg;
    sl_http_call_resp *r = c->resp;
    size_t n = size * nmemb;
    if (r->body_len + n > SL_HTTP_CALL_MAX_BODY) {
        c->too_big = true;
        return 0;
    }
    if (r->body_len + n + 1 > c->body_cap) {
        size_t cap = c->body_cap ? c->body_cap : 4096;
        while (cap < r->body_len + n + 1)
            cap *= 2;
        char *b = realloc(r->body, cap);
        if (!b) {
            c->oom = true;
            return 0;
        }
        r->body = b;
        c->body_cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return n;
}

static void drop_headers(sl_http_call_resp *r)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        free(r->headers[i].key);
        free(r->headers[i].value);
    }
    r->n_headers = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    call_ctx *c = arg;
    sl_http_call_resp *r = c->resp;
    size_t n = size * nmemb;
    if (n >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        drop_headers(r); /* a new response (after 100 Continue): start again */
        return n;
    }
    const char *colon = memchr(data, ':', n);
    if (!colon || colon == data)
        return n;
    size_t nlen = (size_t)(colon - data);
    const char *v = colon + 1;
    const char *end = data + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (r->n_headers == c->hdr_cap) {
        size_t cap = c->hdr_cap ? c->hdr_cap * 2 : 16;
        if (cap > 1024)
            return n; /* keep the first 1024 headers */
        sl_kv *h = realloc(r->headers, cap * sizeof *h);
        if (!h) {
            c->oom = true;
            return 0;
        }
        r->headers = h;
        c->hdr_cap = cap;
    }
    char *name = strndup(data, nlen);
    char *value = strndup(v, (size_t)(end - v));
    if (!name || !value) {
        free(name);
        free(value);
        c->oom = true;
        return 0;
    }
    for (char *p = name; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    r->headers[r->n_headers].key = name;
    r->headers[r->n_headers].value = value;
    r->n_headers++;
    return n;
}

static int fail(sl_http_call_resp *r, sl_result res, const char *fmt, const char *a, const char *b)
{
    r->result = res;
    snprintf(r->error, sizeof r->error, fmt, a, b);
    return res;
}

static bool clean_text(const char *s)
{
    for (; *s; s++) {
        if (*s == '\r' || *s == '\n')
            return false;
    }
    return true;
}

static bool clean_path(const char *s)
{
    if (*s && *s != '/' && *s != '?')
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line = malloc(n);
    if (!line)
        return -1;
    if (*value)
        snprintf(line, n, "%s: %s", name, value);
    else
        snprintf(line, n, "%s;", name); /* curl's way of sending an empty value */
    struct curl_slist *l = curl_slist_append(*list, line);
    free(line);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

/* Fills the method options; returns false for an unknown method. */
static bool set_method(CURL *h, const char *method, const sl_http_call_req *req)
{
    static const char *const known[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};
    const char *m = NULL;
    for (size_t i = 0; known[i]; i++) {
        if (strcasecmp(method, known[i]) == 0)
            m = known[i];
    }
    if (!m)
        return false;
    if (strcmp(m, "GET") == 0 && !req->body) {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(m, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(m, "POST") != 0)
            curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
        else
            curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body ? req->body : "");
    }
    return true;
}

/* Builds the request's URL and header list on h's behalf: base_url joined
 * with req->path, conn->headers then req->headers, no "Expect". Returns
 * SL_OK, or fills resp (a bad path or header is permanent, out of memory
 * transient) and returns its result; *url and *hdrs are the caller's to
 * free either way. */
static int prepare_request(const sl_connector_conf *cconf, const sl_http_call_req *req,
                           sl_http_call_resp *resp, char **url, struct curl_slist **hdrs)
{
    const sl_http_client_conf *conn = cconf->priv;
    const char *name = cconf->name ? cconf->name : "?";
    const char *path = req->path ? req->path : "";
    if (!clean_path(path))
        return fail(resp, SL_FAIL, "bad path '%.100s' for %s (must start with / or ?, no spaces)",
                    path, name);
    *url = sl_http_join_url(conn->base_url, path);
    if (!*url)
        return fail(resp, SL_RETRY, "out of memory%s%s", "", "");
    for (size_t i = 0; i < conn->n_headers + req->n_headers; i++) {
        const sl_kv *kv =
            i < conn->n_headers ? &conn->headers[i] : &req->headers[i - conn->n_headers];
        if (!*kv->key || !clean_text(kv->key) || !clean_text(kv->value) || strchr(kv->key, ':'))
            return fail(resp, SL_FAIL, "bad header '%.60s' for %s", kv->key, name);
        if (add_header(hdrs, kv->key, kv->value) < 0)
            return fail(resp, SL_RETRY, "out of memory%s%s", "", "");
    }
    if (add_header(hdrs, "Expect", "") < 0)
        return fail(resp, SL_RETRY, "out of memory%s%s", "", "");
    return SL_OK;
}

/* Adds the connector's Authorization (getting or renewing its token) to
 * hdrs, unless the request sets its own; *gen gets the credential's
 * generation. A credential that cannot be had now (token endpoint down)
 * fails the call as transient. */
static int add_auth(sl_hc_auth *auth, const sl_http_call_req *req, struct curl_slist **hdrs,
                    uint64_t *gen, sl_http_call_resp *resp)
{
    char *value = NULL;
    char why[256];
    for (size_t i = 0; i < req->n_headers; i++) {
        if (strcasecmp(req->headers[i].key, "authorization") == 0)
            return SL_OK;
    }
    if (sl_hc_auth_value(auth, &value, gen, why, sizeof why) != SL_OK)
        return fail(resp, SL_RETRY, "%s%s", why, "");
    int rc = value && add_header(hdrs, "Authorization", value) < 0 ? -1 : 0;
    free(value);
    if (rc < 0)
        return fail(resp, SL_RETRY, "out of memory%s%s", "", "");
    return SL_OK;
}

/* Maps what curl_easy_perform gave to resp's result and error text. what
 * names the call ("GET crm"); timeout_ms is the limit it ran under. */
static int classify(sl_http_call_resp *resp, const call_ctx *cc, CURLcode code, long status,
                    const char *what, long timeout_ms)
{
    char n[32];
    resp->status = (int)status;
    if (cc->oom)
        return fail(resp, SL_RETRY, "%s: out of memory reading the response%s", what, "");
    if (cc->too_big) {
        snprintf(n, sizeof n, "%zu", SL_HTTP_CALL_MAX_BODY);
        return fail(resp, SL_FAIL, "%s: response body larger than %s bytes", what, n);
    }
    if (code != CURLE_OK) {
        resp->status = 0;
        if (code != CURLE_OPERATION_TIMEDOUT)
            return fail(resp, SL_RETRY, "%s: %s", what, curl_easy_strerror(code));
        snprintf(n, sizeof n, "%ld ms", timeout_ms);
        return fail(resp, SL_RETRY, "%s: timeout after %s", what, n);
    }
    sl_result res = sl_http_status_result(status);
    if (res == SL_OK) {
        resp->result = SL_OK;
        return SL_OK;
    }
    snprintf(n, sizeof n, "%ld", status);
    return fail(resp, res, "%s: HTTP %s", what, n);
}

/* Runs the prepared request on h and classifies the outcome. */
static int perform(CURL *h, const sl_connector_conf *cconf, const char *method, const char *url,
                   struct curl_slist *hdrs, sl_http_call_resp *resp)
{
    const sl_http_client_conf *conn = cconf->priv;
    call_ctx cc = {.resp = resp};
    long timeout = conn->timeout_ms ? (long)conn->timeout_ms : DEFAULT_TIMEOUT_MS;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &cc);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &cc);
    CURLcode code = sl_hc_tls_apply(h, &conn->tls);
    if (code == CURLE_OK)
        code = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    char what[64];
    snprintf(what, sizeof what, "%.10s %.40s", method, cconf->name ? cconf->name : "?");
    return classify(resp, &cc, code, status, what, timeout);
}

/* One attempt: headers (with the credential of generation *gen), method,
 * transfer. */
static int attempt(CURL *h, const sl_connector_conf *cconf, sl_hc_auth *auth,
                   const sl_http_call_req *req, sl_http_call_resp *resp, uint64_t *gen)
{
    const char *method = req->method ? req->method : "GET";
    const char *name = cconf->name ? cconf->name : "?";
    char *url = NULL;
    struct curl_slist *hdrs = NULL;
    int rc = prepare_request(cconf, req, resp, &url, &hdrs);
    if (rc == SL_OK)
        rc = add_auth(auth, req, &hdrs, gen, resp);
    if (rc == SL_OK && !set_method(h, method, req))
        rc = fail(resp, SL_FAIL, "unknown method '%.20s' for %s", method, name);
    if (rc == SL_OK)
        rc = perform(h, cconf, method, url, hdrs, resp);
    curl_slist_free_all(hdrs);
    free(url);
    return rc;
}

int sl_http_call_auth(const sl_connector_conf *cconf, sl_hc_auth *auth, const sl_http_call_req *req,
                      sl_http_call_resp *resp)
{
    memset(resp, 0, sizeof *resp);
    const char *name = cconf->name ? cconf->name : "?";
    const sl_http_client_conf *conn = cconf->priv;
    if (!conn || !conn->base_url)
        return fail(resp, SL_FAIL, "connector %s has no base_url%s", name, "");
    CURL *h = thread_handle();
    if (!h)
        return fail(resp, SL_RETRY, "out of memory (curl)%s%s", "", "");
    uint64_t gen = 0;
    int rc = attempt(h, cconf, auth, req, resp, &gen);
    if (resp->status == 401 && sl_hc_auth_renewable(auth)) {
        sl_hc_auth_invalidate(auth, gen); /* a new token, once */
        sl_http_call_resp_free(resp);
        curl_easy_reset(h);
        rc = attempt(h, cconf, auth, req, resp, &gen);
    }
    return rc;
}

int sl_http_call(const sl_connector_conf *cconf, const sl_http_call_req *req,
                 sl_http_call_resp *resp)
{
    return sl_http_call_auth(cconf, NULL, req, resp);
}
