/* The `lua` step: `lua: { file: PATH, function: NAME, timeout: 50ms,
 * memory: 16MiB, secrets: { NAME: "${VAR}" | "file:PATH" } }`. PATH is relative to the directory of
 * the config file that names it; the script is loaded once per route worker (its own sandboxed
 * state) and NAME(msg, ctx) runs on every message. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua_host.h"

static const char *const LUA_KEYS[] = {"file", "function", "timeout", "memory", "secrets", NULL};

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

/* `lua:` parsed at load (sl_step_conf.priv, from the config's pool). */
typedef struct lua_conf {
    char *name;          /* `file:` as written (for errors and ctx) */
    sl_conf_pos at;      /* where `file:` is written */
    char *path;          /* the script: `file:` against the config file's directory */
    char *lib_dir;       /* the script's directory, where require() looks */
    char *function;      /* `function:` */
    uint64_t timeout_ms; /* 0: SL_LUA_DEFAULT_TIMEOUT_MS */
    uint64_t memory;     /* 0: SL_LUA_DEFAULT_MEMORY */
    sl_kv *secrets;      /* `secrets:`, read with sl_conf_secret (ctx.secrets) */
    size_t n_secrets;
} lua_conf;

/* Loads the script in a sandboxed state of this worker's own. */
static int lua_init(sl_step *s, sl_error *err)
{
    const sl_step_conf *c = s->conf;
    const lua_conf *lc = c->priv;
    if (!lc)
        return sl_error_set(err, SL_ECONFIG, "%s:%d:%d: lua: 'file' and 'function' are required",
                            c->pos.file, c->pos.line, c->pos.col);
    sl_lua_opts o = {.route = s->route,
                     .timeout_ms = lc->timeout_ms,
                     .memory = lc->memory,
                     .lib_dir = lc->lib_dir,
                     .secrets = lc->secrets,
                     .n_secrets = lc->n_secrets};
    sl_error e;
    sl_lua_host *h = sl_lua_host_new(&o, &e);
    if (!h || sl_lua_host_load_script(h, lc->path, lc->name, lc->function, &e) < 0) {
        sl_lua_host_free(h);
        return sl_error_set(err, e.code == SL_ENOMEM ? SL_ENOMEM : SL_ECONFIG, "%s:%d:%d: %s",
                            lc->at.file, lc->at.line, lc->at.col, e.msg);
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

static const sl_conf_doc LUA_DOC[] = {
    SL_DOC_REQ("file", "string",
               "Lua script, relative to the directory of the YAML file that names it"),
    SL_DOC_REQ("function", "string",
               "global function called as function(msg, ctx) for each message"),
    SL_DOC("timeout", "duration", "100ms",
           "instruction budget per call, as time; past it the message fails"),
    SL_DOC("memory", "size", "16MiB", "memory the script may hold (at least 256KiB)"),
    SL_DOC("secrets", "map", NULL,
           "NAME: \"${VAR}\" or \"file:PATH\"; read-only in the script as ctx.secrets.NAME"),
    SL_DOC_END};

/* Resolves `file:` against the directory of the config file that names it
 * (st->pos.file) into lc->path and lc->lib_dir. Records an error when the
 * path is too long. */
static void lua_resolve(sl_conf_reader *r, const sl_step_conf *st, lua_conf *lc)
{
    sl_pool *pool = sl_conf_pool(r);
    char path[PATH_MAX], dir[PATH_MAX];
    if (lc->name[0] == '/') {
        snprintf(path, sizeof path, "%s", lc->name);
    } else {
        dir_of(st->pos.file, dir, sizeof dir);
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, lc->name) >= sizeof path) {
            sl_conf_error_at(r, st->pos, "lua: path too long");
            return;
        }
    }
    dir_of(path, dir, sizeof dir);
    lc->path = sl_pool_strdup(pool, path);
    lc->lib_dir = sl_pool_strdup(pool, dir);
}

/* Reads `secrets:` (a map of names to secrets) into lc. Each value goes
 * through sl_conf_secret, so errors never show it. Returns false after
 * recording an error. */
static bool lua_secrets(sl_conf_reader *r, lua_conf *lc, const sl_node *n, const char *path)
{
    const sl_node *m = sl_conf_value(n, "secrets");
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, "secrets");
    if (!m)
        return true;
    if (!sl_conf_want_map(r, m, p))
        return false;
    lc->secrets = sl_pool_alloc(sl_conf_pool(r), (m->n_pairs ? m->n_pairs : 1) * sizeof(sl_kv));
    if (!lc->secrets)
        return false;
    bool ok = true;
    for (size_t i = 0; i < m->n_pairs; i++) {
        const char *v = NULL;
        if (!sl_conf_secret(r, m, m->pairs[i].key, p, true, &v)) {
            ok = false;
            continue;
        }
        lc->secrets[lc->n_secrets].key = m->pairs[i].key;
        lc->secrets[lc->n_secrets++].value = (char *)v;
    }
    return ok;
}

/* Parses `lua: { file, function, timeout?, memory?, secrets? }` at load
 * into the step's priv (lua_init only loads the script). */
static void lua_parse_conf(sl_conf_reader *r, sl_step_conf *st, const sl_node *n, const char *path)
{
    if (!sl_conf_want_map(r, n, path))
        return;
    sl_conf_check_keys(r, n, path, LUA_KEYS);
    lua_conf *lc = sl_pool_alloc(sl_conf_pool(r), sizeof *lc);
    if (!lc)
        return;
    memset(lc, 0, sizeof *lc);
    bool ok = sl_conf_need_str(r, n, "file", path, &lc->name);
    ok &= sl_conf_need_str(r, n, "function", path, &lc->function);
    const sl_node *timeout = sl_conf_value(n, "timeout");
    if (sl_conf_duration(r, n, "timeout", path, &lc->timeout_ms) && lc->timeout_ms == 0) {
        sl_conf_error_at(r, timeout->pos, "lua: timeout must be a duration above 0");
        ok = false;
    }
    const sl_node *memory = sl_conf_value(n, "memory");
    if (sl_conf_size(r, n, "memory", path, &lc->memory) && lc->memory < SL_LUA_MIN_MEMORY) {
        sl_conf_error_at(r, memory->pos, "lua: memory must be a size of 256KiB or more");
        ok = false;
    }
    ok &= lua_secrets(r, lc, n, path);
    if (!ok)
        return;
    lc->at = sl_conf_value(n, "file")->pos;
    lua_resolve(r, st, lc);
    if (lc->path && lc->lib_dir)
        st->priv = lc;
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
