/* Unit tests for ordered JSON objects in the Lua host (transforms/lua_json.c,
 * lua_msg.c, lua_xml.c): key order kept through msg:json(), changes in Lua,
 * msg:set_json(), json.encode/decode, xml.encode/decode and message.new,
 * and objects built with json.object(). Each case compares exact text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_host.h"
#include "step.h"

static sl_lua_host *host(const char *src)
{
    char path[] = "/tmp/sl_luajson_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
    sl_lua_opts o = {.route = "orders", .timeout_ms = 30000}; /* room for valgrind */
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    int rc = sl_lua_host_load_script(h, path, "t.lua", "step", &err);
    unlink(path);
    if (rc < 0)
        fail_msg("load: %s", err.msg);
    return h;
}

/* Runs a one-off step `src` on body and compares the resulting body. */
static void expect_body(const char *src, const char *body, const char *want)
{
    sl_lua_host *h = host(src);
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    sl_error err;
    int rc = sl_lua_host_run_step(h, m, &err);
    if (rc != SL_STEP_OK)
        fail_msg("step: rc %d: %s", rc, err.msg);
    assert_string_equal(m->body, want);
    sl_msg_free(m);
    sl_lua_host_free(h);
}

/* Many objects of different keys in one state (so that the shape cache
 * fills, evicts and has keys that are prefixes of others): each comes back
 * as its text, and with a key added it ends with that key. */
static void test_many_shapes(void **state)
{
    (void)state;
    expect_body("function step(msg)\n"
                "  local pool, x = {'a','b','c','d','e','f','g','h'}, 7\n"
                "  for i = 1, 4000 do\n"
                "    local parts = {}\n"
                "    x = (x * 1103515245 + 12345) % 2147483648\n"
                "    local n, y = x % 7, x\n"
                "    for k = 1, n do\n"
                "      y = y // 8\n"
                "      local key = pool[(y % 8) + 1] .. (k > 4 and 'x' or '')\n"
                "      parts[#parts + 1] = '\"' .. key .. '\":' .. k\n"
                "    end\n"
                "    local text = '{' .. table.concat(parts, ',') .. '}'\n"
                "    local o = json.decode(text)\n"
                "    local seen, want = {}, {}\n"
                "    for _, p in ipairs(parts) do\n"
                "      local key = p:match('\"(.-)\"')\n"
                "      if not seen[key] then seen[key] = #want + 1; want[#want + 1] = p\n"
                "      else want[seen[key]] = p end\n"
                "    end\n"
                "    local plain = '{' .. table.concat(want, ',') .. '}'\n"
                "    assert(json.encode(o) == plain, text .. ' -> ' .. json.encode(o))\n"
                "    o.zz = true\n"
                "    local got = json.encode(o)\n"
                "    assert(got == '{' .. table.concat(want, ',') .. (#want > 0 and ',' or '') ..\n"
                "           '\"zz\":true}', text .. ' + zz -> ' .. got)\n"
                "  end\n"
                "  msg.body = 'ok'\n"
                "  return msg\n"
                "end\n",
                "{}", "ok");
}

/* Keys predicted from the last object decoded at the same depth: objects
 * that match, end early, go on past, differ in order or in one key, spell
 * a predicted key with an escape, or look like one up to a backslash, all
 * come back as their text; bad text after predicted keys fails as before;
 * objects deeper than the predicted depths; keys that are numbers. */
static void test_predicted_keys(void **state)
{
    (void)state;
    expect_body(
        "local function same(text, want)\n"
        "  local got = json.encode(json.decode(text))\n"
        "  assert(got == (want or text), text .. ' -> ' .. got)\n"
        "end\n"
        "local function bad(text, err)\n"
        "  local ok, e = pcall(json.decode, text)\n"
        "  assert(not ok and e:find(err, 1, true), text .. ': ' .. tostring(e))\n"
        "end\n"
        "function step(msg)\n"
        "  for round = 1, 2 do\n"
        "    same('{\"a\":1,\"b\":{\"x\":1,\"y\":2},\"c\":3}')\n"
        "    same('{\"a\":1,\"b\":{\"x\":1,\"y\":2},\"c\":3}')\n"
        "    same('{\"a\":1,\"b\":{\"x\":1}}')\n"
        "    same('{\"a\":1}')\n"
        "    same('{\"a\":1,\"b\":{\"x\":1,\"y\":2,\"z\":3},\"c\":3,\"d\":4}')\n"
        "    same('{\"b\":2,\"a\":1}')\n"
        "    same('{\"a\":1,\"bb\":2}')\n"
        "    same('{\"a\":1,\"b\":2}')\n"
        "    same('{\"a\":1,\"\\\\u0062\":2}', '{\"a\":1,\"b\":2}')\n"
        "    same('{\"a\":1,\"b\\\\\"x\":2}', '{\"a\":1,\"b\\\\\"x\":2}')\n"
        "    same('{\"a\":1,\"b\\\\\\\\\":2}')\n"
        "    same('{\"a\":1,\"b\\\\\\\\\":3}')\n"
        "    bad('{\"a\":1,\"b\\\\\":2}', 'unterminated string')\n"
        "    same('{\"a\":1,\"a\":2}', '{\"a\":2}')\n"
        "    same('{\"a\":1,\"b\":2}')\n"
        "    same('{}')\n"
        "    same('[{\"k\":1},{\"k\":2},{\"k\":3,\"l\":4},{\"l\":5}]')\n"
        "  end\n"
        "  same('{\"a\":1,\"b\":2}')\n"
        "  bad('{\"a\":1,\"b\":2,}', 'expected a string key')\n"
        "  bad('{\"a\":1,\"b\" 2}', \"expected ':'\")\n"
        "  bad('{\"a\":1,\"b\":2 \"c\"}', \"expected ',' or '}'\")\n"
        "  bad('{\"a\":1,\"b\\1\":2}', 'control character')\n"
        "  bad('{\"a\":1,\"b', 'unterminated string')\n"
        "  same('{\"a\":1,\"b\":2}')\n"
        "  local deep = ''\n"
        "  for i = 1, 12 do deep = deep .. '{\"k' .. i .. '\":1,\"n\":' end\n"
        "  deep = deep .. 'null' .. string.rep('}', 12)\n"
        "  same(deep); same(deep)\n"
        "  local o = json.decode('{\"a\":1,\"b\":2}')\n"
        "  o[3] = 'three'; o[1.5] = 'x'; o[math.huge] = 0; o[math.huge] = nil\n"
        "  local want = '{\"a\":1,\"b\":2,\"3\":\"three\",\"1.5\":\"x\"}'\n"
        "  assert(json.encode(o) == want, json.encode(o))\n"
        "  local p = json.decode('{\"a\":1,\"b\":2}')\n"
        "  p[3] = 'three'; p[1.5] = 'x'; p[math.huge] = 0; p[math.huge] = nil\n"
        "  assert(json.encode(p) == want, json.encode(p))\n"
        "  p.a = nil\n"
        "  assert(json.encode(p) == '{\"b\":2,\"3\":\"three\",\"1.5\":\"x\"}', json.encode(p))\n"
        "  msg.body = 'ok'\n"
        "  return msg\n"
        "end\n",
        "{}", "ok");
}

static void test_msg_json_keeps_order(void **state)
{
    (void)state;
    const char *in =
        "{\"z\":1,\"b\":{\"y\":true,\"a\":null,\"m\":[{\"q\":1,\"p\":2}]},\"a\":\"x\"}";
    expect_body("function step(msg) msg:set_json(msg:json()) return msg end\n", in, in);
    expect_body("function step(msg) msg.body = json.encode(json.decode(msg.body)) return msg end\n",
                in, in);
    /* a repeated key keeps its first place and its last value */
    expect_body("function step(msg) msg:set_json(msg:json()) return msg end\n",
                "{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}");
    expect_body("function step(msg) local o = msg:json() o.c = 1 msg:set_json(o) return msg end\n",
                "{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2,\"c\":1}");
    /* objects with the same keys share their order until one changes */
    expect_body("function step(msg)\n"
                "  local l = msg:json()\n"
                "  l[1].c = 1; l[2].a = nil; l[2].a = 5; l[3].b = 0\n"
                "  msg:set_json(l) return msg\n"
                "end\n",
                "[{\"a\":1,\"b\":2},{\"a\":3,\"b\":4},{\"a\":6,\"b\":7},{\"a\":8,\"b\":9}]",
                "[{\"a\":1,\"b\":2,\"c\":1},{\"b\":4,\"a\":5},{\"a\":6,\"b\":0},"
                "{\"a\":8,\"b\":9}]");
    /* past the keys kept on the stack while decoding (32) */
    char big[2048], *p = big;
    p += sprintf(p, "{");
    for (int i = 70; i > 0; i--)
        p += sprintf(p, "\"k%d\":%d%s", i, i, i > 1 ? "," : "}");
    expect_body("function step(msg) msg:set_json(msg:json()) return msg end\n", big, big);
}

/* json.decode's strings and numbers: every escape, surrogate pairs,
 * integers up to the 64-bit limit and floats past it, and the errors. */
static void test_decode_escapes_and_numbers(void **state)
{
    (void)state;
    const char *src =
        "local function try(t)\n"
        "  local ok, v = pcall(json.decode, t)\n"
        "  if ok then return math.type(v) or type(v) end\n"
        "  return v\n"
        "end\n"
        "function step(msg)\n"
        "  local v = json.decode(msg.body)\n"
        "  local out = {}\n"
        "  out[1] = v[1] == 'a\"\\\\/\\b\\f\\n\\r\\t\\u{e9}\\u{1F600}z' and 'string ok' or v[1]\n"
        "  for i = 2, #v do\n"
        "    local t = math.type(v[i])\n"
        "    out[#out + 1] = t .. ' ' .. (t == 'integer' and tostring(v[i]) or "
        "('%.17g'):format(v[i]))\n"
        "  end\n"
        "  out[#out + 1] = try('\"\\\\x\"')\n"
        "  out[#out + 1] = try('\"\\\\ud800\"')\n"
        "  out[#out + 1] = try('\"\\\\udc00\"')\n"
        "  out[#out + 1] = try('\"\\\\u12g4\"')\n"
        "  out[#out + 1] = try('\"abc')\n"
        "  out[#out + 1] = try('01')\n"
        "  out[#out + 1] = try('1.')\n"
        "  out[#out + 1] = try('1e+')\n"
        "  out[#out + 1] = try('-')\n"
        "  msg.body = table.concat(out, '|')\n"
        "  return msg\n"
        "end\n";
    expect_body(src,
                "[\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00z\", 0, -12, "
                "123456789012345678, 9223372036854775807, -9223372036854775808, "
                "9223372036854775808, 1.5, -2E3, 0.1e-2]",
                "string ok|integer 0|integer -12|integer 123456789012345678|"
                "integer 9223372036854775807|integer -9223372036854775808|"
                "float 9.2233720368547758e+18|float 1.5|float -2000|float 0.001|"
                "json: bad escape in a string at offset 1|"
                "json: lone surrogate in a \\u escape at offset 7|"
                "json: lone surrogate in a \\u escape at offset 7|"
                "json: bad \\u escape at offset 3|"
                "json: unterminated string at offset 4|"
                "json: unexpected text after the value at offset 1|"
                "json: bad number at offset 0|json: bad number at offset 0|"
                "json: bad number at offset 0");
}

static void test_changes_keep_order(void **state)
{
    (void)state;
    /* existing keys stay in place, new keys are appended in assignment
     * order, a removed key disappears, and one that comes back is last */
    expect_body("function step(msg)\n"
                "  local o = msg:json()\n"
                "  o.Qty = 5; o.Note = 'n'; o.Sku = nil; o.Extra = 1; o.Sku = 'S2'; o.Price = 2.5\n"
                "  o.Note = nil\n"
                "  msg:set_json(o) return msg\n"
                "end\n",
                "{\"Sku\":\"S1\",\"Qty\":1,\"Price\":9.5}",
                "{\"Qty\":5,\"Price\":2.5,\"Extra\":1,\"Sku\":\"S2\"}");
    /* rawset gives a new key its place too */
    expect_body("function step(msg)\n"
                "  local o = msg:json()\n"
                "  rawset(o, 'b', 2) rawset(o, 'a', 1) o.c = 3\n"
                "  msg:set_json(o) return msg\n"
                "end\n",
                "{\"z\":0}", "{\"z\":0,\"b\":2,\"a\":1,\"c\":3}");
}

static void test_many_keys(void **state)
{
    (void)state;
    /* past the linear scan (32 keys): the index keeps places right through
     * removals, returns and compaction */
    expect_body("function step(msg)\n"
                "  local o = json.object()\n"
                "  for i = 1, 100 do o['k' .. i] = i end\n"
                "  for round = 1, 3 do\n"
                "    for i = 1, 100, 2 do o['k' .. i] = nil end\n"
                "    for i = 1, 100, 2 do o['k' .. i] = i end\n"
                "  end\n"
                "  local want = {}\n"
                "  for i = 2, 100, 2 do want[#want + 1] = '\"k' .. i .. '\":' .. i end\n"
                "  for i = 1, 100, 2 do want[#want + 1] = '\"k' .. i .. '\":' .. i end\n"
                "  local got = json.encode(o)\n"
                "  assert(got == '{' .. table.concat(want, ',') .. '}', got)\n"
                "  msg.body = 'ok' return msg\n"
                "end\n",
                "x", "ok");
}

static void test_json_object_builds_ordered(void **state)
{
    (void)state;
    expect_body("function step(msg)\n"
                "  local line = json.object()\n"
                "  line.Sku = 'A-1'; line.Qty = 2; line.Price = 19.99\n"
                "  local o = json.object()\n"
                "  o.Lines = json.array{ line }; o.Id = 7; o[3] = 'n'; o[2.0] = 'two'\n"
                "  msg:set_json(o) return msg\n"
                "end\n",
                "x",
                "{\"Lines\":[{\"Sku\":\"A-1\",\"Qty\":2,\"Price\":19.99}],\"Id\":7,\"3\":\"n\","
                "\"2\":\"two\"}");
    /* json.object(t): t's keys sorted, then the new ones in order; an
     * object is returned as it is; message.new keeps the order too */
    expect_body("function step(msg)\n"
                "  local o = json.object{ b = 1, a = 2 }\n"
                "  o.z = 3; o.c = 4\n"
                "  assert(json.object(o) == o and getmetatable(o) == 'json.object')\n"
                "  assert(json.encode(json.object()) == '{}')\n"
                "  return message.new{ json = o }\n"
                "end\n",
                "x", "{\"a\":2,\"b\":1,\"z\":3,\"c\":4}");
    /* a plain table literal has no order: its keys are sorted */
    expect_body("function step(msg) msg:set_json({ Sku = 1, Qty = 2 }) return msg end\n", "x",
                "{\"Qty\":2,\"Sku\":1}");
}

static void test_xml_keeps_order(void **state)
{
    (void)state;
    expect_body(
        "function step(msg)\n"
        "  local env = json.object()\n"
        "  env['@xmlns:soap'] = 'http://schemas.xmlsoap.org/soap/envelope/'\n"
        "  env['soap:Header'] = json.object{ Auth = 't' }\n"
        "  local order = json.object(); order.Sku = 'A'; order.Qty = 1; order.Price = 2.5\n"
        "  env['soap:Body'] = json.object{ Order = order }\n"
        "  msg.body = xml.encode({ ['soap:Envelope'] = env }, { declaration = false })\n"
        "  return msg\n"
        "end\n",
        "x",
        "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\"><soap:Header>"
        "<Auth>t</Auth></soap:Header><soap:Body><Order><Sku>A</Sku><Qty>1</Qty><Price>2.5</Price>"
        "</Order></soap:Body></soap:Envelope>");
    /* the envelope options, from Lua */
    expect_body("function step(msg)\n"
                "  local d = xml.decode(msg.body, { strip_namespaces = true, unwrap = '/E/B',\n"
                "                                   coerce = true })\n"
                "  d.Order.Qty = d.Order.Qty + 1\n"
                "  msg.body = xml.encode(d, { declaration = false, wrap = '/s:E/s:B',\n"
                "                             namespaces = { s = 'urn:s' } })\n"
                "  return msg\n"
                "end\n",
                "<s:E xmlns:s=\"urn:s\"><s:B><Order><Sku>A</Sku><Qty>1</Qty></Order></s:B></s:E>",
                "<s:E xmlns:s=\"urn:s\"><s:B><Order><Sku>A</Sku><Qty>2</Qty></Order></s:B></s:E>");
    /* xml.decode gives ordered objects: document order comes back */
    expect_body("function step(msg) msg.body = json.encode(xml.decode(msg.body)) return msg end\n",
                "<r><z>1</z><b a=\"x\">2</b><a/></r>",
                "{\"r\":{\"z\":\"1\",\"b\":{\"@a\":\"x\",\"#text\":\"2\"},\"a\":\"\"}}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_json_keeps_order),
        cmocka_unit_test(test_many_shapes),
        cmocka_unit_test(test_predicted_keys),
        cmocka_unit_test(test_decode_escapes_and_numbers),
        cmocka_unit_test(test_changes_keep_order),
        cmocka_unit_test(test_many_keys),
        cmocka_unit_test(test_json_object_builds_ordered),
        cmocka_unit_test(test_xml_keeps_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
