/* The `filter` step: a Lua expression over msg (`filter: "msg.headers['x-tier']
 * == 'gold'"`), compiled once per worker; a false or nil value drops the
 * message, an error fails it (dead letter). */
#include <stdio.h>

#include "lua_expr.h"
#include "step.h"

static int filter_init(sl_step *s, sl_error *err)
{
    const sl_step_conf *c = s->conf;
    if (!c->expr || !*c->expr)
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: filter: expected a Lua expression",
                            c->pos.file, c->pos.line, c->pos.col);
    s->state = sl_lua_expr_compile(c->expr, &c->pos, err);
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

const sl_step_type sl_filter_step = {
    .name = "filter",
    .init = filter_init,
    .process = filter_process,
    .destroy = filter_destroy,
};
