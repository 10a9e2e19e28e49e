/* The gateway's own log lines, to stderr: text by default, JSON lines with
 * `log_format: json`. Each line has a time, a level, a component (the module
 * or connector that speaks) and a message that says what and where. */
#ifndef SLUICE_LOGGING_H
#define SLUICE_LOGGING_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { SL_LVL_DEBUG = 0, SL_LVL_INFO, SL_LVL_WARN, SL_LVL_ERROR } sl_level;

/* Sets the format (json or text) and the lowest level printed. Call once at
 * start, before other threads log. */
void sl_logging_setup(bool json, sl_level min_level);

/* Parses "debug", "info", "warn", "error"; returns SL_LVL_INFO otherwise. */
sl_level sl_level_parse(const char *s);

/* Writes one line. Thread-safe: each line is written with a single write. */
void sl_logf(sl_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One structured field of a log line: a key and either a string (str not
 * NULL) or an integer (str NULL: num). */
typedef struct sl_log_field {
    const char *key;
    const char *str;
    long long num;
} sl_log_field;

#define SL_LF_STR(k, v) ((sl_log_field){.key = (k), .str = (v) ? (v) : "", .num = 0})
#define SL_LF_NONE ((sl_log_field){.key = NULL, .str = "", .num = 0}) /* left out */
#define SL_LF_INT(k, v) ((sl_log_field){.key = (k), .str = NULL, .num = (long long)(v)})

/* Writes one line like sl_logf() with n structured fields: in JSON each is a
 * member of the line's object (before "msg"; integers as numbers); in text
 * they follow the message as ` key=value` (a value with a space, a quote or
 * an equals sign is quoted). Fields with a NULL key are left out. */
void sl_logf_fields(sl_level lvl, const char *component, const sl_log_field *fields, size_t n,
                    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#define sl_debug(comp, ...) sl_logf(SL_LVL_DEBUG, comp, __VA_ARGS__)
#define sl_info(comp, ...) sl_logf(SL_LVL_INFO, comp, __VA_ARGS__)
#define sl_warn(comp, ...) sl_logf(SL_LVL_WARN, comp, __VA_ARGS__)
#define sl_err(comp, ...) sl_logf(SL_LVL_ERROR, comp, __VA_ARGS__)

#endif
