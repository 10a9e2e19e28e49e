/* The ctx argument of Lua steps and the log module: ctx.route, ctx.now(),
 * ctx.secrets (the step's `secrets:`, read-only),
 * ctx.cache (a bounded LRU with TTL, one per step instance, i.e. per route
 * worker: no locks), ctx.http (one call through the step services core
 * hands the step: a connector behind its breaker, or fixtures in `sluice
 * test`) and ctx.retry (ask the route to retry the message). */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "logging.h"

/* ---- log ----------------------------------------------------------------------- */

static int log_at(lua_State *L, sl_level lvl)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, ' ');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    sl_logf(lvl, sl_lua_host_of(L)->log_comp, "%s", lua_tostring(L, -1));
    return 0;
}

static int l_debug(lua_State *L)
{
    return log_at(L, SL_LVL_DEBUG);
}

static int l_info(lua_State *L)
{
    return log_at(L, SL_LVL_INFO);
}

static int l_warn(lua_State *L)
{
    return log_at(L, SL_LVL_WARN);
}

static int l_error(lua_State *L)
{
    return log_at(L, SL_LVL_ERROR);
}

void sl_lua_open_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"debug", l_debug}, {"info", l_info}, {"warn", l_warn}, {"error", l_error}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setglobal(L, "log");
}

/* ---- ctx.cache ------------------------------------------------------------------- */

/* Slots are numbered 1..cap; 0 means none. Keys and values live in Lua
 * tables (user values), so they count against the memory cap. */
#define UV_INDEX 1 /* key -> slot */
#define UV_KEYS 2  /* slot -> key */
#define UV_VALS 3  /* slot -> value */
#define UV_SLOTS 4 /* the slot array, made on the first set */

typedef struct cslot {
    int64_t expires_ms; /* monotonic; 0 = never */
    int prev, next;     /* towards the most / least recently used */
} cslot;

typedef struct lcache {
    int cap, n;
    int head, tail; /* most and least recently used */
    int free_top;   /* slots 1..free_top were never used */
    int free_list;  /* slots given back (linked through next) */
    cslot *slots;   /* index 0 unused */
} lcache;

static int64_t mono_ms(void)
{
    return sl_lua_mono_ns() / 1000000;
}

static lcache *check_cache(lua_State *L)
{
    return luaL_checkudata(L, 1, "sluice.cache");
}

static void check_key(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
        luaL_error(L, "ctx.cache: keys must be strings, numbers or booleans, got %s",
                   luaL_typename(L, idx));
}

static void unlink_slot(lcache *c, int s)
{
    cslot *x = &c->slots[s];
    if (x->prev)
        c->slots[x->prev].next = x->next;
    else
        c->head = x->next;
    if (x->next)
        c->slots[x->next].prev = x->prev;
    else
        c->tail = x->prev;
    x->prev = x->next = 0;
}

static void push_front(lcache *c, int s)
{
    cslot *x = &c->slots[s];
    x->prev = 0;
    x->next = c->head;
    if (c->head)
        c->slots[c->head].prev = s;
    c->head = s;
    if (!c->tail)
        c->tail = s;
}

/* Removes slot s: its key from the index, its key and value. */
static void remove_slot(lua_State *L, lcache *c, int s)
{
    unlink_slot(c, s);
    lua_getiuservalue(L, 1, UV_KEYS);
    lua_getiuservalue(L, 1, UV_INDEX);
    lua_rawgeti(L, -2, s);
    lua_pushnil(L);
    lua_rawset(L, -3); /* index[key] = nil */
    lua_pushnil(L);
    lua_rawseti(L, -3, s);
    lua_pop(L, 2);
    lua_getiuservalue(L, 1, UV_VALS);
    lua_pushnil(L);
    lua_rawseti(L, -2, s);
    lua_pop(L, 1);
    c->slots[s].next = c->free_list;
    c->free_list = s;
    c->n--;
}

/* The slot of the key at idx, or 0. */
static int find_slot(lua_State *L, int idx)
{
    lua_getiuservalue(L, 1, UV_INDEX);
    lua_pushvalue(L, idx);
    lua_rawget(L, -2);
    int s = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    return s;
}

static int c_get(lua_State *L)
{
    lcache *c = check_cache(L);
    check_key(L, 2);
    int s = c->slots ? find_slot(L, 2) : 0;
    if (!s) {
        lua_pushnil(L);
        return 1;
    }
    if (c->slots[s].expires_ms && c->slots[s].expires_ms <= mono_ms()) {
        remove_slot(L, c, s);
        lua_pushnil(L);
        return 1;
    }
    unlink_slot(c, s);
    push_front(c, s);
    lua_getiuservalue(L, 1, UV_VALS);
    lua_rawgeti(L, -1, s);
    return 1;
}

static int c_delete(lua_State *L)
{
    lcache *c = check_cache(L);
    check_key(L, 2);
    int s = c->slots ? find_slot(L, 2) : 0;
    if (s)
        remove_slot(L, c, s);
    return 0;
}

/* cache:set(key, value [, ttl_ms]): a nil value deletes; no ttl = no expiry
 * (the entry still goes when it is the least recently used and room is
 * needed). */
static int c_set(lua_State *L)
{
    lcache *c = check_cache(L);
    check_key(L, 2);
    if (lua_isnoneornil(L, 3))
        return c_delete(L);
    lua_Integer ttl = luaL_optinteger(L, 4, 0);
    if (ttl < 0)
        return luaL_error(L, "ctx.cache:set: ttl_ms must not be negative");
    if (!c->slots) {
        c->slots = lua_newuserdatauv(L, (size_t)(c->cap + 1) * sizeof *c->slots, 0);
        memset(c->slots, 0, (size_t)(c->cap + 1) * sizeof *c->slots);
        lua_setiuservalue(L, 1, UV_SLOTS);
    }
    int s = find_slot(L, 2);
    if (s) {
        unlink_slot(c, s);
    } else {
        if (c->n == c->cap)
            remove_slot(L, c, c->tail);
        if (c->free_list) {
            s = c->free_list;
            c->free_list = c->slots[s].next;
        } else {
            s = ++c->free_top;
        }
        c->n++;
        lua_getiuservalue(L, 1, UV_INDEX);
        lua_pushvalue(L, 2);
        lua_pushinteger(L, s);
        lua_rawset(L, -3);
        lua_getiuservalue(L, 1, UV_KEYS);
        lua_pushvalue(L, 2);
        lua_rawseti(L, -2, s);
        lua_pop(L, 2);
    }
    lua_getiuservalue(L, 1, UV_VALS);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, s);
    lua_pop(L, 1);
    c->slots[s].expires_ms = ttl ? mono_ms() + ttl : 0;
    push_front(c, s);
    return 0;
}

static int c_len(lua_State *L)
{
    lua_pushinteger(L, check_cache(L)->n);
    return 1;
}

static void push_cache(lua_State *L, int cap)
{
    lcache *c = lua_newuserdatauv(L, sizeof *c, 4);
    memset(c, 0, sizeof *c);
    c->cap = cap;
    for (int i = UV_INDEX; i <= UV_VALS; i++) {
        lua_newtable(L);
        lua_setiuservalue(L, -2, i);
    }
    if (luaL_newmetatable(L, "sluice.cache")) {
        static const luaL_Reg methods[] = {
            {"get", c_get}, {"set", c_set}, {"delete", c_delete}, {"size", c_len}, {NULL, NULL}};
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, c_len);
        lua_setfield(L, -2, "__len");
        lua_pushliteral(L, "sluice.cache");
        lua_setfield(L, -2, "__metatable");
    }
    lua_setmetatable(L, -2);
}

/* ---- ctx.http -------------------------------------------------------------------- */

static int push_response(lua_State *L)
{
    const sl_call_resp *r = lua_touserdata(L, 1);
    lua_createtable(L, 0, 5);
    lua_pushboolean(L, r->result == SL_OK);
    lua_setfield(L, -2, "ok");
    lua_pushinteger(L, r->status);
    lua_setfield(L, -2, "status");
    lua_createtable(L, 0, (int)r->n_headers);
    for (size_t i = 0; i < r->n_headers; i++) {
        lua_pushstring(L, r->headers[i].value);
        lua_setfield(L, -2, r->headers[i].key);
    }
    lua_setfield(L, -2, "headers");
    lua_pushlstring(L, r->body ? r->body : "", r->body ? r->body_len : 0);
    lua_setfield(L, -2, "body");
    if (r->result != SL_OK) {
        lua_pushstring(L, r->error[0] ? r->error : "request failed");
        lua_setfield(L, -2, "error");
    }
    return 1;
}

/* Reads the headers table at index 6 into req, in a userdata pushed at 7
 * (freed by the GC). Raises a Lua error on a name or value that is not a
 * string. */
static void read_headers(lua_State *L, sl_call_req *req)
{
    luaL_checktype(L, 6, LUA_TTABLE);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, 6)) {
        n++;
        lua_pop(L, 1);
    }
    sl_kv *kv = lua_newuserdatauv(L, (n ? n : 1) * sizeof *kv, 0); /* 7 */
    lua_pushnil(L);
    while (lua_next(L, 6) && req->n_headers < n) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "ctx.http: header names and values must be strings");
        kv[req->n_headers].key = (char *)lua_tostring(L, -2);
        kv[req->n_headers].value = (char *)lua_tostring(L, -1);
        req->n_headers++;
        lua_pop(L, 1);
    }
    req->headers = kv;
}

/* Reads the request table at index 2 into req: method (3), path (4), body
 * or json (5), headers (6, 7). The strings stay on the stack. */
static void read_request(lua_State *L, sl_lua_host *h, sl_call_req *req)
{
    lua_getfield(L, 2, "method"); /* 3 */
    req->method = lua_isnil(L, 3) ? "GET" : luaL_checkstring(L, 3);
    lua_getfield(L, 2, "path"); /* 4 */
    req->path = lua_isnil(L, 4) ? "" : luaL_checkstring(L, 4);
    lua_getfield(L, 2, "body"); /* 5 */
    if (lua_isnil(L, 5)) {
        lua_pop(L, 1);
        if (lua_getfield(L, 2, "json") != LUA_TNIL) {
            h->buf_len = 0;
            sl_lua_json_encode(L, 5);
            lua_pushlstring(L, h->buf, h->buf_len);
            lua_replace(L, 5);
        }
    }
    if (!lua_isnil(L, 5))
        req->body = luaL_checklstring(L, 5, &req->body_len);
    lua_getfield(L, 2, "headers"); /* 6 */
    if (!lua_isnil(L, 6))
        read_headers(L, req);
}

/* ctx.http(connector, { method, path, headers, body | json }), or
 * ctx.http{ connector = NAME, method, ... } -> { ok, status, headers, body,
 * error }: one call through the step services to the named connector (for
 * an http_client: its base_url, headers, auth, tls and breaker)
 * (never retried here, never a sleep). A transient failure marks the run:
 * if the script raises from then on, the step asks for a retry. Time spent
 * waiting here does not count against the step's timeout (the connector's
 * timeout bounds it). */
static int l_http(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    if (lua_type(L, 1) == LUA_TTABLE) { /* ctx.http{ connector = NAME, ... } */
        lua_settop(L, 1);
        lua_getfield(L, 1, "connector");
        lua_insert(L, 1);
    }
    const char *conn = luaL_checkstring(L, 1);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    sl_call_req req = {0};
    read_request(L, h, &req);
    sl_call_resp resp;
    memset(&resp, 0, sizeof resp);
    int64_t t0 = sl_lua_mono_ns();
    if (h->services && h->services->call)
        h->services->call(h->services, conn, &req, &resp);
    else
        sl_call_resp_fail(&resp, SL_FAIL, "ctx.http: no services to call connector '%s'", conn);
    h->deadline_ns += sl_lua_mono_ns() - t0;
    if (resp.result == SL_RETRY)
        h->call_transient = true; /* an error raised from now on retries the message */
    lua_pushcfunction(L, push_response);
    lua_pushlightuserdata(L, &resp);
    int st = lua_pcall(L, 1, 1, 0);
    sl_call_resp_free(&resp);
    if (st != LUA_OK)
        return lua_error(L);
    return 1;
}

/* ctx.retry([reason]): ends the call with an error; the step then returns
 * SL_STEP_RETRY and the route retries the message with its backoff. */
static int l_retry(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    h->retry_requested = true;
    const char *why = luaL_optstring(L, 1, "retry requested");
    return luaL_error(L, "retry: %s", why);
}

/* ---- ctx ------------------------------------------------------------------------ */

static int l_now(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)sl_lua_wall_ms());
    return 1;
}

/* ctx.secrets: the step's `secrets:` as a read-only table of strings. */
static void push_secrets(lua_State *L, const sl_lua_host *h)
{
    lua_createtable(L, 0, (int)h->n_secrets);
    for (size_t i = 0; i < h->n_secrets; i++) {
        lua_pushstring(L, h->secrets[i].value);
        lua_setfield(L, -2, h->secrets[i].key);
    }
    sl_lua_env_protect(L);
}

void sl_lua_push_ctx(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    lua_createtable(L, 0, 6);
    push_secrets(L, h);
    lua_setfield(L, -2, "secrets");
    lua_pushstring(L, h->route);
    lua_setfield(L, -2, "route");
    lua_pushcfunction(L, l_now);
    lua_setfield(L, -2, "now");
    lua_pushcfunction(L, l_http);
    lua_setfield(L, -2, "http");
    lua_pushcfunction(L, l_retry);
    lua_setfield(L, -2, "retry");
    push_cache(L, SL_LUA_CACHE_ENTRIES);
    lua_setfield(L, -2, "cache");
}
