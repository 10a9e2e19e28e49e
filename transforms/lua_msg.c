/* The msg API of the Lua host: a userdata over an sl_msg with msg.body,
 * msg.key, msg.id, msg.headers (a proxy with reads, writes and pairs),
 * msg:json() (decoded once per call, cached), msg:set_json(t), msg:clone(),
 * and the `message` module (message.new{...}). */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define UV_JSON 1    /* user value: the decoded body */
#define UV_HEADERS 2 /* user value: the headers proxy */

typedef struct lmsg {
    sl_msg *msg;    /* owned: NULL once freed */
    bool owned;     /* made by the script: freed by the GC */
    uint64_t gen;   /* lent: the call (host gen) it was lent to */
    size_t charged; /* bytes charged to the memory cap */
} lmsg;

typedef struct lhdrs {
    int unused; /* the message userdata is the proxy's user value */
} lhdrs;

static lmsg *check_lmsg(lua_State *L, int idx)
{
    void *ud;
    sl_msg *m = sl_lua_to_msg(L, idx, &ud);
    if (!ud)
        luaL_typeerror(L, idx, "message");
    if (!m)
        luaL_error(L, "this message belongs to an earlier step call and can no longer be used");
    return ud;
}

sl_msg *sl_lua_to_msg(lua_State *L, int idx, void **ud_out)
{
    sl_lua_host *h = sl_lua_host_of(L);
    if (ud_out)
        *ud_out = NULL;
    if (lua_type(L, idx) != LUA_TUSERDATA || !lua_getmetatable(L, idx))
        return NULL;
    const void *mt = lua_topointer(L, -1); /* both metatables are held by the registry */
    lua_pop(L, 1);
    if (mt != h->msg_mt_p && mt != h->lent_mt_p)
        return NULL;
    lmsg *lm = lua_touserdata(L, idx);
    if (ud_out)
        *ud_out = lm;
    if (!lm->owned && lm->gen != h->gen)
        return NULL;
    return lm->msg;
}

/* A lent message gets the metatable without __gc: it has nothing to free,
 * and an object with a finalizer costs the collector a call. */
void sl_lua_push_msg(lua_State *L, sl_msg *msg, bool owned)
{
    sl_lua_host *h = sl_lua_host_of(L);
    lmsg *lm = lua_newuserdatauv(L, sizeof *lm, 2);
    lm->msg = msg;
    lm->owned = owned;
    lm->gen = h->gen;
    lm->charged = 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, owned ? h->msg_mt : h->lent_mt);
    lua_setmetatable(L, -2);
}

static size_t msg_size(const sl_msg *m)
{
    size_t n = sizeof *m + m->body_len + m->key_len + m->cap_headers * sizeof *m->headers;
    for (size_t i = 0; i < m->n_headers; i++)
        n += strlen(m->headers[i].name) + m->headers[i].value_len + 2;
    return n;
}

/* Pushes an empty owned message userdata (so that the GC frees what it
 * gets), to be filled with adopt(). */
static lmsg *push_owned(lua_State *L)
{
    sl_lua_push_msg(L, NULL, true);
    return lua_touserdata(L, -1);
}

/* Gives m to lm, charging it to the cap. On failure frees m and raises. */
static void adopt(lua_State *L, lmsg *lm, sl_msg *m)
{
    if (!m)
        luaL_error(L, "out of memory");
    size_t n = msg_size(m);
    if (sl_lua_charge(L, n) < 0) {
        sl_msg_free(m);
        luaL_error(L, "%s", sl_lua_host_of(L)->kill_reason);
    }
    lm->msg = m;
    lm->charged = n;
}

/* ---- headers ----------------------------------------------------------------- */

static bool token_char(unsigned char c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Sets (value at vidx a string or number) or removes (nil) header name. */
static void header_assign(lua_State *L, sl_msg *m, int nidx, int vidx)
{
    size_t nlen;
    const char *name = luaL_checklstring(L, nidx, &nlen);
    char lower[256];
    if (nlen == 0 || nlen >= sizeof lower)
        luaL_error(L, "a header name must have 1 to 255 characters");
    for (size_t i = 0; i < nlen; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!token_char(c))
            luaL_error(L, "bad character in header name '%s'", name);
        lower[i] = (char)tolower(c);
    }
    lower[nlen] = '\0';
    if (lua_isnil(L, vidx)) {
        for (size_t i = 0; i < m->n_headers; i++) {
            if (strcasecmp(m->headers[i].name, lower) == 0) {
                free(m->headers[i].name);
                free(m->headers[i].value);
                memmove(&m->headers[i], &m->headers[i + 1],
                        (m->n_headers - i - 1) * sizeof *m->headers);
                m->n_headers--;
                break;
            }
        }
        return;
    }
    int t = lua_type(L, vidx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "header %s: expected a string, got %s", lower, luaL_typename(L, vidx));
    size_t vlen;
    const char *v = lua_tolstring(L, vidx, &vlen);
    for (size_t i = 0; i < vlen; i++) {
        if (v[i] == '\r' || v[i] == '\n' || v[i] == '\0')
            luaL_error(L, "header %s: the value holds CR, LF or NUL", lower);
    }
    if (sl_msg_set_header(m, lower, v, vlen) < 0)
        luaL_error(L, "out of memory");
}

static sl_msg *hdr_msg(lua_State *L)
{
    luaL_checkudata(L, 1, "sluice.headers");
    lua_getiuservalue(L, 1, 1);
    sl_msg *m = sl_lua_to_msg(L, -1, NULL);
    lua_pop(L, 1);
    if (!m)
        luaL_error(L, "these headers belong to an earlier step call");
    return m;
}

static int hdr_index(lua_State *L)
{
    sl_msg *m = hdr_msg(L);
    const char *name = luaL_checkstring(L, 2);
    size_t n;
    const char *v = sl_msg_get_header(m, name, &n);
    if (v)
        lua_pushlstring(L, v, n);
    else
        lua_pushnil(L);
    return 1;
}

static int hdr_newindex(lua_State *L)
{
    header_assign(L, hdr_msg(L), 2, 3);
    return 0;
}

/* next(headers, name): the header after name in order (the first for nil). */
static int hdr_next(lua_State *L)
{
    sl_msg *m = hdr_msg(L);
    size_t i = 0;
    if (!lua_isnoneornil(L, 2)) {
        const char *k = luaL_checkstring(L, 2);
        while (i < m->n_headers && strcasecmp(m->headers[i].name, k) != 0)
            i++;
        i++; /* after it (past the end when it is gone) */
    }
    if (i >= m->n_headers) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, m->headers[i].name);
    lua_pushlstring(L, m->headers[i].value, m->headers[i].value_len);
    return 2;
}

static int hdr_pairs(lua_State *L)
{
    hdr_msg(L);
    lua_pushcfunction(L, hdr_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

static int hdr_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)hdr_msg(L)->n_headers);
    return 1;
}

static void push_headers(lua_State *L, int msg_idx)
{
    if (lua_getiuservalue(L, msg_idx, UV_HEADERS) != LUA_TNIL)
        return;
    lua_pop(L, 1);
    lhdrs *p = lua_newuserdatauv(L, sizeof *p, 1);
    p->unused = 0;
    luaL_setmetatable(L, "sluice.headers");
    lua_pushvalue(L, msg_idx);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, msg_idx, UV_HEADERS);
}

/* ---- message ------------------------------------------------------------------ */

static int m_json(lua_State *L)
{
    lmsg *lm = check_lmsg(L, 1);
    if (lua_getiuservalue(L, 1, UV_JSON) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    sl_lua_json_decode(L, lm->msg->body ? lm->msg->body : "", lm->msg->body_len);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, UV_JSON);
    return 1;
}

static int m_set_json(lua_State *L)
{
    lmsg *lm = check_lmsg(L, 1);
    luaL_checkany(L, 2);
    sl_lua_host *h = sl_lua_host_of(L);
    h->buf_len = 0;
    sl_lua_json_encode(L, 2);
    if (sl_msg_set_body(lm->msg, h->buf, h->buf_len) < 0)
        return luaL_error(L, "out of memory");
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, 1, UV_JSON);
    lua_settop(L, 1);
    return 1;
}

static int m_clone(lua_State *L)
{
    lmsg *lm = check_lmsg(L, 1);
    lmsg *c = push_owned(L);
    adopt(L, c, sl_msg_clone(lm->msg));
    return 1;
}

/* check_lmsg for the first argument of a metamethod of the message
 * metatables, which only messages have (scripts cannot reach it). */
static lmsg *self_lmsg(lua_State *L)
{
    lmsg *lm = lua_touserdata(L, 1);
    if (!lm->msg || (!lm->owned && lm->gen != sl_lua_host_of(L)->gen))
        luaL_error(L, "this message belongs to an earlier step call and can no longer be used");
    return lm;
}

static int m_index(lua_State *L)
{
    lmsg *lm = self_lmsg(L);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
        return 1; /* a method */
    const char *k = lua_tostring(L, 2);
    sl_msg *m = lm->msg;
    if (!k) {
        lua_pushnil(L);
    } else if (strcmp(k, "body") == 0) {
        lua_pushlstring(L, m->body ? m->body : "", m->body_len);
    } else if (strcmp(k, "headers") == 0) {
        push_headers(L, 1);
    } else if (strcmp(k, "key") == 0) {
        if (m->key)
            lua_pushlstring(L, m->key, m->key_len);
        else
            lua_pushnil(L);
    } else if (strcmp(k, "id") == 0) {
        lua_pushstring(L, m->id);
    } else if (strcmp(k, "timestamp") == 0) {
        lua_pushinteger(L, (lua_Integer)m->timestamp_ms);
    } else if (strcmp(k, "attempts") == 0) {
        lua_pushinteger(L, m->attempts);
    } else {
        lua_pushnil(L);
    }
    return 1;
}

static void set_body_value(lua_State *L, sl_msg *m, int idx, int msg_idx)
{
    int t = lua_type(L, idx);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        luaL_error(L, "msg.body: expected a string, got %s (use msg:set_json for a table)",
                   luaL_typename(L, idx));
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    if (sl_msg_set_body(m, s, n) < 0)
        luaL_error(L, "out of memory");
    if (msg_idx) {
        lua_pushnil(L);
        lua_setiuservalue(L, msg_idx, UV_JSON);
    }
}

static void set_key_value(lua_State *L, sl_msg *m, int idx)
{
    int rc;
    if (lua_isnil(L, idx)) {
        rc = sl_msg_set_key(m, NULL, 0);
    } else {
        size_t n;
        const char *s = luaL_checklstring(L, idx, &n);
        rc = sl_msg_set_key(m, s, n);
    }
    if (rc < 0)
        luaL_error(L, "out of memory");
}

/* Replaces every header of m with the table at idx. */
static void set_headers_table(lua_State *L, sl_msg *m, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    while (m->n_headers) {
        m->n_headers--;
        free(m->headers[m->n_headers].name);
        free(m->headers[m->n_headers].value);
    }
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "msg.headers: names must be strings");
        header_assign(L, m, lua_gettop(L) - 1, lua_gettop(L));
        lua_pop(L, 1);
    }
}

static int m_newindex(lua_State *L)
{
    lmsg *lm = check_lmsg(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "body") == 0)
        set_body_value(L, lm->msg, 3, 1);
    else if (strcmp(k, "key") == 0)
        set_key_value(L, lm->msg, 3);
    else if (strcmp(k, "headers") == 0)
        set_headers_table(L, lm->msg, 3);
    else if (strcmp(k, "id") == 0 || strcmp(k, "timestamp") == 0 || strcmp(k, "attempts") == 0)
        return luaL_error(L, "msg.%s is read-only", k);
    else
        return luaL_error(L, "msg has no field '%s' (fields: body, key, headers)", k);
    return 0;
}

static int m_gc(lua_State *L)
{
    lmsg *lm = lua_touserdata(L, 1);
    if (lm->owned && lm->msg) {
        sl_msg_free(lm->msg);
        lm->msg = NULL;
        sl_lua_uncharge(L, lm->charged);
    }
    return 0;
}

static int m_tostring(lua_State *L)
{
    lmsg *lm = lua_touserdata(L, 1);
    if (sl_lua_to_msg(L, 1, NULL))
        lua_pushfstring(L, "message %s", lm->msg->id);
    else
        lua_pushliteral(L, "message (expired)");
    return 1;
}

/* message.new{ body = STRING | json = TABLE, key = STRING, headers = {..} } */
static int l_new(lua_State *L)
{
    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lmsg *lm = push_owned(L); /* 2: owns the message, so errors below do not leak it */
    adopt(L, lm, sl_msg_new());
    sl_msg *m = lm->msg;
    if (lua_getfield(L, 1, "body") != LUA_TNIL) {
        set_body_value(L, m, 3, 0);
    } else if (lua_getfield(L, 1, "json") != LUA_TNIL) {
        sl_lua_host *h = sl_lua_host_of(L);
        h->buf_len = 0;
        sl_lua_json_encode(L, 4);
        if (sl_msg_set_body(m, h->buf, h->buf_len) < 0)
            return luaL_error(L, "out of memory");
    }
    lua_settop(L, 2);
    if (lua_getfield(L, 1, "key") != LUA_TNIL)
        set_key_value(L, m, 3);
    lua_settop(L, 2);
    if (lua_getfield(L, 1, "headers") != LUA_TNIL)
        set_headers_table(L, m, 3);
    lua_settop(L, 2);
    return 1;
}

/* Pushes a message metatable (with __gc for owned messages). */
static void push_msg_mt(lua_State *L, bool with_gc)
{
    lua_createtable(L, 0, 8);
    static const luaL_Reg methods[] = {
        {"json", m_json}, {"set_json", m_set_json}, {"clone", m_clone}, {NULL, NULL}};
    luaL_newlib(L, methods);
    lua_pushcclosure(L, m_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, m_newindex);
    lua_setfield(L, -2, "__newindex");
    if (with_gc) {
        lua_pushcfunction(L, m_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pushcfunction(L, m_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "sluice.msg");
    lua_setfield(L, -2, "__metatable");
    lua_pushliteral(L, "message");
    lua_setfield(L, -2, "__name");
}

void sl_lua_open_msg(lua_State *L)
{
    sl_lua_host *h = sl_lua_host_of(L);
    push_msg_mt(L, true);
    h->msg_mt_p = lua_topointer(L, -1);
    h->msg_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    push_msg_mt(L, false);
    h->lent_mt_p = lua_topointer(L, -1);
    h->lent_mt = luaL_ref(L, LUA_REGISTRYINDEX);
    /* the headers proxy */
    luaL_newmetatable(L, "sluice.headers");
    static const luaL_Reg hfns[] = {{"__index", hdr_index},
                                    {"__newindex", hdr_newindex},
                                    {"__pairs", hdr_pairs},
                                    {"__len", hdr_len},
                                    {NULL, NULL}};
    luaL_setfuncs(L, hfns, 0);
    lua_pushliteral(L, "sluice.headers");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    /* the message module */
    static const luaL_Reg fns[] = {{"new", l_new}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setglobal(L, "message");
}
