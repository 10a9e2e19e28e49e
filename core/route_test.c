/* `sluice test`: runs a route of a config through the real route engine
 * (sl_route: its workers, steps, `key:`, `when:`, splits, retries and dead
 * letters) on the inputs of a test file, in a gateway of its own whose
 * connectors are all replaced by an in-process capture connector: outputs
 * record what they receive and answer OK, ctx.http calls are answered from
 * the test's fixtures, inputs never start. Each case gets a fresh gateway
 * and event log (a temporary data_dir, fsync: never); each input is
 * appended to the route's topic as an input does, and the case waits until
 * the route has finished it. Then what each output received (and what was
 * dead-lettered) is compared with what the test expects (exact body, JSON or
 * XML subset, headers, key, a Lua predicate). Test files are read with the
 * config's YAML reader. */
#include "route_test.h"

#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config_priv.h"
#include "connector.h"
#include "gateway.h"
#include "call.h" /* the ctx.http request and response the fixtures answer */
#include "expr.h" /* expect_lua: a `when:` condition */
#include "route.h"

#define ERR_CAP 512
#define INPUT_DEADLINE_S 30 /* how long one input may take to go through the route */

/* ---- a growable string ------------------------------------------------------- */

typedef struct dstr {
    char *p;
    size_t n, cap;
} dstr;

static void ds_printf(dstr *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void ds_printf(dstr *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int need = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (need < 0)
        return;
    if (d->n + (size_t)need + 1 > d->cap) {
        size_t cap = d->cap ? d->cap : 256;
        while (cap < d->n + (size_t)need + 1)
            cap *= 2;
        char *p = realloc(d->p, cap);
        if (!p)
            return; /* the report loses a line; the verdict is unaffected */
        d->p = p;
        d->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(d->p + d->n, d->cap - d->n, fmt, ap);
    va_end(ap);
    d->n += (size_t)need;
}

/* ---- the test file, as a config node tree ---------------------------------------- */

/* Reads path with the config's YAML reader (positions, ${VAR} expansion, no
 * anchors, no duplicate keys) into a tree allocated from pool. Returns the
 * root, or NULL with the first problem in err (without the file name). */
static sl_node *load_tree(const char *path, sl_pool *pool, char *err)
{
    sl_conf_ctx c = {.pool = pool};
    const char *file = sl_pool_strdup(pool, path);
    sl_node *root = file ? sl_conf_parse_file(&c, file) : NULL;
    if (c.n_errs) {
        const char *text = c.errs[0].text;
        size_t flen = strlen(path);
        if (!strncmp(text, path, flen) && text[flen] == ':')
            text += flen + (text[flen + 1] == ' ' ? 2 : 1);
        snprintf(err, ERR_CAP, "%s", text);
    } else if (!root) {
        snprintf(err, ERR_CAP, pool->oom ? "out of memory" : "the file is empty");
    }
    for (size_t i = 0; i < c.n_errs; i++)
        free(c.errs[i].text);
    free(c.errs);
    return c.n_errs ? NULL : root;
}

/* The text of a scalar (or of a null written as null, ~ or nothing). */
static const char *nstr(const sl_node *n)
{
    return n && (n->kind == SL_NODE_SCALAR || n->kind == SL_NODE_NULL) ? n->scalar : NULL;
}

static bool in_list(const char *k, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++) {
        if (!strcmp(allowed[i], k))
            return true;
    }
    return false;
}

/* Checks that n is a map with only allowed keys. Returns 0, or -1 with err. */
static int check_keys(const sl_node *n, const char *const *allowed, const char *what, char *err)
{
    if (!n || n->kind != SL_NODE_MAP) {
        snprintf(err, ERR_CAP, "line %d: %s: expected a map", n ? n->pos.line : 0, what);
        return -1;
    }
    for (size_t i = 0; i < n->n_pairs; i++) {
        if (!in_list(n->pairs[i].key, allowed)) {
            snprintf(err, ERR_CAP, "line %d: %s: unknown key '%s'", n->pairs[i].key_pos.line, what,
                     n->pairs[i].key);
            return -1;
        }
    }
    return 0;
}

/* ---- YAML values as JSON -------------------------------------------------------- */

static json_t *scalar_to_json(const sl_node *n)
{
    const char *s = n->scalar;
    if (n->kind == SL_NODE_NULL)
        return json_null();
    if (n->quoted)
        return json_string(s);
    if (!strcmp(s, "true"))
        return json_true();
    if (!strcmp(s, "false"))
        return json_false();
    char *end;
    long long i = strtoll(s, &end, 10);
    if (*end == '\0' && end != s)
        return json_integer(i);
    double d = strtod(s, &end);
    if (*end == '\0' && end != s)
        return json_real(d);
    return json_string(s);
}

/* The JSON value of a node (maps in document order). Returns NULL when out
 * of memory. */
static json_t *node_to_json(const sl_node *n)
{
    if (n->kind != SL_NODE_MAP && n->kind != SL_NODE_SEQ)
        return scalar_to_json(n);
    bool map = n->kind == SL_NODE_MAP;
    json_t *j = map ? json_object() : json_array();
    size_t count = map ? n->n_pairs : n->n_items;
    for (size_t i = 0; j && i < count; i++) {
        json_t *v = node_to_json(map ? n->pairs[i].value : n->items[i]);
        int rc = !v    ? -1
                 : map ? json_object_set_new(j, n->pairs[i].key, v)
                       : json_array_append_new(j, v);
        if (rc < 0) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

/* ---- the test model -------------------------------------------------------------- */

typedef struct fixture {
    const sl_node *node;
    const char *connector, *method, *path, *body, *error;
    int status;
    int want_calls; /* -1: any number */
    int calls;      /* under case_run.mu */
} fixture;

typedef struct tfile {
    const char *path;
    sl_pool pool; /* the test file's node tree */
    sl_node *root;
    char config[PATH_MAX];
    const char *route_name;
    sl_config *cfg;             /* loaded once to check the file; each case loads its own */
    const sl_route_conf *route; /* in cfg */
    fixture *fx;                /* file-level fixtures */
    size_t n_fx;
    const char *tmpdir; /* where the cases' data_dirs go */
} tfile;

/* What one output received. */
typedef struct capture {
    sl_msg **msgs;
    size_t n;
} capture;

/* One case while it runs: shared between the test (main) thread and the
 * route workers, which reach it through the capture connector. */
typedef struct case_run {
    pthread_mutex_t mu; /* guards everything the workers touch */
    pthread_cond_t cond;
    char data_dir[PATH_MAX];
    sl_gateway *gw;
    sl_route *route;
    const sl_route_conf *rconf; /* the route's conf in gw */
    sl_partition *dlq;
    capture *cap; /* cap[i]: output rconf->to[i] */
    size_t n_cap;
    fixture *fx[2]; /* the case's fixtures, then the file's */
    size_t n_fx[2];
    dstr *why;
    bool failed;
    bool done;          /* the watched input is finished */
    sl_msg_state state; /* how */
    size_t n_errors, n_dropped;
    char first_error[600];
} case_run;

static int parse_fixture(const sl_node *n, fixture *f, char *err)
{
    static const char *const keys[] = {"connector", "method", "path",  "status", "headers",
                                       "body",      "error",  "calls", NULL};
    if (check_keys(n, keys, "fixture", err) < 0)
        return -1;
    f->node = n;
    f->connector = nstr(sl_node_get(n, "connector"));
    f->method = nstr(sl_node_get(n, "method"));
    f->path = nstr(sl_node_get(n, "path"));
    f->body = nstr(sl_node_get(n, "body"));
    f->error = nstr(sl_node_get(n, "error"));
    const char *st = nstr(sl_node_get(n, "status"));
    const char *calls = nstr(sl_node_get(n, "calls"));
    f->status = st ? atoi(st) : 200;
    f->want_calls = calls ? atoi(calls) : -1;
    if (!f->connector || !f->path) {
        snprintf(err, ERR_CAP, "line %d: fixture: 'connector' and 'path' are required",
                 n->pos.line);
        return -1;
    }
    if (f->status < 100 || f->status > 599) {
        snprintf(err, ERR_CAP, "line %d: fixture: status must be 100..599", n->pos.line);
        return -1;
    }
    return 0;
}

/* Parses a `fixtures:` list (seq may be NULL) into a malloc'd array. */
static int parse_fixtures(const sl_node *seq, fixture **out, size_t *n, char *err)
{
    *out = NULL;
    *n = 0;
    if (!seq)
        return 0;
    if (seq->kind != SL_NODE_SEQ) {
        snprintf(err, ERR_CAP, "line %d: fixtures: expected a list", seq->pos.line);
        return -1;
    }
    *out = calloc(seq->n_items ? seq->n_items : 1, sizeof **out);
    if (!*out) {
        snprintf(err, ERR_CAP, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < seq->n_items; i++) {
        if (parse_fixture(seq->items[i], &(*out)[i], err) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

/* ---- the capture connector ------------------------------------------------------- */

/* c->state is the case_run, preset by sl_gateway_new_as. */
static int capture_init(sl_connector *c, sl_error *err)
{
    return 0;
}

static int capture_attach_input(sl_connector *c, sl_route *route, sl_error *err)
{
    return 0; /* inputs never start: the test appends */
}

static void capture_destroy(sl_connector *c)
{
}

/* Records a copy of each message at its output and answers OK. */
static void capture_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                         sl_send_result *results)
{
    case_run *run = c->state;
    const sl_route_conf *rc = run->rconf;
    bool ours = out >= rc->to && out < rc->to + rc->n_to;
    capture *cap = ours ? &run->cap[out - rc->to] : NULL;
    pthread_mutex_lock(&run->mu);
    for (size_t i = 0; i < n; i++) {
        sl_msg **grown = cap ? realloc(cap->msgs, (cap->n + 1) * sizeof *grown) : NULL;
        sl_msg *copy = grown ? sl_msg_clone(msgs[i]) : NULL;
        if (grown)
            cap->msgs = grown;
        if (cap && !copy) {
            sl_send_result_set(&results[i], SL_RETRY, 0, "sluice test: out of memory");
            continue;
        }
        if (cap)
            cap->msgs[cap->n++] = copy;
        sl_send_result_set(&results[i], SL_OK, 0, NULL);
    }
    pthread_mutex_unlock(&run->mu);
}

/* Copies the fixture's headers (names lower case) into resp. */
static void fixture_headers(const fixture *f, sl_call_resp *resp)
{
    const sl_node *h = sl_node_get(f->node, "headers");
    if (!h || h->kind != SL_NODE_MAP || !h->n_pairs)
        return;
    resp->headers = calloc(h->n_pairs, sizeof *resp->headers);
    for (size_t k = 0; resp->headers && k < h->n_pairs; k++) {
        const char *v = nstr(h->pairs[k].value);
        resp->headers[k].key = strdup(h->pairs[k].key);
        resp->headers[k].value = strdup(v ? v : "");
        resp->n_headers++;
        for (char *p = resp->headers[k].key; p && *p; p++)
            *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
        if (!resp->headers[k].key || !resp->headers[k].value)
            break;
    }
}

/* Fills resp from fixture f, as an HTTP peer would have answered. */
static int fixture_answer(fixture *f, const char *method, const char *connector, sl_call_resp *resp)
{
    f->calls++;
    if (f->error) {
        resp->result = SL_RETRY;
        snprintf(resp->error, sizeof resp->error, "%s", f->error);
        return SL_RETRY;
    }
    resp->status = f->status;
    fixture_headers(f, resp);
    if (f->body) {
        resp->body = strdup(f->body);
        resp->body_len = resp->body ? strlen(resp->body) : 0;
    }
    int st = f->status;
    resp->result = st >= 200 && st < 300                   ? SL_OK
                   : (st >= 500 || st == 408 || st == 429) ? SL_RETRY
                                                           : SL_FAIL;
    if (resp->result != SL_OK)
        snprintf(resp->error, sizeof resp->error, "%s %s: HTTP %d", method, connector, st);
    return resp->result;
}

/* Answers a ctx.http call to connector c from the fixtures (the case's
 * first); a call no fixture matches fails the case. */
static int capture_call(sl_connector *c, const sl_call_req *req, sl_call_resp *resp)
{
    case_run *run = c->state;
    const char *name = c->conf->name;
    const char *method = req->method ? req->method : "GET";
    const char *path = req->path ? req->path : "";
    memset(resp, 0, sizeof *resp);
    pthread_mutex_lock(&run->mu);
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < run->n_fx[l]; i++) {
            fixture *f = &run->fx[l][i];
            if (strcmp(f->connector, name) != 0 || strcmp(f->path, path) != 0 ||
                strcasecmp(f->method ? f->method : "GET", method) != 0)
                continue;
            int rc = fixture_answer(f, method, name, resp);
            pthread_mutex_unlock(&run->mu);
            return rc;
        }
    }
    ds_printf(run->why, "    unexpected ctx.http call: %s %s %s (no fixture matches)\n", method,
              name, path);
    run->failed = true;
    pthread_mutex_unlock(&run->mu);
    resp->result = SL_FAIL;
    snprintf(resp->error, sizeof resp->error, "no fixture for %s %s %s", method, name, path);
    return SL_FAIL;
}

static const sl_connector_type capture_connector = {
    .name = "capture",
    .can_input = true,
    .can_output = true,
    .init = capture_init,
    .attach_input = capture_attach_input,
    .send = capture_send,
    .destroy = capture_destroy,
    .call = capture_call,
};

/* ---- comparing ------------------------------------------------------------------- */

/* Splits s into lines (in place copy). Returns the count; *lines malloc'd. */
static size_t split_lines(char *s, char ***lines)
{
    size_t n = 1;
    for (char *p = s; *p; p++)
        n += *p == '\n';
    *lines = calloc(n, sizeof **lines);
    if (!*lines)
        return 0;
    size_t i = 0;
    char *save = s;
    for (char *p = s;; p++) {
        if (*p == '\n' || *p == '\0') {
            bool end = *p == '\0';
            *p = '\0';
            (*lines)[i++] = save;
            save = p + 1;
            if (end)
                break;
        }
    }
    return i;
}

/* A line diff (longest common subsequence) of expected and got. */
static void line_diff(dstr *out, const char *expected, const char *got)
{
    char *a = strdup(expected), *b = strdup(got);
    char **la = NULL, **lb = NULL;
    size_t na = a ? split_lines(a, &la) : 0, nb = b ? split_lines(b, &lb) : 0;
    unsigned *tab = NULL;
    if (na && nb && na <= 2000 && nb <= 2000)
        tab = calloc((na + 1) * (nb + 1), sizeof *tab);
    if (!tab) {
        ds_printf(out, "      expected: %s\n      got:      %s\n", expected, got);
        goto done;
    }
#define T(i, j) tab[(i) * (nb + 1) + (j)]
    for (size_t i = na; i-- > 0;)
        for (size_t j = nb; j-- > 0;)
            T(i, j) = strcmp(la[i], lb[j]) == 0    ? T(i + 1, j + 1) + 1
                      : T(i + 1, j) >= T(i, j + 1) ? T(i + 1, j)
                                                   : T(i, j + 1);
    ds_printf(out, "      --- expected\n      +++ got\n");
    size_t i = 0, j = 0;
    while (i < na || j < nb) {
        if (i < na && j < nb && strcmp(la[i], lb[j]) == 0) {
            ds_printf(out, "        %s\n", la[i]);
            i++;
            j++;
        } else if (i < na && (j == nb || T(i + 1, j) >= T(i, j + 1))) {
            ds_printf(out, "      - %s\n", la[i++]);
        } else {
            ds_printf(out, "      + %s\n", lb[j++]);
        }
    }
#undef T
done:
    free(tab);
    free(la);
    free(lb);
    free(a);
    free(b);
}

/* Pretty JSON of text when it is JSON, else NULL. */
static char *pretty_json(const char *text, size_t len)
{
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, NULL);
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    json_decref(j);
    return s;
}

static void body_diff(dstr *out, const char *expected, const sl_msg *m)
{
    char *pe = pretty_json(expected, strlen(expected));
    char *pg = pe ? pretty_json(m->body, m->body_len) : NULL;
    if (pe && pg)
        line_diff(out, pe, pg);
    else
        line_diff(out, expected, m->body);
    free(pe);
    free(pg);
}

/* Is expected a subset of got? Objects: every expected member, recursively;
 * arrays: the same length, element by element; numbers by value. On a
 * mismatch, writes where into why. */
static bool json_subset(const json_t *exp, const json_t *got, char *path, size_t cap, dstr *why)
{
    size_t plen = strlen(path);
    bool ok = true;
    if (json_is_object(exp) && json_is_object(got)) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)exp, k, v)
        {
            snprintf(path + plen, cap - plen, ".%s", k);
            json_t *g = json_object_get(got, k);
            if (!g) {
                ds_printf(why, "      %s: missing\n", path);
                ok = false;
            } else if (!json_subset(v, g, path, cap, why)) {
                ok = false;
            }
        }
    } else if (json_is_array(exp) && json_is_array(got)) {
        if (json_array_size(exp) != json_array_size(got)) {
            ds_printf(why, "      %s: expected %zu elements, got %zu\n", path, json_array_size(exp),
                      json_array_size(got));
            ok = false;
        } else {
            for (size_t i = 0; i < json_array_size(exp); i++) {
                snprintf(path + plen, cap - plen, "[%zu]", i);
                if (!json_subset(json_array_get(exp, i), json_array_get(got, i), path, cap, why))
                    ok = false;
            }
        }
    } else if (json_is_number(exp) && json_is_number(got)) {
        ok = json_number_value(exp) == json_number_value(got);
    } else {
        ok = json_equal((json_t *)exp, (json_t *)got);
    }
    path[plen] = '\0';
    if (!ok && !json_is_object(exp) && !json_is_array(exp)) {
        char *e = json_dumps(exp, JSON_ENCODE_ANY | JSON_COMPACT);
        char *g = json_dumps(got, JSON_ENCODE_ANY | JSON_COMPACT);
        ds_printf(why, "      %s: expected %s, got %.300s\n", *path ? path : "$", e ? e : "?",
                  g ? g : "?");
        free(e);
        free(g);
    }
    return ok;
}

static bool check_subset(const json_t *exp, const json_t *got, const char *what, dstr *why,
                         const sl_msg *m)
{
    char path[512] = "$";
    dstr d = {0};
    bool ok = json_subset(exp, got, path, sizeof path, &d);
    if (!ok) {
        ds_printf(why, "    %s does not match:\n%s", what, d.p ? d.p : "");
        char *pg = pretty_json(m->body, m->body_len);
        ds_printf(why, "      the body was:\n");
        const char *b = pg ? pg : m->body;
        while (*b) {
            const char *nl = strchr(b, '\n');
            int len = nl ? (int)(nl - b) : (int)strlen(b);
            ds_printf(why, "        %.*s\n", len, b);
            b += len + (nl ? 1 : 0);
        }
        free(pg);
    }
    free(d.p);
    return ok;
}

static bool check_body(const sl_node *e, const sl_msg *m, const char *label, dstr *why)
{
    const char *body = nstr(sl_node_get(e, "body"));
    if (!body || (strlen(body) == m->body_len && memcmp(body, m->body, m->body_len) == 0))
        return true;
    ds_printf(why, "    %s: the body differs:\n", label);
    body_diff(why, body, m);
    return false;
}

static bool check_json_subset(const sl_node *e, const sl_msg *m, const char *label, dstr *why)
{
    const sl_node *js = sl_node_get(e, "json_subset");
    if (!js)
        return true;
    bool ok = false;
    json_t *exp = js->kind == SL_NODE_SCALAR && js->quoted
                      ? json_loads(js->scalar, JSON_DECODE_ANY, NULL)
                      : node_to_json(js);
    json_t *got = json_loadb(m->body, m->body_len, JSON_DECODE_ANY, NULL);
    char what[200];
    snprintf(what, sizeof what, "%s: json_subset", label);
    if (!exp)
        ds_printf(why, "    %s: json_subset is not valid JSON\n", label);
    else if (!got)
        ds_printf(why, "    %s: the body is not JSON: %.200s\n", label, m->body);
    else
        ok = check_subset(exp, got, what, why, m);
    json_decref(exp);
    json_decref(got);
    return ok;
}

static bool check_xml_subset(const sl_node *e, const sl_msg *m, const char *label, dstr *why)
{
    const char *xs = nstr(sl_node_get(e, "xml_subset"));
    if (!xs)
        return true;
    bool ok = false;
    sl_error err;
    json_t *exp = sl_test_xml_to_json(xs, strlen(xs), &err);
    json_t *got = exp ? sl_test_xml_to_json(m->body, m->body_len, &err) : NULL;
    char what[200];
    snprintf(what, sizeof what, "%s: xml_subset", label);
    if (!exp || !got) {
        ds_printf(why, "    %s: %s XML: %s\n", label, exp ? "the body is not" : "bad expected",
                  err.msg);
        if (exp)
            ds_printf(why, "      the body was: %.300s\n", m->body);
    } else {
        ok = check_subset(exp, got, what, why, m);
    }
    json_decref(exp);
    json_decref(got);
    return ok;
}

/* Headers: each expected value exactly; null (or nothing) means absent. */
static bool check_headers(const sl_node *e, const sl_msg *m, const char *label, dstr *why)
{
    const sl_node *hdrs = sl_node_get(e, "headers");
    bool ok = true;
    for (size_t i = 0; hdrs && hdrs->kind == SL_NODE_MAP && i < hdrs->n_pairs; i++) {
        const sl_node_pair *p = &hdrs->pairs[i];
        const char *want = nstr(p->value);
        const char *got = sl_msg_get_header(m, p->key, NULL);
        bool absent_wanted = p->value->kind == SL_NODE_NULL;
        if (absent_wanted ? got != NULL : (!got || !want || strcmp(got, want) != 0)) {
            ds_printf(why, "    %s: header %s: expected %s, got %s\n", label, p->key,
                      absent_wanted ? "(absent)"
                      : want        ? want
                                    : "?",
                      got ? got : "(absent)");
            ok = false;
        }
    }
    return ok;
}

/* The message's key, as the route computed it (or the input gave it). */
static bool check_key(const sl_node *e, const sl_msg *m, const char *label, dstr *why)
{
    const sl_node *key = sl_node_get(e, "key");
    if (!key)
        return true;
    const char *want = nstr(key);
    if (want && m->key && strlen(want) == m->key_len && memcmp(want, m->key, m->key_len) == 0)
        return true;
    ds_printf(why, "    %s: key: expected %s, got %.*s\n", label, want ? want : "?",
              m->key ? (int)m->key_len : 6, m->key ? m->key : "(none)");
    return false;
}

static bool check_lua(const sl_node *e, sl_msg *m, const char *label, dstr *why)
{
    const char *pred = nstr(sl_node_get(e, "expect_lua"));
    if (!pred)
        return true;
    sl_error err;
    sl_expr *x = sl_expr_compile_cond(pred, NULL, &err);
    bool res = false, ok = false;
    if (!x || sl_expr_eval_bool(x, m, &res, &err) < 0)
        ds_printf(why, "    %s: expect_lua \"%s\" raised: %s\n", label, pred, err.msg);
    else if (!res)
        ds_printf(why, "    %s: expect_lua \"%s\" is false; the body was: %.300s\n", label, pred,
                  m->body);
    else
        ok = true;
    sl_expr_free(x);
    return ok;
}

/* Checks one captured message against one expectation map. */
static bool check_message(const sl_node *e, sl_msg *m, const char *label, dstr *why)
{
    bool ok = check_body(e, m, label, why);
    ok &= check_json_subset(e, m, label, why);
    ok &= check_xml_subset(e, m, label, why);
    ok &= check_headers(e, m, label, why);
    ok &= check_key(e, m, label, why);
    ok &= check_lua(e, m, label, why);
    return ok;
}

/* ---- environment variables ---------------------------------------------------------- */

#define MAX_UNSET 64

/* The unset ${VAR}s a config load met (each expanded to ""). */
typedef struct unset_vars {
    struct {
        char name[64];
        sl_conf_pos pos; /* pos.file lives as long as the config */
    } v[MAX_UNSET];
    size_t n;
} unset_vars;

/* sl_config_unset_fn: every connector is captured, so a variable only the
 * connectors (or other routes) use need not be set; the load notes where
 * each one was. arg NULL: accepted without a note. */
static bool accept_unset(void *arg, const char *var, sl_conf_pos pos)
{
    unset_vars *u = arg;
    if (!u)
        return true;
    if (u->n == MAX_UNSET)
        return false; /* too many to check: the usual error */
    snprintf(u->v[u->n].name, sizeof u->v[u->n].name, "%s", var);
    u->v[u->n++].pos = pos;
    return true;
}

/* Is a node at pos in the tree n? */
static bool node_at(const sl_node *n, sl_conf_pos pos)
{
    if (!n)
        return false;
    if (n->pos.line == pos.line && n->pos.col == pos.col && !strcmp(n->pos.file, pos.file))
        return true;
    for (size_t i = 0; i < n->n_pairs; i++) {
        if (node_at(n->pairs[i].value, pos))
            return true;
    }
    for (size_t i = 0; i < n->n_items; i++) {
        if (node_at(n->items[i], pos))
            return true;
    }
    return false;
}

/* Fails when the tested route itself (its from, steps or outputs) uses a
 * variable that is not set, with the error `sluice run` would give. */
static int check_route_env(const sl_route_conf *r, const unset_vars *u, char *err)
{
    for (size_t i = 0; i < u->n; i++) {
        sl_conf_pos pos = u->v[i].pos;
        bool used = node_at(r->from.node, pos);
        for (size_t s = 0; s < r->n_steps; s++)
            used |= node_at(r->steps[s].node, pos);
        for (size_t o = 0; o < r->n_to; o++)
            used |= node_at(r->to[o].node, pos);
        if (used) {
            snprintf(err, ERR_CAP,
                     "%s:%d:%d: environment variable %s is not set (route %s uses it)", pos.file,
                     pos.line, pos.col, u->v[i].name, r->name);
            return -1;
        }
    }
    return 0;
}

/* ---- running a case ------------------------------------------------------------------ */

/* The message of one `input:` entry. Returns NULL with err. */
static sl_msg *make_input(const sl_node *in, char *err)
{
    static const char *const keys[] = {"body", "json", "headers", "key", NULL};
    if (check_keys(in, keys, "input", err) < 0)
        return NULL;
    sl_msg *m = sl_msg_new();
    if (!m) {
        snprintf(err, ERR_CAP, "out of memory");
        return NULL;
    }
    const char *body = nstr(sl_node_get(in, "body"));
    const sl_node *js = sl_node_get(in, "json");
    char *dumped = NULL;
    if (js) {
        json_t *j = node_to_json(js);
        dumped = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(j);
        body = dumped;
    }
    int rc = body ? sl_msg_set_body(m, body, strlen(body)) : 0;
    free(dumped);
    const char *key = nstr(sl_node_get(in, "key"));
    if (rc == 0 && key)
        rc = sl_msg_set_key(m, key, strlen(key));
    const sl_node *h = sl_node_get(in, "headers");
    for (size_t i = 0; rc == 0 && h && h->kind == SL_NODE_MAP && i < h->n_pairs; i++) {
        const char *v = nstr(h->pairs[i].value);
        rc = sl_msg_set_header(m, h->pairs[i].key, v ? v : "", v ? strlen(v) : 0);
    }
    if (rc < 0 || (js && !body)) {
        snprintf(err, ERR_CAP, "out of memory");
        sl_msg_free(m);
        return NULL;
    }
    return m;
}

static int output_index(const sl_route_conf *r, const char *name)
{
    for (size_t i = 0; i < r->n_to; i++) {
        if (r->to[i].name && strcmp(r->to[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* Checks a case's shape before it runs. Returns 0, or -1 with err. */
static int check_case(const tfile *tf, const sl_node *c, char *err)
{
    static const char *const keys[] = {"name",   "input",        "inputs",  "fixtures",
                                       "expect", "expect_error", "dropped", NULL};
    if (check_keys(c, keys, "case", err) < 0)
        return -1;
    const sl_node *expect = sl_node_get(c, "expect");
    if (expect && expect->kind != SL_NODE_MAP) {
        snprintf(err, ERR_CAP, "line %d: expect: expected a map of output names", expect->pos.line);
        return -1;
    }
    for (size_t i = 0; expect && i < expect->n_pairs; i++) {
        const sl_node_pair *p = &expect->pairs[i];
        if (output_index(tf->route, p->key) < 0) {
            snprintf(err, ERR_CAP, "line %d: expect: route %s has no output named '%s'",
                     p->key_pos.line, tf->route->name, p->key);
            return -1;
        }
        if (p->value->kind != SL_NODE_SEQ) {
            snprintf(err, ERR_CAP, "line %d: expect.%s: expected a list of messages",
                     p->value->pos.line, p->key);
            return -1;
        }
    }
    const sl_node *inputs = sl_node_get(c, "inputs");
    if ((inputs && inputs->kind != SL_NODE_SEQ) || (!inputs && !sl_node_get(c, "input"))) {
        snprintf(err, ERR_CAP, "line %d: a case needs 'input' (a message) or 'inputs' (a list)",
                 c->pos.line);
        return -1;
    }
    return 0;
}

/* Counts an error of input k (1-based) and keeps the first one's text. */
static void note_error(case_run *run, size_t k, const char *what, const char *error)
{
    if (run->n_errors++ == 0)
        snprintf(run->first_error, sizeof run->first_error, "input %zu: %s%s", k, what, error);
}

/* The route's word that the watched input is finished (a worker thread). */
static void on_done(void *arg, const char *id, const sl_route_outcome *outcome)
{
    case_run *run = arg;
    (void)id;
    pthread_mutex_lock(&run->mu);
    run->done = true;
    run->state = outcome->state;
    pthread_cond_broadcast(&run->cond);
    pthread_mutex_unlock(&run->mu);
}

/* Loads the config again for this case and points it at a fresh data_dir
 * under tf->tmpdir with fsync: never. Returns it, or NULL with err. */
static sl_config *case_config(case_run *run, const tfile *tf, size_t idx, char *err)
{
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load_env(tf->config, accept_unset, NULL, &errs);
    if (!cfg)
        snprintf(err, ERR_CAP, "config %s: %s", tf->config, errs.n ? errs.lines[0] : "invalid");
    sl_config_errors_free(&errs);
    if (!cfg)
        return NULL;
    snprintf(run->data_dir, sizeof run->data_dir, "%s/case-%zu", tf->tmpdir, idx);
    cfg->gw.data_dir = run->data_dir; /* not the pool's: sl_config_free leaves it */
    cfg->gw.log.fsync = SL_FSYNC_NEVER;
    return cfg;
}

/* Builds the case's gateway with every connector captured, and starts the
 * tested route's workers (nothing else runs). Returns 0, or -1 with err. */
static int case_start(case_run *run, const tfile *tf, size_t idx, char *err)
{
    sl_error e;
    sl_config *cfg = case_config(run, tf, idx, err);
    if (!cfg)
        return -1;
    run->gw = sl_gateway_new_as(cfg, &capture_connector, run, &e);
    if (!run->gw) {
        snprintf(err, ERR_CAP, "route %s: %s", tf->route_name, e.msg);
        return -1;
    }
    run->route = sl_gateway_route(run->gw, tf->route_name);
    if (!run->route) {
        snprintf(err, ERR_CAP, "config %s has no route named '%s'", tf->config, tf->route_name);
        return -1;
    }
    run->rconf = sl_route_get_conf(run->route);
    run->cap = calloc(run->rconf->n_to ? run->rconf->n_to : 1, sizeof *run->cap);
    run->n_cap = run->cap ? run->rconf->n_to : 0;
    sl_topic *dlq = sl_log_topic(sl_gateway_log(run->gw), run->rconf->dead_letter_topic, 1, &e);
    run->dlq = dlq ? sl_topic_partition(dlq, 0) : NULL;
    if (!run->cap || !run->dlq || sl_route_start(run->route, &e) < 0) {
        snprintf(err, ERR_CAP, "route %s: %s", tf->route_name, run->cap ? e.msg : "out of memory");
        return -1;
    }
    return 0;
}

/* Waits until the route has finished the watched input (delivered, dropped
 * or dead-lettered) and committed past its offset. Returns 0, or -1 after
 * INPUT_DEADLINE_S (the case fails; the route's last error says why). */
static int wait_finished(case_run *run, int part, int64_t offset, size_t k)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += INPUT_DEADLINE_S;
    pthread_mutex_lock(&run->mu);
    while (!run->done && pthread_cond_timedwait(&run->cond, &run->mu, &deadline) != ETIMEDOUT)
        ;
    bool done = run->done;
    pthread_mutex_unlock(&run->mu);
    sl_route_partition_info info;
    /* The commit follows the word within the same batch: poll it briefly. */
    while (sl_route_get_partition_info(run->route, part, &info) == 0 && info.committed <= offset) {
        struct timespec now, ms = {0, 1000000L};
        clock_gettime(CLOCK_REALTIME, &now);
        if (!done || now.tv_sec > deadline.tv_sec) {
            pthread_mutex_lock(&run->mu); /* the workers still run */
            ds_printf(run->why, "    input %zu: not finished by the route within %d s: %s\n", k,
                      INPUT_DEADLINE_S, info.last_error[0] ? info.last_error : "(no error)");
            run->failed = true;
            pthread_mutex_unlock(&run->mu);
            return -1;
        }
        nanosleep(&ms, NULL);
    }
    return 0;
}

/* Counts what the route dead-lettered from `from` on as input k's errors. */
static void collect_dead_letters(case_run *run, int64_t from, size_t k)
{
    sl_batch b;
    sl_batch_init(&b);
    sl_error e;
    while (sl_partition_read(run->dlq, from, 64, 1u << 20, &b, &e) > 0) {
        for (size_t i = 0; i < b.count; i++) {
            sl_msg *m = sl_msg_from_record(&b.records[i], 0, &e);
            const char *why = m ? sl_msg_get_header(m, "x-sluice-error", NULL) : NULL;
            note_error(run, k, "", why ? why : "dead-lettered");
            sl_msg_free(m);
        }
        from = b.next_offset;
    }
    sl_batch_free(&b);
}

/* Appends input k (1-based) to the route's topic as an input does (the
 * route's `key:` is evaluated then) and waits until the route finished it.
 * A key that cannot be evaluated is an error of the input, as `sluice run`
 * refuses it at ingest. Returns 0, 1 when the route did not finish it in
 * time (the case failed), or -1 with err (malformed input, out of memory). */
static int feed_input(case_run *run, const sl_node *in, size_t k, char *err)
{
    sl_msg *m = make_input(in, err);
    if (!m)
        return -1;
    sl_error e;
    int64_t dlq_from = sl_partition_end_offset(run->dlq);
    pthread_mutex_lock(&run->mu);
    run->done = false;
    pthread_mutex_unlock(&run->mu);
    if (sl_route_watch(run->route, m->id, on_done, run) < 0) {
        sl_msg_free(m);
        snprintf(err, ERR_CAP, "out of memory");
        return -1;
    }
    if (sl_route_append(run->route, m, &e) < 0) {
        sl_route_unwatch(run->route, m->id);
        sl_msg_free(m);
        if (e.code != SL_EINVAL) {
            snprintf(err, ERR_CAP, "input %zu: cannot append: %s", k, e.msg);
            return -1;
        }
        note_error(run, k, "refused at ingest (HTTP 400, or a dead letter from a queue): ", e.msg);
        return 0;
    }
    int part = m->partition;
    int64_t offset = m->offset;
    sl_msg_free(m);
    if (wait_finished(run, part, offset, k) < 0)
        return 1;
    collect_dead_letters(run, dlq_from, k);
    run->n_dropped += run->state == SL_MSG_DROPPED;
    return 0;
}

/* Feeds the case's inputs one after another. Returns as feed_input. */
static int feed_inputs(case_run *run, const sl_node *c, char *err)
{
    const sl_node *inputs = sl_node_get(c, "inputs");
    size_t n = inputs ? inputs->n_items : 1;
    for (size_t k = 0; k < n; k++) {
        int rc = feed_input(run, inputs ? inputs->items[k] : sl_node_get(c, "input"), k + 1, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Appends the message of record rec to cap. Returns 0, or -1 with e. */
static int capture_record(capture *cap, const sl_record *rec, int partition, sl_error *e)
{
    sl_msg **grown = realloc(cap->msgs, (cap->n + 1) * sizeof *grown);
    if (!grown)
        return sl_error_set(e, SL_ENOMEM, "out of memory");
    cap->msgs = grown;
    sl_msg *m = sl_msg_from_record(rec, partition, e);
    if (!m)
        return -1;
    cap->msgs[cap->n++] = m;
    return 0;
}

/* Topic outputs went through the real log: reads what they appended (the
 * case's log is fresh), partition by partition. Returns 0, or -1 with err. */
static int collect_topic_output(case_run *run, size_t o, char *err)
{
    sl_error e;
    sl_topic *t = sl_log_topic(sl_gateway_log(run->gw), run->rconf->to[o].topic, 0, &e);
    sl_batch b;
    sl_batch_init(&b);
    int rc = t ? 0 : -1;
    for (int p = 0; t && p < sl_topic_partition_count(t) && rc == 0; p++) {
        sl_partition *part = sl_topic_partition(t, p);
        int64_t from = 0;
        int got = 0;
        while (rc == 0 && (got = sl_partition_read(part, from, 64, 1u << 20, &b, &e)) > 0) {
            for (size_t i = 0; i < b.count && rc == 0; i++)
                rc = capture_record(&run->cap[o], &b.records[i], p, &e);
            from = b.next_offset;
        }
        rc = rc == 0 && got < 0 ? -1 : rc;
    }
    sl_batch_free(&b);
    if (rc < 0)
        snprintf(err, ERR_CAP, "output %s: %s", run->rconf->to[o].name, e.msg);
    return rc;
}

/* The case's verdict on errors (failed steps, refused keys, dead letters)
 * and drops. */
static void check_errors(case_run *run, const sl_node *c, size_t n_in)
{
    const char *want_error = nstr(sl_node_get(c, "expect_error"));
    if (want_error) {
        if (!run->n_errors) {
            ds_printf(run->why, "    expected a step to fail with \"%s\"; none failed\n",
                      want_error);
            run->failed = true;
        } else if (!strstr(run->first_error, want_error)) {
            ds_printf(run->why, "    expected an error with \"%s\", got: %s\n", want_error,
                      run->first_error);
            run->failed = true;
        }
    } else if (run->n_errors) {
        ds_printf(run->why, "    %s\n", run->first_error);
        run->failed = true;
    }
    const char *dropped = nstr(sl_node_get(c, "dropped"));
    if (dropped && !strcmp(dropped, "true") && run->n_dropped != n_in) {
        ds_printf(run->why, "    expected every input to be dropped; %zu of %zu were\n",
                  run->n_dropped, n_in);
        run->failed = true;
    }
}

/* Compares every `expect:` list with what its output received. Returns 0,
 * or -1 with err on a malformed expectation. */
static int check_outputs(case_run *run, const sl_node *expect, char *err)
{
    static const char *const mkeys[] = {"body", "json_subset", "xml_subset", "headers",
                                        "key",  "expect_lua",  NULL};
    for (size_t i = 0; expect && i < expect->n_pairs; i++) {
        const char *name = expect->pairs[i].key;
        const sl_node *list = expect->pairs[i].value;
        const capture *cap = &run->cap[output_index(run->rconf, name)];
        if (list->n_items != cap->n) {
            ds_printf(run->why, "    output %s: expected %zu message(s), got %zu\n", name,
                      list->n_items, cap->n);
            for (size_t k = 0; k < cap->n; k++)
                ds_printf(run->why, "      got: %.300s\n", cap->msgs[k]->body);
            run->failed = true;
            continue;
        }
        for (size_t k = 0; k < list->n_items; k++) {
            if (check_keys(list->items[k], mkeys, "expected message", err) < 0)
                return -1;
            char label[300];
            snprintf(label, sizeof label, "output %s, message %zu", name, k + 1);
            if (!check_message(list->items[k], cap->msgs[k], label, run->why))
                run->failed = true;
        }
    }
    return 0;
}

static void check_fixture_calls(case_run *run)
{
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < run->n_fx[l]; i++) {
            const fixture *f = &run->fx[l][i];
            if (f->want_calls >= 0 && f->calls != f->want_calls) {
                ds_printf(run->why, "    fixture %s %s %s: expected %d call(s), got %d\n",
                          f->method ? f->method : "GET", f->connector, f->path, f->want_calls,
                          f->calls);
                run->failed = true;
            }
        }
    }
}

/* Stops the case's gateway and frees what the case holds. */
static void case_free(case_run *run)
{
    sl_gateway_free(run->gw); /* stops the route's workers first */
    for (size_t i = 0; i < run->n_cap; i++) {
        for (size_t k = 0; k < run->cap[i].n; k++)
            sl_msg_free(run->cap[i].msgs[k]);
        free(run->cap[i].msgs);
    }
    free(run->cap);
    free(run->fx[0]);
    pthread_mutex_destroy(&run->mu);
    pthread_cond_destroy(&run->cond);
}

/* Runs case c (number idx) of tf through the route. Returns 0 (passed), 1
 * (failed; why says how) or 2 (malformed, or the gateway could not be
 * built; err says why). */
static int run_case(tfile *tf, const sl_node *c, size_t idx, dstr *why, char *err)
{
    if (check_case(tf, c, err) < 0)
        return 2;
    case_run run = {.why = why, .fx[1] = tf->fx, .n_fx[1] = tf->n_fx};
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cond, NULL);
    for (size_t i = 0; i < tf->n_fx; i++)
        tf->fx[i].calls = 0;
    int result = 2;
    if (parse_fixtures(sl_node_get(c, "fixtures"), &run.fx[0], &run.n_fx[0], err) == 0 &&
        case_start(&run, tf, idx, err) == 0) {
        int fed = feed_inputs(&run, c, err);
        sl_route_stop(run.route); /* every capture and every fixture call is in */
        for (size_t o = 0; fed >= 0 && o < run.rconf->n_to; o++) {
            if (!run.rconf->to[o].connector && collect_topic_output(&run, o, err) < 0)
                fed = -1;
        }
        const sl_node *inputs = sl_node_get(c, "inputs");
        if (fed == 0)
            check_errors(&run, c, inputs ? inputs->n_items : 1);
        if (fed >= 0 && check_outputs(&run, sl_node_get(c, "expect"), err) == 0) {
            check_fixture_calls(&run);
            result = run.failed ? 1 : 0;
        }
    }
    case_free(&run);
    return result;
}

/* ---- a file --------------------------------------------------------------------------- */

/* Resolves the test file's `config:` against the test file's directory. */
static void config_path(tfile *tf, const char *config)
{
    const char *slash = strrchr(tf->path, '/');
    if (config[0] == '/' || !slash)
        snprintf(tf->config, sizeof tf->config, "%s", config);
    else
        snprintf(tf->config, sizeof tf->config, "%.*s/%s", (int)(slash - tf->path), tf->path,
                 config);
}

/* Loads the config once to check it and find the route; variables the
 * route does not use may be unset. */
static int load_config(tfile *tf, char *err)
{
    sl_config_errors errs = {0};
    unset_vars unset = {.n = 0};
    tf->cfg = sl_config_load_env(tf->config, accept_unset, &unset, &errs);
    if (!tf->cfg) {
        size_t o = (size_t)snprintf(err, ERR_CAP, "config %s is invalid:", tf->config);
        for (size_t i = 0; i < errs.n && o < ERR_CAP; i++)
            o += (size_t)snprintf(err + o, ERR_CAP - o, "\n    %s", errs.lines[i]);
        for (size_t i = 0; i < unset.n && o < ERR_CAP; i++)
            o += (size_t)snprintf(err + o, ERR_CAP - o, "\n    (%s is not set: read as \"\")",
                                  unset.v[i].name);
        sl_config_errors_free(&errs);
        return -1;
    }
    sl_config_errors_free(&errs);
    for (size_t i = 0; i < tf->cfg->n_routes; i++) {
        if (strcmp(tf->cfg->routes[i].name, tf->route_name) == 0)
            tf->route = &tf->cfg->routes[i];
    }
    if (!tf->route) {
        snprintf(err, ERR_CAP, "config %s has no route named '%s'", tf->config, tf->route_name);
        return -1;
    }
    return check_route_env(tf->route, &unset, err);
}

static int load_file(tfile *tf, char *err)
{
    static const char *const keys[] = {"config", "route", "fixtures", "cases", NULL};
    tf->root = load_tree(tf->path, &tf->pool, err);
    if (!tf->root || check_keys(tf->root, keys, "test file", err) < 0)
        return -1;
    const char *config = nstr(sl_node_get(tf->root, "config"));
    tf->route_name = nstr(sl_node_get(tf->root, "route"));
    const sl_node *cases = sl_node_get(tf->root, "cases");
    if (!config || !tf->route_name || !cases || cases->kind != SL_NODE_SEQ) {
        snprintf(err, ERR_CAP, "'config', 'route' and 'cases' (a list) are required");
        return -1;
    }
    config_path(tf, config);
    if (load_config(tf, err) < 0)
        return -1;
    return parse_fixtures(sl_node_get(tf->root, "fixtures"), &tf->fx, &tf->n_fx, err);
}

/* Runs every case of a loaded file, counting into *passed and *failed.
 * Returns false when a case was malformed. */
static bool run_cases(tfile *tf, FILE *out, size_t *passed, size_t *failed)
{
    const sl_node *cases = sl_node_get(tf->root, "cases");
    bool ok = true;
    for (size_t i = 0; i < cases->n_items; i++) {
        const sl_node *c = cases->items[i];
        char name[200], err[ERR_CAP] = "";
        const char *nm = nstr(sl_node_get(c, "name"));
        if (nm)
            snprintf(name, sizeof name, "%s", nm);
        else
            snprintf(name, sizeof name, "case %zu (line %d)", i + 1, c->pos.line);
        dstr why = {0};
        int rc = run_case(tf, c, i + 1, &why, err);
        if (rc == 2) {
            fprintf(out, "ERROR %s: %s: %s\n", tf->path, name, err);
            ok = false;
        } else {
            fprintf(out, "%s %s: %s\n", rc ? "FAIL" : "PASS", tf->path, name);
            if (rc && why.p)
                fputs(why.p, out);
            *(rc ? failed : passed) += 1;
        }
        free(why.p);
    }
    return ok;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

int sl_route_test_run(char *const *files, size_t n, FILE *out)
{
    size_t passed = 0, failed = 0;
    bool bad = false;
    char tmpdir[PATH_MAX];
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/sluice-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        fprintf(out, "ERROR cannot create a temporary directory: %s\n", strerror(errno));
        return 2;
    }
    for (size_t f = 0; f < n; f++) {
        tfile tf = {.path = files[f]};
        char err[ERR_CAP] = "";
        char sub[PATH_MAX];
        snprintf(sub, sizeof sub, "%s/file-%zu", tmpdir, f + 1);
        tf.tmpdir = sub;
        if (load_file(&tf, err) < 0) {
            fprintf(out, "ERROR %s: %s\n", tf.path, err);
            bad = true;
        } else if (!run_cases(&tf, out, &passed, &failed)) {
            bad = true;
        }
        sl_config_free(tf.cfg);
        sl_pool_free(&tf.pool);
        free(tf.fx);
    }
    nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    fprintf(out, "%zu passed, %zu failed\n", passed, failed);
    return bad ? 2 : failed ? 1 : 0;
}

int sl_route_test_main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: sluice test FILE...\n");
        return 2;
    }
    return sl_route_test_run(argv + 1, (size_t)argc - 1, stdout);
}
