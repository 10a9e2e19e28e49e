/* Message status read from the log (see status_log.h): the UUIDv7 id gives
 * the time, each route topic's time index the record, the committed offset
 * and the dead letter topic the state. Used by GET /v1/messages/ID when the
 * in-memory table does not hold the id. */
#include "status_log.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uuid.h"

/* The millisecond time of a UUIDv7 in text form, or -1 when id is not one. */
static int64_t uuid7_ms(const char *id)
{
    if (!sl_is_uuid(id, strlen(id)) || id[14] != '7')
        return -1;
    char hex[13];
    memcpy(hex, id, 8);
    memcpy(hex + 8, id + 9, 4);
    hex[12] = '\0';
    return (int64_t)strtoull(hex, NULL, 16);
}

static const char *rec_header(const sl_record *rec, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < rec->n_headers; i++)
        if (rec->headers[i].name_len == n && memcmp(rec->headers[i].name, name, n) == 0)
            return rec->headers[i].value;
    return NULL;
}

/* What a scan looks for and what it found. */
typedef struct scan {
    const char *id;
    int64_t t_ms;
    const char *route; /* dead letters: the route they must name */
    int64_t offset;    /* dead letters: the route offset they must name (-1: any) */
    bool found;
    int64_t found_offset;
    sl_msg_status *out; /* dead letters: filled with attempts and error */
} scan;

static bool dlq_match(scan *s, const sl_record *rec)
{
    const char *route = rec_header(rec, "x-sluice-route");
    const char *off = rec_header(rec, "x-sluice-offset");
    if (route == NULL || strcmp(route, s->route) != 0)
        return false;
    if (s->offset >= 0 && (off == NULL || strtoll(off, NULL, 10) != s->offset))
        return false;
    const char *att = rec_header(rec, "x-sluice-attempts");
    const char *err = rec_header(rec, "x-sluice-error");
    s->out->attempts = att != NULL ? atoi(att) : 0;
    snprintf(s->out->last_error, sizeof s->out->last_error, "%s", err != NULL ? err : "");
    return true;
}

/* Scans p from the first record stamped at or after t - skew; stops past
 * t + skew when `bounded` (a route topic, in time order), else at its end
 * (the dead letter topic, whose stamps are the messages' own). Keeps the
 * last record with s->id (and, for dead letters, s->route/s->offset). */
static void scan_partition(sl_partition *p, scan *s, bool bounded, sl_batch *b)
{
    int64_t from = sl_partition_offset_for_time(p, s->t_ms - SL_STATUS_LOG_SKEW_MS);
    int64_t end = sl_partition_durable_offset(p);
    size_t seen = 0;
    sl_error err;
    while (from < end && seen < SL_STATUS_LOG_MAX_SCAN) {
        int n = sl_partition_read(p, from, 1024, (size_t)4 << 20, b, &err);
        if (n <= 0)
            return;
        for (size_t k = 0; k < b->count; k++) {
            const sl_record *rec = &b->records[k];
            if (bounded && rec->timestamp_ms > s->t_ms + SL_STATUS_LOG_SKEW_MS)
                return;
            const char *id = rec_header(rec, SL_HDR_ID);
            if (id == NULL || strcmp(id, s->id) != 0)
                continue;
            if (!bounded && !dlq_match(s, rec))
                continue;
            s->found = true;
            s->found_offset = rec->offset;
        }
        seen += b->count;
        from = b->next_offset;
    }
}

/* Fills out's state from where the record is against the committed offset
 * and the route's dead letter topic. */
static void settle_state(sl_log *log, sl_route *r, scan *s, sl_msg_status *out, sl_batch *b)
{
    sl_route_partition_info info;
    sl_route_get_partition_info(r, out->partition, &info);
    if (out->offset >= info.committed) {
        out->state = SL_MSG_ACCEPTED;
        if (out->offset == info.committed && info.attempts > 0) {
            out->state = SL_MSG_RETRYING;
            out->attempts = info.attempts;
            snprintf(out->last_error, sizeof out->last_error, "%s", info.last_error);
        }
        return;
    }
    out->state = SL_MSG_DELIVERED;
    sl_error err;
    sl_topic *dlq = sl_log_topic(log, sl_route_get_conf(r)->dead_letter_topic, 0, &err);
    sl_partition *dp = dlq != NULL ? sl_topic_partition(dlq, 0) : NULL;
    if (dp == NULL)
        return;
    scan d = {.id = s->id, .t_ms = s->t_ms, .route = out->route, .offset = out->offset, .out = out};
    scan_partition(dp, &d, false, b);
    if (d.found)
        out->state = SL_MSG_DEAD_LETTERED;
}

int sl_status_from_log(sl_log *log, sl_route *const *routes, size_t n, const char *id,
                       sl_msg_status *out)
{
    int64_t t = uuid7_ms(id);
    if (t < 0)
        return -1;
    sl_batch b;
    sl_batch_init(&b);
    int rc = -1;
    for (size_t i = 0; i < n && rc < 0; i++) {
        for (int pi = 0; pi < sl_route_partition_count(routes[i]); pi++) {
            if (!sl_route_partition(routes[i], pi))
                break; /* a log a connector holds is not scanned here */
            scan s = {.id = id, .t_ms = t, .offset = -1};
            scan_partition(sl_route_partition(routes[i], pi), &s, true, &b);
            if (!s.found)
                continue;
            memset(out, 0, sizeof *out);
            snprintf(out->id, sizeof out->id, "%s", id);
            snprintf(out->route, sizeof out->route, "%s", sl_route_name(routes[i]));
            out->partition = pi;
            out->offset = s.found_offset;
            settle_state(log, routes[i], &s, out, &b);
            rc = 0;
            break;
        }
    }
    sl_batch_free(&b);
    return rc;
}
