/* The `validate` step: checks a message body against an XML Schema
 * (`xml_schema: FILE`, compiled once per route worker at init, the path
 * relative to the config file) or for JSON well-formedness (`json: true`).
 * A body that fails is a permanent failure carrying the validator's line
 * and message. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libxml/tree.h>
#include <libxml/xmlerror.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlschemas.h>
#include <pthread.h>

#include "json_xml.h"
#include "step.h"

/* The first error a libxml2 validator or schema parser reported. */
typedef struct validate_err {
    int line;
    bool set;
    char msg[400];
} validate_err;

typedef struct validate_state {
    bool json;
    xmlSchemaPtr schema;
    xmlSchemaValidCtxtPtr vctxt;
    validate_err verr;
} validate_state;

static void keep_first(void *ctx, xmlErrorPtr x)
{
    validate_err *v = ctx;
    if (!x || v->set || x->level < XML_ERR_ERROR)
        return;
    v->set = true;
    v->line = x->line;
    snprintf(v->msg, sizeof v->msg, "%s", x->message ? x->message : "invalid");
    size_t n = strlen(v->msg);
    while (n && (v->msg[n - 1] == '\n' || v->msg[n - 1] == ' '))
        v->msg[--n] = '\0';
}

static void validate_destroy(sl_step *s)
{
    validate_state *st = s->state;
    if (!st)
        return;
    if (st->vctxt)
        xmlSchemaFreeValidCtxt(st->vctxt);
    if (st->schema)
        xmlSchemaFree(st->schema);
    free(st);
    s->state = NULL;
}

static int conf_fail(sl_step *s, sl_error *err, const sl_node *at, const char *fmt, const char *a,
                     const char *b)
{
    const sl_conf_pos *p = at ? &at->pos : &s->conf->pos;
    char what[1100];
    snprintf(what, sizeof what, fmt, a, b);
    sl_error_set(err, SL_ECONFIG, "%s:%d:%d: validate: %s", p->file ? p->file : "?", p->line,
                 p->col, what);
    validate_destroy(s);
    return -1;
}

/* Resolves path against the directory of the config file `base` (NULL or
 * without a '/': the working directory). Returns a malloc'd path or NULL. */
static char *resolve_path(const char *base, const char *path)
{
    const char *slash = base ? strrchr(base, '/') : NULL;
    if (path[0] == '/' || !slash)
        return strdup(path);
    size_t dl = (size_t)(slash - base);
    size_t n = dl + 1 + strlen(path) + 1;
    char *full = malloc(n);
    if (full)
        snprintf(full, n, "%.*s/%s", (int)dl, base, path);
    return full;
}

/* ---- local-only schema loading ---------------------------------------------
 * libxml2 resolves xs:import/xs:include/xs:redefine through one process-wide
 * external entity loader. Sluice's loader never fetches over the network,
 * and while a schema is being compiled it only opens files inside that
 * schema's own directory (tl_schema_dir): an import of http://... or an
 * include of /etc/passwd is refused, and the reason goes into the config
 * error (never the refused file's content). */

static __thread const char *tl_schema_dir; /* realpath of the schema's directory */
static __thread char tl_refused[300];      /* why the last load was refused */
static xmlExternalEntityLoader next_loader;
static pthread_once_t loader_once = PTHREAD_ONCE_INIT;

/* True when url names a local file inside tl_schema_dir. */
static bool schema_load_allowed(const char *url)
{
    if (!url)
        return false;
    if (!strncmp(url, "file://", 7))
        url += 7;
    else if (strstr(url, "://") || !strncmp(url, "//", 2))
        return false;
    if (!tl_schema_dir)
        return true; /* a local file outside schema compilation: libxml2's own rules */
    char *real = realpath(url, NULL);
    size_t n = strlen(tl_schema_dir);
    bool ok = real && !strncmp(real, tl_schema_dir, n) && real[n] == '/';
    free(real);
    return ok;
}

static xmlParserInputPtr local_loader(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
    if (schema_load_allowed(url))
        return next_loader(url, id, ctxt);
    snprintf(tl_refused, sizeof tl_refused, "refused to load '%s' (%s)", url ? url : "?",
             url && strstr(url, "://") && strncmp(url, "file://", 7)
                 ? "schemas are never fetched over the network"
                 : "only files in the schema's own directory can be imported or included");
    return NULL;
}

static void install_loader(void)
{
    next_loader = xmlGetExternalEntityLoader();
    xmlSetExternalEntityLoader(local_loader);
}

/* Compiles the schema at path with loads limited to its directory. Returns
 * the schema or NULL with perr (or tl_refused) filled. */
static xmlSchemaPtr parse_schema_local(const char *path, validate_err *perr)
{
    pthread_once(&loader_once, install_loader);
    char *real = realpath(path, NULL);
    char *slash = real ? strrchr(real, '/') : NULL;
    if (!slash) {
        free(real);
        return NULL;
    }
    *slash = '\0';
    tl_schema_dir = real;
    tl_refused[0] = '\0';
    xmlSchemaPtr schema = NULL;
    xmlSchemaParserCtxtPtr pc = xmlSchemaNewParserCtxt(path);
    if (pc) {
        xmlSchemaSetParserStructuredErrors(pc, keep_first, perr);
        schema = xmlSchemaParse(pc);
        xmlSchemaFreeParserCtxt(pc);
    }
    tl_schema_dir = NULL;
    free(real);
    return schema;
}

static int load_schema(sl_step *s, validate_state *st, const sl_node *xsd, sl_error *err)
{
    char *path = resolve_path(s->conf->pos.file, xsd->scalar);
    if (!path) {
        validate_destroy(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    if (access(path, R_OK) != 0) {
        conf_fail(s, err, xsd, "cannot read XML schema '%s'%s", path, "");
        free(path);
        return -1;
    }
    sl_xml_init();
    validate_err perr = {0};
    st->schema = parse_schema_local(path, &perr);
    if (!st->schema) {
        char detail[760];
        snprintf(detail, sizeof detail, ": line %d: %s%s%s", perr.line,
                 perr.set ? perr.msg : "cannot parse (out of memory?)", tl_refused[0] ? "; " : "",
                 tl_refused);
        conf_fail(s, err, xsd, "XML schema '%s' is invalid%s", path, detail);
        free(path);
        return -1;
    }
    free(path);
    st->vctxt = xmlSchemaNewValidCtxt(st->schema);
    if (!st->vctxt) {
        validate_destroy(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    xmlSchemaSetValidStructuredErrors(st->vctxt, keep_first, &st->verr);
    return 0;
}

static int validate_init(sl_step *s, sl_error *err)
{
    validate_state *st = calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->state = st;
    const sl_node *n = s->conf->node;
    if (!n || n->kind != SL_NODE_MAP)
        return conf_fail(s, err, n, "expected 'xml_schema: FILE' or 'json: true'%s%s", "", "");
    for (size_t i = 0; i < n->n_pairs; i++) {
        const char *k = n->pairs[i].key;
        if (strcmp(k, "xml_schema") != 0 && strcmp(k, "json") != 0)
            return conf_fail(s, err, n, "unknown key '%s'%s", k, "");
    }
    const sl_node *xsd = sl_node_get(n, "xml_schema");
    const sl_node *json = sl_node_get(n, "json");
    bool json_on = json && json->kind == SL_NODE_SCALAR && json->scalar &&
                   (!strcasecmp(json->scalar, "true") || !strcasecmp(json->scalar, "yes"));
    if (!xsd == !json || (json && !json_on))
        return conf_fail(s, err, n,
                         "expected exactly one of 'xml_schema: FILE' or 'json: true'%s%s", "", "");
    if (json_on) {
        st->json = true;
        return 0;
    }
    if (xsd->kind != SL_NODE_SCALAR || !xsd->scalar || !*xsd->scalar)
        return conf_fail(s, err, xsd, "'xml_schema' must be a file path%s%s", "", "");
    return load_schema(s, st, xsd, err);
}

static int validate_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    validate_state *st = s->state;
    if (st->json) {
        if (sl_msg_json(msg, err))
            return SL_STEP_OK;
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err ? err->msg : "");
        sl_error_set(err, SL_EINVAL, "validate: %s", m);
        return SL_STEP_FAIL;
    }
    xmlDocPtr doc = sl_xml_parse_tree(msg->body, msg->body_len, err);
    if (!doc) {
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err ? err->msg : "");
        sl_error_set(err, err ? err->code : SL_EINVAL, "validate: %s", m);
        return SL_STEP_FAIL;
    }
    memset(&st->verr, 0, sizeof st->verr);
    int rc = xmlSchemaValidateDoc(st->vctxt, doc);
    xmlFreeDoc(doc);
    if (rc == 0)
        return SL_STEP_OK;
    if (rc < 0)
        sl_error_set(err, SL_EINVAL, "validate: the XML schema validator failed internally");
    else
        sl_error_set(err, SL_EINVAL, "validate: XML line %d: %s", st->verr.line,
                     st->verr.set ? st->verr.msg : "the document is not valid");
    return SL_STEP_FAIL;
}

static const char *const VALIDATE_KEYS[] = {"xml_schema", "json", NULL};
static const sl_conf_doc VALIDATE_DOC[] = {
    SL_DOC("xml_schema", "string", NULL,
           "XML Schema (XSD) file the body must satisfy (local includes only)"),
    SL_DOC("json", "boolean", NULL, "true: the body must be well-formed JSON"), SL_DOC_END};

/* Checks `validate: { xml_schema: FILE }` or `validate: { json: true }` at
 * load; validate_init reads the settings from the node. */
static void validate_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n,
                                const char *path)
{
    if (!sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, VALIDATE_KEYS);
    bool has_xsd = sl_conf_value(n, "xml_schema") != NULL;
    bool has_json = sl_conf_value(n, "json") != NULL;
    bool json = false;
    char *str = NULL;
    sl_conf_str(r, n, "xml_schema", path, &str);
    bool json_ok = sl_conf_bool(r, n, "json", path, &json);
    if (has_xsd == has_json || (json_ok && !json))
        sl_conf_error_at(r, n->pos,
                         "%s: expected exactly one of 'xml_schema: FILE' or 'json: true'", path);
}

const sl_step_type sl_validate_step = {
    .name = "validate",
    .summary = "fails (dead-letters) a message whose body is invalid; exactly one of its keys",
    .conf_keys = VALIDATE_KEYS,
    .conf_doc = VALIDATE_DOC,
    .parse_conf = validate_parse_conf,
    .init = validate_init,
    .process = validate_process,
    .destroy = validate_destroy,
};
