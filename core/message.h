/* The message model: bytes plus metadata (id, key, headers, timestamp,
 * attempts, where it sits in the log). Inputs build messages, the log stores
 * them as records, route workers turn records back into messages for steps
 * and outputs. */
#ifndef SLUICE_MESSAGE_H
#define SLUICE_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "log.h"

#define SL_ID_LEN 36 /* a UUID as text, without the NUL */

/* Record header names that carry message metadata in the log. */
#define SL_HDR_ID "message-id"
#define SL_HDR_CONTENT_TYPE "content-type"

typedef struct sl_msg_header {
    char *name;  /* NUL-terminated, lower case as given by inputs */
    char *value; /* NUL-terminated (value_len excludes the NUL) */
    size_t value_len;
} sl_msg_header;

typedef struct sl_msg {
    char id[SL_ID_LEN + 1]; /* UUIDv7, NUL-terminated */
    char *key;              /* NULL when there is none */
    size_t key_len;
    sl_msg_header *headers;
    size_t n_headers;
    size_t cap_headers;
    char *body; /* always NUL-terminated (body_len excludes the NUL) */
    size_t body_len;
    int64_t timestamp_ms;
    int attempts;   /* delivery attempts so far */
    int partition;  /* in the route's topic; -1 before append */
    int64_t offset; /* in the partition; -1 before append */
    void *json;     /* cached decoded body (json_t *), owned; NULL until parsed */
    /* The input validated the body as JSON: a JSON path key may be read by a
     * scan, without a tree. Cleared whenever the body changes. */
    bool json_checked;
} sl_msg;

/* Writes a new UUIDv7 (RFC 9562: 48-bit Unix ms, version 7, random rest,
 * monotonic within the process) as 36 characters plus NUL into out.
 * Thread-safe. */
void sl_uuid7(char out[SL_ID_LEN + 1]);

/* Returns a new empty message with a fresh id and the current time, or NULL
 * when out of memory. Free with sl_msg_free. */
sl_msg *sl_msg_new(void);

/* Frees msg, its headers, body and cached tree. msg may be NULL. */
void sl_msg_free(sl_msg *msg);

/* Returns a deep copy of msg (without the cached tree), or NULL. */
sl_msg *sl_msg_clone(const sl_msg *msg);

/* Replaces the body with a copy of len bytes (and drops the cached tree).
 * Returns 0, or -1 when out of memory (the message is unchanged). */
int sl_msg_set_body(sl_msg *msg, const char *body, size_t len);

/* Like sl_msg_set_body without the copy: msg takes body, which must come
 * from malloc, hold len bytes and have room for the NUL written at
 * body[len]. Cannot fail. */
void sl_msg_take_body(sl_msg *msg, char *body, size_t len);

/* Replaces the key with a copy (key NULL clears it). Returns 0 or -1. */
int sl_msg_set_key(sl_msg *msg, const char *key, size_t len);

/* Sets header name (matched case-insensitively) to a copy of value,
 * replacing an existing one. Returns 0 or -1 when out of memory. */
int sl_msg_set_header(sl_msg *msg, const char *name, const char *value, size_t len);

/* Returns the value of header name (case-insensitive) and its length in
 * *len (when len is not NULL), or NULL when absent. Valid until the header
 * changes. */
const char *sl_msg_get_header(const sl_msg *msg, const char *name, size_t *len);

/* The function used to be declared as sl_msg_header(), which C rejects
 * because the typedef above has the same name. This function-like macro
 * keeps calls written as sl_msg_header(msg, name, len) working; the type
 * name is untouched (a macro only expands before a '('). */
#define sl_msg_header(msg, name, len) sl_msg_get_header((msg), (name), (len))

/* Builds a message from a record read from partition `partition` of the log:
 * the SL_HDR_ID header becomes the id (a record without one gets a fresh
 * id), the other headers are copied. Returns NULL with err when out of
 * memory. */
sl_msg *sl_msg_from_record(const sl_record *rec, int partition, sl_error *err);

/* Fills *view as sl_msg_from_record would, allocating nothing: its key, body
 * and header names and values point into rec (whose strings are
 * NUL-terminated, as sl_partition_read gives them), and its headers are
 * hdrs[0..], which must have room for rec->n_headers. rec and hdrs must
 * outlive the view and not change. The view is read only: nothing may free
 * or replace its key, body or headers (sl_msg_set_*, sl_msg_take_body,
 * sl_msg_free); sl_msg_json may cache a tree in it. Release it with
 * sl_msg_view_release. */
void sl_msg_view_record(sl_msg *view, const sl_record *rec, int partition, sl_msg_header *hdrs);

/* Frees what a view filled by sl_msg_view_record holds of its own (a cached
 * tree); the view's storage is the caller's. */
void sl_msg_view_release(sl_msg *view);

/* Points rec at msg's fields for an append, using hdrs (capacity cap, at
 * least msg->n_headers + 1) for the headers: the id goes first as
 * SL_HDR_ID. rec borrows from msg; keep msg alive while rec is used.
 * Returns 0, or -1 when cap is too small. */
int sl_msg_to_record(const sl_msg *msg, sl_record *rec, sl_header *hdrs, size_t cap);

/* Evaluates a key expression against msg, compiling it first (a caller
 * that evaluates the same expression on many messages compiles it once with
 * sl_expr_compile_key instead). The key languages are those of
 * sl_expr_key_langs: "header:NAME" takes a header; "$.a.b[0]" takes a field
 * of the JSON body (strings as they are, numbers and booleans as their JSON
 * text); "/a/b/@id" takes the string value of the first node an XPath
 * selects in the XML body. Returns a malloc'd NUL-terminated string in *out
 * (length in *len), or sets *out to NULL when the path does not resolve
 * (not an error). Returns -1 with err only when the body cannot be read or
 * the expression is malformed; that is a permanent failure. Thread-safe. */
int sl_msg_eval_key(sl_msg *msg, const char *expr, char **out, size_t *len, sl_error *err);

/* Checks the syntax of a key expression without a message, for config
 * validation: compiles it with its key language and frees it. Returns 0, or
 * -1 with err (SL_EINVAL) saying where it is malformed. Thread-safe. */
int sl_msg_key_check(const char *expr, sl_error *err);

/* Returns msg's body decoded as JSON (a borrowed json_t *, cached on the
 * message), or NULL with err when the body is not JSON. */
void *sl_msg_json(sl_msg *msg, sl_error *err);

#endif
