/* Serves the embedded console assets (see console.h): the single page app,
 * its script and its style sheet, with their content types and no caching
 * (a new binary serves new assets at once). */
#include <microhttpd.h>
#include <stdint.h>
#include <string.h>

#include "console.h"

#define CONSOLE_PREFIX "/console/"

const sl_console_asset *sl_console_find(const char *name)
{
    for (const sl_console_asset *a = sl_console_assets; a->name != NULL; a++)
        if (strcmp(a->name, name) == 0)
            return a;
    return NULL;
}

/* The content type of an asset, from its extension. */
static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    if (dot != NULL && strcmp(dot, ".html") == 0)
        return "text/html; charset=utf-8";
    if (dot != NULL && strcmp(dot, ".js") == 0)
        return "text/javascript; charset=utf-8";
    if (dot != NULL && strcmp(dot, ".css") == 0)
        return "text/css; charset=utf-8";
    return "application/octet-stream";
}

/* Queues status with a static body (never freed) and the given headers
 * (name/value pairs, NULL-ended). */
static int answer(struct MHD_Connection *conn, unsigned status, const void *body, size_t len,
                  const char *const *headers)
{
    void *data = (void *)(uintptr_t)body; /* MHD's API is not const-correct */
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_PERSISTENT);
    if (resp == NULL)
        return MHD_NO;
    for (size_t i = 0; headers[i] != NULL && headers[i + 1] != NULL; i += 2)
        MHD_add_response_header(resp, headers[i], headers[i + 1]);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    int ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int answer_text(struct MHD_Connection *conn, unsigned status, const char *text,
                       const char *allow)
{
    const char *h[] = {MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8",
                       allow ? MHD_HTTP_HEADER_ALLOW : NULL, allow, NULL};
    return answer(conn, status, text, strlen(text), h);
}

int sl_console_serve(struct MHD_Connection *conn, const char *url, const char *method)
{
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "the console takes GET\n", "GET");
    if (strcmp(url, "/") == 0 || strcmp(url, "/console") == 0) {
        const char *h[] = {MHD_HTTP_HEADER_LOCATION, CONSOLE_PREFIX, MHD_HTTP_HEADER_CONTENT_TYPE,
                           "text/plain; charset=utf-8", NULL};
        static const char moved[] = "the console is at /console/\n";
        return answer(conn, MHD_HTTP_FOUND, moved, sizeof moved - 1, h);
    }
    if (strncmp(url, CONSOLE_PREFIX, strlen(CONSOLE_PREFIX)) != 0)
        return answer_text(conn, MHD_HTTP_NOT_FOUND, "no such page\n", NULL);
    const char *name = url + strlen(CONSOLE_PREFIX);
    const sl_console_asset *a = sl_console_find(name[0] != '\0' ? name : "index.html");
    if (a == NULL)
        return answer_text(conn, MHD_HTTP_NOT_FOUND, "no such console file\n", NULL);
    const char *h[] = {MHD_HTTP_HEADER_CONTENT_TYPE, content_type(a->name), NULL};
    return answer(conn, MHD_HTTP_OK, a->data, a->len, h);
}
