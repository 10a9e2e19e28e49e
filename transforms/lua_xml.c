/* The xml module of the Lua host: xml.encode(value [, opts]) and
 * xml.decode(text [, opts]) with the JSON/XML convention of SPEC.md section
 * 7, going through json_xml.h (the same code as the json_to_xml and
 * xml_to_json steps). opts: root, declaration, pretty, coerce, force_array,
 * strip_namespaces, unwrap, wrap, namespaces (docs/XML.md). */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "json_xml.h"

#define MAX_FORCE 32
#define MAX_NS 16

typedef struct xopts {
    sl_xml_opts o;
    const char *force[MAX_FORCE];
    const char *ns[2 * MAX_NS]; /* wrap namespaces: prefix, URI pairs */
} xopts;

/* Reads opts.namespaces (a table prefix -> URI at the top of the stack)
 * into x. Strings stay anchored in the table. */
static void read_ns(lua_State *L, xopts *x)
{
    luaL_checktype(L, -1, LUA_TTABLE);
    size_t n = 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (n == MAX_NS)
            luaL_error(L, "xml: at most %d namespaces", MAX_NS);
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "xml: namespaces maps prefix strings to URI strings");
        x->ns[2 * n] = lua_tostring(L, -2);
        x->ns[2 * n + 1] = lua_tostring(L, -1);
        n++;
        lua_pop(L, 1);
    }
    x->o.wrap_ns = x->ns;
    x->o.n_wrap_ns = n;
}

/* The string options (anchored in the table at idx) and namespaces. */
static void read_more_opts(lua_State *L, int idx, xopts *x)
{
    if (lua_getfield(L, idx, "strip_namespaces") != LUA_TNIL)
        x->o.strip_namespaces = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "unwrap") != LUA_TNIL)
        x->o.unwrap = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "wrap") != LUA_TNIL)
        x->o.wrap = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "namespaces") != LUA_TNIL)
        read_ns(L, x);
    lua_pop(L, 1);
}

/* Reads the options table at idx (may be none or nil) into x. Strings stay
 * anchored in the table, which stays on the stack. */
static void read_opts(lua_State *L, int idx, xopts *x)
{
    sl_xml_opts_init(&x->o);
    if (lua_isnoneornil(L, idx))
        return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "root") != LUA_TNIL)
        x->o.root = luaL_checkstring(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "declaration") != LUA_TNIL)
        x->o.declaration = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "pretty") != LUA_TNIL)
        x->o.pretty = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "coerce") != LUA_TNIL)
        x->o.coerce = lua_toboolean(L, -1);
    lua_pop(L, 1);
    read_more_opts(L, idx, x);
    if (lua_getfield(L, idx, "force_array") != LUA_TNIL) {
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_Integer n = luaL_len(L, -1);
        if (n > MAX_FORCE)
            luaL_error(L, "xml: at most %d force_array paths", MAX_FORCE);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            x->force[i - 1] = luaL_checkstring(L, -1);
            lua_pop(L, 1);
        }
        x->o.force_array = x->force;
        x->o.n_force_array = (size_t)n;
    }
    lua_pop(L, 1);
}

typedef struct pushed {
    const char *s;
    size_t len;
} pushed;

static int push_p(lua_State *L)
{
    const pushed *p = lua_touserdata(L, 1);
    lua_pushlstring(L, p->s, p->len);
    return 1;
}

/* Pushes a copy of s, then frees s, whether the push fails or not. */
static void push_free(lua_State *L, char *s, size_t len)
{
    pushed p = {s, len};
    lua_pushcfunction(L, push_p);
    lua_pushlightuserdata(L, &p);
    int st = lua_pcall(L, 1, 1, 0);
    free(s);
    if (st != LUA_OK)
        lua_error(L);
}

static int l_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    xopts x;
    read_opts(L, 2, &x);
    sl_lua_host *h = sl_lua_host_of(L);
    h->buf_len = 0;
    sl_lua_json_encode(L, 1);
    json_error_t jerr;
    json_t *doc = json_loadb(h->buf, h->buf_len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
    if (!doc)
        return luaL_error(L, "xml.encode: %s", jerr.text);
    sl_error err;
    size_t len = 0;
    char *xml = sl_json_to_xml(doc, &x.o, &len, &err);
    json_decref(doc);
    if (!xml)
        return luaL_error(L, "xml.encode: %s", err.msg);
    push_free(L, xml, len);
    return 1;
}

static int l_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    xopts x;
    read_opts(L, 2, &x);
    sl_error err;
    json_t *doc = sl_xml_to_json(s, n, &x.o, &err);
    if (!doc)
        return luaL_error(L, "xml.decode: %s", err.msg);
    char *text = json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(doc);
    if (!text)
        return luaL_error(L, "xml.decode: out of memory");
    push_free(L, text, strlen(text));
    sl_lua_json_decode(L, lua_tostring(L, -1), lua_rawlen(L, -1));
    return 1;
}

void sl_lua_open_xml(lua_State *L)
{
    static const luaL_Reg fns[] = {{"encode", l_encode}, {"decode", l_decode}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setglobal(L, "xml");
}
