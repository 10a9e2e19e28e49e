/* Compiled `when:` and `filter` expressions: a thin layer over the Lua host
 * (one sandboxed state per expression, so per output per route worker). */
#include "lua_expr.h"

#include <stdio.h>
#include <stdlib.h>

#include "expr.h"
#include "lua_host.h"

struct sl_lua_expr {
    sl_lua_host *host;
};

sl_lua_expr *sl_lua_expr_compile(const char *expr, const sl_conf_pos *pos, sl_error *err)
{
    char where[300];
    if (pos && pos->file)
        snprintf(where, sizeof where, "%s:%d:%d: ", pos->file, pos->line, pos->col);
    else
        where[0] = '\0';
    sl_lua_expr *e = calloc(1, sizeof *e);
    if (!e) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    sl_lua_opts o = {.route = "expr"};
    sl_error e2;
    e->host = sl_lua_host_new(&o, &e2);
    if (!e->host || sl_lua_host_load_expr(e->host, expr, "expression", &e2) < 0) {
        sl_error_set(err, e2.code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG, "%slua expression: %s",
                     where, e2.msg);
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
