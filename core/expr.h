/* Expression languages over a message, compiled once and evaluated per
 * message: route keys (`key:`, a JSON path, a header, an XPath...) and
 * output conditions (`when:`). Core knows them only through the tables in
 * sl_expr_key_langs and sl_expr_cond_langs (transforms/expr_registry.c). */
#ifndef SLUICE_EXPR_H
#define SLUICE_EXPR_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "error.h"
#include "message.h"

/* One expression language. */
typedef struct sl_expr_lang {
    const char *name;   /* "json_path", "header", "xpath", "lua" */
    const char *syntax; /* for "expected ..." errors: "a JSON path starting with '$'" */
    /* True when text is written in this language (a prefix rule for keys:
     * "$", "header:", "/"). A condition language may accept everything. */
    bool (*accepts)(const char *text);
    /* Compiles text; pos (may be NULL) names where it was written. Returns
     * a handle for eval and free, or NULL with err (SL_EINVAL or SL_ECONFIG
     * saying why, SL_ENOMEM). */
    void *(*compile)(const char *text, const sl_conf_pos *pos, sl_error *err);
    /* Key languages: evaluates to a malloc'd NUL-terminated string in *out
     * (length in *len), or *out NULL when nothing matches (not an error).
     * Returns 0, or -1 with err (a permanent failure for the message). */
    int (*eval_key)(void *h, sl_msg *msg, char **out, size_t *len, sl_error *err);
    /* Condition languages: *out is the truth of the expression. Returns 0,
     * or -1 with err (*out false). */
    int (*eval_bool)(void *h, sl_msg *msg, bool *out, sl_error *err);
    /* Frees a handle from compile. h may be NULL. */
    void (*free)(void *h);
    /* True when one handle may be evaluated by several threads at once
     * (every key language must be: keys are evaluated by input threads).
     * False: each thread compiles its own (a Lua state). */
    bool shared;
} sl_expr_lang;

/* NULL-terminated; defined in transforms/expr_registry.c. A key is compiled
 * by the first language that accepts it; a condition by the first condition
 * language that accepts it. */
extern const sl_expr_lang *const sl_expr_key_langs[];
extern const sl_expr_lang *const sl_expr_cond_langs[];

/* The key languages that core implements itself (core/message.c). */
extern const sl_expr_lang sl_expr_json_path;
extern const sl_expr_lang sl_expr_header;

/* A compiled expression: its language and its handle. */
typedef struct sl_expr sl_expr;

/* Compiles a key expression with the first key language that accepts it.
 * Returns NULL with err when none does ("malformed key expression ...:
 * expected A, B or C") or compiling fails. The result is shared-safe. */
sl_expr *sl_expr_compile_key(const char *text, const sl_conf_pos *pos, sl_error *err);

/* Compiles a `when:` condition with the first condition language that
 * accepts it. Returns NULL with err. The result belongs to the calling
 * thread unless its language is shared. */
sl_expr *sl_expr_compile_cond(const char *text, const sl_conf_pos *pos, sl_error *err);

/* Evaluates a compiled key (see sl_expr_lang.eval_key). */
int sl_expr_eval_key(sl_expr *e, sl_msg *msg, char **out, size_t *len, sl_error *err);

/* Evaluates a compiled condition (see sl_expr_lang.eval_bool). */
int sl_expr_eval_bool(sl_expr *e, sl_msg *msg, bool *out, sl_error *err);

/* Frees e. e may be NULL. */
void sl_expr_free(sl_expr *e);

/* A connector's key expressions (a Kafka output's `key`, the ${...} of an
 * AMQP routing key), compiled once when the connector starts and looked up
 * by their text per message. Built by one thread (init), then read by many
 * (senders) without a lock. */
typedef struct sl_expr_set sl_expr_set;

/* Returns an empty set, or NULL when out of memory. */
sl_expr_set *sl_expr_set_new(void);

/* Compiles key text into s (once: a text already there is skipped). A text
 * that does not compile is kept with its error, which every evaluation of it
 * then returns, as evaluating it uncompiled would. Returns 0, or -1 with err
 * when out of memory. */
int sl_expr_set_add(sl_expr_set *s, const char *text, sl_error *err);

/* Evaluates key text against msg as sl_msg_eval_key does, with the compiled
 * expression when s holds it (s may be NULL: a connector built without a
 * gateway config, in a unit test; text is then compiled for this call).
 * Thread-safe once s is built. */
int sl_expr_set_eval(const sl_expr_set *s, const char *text, sl_msg *msg, char **out, size_t *len,
                     sl_error *err);

/* Frees s and its expressions. s may be NULL. */
void sl_expr_set_free(sl_expr_set *s);

#endif
