/* The crypto module of the Lua sandbox: HMAC and digests for partner
 * signatures (crypto.hmac, crypto.sha256, crypto.hash) and a constant-time
 * comparison (crypto.equal), all through lib/crypto (GnuTLS). Pure
 * functions: the module is a read-only library like string or json, so it
 * is there in steps, filters and `when:` alike. */
#define SL_LUA_INTERNAL
#include "lua_host.h"

#include <stdlib.h>
#include <string.h>

#include "crypto.h"

/* Pushes the len bytes at d in the encoding named at arg idx: "hex"
 * (lowercase, the default), "base64" or "raw" (the bytes as they are). */
static int push_encoded(lua_State *L, int idx, const uint8_t *d, size_t len)
{
    static const char *const encodings[] = {"hex", "base64", "raw", NULL};
    int enc = luaL_checkoption(L, idx, "hex", encodings);
    if (enc == 0) {
        char hex[SL_DIGEST_MAX * 2 + 1];
        sl_hex_encode(d, len, hex);
        lua_pushlstring(L, hex, len * 2);
    } else if (enc == 1) {
        char *b64 = sl_base64_encode(d, len);
        if (!b64)
            return luaL_error(L, "crypto: out of memory");
        lua_pushstring(L, b64);
        free(b64);
    } else {
        lua_pushlstring(L, (const char *)d, len);
    }
    return 1;
}

static sl_digest check_digest(lua_State *L, int idx)
{
    const char *name = luaL_checkstring(L, idx);
    sl_digest d;
    if (sl_digest_parse(name, &d) < 0)
        luaL_argerror(L, idx, "expected \"sha1\", \"sha256\" or \"sha512\"");
    return d;
}

/* crypto.hmac(algorithm, key, data [, encoding]) -> the HMAC of data. */
static int l_hmac(lua_State *L)
{
    sl_digest d = check_digest(L, 1);
    size_t klen, dlen;
    const char *key = luaL_checklstring(L, 2, &klen);
    const char *data = luaL_checklstring(L, 3, &dlen);
    uint8_t out[SL_DIGEST_MAX];
    if (sl_hmac(d, key, klen, data, dlen, out) < 0)
        return luaL_error(L, "crypto.hmac: the library refused");
    return push_encoded(L, 4, out, sl_digest_len(d));
}

/* crypto.hash(algorithm, data [, encoding]) -> the digest of data. */
static int l_hash(lua_State *L)
{
    sl_digest d = check_digest(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);
    uint8_t out[SL_DIGEST_MAX];
    if (sl_hash(d, data, len, out) < 0)
        return luaL_error(L, "crypto.hash: the library refused");
    return push_encoded(L, 3, out, sl_digest_len(d));
}

/* crypto.sha256(data [, encoding]) -> crypto.hash("sha256", data, encoding). */
static int l_sha256(lua_State *L)
{
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);
    uint8_t out[SL_DIGEST_MAX];
    if (sl_hash(SL_DIGEST_SHA256, data, len, out) < 0)
        return luaL_error(L, "crypto.sha256: the library refused");
    return push_encoded(L, 2, out, sl_digest_len(SL_DIGEST_SHA256));
}

/* crypto.equal(a, b) -> true when the strings are the same, in a time that
 * depends only on their lengths (for comparing signatures). */
static int l_equal(lua_State *L)
{
    size_t al, bl;
    const char *a = luaL_checklstring(L, 1, &al);
    const char *b = luaL_checklstring(L, 2, &bl);
    lua_pushboolean(L, sl_ct_equal(a, al, b, bl));
    return 1;
}

void sl_lua_open_crypto(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"hmac", l_hmac}, {"hash", l_hash}, {"sha256", l_sha256}, {"equal", l_equal}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_setglobal(L, "crypto");
}
