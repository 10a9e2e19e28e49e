/* The gateway's own log lines (see logging.h): every module calls sl_info()
 * and friends; each line is built on the stack and written to stderr with a
 * single write(2), so lines from different threads never interleave. */
#include "logging.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "json_escape.h"

/* A line is at most PIPE_BUF bytes: one write of that size to a pipe (how
 * containers and systemd collect stderr) is atomic. */
#define LINE_MAX_BYTES PIPE_BUF

static bool log_json;
static sl_level log_min = SL_LVL_INFO;

void sl_logging_setup(bool json, sl_level min_level)
{
    log_json = json;
    log_min = min_level;
}

sl_level sl_level_parse(const char *s)
{
    if (!s)
        return SL_LVL_INFO;
    if (strcasecmp(s, "debug") == 0)
        return SL_LVL_DEBUG;
    if (strcasecmp(s, "warn") == 0 || strcasecmp(s, "warning") == 0)
        return SL_LVL_WARN;
    if (strcasecmp(s, "error") == 0)
        return SL_LVL_ERROR;
    return SL_LVL_INFO;
}

static const char *level_text(sl_level lvl)
{
    switch (lvl) {
        case SL_LVL_DEBUG:
            return "DEBUG";
        case SL_LVL_INFO:
            return "INFO ";
        case SL_LVL_WARN:
            return "WARN ";
        case SL_LVL_ERROR:
            return "ERROR";
    }
    return "?    ";
}

static const char *level_json(sl_level lvl)
{
    switch (lvl) {
        case SL_LVL_DEBUG:
            return "debug";
        case SL_LVL_INFO:
            return "info";
        case SL_LVL_WARN:
            return "warn";
        case SL_LVL_ERROR:
            return "error";
    }
    return "unknown";
}

/* A line under construction; `end` leaves room for the tail ("\n" or
 * "\"}\n") and the "..." that marks a truncated line. */
typedef struct line {
    char buf[LINE_MAX_BYTES];
    size_t len;
    size_t end;
    bool truncated;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (l->truncated)
        return;
    if (l->len + n > l->end) {
        l->truncated = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* Appends as much of s (plain text) as fits, cutting between UTF-8
 * characters, and marks the line truncated when not all of it did. */
static void put_some(line *l, const char *s, size_t n)
{
    if (l->truncated)
        return;
    if (l->len + n <= l->end) {
        put(l, s, n);
        return;
    }
    size_t fit = l->end - l->len;
    while (fit > 0 && ((unsigned char)s[fit] & 0xc0) == 0x80)
        fit--;
    memcpy(l->buf + l->len, s, fit);
    l->len += fit;
    l->truncated = true;
}

/* Appends s as the inside of a JSON string: quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 replaced by U+FFFD. What does
 * not fit whole marks the line truncated. */
static void put_json_escaped(line *l, const char *s)
{
    if (l->truncated)
        return;
    size_t n = strlen(s), w;
    size_t used = sl_json_escape(s, n, SL_JSON_ESC_REPLACE | SL_JSON_ESC_TERMINAL, l->buf + l->len,
                                 l->end - l->len, &w);
    l->len += w;
    if (used < n)
        l->truncated = true;
}

/* Appends s for a text line: control characters (but tab) become \n, \r or
 * \xHH so that one call is always one line. */
static void put_text_escaped(line *l, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p && !l->truncated; p++) {
        if (*p >= 0x20 && *p != 0x7f) {
            const unsigned char *start = p;
            while (p[1] >= 0x20 && p[1] != 0x7f)
                p++;
            put_some(l, (const char *)start, (size_t)(p - start) + 1);
        } else if (*p == '\t') {
            put(l, "\t", 1);
        } else if (*p == '\n') {
            put(l, "\\n", 2);
        } else if (*p == '\r') {
            put(l, "\\r", 2);
        } else {
            char esc[8];
            snprintf(esc, sizeof esc, "\\x%02x", *p);
            put(l, esc, 4);
        }
    }
}

static void write_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere left to report it */
        }
        s += w;
        n -= (size_t)w;
    }
}

/* Appends the fields as JSON members: ,"key":"value" or ,"key":123. */
static void put_json_fields(line *l, const sl_log_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i].key)
            continue;
        put_str(l, ",\"");
        put_json_escaped(l, f[i].key);
        put_str(l, "\":");
        if (f[i].str) {
            put(l, "\"", 1);
            put_json_escaped(l, f[i].str);
            put(l, "\"", 1);
        } else {
            char num[32];
            snprintf(num, sizeof num, "%lld", f[i].num);
            put_str(l, num);
        }
    }
}

/* Appends s in double quotes for a text line, with quotes and backslashes
 * escaped by a backslash. */
static void put_text_quoted(line *l, const char *s)
{
    put(l, "\"", 1);
    while (*s && !l->truncated) {
        size_t run = strcspn(s, "\"\\");
        char part[LINE_MAX_BYTES];
        snprintf(part, sizeof part, "%.*s", (int)(run < sizeof part ? run : sizeof part - 1), s);
        put_text_escaped(l, part);
        s += run;
        if (*s) {
            put(l, "\\", 1);
            put(l, s, 1);
            s++;
        }
    }
    put(l, "\"", 1);
}

/* Appends the fields to a text line as ` key=value`, quoting a value that
 * is empty or holds a space, a quote or an equals sign. */
static void put_text_fields(line *l, const sl_log_field *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!f[i].key)
            continue;
        put(l, " ", 1);
        put_text_escaped(l, f[i].key);
        put(l, "=", 1);
        if (!f[i].str) {
            char num[32];
            snprintf(num, sizeof num, "%lld", f[i].num);
            put_str(l, num);
            continue;
        }
        if (!f[i].str[0] || strpbrk(f[i].str, " \"=\\") != NULL)
            put_text_quoted(l, f[i].str);
        else
            put_text_escaped(l, f[i].str);
    }
}

/* Formats the time of now as 2026-01-02T03:04:05.678Z into when. */
static void format_now(char *when, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t wn = strftime(when, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + wn, cap - wn, ".%03dZ", (int)(ts.tv_nsec / 1000000));
}

/* Builds and writes one line: the message is msg (already formatted; cut
 * when msg_truncated), followed (text) or preceded (JSON) by the fields. */
static void emit(sl_level lvl, const char *component, const sl_log_field *fields, size_t n,
                 const char *msg, bool msg_truncated)
{
    char when[40];
    format_now(when, sizeof when);
    const char *tail = log_json ? "\"}\n" : "\n";
    line l;
    l.len = 0;
    l.end = sizeof l.buf - strlen(tail) - 3;
    l.truncated = false;

    if (log_json) {
        put_str(&l, "{\"ts\":\"");
        put_str(&l, when);
        put_str(&l, "\",\"level\":\"");
        put_str(&l, level_json(lvl));
        put_str(&l, "\",\"component\":\"");
        put_json_escaped(&l, component);
        put(&l, "\"", 1);
        put_json_fields(&l, fields, n);
        put_str(&l, ",\"msg\":\"");
        put_json_escaped(&l, msg);
    } else {
        put_str(&l, when);
        put(&l, " ", 1);
        put_str(&l, level_text(lvl));
        put(&l, " ", 1);
        put_text_escaped(&l, component);
        put(&l, ": ", 2);
        put_text_escaped(&l, msg);
        put_text_fields(&l, fields, n);
    }
    if (l.truncated || msg_truncated) {
        memcpy(l.buf + l.len, "...", 3);
        l.len += 3;
    }
    memcpy(l.buf + l.len, tail, strlen(tail));
    l.len += strlen(tail);
    write_all(STDERR_FILENO, l.buf, l.len);
}

/* Formats fmt/ap and writes the line with its fields. */
static void vlog(sl_level lvl, const char *component, const sl_log_field *fields, size_t n,
                 const char *fmt, va_list ap)
{
    int saved_errno = errno;
    char msg[LINE_MAX_BYTES];
    int mn = vsnprintf(msg, sizeof msg, fmt, ap);
    if (mn < 0)
        snprintf(msg, sizeof msg, "(unprintable log message)");
    bool msg_truncated = mn >= 0 && (size_t)mn >= sizeof msg;
    emit(lvl, component ? component : "sluice", fields, n, msg, msg_truncated);
    errno = saved_errno;
}

void sl_logf(sl_level lvl, const char *component, const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, component, NULL, 0, fmt, ap);
    va_end(ap);
}

void sl_logf_fields(sl_level lvl, const char *component, const sl_log_field *fields, size_t n,
                    const char *fmt, ...)
{
    if (lvl < log_min)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(lvl, component, fields, n, fmt, ap);
    va_end(ap);
}
