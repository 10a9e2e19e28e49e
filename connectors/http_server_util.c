/* Pure helpers of the http_server input connector: content types and a fast
 * JSON validator (so that ingest checks a body without building a tree).
 * The listener helpers it shares with the admin API are in core/http_util.c. */
#include "http_server_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "json_valid.h"
#include "utf8.h"

/* ---- content types ------------------------------------------------------- */

static bool ieq(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

static bool iends(const char *a, size_t alen, const char *suffix)
{
    size_t sl = strlen(suffix);
    return alen >= sl && strncasecmp(a + alen - sl, suffix, sl) == 0;
}

bool sl_httpd_content_type_ok(sl_content_type kind, const char *ctype)
{
    if (kind == SL_CT_ANY)
        return true;
    if (ctype == NULL)
        return false;
    while (*ctype == ' ' || *ctype == '\t')
        ctype++;
    size_t n = strcspn(ctype, ";");
    while (n > 0 && (ctype[n - 1] == ' ' || ctype[n - 1] == '\t'))
        n--;
    const char *slash = memchr(ctype, '/', n);
    if (slash == NULL || slash == ctype || slash + 1 == ctype + n)
        return false;
    size_t tlen = (size_t)(slash - ctype);
    const char *sub = slash + 1;
    size_t slen = n - tlen - 1;
    switch (kind) {
        case SL_CT_JSON:
            return ieq(ctype, n, "application/json") || iends(sub, slen, "+json");
        case SL_CT_XML:
            return ieq(ctype, n, "application/xml") || ieq(ctype, n, "text/xml") ||
                   iends(sub, slen, "+xml");
        case SL_CT_TEXT:
            return ieq(ctype, tlen, "text");
        case SL_CT_ANY:
        default:
            return true;
    }
}

const char *sl_httpd_content_type_name(sl_content_type kind)
{
    switch (kind) {
        case SL_CT_JSON:
            return "application/json";
        case SL_CT_XML:
            return "application/xml";
        case SL_CT_TEXT:
            return "text/plain";
        case SL_CT_ANY:
        default:
            return NULL;
    }
}
/* ---- JSON validation ----------------------------------------------------- */

bool sl_httpd_json_valid(const char *buf, size_t len, char *msg, size_t cap)
{
    return sl_json_valid(buf, len, msg, cap);
}
