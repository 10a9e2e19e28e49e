/* The Lua host: creates one sandboxed lua_State (safe base functions and
 * libraries only, text chunks only, no io/debug/package, os reduced to
 * time/clock/date), enforces the time limit with an instruction-count hook
 * and the memory cap with the allocator, runs step functions and compiled
 * expressions in protected mode, and rebuilds a state left unusable. */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lualib.h>

#include "logging.h"

#define HOOK_EVERY 1000      /* instructions between deadline checks */
#define INIT_TIMEOUT_MS 1000 /* at least this long for a script's top level */
#define MAX_SCRIPT_BYTES (4u << 20)

/* ---- clocks and memory ----------------------------------------------------- */

int64_t sl_lua_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sl_lua_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sl_lua_charge(lua_State *L, size_t n)
{
    sl_lua_host *h = sl_lua_host_of(L);
    if (h->used + n > h->limit) {
        lua_gc(L, LUA_GCCOLLECT); /* frees through host_alloc: h->used changes */
        // cppcheck-suppress knownConditionTrueFalse
        if (h->used + n > h->limit) {
            if (!h->killed) {
                h->killed = true;
                snprintf(h->kill_reason, sizeof h->kill_reason, "memory limit of %zu KiB exceeded",
                         h->limit >> 10);
            }
            return -1;
        }
    }
    h->used += n;
    return 0;
}

void sl_lua_uncharge(lua_State *L, size_t n)
{
    sl_lua_host *h = sl_lua_host_of(L);
    h->used -= n < h->used ? n : h->used;
}

size_t sl_lua_host_memory(const sl_lua_host *h)
{
    return h ? h->used : 0;
}

unsigned sl_lua_host_rebuilds(const sl_lua_host *h)
{
    return h ? h->rebuilds : 0;
}

/* ---- time limit ------------------------------------------------------------ */

void sl_lua_check_deadline(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    if (!h->killed && sl_lua_mono_ns() < h->deadline_ns)
        return;
    if (!h->killed) {
        h->killed = true;
        snprintf(h->kill_reason, sizeof h->kill_reason, "timeout after %llu ms",
                 (unsigned long long)h->timeout_ms);
    }
    luaL_error(L, "%s", h->kill_reason);
}

static void on_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    sl_lua_check_deadline(L);
}

static void begin_call(sl_lua_host *h, uint64_t timeout_ms)
{
    h->killed = false;
    h->kill_reason[0] = '\0';
    h->call_transient = false;
    h->retry_requested = false;
    h->deadline_ns = sl_lua_mono_ns() + (int64_t)timeout_ms * 1000000;
}

/* Marks the running call as out of memory: the error cannot be caught. */
static void kill_oom(sl_lua_host *h)
{
    if (!h->killed) {
        h->killed = true;
        snprintf(h->kill_reason, sizeof h->kill_reason, "memory limit of %zu KiB exceeded",
                 h->limit >> 10);
    }
}

/* ---- the sandbox's replacements of base functions -------------------------- */

/* pcall/xpcall that do not catch a timeout or the memory cap: once a call is
 * killed, every protected call re-raises, so a script cannot loop on pcall. */
static int finish_pcall(lua_State *L, int status, lua_KContext extra)
{
    sl_lua_host *h = sl_lua_host_of(L);
    if (status == LUA_ERRMEM)
        kill_oom(h);
    if (h->killed) {
        lua_pushstring(L, h->kill_reason);
        return lua_error(L);
    }
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int sb_pcall(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_pushboolean(L, 1);
    lua_insert(L, 1);
    int status = lua_pcallk(L, lua_gettop(L) - 2, LUA_MULTRET, 0, 0, finish_pcall);
    return finish_pcall(L, status, 0);
}

/* xpcall's message handler, wrapping the script's (upvalue 1). A timeout
 * is raised from inside the instruction hook, where hooks are off: a
 * script's handler run then could loop for ever. So once the call is killed
 * the script's handler is skipped and the kill reason passes through; other
 * errors reach it as usual (with the hook on). */
static int sb_xpcall_handler(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    if (h->killed) {
        lua_pushstring(L, h->kill_reason);
        return 1;
    }
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    return 1;
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, sb_xpcall_handler, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_pcall);
    return finish_pcall(L, status, 2);
}

/* coroutine.resume, re-raising a timeout that killed the coroutine. */
static int sb_resume(lua_State *L)
{
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);
    sl_lua_host *h = sl_lua_host_of(L);
    if (h->killed) {
        lua_pushstring(L, h->kill_reason);
        return lua_error(L);
    }
    return lua_gettop(L);
}

/* load(chunk [, name [, mode [, env]]]): text only, whatever mode says. */
/* The reader sb_load gives the parser for a text chunk: the text
 * (upvalue 1) in 4 KiB pieces from position upvalue 2, checking the running
 * call's deadline before each piece (the parser is C: the instruction hook
 * does not fire while it reads a large text). */
static int chunk_reader(lua_State *L)
{
    size_t len;
    const char *text = lua_tolstring(L, lua_upvalueindex(1), &len);
    size_t pos = (size_t)lua_tointeger(L, lua_upvalueindex(2));
    sl_lua_check_deadline(L);
    if (pos >= len)
        return 0;
    size_t n = len - pos < 4096 ? len - pos : 4096;
    lua_pushinteger(L, (lua_Integer)(pos + n));
    lua_replace(L, lua_upvalueindex(2));
    lua_pushlstring(L, text + pos, n);
    return 1;
}

static int sb_load(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checkany(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_pushvalue(L, 1);
        lua_pushinteger(L, 0);
        lua_pushcclosure(L, chunk_reader, 2);
    } else {
        lua_pushvalue(L, 1);
    }
    if (n >= 2 && !lua_isnil(L, 2))
        lua_pushvalue(L, 2);
    else if (lua_type(L, 1) == LUA_TSTRING)
        lua_pushvalue(L, 1); /* load's default name for a text chunk: the text */
    else
        lua_pushnil(L);
    lua_pushliteral(L, "t");
    if (n >= 4)
        lua_pushvalue(L, 4);
    else
        sl_lua_env_push(L); /* never the real globals: they are read-only */
    int nargs = 4;
    lua_call(L, nargs, LUA_MULTRET);
    return lua_gettop(L) - n;
}

/* setmetatable without __gc: finalizers run with hooks off, so a looping
 * one could not be stopped. */
static int sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        if (lua_rawget(L, 2) != LUA_TNIL)
            return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the sandbox");
        lua_pop(L, 1);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int sb_collectgarbage(lua_State *L)
{
    const char *opt = luaL_optstring(L, 1, "collect");
    if (strcmp(opt, "count") != 0)
        return luaL_error(L, "collectgarbage: only \"count\" is available in the sandbox");
    int kb = lua_gc(L, LUA_GCCOUNT);
    int b = lua_gc(L, LUA_GCCOUNTB);
    lua_pushnumber(L, (lua_Number)kb + (lua_Number)b / 1024);
    return 1;
}

/* Raises unless name (len bytes) is 1 to 128 of letters, digits, '_' and
 * '.', without "..". */
static void check_module_name(lua_State *L, const char *name, size_t len)
{
    if (len == 0 || len > 128 || strstr(name, ".."))
        luaL_error(L, "require: bad module name '%s'", name);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.'))
            luaL_error(L, "require: bad module name '%s'", name);
    }
}

/* Pushes the path of module name: LIB_DIR/NAME.lua, dots become slashes. */
static const char *push_module_path(lua_State *L, const char *lib_dir, const char *name, size_t len)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, lib_dir);
    luaL_addchar(&b, '/');
    for (size_t i = 0; i < len; i++)
        luaL_addchar(&b, name[i] == '.' ? '/' : name[i]);
    luaL_addstring(&b, ".lua");
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

/* Pushes the whole text of the file at path (module name); raises when it
 * cannot be opened. */
static const char *push_module_text(lua_State *L, const char *path, const char *name, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        luaL_error(L, "require: module '%s' not found (no %s)", name, path);
    luaL_Buffer src;
    luaL_buffinit(L, &src);
    char chunk[4096];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0)
        luaL_addlstring(&src, chunk, got);
    fclose(f);
    luaL_pushresult(&src);
    return lua_tolstring(L, -1, len);
}

/* require(NAME): NAME.lua (dots become slashes) from the library directory,
 * as text, run once in the sandbox; its result is cached. No C modules. */
static int sb_require(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    check_module_name(L, name, len);
    lua_settop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, "sluice.loaded"); /* 2 */
    if (lua_getfield(L, 2, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (!h->lib_dir)
        return luaL_error(L, "require: module '%s' not found (no library directory)", name);
    const char *path = push_module_path(L, h->lib_dir, name, len); /* 3 */
    size_t slen;
    const char *s = push_module_text(L, path, name, &slen); /* 4 */
    lua_pushfstring(L, "@%s", path);                        /* 5 */
    if (luaL_loadbufferx(L, s, slen, lua_tostring(L, 5), "t") != LUA_OK)
        return lua_error(L);
    sl_lua_env_bind(L, -1);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
    }
    lua_pushvalue(L, -1);
    lua_setfield(L, 2, name);
    return 1;
}

/* Message handler: the error text plus a traceback. */
static int msgh(lua_State *L)
{
    const char *m = lua_tostring(L, 1);
    if (!m) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            m = lua_tostring(L, -1);
        else
            m = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, m, 1);
    return 1;
}

/* Keeps only fields listed in keep (NULL-terminated) in the table at idx. */
static void copy_fields(lua_State *L, int from, const char *const *keep)
{
    lua_createtable(L, 0, 4);
    for (size_t i = 0; keep[i]; i++) {
        lua_getfield(L, from, keep[i]);
        lua_setfield(L, -2, keep[i]);
    }
}

static void wrap_global(lua_State *L, const char *name, lua_CFunction fn)
{
    lua_getglobal(L, name);
    lua_pushcclosure(L, fn, 1);
    lua_setglobal(L, name);
}

/* A library C function (its pointer in the userdata of upvalue 1) called
 * after a check of the running call's deadline: one call of string.upper,
 * table.concat or utf8.len runs in C over up to the memory cap's bytes,
 * and a loop of them between two instruction hooks (HOOK_EVERY) could run
 * for seconds. The function runs in this frame, so its errors name it. */
static int budget_call(lua_State *L)
{
    lua_CFunction f;
    memcpy(&f, lua_touserdata(L, lua_upvalueindex(1)), sizeof f);
    sl_lua_check_deadline(L);
    return f(L);
}

/* Wraps every C function of the library table at the top in budget_call. */
static void budget_lib(lua_State *L)
{
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
        lua_CFunction f = lua_tocfunction(L, -1);
        if (f && lua_type(L, -2) == LUA_TSTRING) {
            memcpy(lua_newuserdatauv(L, sizeof f, 0), &f, sizeof f);
            lua_pushcclosure(L, budget_call, 1);
            lua_pushvalue(L, -3);
            lua_insert(L, -2);
            lua_rawset(L, -5); /* replacing an existing key's value during lua_next is allowed */
        }
        lua_pop(L, 1);
    }
}

/* table.move as Lua 5.4's, but checking the running call's deadline every
 * 4096 elements: `table.move({}, 1, 1e12, 1, {})` is one C loop that the
 * instruction hook never interrupts and that allocates nothing. Tables
 * only (no __index/__newindex-only proxies). */
static int budgeted_move(lua_State *L)
{
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1; /* destination table */
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        bool forward = t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ));
        for (lua_Integer k = 0; k < n; k++) {
            lua_Integer i = forward ? k : n - 1 - k;
            if ((k & 4095) == 4095)
                sl_lua_check_deadline(L);
            lua_geti(L, 1, f + i);
            lua_seti(L, tt, t + i);
        }
    }
    lua_pushvalue(L, tt); /* the destination table */
    return 1;
}

/* Opens the safe standard libraries; os keeps time, clock and date only
 * (the full library is not kept anywhere). */
static void open_safe_libs(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *l = libs; l->func; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
    static const char *const os_keep[] = {"time", "clock", "date", NULL};
    copy_fields(L, lua_gettop(L), os_keep);
    lua_setglobal(L, LUA_OSLIBNAME);
    lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushnil(L);
    lua_setfield(L, -2, LUA_OSLIBNAME);
    lua_pop(L, 1);
}

/* Removes what reaches files or bytecode, bounds the pattern functions and
 * locks strings' shared metatable (readable, not replaceable). */
static void trim_base(lua_State *L)
{
    static const char *const removed[] = {"dofile", "loadfile", "require", "warn", NULL};
    for (size_t i = 0; removed[i]; i++) {
        lua_pushnil(L);
        lua_setglobal(L, removed[i]);
    }
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    sl_lua_open_patterns(L);
    lua_pop(L, 1);
    lua_getglobal(L, LUA_TABLIBNAME);
    lua_pushcfunction(L, budgeted_move);
    lua_setfield(L, -2, "move");
    lua_pop(L, 1);
    static const char *const budgeted[] = {LUA_STRLIBNAME, LUA_TABLIBNAME, LUA_UTF8LIBNAME, NULL};
    for (size_t i = 0; budgeted[i]; i++) {
        lua_getglobal(L, budgeted[i]);
        budget_lib(L);
        lua_pop(L, 1);
    }
    /* strings' shared metatable: readable, not replaceable */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushliteral(L, "string");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
}

/* Replaces the base functions a script could use to escape its limits
 * (pcall, xpcall, collectgarbage, load, setmetatable, coroutine.resume,
 * require) with the sandbox's versions. */
static void install_wrappers(lua_State *L)
{
    lua_pushcfunction(L, sb_pcall);
    lua_setglobal(L, "pcall");
    lua_pushcfunction(L, sb_xpcall);
    lua_setglobal(L, "xpcall");
    lua_pushcfunction(L, sb_collectgarbage);
    lua_setglobal(L, "collectgarbage");
    wrap_global(L, "load", sb_load);
    wrap_global(L, "setmetatable", sb_setmetatable);
    lua_getglobal(L, LUA_COLIBNAME);
    lua_getfield(L, -1, "resume");
    lua_pushcclosure(L, sb_resume, 1);
    lua_setfield(L, -2, "resume");
    lua_pop(L, 1);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, "sluice.loaded");
    lua_pushcfunction(L, sb_require);
    lua_setglobal(L, "require");
}

/* Builds the sandbox; runs in protected mode (lua_pcall of this function). */
static int setup_state(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    open_safe_libs(L);
    trim_base(L);
    install_wrappers(L);
    sl_lua_open_json(L);
    sl_lua_open_xml(L);
    sl_lua_open_msg(L);
    sl_lua_open_log(L);
    sl_lua_open_crypto(L);
    lua_getglobal(L, "log");
    lua_getfield(L, -1, "info");
    lua_setglobal(L, "print");
    lua_pop(L, 1);
    sl_lua_env_setup(L);
    sl_lua_push_ctx(L);
    sl_lua_env_protect(L); /* ctx's fields are shared by every call: read-only */
    h->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    /* generational: per-message garbage (decoded tables) dies young */
    lua_gc(L, LUA_GCGEN, 0, 0);
    return 0;
}

/* Copies the Lua error at the top into err as one line: newlines in the
 * traceback become "; ", tabs are dropped. */
static void set_lua_error(sl_lua_host *h, lua_State *L, int status, const char *what, sl_error *err)
{
    const char *m = lua_tostring(L, -1);
    if (status == LUA_ERRMEM)
        kill_oom(h);
    if (h->killed && (!m || status == LUA_ERRMEM))
        m = h->kill_reason;
    if (!m)
        m = "(no error message)";
    char line[sizeof err->msg];
    size_t o = 0;
    for (const char *p = m; *p && o + 3 < sizeof line; p++) {
        if (*p == '\n') {
            line[o++] = ';';
            line[o++] = ' ';
        } else if (*p != '\t') {
            line[o++] = *p;
        }
    }
    line[o] = '\0';
    sl_error_set(err, status == LUA_ERRMEM ? SL_ENOMEM : SL_EINVAL, "%s%s", what, line);
}

/* ---- state lifecycle -------------------------------------------------------- */

static int open_state(sl_lua_host *h, sl_error *err)
{
    h->used = 0;
    lua_State *L = lua_newstate(sl_lua_host_alloc, h);
    if (!L)
        return sl_error_set(err, SL_ENOMEM, "lua: out of memory creating a state");
    *(sl_lua_host **)lua_getextraspace(L) = h;
    h->L = L;
    h->fn_ref = h->ctx_ref = LUA_NOREF;
    lua_sethook(L, on_hook, LUA_MASKCOUNT, HOOK_EVERY);
    lua_pushcfunction(L, setup_state);
    begin_call(h, INIT_TIMEOUT_MS);
    int status = lua_pcall(L, 0, 0, 0);
    if (status != LUA_OK) {
        set_lua_error(h, L, status, "lua: cannot set up the sandbox: ", err);
        lua_close(L);
        h->L = NULL;
        return -1;
    }
    return 0;
}

/* Loads h->src, runs it (a script) and takes fn_name, or keeps the compiled
 * expression; in protected mode. */
static int define_p(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    lua_settop(L, 0);
    lua_pushcfunction(L, msgh); /* 1 */
    if (luaL_loadbufferx(L, h->src, h->src_len, h->chunkname, "t") != LUA_OK)
        return lua_error(L);
    sl_lua_env_bind(L, -1);
    if (h->fn_name) {
        if (lua_pcall(L, 0, 0, 1) != LUA_OK)
            return lua_error(L);
        sl_lua_env_freeze(L);
        if (lua_getglobal(L, h->fn_name) != LUA_TFUNCTION)
            return luaL_error(L, "%s: the script defines no global function '%s'", h->chunkname + 1,
                              h->fn_name);
    }
    h->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

static int define(sl_lua_host *h, sl_error *err)
{
    lua_State *L = h->L;
    uint64_t t = h->timeout_ms > INIT_TIMEOUT_MS ? h->timeout_ms : INIT_TIMEOUT_MS;
    begin_call(h, t);
    lua_pushcfunction(L, define_p);
    int status = lua_pcall(L, 0, 0, 0);
    if (status != LUA_OK) {
        set_lua_error(h, L, status, "lua: ", err);
        lua_settop(L, 0);
        return -1;
    }
    lua_settop(L, 0);
    return 0;
}

/* Replaces an unusable state with a fresh one running the same source. */
static int rebuild(sl_lua_host *h, sl_error *err)
{
    if (h->L)
        lua_close(h->L);
    h->L = NULL;
    h->rebuilds++;
    if (open_state(h, err) < 0)
        return -1;
    if (h->src && define(h, err) < 0) {
        lua_close(h->L);
        h->L = NULL;
        return -1;
    }
    return 0;
}

/* After a failed call: collect; rebuild when the state is still over 3/4 of
 * its cap (a script that keeps what it allocated would fail every message)
 * or when the error handler itself failed. */
static void recover(sl_lua_host *h, int status)
{
    lua_settop(h->L, 0);
    lua_gc(h->L, LUA_GCCOLLECT);
    if (status == LUA_ERRERR || h->used > h->limit / 4 * 3) {
        sl_error e;
        if (rebuild(h, &e) < 0)
            sl_logf(SL_LVL_ERROR, h->log_comp, "cannot rebuild the Lua state: %s", e.msg);
    }
}

static int ensure_state(sl_lua_host *h, sl_error *err)
{
    if (h->L)
        return 0;
    return rebuild(h, err);
}

sl_lua_host *sl_lua_host_new(const sl_lua_opts *o, sl_error *err)
{
    sl_lua_host *h = calloc(1, sizeof *h);
    if (!h) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    const char *route = o->route ? o->route : "";
    h->route = strdup(route);
    h->log_comp = malloc(strlen(route) + 5);
    h->lib_dir = o->lib_dir ? strdup(o->lib_dir) : NULL;
    if (!h->route || !h->log_comp || (o->lib_dir && !h->lib_dir)) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        sl_lua_host_free(h);
        return NULL;
    }
    sprintf(h->log_comp, "lua:%s", route);
    h->timeout_ms = o->timeout_ms ? o->timeout_ms : SL_LUA_DEFAULT_TIMEOUT_MS;
    h->secrets = o->secrets;
    h->n_secrets = o->n_secrets;
    uint64_t mem = o->memory ? o->memory : SL_LUA_DEFAULT_MEMORY;
    h->limit = (size_t)(mem < SL_LUA_MIN_MEMORY ? SL_LUA_MIN_MEMORY : mem);
    if (open_state(h, err) < 0) {
        sl_lua_host_free(h);
        return NULL;
    }
    return h;
}

void sl_lua_host_free(sl_lua_host *h)
{
    if (!h)
        return;
    if (h->L)
        lua_close(h->L);
    free(h->route);
    free(h->log_comp);
    free(h->lib_dir);
    free(h->src);
    free(h->chunkname);
    free(h->fn_name);
    free(h->buf);
    free(h->keys);
    free(h->shape_keys);
    free(h->pred);
    sl_lua_pool_drain(&h->pool);
    free(h);
}

void sl_lua_host_set_services(sl_lua_host *h, const sl_step_services *svc)
{
    h->services = svc;
}

static int set_source(sl_lua_host *h, char *src, size_t len, const char *chunkname,
                      const char *fn_name, sl_error *err)
{
    free(h->src);
    free(h->chunkname);
    free(h->fn_name);
    h->src = src;
    h->src_len = len;
    h->chunkname = malloc(strlen(chunkname) + 2);
    h->fn_name = fn_name ? strdup(fn_name) : NULL;
    if (!h->chunkname || (fn_name && !h->fn_name))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    sprintf(h->chunkname, "@%s", chunkname);
    return 0;
}

int sl_lua_host_load_script(sl_lua_host *h, const char *path, const char *chunkname,
                            const char *fn_name, sl_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return sl_error_set(err, SL_EIO, "lua: cannot open %s: %s", path, strerror(errno));
    char *src = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            size_t ncap = cap ? cap * 2 : 8192;
            char *n = realloc(src, ncap);
            if (!n) {
                free(src);
                fclose(f);
                return sl_error_set(err, SL_ENOMEM, "out of memory");
            }
            src = n;
            cap = ncap;
        }
        size_t got = fread(src + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0 || len > MAX_SCRIPT_BYTES)
            break;
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (bad || len > MAX_SCRIPT_BYTES) {
        free(src);
        return sl_error_set(err, SL_EIO, "lua: cannot read %s: %s", path,
                            bad ? "read error" : "larger than 4 MiB");
    }
    src[len] = '\0';
    if (set_source(h, src, len, chunkname, fn_name, err) < 0)
        return -1;
    if (ensure_state(h, err) < 0)
        return -1;
    return define(h, err);
}

int sl_lua_host_load_expr(sl_lua_host *h, const char *expr, const char *chunkname, sl_error *err)
{
    static const char pre[] = "local msg = ...; return (";
    static const char post[] = "\n)";
    size_t n = strlen(expr);
    char *src = malloc(sizeof pre + n + sizeof post);
    if (!src)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    size_t len = (size_t)sprintf(src, "%s%s%s", pre, expr, post);
    if (set_source(h, src, len, chunkname, NULL, err) < 0)
        return -1;
    if (ensure_state(h, err) < 0)
        return -1;
    return define(h, err);
}

/* ---- calls ------------------------------------------------------------------ */

typedef struct run_args {
    sl_lua_host *h;
    sl_msg *msg;
    int call_status; /* of the script's function */
    int rc;          /* sl_step_rc, or the expression's truthiness */
    sl_error *err;
    bool split_ok; /* the caller takes extra messages */
    sl_msg **more; /* split: the messages after the first, owned */
    size_t n_more;
} run_args;

/* Moves the body, key and headers of src into dst (dst keeps its id,
 * timestamp, attempts and place in the log); src gets dst's old ones. */
static void take_content(sl_msg *dst, sl_msg *src)
{
    sl_msg tmp = *dst;
    dst->key = src->key;
    dst->key_len = src->key_len;
    dst->headers = src->headers;
    dst->n_headers = src->n_headers;
    dst->cap_headers = src->cap_headers;
    dst->body = src->body;
    dst->body_len = src->body_len;
    src->key = tmp.key;
    src->key_len = tmp.key_len;
    src->headers = tmp.headers;
    src->n_headers = tmp.n_headers;
    src->cap_headers = tmp.cap_headers;
    src->body = tmp.body;
    src->body_len = tmp.body_len;
    json_decref(dst->json);
    dst->json = NULL;
    json_decref(src->json);
    src->json = NULL;
}

/* Applies one returned value (at idx) to the step's message. */
static int apply_result(lua_State *L, int idx, run_args *a)
{
    void *ud;
    sl_msg *m = sl_lua_to_msg(L, idx, &ud);
    if (!m) {
        if (ud)
            sl_error_set(a->err, SL_EINVAL,
                         "lua: the step returned a message from an earlier call");
        else
            sl_error_set(a->err, SL_EINVAL,
                         "lua: the step returned a %s; expected a message, nil or a list of "
                         "messages",
                         luaL_typename(L, idx));
        return SL_STEP_FAIL;
    }
    if (m != a->msg)
        take_content(a->msg, m);
    return SL_STEP_OK;
}

/* A list of n > 1 messages (at idx): the first replaces the step's message,
 * the others are copied into a->more. A copy that still carries the
 * original's id (msg:clone()) gets a fresh one: a split makes new messages,
 * and receivers dedupe by id. */
static int collect_split(lua_State *L, int idx, lua_Integer n, run_args *a)
{
    a->more = calloc((size_t)(n - 1), sizeof *a->more);
    if (!a->more) {
        sl_error_set(a->err, SL_ENOMEM, "lua: out of memory splitting into %lld messages",
                     (long long)n);
        return SL_STEP_FAIL;
    }
    char original[SL_ID_LEN + 1];
    memcpy(original, a->msg->id, sizeof original);
    for (lua_Integer i = 2; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        void *ud;
        sl_msg *m = sl_lua_to_msg(L, -1, &ud);
        if (!m) {
            sl_error_set(a->err, SL_EINVAL,
                         "lua: element %lld of the returned list is a %s, "
                         "not a message of this call",
                         (long long)i, luaL_typename(L, -1));
            return SL_STEP_FAIL;
        }
        sl_msg *copy = sl_msg_clone(m);
        if (!copy) {
            sl_error_set(a->err, SL_ENOMEM, "lua: out of memory splitting");
            return SL_STEP_FAIL;
        }
        if (strcmp(copy->id, original) == 0)
            sl_uuid7(copy->id);
        a->more[a->n_more++] = copy;
        lua_pop(L, 1);
    }
    lua_rawgeti(L, idx, 1);
    return apply_result(L, lua_gettop(L), a);
}

/* Runs the function and applies its result (in protected mode). */
static int run_p(lua_State *L)
{
    run_args *a = lua_touserdata(L, 1);
    sl_lua_host *h = a->h;
    lua_settop(L, 0);
    lua_pushcfunction(L, msgh);        /* 1 */
    sl_lua_push_msg(L, a->msg, false); /* 2: valid until h->gen moves on */
    lua_rawgeti(L, LUA_REGISTRYINDEX, h->fn_ref);
    lua_pushvalue(L, 2);
    int nargs = 1;
    if (h->fn_name) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, h->ctx_ref);
        nargs = 2;
    }
    a->call_status = lua_pcall(L, nargs, 1, 1);
    if (a->call_status != LUA_OK) {
        set_lua_error(h, L, a->call_status, "", a->err);
        return 0;
    }
    if (h->killed) { /* a killed call can only end in an error; be sure */
        a->call_status = LUA_ERRRUN;
        sl_error_set(a->err, SL_EINVAL, "%s", h->kill_reason);
        return 0;
    }
    if (!h->fn_name) {
        a->rc = lua_toboolean(L, -1);
        return 0;
    }
    int t = lua_type(L, -1);
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1))) {
        a->rc = SL_STEP_DROP;
    } else if (t == LUA_TTABLE && !sl_lua_to_msg(L, -1, NULL)) {
        lua_Integer n = luaL_len(L, -1);
        if (n == 0) {
            a->rc = SL_STEP_DROP;
        } else if (n == 1) {
            lua_rawgeti(L, -1, 1);
            a->rc = apply_result(L, lua_gettop(L), a);
        } else if (!a->split_ok) {
            sl_error_set(a->err, SL_EINVAL,
                         "lua: the step returned %lld messages where only one can go on",
                         (long long)n);
            a->rc = SL_STEP_FAIL;
        } else {
            a->rc = collect_split(L, lua_gettop(L), n, a);
        }
    } else {
        a->rc = apply_result(L, lua_gettop(L), a);
    }
    return 0;
}

/* Runs the loaded function over msg; fills a. Returns 0, or -1 with err. */
static int run(sl_lua_host *h, run_args *a, sl_error *err)
{
    if (ensure_state(h, err) < 0)
        return -1;
    lua_State *L = h->L;
    a->h = h;
    a->err = err;
    a->call_status = LUA_OK;
    begin_call(h, h->timeout_ms);
    lua_settop(L, 0);
    lua_pushcfunction(L, run_p);
    lua_pushlightuserdata(L, a);
    int status = lua_pcall(L, 1, 0, 0);
    h->gen++; /* the message lent to this call expires */
    sl_lua_env_reset(L);
    if (status == LUA_OK && a->call_status == LUA_OK) {
        lua_settop(L, 0);
        return 0;
    }
    if (status == LUA_OK)
        status = a->call_status; /* err was filled by run_p */
    else
        set_lua_error(h, L, status, "", err);
    recover(h, status);
    return -1;
}

static void free_more(run_args *a)
{
    for (size_t i = 0; i < a->n_more; i++)
        sl_msg_free(a->more[i]);
    free(a->more);
    a->more = NULL;
    a->n_more = 0;
}

/* What a run that ended in an error means for the message: a retry when
 * the script asked for one or gave up after a transient ctx.http failure
 * (a timeout or the memory cap is never retried). */
static int failed_rc(const sl_lua_host *h)
{
    if (!h->killed && (h->retry_requested || h->call_transient))
        return SL_STEP_RETRY;
    return SL_STEP_FAIL;
}

int sl_lua_host_run_step(sl_lua_host *h, sl_msg *msg, sl_error *err)
{
    run_args a = {.msg = msg, .rc = SL_STEP_OK};
    if (run(h, &a, err) < 0)
        return failed_rc(h);
    return a.rc;
}

int sl_lua_host_run_step_split(sl_lua_host *h, sl_msg *msg, sl_msg ***more, size_t *n_more,
                               sl_error *err)
{
    run_args a = {.msg = msg, .rc = SL_STEP_OK, .split_ok = true};
    *more = NULL;
    *n_more = 0;
    if (run(h, &a, err) < 0) {
        free_more(&a);
        return failed_rc(h);
    }
    if (a.rc != SL_STEP_OK) {
        free_more(&a);
        return a.rc == SL_STEP_DROP ? SL_STEP_DROP : SL_STEP_FAIL;
    }
    *more = a.more;
    *n_more = a.n_more;
    return SL_STEP_OK;
}

int sl_lua_host_run_expr(sl_lua_host *h, sl_msg *msg, bool *result, sl_error *err)
{
    run_args a = {.msg = msg};
    *result = false;
    if (run(h, &a, err) < 0)
        return -1;
    *result = a.rc != 0;
    return 0;
}
