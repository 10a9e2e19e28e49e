/* The `json_to_xml` and `xml_to_json` steps: route steps that turn a
 * message body from one convention to the other (json_xml.c) and set the
 * content-type header; the decoded tree is cached on the message. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libxml/encoding.h>

#include "json_xml.h"
#include "step.h"

typedef struct jx_step {
    sl_xml_opts o;
    const char **force; /* borrowed from the config nodes */
    char content_type[160];
} jx_step;

static void jx_destroy(sl_step *s)
{
    jx_step *st = s->state;
    if (!st)
        return;
    free(st->force);
    free(st);
    s->state = NULL;
}

/* Replaces err's text with "STEP: text", keeping its code. */
static int step_fail(sl_error *err, const char *step)
{
    if (err) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err->msg);
        sl_error_set(err, err->code, "%s: %s", step, msg);
    }
    return SL_STEP_FAIL;
}

static int conf_error(sl_error *err, const sl_step *s, const sl_node *at, const char *fmt,
                      const char *key)
{
    const sl_conf_pos *p = at ? &at->pos : &s->conf->pos;
    char what[256];
    snprintf(what, sizeof what, fmt, key);
    return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: %s: %s", p->file ? p->file : "?", p->line,
                        p->col, s->conf->type, what);
}

/* Reads an optional string setting. Returns -1 with err when it is not a
 * scalar. */
static int opt_str(const sl_step *s, const char *key, const char **out, sl_error *err)
{
    const sl_node *n = sl_node_get(s->conf->node, key);
    if (!n)
        return 0;
    if (n->kind != SL_NODE_SCALAR || !n->scalar || !*n->scalar)
        return conf_error(err, s, n, "'%s' must be a non-empty string", key);
    *out = n->scalar;
    return 0;
}

static int opt_bool(const sl_step *s, const char *key, bool *out, sl_error *err)
{
    const sl_node *n = sl_node_get(s->conf->node, key);
    if (!n)
        return 0;
    if (n->kind == SL_NODE_SCALAR && n->scalar) {
        if (!strcasecmp(n->scalar, "true") || !strcasecmp(n->scalar, "yes")) {
            *out = true;
            return 0;
        }
        if (!strcasecmp(n->scalar, "false") || !strcasecmp(n->scalar, "no")) {
            *out = false;
            return 0;
        }
    }
    return conf_error(err, s, n, "'%s' must be true or false", key);
}

/* Checks that the step's node is absent, null or a map with known keys. */
static int check_keys(const sl_step *s, const char *const *known, sl_error *err)
{
    const sl_node *n = s->conf->node;
    if (!n || n->kind == SL_NODE_NULL)
        return 0;
    if (n->kind != SL_NODE_MAP)
        return conf_error(err, s, n, "expected a map of settings%s", "");
    for (size_t i = 0; i < n->n_pairs; i++) {
        bool ok = false;
        for (const char *const *k = known; *k && !ok; k++)
            ok = strcmp(*k, n->pairs[i].key) == 0;
        if (!ok) {
            sl_conf_pos p = n->pairs[i].key_pos;
            return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: %s: unknown key '%s'",
                                p.file ? p.file : "?", p.line, p.col, s->conf->type,
                                n->pairs[i].key);
        }
    }
    return 0;
}

static int j2x_init(sl_step *s, sl_error *err)
{
    static const char *const known[] = {"root", "declaration", "encoding", "pretty", NULL};
    jx_step *st = calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->state = st;
    sl_xml_opts_init(&st->o);
    if (check_keys(s, known, err) < 0 || opt_str(s, "root", &st->o.root, err) < 0 ||
        opt_bool(s, "declaration", &st->o.declaration, err) < 0 ||
        opt_str(s, "encoding", &st->o.encoding, err) < 0 ||
        opt_bool(s, "pretty", &st->o.pretty, err) < 0)
        goto fail;
    snprintf(st->content_type, sizeof st->content_type, "application/xml");
    if (st->o.encoding && strcasecmp(st->o.encoding, "UTF-8") != 0) {
        sl_xml_init();
        xmlCharEncodingHandlerPtr h = xmlFindCharEncodingHandler(st->o.encoding);
        if (!h) {
            conf_error(err, s, sl_node_get(s->conf->node, "encoding"), "unknown encoding '%s'",
                       st->o.encoding);
            goto fail;
        }
        xmlCharEncCloseFunc(h);
        snprintf(st->content_type, sizeof st->content_type, "application/xml; charset=%s",
                 st->o.encoding);
    }
    return 0;
fail:
    jx_destroy(s);
    return -1;
}

static int j2x_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    jx_step *st = s->state;
    json_t *doc = sl_msg_json(msg, err);
    if (!doc)
        return step_fail(err, "json_to_xml");
    size_t len;
    char *xml = sl_json_to_xml(doc, &st->o, &len, err);
    if (!xml)
        return step_fail(err, "json_to_xml");
    int rc = sl_msg_set_body(msg, xml, len);
    free(xml);
    if (rc < 0 || sl_msg_set_header(msg, SL_HDR_CONTENT_TYPE, st->content_type,
                                    strlen(st->content_type)) < 0) {
        sl_error_set(err, SL_ENOMEM, "json_to_xml: out of memory");
        return SL_STEP_FAIL;
    }
    return SL_STEP_OK;
}

static int x2j_init(sl_step *s, sl_error *err)
{
    static const char *const known[] = {"force_array", "coerce", NULL};
    jx_step *st = calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->state = st;
    sl_xml_opts_init(&st->o);
    if (check_keys(s, known, err) < 0 || opt_bool(s, "coerce", &st->o.coerce, err) < 0)
        goto fail;
    const sl_node *fa = sl_node_get(s->conf->node, "force_array");
    if (fa && fa->kind == SL_NODE_SCALAR) { /* one path written without brackets */
        st->force = malloc(sizeof *st->force);
        if (!st->force) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        st->force[0] = fa->scalar;
        st->o.n_force_array = 1;
    } else if (fa && fa->kind == SL_NODE_SEQ) {
        st->force = calloc(fa->n_items ? fa->n_items : 1, sizeof *st->force);
        if (!st->force) {
            sl_error_set(err, SL_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < fa->n_items; i++) {
            const sl_node *it = fa->items[i];
            if (it->kind != SL_NODE_SCALAR || !it->scalar || !*it->scalar) {
                conf_error(err, s, it, "'%s' must list element names or /paths", "force_array");
                goto fail;
            }
            st->force[i] = it->scalar;
        }
        st->o.n_force_array = fa->n_items;
    } else if (fa && fa->kind != SL_NODE_NULL) {
        conf_error(err, s, fa, "'%s' must be a list of element names or /paths", "force_array");
        goto fail;
    }
    st->o.force_array = st->force;
    snprintf(st->content_type, sizeof st->content_type, "application/json");
    return 0;
fail:
    jx_destroy(s);
    return -1;
}

/* Bodies above this go straight to JSON text without a jansson tree: the
 * tree costs about 10 times the document, the text about its size. Below
 * it, the tree is built and cached on the message for the next step. */
#define X2J_TREE_MAX ((size_t)1 << 20)

/* xml_to_json of a large body: text only, nothing cached. */
static int x2j_process_large(jx_step *st, sl_msg *msg, sl_error *err)
{
    size_t n = 0;
    char *text = sl_xml_to_json_text(msg->body, msg->body_len, &st->o, &n, err);
    if (!text)
        return step_fail(err, "xml_to_json");
    int rc = sl_msg_set_body(msg, text, n);
    free(text);
    if (rc < 0 || sl_msg_set_header(msg, SL_HDR_CONTENT_TYPE, st->content_type,
                                    strlen(st->content_type)) < 0) {
        sl_error_set(err, SL_ENOMEM, "xml_to_json: out of memory");
        return SL_STEP_FAIL;
    }
    return SL_STEP_OK;
}

static int x2j_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    jx_step *st = s->state;
    if (msg->body_len > X2J_TREE_MAX)
        return x2j_process_large(st, msg, err);
    json_t *doc = sl_xml_to_json(msg->body, msg->body_len, &st->o, err);
    if (!doc)
        return step_fail(err, "xml_to_json");
    char *text = json_dumps(doc, JSON_COMPACT);
    if (!text || sl_msg_set_body(msg, text, strlen(text)) < 0 ||
        sl_msg_set_header(msg, SL_HDR_CONTENT_TYPE, st->content_type, strlen(st->content_type)) <
            0) {
        free(text);
        json_decref(doc);
        sl_error_set(err, SL_ENOMEM, "xml_to_json: out of memory");
        return SL_STEP_FAIL;
    }
    free(text);
    msg->json = doc; /* the body and the tree agree: keep the tree */
    return SL_STEP_OK;
}

static const char *const J2X_KEYS[] = {"root", "declaration", "encoding", "pretty", NULL};
static const char *const X2J_KEYS[] = {"force_array", "coerce", NULL};
static const sl_conf_doc J2X_DOC[] = {
    SL_DOC("root", "string", NULL,
           "element wrapping the whole document (default: a one-member object's key, else <root>)"),
    SL_DOC("declaration", "boolean", "true", "write the <?xml ...?> declaration"),
    SL_DOC("encoding", "string", "UTF-8",
           "output encoding (libxml2 names); characters it lacks become &#N;"),
    SL_DOC("pretty", "boolean", "false", "indent by two spaces"), SL_DOC_END};
static const sl_conf_doc X2J_DOC[] = {
    SL_DOC("force_array", "list", NULL, "element paths (/a/b or names) always read as JSON arrays"),
    SL_DOC("coerce", "boolean", "false",
           "read numbers and true/false text as JSON numbers and booleans"),
    SL_DOC_END};

/* Checks `json_to_xml: { root?, declaration?, encoding?, pretty? }` (or
 * nothing) at load; j2x_init reads the settings from the node. */
static void j2x_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    char *str = NULL;
    bool b;
    if (n->kind == SL_NODE_NULL || !sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, J2X_KEYS);
    sl_conf_str(r, n, "root", path, &str);
    sl_conf_bool(r, n, "declaration", path, &b);
    sl_conf_str(r, n, "encoding", path, &str);
    sl_conf_bool(r, n, "pretty", path, &b);
}

/* Checks `xml_to_json: { force_array?, coerce? }` (or nothing) at load. */
static void x2j_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    char **list = NULL;
    size_t n_list = 0;
    bool b;
    if (n->kind == SL_NODE_NULL || !sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, X2J_KEYS);
    sl_conf_list(r, n, "force_array", path, NULL, &list, &n_list);
    sl_conf_bool(r, n, "coerce", path, &b);
}

const sl_step_type sl_json_to_xml_step = {
    .name = "json_to_xml",
    .summary = "turns a JSON body into XML (transforms/JSON_XML.md); settings optional",
    .conf_keys = J2X_KEYS,
    .conf_doc = J2X_DOC,
    .parse_conf = j2x_parse_conf,
    .init = j2x_init,
    .process = j2x_process,
    .destroy = jx_destroy,
};

const sl_step_type sl_xml_to_json_step = {
    .name = "xml_to_json",
    .summary = "turns an XML body into JSON (transforms/JSON_XML.md); settings optional",
    .conf_keys = X2J_KEYS,
    .conf_doc = X2J_DOC,
    .parse_conf = x2j_parse_conf,
    .init = x2j_init,
    .process = x2j_process,
    .destroy = jx_destroy,
};
