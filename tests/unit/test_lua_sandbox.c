/* Unit tests for the Lua sandbox (transforms/lua_host.c): every rule with a
 * script that tries to break it (io, os.execute, C modules, bytecode, debug,
 * __gc, collectgarbage, endless loops, unbounded memory, errors), and after
 * each, the next message on the same state still works. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SL_LUA_INTERNAL
#include "lua_host.h"

/* Every script below defines `step` and, for the "next message" check, a
 * message whose body is "ping" must come back as "pong". */
#define PONG "if msg.body == 'ping' then msg.body = 'pong'; return msg end\n"

static char script_path[64];

static sl_lua_host *host_with(const char *src, uint64_t timeout_ms, uint64_t memory)
{
    snprintf(script_path, sizeof script_path, "/tmp/sl_sandbox_XXXXXX");
    int fd = mkstemp(script_path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%s", src);
    fclose(f);
    sl_lua_opts o = {.route = "sandbox", .timeout_ms = timeout_ms, .memory = memory};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    int rc = sl_lua_host_load_script(h, script_path, "sandbox.lua", "step", &err);
    unlink(script_path);
    if (rc < 0)
        fail_msg("load failed: %s", err.msg);
    return h;
}

/* Runs the step over a message with body; returns the rc, err filled. */
static int run_body(sl_lua_host *h, const char *body, size_t len, sl_error *err)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, len), 0);
    sl_error_clear(err);
    int rc = sl_lua_host_run_step(h, m, err);
    sl_msg_free(m);
    return rc;
}

static void assert_fails_with(sl_lua_host *h, const char *body, const char *needle)
{
    sl_error err;
    int rc = run_body(h, body, strlen(body), &err);
    if (rc != SL_STEP_FAIL || !strstr(err.msg, needle))
        fail_msg("expected a failure with '%s', got rc %d: %s", needle, rc, err.msg);
}

/* The state still works: "ping" becomes "pong". */
static void assert_next_works(sl_lua_host *h)
{
    sl_msg *m = sl_msg_new();
    assert_int_equal(sl_msg_set_body(m, "ping", 4), 0);
    sl_error err;
    int rc = sl_lua_host_run_step(h, m, &err);
    if (rc != SL_STEP_OK)
        fail_msg("next message failed: %s", err.msg);
    assert_string_equal(m->body, "pong");
    sl_msg_free(m);
}

static void test_no_io(void **state)
{
    sl_lua_host *h = host_with("function step(msg)\n" PONG "  local f = io.open('/etc/passwd')\n"
                               "  return msg\nend\n",
                               50, 0);
    assert_fails_with(h, "x", "global 'io'");
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_no_os_execute(void **state)
{
    sl_lua_host *h =
        host_with("function step(msg)\n" PONG
                  "  assert(os.time() > 0 and os.clock() >= 0 and os.date('%Y'))\n"
                  "  assert(os.getenv == nil and os.remove == nil and os.exit == nil)\n"
                  "  os.execute('touch /tmp/sluice_pwned')\n"
                  "  return msg\nend\n",
                  50, 0);
    assert_fails_with(h, "x", "field 'execute'");
    assert_int_not_equal(access("/tmp/sluice_pwned", F_OK), 0);
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_no_c_modules(void **state)
{
    sl_lua_host *h = host_with("function step(msg)\n" PONG
                               "  assert(package == nil and loadfile == nil and dofile == nil)\n"
                               "  local ok, e = pcall(require, 'io')\n"
                               "  assert(not ok and e:find('not found'), e)\n"
                               "  require(msg.body)\n"
                               "  return msg\nend\n",
                               50, 0);
    assert_fails_with(h, "socket.core", "module 'socket.core' not found");
    assert_fails_with(h, "../../etc/passwd", "bad module name");
    assert_next_works(h);
    sl_lua_host_free(h);
}

typedef struct dumpbuf {
    char data[4096];
    size_t len;
} dumpbuf;

static int dump_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
    dumpbuf *b = ud;
    if (b->len + sz > sizeof b->data)
        return 1;
    memcpy(b->data + b->len, p, sz);
    b->len += sz;
    return 0;
}

static void test_no_bytecode(void **state)
{
    /* real bytecode, made outside the sandbox */
    lua_State *L = luaL_newstate();
    assert_int_equal(luaL_loadstring(L, "return 42"), LUA_OK);
    static dumpbuf b;
    assert_int_equal(lua_dump(L, dump_writer, &b, 0), 0);
    assert_true(b.len > 4 && memcmp(b.data, LUA_SIGNATURE, 4) == 0);
    const char *code = b.data;
    size_t n = b.len;

    sl_lua_host *h =
        host_with("function step(msg)\n" PONG "  assert(string.dump == nil and ('').dump == nil)\n"
                  "  local f, e = load(msg.body, 'x', 'b')\n"
                  "  if not f then error(e) end\n"
                  "  msg.body = tostring(f())\n"
                  "  return msg\nend\n",
                  50, 0);
    sl_error err;
    assert_int_equal(run_body(h, code, n, &err), SL_STEP_FAIL);
    if (!strstr(err.msg, "attempt to load a binary chunk"))
        fail_msg("unexpected: %s", err.msg);
    lua_close(L);
    assert_next_works(h);
    sl_lua_host_free(h);

    /* text chunks still load, in the sandbox */
    h = host_with("function step(msg)\n" PONG "  local f = assert(load('return io'))\n"
                  "  msg.body = tostring(f())\n"
                  "  return msg\nend\n",
                  50, 0);
    sl_msg *m = sl_msg_new();
    if (sl_lua_host_run_step(h, m, &err) != SL_STEP_OK)
        fail_msg("text load failed: %s", err.msg);
    assert_string_equal(m->body, "nil");
    sl_msg_free(m);
    sl_lua_host_free(h);
}

static void test_no_debug(void **state)
{
    sl_lua_host *h = host_with("function step(msg)\n" PONG "  local r = debug.getregistry()\n"
                               "  return msg\nend\n",
                               50, 0);
    assert_fails_with(h, "x", "global 'debug'");
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_no_gc_metamethod_or_collect(void **state)
{
    sl_lua_host *h = host_with("function step(msg)\n" PONG "  if msg.body == 'gc' then\n"
                               "    setmetatable({}, { __gc = function() while true do end end })\n"
                               "  else collectgarbage('collect') end\n"
                               "  return msg\nend\n",
                               50, 0);
    assert_fails_with(h, "gc", "__gc metamethods are not allowed");
    assert_fails_with(h, "collect", "only \"count\"");
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_timeout(void **state)
{
    sl_lua_host *h = host_with("function step(msg)\n" PONG
                               "  if msg.body == 'plain' then while true do end end\n"
                               "  -- a loop that tries to swallow the timeout\n"
                               "  while true do pcall(function() while true do end end) end\n"
                               "end\n",
                               50, 0);
    int64_t t0 = sl_lua_mono_ns();
    assert_fails_with(h, "plain", "timeout after 50 ms");
    int64_t ms = (sl_lua_mono_ns() - t0) / 1000000;
    assert_true(ms >= 50 && ms < 1000);
    assert_next_works(h);
    assert_fails_with(h, "pcall", "timeout after 50 ms");
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_timeout_in_coroutine(void **state)
{
    sl_lua_host *h = host_with("function step(msg)\n" PONG
                               "  local co = coroutine.create(function() while true do end end)\n"
                               "  while true do coroutine.resume(co) end\n"
                               "end\n",
                               50, 0);
    assert_fails_with(h, "x", "timeout after 50 ms");
    assert_next_works(h);
    sl_lua_host_free(h);
}

/* Fails body within max_ms (a bounded multiple of the 100 ms budget). */
static void assert_times_out(sl_lua_host *h, const char *body, int64_t max_ms)
{
    int64_t t0 = sl_lua_mono_ns();
    assert_fails_with(h, body, "timeout after 100 ms");
    int64_t ms = (sl_lua_mono_ns() - t0) / 1000000;
    if (ms > max_ms)
        fail_msg("'%s' took %lld ms against a 100 ms budget", body, (long long)ms);
}

/* Time spent inside one C function (the pattern matcher) is counted: a
 * backtracking pattern over a long subject fails at its deadline. */
static void test_timeout_in_patterns(void **state)
{
    sl_lua_host *h = host_with(
        "function step(msg)\n" PONG "  local s = ('a'):rep(5e5)\n"
        "  if msg.body == 'find' then return s:find('.-.-.-.-.-.-b') end\n"
        "  if msg.body == 'match' then return string.match(s, '(.-)(.-)(.-)(.-)b') end\n"
        "  if msg.body == 'gsub' then return (s:gsub('a.-.-.-.-b', 'x')) end\n"
        "  if msg.body == 'gmatch' then for w in s:gmatch('.-.-.-.-b') do end end\n"
        "  if msg.body == 'pcall' then while true do pcall(string.find, s, '.-.-.-.-b') end end\n"
        "end\n",
        100, 0);
    static const char *const bodies[] = {"find", "match", "gsub", "gmatch", "pcall"};
    for (size_t i = 0; i < sizeof bodies / sizeof *bodies; i++) {
        assert_times_out(h, bodies[i], 5000);
        assert_next_works(h);
    }
    sl_lua_host_free(h);
}

/* xpcall's handler runs where the instruction hook is off when the error is
 * the timeout itself: a looping handler must not wedge the worker. */
static void test_xpcall_handler_cannot_wedge(void **state)
{
    sl_lua_host *h =
        host_with("function step(msg)\n" PONG "  if msg.body == 'loop' then\n"
                  "    xpcall(function() while true do end end, function() while true do end end)\n"
                  "  end\n"
                  "  local ok, e = xpcall(error, function(m) return 'handled: ' .. m end, 'boom')\n"
                  "  msg.body = e; return msg\n"
                  "end\n",
                  100, 0);
    assert_times_out(h, "loop", 5000);
    assert_next_works(h);
    sl_msg *m = sl_msg_new();
    assert_int_equal(sl_msg_set_body(m, "other", 5), 0);
    sl_error err;
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "handled: boom"); /* ordinary errors still reach it */
    sl_msg_free(m);
    sl_lua_host_free(h);
}

/* What one message changes in globals or libraries is gone for the next. */
static void test_globals_and_libraries_do_not_leak(void **state)
{
    sl_lua_host *h = host_with(
        "helper = function() return 'helper' end -- defined at load: stays\n"
        "function step(msg, ctx)\n" PONG
        "  if msg.body == 'ctx' then ctx.http = function() return 'evil' end end\n"
        "  local b = msg.body\n"
        "  if b == 'lib' then string.rep = function() return 'evil' end end\n"
        "  if b == 'rawlib' then rawset(string, 'rep', nil) end\n"
        "  if b == 'mt' then setmetatable(_G, { __index = function() return 1 end }) end\n"
        "  if b == 'globals' then rawset(_G, 'tostring', nil); tostring = nil; helper = nil\n"
        "    counter = 1; load('string = nil')(); return msg end\n"
        "  if b == 'check' then\n"
        "    msg.body = table.concat({ ('ab'):rep(2), string.rep('c', 2), tostring(7),\n"
        "      helper(), tostring(counter) }, ','); return msg end\n"
        "  return msg\n"
        "end\n",
        200, 0);
    assert_fails_with(h, "lib", "read-only");
    assert_fails_with(h, "rawlib", "read-only");
    assert_fails_with(h, "mt", "protected metatable");
    assert_fails_with(h, "ctx", "read-only");
    sl_error err;
    assert_int_equal(run_body(h, "globals", 7, &err), SL_STEP_OK);
    sl_msg *m = sl_msg_new();
    assert_int_equal(sl_msg_set_body(m, "check", 5), 0);
    if (sl_lua_host_run_step(h, m, &err) != SL_STEP_OK)
        fail_msg("check failed: %s", err.msg);
    assert_string_equal(m->body, "abab,cc,7,helper,nil");
    sl_msg_free(m);
    sl_lua_host_free(h);
}

static void test_memory_cap(void **state)
{
    sl_lua_host *h = host_with(
        "keep = {}\n"
        "function step(msg)\n" PONG
        "  if msg.body == 'rep' then return string.rep('x', 64 * 1024 * 1024) end\n"
        "  if msg.body == 'pcall' then\n"
        "    while true do pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) end\n"
        "  end\n"
        "  if msg.body == 'keep' then for i = 1, 1e9 do keep[i] = {i} end end\n"
        "  if msg.body == 'clones' then local l = {} for i = 1, 1e9 do l[i] = msg:clone() end end\n"
        "  local t = {} for i = 1, 1e9 do t[i] = tostring(i) end\n"
        "end\n",
        2000, 2u << 20);
    assert_fails_with(h, "rep", "memory limit of 2048 KiB exceeded");
    assert_next_works(h);
    assert_fails_with(h, "grow", "memory limit of 2048 KiB exceeded");
    assert_next_works(h);
    assert_fails_with(h, "pcall", "memory limit of 2048 KiB exceeded");
    assert_next_works(h);
    assert_fails_with(h, "clones", "memory limit of 2048 KiB exceeded");
    assert_next_works(h);
    /* a script that keeps what it allocated leaves the state unusable: the
     * host rebuilds it (globals start again) */
    unsigned before = sl_lua_host_rebuilds(h);
    assert_fails_with(h, "keep", "memory limit of 2048 KiB exceeded");
    assert_int_equal(sl_lua_host_rebuilds(h), before + 1);
    assert_true(sl_lua_host_memory(h) < (1u << 20));
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_error_traceback(void **state)
{
    sl_lua_host *h = host_with("local function inner(x)\n"
                               "  error('bad order ' .. x)\n"
                               "end\n"
                               "function step(msg)\n" PONG
                               "  if msg.body == 'table' then error({code = 1}) end\n"
                               "  inner(msg.body)\n"
                               "end\n",
                               50, 0);
    sl_error err;
    assert_int_equal(run_body(h, "42", 2, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "sandbox.lua:2: bad order 42"));
    assert_non_null(strstr(err.msg, "stack traceback"));
    assert_non_null(strstr(err.msg, "'inner'"));
    assert_non_null(strstr(err.msg, "in function 'step'"));
    assert_null(strchr(err.msg, '\n'));
    assert_next_works(h);
    assert_fails_with(h, "table", "error object is a table value");
    assert_next_works(h);
    sl_lua_host_free(h);
}

static void test_load_errors(void **state)
{
    sl_lua_opts o = {.route = "r"};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    assert_int_equal(sl_lua_host_load_script(h, "/nonexistent/x.lua", "x.lua", "f", &err), -1);
    assert_non_null(strstr(err.msg, "cannot open"));

    char path[] = "/tmp/sl_sandbox_XXXXXX";
    int fd = mkstemp(path);
    assert_true(write(fd, "function f( return end", 22) == 22);
    close(fd);
    assert_int_equal(sl_lua_host_load_script(h, path, "bad.lua", "f", &err), -1);
    assert_non_null(strstr(err.msg, "bad.lua:1:"));

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(write(fd, "x = 1", 5) == 5);
    close(fd);
    assert_int_equal(sl_lua_host_load_script(h, path, "nofn.lua", "f", &err), -1);
    assert_non_null(strstr(err.msg, "no global function 'f'"));

    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(write(fd, "while true do end", 17) == 17);
    close(fd);
    assert_int_equal(sl_lua_host_load_script(h, path, "loop.lua", "f", &err), -1);
    assert_non_null(strstr(err.msg, "timeout"));
    unlink(path);
    sl_lua_host_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_io),
        cmocka_unit_test(test_no_os_execute),
        cmocka_unit_test(test_no_c_modules),
        cmocka_unit_test(test_no_bytecode),
        cmocka_unit_test(test_no_debug),
        cmocka_unit_test(test_no_gc_metamethod_or_collect),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_timeout_in_coroutine),
        cmocka_unit_test(test_memory_cap),
        cmocka_unit_test(test_error_traceback),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_timeout_in_patterns),
        cmocka_unit_test(test_xpcall_handler_cannot_wedge),
        cmocka_unit_test(test_globals_and_libraries_do_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
