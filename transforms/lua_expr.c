/* Compiled `when:` and `filter` expressions: a thin layer over the Lua host
 * (one sandboxed state per expression, so per output per route worker). */
#include "lua_expr.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "lua_host.h"

struct sl_lua_expr {
    sl_lua_host *host;
};

/* Rewrites the host's "...expression:L: why" (L counts lines of the wrapped
 * chunk, whose first line is the expression's first) into "FILE:LINE:COL:
 * lua expression: why" at the user's own line: pos is where the expression
 * is written. A line past the expression's last is the wrapper's closing
 * line: the expression ended too early. */
static void locate(const char *expr, const char *msg, const sl_conf_pos *pos, char *out, size_t cap)
{
    const char *at = strstr(msg, "expression:");
    char *end = NULL;
    long line = at ? strtol(at + 11, &end, 10) : 0;
    if (!pos || !pos->file) {
        snprintf(out, cap, "lua expression: %s", msg);
        return;
    }
    if (!at || line < 1 || !end || *end != ':') {
        snprintf(out, cap, "%s:%d:%d: lua expression: %s", pos->file, pos->line, pos->col, msg);
        return;
    }
    long lines = 1;
    for (const char *c = expr; *c; c++)
        lines += *c == '\n';
    const char *why = end + 1 + (end[1] == ' ');
    bool past = line > lines;
    if (past)
        snprintf(out, cap, "%s:%ld:%d: lua expression: ends too early (Lua: %s)", pos->file,
                 pos->line + lines - 1, pos->col, why);
    else
        snprintf(out, cap, "%s:%ld:%d: lua expression: %s", pos->file, pos->line + line - 1,
                 pos->col, why);
}

sl_lua_expr *sl_lua_expr_compile(const char *expr, const sl_conf_pos *pos, sl_error *err)
{
    sl_lua_expr *e = calloc(1, sizeof *e);
    if (!e) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    sl_lua_opts o = {.route = "expr"};
    sl_error e2;
    e->host = sl_lua_host_new(&o, &e2);
    if (!e->host || sl_lua_host_load_expr(e->host, expr, "expression", &e2) < 0) {
        char msg[sizeof err->msg];
        locate(expr, e2.msg, pos, msg, sizeof msg);
        sl_error_set(err, e2.code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG, "%s", msg);
        sl_lua_expr_free(e);
        return NULL;
    }
    return e;
}

int sl_lua_expr_eval(sl_lua_expr *e, sl_msg *msg, bool *result, sl_error *err)
{
    return sl_lua_host_run_expr(e->host, msg, result, err);
}

void sl_lua_expr_free(sl_lua_expr *e)
{
    if (!e)
        return;
    sl_lua_host_free(e->host);
    free(e);
}

/* ---- Lua as the condition language of `when:` (core/expr.h) ---- */

static bool lua_cond_accepts(const char *text)
{
    return true; /* any text: a syntax error is reported by compile */
}

static void *lua_cond_compile(const char *text, const sl_conf_pos *pos, sl_error *err)
{
    return sl_lua_expr_compile(text, pos, err);
}

static int lua_cond_eval(void *h, sl_msg *msg, bool *out, sl_error *err)
{
    return sl_lua_expr_eval(h, msg, out, err);
}

static void lua_cond_free(void *h)
{
    sl_lua_expr_free(h);
}

const sl_expr_lang sl_expr_lua = {
    .name = "lua",
    .syntax = "a Lua expression",
    .accepts = lua_cond_accepts,
    .compile = lua_cond_compile,
    .eval_bool = lua_cond_eval,
    .free = lua_cond_free,
    .shared = false,
};
