/* Unit tests for the Lua step and host (transforms/lua_*.c): the msg API,
 * what a step may return (message, nil, lists), the json and xml modules,
 * ctx.cache (LRU and TTL), ctx.http against a real local HTTP server (a
 * thread here) and through a replaced transport, and the step built from a
 * config file with its script path relative to that file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http_call.h"
#include "http_client.h"
#include "lua_host.h"
#include "step.h"

/* ---- helpers ------------------------------------------------------------------ */

static sl_lua_host *host_svc(const char *src, const sl_step_services *svc, uint64_t timeout_ms)
{
    char path[] = "/tmp/sl_luastep_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
    sl_lua_opts o = {.route = "orders", .timeout_ms = timeout_ms};
    sl_error err;
    sl_lua_host *h = sl_lua_host_new(&o, &err);
    assert_non_null(h);
    sl_lua_host_set_services(h, svc);
    int rc = sl_lua_host_load_script(h, path, "t.lua", "step", &err);
    unlink(path);
    if (rc < 0)
        fail_msg("load: %s", err.msg);
    return h;
}

static sl_lua_host *host(const char *src)
{
    return host_svc(src, NULL, 1000); /* room for ASan on a loaded machine */
}

static sl_msg *msg_with(const char *body)
{
    sl_msg *m = sl_msg_new();
    assert_non_null(m);
    assert_int_equal(sl_msg_set_body(m, body, strlen(body)), 0);
    return m;
}

/* Runs the step on body; returns the resulting body (static) or fails. */
static const char *run_ok(sl_lua_host *h, const char *body)
{
    static char out[8192];
    sl_msg *m = msg_with(body);
    sl_error err;
    int rc = sl_lua_host_run_step(h, m, &err);
    if (rc != SL_STEP_OK)
        fail_msg("step on '%s': rc %d: %s", body, rc, err.msg);
    snprintf(out, sizeof out, "%s", m->body);
    sl_msg_free(m);
    return out;
}

static void run_fails(sl_lua_host *h, const char *body, const char *needle)
{
    sl_msg *m = msg_with(body);
    sl_error err;
    int rc = sl_lua_host_run_step(h, m, &err);
    if (rc != SL_STEP_FAIL || !strstr(err.msg, needle))
        fail_msg("expected a failure with '%s' on '%s', got %d: %s", needle, body, rc, err.msg);
    sl_msg_free(m);
}

/* ---- msg API ------------------------------------------------------------------- */

static void test_msg_api(void **state)
{
    sl_lua_host *h = host("function step(msg, ctx)\n"
                          "  assert(#msg.id == 36 and msg.timestamp > 0 and msg.attempts == 0)\n"
                          "  assert(msg.key == 'k1' and msg.headers['X-Tier'] == 'silver')\n"
                          "  assert(ctx.route == 'orders' and math.type(ctx.now()) == 'integer')\n"
                          "  msg.headers['x-tier'] = 'gold'\n"
                          "  msg.headers['x-drop'] = nil\n"
                          "  msg.headers['x-num'] = 42\n"
                          "  local n = 0\n"
                          "  for k, v in pairs(msg.headers) do n = n + 1 end\n"
                          "  assert(n == #msg.headers, 'pairs and # agree')\n"
                          "  msg.key = 'k2'\n"
                          "  msg.body = msg.body .. '!' .. n\n"
                          "  local ok, e = pcall(function() msg.id = 'x' end)\n"
                          "  assert(not ok and e:find('read%-only'))\n"
                          "  ok, e = pcall(function() msg.headers['x-bad'] = 'a\\r\\nb' end)\n"
                          "  assert(not ok and e:find('CR'))\n"
                          "  ok, e = pcall(function() msg.nope = 1 end)\n"
                          "  assert(not ok)\n"
                          "  return msg\n"
                          "end\n");
    sl_msg *m = msg_with("hello");
    assert_int_equal(sl_msg_set_key(m, "k1", 2), 0);
    assert_int_equal(sl_msg_set_header(m, "x-tier", "silver", 6), 0);
    assert_int_equal(sl_msg_set_header(m, "x-drop", "1", 1), 0);
    char id[SL_ID_LEN + 1];
    memcpy(id, m->id, sizeof id);
    sl_error err;
    int rc = sl_lua_host_run_step(h, m, &err);
    if (rc != SL_STEP_OK)
        fail_msg("%s", err.msg);
    assert_string_equal(m->body, "hello!2");
    assert_string_equal(sl_msg_get_header(m, "x-tier", NULL), "gold");
    assert_string_equal(sl_msg_get_header(m, "x-num", NULL), "42");
    assert_null(sl_msg_get_header(m, "x-drop", NULL));
    assert_int_equal(m->key_len, 2);
    assert_memory_equal(m->key, "k2", 2);
    assert_string_equal(m->id, id);
    sl_msg_free(m);
    sl_lua_host_free(h);
}

static void test_returns(void **state)
{
    sl_lua_host *h = host("local kept -- a message kept by the script itself (an upvalue)\n"
                          "function step(msg)\n"
                          "  local b = msg.body\n"
                          "  if b == 'nil' then return nil end\n"
                          "  if b == 'false' then return false end\n"
                          "  if b == 'clone' then local c = msg:clone(); c.body = 'cloned'; "
                          "c.headers.a = '1'; return c end\n"
                          "  if b == 'new' then return message.new{ json = {n = 1}, key = 'nk', "
                          "headers = { b = '2' } } end\n"
                          "  if b == 'one' then msg.body = 'listed'; return { msg } end\n"
                          "  if b == 'empty' then return {} end\n"
                          "  if b == 'two' then return { msg, msg:clone() } end\n"
                          "  if b == 'three' then local out = {}\n"
                          "    for i = 1, 3 do local p = i == 1 and msg or msg:clone()\n"
                          "      p.body = 'part ' .. i; p.headers['x-part'] = tostring(i)\n"
                          "      out[i] = p end\n"
                          "    return out end\n"
                          "  if b == 'bad_split' then return { msg, 7 } end\n"
                          "  if b == 'number' then return 42 end\n"
                          "  if b == 'keep' then kept = msg; return msg end\n"
                          "  if b == 'stale' then return kept end\n"
                          "  if b == 'stale_read' then return kept.body end\n"
                          "  if b == 'stale_json' then return kept:json() end\n"
                          "  if b == 'meta' then\n"
                          "    msg.body = getmetatable(msg) .. ' ' .. tostring(msg):sub(1, 7)\n"
                          "    return msg\n"
                          "  end\n"
                          "  return msg\n"
                          "end\n");
    sl_error err;
    sl_msg *m = msg_with("nil");
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_DROP);
    sl_msg_free(m);
    m = msg_with("false");
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_DROP);
    sl_msg_free(m);
    m = msg_with("empty");
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_DROP);
    sl_msg_free(m);

    m = msg_with("clone");
    char id[SL_ID_LEN + 1];
    memcpy(id, m->id, sizeof id);
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "cloned");
    assert_string_equal(sl_msg_get_header(m, "a", NULL), "1");
    assert_string_equal(m->id, id); /* the message keeps its identity */
    sl_msg_free(m);

    m = msg_with("new");
    memcpy(id, m->id, sizeof id);
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "{\"n\":1}");
    assert_memory_equal(m->key, "nk", 2);
    assert_string_equal(sl_msg_get_header(m, "b", NULL), "2");
    assert_string_equal(m->id, id);
    sl_msg_free(m);

    assert_string_equal(run_ok(h, "one"), "listed");
    run_fails(h, "two", "only one can go on"); /* without a caller that takes splits */
    sl_msg *orig = msg_with("two");
    sl_msg **more = NULL;
    size_t n_more = 0;
    assert_int_equal(sl_lua_host_run_step_split(h, orig, &more, &n_more, &err), SL_STEP_OK);
    assert_int_equal(n_more, 1);
    assert_string_equal(more[0]->body, "two");
    assert_string_not_equal(more[0]->id, orig->id); /* a split makes a new message */
    sl_msg_free(more[0]);
    free(more);
    sl_msg_free(orig);
    orig = msg_with("three");
    assert_int_equal(sl_lua_host_run_step_split(h, orig, &more, &n_more, &err), SL_STEP_OK);
    assert_int_equal(n_more, 2);
    assert_string_equal(orig->body, "part 1");
    assert_string_equal(more[0]->body, "part 2");
    assert_string_equal(more[1]->body, "part 3");
    assert_string_equal(sl_msg_get_header(more[1], "x-part", NULL), "3");
    for (size_t i = 0; i < n_more; i++)
        sl_msg_free(more[i]);
    free(more);
    sl_msg_free(orig);
    orig = msg_with("bad_split");
    assert_int_equal(sl_lua_host_run_step_split(h, orig, &more, &n_more, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "element 2 of the returned list is a number"));
    assert_null(more);
    sl_msg_free(orig);
    run_fails(h, "number", "returned a number");
    assert_string_equal(run_ok(h, "keep"), "keep");
    run_fails(h, "stale", "message from an earlier call");
    run_fails(h, "stale_read", "earlier step call");
    run_fails(h, "stale_json", "earlier step call");
    assert_string_equal(run_ok(h, "meta"), "sluice.msg message"); /* a lent message */
    sl_lua_host_free(h);
}

/* ---- json ----------------------------------------------------------------------- */

static void test_json_roundtrip(void **state)
{
    sl_lua_host *h = host("function step(msg)\n"
                          "  msg:set_json(msg:json())\n"
                          "  assert(json.encode(json.decode(msg.body)) == msg.body)\n"
                          "  return msg\n"
                          "end\n");
    /* canonical form: keys in input order, compact, floats with a fraction */
    static const char *const same[] = {
        "{}",
        "[]",
        "null",
        "{\"a\":[],\"b\":{},\"c\":null,\"d\":[null,null]}",
        "[1,-2,3.5,-0.25,1e+300,9223372036854775807,-9223372036854775808]",
        "{\"e\":\"\\u0001 \\\"q\\\" \\\\ \\n\\t\",\"u\":\"é😀\"}",
        "{\"deep\":[[[[{\"x\":[true,false]}]]]]}",
        "\"just a string\"",
        "{\"1\":\"numeric key\",\"a\":{\"b\":{\"c\":1.5}}}",
        "[0.1,0.30000000000000004,123456789.125,2.0]",
    };
    for (size_t i = 0; i < sizeof same / sizeof same[0]; i++)
        assert_string_equal(run_ok(h, same[i]), same[i]);
    /* accepted and normalised */
    assert_string_equal(run_ok(h, " { \"b\" : 1 , \"a\" : \"\\u00e9\\ud83d\\ude00\\/\" } "),
                        "{\"b\":1,\"a\":\"é😀/\"}");
    assert_string_equal(run_ok(h, "[1E2, 12345678901234567890]"), "[100.0,1.2345678901234567e+19]");
    /* rejected */
    static const char *const bad[] = {"",   "{",        "[1,]",        "{\"a\" 1}", "tru",
                                      "01", "\"\x01\"", "\"\\ud800\"", "[1] [2]",   "\"\xff\xfe\"",
                                      "1.", "{'a':1}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        run_fails(h, bad[i], "json: ");
    sl_lua_host_free(h);

    /* deep nesting is refused, not a stack overflow */
    char deep[2000];
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 999);
    deep[1999] = '\0';
    h = host("function step(msg) msg:json() return msg end\n");
    run_fails(h, deep, "nested too deeply");
    sl_lua_host_free(h);
}

static void test_json_encode_tables(void **state)
{
    sl_lua_host *h = host("local cases = {\n"
                          "  { {}, '{}' }, { {1, 2, 'x'}, '[1,2,\"x\"]' }, { {a = 1, b = {true}}, "
                          "'{\"a\":1,\"b\":[true]}' },\n"
                          "  { json.array(), '[]' }, { json.object({}), '{}' }, { {[1] = 'a', [3] "
                          "= 'c'}, '{\"1\":\"a\",\"3\":\"c\"}' },\n"
                          "  { {1, x = 2}, '{\"1\":1,\"x\":2}' }, { {json.null, 1}, '[null,1]' }, "
                          "{ 3.0, '3.0' }, { 7, '7' },\n"
                          "  { {[1.5] = 'f'}, '{\"1.5\":\"f\"}' },\n"
                          "}\n"
                          "function step(msg)\n"
                          "  for i, c in ipairs(cases) do\n"
                          "    local got = json.encode(c[1])\n"
                          "    assert(got == c[2], i .. ': ' .. got)\n"
                          "  end\n"
                          "  local t = {} t.self = t\n"
                          "  assert(not pcall(json.encode, t))\n"
                          "  assert(not pcall(json.encode, 0/0))\n"
                          "  assert(not pcall(json.encode, {f = print}))\n"
                          "  local d = json.decode('{\"a\":null,\"l\":[]}')\n"
                          "  assert(d.a == json.null and #d.l == 0 and json.encode(d.l) == '[]')\n"
                          "  assert(getmetatable(d) == 'json.object')\n"
                          "  assert(not pcall(setmetatable, d, {__gc = true}))\n"
                          "  return msg\n"
                          "end\n");
    run_ok(h, "x");
    sl_lua_host_free(h);
}

static void test_json_cache(void **state)
{
    /* msg:json() decodes once per call and returns the same table; set_json
     * re-encodes; a new body drops the cached table */
    sl_lua_host *h = host("function step(msg)\n"
                          "  local a = msg:json(); local b = msg:json()\n"
                          "  assert(rawequal(a, b))\n"
                          "  a.n = a.n + 1\n"
                          "  assert(msg.body == '{\"n\":1}')\n"
                          "  msg:set_json(a)\n"
                          "  assert(rawequal(msg:json(), a))\n"
                          "  msg.body = '{\"n\":10}'\n"
                          "  assert(msg:json().n == 10)\n"
                          "  msg:set_json(a)\n"
                          "  return msg\n"
                          "end\n");
    assert_string_equal(run_ok(h, "{\"n\":1}"), "{\"n\":2}");
    sl_lua_host_free(h);
}

static void test_xml_module(void **state)
{
    sl_lua_host *h = host(
        "function step(msg)\n"
        "  local x = xml.encode({ order = { ['@id'] = 'o1', item = { 'a', 'b' } } }, { declaration "
        "= false })\n"
        "  assert(x:find('<order id=\"o1\"><item>a</item><item>b</item></order>', 1, true), x)\n"
        "  local t = xml.decode(x)\n"
        "  assert(t.order['@id'] == 'o1' and t.order.item[2] == 'b')\n"
        "  local c = xml.decode('<a><n>5</n></a>', { coerce = true })\n"
        "  assert(c.a.n == 5)\n"
        "  assert(not pcall(xml.decode, '<a>'))\n"
        "  msg.body = x\n"
        "  return msg\n"
        "end\n");
    run_ok(h, "x");
    sl_lua_host_free(h);
}

/* ---- ctx.cache ------------------------------------------------------------------ */

static void test_cache_lru_ttl(void **state)
{
    sl_lua_host *h =
        host_svc("function step(msg, ctx)\n"
                 "  local c = ctx.cache\n"
                 "  local op, k, v, ttl = msg.body:match('^(%a+) ?(%S*) ?(%S*) ?(%d*)$')\n"
                 "  if op == 'set' then c:set(k, v, tonumber(ttl)) return msg end\n"
                 "  if op == 'get' then msg.body = tostring(c:get(k)) return msg end\n"
                 "  if op == 'del' then c:delete(k) return msg end\n"
                 "  if op == 'size' then msg.body = tostring(c:size()) return msg end\n"
                 "  if op == 'fill' then\n"
                 "    for i = 1, tonumber(k) do c:set('f' .. i, i) end\n"
                 "    return msg\n"
                 "  end\n"
                 "  if op == 'table' then c:set('t', { tier = 'gold' }) "
                 "msg.body = c:get('t').tier return msg end\n"
                 "end\n",
                 NULL, 5000); /* slow under valgrind */
    run_ok(h, "set a 1");
    assert_string_equal(run_ok(h, "get a"), "1");
    assert_string_equal(run_ok(h, "get zz"), "nil");
    run_ok(h, "del a");
    assert_string_equal(run_ok(h, "get a"), "nil");
    assert_string_equal(run_ok(h, "table"), "gold");

    /* TTL */
    run_ok(h, "set t1 v 30");
    assert_string_equal(run_ok(h, "get t1"), "v");
    struct timespec ts = {0, 60 * 1000000L};
    nanosleep(&ts, NULL);
    assert_string_equal(run_ok(h, "get t1"), "nil");

    /* LRU: capacity SL_LUA_CACHE_ENTRIES; touching f1 keeps it, f2 goes */
    run_ok(h, "del t");
    char cmd[64];
    snprintf(cmd, sizeof cmd, "fill %d", SL_LUA_CACHE_ENTRIES);
    run_ok(h, cmd);
    assert_string_equal(run_ok(h, "size"), "4096");
    assert_string_equal(run_ok(h, "get f1"), "1");
    run_ok(h, "set new x");
    assert_string_equal(run_ok(h, "size"), "4096");
    assert_string_equal(run_ok(h, "get f1"), "1");
    assert_string_equal(run_ok(h, "get f2"), "nil");
    assert_string_equal(run_ok(h, "get f3"), "3");
    assert_string_equal(run_ok(h, "get new"), "x");
    sl_lua_host_free(h);
}

/* ---- ctx.http: a small keep-alive HTTP server in a thread ------------------------ */

typedef struct server {
    int fd;
    int port;
    pthread_t th;
    atomic_int accepted;
    atomic_int requests;
    atomic_int flaky;
    char last_api_key[64];
} server;

static void respond(int c, int status, const char *extra, const char *body)
{
    char head[512];
    int n =
        snprintf(head, sizeof head, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nX-Test: yes\r\n%s\r\n",
                 status, strlen(body), extra);
    if (write(c, head, (size_t)n) != n || write(c, body, strlen(body)) < 0)
        return;
}

static void *server_main(void *arg)
{
    server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        atomic_fetch_add(&s->accepted, 1);
        char buf[8192];
        size_t have = 0;
        for (;;) {
            char *end;
            while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
                ssize_t r = read(c, buf + have, sizeof buf - have - 1);
                if (r <= 0)
                    goto next;
                have += (size_t)r;
            }
            buf[have] = '\0';
            size_t head_len = (size_t)(end - buf) + 4;
            size_t clen = 0;
            char *cl = strcasestr(buf, "content-length:");
            if (cl && cl < end)
                clen = strtoul(cl + 15, NULL, 10);
            while (have < head_len + clen) {
                ssize_t r = read(c, buf + have, sizeof buf - have - 1);
                if (r <= 0)
                    goto next;
                have += (size_t)r;
            }
            buf[have] = '\0';
            atomic_fetch_add(&s->requests, 1);
            char method[16], path[256];
            if (sscanf(buf, "%15s %255s", method, path) != 2)
                goto next;
            char *key = strcasestr(buf, "x-api-key: ");
            if (key && key < end)
                sscanf(key + 11, "%63[^\r]", s->last_api_key);
            if (!strcmp(path, "/quit")) {
                respond(c, 200, "", "bye");
                close(c);
                return NULL;
            } else if (!strcmp(path, "/customers/c-1")) {
                respond(c, 200, "Content-Type: application/json\r\n", "{\"tier\":\"gold\"}");
            } else if (!strcmp(path, "/flaky")) {
                if (atomic_fetch_add(&s->flaky, 1) < 2)
                    respond(c, 503, "", "busy");
                else
                    respond(c, 200, "", "ok");
            } else if (!strcmp(path, "/down")) {
                respond(c, 503, "", "down");
            } else if (!strcmp(path, "/missing")) {
                respond(c, 404, "", "no");
            } else if (!strcmp(path, "/slow")) {
                struct timespec ts = {0, 600 * 1000000L};
                nanosleep(&ts, NULL);
                respond(c, 200, "", "slow");
            } else if (!strcmp(path, "/echo")) {
                char extra[64];
                snprintf(extra, sizeof extra, "X-Method: %s\r\n", method);
                respond(c, 200, extra, buf + head_len);
            } else {
                respond(c, 500, "", "?");
            }
            memmove(buf, buf + head_len + clen, have - head_len - clen);
            have -= head_len + clen;
        }
    next:
        close(c);
    }
}

static void server_start(server *s)
{
    memset(s, 0, sizeof *s);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    getsockname(s->fd, (struct sockaddr *)&a, &len);
    s->port = ntohs(a.sin_port);
    assert_int_equal(listen(s->fd, 16), 0);
    assert_int_equal(pthread_create(&s->th, NULL, server_main, s), 0);
}

static void server_stop(server *s, const sl_connector_conf *cc)
{
    sl_http_call_req req = {.path = "/quit"};
    sl_http_call_resp resp;
    sl_http_call(cc, &req, &resp);
    sl_http_call_resp_free(&resp);
    pthread_join(s->th, NULL);
    close(s->fd);
}

/* Step services over a list of connector configs: one sl_http_call each
 * (what the gateway does through the http_client connector, without the
 * breaker). */
typedef struct conf_list {
    const sl_connector_conf *cc;
    size_t n;
} conf_list;

static int call_conf(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                     sl_call_resp *resp)
{
    const conf_list *l = svc->arg;
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->cc[i].name, connector) == 0)
            return sl_http_call(&l->cc[i], req, resp);
    }
    return sl_call_resp_fail(resp, SL_FAIL, "no connector named '%s' that takes calls", connector);
}

static void test_http_real_server(void **state)
{
    server s;
    server_start(&s);
    char base[64];
    snprintf(base, sizeof base, "http://127.0.0.1:%d", s.port);
    sl_kv hdr = {"x-api-key", "secret-1"};
    sl_http_client_conf hc = {
        .base_url = base, .timeout_ms = 1000, .headers = &hdr, .n_headers = 1};
    sl_connector_conf cc = {.name = "crm", .type = "http_client", .priv = &hc};
    conf_list cl = {&cc, 1};
    sl_step_services svc = {.call = call_conf, .arg = &cl};
    /* a 300 ms step timeout (room for ASan on a loaded machine): waiting for
     * /slow (600 ms) does not count */
    sl_lua_host *h =
        host_svc("function step(msg, ctx)\n"
                 "  local r = ctx.http('crm', { path = '/customers/c-1' })\n"
                 "  assert(r.ok and r.status == 200 and r.headers['x-test'] == 'yes', r.error)\n"
                 "  assert(json.decode(r.body).tier == 'gold')\n"
                 "  r = ctx.http('crm', { method = 'POST', path = '/echo', json = { a = 1 } })\n"
                 "  assert(r.ok and r.body == '{\"a\":1}' and r.headers['x-method'] == 'POST')\n"
                 "  r = ctx.http('crm', { method = 'PUT', path = '/echo', body = 'raw', headers = "
                 "{ ['x-k'] = 'v' } })\n"
                 "  assert(r.ok and r.body == 'raw' and r.headers['x-method'] == 'PUT')\n"
                 "  r = ctx.http('crm', { path = '/flaky' })\n"
                 "  assert(not r.ok and r.status == 503, 'one attempt, no retry')\n"
                 "  r = ctx.http('crm', { path = '/down' })\n"
                 "  assert(not r.ok and r.status == 503 and r.error:find('HTTP 503'), r.error)\n"
                 "  r = ctx.http('crm', { path = '/missing' })\n"
                 "  assert(not r.ok and r.status == 404)\n"
                 "  r = ctx.http('crm', { path = '/slow' })\n"
                 "  assert(r.ok and r.body == 'slow')\n"
                 "  r = ctx.http('nope', { path = '/' })\n"
                 "  assert(not r.ok and r.error:find('no connector named'))\n"
                 "  r = ctx.http('crm', { path = '@evil.example/' })\n"
                 "  assert(not r.ok and r.error:find('bad path'))\n"
                 "  msg.body = 'done'\n"
                 "  return msg\n"
                 "end\n",
                 &svc, 300);
    assert_string_equal(run_ok(h, "x"), "done");
    assert_string_equal(s.last_api_key, "secret-1");
    /* one request per call: ctx.http never retries */
    assert_int_equal(atomic_load(&s.requests), 7);
    /* one keep-alive connection for all of them */
    assert_int_equal(atomic_load(&s.accepted), 1);
    sl_lua_host_free(h);

    /* a connection refused is transient, with a clear error */
    sl_http_client_conf dead_hc = {.base_url = "http://127.0.0.1:1", .timeout_ms = 500};
    sl_connector_conf dead = {.name = "dead", .type = "http_client", .priv = &dead_hc};
    sl_http_call_req req = {.path = "/x"};
    sl_http_call_resp resp;
    assert_int_equal(sl_http_call(&dead, &req, &resp), SL_RETRY);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(resp.error, "GET dead"));
    sl_http_call_resp_free(&resp);

    server_stop(&s, &cc);
    sl_http_call_thread_cleanup();
}

static int fake_calls;

static int fake_http(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                     sl_call_resp *resp)
{
    fake_calls++;
    assert_string_equal(svc->arg, "arg");
    memset(resp, 0, sizeof *resp);
    resp->status = 200;
    resp->result = SL_OK;
    char body[256];
    snprintf(body, sizeof body, "%s %s %s", connector, req->method, req->path);
    resp->body = strdup(body);
    resp->body_len = strlen(body);
    return SL_OK;
}

static const sl_step_services fake_services = {.call = fake_http, .arg = "arg"};

static void test_http_replaced_transport(void **state)
{
    sl_lua_host *h =
        host("function step(msg, ctx)\n"
             "  msg.body = ctx.http('crm', { method = 'DELETE', path = '/c/1' }).body\n"
             "  return msg\n"
             "end\n");
    sl_lua_host_set_services(h, &fake_services);
    assert_string_equal(run_ok(h, "x"), "crm DELETE /c/1");
    assert_int_equal(fake_calls, 1);
    sl_lua_host_set_services(h, NULL); /* no services: the call fails, the body is "" */
    assert_string_equal(run_ok(h, "x"), "");
    assert_int_equal(fake_calls, 1);
    sl_lua_host_free(h);
}

/* A partner that is down: every call fails transiently. */
static int down_http(const sl_step_services *svc, const char *connector, const sl_call_req *req,
                     sl_call_resp *resp)
{
    (*(int *)svc->arg)++;
    return sl_call_resp_fail(resp, SL_RETRY, "HTTP 503 from %s", connector);
}

static int step_rc(sl_lua_host *h, sl_error *err)
{
    sl_msg *m = msg_with("x");
    int rc = sl_lua_host_run_step(h, m, err);
    sl_msg_free(m);
    return rc;
}

/* ctx.http never retries; a script that gives up after a transient failure
 * (it raises, or calls ctx.retry) makes the step ask for a retry; a script
 * that falls back goes on; other errors stay permanent. */
static void test_http_transient_retry(void **state)
{
    int calls = 0;
    sl_step_services down = {.call = down_http, .arg = &calls};
    sl_error err;
    sl_lua_host *h =
        host_svc("function step(msg, ctx)\n"
                 "  local r = ctx.http('crm', { path = '/c/1' })\n"
                 "  if msg.body == 'fallback' then msg.body = 'default' return msg end\n"
                 "  assert(r.ok, r.error)\n"
                 "  return msg\n"
                 "end\n",
                 &down, 1000);
    assert_int_equal(step_rc(h, &err), SL_STEP_RETRY);
    assert_non_null(strstr(err.msg, "HTTP 503 from crm"));
    assert_int_equal(calls, 1); /* one attempt, no sleep, no retry inside */
    sl_msg *m = msg_with("fallback");
    assert_int_equal(sl_lua_host_run_step(h, m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "default");
    sl_msg_free(m);
    sl_lua_host_free(h);

    h = host_svc("function step(msg, ctx) ctx.retry('not yet') end\n", NULL, 1000);
    assert_int_equal(step_rc(h, &err), SL_STEP_RETRY);
    assert_non_null(strstr(err.msg, "retry: not yet"));
    sl_lua_host_free(h);

    h = host_svc("function step(msg, ctx) error('broken') end\n", &down, 1000);
    assert_int_equal(step_rc(h, &err), SL_STEP_FAIL); /* no transient call: permanent */
    sl_lua_host_free(h);

    /* a timeout after a transient failure is still permanent */
    h = host_svc("function step(msg, ctx)\n"
                 "  ctx.http('crm', {})\n"
                 "  while true do end\n"
                 "end\n",
                 &down, 20);
    assert_int_equal(step_rc(h, &err), SL_STEP_FAIL);
    assert_non_null(strstr(err.msg, "timeout"));
    sl_lua_host_free(h);
}

/* ---- the step, built from a config ----------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_step_from_config(void **state)
{
    char dir[] = "/tmp/sl_luacfg_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char p[256], lib[256], conf[256], helper[256];
    snprintf(lib, sizeof lib, "%s/lua", dir);
    assert_int_equal(mkdir(lib, 0700), 0);
    snprintf(p, sizeof p, "%s/lua/up.lua", dir);
    write_file(p, "local util = require('util')\n"
                  "function up(msg, ctx) msg.body = util.shout(msg.body) return msg end\n");
    snprintf(helper, sizeof helper, "%s/lua/util.lua", dir);
    write_file(helper, "return { shout = function(s) return s:upper() .. '!' end }\n");
    snprintf(conf, sizeof conf, "%s/sluice.yaml", dir);
    write_file(conf,
               "connectors:\n"
               "  out: { type: stdout }\n"
               "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
               "routes:\n"
               "  r:\n"
               "    from: { connector: in, path: /x }\n"
               "    steps:\n"
               "      - lua: { file: lua/up.lua, function: up, timeout: 500ms, memory: 1MiB }\n"
               "      - filter: \"msg.body ~= 'SKIP!'\"\n"
               "    to: [ { connector: out } ]\n");
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load(conf, &errs);
    if (!cfg)
        fail_msg("config: %s", errs.n ? errs.lines[0] : "?");
    sl_step **steps;
    size_t n;
    sl_error err;
    if (sl_steps_build(NULL, NULL, &cfg->routes[0], &steps, &n, &err) < 0)
        fail_msg("build: %s", err.msg);
    assert_int_equal(n, 2);
    assert_string_equal(sl_step_type_name(steps[0]), "lua");
    sl_steps_set_services(steps, n, &fake_services);
    sl_msg *m = msg_with("hi");
    assert_int_equal(sl_step_process(steps[0], m, &err), SL_STEP_OK);
    assert_int_equal(sl_step_process(steps[1], m, &err), SL_STEP_OK);
    assert_string_equal(m->body, "HI!");
    assert_int_equal(sl_msg_set_body(m, "skip", 4), 0);
    assert_int_equal(sl_step_process(steps[0], m, &err), SL_STEP_OK);
    assert_int_equal(sl_step_process(steps[1], m, &err), SL_STEP_DROP);
    sl_msg_free(m);
    sl_steps_free(steps, n);
    sl_config_free(cfg);

    /* a missing function is reported at the step's place in the config */
    write_file(conf, "connectors:\n"
                     "  out: { type: stdout }\n"
                     "  in: { type: http_server, listen: \"127.0.0.1:0\" }\n"
                     "routes:\n"
                     "  r:\n"
                     "    from: { connector: in, path: /x }\n"
                     "    steps:\n"
                     "      - lua: { file: lua/up.lua, function: nope }\n"
                     "    to: [ { connector: out } ]\n");
    cfg = sl_config_load(conf, &errs);
    assert_non_null(cfg);
    assert_int_equal(sl_steps_build(NULL, NULL, &cfg->routes[0], &steps, &n, &err), -1);
    assert_non_null(strstr(err.msg, "sluice.yaml:8:"));
    assert_non_null(strstr(err.msg, "no global function 'nope'"));
    sl_config_free(cfg);
    sl_config_errors_free(&errs);
    unlink(p);
    unlink(helper);
    unlink(conf);
    rmdir(lib);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_msg_api),
        cmocka_unit_test(test_returns),
        cmocka_unit_test(test_json_roundtrip),
        cmocka_unit_test(test_json_encode_tables),
        cmocka_unit_test(test_json_cache),
        cmocka_unit_test(test_xml_module),
        cmocka_unit_test(test_cache_lru_ttl),
        cmocka_unit_test(test_http_real_server),
        cmocka_unit_test(test_http_replaced_transport),
        cmocka_unit_test(test_http_transient_retry),
        cmocka_unit_test(test_step_from_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
