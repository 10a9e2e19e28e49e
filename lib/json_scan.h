/* Finding one value in a JSON text without building a tree: a single
 * linear, bounded scan that follows a path of member names and array
 * indexes (the ingest path reads a route's key this way). It decides only
 * the plain cases and says so; everything else is left to a real parser. */
#ifndef SLUICE_JSON_SCAN_H
#define SLUICE_JSON_SCAN_H

#include <stdbool.h>
#include <stddef.h>

/* One step of a path: member `name` (name_len bytes, no escapes) of an
 * object, or element `index` of an array. */
typedef struct sl_json_step {
    bool is_index;
    size_t index;
    const char *name;
    size_t name_len;
} sl_json_step;

typedef enum {
    SL_JSON_SCAN_FOUND,   /* a string without escapes, an integer, true or false: *val, *val_len */
    SL_JSON_SCAN_MISSING, /* no such member or element, a step into a scalar, or null */
    SL_JSON_SCAN_UNSURE,  /* anything else (escapes in a member name or in the string found,
                           * a real number, an object or array found, malformed text): ask a parser
                           */
} sl_json_scan_result;

/* Follows steps[0..n) from the root value of buf[0..len). On FOUND, *val
 * points into buf: the bytes between the quotes of a string, or the text of
 * an integer, true or false. A member that occurs more than once counts by
 * its last occurrence, as jansson keeps it. Reads nothing past buf + len,
 * allocates nothing, and is meant for text already validated as JSON (on
 * other text it still stops safely, usually with UNSURE). */
sl_json_scan_result sl_json_scan(const char *buf, size_t len, const sl_json_step *steps, size_t n,
                                 const char **val, size_t *val_len);

#endif
