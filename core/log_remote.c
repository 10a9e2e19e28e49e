/* `sluice log ... --admin HOST:PORT` (see log_remote.h): GET /v1/topics and
 * /v1/topics/TOPIC/records, POST /v1/routes/ROUTE/rewind, through the
 * minimal client in admin_client.c; answers parsed with jansson. */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin_client.h"
#include "log_remote.h"

#define REMOTE_PAGE 1000   /* records per request (the API's cap) */
#define REMOTE_POLL_MS 300 /* tail -f: pause when nothing new */

/* Names the API puts in a URL path: [A-Za-z0-9._-]+ (topics and routes). */
static bool url_safe_name(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '.' || *s == '_' || *s == '-'))
            return false;
    return true;
}

/* Prints why an answer is not a 200, with a hint for the token. */
static void print_refusal(const sl_log_remote *r, int status, const char *body)
{
    json_t *j = json_loads(body, 0, NULL);
    const char *detail = json_string_value(json_object_get(j, "detail"));
    fprintf(stderr, "sluice log: the admin API at %s answered %d: %s\n", r->addr, status,
            detail != NULL ? detail : body);
    if (status == 401 && detail != NULL && strstr(detail, "certificate") != NULL)
        fprintf(stderr, "sluice log: it wants a client certificate its client_ca signed: pass "
                        "--cert FILE --key FILE\n");
    else if (status == 401)
        fprintf(stderr, "sluice log: it wants the admin token: pass --token TOKEN or set "
                        "SLUICE_ADMIN_TOKEN\n");
    else if (status == 403)
        fprintf(stderr, "sluice log: the admin token given is wrong\n");
    json_decref(j);
}

/* Sends the request. Without raw: returns the 200 answer parsed, or NULL
 * after printing why not. With raw: *raw gets the answer's body whatever
 * the status (NULL when none came; the caller frees it) and the parsed body
 * (or NULL) is returned. */
static json_t *call_api(const sl_log_remote *r, const char *method, const char *path,
                        const char *body, int *status, char **raw)
{
    sl_error err;
    char *resp = NULL;
    size_t len = 0;
    if (sl_admin_request(r->addr, &r->tls, method, path, r->token, body, r->timeout_ms, status,
                         &resp, &len, &err) != 0) {
        fprintf(stderr, "sluice log: %s\n", err.msg);
        return NULL;
    }
    json_error_t jerr;
    json_t *j = json_loadb(resp, len, JSON_ALLOW_NUL, &jerr);
    if (raw != NULL) {
        *raw = resp;
        return j;
    }
    if (*status != 200) {
        print_refusal(r, *status, resp);
        json_decref(j);
        j = NULL;
    } else if (j == NULL) {
        fprintf(stderr, "sluice log: the admin API sent invalid JSON: %s\n", jerr.text);
    }
    free(resp);
    return j;
}

int sl_log_remote_ls(const sl_log_remote *r)
{
    int status;
    json_t *j = call_api(r, "GET", "/v1/topics", NULL, &status, NULL);
    if (j == NULL)
        return 1;
    printf("%-40s %9s %14s %14s\n", "TOPIC", "PARTITION", "START", "END");
    size_t i, k;
    json_t *t, *p;
    json_array_foreach(json_object_get(j, "topics"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *error = json_string_value(json_object_get(t, "error"));
        if (error != NULL)
            printf("%-40s  error: %s\n", name != NULL ? name : "?", error);
        json_array_foreach(json_object_get(t, "partitions"), k, p)
        {
            printf("%-40s %9" PRId64 " %14" PRId64 " %14" PRId64 "\n", name != NULL ? name : "?",
                   (int64_t)json_integer_value(json_object_get(p, "partition")),
                   (int64_t)json_integer_value(json_object_get(p, "start")),
                   (int64_t)json_integer_value(json_object_get(p, "end")));
        }
    }
    json_decref(j);
    return 0;
}

/* The partitions of topic from GET /v1/topics (a new reference), or NULL
 * after printing why. */
static json_t *topic_partitions(const sl_log_remote *r, const char *topic)
{
    int status;
    json_t *j = call_api(r, "GET", "/v1/topics", NULL, &status, NULL);
    if (j == NULL)
        return NULL;
    size_t i;
    json_t *t, *parts = NULL;
    json_array_foreach(json_object_get(j, "topics"), i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        if (name != NULL && strcmp(name, topic) == 0)
            parts = json_incref(json_object_get(t, "partitions"));
    }
    json_decref(j);
    if (parts == NULL)
        fprintf(stderr, "sluice log: the gateway at %s has no topic %s\n", r->addr, topic);
    return parts;
}

/* Fetches and prints up to limit records of topic/part from *off, moving
 * *off past them. Returns the number printed, or -1 after printing why. */
static int fetch_page(const sl_log_remote *r, const char *topic, int part, int64_t *off,
                      int64_t limit)
{
    char path[512];
    int status;
    snprintf(path, sizeof path,
             "/v1/topics/%s/records?partition=%d&from=%" PRId64 "&limit=%" PRId64, topic, part,
             *off, limit);
    json_t *j = call_api(r, "GET", path, NULL, &status, NULL);
    if (j == NULL)
        return -1;
    size_t i;
    json_t *rec;
    json_t *records = json_object_get(j, "records");
    json_array_foreach(records, i, rec)
    {
        char *line = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (line == NULL) {
            fprintf(stderr, "sluice log: out of memory printing a record\n");
            json_decref(j);
            return -1;
        }
        puts(line);
        free(line);
    }
    json_t *next = json_object_get(j, "next_offset");
    if (json_is_integer(next))
        *off = (int64_t)json_integer_value(next);
    int n = (int)json_array_size(records);
    json_decref(j);
    fflush(stdout);
    return n;
}

/* Prints records of one partition from *off until none is left or count
 * (when >= 0) is reached. Returns 0, or -1 on failure. */
static int drain_partition(const sl_log_remote *r, const char *topic, int part, int64_t *off,
                           int64_t *left)
{
    while (*left != 0) {
        int64_t limit = *left > 0 && *left < REMOTE_PAGE ? *left : REMOTE_PAGE;
        int got = fetch_page(r, topic, part, off, limit);
        if (got < 0)
            return -1;
        if (got == 0)
            return 0;
        if (*left > 0)
            *left -= got;
    }
    return 0;
}

/* The offset tail starts from on partition p (an object from /v1/topics). */
static int64_t tail_start(json_t *p, int64_t count)
{
    int64_t end = (int64_t)json_integer_value(json_object_get(p, "end"));
    int64_t off = end - (count >= 0 ? count : 10);
    return off < 0 ? 0 : off;
}

/* tail -f: polls every partition in offs for new records, forever. */
static int follow_loop(const sl_log_remote *r, const char *topic, json_t *parts, int part,
                       int64_t *offs)
{
    for (;;) {
        int got_any = 0;
        for (size_t i = 0; i < json_array_size(parts); i++) {
            if (part >= 0 && (int)i != part)
                continue;
            int64_t left = -1;
            int64_t before = offs[i];
            if (drain_partition(r, topic, (int)i, &offs[i], &left) != 0)
                return 1;
            got_any |= offs[i] != before;
        }
        if (!got_any) {
            struct timespec ts = {0, REMOTE_POLL_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

int sl_log_remote_dump(const sl_log_remote *r, const char *topic, int part, int64_t from,
                       int64_t count, bool tail, bool follow)
{
    if (!url_safe_name(topic)) {
        fprintf(stderr, "sluice log: '%s' is not a topic name ([A-Za-z0-9._-]+)\n", topic);
        return 2;
    }
    json_t *parts = topic_partitions(r, topic);
    if (parts == NULL)
        return 1;
    size_t n = json_array_size(parts);
    int64_t *offs = calloc(n + 1, sizeof *offs);
    int rc = offs == NULL || (part >= 0 && (size_t)part >= n) ? 1 : 0;
    if (rc != 0)
        fprintf(stderr, "sluice log: topic %s has no partition %d\n", topic, part);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (part >= 0 && (int)i != part)
            continue;
        offs[i] = tail ? tail_start(json_array_get(parts, i), count) : from;
        int64_t left = count;
        if (drain_partition(r, topic, (int)i, &offs[i], &left) != 0)
            rc = 1;
    }
    if (rc == 0 && follow)
        rc = follow_loop(r, topic, parts, part, offs);
    free(offs);
    json_decref(parts);
    return rc;
}

int sl_log_remote_replay(const sl_log_remote *r, const char *route, const char *from)
{
    if (!url_safe_name(route)) {
        fprintf(stderr, "sluice log replay: '%s' is not a route name\n", route);
        return 2;
    }
    bool digits = from[0] != '\0' && strspn(from, "0123456789") == strlen(from);
    json_t *req = digits ? json_pack("{s:I}", "offset", (json_int_t)strtoll(from, NULL, 10))
                         : json_pack("{s:s}", "timestamp", from);
    char *body = req != NULL ? json_dumps(req, JSON_COMPACT) : NULL;
    json_decref(req);
    if (body == NULL) {
        fprintf(stderr, "sluice log replay: out of memory\n");
        return 1;
    }
    char path[512], *raw = NULL;
    int status = 0;
    snprintf(path, sizeof path, "/v1/routes/%s/rewind", route);
    json_t *j = call_api(r, "POST", path, body, &status, &raw);
    free(body);
    json_decref(j);
    if (raw == NULL)
        return 1;
    if (status == 200)
        printf("%s\n", raw);
    else
        print_refusal(r, status, raw);
    free(raw);
    return status == 200 ? 0 : 1;
}
