/* Compiled Lua expressions over a message, for `when:` on outputs and the
 * `filter` step: `return (EXPR)` compiled once in its own sandboxed state
 * (the msg API, json, xml; no ctx), evaluated per message. One per route
 * worker: not thread-safe. */
#ifndef SLUICE_LUA_EXPR_H
#define SLUICE_LUA_EXPR_H

#include <stdbool.h>

#include "config.h"
#include "error.h"
#include "message.h"

typedef struct sl_lua_expr sl_lua_expr;

/* Compiles expr (a Lua expression with `msg` in scope, e.g.
 * "msg.headers['x-tier'] == 'gold'"). pos (may be NULL) names where it was
 * written: errors read "FILE:LINE:COL: lua expression: ...". Returns NULL
 * with err on a syntax error or when out of memory. The result belongs to
 * the calling thread. */
sl_lua_expr *sl_lua_expr_compile(const char *expr, const sl_conf_pos *pos, sl_error *err);

/* Evaluates e over msg: *result is true when the value is neither nil nor
 * false. Returns 0, or -1 with err (the Lua error and traceback, a timeout
 * after 100 ms, the 16 MiB memory cap) with *result false; e stays usable.
 * msg is read, and changed only if the expression itself changes it. */
int sl_lua_expr_eval(sl_lua_expr *e, sl_msg *msg, bool *result, sl_error *err);

/* Frees e. e may be NULL. */
void sl_lua_expr_free(sl_lua_expr *e);

#endif
