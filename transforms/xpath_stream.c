/* Streaming evaluation of the simple XPath keys (`/a/b`, `/a/b/c`,
 * `/a/b/@id`: child steps of unprefixed names or '*', an optional final
 * attribute) in one SAX pass over the document, without building a tree:
 * linear in the body, whatever its attribute count. Other XPaths go
 * through the tree parser (json_xml.c). */
#include "xpath_stream.h"

#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "json_xml.h"

#define XPS_MAX_STEPS 64

struct sl_xps {
    int n_steps;                /* element steps */
    char *steps[XPS_MAX_STEPS]; /* names; "*" for any element */
    char *attr;                 /* final attribute name, or NULL */
};

/* One pass's state. */
typedef struct xps_run {
    const sl_xps *p;
    xmlParserCtxtPtr ctxt;
    int depth;         /* open elements */
    int matched;       /* leading open elements that match the path's steps */
    int collect_depth; /* depth of the element whose text is collected; 0: none */
    bool found;        /* the result is complete (or being collected) */
    bool refused;
    bool oom;
    sl_buf text;
    char why[300];
    int why_line;
    char xml_err[300];
    int xml_err_line;
} xps_run;

static bool name_char(unsigned char c, bool first)
{
    if (c >= 0x80 || c == '_' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))
        return true;
    return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* Length of the NCName (or "*" when star is allowed) at s; 0 when none. */
static size_t name_len(const char *s, bool star)
{
    if (star && s[0] == '*')
        return 1;
    size_t n = 0;
    while (name_char((unsigned char)s[n], n == 0))
        n++;
    return n;
}

void sl_xps_free(sl_xps *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n_steps; i++)
        free(p->steps[i]);
    free(p->attr);
    free(p);
}

sl_xps *sl_xps_compile(const char *xpath)
{
    sl_xps *p = calloc(1, sizeof *p);
    const char *s = xpath;
    while (p && *s == '/') {
        bool attr = s[1] == '@';
        const char *name = s + 1 + attr;
        size_t n = name_len(name, !attr);
        if (n == 0 || p->n_steps == XPS_MAX_STEPS || (name[n] != '\0' && name[n] != '/') ||
            (attr && name[n] != '\0'))
            break;
        char *copy = strndup(name, n);
        if (!copy)
            break;
        if (attr)
            p->attr = copy;
        else
            p->steps[p->n_steps++] = copy;
        s = name + n;
    }
    if (p && (*s != '\0' || p->n_steps == 0)) {
        sl_xps_free(p);
        return NULL;
    }
    return p;
}

/* The text of an attribute value: libxml2 hands SAX2 an '&' (from &amp; or
 * &#38;) as "&#38;" when entities are not substituted. */
static void put_attr_value(sl_buf *b, const char *s, size_t len)
{
    const char *amp;
    while ((amp = memchr(s, '&', len)) != NULL) {
        sl_buf_put(b, s, (size_t)(amp - s));
        size_t rest = len - (size_t)(amp - s);
        bool esc = rest >= 5 && memcmp(amp, "&#38;", 5) == 0;
        sl_buf_putc(b, '&');
        len = rest - (esc ? 5 : 1);
        s = amp + (esc ? 5 : 1);
    }
    sl_buf_put(b, s, len);
}

static bool step_matches(const char *step, const xmlChar *local, const xmlChar *uri)
{
    if (step[0] == '*' && step[1] == '\0')
        return true;
    return uri == NULL && strcmp(step, (const char *)local) == 0;
}

/* At the last element step: takes the attribute, or starts collecting. */
static void take_match(xps_run *x, int nb_attrs, const xmlChar **attrs)
{
    if (!x->p->attr) {
        x->found = true;
        x->collect_depth = x->depth;
        return;
    }
    for (int i = 0; i < nb_attrs; i++) {
        const xmlChar **a = attrs + 5 * i; /* local, prefix, URI, value, end */
        if (a[2] == NULL && strcmp((const char *)a[0], x->p->attr) == 0) {
            put_attr_value(&x->text, (const char *)a[3], (size_t)(a[4] - a[3]));
            x->found = true;
            return;
        }
    }
}

static void xps_start(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri,
                      int nb_ns, const xmlChar **ns, int nb_attrs, int nb_defaulted,
                      const xmlChar **attrs)
{
    xps_run *x = ctx;
    (void)prefix;
    (void)nb_ns;
    (void)ns;
    x->depth++;
    if (x->found || x->matched != x->depth - 1 || x->depth > x->p->n_steps ||
        !step_matches(x->p->steps[x->depth - 1], local, uri))
        return;
    x->matched = x->depth;
    if (x->matched == x->p->n_steps)
        take_match(x, nb_attrs - nb_defaulted, attrs);
}

static void xps_end(void *ctx, const xmlChar *local, const xmlChar *prefix, const xmlChar *uri)
{
    xps_run *x = ctx;
    (void)local;
    (void)prefix;
    (void)uri;
    if (x->collect_depth == x->depth)
        x->collect_depth = 0;
    if (x->matched == x->depth)
        x->matched--;
    x->depth--;
}

static void xps_chars(void *ctx, const xmlChar *s, int n)
{
    xps_run *x = ctx;
    if (x->collect_depth > 0)
        sl_buf_put(&x->text, (const char *)s, (size_t)n);
}

static void xps_refuse(xps_run *x, const char *what, const xmlChar *name)
{
    if (!x->refused) {
        x->refused = true;
        x->why_line = x->ctxt->input ? x->ctxt->input->line : 0;
        snprintf(x->why, sizeof x->why, "%s '%s' %s", what, name ? (const char *)name : "?",
                 "is refused (no entity expansion, no external entities)");
    }
    xmlStopParser(x->ctxt);
}

static void xps_entity_decl(void *ctx, const xmlChar *name, int type, const xmlChar *public_id,
                            const xmlChar *system_id, xmlChar *content)
{
    (void)type;
    (void)public_id;
    (void)system_id;
    (void)content;
    xps_refuse(ctx, "the DOCTYPE declares entity", name);
}

static void xps_unparsed_entity_decl(void *ctx, const xmlChar *name, const xmlChar *public_id,
                                     const xmlChar *system_id, const xmlChar *notation)
{
    (void)notation;
    xps_entity_decl(ctx, name, 0, public_id, system_id, NULL);
}

static xmlEntityPtr xps_get_entity(void *ctx, const xmlChar *name)
{
    (void)ctx;
    return xmlGetPredefinedEntity(name);
}

static xmlParserInputPtr xps_resolve_entity(void *ctx, const xmlChar *public_id,
                                            const xmlChar *system_id)
{
    (void)public_id;
    xps_refuse(ctx, "loading external resource", system_id);
    return NULL;
}

static void xps_serror(void *ctx, xmlErrorPtr e)
{
    xps_run *x = ctx;
    if (e && e->level >= XML_ERR_ERROR && x->xml_err[0] == '\0') {
        x->xml_err_line = e->line;
        snprintf(x->xml_err, sizeof x->xml_err, "%s", e->message ? e->message : "malformed XML");
        size_t n = strlen(x->xml_err);
        while (n && (x->xml_err[n - 1] == '\n' || x->xml_err[n - 1] == ' '))
            x->xml_err[--n] = '\0';
    }
}

static void xps_sax(xmlSAXHandler *sax)
{
    memset(sax, 0, sizeof *sax);
    sax->initialized = XML_SAX2_MAGIC;
    sax->startElementNs = xps_start;
    sax->endElementNs = xps_end;
    sax->characters = xps_chars;
    sax->ignorableWhitespace = xps_chars;
    sax->cdataBlock = xps_chars;
    sax->entityDecl = xps_entity_decl;
    sax->unparsedEntityDecl = xps_unparsed_entity_decl;
    sax->getEntity = xps_get_entity;
    sax->resolveEntity = xps_resolve_entity;
    sax->serror = xps_serror;
}

/* Runs the SAX pass; returns libxml2's well-formedness verdict. */
static bool xps_parse(xps_run *x, const char *xml, size_t len)
{
    x->ctxt = xmlCreateMemoryParserCtxt(xml, (int)len);
    if (!x->ctxt) {
        x->oom = true;
        return false;
    }
    xmlCtxtUseOptions(x->ctxt, XML_PARSE_NONET);
    xps_sax(x->ctxt->sax);
    x->ctxt->userData = x;
    x->ctxt->replaceEntities = 0;
    x->ctxt->loadsubset = 0;
    x->ctxt->validate = 0;
    xmlParseDocument(x->ctxt);
    bool ok = x->ctxt->wellFormed;
    if (x->ctxt->myDoc)
        xmlFreeDoc(x->ctxt->myDoc);
    x->ctxt->myDoc = NULL;
    xmlFreeParserCtxt(x->ctxt);
    return ok;
}

int sl_xps_eval(const sl_xps *p, const char *xml, size_t len, char **out, size_t *out_len,
                sl_error *err)
{
    *out = NULL;
    *out_len = 0;
    if (len > SL_XML_MAX_SIZE)
        return sl_error_set(err, SL_EINVAL,
                            "XML document of %zu bytes is larger than the limit of %zu", len,
                            SL_XML_MAX_SIZE);
    if (!xml || len == 0)
        return sl_error_set(err, SL_EINVAL, "XML line 1: the document is empty");
    if (sl_xml_check_attrs(xml, len, err) < 0)
        return -1;
    xps_run x;
    memset(&x, 0, sizeof x);
    x.p = p;
    sl_xml_init();
    bool ok = xps_parse(&x, xml, len);
    int rc = 0;
    if (x.refused)
        rc = sl_error_set(err, SL_EINVAL, "XML line %d: %s", x.why_line, x.why);
    else if (x.oom || x.text.oom)
        rc = sl_error_set(err, SL_ENOMEM, "out of memory");
    else if (!ok)
        rc = sl_error_set(err, SL_EINVAL, "XML line %d: %s", x.xml_err_line,
                          x.xml_err[0] ? x.xml_err : "malformed XML");
    else if (x.found) {
        char *t = sl_buf_cstr(&x.text);
        if (!t)
            rc = sl_error_set(err, SL_ENOMEM, "out of memory");
        if (t) {
            *out = t;
            *out_len = x.text.len;
            return 0;
        }
    }
    free(x.text.p);
    return rc;
}
