/* The web console: one HTML, one JS and one CSS file (console/ in the repo),
 * embedded in the binary at build time and served by the admin listener
 * under /console/. The assets need no token; the API calls they make do. */
#ifndef SL_CONSOLE_H
#define SL_CONSOLE_H

#include <stddef.h>

struct MHD_Connection;

/* One embedded file: its base name, its bytes and their count. */
typedef struct sl_console_asset {
    const char *name;
    const unsigned char *data;
    size_t len;
} sl_console_asset;

/* The embedded files (generated from console/ by cmake/embed_assets.cmake),
 * ended by an entry whose name is NULL. */
extern const sl_console_asset sl_console_assets[];

/* Finds the asset called name, or NULL. */
const sl_console_asset *sl_console_find(const char *name);

/* Answers a request for "/", "/console" or "/console/..." on conn: "/" and
 * "/console" redirect to "/console/", which is index.html; "/console/FILE"
 * is that asset (404 when there is none); GET and HEAD only (405 else).
 * Returns what MHD_queue_response returned (an int so callers need not
 * include microhttpd.h here: MHD_YES or MHD_NO). */
int sl_console_serve(struct MHD_Connection *conn, const char *url, const char *method);

#endif
