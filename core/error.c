/* Errors shared by every module: see error.h. */
#include "error.h"

#include <stdio.h>
#include <string.h>

int sl_error_setv(sl_error *err, sl_errcode code, const char *fmt, va_list ap)
{
    if (err) {
        err->code = code;
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    }
    return -1;
}

int sl_error_set(sl_error *err, sl_errcode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_error_setv(err, code, fmt, ap);
    va_end(ap);
    return -1;
}

void sl_error_clear(sl_error *err)
{
    if (err) {
        err->code = SL_ENONE;
        err->msg[0] = '\0';
    }
}

const char *sl_errcode_name(sl_errcode code)
{
    static const char *const names[] = {
        "ENONE",   "EINVAL",   "ENOMEM",   "EIO",       "EFULL",
        "ECLOSED", "ECORRUPT", "ETIMEOUT", "ENOTFOUND", "ECONFIG",
    };
    if ((unsigned)code < sizeof names / sizeof names[0])
        return names[code];
    return "EUNKNOWN";
}
