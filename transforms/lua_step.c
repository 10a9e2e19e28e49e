/* The `lua` step: `lua: { file: PATH, function: NAME, timeout: 50ms,
 * memory: 16MiB }`. PATH is relative to the directory of the config file
 * that names it; the script is loaded once per route worker (its own
 * sandboxed state) and NAME(msg, ctx) runs on every message. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_host.h"

/* Writes into out the directory of file ("." when it has none). */
static void dir_of(const char *file, char *out, size_t cap)
{
    const char *slash = file ? strrchr(file, '/') : NULL;
    if (!slash)
        snprintf(out, cap, ".");
    else if (slash == file)
        snprintf(out, cap, "/");
    else
        snprintf(out, cap, "%.*s", (int)(slash - file), file);
}

static int lua_init(sl_step *s, sl_error *err)
{
    const sl_step_conf *c = s->conf;
    const sl_node *n = c->node;
    const sl_node *file = sl_node_get(n, "file");
    const sl_node *fn = sl_node_get(n, "function");
    const sl_node *timeout = sl_node_get(n, "timeout");
    const sl_node *memory = sl_node_get(n, "memory");
    if (!file || file->kind != SL_NODE_SCALAR || !fn || fn->kind != SL_NODE_SCALAR)
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: lua: 'file' and 'function' are required",
                            c->pos.file, c->pos.line, c->pos.col);
    sl_lua_opts o = {.route = s->route};
    if (timeout && (timeout->kind != SL_NODE_SCALAR ||
                    sl_parse_duration_ms(timeout->scalar, &o.timeout_ms) < 0 || !o.timeout_ms))
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: lua: timeout must be a duration above 0",
                            timeout->pos.file, timeout->pos.line, timeout->pos.col);
    if (memory && (memory->kind != SL_NODE_SCALAR || sl_parse_size(memory->scalar, &o.memory) < 0 ||
                   o.memory < SL_LUA_MIN_MEMORY))
        return sl_error_set(err, SL_ECONFIG,
                            "%s:%d:%d: lua: memory must be a size of 256KiB or more",
                            memory->pos.file, memory->pos.line, memory->pos.col);
    char path[PATH_MAX], libdir[PATH_MAX];
    if (file->scalar[0] == '/') {
        snprintf(path, sizeof path, "%s", file->scalar);
    } else {
        char dir[PATH_MAX];
        dir_of(c->pos.file, dir, sizeof dir);
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file->scalar) >= sizeof path)
            return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: lua: path too long", c->pos.file,
                                c->pos.line, c->pos.col);
    }
    dir_of(path, libdir, sizeof libdir);
    o.lib_dir = libdir;
    sl_error e;
    sl_lua_host *h = sl_lua_host_new(&o, &e);
    if (!h || sl_lua_host_load_script(h, path, file->scalar, fn->scalar, &e) < 0) {
        sl_lua_host_free(h);
        return sl_error_set(err, e.code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG, "%s:%d:%d: %s",
                            file->pos.file, file->pos.line, file->pos.col, e.msg);
    }
    s->state = h;
    return 0;
}

static int lua_process(sl_step *s, sl_msg *msg, sl_error *err)
{
    sl_lua_host_set_services(s->state, s->services);
    return sl_lua_host_run_step(s->state, msg, err);
}

static int lua_process_split(sl_step *s, sl_msg *msg, sl_msg ***more, size_t *n_more, sl_error *err)
{
    sl_lua_host_set_services(s->state, s->services);
    return sl_lua_host_run_step_split(s->state, msg, more, n_more, err);
}

static void lua_destroy(sl_step *s)
{
    sl_lua_host_free(s->state);
    s->state = NULL;
}

static const char *const LUA_KEYS[] = {"file", "function", "timeout", "memory", NULL};
static const sl_conf_doc LUA_DOC[] = {
    SL_DOC_REQ("file", "string",
               "Lua script, relative to the directory of the YAML file that names it"),
    SL_DOC_REQ("function", "string",
               "global function called as function(msg, ctx) for each message"),
    SL_DOC("timeout", "duration", "100ms",
           "instruction budget per call, as time; past it the message fails"),
    SL_DOC("memory", "size", "16MiB", "memory the script may hold (at least 256KiB)"), SL_DOC_END};

/* Checks `lua: { file, function, timeout?, memory? }` at load; lua_init
 * reads the settings from the node. */
static void lua_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    char *str = NULL;
    uint64_t u;
    if (!sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, LUA_KEYS);
    sl_conf_need_str(r, n, "file", path, &str);
    sl_conf_need_str(r, n, "function", path, &str);
    sl_conf_duration(r, n, "timeout", path, &u);
    sl_conf_size(r, n, "memory", path, &u);
}

const sl_step_type sl_lua_step = {
    .name = "lua",
    .summary = "runs a sandboxed Lua function on each message (transforms/LUA.md)",
    .conf_keys = LUA_KEYS,
    .conf_doc = LUA_DOC,
    .parse_conf = lua_parse_conf,
    .init = lua_init,
    .process = lua_process,
    .destroy = lua_destroy,
    .process_split = lua_process_split,
};
