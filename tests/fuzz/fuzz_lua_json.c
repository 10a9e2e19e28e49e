/* libFuzzer target: the Lua JSON codec (json.decode of the body, then
 * json.encode of what it gave) inside the sandboxed Lua step, with a
 * small time and memory budget. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lua_host.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char SCRIPT[] = "function step(msg)\n"
                             "  local t = json.decode(msg.body)\n"
                             "  msg.body = json.encode(t)\n"
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
        sl_lua_host_run_step(h, m, &err);
    }
    sl_msg_free(m);
    return 0;
}
