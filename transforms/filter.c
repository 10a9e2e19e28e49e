/* The `filter` step: a Lua expression over msg (`filter: "msg.headers['x-tier']
 * == 'gold'"`), compiled once per worker; a false or nil value drops the
 * message, an error fails it (dead letter). */
#include <stdio.h>

#include "filter.h"
#include "lua_expr.h"
#include "step.h"

/* Checks that the setting is a non-empty scalar: the expression. */
static void filter_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n,
                              const char *path)
{
    if (n->kind != SL_NODE_SCALAR || !*n->scalar) {
        sl_conf_type_error(r, n, path, "a Lua expression");
        return;
    }
    sl_filter_conf *fc = sl_pool_alloc(sl_conf_pool(r), sizeof *fc);
    if (fc) {
        fc->expr = sl_pool_strdup(sl_conf_pool(r), n->scalar);
        st->priv = fc;
    }
}

static int filter_init(sl_step *s, sl_error *err)
{
    const sl_step_conf *c = s->conf;
    const sl_filter_conf *fc = c->priv;
    if (!fc || !fc->expr || !*fc->expr)
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: filter: expected a Lua expression",
                            c->pos.file, c->pos.line, c->pos.col);
    s->state = sl_lua_expr_compile(fc->expr, &c->pos, err);
    return s->state ? 0 : -1;
}

static int filter_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    bool keep;
    if (sl_lua_expr_eval(s->state, msg, &keep, err) < 0)
        return SL_STEP_FAIL;
    return keep ? SL_STEP_OK : SL_STEP_DROP;
}

static void filter_destroy(sl_step *s)
{
    sl_lua_expr_free(s->state);
    s->state = NULL;
}

static const sl_conf_doc FILTER_VALUE = {
    NULL, "string", NULL, "Lua expression over msg; false or nil drops the message", true, NULL};

const sl_step_type sl_filter_step = {
    .name = "filter",
    .summary = "drops the messages for which a Lua expression is false or nil",
    .value = &FILTER_VALUE,
    .parse_conf = filter_parse_conf,
    .init = filter_init,
    .process = filter_process,
    .destroy = filter_destroy,
};
