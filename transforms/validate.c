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

/* `validate:` parsed at load (sl_step_conf.priv, from the config's pool). */
typedef struct validate_conf {
    bool json;      /* `json: true` */
    char *xsd;      /* `xml_schema:` resolved against the config file's directory */
    sl_conf_pos at; /* where `xml_schema:` is written */
} validate_conf;

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

static int conf_fail(sl_step *s, sl_error *err, const sl_conf_pos *at, const char *fmt,
                     const char *a, const char *b)
{
    const sl_conf_pos *p = at ? at : &s->conf->pos;
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

/* Compiles the schema at vc->xsd for this worker. */
static int load_schema(sl_step *s, validate_state *st, const validate_conf *vc, sl_error *err)
{
    const char *path = vc->xsd;
    if (access(path, R_OK) != 0)
        return conf_fail(s, err, &vc->at, "cannot read XML schema '%s'%s", path, "");
    sl_xml_init();
    validate_err perr = {0};
    st->schema = parse_schema_local(path, &perr);
    if (!st->schema) {
        char detail[760];
        snprintf(detail, sizeof detail, ": line %d: %s%s%s", perr.line,
                 perr.set ? perr.msg : "cannot parse (out of memory?)", tl_refused[0] ? "; " : "",
                 tl_refused);
        return conf_fail(s, err, &vc->at, "XML schema '%s' is invalid%s", path, detail);
    }
    st->vctxt = xmlSchemaNewValidCtxt(st->schema);
    if (!st->vctxt) {
        validate_destroy(s);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    xmlSchemaSetValidStructuredErrors(st->vctxt, keep_first, &st->verr);
    return 0;
}

/* Makes the worker's state from the settings parse_conf left in priv. */
static int validate_init(sl_step *s, sl_error *err)
{
    validate_state *st = calloc(1, sizeof *st);
    if (!st)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->state = st;
    const validate_conf *vc = s->conf->priv;
    if (!vc)
        return conf_fail(s, err, NULL, "expected 'xml_schema: FILE' or 'json: true'%s%s", "", "");
    if (vc->json) {
        st->json = true;
        return 0;
    }
    return load_schema(s, st, vc, err);
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

/* Parses `validate: { xml_schema: FILE }` or `validate: { json: true }` at
 * load into the step's priv (validate_init compiles the schema). */
static void validate_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n,
                                const char *path)
{
    if (!sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, VALIDATE_KEYS);
    bool has_xsd = sl_conf_value(n, "xml_schema") != NULL;
    bool has_json = sl_conf_value(n, "json") != NULL;
    bool json = false;
    char *xsd = NULL;
    bool xsd_ok = sl_conf_str(r, n, "xml_schema", path, &xsd);
    bool json_ok = sl_conf_bool(r, n, "json", path, &json);
    if (has_xsd == has_json || (json_ok && !json)) {
        sl_conf_error_at(r, n->pos,
                         "%s: expected exactly one of 'xml_schema: FILE' or 'json: true'", path);
        return;
    }
    validate_conf *vc = sl_pool_alloc(sl_conf_pool(r), sizeof *vc);
    if (!vc || (has_json && !json_ok) || (has_xsd && !xsd_ok))
        return;
    memset(vc, 0, sizeof *vc);
    vc->json = json;
    if (has_xsd) {
        vc->at = sl_conf_value(n, "xml_schema")->pos;
        if (!*xsd) {
            sl_conf_error_at(r, vc->at, "validate: 'xml_schema' must be a file path");
            return;
        }
        char *full = resolve_path(st->pos.file, xsd);
        vc->xsd = full ? sl_pool_strdup(sl_conf_pool(r), full) : NULL;
        free(full);
        if (!vc->xsd)
            return;
    }
    st->priv = vc;
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
