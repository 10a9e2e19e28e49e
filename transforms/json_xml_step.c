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

/* The settings, parsed at load (sl_step_conf.priv, from the config's pool). */
typedef struct jx_conf {
    sl_xml_opts o; /* its strings live in the config's pool */
    char content_type[160];
} jx_conf;

/* One worker's step: the settings copied (their strings stay the config's). */
typedef struct jx_step {
    sl_xml_opts o;
    char content_type[160];
} jx_step;

static void jx_destroy(sl_step *s)
{
    jx_step *st = s->state;
    if (!st)
        return;
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

/* Makes the worker's state from the settings parse_conf left in priv (NULL:
 * the defaults). */
static int jx_init(sl_step *s, const char *content_type, sl_error *err)
{
    jx_step *st = calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    const jx_conf *jc = s->conf->priv;
    if (jc) {
        st->o = jc->o;
        snprintf(st->content_type, sizeof st->content_type, "%s", jc->content_type);
    } else {
        sl_xml_opts_init(&st->o);
        snprintf(st->content_type, sizeof st->content_type, "%s", content_type);
    }
    s->state = st;
    return 0;
}

static int j2x_init(sl_step *s, sl_error *err)
{
    return jx_init(s, "application/xml", err);
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
    return jx_init(s, "application/json", err);
}

/* Bodies above this go straight to JSON text without a jansson tree: the
 * tree costs about 10 times the document, the text about its size. Below
 * it, the tree is built and cached on the message for the next step. */
#define X2J_TREE_MAX ((size_t)1 << 20)

/* xml_to_json straight to JSON text, nothing cached: for a large body, and
 * with coerce (the text keeps numbers exactly as written; a tree would hold
 * doubles: 123.40 would come out 123.40000000000001). */
static int x2j_process_text(jx_step *st, sl_msg *msg, sl_error *err)
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
    if (msg->body_len > X2J_TREE_MAX || st->o.coerce)
        return x2j_process_text(st, msg, err);
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

static const char *const J2X_KEYS[] = {"root",     "declaration", "encoding",   "pretty",
                                       "envelope", "wrap",        "namespaces", NULL};
static const char *const X2J_KEYS[] = {"force_array", "coerce", "strip_namespaces", "unwrap", NULL};
static const char *const ENVELOPES[] = {"soap11", "soap12", NULL};
static const sl_conf_doc J2X_DOC[] = {
    SL_DOC("root", "string", NULL,
           "element wrapping the whole document (default: a one-member object's key, else <root>)"),
    SL_DOC("declaration", "boolean", "true", "write the <?xml ...?> declaration"),
    SL_DOC("encoding", "string", "UTF-8",
           "output encoding (libxml2 names); characters it lacks become &#N;"),
    SL_DOC("pretty", "boolean", "false", "indent by two spaces"),
    SL_DOC("envelope", "string", NULL,
           "soap11 or soap12: write the document inside <soap:Envelope><soap:Body> (namespace "
           "declared; content type text/xml or application/soap+xml)"),
    SL_DOC("wrap", "string", NULL,
           "element path (/p:A/p:B) to write the document inside; not with envelope"),
    SL_DOC("namespaces", "map", NULL,
           "prefix: URI pairs declared on the outermost wrap element (\"\" prefix: default "
           "namespace); with wrap"),
    SL_DOC_END};
static const sl_conf_doc X2J_DOC[] = {
    SL_DOC("force_array", "list", NULL, "element paths (/a/b or names) always read as JSON arrays"),
    SL_DOC("coerce", "boolean", "false",
           "read numbers and true/false text as JSON numbers (written exactly as in the XML) "
           "and booleans"),
    SL_DOC("strip_namespaces", "boolean", "false",
           "drop namespace prefixes (soap:Envelope -> Envelope) and namespace declarations"),
    SL_DOC("unwrap", "string", NULL,
           "element path (/Envelope/Body, JSON keys) whose content becomes the document"),
    SL_DOC_END};

/* Allocates the step's settings from the config's pool, with the defaults
 * and content type; NULL when out of memory. */
static jx_conf *jx_conf_new(sl_conf_reader *r, sl_step_conf *st, const char *content_type)
{
    jx_conf *jc = sl_pool_alloc(sl_conf_pool(r), sizeof *jc);
    if (!jc)
        return NULL;
    memset(jc, 0, sizeof *jc);
    sl_xml_opts_init(&jc->o);
    snprintf(jc->content_type, sizeof jc->content_type, "%s", content_type);
    st->priv = jc;
    return jc;
}

/* An optional non-empty string setting of json_to_xml. */
static void jx_str(sl_conf_reader *r, const sl_node *n, const char *key, const char *path,
                   const char **out)
{
    char *str = NULL;
    if (!sl_conf_str(r, n, key, path, &str))
        return;
    if (!*str)
        sl_conf_error_at(r, sl_conf_value(n, key)->pos,
                         "json_to_xml: '%s' must be a non-empty string", key);
    *out = str;
}

/* Checks that libxml2 can write encoding; sets the content type's charset. */
static void j2x_encoding(sl_conf_reader *r, const sl_node *n, jx_conf *jc)
{
    const char *enc = jc->o.encoding;
    if (!enc || !*enc || strcasecmp(enc, "UTF-8") == 0)
        return;
    sl_xml_init();
    xmlCharEncodingHandlerPtr h = xmlFindCharEncodingHandler(enc);
    if (!h) {
        sl_conf_error_at(r, sl_conf_value(n, "encoding")->pos, "json_to_xml: unknown encoding '%s'",
                         enc);
        return;
    }
    xmlCharEncCloseFunc(h);
    char base[64];
    snprintf(base, sizeof base, "%s", jc->content_type);
    snprintf(jc->content_type, sizeof jc->content_type, "%s; charset=%s", base, enc);
}

/* Checks a wrap/unwrap path: "/" then non-empty names separated by '/'. */
static void jx_path(sl_conf_reader *r, const sl_node *n, const char *key, const char *step,
                    const char *p)
{
    bool ok = p[0] == '/' && p[1];
    for (const char *c = p; ok && *c; c++)
        ok = !(c[0] == '/' && (c[1] == '/' || c[1] == '\0'));
    if (!ok)
        sl_conf_error_at(r, sl_conf_value(n, key)->pos,
                         "%s: '%s' must be an element path like /soap:Envelope/soap:Body", step,
                         key);
}

/* Reads envelope, or wrap and namespaces, into jc. */
static void j2x_wrap(sl_conf_reader *r, const sl_node *n, const char *path, jx_conf *jc)
{
    int env = -1;
    if (sl_conf_enum(r, n, "envelope", path, ENVELOPES, &env) && sl_conf_value(n, "wrap"))
        sl_conf_error_at(r, sl_conf_value(n, "wrap")->pos,
                         "json_to_xml: 'wrap' and 'envelope' cannot both be set");
    static const char *const soap11[] = {"soap", "http://schemas.xmlsoap.org/soap/envelope/"};
    static const char *const soap12[] = {"soap", "http://www.w3.org/2003/05/soap-envelope"};
    if (env >= 0) {
        jc->o.wrap = "/soap:Envelope/soap:Body";
        jc->o.wrap_ns = env == 0 ? soap11 : soap12;
        jc->o.n_wrap_ns = 1;
        snprintf(jc->content_type, sizeof jc->content_type, "%s",
                 env == 0 ? "text/xml" : "application/soap+xml");
    }
    jx_str(r, n, "wrap", path, &jc->o.wrap);
    if (jc->o.wrap && env < 0)
        jx_path(r, n, "wrap", "json_to_xml", jc->o.wrap);
    sl_kv *kv = NULL;
    size_t n_kv = 0;
    if (!sl_conf_kv(r, n, "namespaces", path, &kv, &n_kv) || !n_kv)
        return;
    if (!sl_conf_value(n, "wrap"))
        sl_conf_error_at(r, sl_conf_value(n, "namespaces")->pos,
                         "json_to_xml: 'namespaces' is declared on the 'wrap' elements: set wrap");
    const char **pairs = sl_pool_alloc(sl_conf_pool(r), 2 * n_kv * sizeof *pairs);
    if (!pairs)
        return;
    for (size_t i = 0; i < n_kv; i++) {
        pairs[2 * i] = kv[i].key;
        pairs[2 * i + 1] = kv[i].value;
    }
    jc->o.wrap_ns = pairs;
    jc->o.n_wrap_ns = n_kv;
}

/* Parses `json_to_xml: { root?, declaration?, encoding?, pretty?, envelope?,
 * wrap?, namespaces? }` (or nothing) at load into the step's priv. */
static void j2x_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    jx_conf *jc = jx_conf_new(r, st, "application/xml");
    if (!jc || n->kind == SL_NODE_NULL || !sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, J2X_KEYS);
    jx_str(r, n, "root", path, &jc->o.root);
    sl_conf_bool(r, n, "declaration", path, &jc->o.declaration);
    jx_str(r, n, "encoding", path, &jc->o.encoding);
    sl_conf_bool(r, n, "pretty", path, &jc->o.pretty);
    j2x_wrap(r, n, path, jc);
    j2x_encoding(r, n, jc);
}

/* Parses `xml_to_json: { force_array?, coerce?, strip_namespaces?, unwrap? }`
 * (or nothing) at load into the step's priv. */
static void x2j_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    char **list = NULL;
    size_t n_list = 0;
    jx_conf *jc = jx_conf_new(r, st, "application/json");
    if (!jc || n->kind == SL_NODE_NULL || !sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, X2J_KEYS);
    const sl_node *one = sl_conf_value(n, "force_array");
    if (one && one->kind == SL_NODE_SCALAR) { /* one path written without brackets */
        list = sl_pool_alloc(sl_conf_pool(r), sizeof *list);
        if (!list || !(list[0] = sl_pool_strdup(sl_conf_pool(r), one->scalar)))
            return;
        jc->o.force_array = (const char *const *)list;
        jc->o.n_force_array = 1;
    } else if (sl_conf_list(r, n, "force_array", path, NULL, &list, &n_list)) {
        const sl_node *fa = sl_conf_value(n, "force_array");
        for (size_t i = 0; i < n_list; i++) {
            if (!list[i] || !*list[i])
                sl_conf_error_at(r, fa->items[i]->pos,
                                 "xml_to_json: 'force_array' must list element names or /paths");
        }
        jc->o.force_array = (const char *const *)list;
        jc->o.n_force_array = n_list;
    }
    sl_conf_bool(r, n, "coerce", path, &jc->o.coerce);
    sl_conf_bool(r, n, "strip_namespaces", path, &jc->o.strip_namespaces);
    char *unwrap = NULL;
    if (sl_conf_str(r, n, "unwrap", path, &unwrap)) {
        jx_path(r, n, "unwrap", "xml_to_json", unwrap);
        jc->o.unwrap = unwrap;
    }
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
