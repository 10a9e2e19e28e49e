/* libFuzzer target: the Lua JSON codec (json.decode of the body, then
 * json.encode of what it gave, which must decode and encode to the same
 * text) inside the sandboxed Lua step, with a small time and memory budget.
 * One state serves every input, so the shape cache and the key
 * predictions carry over from input to input as they do between messages. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_host.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decoding what was encoded must work and give the same text again: an
 * order, a predicted key or a number that does not survive the round trip
 * raises "unstable", which aborts. */
static const char SCRIPT[] =
    "function step(msg)\n"
    "  local t = json.decode(msg.body)\n"
    "  local a = json.encode(t)\n"
    "  local ok, u = pcall(json.decode, a)\n"
    "  if not ok then error('unstable: cannot read ' .. a .. ': ' .. u) end\n"
    "  local b = json.encode(u)\n"
    "  if a ~= b then error('unstable: ' .. a .. ' then ' .. b) end\n"
    "  msg.body = a\n"
    "  return msg\n"
    "end\n";

static sl_lua_host *host(void)
{
    static sl_lua_host *h;
    if (h)
        return h;
    char path[64];
    snprintf(path, sizeof path, "/tmp/sluice-fuzz-lua-%d.lua", (int)getpid());
    FILE *f = fopen(path, "w");
    if (!f)
        abort();
    fputs(SCRIPT, f);
    fclose(f);
    sl_lua_opts o = {.route = "fuzz", .timeout_ms = 1000, .memory = 64u << 20};
    sl_error err;
    h = sl_lua_host_new(&o, &err);
    if (!h || sl_lua_host_load_script(h, path, "fuzz.lua", "step", &err) != 0)
        abort();
    unlink(path);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sl_lua_host *h = host();
    sl_msg *m = sl_msg_new();
    if (m && sl_msg_set_body(m, (const char *)data, size) == 0) {
        sl_error err;
        if (sl_lua_host_run_step(h, m, &err) != SL_STEP_OK && strstr(err.msg, "unstable")) {
            fprintf(stderr, "%s\n", err.msg);
            abort();
        }
    }
    sl_msg_free(m);
    return 0;
}
