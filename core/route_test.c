/* `sluice test`: runs a route's steps and `when:` expressions on the inputs
 * of a test file, with ctx.http answered from fixtures and every output
 * captured instead of sent, and compares what each output would receive
 * with what the test expects (exact body, JSON or XML subset, headers, key,
 * a Lua predicate). Nothing touches the network or the event log. */
#include "route_test.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "config.h"
#include "gateway.h"
#include "http_call.h"
#include "json_xml.h"
#include "lua_expr.h"
#include "lua_host.h"
#include "step.h"

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

/* ---- the test file: a small YAML tree ----------------------------------------- */

enum { T_SCALAR, T_MAP, T_SEQ };

typedef struct tnode {
    int kind;
    char *s; /* T_SCALAR */
    bool quoted;
    int line, col;
    char **keys; /* T_MAP */
    struct tnode **vals;
    size_t n;
} tnode;

static void tfree(tnode *t)
{
    if (!t)
        return;
    free(t->s);
    for (size_t i = 0; i < t->n; i++) {
        if (t->keys)
            free(t->keys[i]);
        tfree(t->vals[i]);
    }
    free(t->keys);
    free(t->vals);
    free(t);
}

static const tnode *tget(const tnode *m, const char *key)
{
    if (!m || m->kind != T_MAP)
        return NULL;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->keys[i], key) == 0)
            return m->vals[i];
    }
    return NULL;
}

static const char *tstr(const tnode *t)
{
    return t && t->kind == T_SCALAR ? t->s : NULL;
}

static int tadd(tnode *t, char *key, tnode *val)
{
    char **k = t->kind == T_MAP ? realloc(t->keys, (t->n + 1) * sizeof *k) : NULL;
    if (t->kind == T_MAP && !k)
        return -1;
    if (k)
        t->keys = k;
    tnode **v = realloc(t->vals, (t->n + 1) * sizeof *v);
    if (!v)
        return -1;
    t->vals = v;
    if (k)
        t->keys[t->n] = key;
    t->vals[t->n++] = val;
    return 0;
}

typedef struct yreader {
    yaml_parser_t p;
    char *err; /* ERR_CAP bytes */
} yreader;

#define ERR_CAP 512

static bool ynext(yreader *r, yaml_event_t *ev)
{
    if (yaml_parser_parse(&r->p, ev))
        return true;
    snprintf(r->err, ERR_CAP, "line %zu: %s", r->p.problem_mark.line + 1,
             r->p.problem ? r->p.problem : "YAML error");
    return false;
}

/* Builds the node that starts with ev (which is consumed). */
static tnode *ybuild(yreader *r, yaml_event_t *ev)
{
    tnode *t = calloc(1, sizeof *t);
    if (!t) {
        yaml_event_delete(ev);
        snprintf(r->err, ERR_CAP, "out of memory");
        return NULL;
    }
    t->line = (int)ev->start_mark.line + 1;
    t->col = (int)ev->start_mark.column + 1;
    yaml_event_type_t type = ev->type;
    if (type == YAML_SCALAR_EVENT) {
        t->kind = T_SCALAR;
        t->s = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        t->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        yaml_event_delete(ev);
        if (!t->s) {
            snprintf(r->err, ERR_CAP, "out of memory");
            tfree(t);
            return NULL;
        }
        return t;
    }
    yaml_event_delete(ev);
    if (type != YAML_SEQUENCE_START_EVENT && type != YAML_MAPPING_START_EVENT) {
        snprintf(r->err, ERR_CAP, "line %d: unsupported YAML (aliases are not allowed)", t->line);
        tfree(t);
        return NULL;
    }
    t->kind = type == YAML_MAPPING_START_EVENT ? T_MAP : T_SEQ;
    for (;;) {
        yaml_event_t e;
        if (!ynext(r, &e))
            goto fail;
        if (e.type == YAML_SEQUENCE_END_EVENT || e.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&e);
            return t;
        }
        char *key = NULL;
        if (t->kind == T_MAP) {
            if (e.type != YAML_SCALAR_EVENT) {
                snprintf(r->err, ERR_CAP, "line %zu: map keys must be plain strings",
                         e.start_mark.line + 1);
                yaml_event_delete(&e);
                goto fail;
            }
            key = strndup((const char *)e.data.scalar.value, e.data.scalar.length);
            yaml_event_delete(&e);
            if (!key || !ynext(r, &e)) {
                free(key);
                goto fail;
            }
        }
        tnode *v = ybuild(r, &e);
        if (!v || tadd(t, key, v) < 0) {
            free(key);
            tfree(v);
            goto fail;
        }
    }
fail:
    tfree(t);
    return NULL;
}

static tnode *yload(const char *path, char *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, ERR_CAP, "cannot open: %m");
        return NULL;
    }
    yreader r = {.err = err};
    tnode *root = NULL;
    if (!yaml_parser_initialize(&r.p)) {
        fclose(f);
        snprintf(err, ERR_CAP, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_file(&r.p, f);
    yaml_event_t ev;
    while (ynext(&r, &ev)) {
        yaml_event_type_t t = ev.type;
        if (t == YAML_SCALAR_EVENT || t == YAML_SEQUENCE_START_EVENT ||
            t == YAML_MAPPING_START_EVENT || t == YAML_ALIAS_EVENT) {
            root = ybuild(&r, &ev);
            break;
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) {
            snprintf(err, ERR_CAP, "the file is empty");
            break;
        }
    }
    yaml_parser_delete(&r.p);
    fclose(f);
    return root;
}

/* ---- YAML values as JSON -------------------------------------------------------- */

static json_t *scalar_to_json(const tnode *t)
{
    const char *s = t->s;
    if (t->quoted)
        return json_string(s);
    if (!*s || !strcmp(s, "null") || !strcmp(s, "~"))
        return json_null();
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

static json_t *tnode_to_json(const tnode *t)
{
    if (t->kind == T_SCALAR)
        return scalar_to_json(t);
    json_t *j = t->kind == T_MAP ? json_object() : json_array();
    for (size_t i = 0; j && i < t->n; i++) {
        json_t *v = tnode_to_json(t->vals[i]);
        int rc = !v                 ? -1
                 : t->kind == T_MAP ? json_object_set_new(j, t->keys[i], v)
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
    const tnode *node;
    const char *connector, *method, *path, *body, *error;
    int status;
    int want_calls; /* -1: any number */
    int calls;
} fixture;

typedef struct tfile {
    const char *path;
    tnode *root;
    sl_config *cfg;
    const sl_route_conf *route;
    fixture *fx; /* file-level fixtures */
    size_t n_fx;
} tfile;

typedef struct run_ctx {
    fixture *fx[2]; /* the case's, then the file's */
    size_t n_fx[2];
    dstr *why;
    bool failed;
} run_ctx;

static bool in_list(const char *k, const char *const *allowed)
{
    for (size_t i = 0; allowed[i]; i++) {
        if (!strcmp(allowed[i], k))
            return true;
    }
    return false;
}

/* Checks that map t has only allowed keys; fills err. */
static int check_keys(const tnode *t, const char *const *allowed, const char *what, char *err)
{
    if (!t || t->kind != T_MAP) {
        snprintf(err, ERR_CAP, "line %d: %s: expected a map", t ? t->line : 0, what);
        return -1;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (!in_list(t->keys[i], allowed)) {
            snprintf(err, ERR_CAP, "line %d: %s: unknown key '%s'", t->vals[i]->line, what,
                     t->keys[i]);
            return -1;
        }
    }
    return 0;
}

static int parse_fixtures(const tnode *seq, fixture **out, size_t *n, char *err)
{
    static const char *const keys[] = {"connector", "method", "path",  "status", "headers",
                                       "body",      "error",  "calls", NULL};
    *out = NULL;
    *n = 0;
    if (!seq)
        return 0;
    if (seq->kind != T_SEQ) {
        snprintf(err, ERR_CAP, "line %d: fixtures: expected a list", seq->line);
        return -1;
    }
    *out = calloc(seq->n ? seq->n : 1, sizeof **out);
    if (!*out) {
        snprintf(err, ERR_CAP, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < seq->n; i++) {
        const tnode *t = seq->vals[i];
        if (check_keys(t, keys, "fixture", err) < 0)
            return -1;
        fixture *f = &(*out)[(*n)++];
        f->node = t;
        f->connector = tstr(tget(t, "connector"));
        f->method = tstr(tget(t, "method"));
        f->path = tstr(tget(t, "path"));
        f->body = tstr(tget(t, "body"));
        f->error = tstr(tget(t, "error"));
        const char *st = tstr(tget(t, "status"));
        const char *calls = tstr(tget(t, "calls"));
        f->status = st ? atoi(st) : 200;
        f->want_calls = calls ? atoi(calls) : -1;
        if (!f->connector || !f->path) {
            snprintf(err, ERR_CAP, "line %d: fixture: 'connector' and 'path' are required",
                     t->line);
            return -1;
        }
        if (f->status < 100 || f->status > 599) {
            snprintf(err, ERR_CAP, "line %d: fixture: status must be 100..599", t->line);
            return -1;
        }
    }
    return 0;
}

/* Answers a ctx.http call from the fixtures (the case's first). */
static int fixture_http(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                        sl_call_resp *resp)
{
    run_ctx *rc = svc->arg;
    const char *method = req->method ? req->method : "GET";
    const char *path = req->path ? req->path : "";
    memset(resp, 0, sizeof *resp);
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < rc->n_fx[l]; i++) {
            fixture *f = &rc->fx[l][i];
            if (strcmp(f->connector, connector) != 0 || strcmp(f->path, path) != 0 ||
                strcasecmp(f->method ? f->method : "GET", method) != 0)
                continue;
            f->calls++;
            if (f->error) {
                resp->result = SL_RETRY;
                snprintf(resp->error, sizeof resp->error, "%s", f->error);
                return SL_RETRY;
            }
            resp->status = f->status;
            const tnode *h = tget(f->node, "headers");
            if (h && h->kind == T_MAP && h->n) {
                resp->headers = calloc(h->n, sizeof *resp->headers);
                for (size_t k = 0; resp->headers && k < h->n; k++) {
                    resp->headers[k].key = strdup(h->keys[k]);
                    resp->headers[k].value = strdup(tstr(h->vals[k]) ? h->vals[k]->s : "");
                    resp->n_headers++;
                    for (char *p = resp->headers[k].key; p && *p; p++)
                        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
                    if (!resp->headers[k].key || !resp->headers[k].value)
                        break;
                }
            }
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
    }
    ds_printf(rc->why, "    unexpected ctx.http call: %s %s %s (no fixture matches)\n", method,
              connector, path);
    rc->failed = true;
    resp->result = SL_FAIL;
    snprintf(resp->error, sizeof resp->error, "no fixture for %s %s %s", method, connector, path);
    return SL_FAIL;
}

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

/* Checks one captured message against one expectation map. */
static bool check_message(const tnode *e, sl_msg *m, const char *label, dstr *why)
{
    bool ok = true;
    const char *body = tstr(tget(e, "body"));
    if (body && (strlen(body) != m->body_len || memcmp(body, m->body, m->body_len) != 0)) {
        ds_printf(why, "    %s: the body differs:\n", label);
        body_diff(why, body, m);
        ok = false;
    }
    const tnode *js = tget(e, "json_subset");
    if (js) {
        json_t *exp = js->kind == T_SCALAR && js->quoted ? json_loads(js->s, JSON_DECODE_ANY, NULL)
                                                         : tnode_to_json(js);
        json_t *got = json_loadb(m->body, m->body_len, JSON_DECODE_ANY, NULL);
        char what[200];
        snprintf(what, sizeof what, "%s: json_subset", label);
        if (!exp) {
            ds_printf(why, "    %s: json_subset is not valid JSON\n", label);
            ok = false;
        } else if (!got) {
            ds_printf(why, "    %s: the body is not JSON: %.200s\n", label, m->body);
            ok = false;
        } else if (!check_subset(exp, got, what, why, m)) {
            ok = false;
        }
        json_decref(exp);
        json_decref(got);
    }
    const char *xs = tstr(tget(e, "xml_subset"));
    if (xs) {
        sl_error err;
        json_t *exp = sl_xml_to_json(xs, strlen(xs), NULL, &err);
        json_t *got = exp ? sl_xml_to_json(m->body, m->body_len, NULL, &err) : NULL;
        char what[200];
        snprintf(what, sizeof what, "%s: xml_subset", label);
        if (!exp || !got) {
            ds_printf(why, "    %s: %s XML: %s\n", label, exp ? "the body is not" : "bad expected",
                      err.msg);
            if (exp)
                ds_printf(why, "      the body was: %.300s\n", m->body);
            ok = false;
        } else if (!check_subset(exp, got, what, why, m)) {
            ok = false;
        }
        json_decref(exp);
        json_decref(got);
    }
    const tnode *hdrs = tget(e, "headers");
    for (size_t i = 0; hdrs && hdrs->kind == T_MAP && i < hdrs->n; i++) {
        const char *want = tstr(hdrs->vals[i]);
        const char *got = sl_msg_get_header(m, hdrs->keys[i], NULL);
        bool absent_wanted = want && !hdrs->vals[i]->quoted && (!*want || !strcmp(want, "null"));
        if (absent_wanted ? got != NULL : (!got || !want || strcmp(got, want) != 0)) {
            ds_printf(why, "    %s: header %s: expected %s, got %s\n", label, hdrs->keys[i],
                      absent_wanted ? "(absent)"
                      : want        ? want
                                    : "?",
                      got ? got : "(absent)");
            ok = false;
        }
    }
    const tnode *key = tget(e, "key");
    if (key) {
        const char *want = tstr(key);
        bool match =
            want && m->key && strlen(want) == m->key_len && memcmp(want, m->key, m->key_len) == 0;
        if (!match) {
            ds_printf(why, "    %s: key: expected %s, got %.*s\n", label, want ? want : "?",
                      m->key ? (int)m->key_len : 8, m->key ? m->key : "(none)");
            ok = false;
        }
    }
    const char *pred = tstr(tget(e, "expect_lua"));
    if (pred) {
        sl_error err;
        sl_lua_expr *x = sl_lua_expr_compile(pred, NULL, &err);
        bool res = false;
        if (!x || sl_lua_expr_eval(x, m, &res, &err) < 0) {
            ds_printf(why, "    %s: expect_lua \"%s\" raised: %s\n", label, pred, err.msg);
            ok = false;
        } else if (!res) {
            ds_printf(why, "    %s: expect_lua \"%s\" is false; the body was: %.300s\n", label,
                      pred, m->body);
            ok = false;
        }
        sl_lua_expr_free(x);
    }
    return ok;
}

/* ---- running a case ------------------------------------------------------------------ */

typedef struct capture {
    sl_msg **msgs;
    size_t n;
} capture;

static sl_msg *make_input(const tnode *in, char *err)
{
    static const char *const keys[] = {"body", "json", "headers", "key", NULL};
    if (check_keys(in, keys, "input", err) < 0)
        return NULL;
    sl_msg *m = sl_msg_new();
    if (!m) {
        snprintf(err, ERR_CAP, "out of memory");
        return NULL;
    }
    const char *body = tstr(tget(in, "body"));
    const tnode *js = tget(in, "json");
    char *dumped = NULL;
    if (js) {
        json_t *j = tnode_to_json(js);
        dumped = j ? json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
        json_decref(j);
        body = dumped;
    }
    int rc = body ? sl_msg_set_body(m, body, strlen(body)) : 0;
    free(dumped);
    const char *key = tstr(tget(in, "key"));
    if (rc == 0 && key)
        rc = sl_msg_set_key(m, key, strlen(key));
    const tnode *h = tget(in, "headers");
    for (size_t i = 0; rc == 0 && h && h->kind == T_MAP && i < h->n; i++) {
        const char *v = tstr(h->vals[i]) ? h->vals[i]->s : "";
        rc = sl_msg_set_header(m, h->keys[i], v, strlen(v));
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

/* Runs one case. Returns 0 (passed), 1 (failed) or 2 (malformed; err). */

/* The messages one input became after the steps. */
typedef struct msg_list {
    sl_msg **v;
    size_t n, cap;
} msg_list;

static void msg_list_free(msg_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        sl_msg_free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int msg_list_push(msg_list *l, sl_msg *m)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        sl_msg **v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = m;
    return 0;
}

typedef struct chain_stats {
    size_t input; /* 1-based, for messages */
    size_t errors;
    char *first_error;
    size_t first_error_cap;
} chain_stats;

/* Runs steps[from..] on m (taken) and appends what comes out to outs, in
 * the order the route engine delivers: m first, then what later steps split
 * off, then what earlier steps split off. A dropped message adds nothing; a
 * failed step counts an error. Returns -1 when out of memory. */
static int run_chain(sl_step **steps, size_t n_steps, size_t from, sl_msg *m, msg_list *outs,
                     chain_stats *cs)
{
    msg_list split[n_steps > from ? n_steps - from : 1]; /* what each step split off */
    size_t n_split = 0;
    int rc = 0;
    for (size_t s = from; s < n_steps && m; s++) {
        sl_error e;
        sl_error_clear(&e);
        sl_msg **more = NULL;
        size_t n_more = 0;
        int st = sl_step_process_split(steps[s], m, &more, &n_more, &e);
        if (st == SL_STEP_FAIL || st == SL_STEP_RETRY) {
            if (cs->errors++ == 0)
                snprintf(cs->first_error, cs->first_error_cap, "input %zu: step %zu (%s): %s",
                         cs->input, s + 1, sl_step_type_name(steps[s]), e.msg);
        }
        if (st != SL_STEP_OK) {
            sl_msg_free(m);
            m = NULL;
        }
        memset(&split[n_split], 0, sizeof split[n_split]);
        split[n_split].v = more;
        split[n_split].n = split[n_split].cap = n_more;
        n_split++; /* group g holds what step from + g split off */
    }
    if (m && msg_list_push(outs, m) < 0) {
        sl_msg_free(m);
        rc = -1;
    }
    for (size_t g = n_split; g-- > 0;) {
        for (size_t j = 0; j < split[g].n; j++) {
            sl_msg *x = split[g].v[j];
            split[g].v[j] = NULL;
            if (rc == 0)
                rc = run_chain(steps, n_steps, from + g + 1, x, outs, cs);
            else
                sl_msg_free(x);
        }
        free(split[g].v);
    }
    return rc;
}
static int run_case(tfile *tf, const tnode *c, dstr *why, char *err)
{
    static const char *const keys[] = {"name",   "input",        "inputs",  "fixtures",
                                       "expect", "expect_error", "dropped", NULL};
    if (check_keys(c, keys, "case", err) < 0)
        return 2;
    const sl_route_conf *r = tf->route;
    const tnode *expect = tget(c, "expect");
    if (expect && expect->kind != T_MAP) {
        snprintf(err, ERR_CAP, "line %d: expect: expected a map of output names", expect->line);
        return 2;
    }
    for (size_t i = 0; expect && i < expect->n; i++) {
        if (output_index(r, expect->keys[i]) < 0) {
            snprintf(err, ERR_CAP, "line %d: expect: route %s has no output named '%s'",
                     expect->vals[i]->line, r->name, expect->keys[i]);
            return 2;
        }
        if (expect->vals[i]->kind != T_SEQ) {
            snprintf(err, ERR_CAP, "line %d: expect.%s: expected a list of messages",
                     expect->vals[i]->line, expect->keys[i]);
            return 2;
        }
    }
    const tnode *inputs = tget(c, "inputs");
    const tnode *input = tget(c, "input");
    if ((inputs && inputs->kind != T_SEQ) || (!inputs && !input)) {
        snprintf(err, ERR_CAP, "line %d: a case needs 'input' (a message) or 'inputs' (a list)",
                 c->line);
        return 2;
    }
    run_ctx rc = {.why = why};
    fixture *cfx = NULL;
    size_t n_cfx = 0;
    if (parse_fixtures(tget(c, "fixtures"), &cfx, &n_cfx, err) < 0) {
        free(cfx);
        return 2;
    }
    for (size_t i = 0; i < tf->n_fx; i++)
        tf->fx[i].calls = 0;
    rc.fx[0] = cfx;
    rc.n_fx[0] = n_cfx;
    rc.fx[1] = tf->fx;
    rc.n_fx[1] = tf->n_fx;

    int result = 0;
    sl_step_services fixtures = {.call = fixture_http, .arg = &rc};
    sl_gateway gw;
    memset(&gw, 0, sizeof gw);
    gw.conf = tf->cfg;
    sl_step **steps = NULL;
    size_t n_steps = 0;
    sl_lua_expr **when = calloc(r->n_to ? r->n_to : 1, sizeof *when);
    capture *cap = calloc(r->n_to ? r->n_to : 1, sizeof *cap);
    sl_error e;
    if (!when || !cap) {
        snprintf(err, ERR_CAP, "out of memory");
        result = 2;
        goto done;
    }
    if (sl_steps_build(&gw, r, &steps, &n_steps, &e) < 0) {
        snprintf(err, ERR_CAP, "route %s: %s", r->name, e.msg);
        result = 2;
        goto done;
    }
    sl_steps_set_services(steps, n_steps, &fixtures);
    for (size_t i = 0; i < r->n_to; i++) {
        if (r->to[i].when && !(when[i] = sl_lua_expr_compile(r->to[i].when, &r->to[i].pos, &e))) {
            snprintf(err, ERR_CAP, "%s", e.msg);
            result = 2;
            goto done;
        }
    }
    size_t n_in = inputs ? inputs->n : 1;
    size_t n_errors = 0, n_dropped = 0;
    char first_error[sizeof e.msg] = "";
    for (size_t k = 0; k < n_in; k++) {
        sl_msg *m = make_input(inputs ? inputs->vals[k] : input, err);
        if (!m) {
            result = 2;
            goto done;
        }
        msg_list outs = {0};
        chain_stats cs = {
            .input = k + 1, .first_error = first_error, .first_error_cap = sizeof first_error};
        if (run_chain(steps, n_steps, 0, m, &outs, &cs) < 0) {
            snprintf(err, ERR_CAP, "out of memory");
            msg_list_free(&outs);
            result = 2;
            goto done;
        }
        n_errors += cs.errors;
        n_dropped += outs.n == 0 && cs.errors == 0;
        for (size_t j = 0; j < outs.n; j++) {
            sl_msg *out = outs.v[j];
            for (size_t o = 0; o < r->n_to; o++) {
                bool deliver = true;
                if (when[o] && sl_lua_expr_eval(when[o], out, &deliver, &e) < 0) {
                    ds_printf(why, "    input %zu: output %s: when raised: %s\n", k + 1,
                              r->to[o].name, e.msg);
                    rc.failed = true;
                    continue;
                }
                if (!deliver)
                    continue;
                sl_msg **grown = realloc(cap[o].msgs, (cap[o].n + 1) * sizeof *grown);
                sl_msg *copy = grown ? sl_msg_clone(out) : NULL;
                if (grown)
                    cap[o].msgs = grown;
                if (!copy) {
                    snprintf(err, ERR_CAP, "out of memory");
                    msg_list_free(&outs);
                    result = 2;
                    goto done;
                }
                cap[o].msgs[cap[o].n++] = copy;
            }
        }
        msg_list_free(&outs);
    }
    /* verdict */
    const char *want_error = tstr(tget(c, "expect_error"));
    if (want_error) {
        if (!n_errors) {
            ds_printf(why, "    expected a step to fail with \"%s\"; none failed\n", want_error);
            rc.failed = true;
        } else if (!strstr(first_error, want_error)) {
            ds_printf(why, "    expected an error with \"%s\", got: %s\n", want_error, first_error);
            rc.failed = true;
        }
    } else if (n_errors) {
        ds_printf(why, "    %s\n", first_error);
        rc.failed = true;
    }
    const char *dropped = tstr(tget(c, "dropped"));
    if (dropped && !strcmp(dropped, "true") && n_dropped != n_in) {
        ds_printf(why, "    expected every input to be dropped; %zu of %zu were\n", n_dropped,
                  n_in);
        rc.failed = true;
    }
    for (size_t i = 0; expect && i < expect->n; i++) {
        int o = output_index(r, expect->keys[i]);
        const tnode *list = expect->vals[i];
        if (list->n != cap[o].n) {
            ds_printf(why, "    output %s: expected %zu message(s), got %zu\n", expect->keys[i],
                      list->n, cap[o].n);
            for (size_t k = 0; k < cap[o].n; k++)
                ds_printf(why, "      got: %.300s\n", cap[o].msgs[k]->body);
            rc.failed = true;
            continue;
        }
        for (size_t k = 0; k < list->n; k++) {
            static const char *const mkeys[] = {"body", "json_subset", "xml_subset", "headers",
                                                "key",  "expect_lua",  NULL};
            if (check_keys(list->vals[k], mkeys, "expected message", err) < 0) {
                result = 2;
                goto done;
            }
            char label[300];
            snprintf(label, sizeof label, "output %s, message %zu", expect->keys[i], k + 1);
            if (!check_message(list->vals[k], cap[o].msgs[k], label, why))
                rc.failed = true;
        }
    }
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < rc.n_fx[l]; i++) {
            fixture *f = &rc.fx[l][i];
            if (f->want_calls >= 0 && f->calls != f->want_calls) {
                ds_printf(why, "    fixture %s %s %s: expected %d call(s), got %d\n",
                          f->method ? f->method : "GET", f->connector, f->path, f->want_calls,
                          f->calls);
                rc.failed = true;
            }
        }
    }
    result = rc.failed ? 1 : 0;
done:
    sl_steps_free(steps, n_steps);
    for (size_t i = 0; i < r->n_to; i++) {
        if (when)
            sl_lua_expr_free(when[i]);
        for (size_t k = 0; cap && k < cap[i].n; k++)
            sl_msg_free(cap[i].msgs[k]);
        if (cap)
            free(cap[i].msgs);
    }
    free(when);
    free(cap);
    free(cfx);
    return result;
}

/* ---- a file --------------------------------------------------------------------------- */

static int load_file(tfile *tf, char *err)
{
    static const char *const keys[] = {"config", "route", "fixtures", "cases", NULL};
    tf->root = yload(tf->path, err);
    if (!tf->root)
        return -1;
    if (check_keys(tf->root, keys, "test file", err) < 0)
        return -1;
    const char *config = tstr(tget(tf->root, "config"));
    const char *route = tstr(tget(tf->root, "route"));
    const tnode *cases = tget(tf->root, "cases");
    if (!config || !route || !cases || cases->kind != T_SEQ) {
        snprintf(err, ERR_CAP, "'config', 'route' and 'cases' (a list) are required");
        return -1;
    }
    char path[PATH_MAX];
    const char *slash = strrchr(tf->path, '/');
    if (config[0] == '/' || !slash)
        snprintf(path, sizeof path, "%s", config);
    else
        snprintf(path, sizeof path, "%.*s/%s", (int)(slash - tf->path), tf->path, config);
    sl_config_errors errs = {0};
    tf->cfg = sl_config_load(path, &errs);
    if (!tf->cfg) {
        size_t o = (size_t)snprintf(err, ERR_CAP, "config %s is invalid:", path);
        for (size_t i = 0; i < errs.n && o < ERR_CAP; i++)
            o += (size_t)snprintf(err + o, ERR_CAP - o, "\n    %s", errs.lines[i]);
        sl_config_errors_free(&errs);
        return -1;
    }
    sl_config_errors_free(&errs);
    for (size_t i = 0; i < tf->cfg->n_routes; i++) {
        if (strcmp(tf->cfg->routes[i].name, route) == 0)
            tf->route = &tf->cfg->routes[i];
    }
    if (!tf->route) {
        snprintf(err, ERR_CAP, "config %s has no route named '%s'", path, route);
        return -1;
    }
    return parse_fixtures(tget(tf->root, "fixtures"), &tf->fx, &tf->n_fx, err);
}

int sl_route_test_run(char *const *files, size_t n, FILE *out)
{
    size_t passed = 0, failed = 0;
    bool bad = false;
    for (size_t f = 0; f < n; f++) {
        tfile tf = {.path = files[f]};
        char err[ERR_CAP] = "";
        if (load_file(&tf, err) < 0) {
            fprintf(out, "ERROR %s: %s\n", tf.path, err);
            bad = true;
        } else {
            const tnode *cases = tget(tf.root, "cases");
            for (size_t i = 0; i < cases->n; i++) {
                const tnode *c = cases->vals[i];
                char name[200];
                const char *nm = tstr(tget(c, "name"));
                if (nm)
                    snprintf(name, sizeof name, "%s", nm);
                else
                    snprintf(name, sizeof name, "case %zu (line %d)", i + 1, c->line);
                dstr why = {0};
                err[0] = '\0';
                int rc = run_case(&tf, c, &why, err);
                if (rc == 2) {
                    fprintf(out, "ERROR %s: %s: %s\n", tf.path, name, err);
                    bad = true;
                } else {
                    fprintf(out, "%s %s: %s\n", rc ? "FAIL" : "PASS", tf.path, name);
                    if (rc && why.p)
                        fputs(why.p, out);
                    if (rc)
                        failed++;
                    else
                        passed++;
                }
                free(why.p);
            }
        }
        sl_config_free(tf.cfg);
        tfree(tf.root);
        free(tf.fx);
    }
    fprintf(out, "%zu passed, %zu failed\n", passed, failed);
    sl_http_call_thread_cleanup();
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
