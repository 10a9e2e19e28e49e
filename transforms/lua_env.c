/* Per-message isolation of a Lua state: what one message's script changes in
 * its globals or in the libraries must not be seen by the next message on the
 * same worker. Library tables (string, table, math, ...) are reached through
 * read-only proxies; scripts and expressions run with an environment table
 * that is empty at the start of every call and falls back, read-only, to the
 * real globals (base functions, libraries, and what the script's top level
 * defined when it was loaded). rawset refuses the protected tables. */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <lauxlib.h>

#define PROTECTED_KEY "sluice.protected" /* registry: weak set of read-only tables */

/* The libraries that become read-only proxies. */
static const char *const LIBS[] = {"string", "table",   "math", "utf8", "coroutine", "os",
                                   "json",   "message", "xml",  "log",  "crypto",    NULL};

static int refuse_write(lua_State *L)
{
    return luaL_error(L, "attempt to change a read-only table (libraries are shared by every "
                         "message; use a local copy or ctx.cache)");
}

/* __pairs of a proxy: iterates the real table (upvalue 1). */
static int proxy_pairs(lua_State *L)
{
    lua_getglobal(L, "next");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushnil(L);
    return 3;
}

/* Marks the table at idx as protected (rawset refuses it). */
static void protect(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_getfield(L, LUA_REGISTRYINDEX, PROTECTED_KEY);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

/* Replaces the table at idx by a read-only proxy of it (left at the top). */
static void push_proxy(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    lua_newtable(L);          /* the proxy */
    lua_createtable(L, 0, 4); /* its metatable */
    lua_pushvalue(L, idx);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, refuse_write);
    lua_setfield(L, -2, "__newindex");
    lua_pushvalue(L, idx);
    lua_pushcclosure(L, proxy_pairs, 1);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    protect(L, -1);
}

/* rawset(t, k, v) that refuses the protected tables and gives a new key of
 * a JSON object its place (upvalue 1: the real rawset). */
static int sb_rawset(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, LUA_REGISTRYINDEX, PROTECTED_KEY);
    lua_pushvalue(L, 1);
    int is_protected = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    if (is_protected)
        return refuse_write(L);
    if (lua_gettop(L) == 3 && sl_lua_json_rawset(L)) /* a new key of a JSON object */
        return 1;
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* Makes the environment table: empty, reads falling back to the globals,
 * metatable locked; _G names it. */
static void make_env(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 2);
    lua_pushglobaltable(L);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -1);
    lua_setglobal(L, "_G");
    sl_lua_host_of(L)->env_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

void sl_lua_env_setup(lua_State *L)
{
    lua_newtable(L); /* the protected set, weak keys */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, PROTECTED_KEY);
    for (size_t i = 0; LIBS[i]; i++) {
        if (lua_getglobal(L, LIBS[i]) == LUA_TTABLE) {
            push_proxy(L, -1);
            lua_setglobal(L, LIBS[i]);
        }
        lua_pop(L, 1);
    }
    lua_getglobal(L, "rawset");
    lua_pushcclosure(L, sb_rawset, 1);
    lua_setglobal(L, "rawset");
    make_env(L);
}

void sl_lua_env_protect(lua_State *L)
{
    push_proxy(L, -1);
    lua_remove(L, -2);
}

void sl_lua_env_push(lua_State *L)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, sl_lua_host_of(L)->env_ref);
}

void sl_lua_env_bind(lua_State *L, int fn_idx)
{
    fn_idx = lua_absindex(L, fn_idx);
    sl_lua_env_push(L);
    if (!lua_setupvalue(L, fn_idx, 1))
        lua_pop(L, 1);
}

void sl_lua_env_freeze(lua_State *L)
{
    sl_lua_env_push(L);
    lua_pushglobaltable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4); /* globals[k] = v */
    }
    lua_pop(L, 1);
    sl_lua_env_reset(L);
    lua_pop(L, 1);
}

void sl_lua_env_reset(lua_State *L)
{
    sl_lua_env_push(L);
    lua_pushnil(L);
    while (lua_next(L, -2)) { /* usually none: the call set no global */
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, -4); /* clearing a field while traversing is allowed */
    }
    lua_pop(L, 1);
}
