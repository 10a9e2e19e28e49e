/* The gateway's own log lines, to stderr: text by default, JSON lines with
 * `log_format: json`. Each line has a time, a level, a component (the module
 * or connector that speaks) and a message that says what and where. */
#ifndef SLUICE_LOGGING_H
#define SLUICE_LOGGING_H

#include <stdbool.h>

typedef enum { SL_LVL_DEBUG = 0, SL_LVL_INFO, SL_LVL_WARN, SL_LVL_ERROR } sl_level;

/* Sets the format (json or text) and the lowest level printed. Call once at
 * start, before other threads log. */
void sl_logging_setup(bool json, sl_level min_level);

/* Parses "debug", "info", "warn", "error"; returns SL_LVL_INFO otherwise. */
sl_level sl_level_parse(const char *s);

/* Writes one line. Thread-safe: each line is written with a single write. */
void sl_logf(sl_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define sl_debug(comp, ...) sl_logf(SL_LVL_DEBUG, comp, __VA_ARGS__)
#define sl_info(comp, ...) sl_logf(SL_LVL_INFO, comp, __VA_ARGS__)
#define sl_warn(comp, ...) sl_logf(SL_LVL_WARN, comp, __VA_ARGS__)
#define sl_err(comp, ...) sl_logf(SL_LVL_ERROR, comp, __VA_ARGS__)

#endif
