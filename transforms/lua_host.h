/* The Lua 5.4 host behind the `lua` and `filter` steps and `when:`: one
 * sandboxed lua_State per step instance (so per route worker, never shared
 * between threads), with a time limit (instruction hook), a memory cap (the
 * allocator), the msg API, and the json, xml, log, message, crypto and ctx
 * modules. */
#ifndef SLUICE_LUA_HOST_H
#define SLUICE_LUA_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "error.h"
#include "call.h"
#include "message.h"
#include "step.h"

#define SL_LUA_DEFAULT_TIMEOUT_MS 100
#define SL_LUA_DEFAULT_MEMORY ((uint64_t)16 << 20)
#define SL_LUA_MIN_MEMORY ((uint64_t)256 << 10)
#define SL_LUA_CACHE_ENTRIES 4096 /* ctx.cache capacity (entries) */

typedef struct sl_lua_host sl_lua_host;

typedef struct sl_lua_opts {
    const char *route;    /* ctx.route, and the log component "lua:ROUTE" */
    uint64_t timeout_ms;  /* per call; 0 = SL_LUA_DEFAULT_TIMEOUT_MS */
    uint64_t memory;      /* bytes; 0 = SL_LUA_DEFAULT_MEMORY */
    const char *lib_dir;  /* where require() finds NAME.lua; NULL = no require */
    const sl_kv *secrets; /* ctx.secrets (name -> value), read-only; must outlive the host */
    size_t n_secrets;
} sl_lua_opts;

/* Creates a sandboxed state. Returns NULL with err when out of memory. The
 * host belongs to the calling thread from then on (not thread-safe). */
sl_lua_host *sl_lua_host_new(const sl_lua_opts *opts, sl_error *err);

/* Frees the host and its state. h may be NULL. */
void sl_lua_host_free(sl_lua_host *h);

/* Loads the script at path (text only), runs it once to define its
 * functions, and picks the global function fn_name as the step function.
 * chunkname names the script in errors ("lua/enrich.lua"). Returns 0, or
 * -1 with err (syntax error with line, error while running, fn_name not a
 * function, file unreadable). */
int sl_lua_host_load_script(sl_lua_host *h, const char *path, const char *chunkname,
                            const char *fn_name, sl_error *err);

/* Compiles `return (expr)` with msg in scope. Returns 0 or -1 with err. */
int sl_lua_host_load_expr(sl_lua_host *h, const char *expr, const char *chunkname, sl_error *err);

/* Calls the step function as fn(msg, ctx) and applies its result to msg in
 * place: the same message or another one (its body, key and headers replace
 * msg's; msg keeps its id) -> SL_STEP_OK; nil or false -> SL_STEP_DROP; a list
 * of one message -> that message, an empty list -> DROP, a longer list ->
 * SL_STEP_FAIL (use sl_lua_host_run_step_split to split). An error, a timeout
 * or the memory cap -> SL_STEP_FAIL with the Lua error and traceback in err;
 * but an error raised by ctx.retry(reason), or any error (not a timeout or
 * the memory cap) after a ctx.http call of this run failed transiently ->
 * SL_STEP_RETRY (the route retries the message with its backoff). The host
 * stays usable (it rebuilds its state when the old one is unusable). */
int sl_lua_host_run_step(sl_lua_host *h, sl_msg *msg, sl_error *err);

/* As sl_lua_host_run_step, but a list of n > 1 messages splits: the first
 * replaces msg in place, the other n - 1 come back in *more (a malloc'd
 * array of messages the caller owns and frees), in order; those that still
 * carry msg's id get a fresh one. *more is NULL and *n_more 0 otherwise. */
int sl_lua_host_run_step_split(sl_lua_host *h, sl_msg *msg, sl_msg ***more, size_t *n_more,
                               sl_error *err);

/* Evaluates the compiled expression over msg; *result is its truthiness.
 * Returns 0, or -1 with err when the expression raised an error. msg is
 * not changed unless the expression changes it. */
int sl_lua_host_run_expr(sl_lua_host *h, sl_msg *msg, bool *result, sl_error *err);

/* Hands ctx.http the services it calls connectors through (svc must
 * outlive its use; NULL: ctx.http fails with "no services"). */
void sl_lua_host_set_services(sl_lua_host *h, const sl_step_services *svc);

/* Bytes the state holds now (for tests and figures). */
size_t sl_lua_host_memory(const sl_lua_host *h);

/* How many times the state was rebuilt after becoming unusable. */
unsigned sl_lua_host_rebuilds(const sl_lua_host *h);

/* ---- for transforms/lua_*.c only ------------------------------------------ */
#ifdef SL_LUA_INTERNAL
#include <lauxlib.h>
#include <lua.h>

typedef struct sl_lua_keyent sl_lua_keyent;
typedef struct sl_lua_pred sl_lua_pred;

/* lua_alloc.c: free blocks of up to SL_LUA_POOL_CLASSES * 16 bytes by size
 * class, reused by the state's allocator. */
#define SL_LUA_POOL_CLASSES 16
#define SL_LUA_POOL_MAX_BYTES ((size_t)256 << 10)
typedef struct sl_lua_pool {
    void *free[SL_LUA_POOL_CLASSES];
    size_t bytes; /* held in the free lists */
} sl_lua_pool;

/* Lua's allocator contract (lua_Alloc) over the pool: nsize 0 frees (ptr
 * may be NULL), ptr NULL allocates (osize is then 0), else resizes; returns
 * NULL only when a block cannot be had for a request that grows. drain
 * frees the pool's free blocks (after lua_close). */
void *sl_lua_pool_realloc(sl_lua_pool *p, void *ptr, size_t osize, size_t nsize);
void sl_lua_pool_drain(sl_lua_pool *p);
/* The lua_Alloc of every state (ud: its host), over the host's pool:
 * refuses to grow past the cap (h->used, h->limit). */
void *sl_lua_host_alloc(void *ud, void *ptr, size_t osize, size_t nsize);

struct sl_lua_host {
    lua_State *L;
    size_t used;  /* bytes held by the state, plus messages made by the script */
    size_t limit; /* the memory cap */
    sl_lua_pool pool;
    uint64_t timeout_ms;
    int64_t deadline_ns; /* CLOCK_MONOTONIC; valid while a call runs */
    bool killed;         /* the running call hit the timeout or the memory cap */
    char kill_reason[96];
    unsigned rebuilds;
    uint64_t gen; /* call counter: a lent message is valid only during its call */
    char *route;
    char *log_comp; /* "lua:ROUTE" */
    char *lib_dir;
    const sl_step_services *services; /* for ctx.http; may be NULL */
    bool call_transient;              /* ctx.http failed transiently in this call */
    bool retry_requested;             /* ctx.retry() was called in this call */
    /* what was loaded, kept to rebuild the state */
    char *src;
    size_t src_len;
    char *chunkname;
    char *fn_name; /* NULL for an expression */
    /* registry refs */
    int fn_ref, ctx_ref, array_mt, msg_mt, hdr_mt;
    int lent_mt; /* lua_msg.c: msg_mt without __gc, for lent messages */
    int env_ref; /* lua_env.c: the environment table */
    /* the metatables of messages (lua_msg.c) and of arrays (lua_json.c),
     * compared by address (the registry holds them) */
    const void *msg_mt_p, *lent_mt_p, *array_mt_p;
    int shape_cache;         /* lua_json.c: shared key orders of decoded objects */
    const void **shape_keys; /* lua_json.c: the cache's keys by slot, compared in C (may be NULL) */
    unsigned char obj_hint[8]; /* lua_json.c: members of the last object decoded at each depth */
    int trans_next;            /* lua_json.c: the next slot for a transition kept */
    sl_lua_pred *pred; /* lua_json.c: keys of the last shared order decoded at each depth (may
                          be NULL) */
    /* scratch for encoding (malloc'd, reused) */
    char *buf;
    size_t buf_len, buf_cap;
    sl_lua_keyent *keys;
    size_t keys_cap;
    const sl_kv *secrets; /* ctx.secrets (the step's config owns them) */
    size_t n_secrets;
};

/* The host of a state (kept in the state's extra space). */
static inline sl_lua_host *sl_lua_host_of(lua_State *L)
{
    return *(sl_lua_host **)lua_getextraspace(L);
}

/* CLOCK_MONOTONIC in ns and CLOCK_REALTIME in ms. */
int64_t sl_lua_mono_ns(void);
int64_t sl_lua_wall_ms(void);

/* Charges n bytes of memory held outside the state (messages) to the cap.
 * Returns 0, or -1 when the cap would be passed (after a full GC). */
int sl_lua_charge(lua_State *L, size_t n);
void sl_lua_uncharge(lua_State *L, size_t n);

/* lua_json.c: the json module, and decoding/encoding between JSON text and
 * Lua values. decode pushes the value (raises a Lua error on bad JSON);
 * encode appends the value at idx to h->buf (raises on what JSON cannot
 * hold). json.null is a light userdata (NULL). */
void sl_lua_open_json(lua_State *L);
void sl_lua_json_decode(lua_State *L, const char *s, size_t len);
void sl_lua_json_encode(lua_State *L, int idx);
/* rawset(t, k, v) (arguments 1-3) when t is a JSON object that does not hold
 * k: stores v and gives k its place in the object's key order. Returns 1
 * with t pushed when it did, 0 (nothing done) otherwise. Raises as rawset. */
int sl_lua_json_rawset(lua_State *L);

/* lua_msg.c: the msg userdata, the headers proxy and the message module. */
void sl_lua_open_msg(lua_State *L);
/* Pushes a message userdata for msg; owned messages are freed by the GC. */
void sl_lua_push_msg(lua_State *L, sl_msg *msg, bool owned);
/* The message of the userdata at idx, or NULL when it is not one or when it
 * was lent to an earlier call; *ud (when ud is not NULL) gets the userdata
 * when idx is a message userdata at all, else NULL. */
sl_msg *sl_lua_to_msg(lua_State *L, int idx, void **ud);

/* lua_ctx.c: ctx (route, now, cache, http, retry, secrets) and the log
 * module. Pushes ctx. */
void sl_lua_open_log(lua_State *L);
void sl_lua_push_ctx(lua_State *L);

/* lua_crypto.c: the crypto module (hmac, hash, sha256, equal). */
void sl_lua_open_crypto(lua_State *L);

/* lua_xml.c: the xml module (xml.encode/xml.decode). */
void sl_lua_open_xml(lua_State *L);

/* Replaces find, match, gmatch and gsub in the string table at the top of
 * the stack with versions that honour the running call's deadline. */
void sl_lua_open_patterns(lua_State *L);

/* Raises the running call's timeout error (marking the call killed, so no
 * pcall can catch it) when its deadline has passed; returns otherwise. For
 * C functions that can run long without the instruction hook firing. */
void sl_lua_check_deadline(lua_State *L);

/* Per-message isolation (lua_env.c). setup: at the end of building the
 * sandbox, turns the libraries into read-only proxies, makes rawset refuse
 * them and creates the environment table. push: pushes the environment.
 * bind: makes the environment the _ENV of the function at fn_idx (a chunk
 * just loaded). freeze: after a script's top level ran, moves the globals it
 * defined into the real globals (read-only from then on). reset: after every
 * call, clears whatever the call assigned to globals. */
void sl_lua_env_setup(lua_State *L);
/* Replaces the table at the top of the stack by a read-only proxy of it
 * (after sl_lua_env_setup). */
void sl_lua_env_protect(lua_State *L);
void sl_lua_env_push(lua_State *L);
void sl_lua_env_bind(lua_State *L, int fn_idx);
void sl_lua_env_freeze(lua_State *L);
void sl_lua_env_reset(lua_State *L);
#endif

#endif
