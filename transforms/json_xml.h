/* The JSON <-> XML convention of SPEC.md section 7 (details in JSON_XML.md):
 * a fast JSON -> XML writer, a streaming (SAX2) XML -> JSON reader, and the
 * hardened XML parsing and XPath helpers that the json_to_xml, xml_to_json
 * and validate steps, the Lua host (xml.encode / xml.decode) and key
 * expressions on XML bodies share. */
#ifndef SLUICE_JSON_XML_H
#define SLUICE_JSON_XML_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "error.h"

#define SL_XML_MAX_DEPTH 256 /* default and highest nesting depth */
#define SL_XML_MAX_ATTRS 256 /* attributes on one element (sl_xml_check_attrs) */
#define SL_XML_MAX_SIZE ((size_t)256 * 1024 * 1024) /* default largest XML input, bytes */
#define SL_XSI_NS "http://www.w3.org/2001/XMLSchema-instance"

/* Conversion options. Fill with sl_xml_opts_init(); a NULL opts pointer
 * means the defaults. Strings are borrowed: they must outlive the call. */
typedef struct sl_xml_opts {
    /* JSON -> XML */
    const char *root;           /* NULL (default): a one-member object {"k": v} with v not an
                                   array becomes <k>..</k>, anything else is wrapped in <root>;
                                   set: the whole document is always wrapped in <ROOT> */
    bool declaration;           /* write <?xml version="1.0" encoding="..."?>; default true */
    const char *encoding;       /* NULL or "UTF-8" (default); another name makes libxml2
                                   transcode (unmappable characters become &#N;) */
    bool pretty;                /* indent by two spaces; default false */
    const char *wrap;           /* NULL (default), or "/p:A/p:B": the document (as with root) is
                                   written inside <p:A><p:B>..</p:B></p:A>; it must then be an object */
    const char *const *wrap_ns; /* prefix, URI pairs declared on the outermost wrapping
                                   element ("" prefix: the default namespace) */
    size_t n_wrap_ns;           /* pairs in wrap_ns */
    /* XML -> JSON */
    const char *const *force_array; /* "/a/b" (that path, from the root) or "b" (every
                                       element of that name): always an array */
    size_t n_force_array;
    bool coerce;           /* numeric text -> numbers, "true"/"false" -> booleans; default false.
                              The JSON text (sl_xml_to_json_text) keeps each number exactly as written
                              (123.40 stays 123.40); the tree holds it as a double. */
    bool strip_namespaces; /* "soap:Envelope" -> "Envelope", "@p:a" -> "@a", namespace
                              declarations dropped; default false */
    const char *unwrap;    /* NULL (default), or "/A/B" (JSON keys, so stripped names when
                              strip_namespaces): the document is the value of the first element
                              at that path, which must have child elements or attributes */
    /* both directions */
    int max_depth;   /* element nesting limit; 0 or above SL_XML_MAX_DEPTH means the default */
    size_t max_size; /* XML input limit in bytes; 0 means SL_XML_MAX_SIZE */
} sl_xml_opts;

/* Fills o with the defaults above. Cannot fail. */
void sl_xml_opts_init(sl_xml_opts *o);

/* Writes doc as XML following the convention. Returns a malloc'd,
 * NUL-terminated buffer (length in *len, without the NUL; len may be NULL)
 * that the caller frees with free(). Returns NULL with err filled when doc
 * cannot be written (SL_EINVAL: a character XML 1.0 cannot carry, an
 * attribute or #text that is an object or array, an empty key, nesting
 * deeper than max_depth, an unknown encoding; SL_ENOMEM). doc is not
 * changed. Thread-safe (doc must not be changed by another thread). */
char *sl_json_to_xml(const json_t *doc, const sl_xml_opts *o, size_t *len, sl_error *err);

/* Reads len bytes of XML into a new JSON document {"rootName": value}
 * following the convention. The caller owns the result (json_decref).
 * Returns NULL with err filled (SL_EINVAL, "XML line N: ..." ) when the
 * XML is not well-formed, larger than max_size, nested deeper than
 * max_depth, or declares entities in its DOCTYPE (billion laughs and XXE
 * are refused before anything is expanded or loaded); SL_ENOMEM when out
 * of memory. Never reads files or the network. Thread-safe. */
json_t *sl_xml_to_json(const char *xml, size_t len, const sl_xml_opts *o, sl_error *err);

/* As sl_xml_to_json, but writes the compact JSON text (exactly what
 * json_dumps(JSON_COMPACT) of sl_xml_to_json's tree gives) without building
 * the tree: each element becomes text when it closes, so memory stays a
 * small multiple of the document. Returns a malloc'd NUL-terminated string
 * (its length in *out_len when not NULL), or NULL with err. Thread-safe. */
char *sl_xml_to_json_text(const char *xml, size_t len, const sl_xml_opts *o, size_t *out_len,
                          sl_error *err);

/* Evaluates an XPath 1.0 expression against an XML document (hardened as
 * sl_xml_to_json; the prefixes declared anywhere in the document are bound,
 * first declaration wins). On a match, *out is a malloc'd NUL-terminated
 * string (length in *out_len; out_len may be NULL): the string value of the
 * first node in document order, or the expression's value when it is a
 * string, number or boolean. *out is NULL when nothing matches (not an
 * error). Returns 0, or -1 with err when the XML or the expression is
 * malformed (a permanent failure for the message) or out of memory.
 * Thread-safe. */
int sl_xml_eval_xpath(const char *xml, size_t len, const char *xpath, char **out, size_t *out_len,
                      sl_error *err);

/* Checks that xpath compiles as XPath 1.0, for config validation.
 * Returns 0, or -1 with err (SL_EINVAL) saying why. Thread-safe. */
int sl_xml_xpath_check(const char *xpath, sl_error *err);

/* Parses len bytes of XML into a libxml2 tree with the same hardening as
 * sl_xml_to_json (no network, no entity declarations, no DTD loading,
 * depth and size limits). Returns the document, which the caller frees
 * with xmlFreeDoc(), or NULL with err ("XML line N: ..."). Thread-safe. */
struct _xmlDoc *sl_xml_parse_tree(const char *xml, size_t len, sl_error *err);

/* Initializes libxml2 once per process; every function above calls it, so
 * calling it is only needed to do the work early. Thread-safe. */
void sl_xml_init(void);

/* Refuses, in one linear pass before libxml2 sees it (its start-tag parser
 * is quadratic in one element's attributes), a document with an element of
 * more than SL_XML_MAX_ATTRS attributes (counted as the '=' outside quotes
 * of its tag: namespace declarations count too). Returns 0, or -1 with err
 * (SL_EINVAL, "XML line N: element <x> has more than 1024 attributes"). */
int sl_xml_check_attrs(const char *xml, size_t len, sl_error *err);

#endif
