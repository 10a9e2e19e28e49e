/* Streaming evaluation of simple XPath keys (child steps of unprefixed
 * names or '*', an optional final '@name') in one SAX pass, without a
 * tree: linear in the document. Used by the XPath key language. */
#ifndef SLUICE_XPATH_STREAM_H
#define SLUICE_XPATH_STREAM_H

#include <stddef.h>

#include "error.h"

typedef struct sl_xps sl_xps;

/* Compiles xpath when it is in the streaming subset: '/'-separated steps,
 * each an NCName without prefix or '*', the last one optionally '@NCName'.
 * Returns NULL for any other XPath (or when out of memory): the caller
 * evaluates it on a tree instead. */
sl_xps *sl_xps_compile(const char *xpath);

/* Evaluates p over the document xml[0..len): the string value of the first
 * matching node in document order (an element's descendant text, or the
 * attribute's value) as malloc'd text in *out (*out_len bytes), *out NULL
 * when nothing matches. Refuses entity declarations and external resources
 * and malformed XML like the tree parser. Returns 0, or -1 with err
 * (SL_EINVAL, SL_ENOMEM). p may be shared by threads. */
int sl_xps_eval(const sl_xps *p, const char *xml, size_t len, char **out, size_t *out_len,
                sl_error *err);

/* Frees p. p may be NULL. */
void sl_xps_free(sl_xps *p);

#endif
