/* The `set` step: sets message headers to fixed values, and fields of a JSON
 * body (`$.a.b: VALUE`, creating objects on the way; a VALUE that parses as
 * JSON is stored as that JSON, otherwise as a string). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "set.h"
#include "step.h"

typedef struct set_field {
    char **parts; /* the path's names */
    size_t n_parts;
    json_t *value;
} set_field;

typedef struct set_state {
    set_field *fields;
    size_t n_fields;
} set_state;

static void set_destroy(sl_step *s)
{
    set_state *st = s->state;
    if (!st)
        return;
    for (size_t i = 0; i < st->n_fields; i++) {
        for (size_t j = 0; j < st->fields[i].n_parts; j++)
            free(st->fields[i].parts[j]);
        free(st->fields[i].parts);
        json_decref(st->fields[i].value);
    }
    free(st->fields);
    free(st);
    s->state = NULL;
}

/* Splits "$.a.b" into ["a", "b"]. Returns -1 on a malformed path. */
static int split_path(const char *path, set_field *f)
{
    if (strncmp(path, "$.", 2) != 0 || path[2] == '\0')
        return -1;
    const char *p = path + 2;
    size_t n = 1;
    for (const char *q = p; *q; q++)
        n += *q == '.';
    f->parts = calloc(n, sizeof *f->parts);
    if (!f->parts)
        return -1;
    while (*p) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (len == 0 || memchr(p, '[', len))
            return -1;
        f->parts[f->n_parts] = strndup(p, len);
        if (!f->parts[f->n_parts])
            return -1;
        f->n_parts++;
        p += len + (dot ? 1 : 0);
        if (dot && *p == '\0')
            return -1;
    }
    return 0;
}

static const char *const SET_KEYS[] = {"headers", "fields", NULL};
static const sl_conf_doc SET_DOC[] = {
    SL_DOC("headers", "map", NULL, "headers set on the message (NAME: VALUE)"),
    SL_DOC("fields", "map", NULL, "JSON fields set in the body (\"$.a.b\": VALUE)"), SL_DOC_END};

/* `set: { headers: {NAME: VALUE}, fields: {"$.a.b": VALUE} }`: at least one. */
static void set_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    if (!sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, SET_KEYS);
    if (!sl_conf_value(n, "headers") && !sl_conf_value(n, "fields"))
        sl_conf_error_at(r, n->pos, "%s: missing required key 'headers' or 'fields'", path);
    sl_set_conf *sc = sl_pool_alloc(sl_conf_pool(r), sizeof *sc);
    if (!sc)
        return;
    st->priv = sc;
    sl_conf_kv(r, n, "headers", path, &sc->set_headers, &sc->n_set_headers);
    sl_conf_kv(r, n, "fields", path, &sc->set_fields, &sc->n_set_fields);
}

static int set_init(sl_step *s, sl_error *err)
{
    static const sl_set_conf none = {0};
    const sl_set_conf *c = s->conf->priv ? s->conf->priv : &none;
    const sl_conf_pos pos = s->conf->pos;
    set_state *st = calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->state = st;
    if (c->n_set_fields) {
        st->fields = calloc(c->n_set_fields, sizeof *st->fields);
        if (!st->fields)
            return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < c->n_set_fields; i++) {
        set_field *f = &st->fields[i];
        st->n_fields++;
        if (split_path(c->set_fields[i].key, f) < 0)
            return sl_error_set(err, SL_ECONFIG,
                                "%s:%d:%d: set: field path '%s' must look like $.a.b", pos.file,
                                pos.line, pos.col, c->set_fields[i].key);
        const char *v = c->set_fields[i].value;
        f->value = json_loads(v, JSON_DECODE_ANY, NULL);
        if (!f->value)
            f->value = json_string(v);
        if (!f->value)
            return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: set: value of %s is not UTF-8",
                                pos.file, pos.line, pos.col, c->set_fields[i].key);
    }
    return 0;
}

static int set_fields(set_state *st, sl_msg *msg, sl_error *err)
{
    json_t *root = sl_msg_json(msg, err);
    if (!root)
        return SL_STEP_FAIL;
    if (!json_is_object(root)) {
        sl_error_set(err, SL_EINVAL, "set: the body is JSON but not an object");
        return SL_STEP_FAIL;
    }
    json_incref(root);
    for (size_t i = 0; i < st->n_fields; i++) {
        set_field *f = &st->fields[i];
        json_t *obj = root;
        for (size_t j = 0; j + 1 < f->n_parts; j++) {
            json_t *next = json_object_get(obj, f->parts[j]);
            if (!json_is_object(next)) {
                next = json_object();
                if (!next || json_object_set_new(obj, f->parts[j], next) < 0)
                    goto oom;
            }
            obj = next;
        }
        if (json_object_set(obj, f->parts[f->n_parts - 1], f->value) < 0)
            goto oom;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text || sl_msg_set_body(msg, text, strlen(text)) < 0) {
        free(text);
        goto oom;
    }
    free(text);
    msg->json = root; /* the body and the tree agree: keep the tree */
    return SL_STEP_OK;
oom:
    json_decref(root);
    sl_error_set(err, SL_ENOMEM, "set: out of memory");
    return SL_STEP_FAIL;
}

static int set_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    static const sl_set_conf none = {0};
    const sl_set_conf *c = s->conf->priv ? s->conf->priv : &none;
    for (size_t i = 0; i < c->n_set_headers; i++) {
        const sl_kv *h = &c->set_headers[i];
        if (sl_msg_set_header(msg, h->key, h->value, strlen(h->value)) < 0) {
            sl_error_set(err, SL_ENOMEM, "set: out of memory");
            return SL_STEP_FAIL;
        }
    }
    set_state *st = s->state;
    if (st->n_fields)
        return set_fields(st, msg, err);
    return SL_STEP_OK;
}

const sl_step_type sl_set_step = {
    .name = "set",
    .summary = "sets headers and JSON fields (at least one of the two)",
    .conf_keys = SET_KEYS,
    .conf_doc = SET_DOC,
    .parse_conf = set_parse_conf,
    .init = set_init,
    .process = set_process,
    .destroy = set_destroy,
};
