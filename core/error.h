/* Errors and step/output results shared by every module of Sluice.
 * An sl_error carries a code and a human-readable message; functions that can
 * fail take an sl_error * and fill it, and the caller decides what to do. */
#ifndef SLUICE_ERROR_H
#define SLUICE_ERROR_H

#include <stdarg.h>

/* What an output or a step says happened; the core decides what follows
 * (Fluent Bit's FLB_OK / FLB_RETRY / FLB_ERROR). */
typedef enum {
    SL_OK = 0,    /* done */
    SL_RETRY = 1, /* transient: retry with backoff, counts against the breaker */
    SL_FAIL = 2,  /* permanent: dead letter at once */
} sl_result;

typedef enum {
    SL_ENONE = 0,
    SL_EINVAL,    /* bad argument or bad input */
    SL_ENOMEM,    /* allocation failed */
    SL_EIO,       /* a system call failed; the message says which and why */
    SL_EFULL,     /* back-pressure: max_disk_bytes reached; try again later */
    SL_ECLOSED,   /* the object is closed or shutting down */
    SL_ECORRUPT,  /* on-disk data failed its checks */
    SL_ETIMEOUT,  /* a wait ran out */
    SL_ENOTFOUND, /* the thing named does not exist */
    SL_ECONFIG,   /* the configuration is invalid */
} sl_errcode;

typedef struct sl_error {
    sl_errcode code;
    char msg[512];
} sl_error;

/* Fills err (when not NULL) with code and a printf-style message and
 * returns -1, so that callers can write `return sl_error_set(...)`. */
int sl_error_set(sl_error *err, sl_errcode code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same as sl_error_set, taking a va_list. */
int sl_error_setv(sl_error *err, sl_errcode code, const char *fmt, va_list ap);

/* Clears err to SL_ENONE and an empty message. err may be NULL. */
void sl_error_clear(sl_error *err);

/* Returns a short stable name for code ("EIO", "EFULL", ...). Never NULL. */
const char *sl_errcode_name(sl_errcode code);

#endif
