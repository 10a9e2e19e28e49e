/* The Lua budget suite (transforms/lua_host.c): every way a script can
 * spend time or memory outside the VM's instruction count (the string,
 * table and utf8 libraries, string.format, coroutines, error handlers,
 * metamethods, load of text) is tried with a tiny budget (100 ms, 4 MiB);
 * each must fail its message within 20x the time budget, and the next
 * message on the same host must still work. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SL_LUA_INTERNAL
#include "lua_host.h"

#define BUDGET_MS 100
#define MAX_MS (20 * BUDGET_MS)

/* One attack per case: the step runs CASES[msg.body]. */
static const char SCRIPT[] =
    "local C = {}\n"
    "C.rep_huge = function() return string.rep('x', 1e9) end\n"
    "C.rep_sep = function() return string.rep('ab', 1e8, ',') end\n"
    "C.rep_loop = function() while true do local s = ('x'):rep(1e5) end end\n"
    "C.format_loop = function() local s = ('x'):rep(1e5)\n"
    "  while true do local _ = string.format('%99d%s%-99s', 1, s, 'y') end end\n"
    "C.format_q = function() local s = ('\\0'):rep(1e6) while true do local _ = "
    "string.format('%q', s) end end\n"
    "C.format_tostring = function() local o = setmetatable({}, {__tostring = function()\n"
    "  while true do end end}) return string.format('%s', o) end\n"
    "C.find_plain = function() local s = ('a'):rep(1e6) while true do s:find('b', 1, true) end "
    "end\n"
    "C.find_backtrack = function() local s = ('a'):rep(40)\n"
    "  return s:find(('a?'):rep(40) .. ('a'):rep(40) .. 'b') end\n"
    "C.gsub_fn = function() local s = ('a'):rep(1e6) return s:gsub('.', function(c) return c end) "
    "end\n"
    "C.gsub_repl = function() local s = ('a'):rep(1e5) return s:gsub('', ('x'):rep(1000)) end\n"
    "C.gmatch_empty = function() local s = ('a'):rep(1e6) while true do for _ in s:gmatch('') do "
    "end end end\n"
    "C.byte = function() local s = ('a'):rep(1e6) return string.byte(s, 1, -1) end\n"
    "C.char = function() local t = {} for i = 1, 3e5 do t[i] = 65 end\n"
    "  while true do local _ = string.char(table.unpack(t, 1, 4000)) end end\n"
    "C.upper = function() local s = ('a'):rep(1e6) while true do s = s:upper():lower() end end\n"
    "C.concat = function() local t = {} for i = 1, 1e7 do t[i] = 'xxxxxxxx' end return "
    "table.concat(t) end\n"
    "C.concat_loop = function() local t = {} for i = 1, 1e4 do t[i] = 'xxxxxxxx' end\n"
    "  while true do local _ = table.concat(t, ',') end end\n"
    "C.sort = function() local t = {} for i = 1, 1e5 do t[i] = (i * 7919) % 100003 end\n"
    "  while true do table.sort(t) table.sort(t, function(a, b) return a > b end) end end\n"
    "C.sort_bad = function() local t = {} for i = 1, 1e5 do t[i] = i end\n"
    "  table.sort(t, function() return true end) end\n"
    "C.unpack = function() return table.unpack({}, 1, 1e8) end\n"
    "C.move = function() return table.move({}, 1, 1e12, 1, {}) end\n"
    "C.insert = function() local t = {} for i = 1, 1e5 do t[i] = i end\n"
    "  while true do table.insert(t, 1, 0) table.remove(t, 1) end end\n"
    "C.utf8_len = function() local s = ('\\u{e9}'):rep(1e6) while true do utf8.len(s) end end\n"
    "C.utf8_codes = function() local s = ('\\u{e9}'):rep(1e6) while true do\n"
    "  for _, c in utf8.codes(s) do end end end\n"
    "C.utf8_char = function() local t = {} for i = 1, 1e6 do t[i] = 233 end\n"
    "  return utf8.char(table.unpack(t)) end\n"
    "C.coroutine = function() local co = coroutine.wrap(function() while true do end end) "
    "co() end\n"
    "C.coroutine_nest = function() local function f() return coroutine.wrap(f)() end return f() "
    "end\n"
    "C.coroutine_many = function() while true do local co = coroutine.create(function() "
    "coroutine.yield() end)\n"
    "  coroutine.resume(co) end end\n"
    "C.xpcall_handler = function() return xpcall(function() error('x') end, function()\n"
    "  while true do end end) end\n"
    "C.error_tostring = function() error(setmetatable({}, {__tostring = function()\n"
    "  while true do end end})) end\n"
    "C.pcall_loop = function() while true do pcall(error, 'x') end end\n"
    "C.index_chain = function() local t = {} for i = 1, 1e5 do t = setmetatable({}, {__index = "
    "t}) end\n"
    "  while true do local _ = t.x end end\n"
    "C.index_fn = function() local t = setmetatable({}, {__index = function(t, k) while true do "
    "end end})\n"
    "  return t.x end\n"
    "C.concat_mm = function() local x = setmetatable({}, {__concat = function() while true do "
    "end end})\n"
    "  return x .. 'a' end\n"
    "C.eq_mm = function() local mt = {__eq = function() while true do end end}\n"
    "  local a, b = setmetatable({}, mt), setmetatable({}, mt) return a == b end\n"
    "C.len_mm = function() local x = setmetatable({}, {__len = function() while true do end "
    "end}) return #x end\n"
    "C.load_huge = function() local src = ('x = 1 '):rep(3e5) while true do load(src) end end\n"
    "C.load_reader = function() return assert(load(function() return 'x = 1 ' end)) end\n"
    "C.load_deep = function() return assert(load('return ' .. ('('):rep(1e5) .. 'x' .. "
    "(')'):rep(1e5))) end\n"
    "C.tostring_loop = function() local i = 0 while true do i = i + 1 local _ = tostring(i) .. "
    "i end end\n"
    "C.select_huge = function() return select('#', table.unpack({}, 1, 1e6)) end\n"
    "C.pack = function() return string.pack(('s'):rep(1e5), table.unpack({}, 1, 1e5)) end\n"
    "function step(msg)\n"
    "  if msg.body == 'ping' then msg.body = 'pong'; return msg end\n"
    "  return C[msg.body]()\n"
    "end\n";

static const char *const CASES[] = {
    "rep_huge",       "rep_sep",         "rep_loop",       "format_loop",
    "format_q",       "format_tostring", "find_plain",     "find_backtrack",
    "gsub_fn",        "gsub_repl",       "gmatch_empty",   "byte",
    "char",           "upper",           "concat",         "concat_loop",
    "sort",           "sort_bad",        "unpack",         "move",
    "insert",         "utf8_len",        "utf8_codes",     "utf8_char",
    "coroutine",      "coroutine_nest",  "coroutine_many", "xpcall_handler",
    "error_tostring", "pcall_loop",      "index_chain",    "index_fn",
    "concat_mm",      "eq_mm",           "len_mm",         "load_huge",
    "load_reader",    "load_deep",       "tostring_loop",  "select_huge",
    "pack",
};

static sl_lua_host *budget_host(void)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/sl_budget_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(SCRIPT, f);
    fclose(f);
    sl_lua_opts o = {.route = "budget", .timeout_ms = BUDGET_MS, .memory = 4u << 20};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    int rc = sl_lua_host_load_script(h, path, "budget.lua", "step", &err);
    unlink(path);
    if (rc < 0)
        fail_msg("load failed: %s", err.msg);
    return h;
}

static int run_body(sl_lua_host *h, const char *body, sl_error *err)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    sl_error_clear(err);
    int rc = sl_lua_host_run_step(h, m, err);
    if (rc == SL_STEP_OK && !strcmp(body, "ping"))
        assert_string_equal(m->body, "pong");
    sl_msg_free(m);
    return rc;
}

/* Every case fails within MAX_MS; the host answers the next message. */
static void test_every_case_fails_within_its_budget(void **state)
{
    (void)state;
    sl_lua_host *h = budget_host();
    int bad = 0;
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        sl_error err;
        int64_t t0 = sl_lua_mono_ns();
        int rc = run_body(h, CASES[i], &err);
        int64_t ms = (sl_lua_mono_ns() - t0) / 1000000;
        bool ok = rc == SL_STEP_FAIL && ms <= MAX_MS;
        printf("  %-16s %s in %5lld ms: %.90s\n", CASES[i], ok ? "failed" : "NOT BOUNDED",
               (long long)ms, rc == SL_STEP_FAIL ? err.msg : "(no failure)");
        fflush(stdout);
        bad += !ok;
        assert_int_equal(run_body(h, "ping", &err), SL_STEP_OK);
    }
    sl_lua_host_free(h);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_case_fails_within_its_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
