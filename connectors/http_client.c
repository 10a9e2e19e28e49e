/* The http_client output: delivers a route's messages as HTTP requests
 * through libcurl multi handles driven by event-loop threads (lanes: one
 * per CPU, at most four, each with at least 16 of max_in_flight; a calling
 * thread's batches always go to the same lane), with at most max_in_flight
 * transfers and connections at once over all lanes (the bulkhead: each lane
 * has its share) and per-key order within a batch. Maps responses to SL_OK
 * / SL_RETRY / SL_FAIL. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "connector.h"
#include "fnv.h"
#include "http_call.h"
#include "http_client.h"
#include "http_client_auth.h"
#include "http_common.h"
#include "jsonl.h"
#include "metrics.h"
#include "thread_name.h"

#define HC_DEFAULT_TIMEOUT_MS 5000
#define HC_DEFAULT_MAX_IN_FLIGHT 64
#define HC_RESP_CAP (64 * 1024) /* response bytes kept for error messages */
#define HC_ERR_BODY 200         /* response bytes quoted in an error */
#define HC_POLL_MS 1000
#define HC_MAX_LANES 4 /* event-loop threads per connector */
#define HC_LANE_MIN 16 /* of max_in_flight per lane, at least */

typedef struct hc_batch hc_batch;

/* One message of one send() call. */
typedef struct hc_req {
    hc_batch *batch;
    size_t idx;                 /* in the batch: msgs[idx], results[idx] */
    struct hc_req *next_in_key; /* the next message with the same key, sent after this one */
    struct hc_req *queue_next;  /* in the connector's queue */
} hc_req;

/* One header to send, from the connector's or the output's config. */
typedef struct hc_hdr {
    const char *name;
    size_t name_len;
    const char *value;
} hc_hdr;

/* One send() call, on the caller's stack while it waits. Fields other than
 * pending are written before the requests are queued and read-only after. */
struct hc_batch {
    sl_msg *const *msgs;
    sl_send_result *results;
    char method[16]; /* upper case */
    char *url;       /* base_url joined with the output's path */
    char *shown;     /* url without user:password, for error messages */
    bool body;       /* the method sends a body */
    hc_hdr *hdrs;    /* config headers, later ones winning */
    size_t n_hdrs;
    bool set_content_type, set_idem, set_msgid; /* the defaults not overridden */
    sl_http_response *capture;       /* sl_http_client_call: where the response goes (n == 1) */
    const sl_http_client_conf *conf; /* the connector's (forward_headers, tls) */
    const char *auth;                /* the Authorization value of this round, or NULL */
    struct hc_lane *lane;            /* the event loop that runs its requests */
    size_t pending;                  /* requests without a result yet; guarded by its lane's mu */
    pthread_cond_t done;             /* signalled when pending reaches 0 */
};

/* An easy handle in use or kept for reuse, with its response buffer. Only
 * the loop thread touches slots. */
/* A request's header lines as a curl_slist built in storage the slot keeps
 * (nodes and line text), so that preparing a request allocates nothing once
 * the slot has seen one as large. While lines are added, nodes[i].data holds
 * an offset into buf (buf may move as it grows); hdr_list_done links them. */
typedef struct hdr_list {
    struct curl_slist *nodes;
    size_t n, cap;
    char *buf;
    size_t used, buf_cap;
} hdr_list;

typedef struct hc_slot {
    CURL *easy;
    hdr_list hdrs;
    /* What the easy handle was last set up for (see slot_setup): a request
     * with the same url, method and connector config only sets its headers
     * and body; anything else resets the handle first. */
    char *prep_url;
    char prep_method[16];
    const sl_http_client_conf *prep_conf;
    char *resp;
    size_t resp_len, resp_cap;
    size_t resp_max; /* bytes kept: HC_RESP_CAP, or SL_HTTP_MAX_RESPONSE for calls */
    bool resp_truncated;
    hc_req *req;
    char errbuf[CURL_ERROR_SIZE];
    struct hc_slot *next_free;           /* in the free list */
    struct hc_slot *prev_act, *next_act; /* in the list of added transfers */
} hc_slot;

typedef struct hc_state hc_state;

/* One event loop of the connector: a thread driving its own multi handle
 * (its own connections) for the batches queued to it. */
typedef struct hc_lane {
    hc_state *s;
    CURLM *multi;
    int max_in_flight;  /* its share of the connector's (the shares add up to it) */
    pthread_mutex_t mu; /* guards queue, active, started, stopping, batches' pending */
    hc_req *queue_head, *queue_tail;
    int active; /* transfers taken off the queue and not yet finished */
    bool started, stopping;
    pthread_t thread;
    hc_slot *free_slots;   /* loop thread only */
    hc_slot *active_slots; /* added to the multi handle; loop thread only */
    /* the counters per response code, filled by the loop thread */
    sl_counter *by_status[600];
    sl_counter *timeouts, *errors;
} hc_lane;

struct hc_state {
    sl_connector *c;
    int max_in_flight;
    long timeout_ms;
    /* The lanes: a route worker's batches all go to the same one (per-key
     * order is kept within a batch), different workers' to different ones,
     * so that the requests of several partitions are prepared, sent and
     * answered on several cores. */
    hc_lane *lanes;
    int n_lanes;
    /* metrics, NULL when the gateway has none */
    sl_metrics *metrics;
    char labels[256];
    sl_histogram *seconds;
    sl_hc_auth *auth; /* the connector's credentials */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;

static void curl_global_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_ALL);
}

/* ---- metrics ---- */

static sl_counter *status_counter(hc_state *s, const char *code)
{
    char labels[sizeof s->labels + 32];
    snprintf(labels, sizeof labels, "%s,code=\"%s\"", s->labels, code);
    return sl_metrics_counter(s->metrics, "sluice_http_client_requests_total",
                              "HTTP client requests by response code (or timeout, error)", labels);
}

/* Counts one finished request: its code (an HTTP status, "timeout" or
 * "error") and its duration. Loop thread only. */
static void count_request(hc_lane *l, int status, bool timed_out, double seconds)
{
    if (!l->s->metrics)
        return;
    sl_counter *ctr;
    if (status >= 100 && status < 600) {
        if (!l->by_status[status]) {
            char code[8];
            snprintf(code, sizeof code, "%d", status);
            l->by_status[status] = status_counter(l->s, code);
        }
        ctr = l->by_status[status];
    } else if (timed_out) {
        if (!l->timeouts)
            l->timeouts = status_counter(l->s, "timeout");
        ctr = l->timeouts;
    } else {
        if (!l->errors)
            l->errors = status_counter(l->s, "error");
        ctr = l->errors;
    }
    sl_counter_add(ctr, 1);
    if (l->s->seconds)
        sl_histogram_observe(l->s->seconds, seconds);
}

/* ---- slots ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    hc_slot *slot = arg;
    size_t n = size * nmemb;
    size_t keep = n;
    if (keep > slot->resp_max - slot->resp_len) {
        keep = slot->resp_max - slot->resp_len;
        slot->resp_truncated = true;
    }
    if (keep == 0)
        return n;
    if (slot->resp_len + keep + 1 > slot->resp_cap) { /* +1: room for a NUL */
        size_t cap = slot->resp_cap ? slot->resp_cap : 1024;
        while (cap < slot->resp_len + keep + 1)
            cap *= 2;
        if (cap > slot->resp_max + 1)
            cap = slot->resp_max + 1;
        char *p = realloc(slot->resp, cap);
        if (!p) { /* keep what we have */
            slot->resp_truncated = true;
            return n;
        }
        slot->resp = p;
        slot->resp_cap = cap;
    }
    memcpy(slot->resp + slot->resp_len, data, keep);
    slot->resp_len += keep;
    return n;
}

static void slot_free(hc_slot *slot)
{
    if (!slot)
        return;
    if (slot->easy)
        curl_easy_cleanup(slot->easy);
    free(slot->hdrs.nodes);
    free(slot->hdrs.buf);
    free(slot->prep_url);
    free(slot->resp);
    free(slot);
}

static hc_slot *slot_get(hc_lane *l)
{
    hc_slot *slot = l->free_slots;
    if (slot) {
        l->free_slots = slot->next_free;
    } else {
        slot = calloc(1, sizeof *slot);
        if (!slot)
            return NULL;
        slot->easy = curl_easy_init();
        if (!slot->easy) {
            free(slot);
            return NULL;
        }
    }
    slot->next_free = NULL;
    slot->resp_len = 0;
    slot->resp_max = HC_RESP_CAP;
    slot->resp_truncated = false;
    slot->errbuf[0] = '\0';
    return slot;
}

static void slot_put(hc_lane *l, hc_slot *slot)
{
    slot->req = NULL;
    if (slot->resp_cap > 4096) { /* do not keep big buffers around */
        free(slot->resp);
        slot->resp = NULL;
        slot->resp_cap = 0;
    }
    slot->next_free = l->free_slots;
    l->free_slots = slot;
}

/* ---- requests ---- */

/* True when v can go into a header line (no CR, LF or NUL). */
static bool header_value_ok(const char *v, size_t len)
{
    return memchr(v, '\r', len) == NULL && memchr(v, '\n', len) == NULL &&
           memchr(v, '\0', len) == NULL;
}

static const sl_msg_header *msg_header(const sl_msg *msg, const char *name)
{
    for (size_t i = 0; i < msg->n_headers; i++) {
        if (msg->headers[i].name && strcasecmp(msg->headers[i].name, name) == 0)
            return &msg->headers[i];
    }
    return NULL;
}

/* Makes room in l for one more line of need bytes (NUL included). Returns 0
 * or -1 when out of memory (l unchanged). */
static int hdr_list_reserve(hdr_list *l, size_t need)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct curl_slist *v = realloc(l->nodes, cap * sizeof *v);
        if (!v)
            return -1;
        l->nodes = v;
        l->cap = cap;
    }
    if (l->used + need > l->buf_cap) {
        size_t cap = l->buf_cap ? l->buf_cap : 512;
        while (cap < l->used + need)
            cap *= 2;
        char *b = realloc(l->buf, cap);
        if (!b)
            return -1;
        l->buf = b;
        l->buf_cap = cap;
    }
    return 0;
}

/* Appends "Name: value" (or "Name;" for an empty value, which curl sends as
 * an empty header; or the line name alone when value is NULL) to l. Returns
 * 0 or -1 when out of memory. */
static int add_header(hdr_list *l, const char *name, size_t name_len, const char *value,
                      size_t value_len)
{
    if (hdr_list_reserve(l, name_len + value_len + 3) < 0)
        return -1;
    char *line = l->buf + l->used;
    memcpy(line, name, name_len);
    size_t len = name_len;
    if (!value) {
        /* the raw line */
    } else if (value_len == 0) {
        line[len++] = ';';
    } else {
        line[len++] = ':';
        line[len++] = ' ';
        memcpy(line + len, value, value_len);
        len += value_len;
    }
    line[len] = '\0';
    l->nodes[l->n].data = (char *)(uintptr_t)l->used;
    l->n++;
    l->used += len + 1;
    return 0;
}

/* Points the nodes of l at their lines and links them. Returns the list. */
static struct curl_slist *hdr_list_done(hdr_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        l->nodes[i].data = l->buf + (uintptr_t)l->nodes[i].data;
        l->nodes[i].next = i + 1 < l->n ? &l->nodes[i + 1] : NULL;
    }
    return l->n ? l->nodes : NULL;
}

/* Fills l (emptied first) with the header lines of msg's request. Returns 0
 * or -1 when out of memory. */
static int build_headers(const hc_batch *b, const sl_msg *msg, hdr_list *l)
{
    l->n = 0;
    l->used = 0;
    if (b->set_content_type) {
        const sl_msg_header *ct = msg_header(msg, SL_HDR_CONTENT_TYPE);
        const char *v = "application/octet-stream";
        size_t vl = strlen(v);
        if (ct && ct->value && ct->value_len > 0 && header_value_ok(ct->value, ct->value_len)) {
            v = ct->value;
            vl = ct->value_len;
        }
        if (add_header(l, "Content-Type", 12, v, vl) < 0)
            goto oom;
    }
    size_t idl = strnlen(msg->id, SL_ID_LEN);
    if (idl > 0 && header_value_ok(msg->id, idl)) {
        if (b->set_idem && add_header(l, "Idempotency-Key", 15, msg->id, idl) < 0)
            goto oom;
        if (b->set_msgid && add_header(l, "X-Message-Id", 12, msg->id, idl) < 0)
            goto oom;
    }
    /* The message's headers that forward_headers lets through (by default
     * the trace headers only), unless configured headers name them. */
    for (size_t i = 0; i < msg->n_headers; i++) {
        const sl_msg_header *mh = &msg->headers[i];
        if (!mh->name)
            continue;
        size_t nl = strlen(mh->name);
        bool fwd = sl_http_forwarded(mh->name, (const char *const *)b->conf->forward,
                                     b->conf->n_forward, b->conf->forward_set);
        for (size_t k = 0; fwd && k < b->n_hdrs; k++)
            fwd = !(b->hdrs[k].name_len == nl && strncasecmp(b->hdrs[k].name, mh->name, nl) == 0);
        if (fwd && header_value_ok(mh->value, mh->value_len) &&
            add_header(l, mh->name, nl, mh->value, mh->value_len) < 0)
            goto oom;
    }
    for (size_t i = 0; i < b->n_hdrs; i++) {
        const hc_hdr *h = &b->hdrs[i];
        if (add_header(l, h->name, h->name_len, h->value, strlen(h->value)) < 0)
            goto oom;
    }
    if (b->auth && add_header(l, "Authorization", 13, b->auth, strlen(b->auth)) < 0)
        goto oom;
    /* "Expect:" removes curl's Expect: 100-continue (one round trip less). */
    if (add_header(l, "Expect:", 7, NULL, 0) < 0)
        goto oom;
    return 0;
oom:
    return -1;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        if (rc == CURLE_OK)                                                                        \
            rc = curl_easy_setopt(e, opt, val);                                                    \
    } while (0)

/* Resets slot's easy handle and sets what every request of batch b shares
 * (url, method, timeouts, TLS), remembering it in slot->prep_*. Returns 0,
 * or -1 when out of memory or curl refuses an option (nothing remembered
 * then). Loop thread. */
static int slot_prepare(hc_state *s, hc_slot *slot, const hc_batch *b)
{
    CURL *e = slot->easy;
    free(slot->prep_url);
    slot->prep_url = NULL;
    curl_easy_reset(e);
    CURLcode rc = CURLE_OK;
    SETOPT(CURLOPT_URL, b->url);
    SETOPT(CURLOPT_PRIVATE, slot);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TCP_NODELAY, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, s->timeout_ms);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, slot);
    SETOPT(CURLOPT_ERRORBUFFER, slot->errbuf);
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc == CURLE_OK)
        rc = sl_hc_tls_apply(e, &b->conf->tls);
    if (b->body) {
        if (strcmp(b->method, "POST") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, b->method);
    } else if (strcmp(b->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        SETOPT(CURLOPT_HTTPGET, 1L);
        if (strcmp(b->method, "GET") != 0)
            SETOPT(CURLOPT_CUSTOMREQUEST, b->method);
    }
    if (rc != CURLE_OK || !(slot->prep_url = strdup(b->url)))
        return -1;
    memcpy(slot->prep_method, b->method, sizeof slot->prep_method);
    slot->prep_conf = b->conf;
    return 0;
}

/* Sets slot's easy handle up for req: prepared once per url, method and
 * connector config (slot_prepare), then only the headers and the body per
 * request, in storage the slot keeps. Returns 0, or -1 when out of memory
 * or curl refuses an option. Loop thread. */
static int slot_setup(hc_state *s, hc_slot *slot, hc_req *req)
{
    const hc_batch *b = req->batch;
    const sl_msg *msg = b->msgs[req->idx];
    CURL *e = slot->easy;
    slot->req = req;
    if (b->capture || b->results[req->idx].reply)
        slot->resp_max = SL_HTTP_MAX_RESPONSE;
    if (build_headers(b, msg, &slot->hdrs) < 0)
        return -1;
    bool same = slot->prep_url && slot->prep_conf == b->conf &&
                strcmp(slot->prep_method, b->method) == 0 && strcmp(slot->prep_url, b->url) == 0;
    if (!same && slot_prepare(s, slot, b) < 0)
        return -1;
    CURLcode rc = CURLE_OK;
    SETOPT(CURLOPT_HTTPHEADER, hdr_list_done(&slot->hdrs));
    if (b->body) {
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(msg->body ? msg->body_len : 0));
        SETOPT(CURLOPT_POSTFIELDS, msg->body ? msg->body : "");
    }
    if (rc != CURLE_OK) {
        free(slot->prep_url); /* set it all up again next time */
        slot->prep_url = NULL;
    }
    return rc == CURLE_OK ? 0 : -1;
}
#undef SETOPT

/* Writes "FMT" into r, keeping the text valid UTF-8 when it is cut. */
static void result_set(sl_send_result *r, sl_result res, int status, const char *text)
{
    char safe[sizeof r->error];
    sl_jsonl_safe_text(text, strlen(text), sizeof safe - 1, safe, sizeof safe);
    sl_send_result_set(r, res, status, "%s", safe);
}

/* Maps a finished transfer to a result. Loop thread. */
static void map_result(hc_state *s, hc_slot *slot, CURLcode cc, sl_send_result *r, int *status_out,
                       bool *timed_out)
{
    const hc_batch *b = slot->req->batch;
    long status = 0;
    char text[1024];
    curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &status);
    *status_out = (int)status;
    *timed_out = false;
    if (cc == CURLE_OPERATION_TIMEDOUT) {
        *timed_out = true;
        *status_out = 0;
        snprintf(text, sizeof text, "timeout after %ld ms: %s %s", s->timeout_ms, b->method,
                 b->shown);
        result_set(r, SL_RETRY, 0, text);
        return;
    }
    if (cc != CURLE_OK) {
        *status_out = 0;
        const char *what = "request failed";
        if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
            cc == CURLE_COULDNT_RESOLVE_PROXY)
            what = "connect failed";
        else if (cc == CURLE_SSL_CONNECT_ERROR || cc == CURLE_PEER_FAILED_VERIFICATION ||
                 cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE)
            what = "TLS failed";
        snprintf(text, sizeof text, "%s: %s %s: %s", what, b->method, b->shown,
                 curl_easy_strerror(cc));
        result_set(r, SL_RETRY, 0, text);
        return;
    }
    sl_result res = sl_http_status_result(status);
    if (res == SL_OK) {
        sl_send_result_set(r, SL_OK, (int)status, NULL);
        return;
    }
    char body[HC_ERR_BODY * 4 + 1];
    sl_jsonl_safe_text(slot->resp ? slot->resp : "", slot->resp_len, HC_ERR_BODY, body,
                       sizeof body);
    snprintf(text, sizeof text, "HTTP %ld from %s %s: %s", status, b->method, b->shown, body);
    result_set(r, res, (int)status, text);
}

/* Gives req and, when it did not succeed, every later message with the same
 * key a result, and queues the next message with the same key when it did.
 * Caller holds l->mu. */
static void finish_req(hc_lane *l, hc_req *req)
{
    hc_batch *b = req->batch;
    sl_result res = b->results[req->idx].result;
    hc_req *next = req->next_in_key;
    b->pending--;
    if (next && res == SL_OK) {
        /* Front of the queue: its turn has come, it waited already. */
        next->queue_next = l->queue_head;
        l->queue_head = next;
        if (!l->queue_tail)
            l->queue_tail = next;
    } else {
        for (; next; next = next->next_in_key) {
            sl_send_result_set(&b->results[next->idx], SL_RETRY, 0,
                               "held back: an earlier message with the same key failed");
            b->results[next->idx].held_back = true;
            b->pending--;
        }
    }
    if (b->pending == 0)
        pthread_cond_signal(&b->done);
}

/* Completes req with res/text when it never reached the network (no
 * memory, shutting down). Caller holds l->mu. */
static void fail_req(hc_lane *l, hc_req *req, const char *text)
{
    sl_send_result_set(&req->batch->results[req->idx], SL_RETRY, 0, "%s", text);
    finish_req(l, req);
}

static void active_link(hc_lane *l, hc_slot *slot)
{
    slot->prev_act = NULL;
    slot->next_act = l->active_slots;
    if (l->active_slots)
        l->active_slots->prev_act = slot;
    l->active_slots = slot;
}

static void active_unlink(hc_lane *l, hc_slot *slot)
{
    if (slot->prev_act)
        slot->prev_act->next_act = slot->next_act;
    else
        l->active_slots = slot->next_act;
    if (slot->next_act)
        slot->next_act->prev_act = slot->prev_act;
    slot->prev_act = slot->next_act = NULL;
}

/* Moves slot's response body (NUL-terminated) to *body and *len, leaving
 * the slot without one; nothing when the slot has none. Loop thread. */
static void take_response(hc_slot *slot, char **body, size_t *len)
{
    if (slot->resp) {
        slot->resp[slot->resp_len] = '\0';
        *body = slot->resp;
        *len = slot->resp_len;
        slot->resp = NULL;
        slot->resp_cap = 0;
        slot->resp_len = 0;
    }
}

/* Hands the response body of slot over to resp (the caller of
 * sl_http_client_call frees it). Loop thread. */
static void capture_response(hc_slot *slot, sl_http_response *resp)
{
    resp->truncated = slot->resp_truncated;
    take_response(slot, &resp->body, &resp->body_len);
}

/* Hands the partner's answer of a delivered message over to the route
 * (`reply_from`): status, Content-Type and the body. A body cut at
 * SL_HTTP_MAX_RESPONSE is not handed over (the reply stays empty: the
 * caller is told there was no answer rather than given half of one). Loop
 * thread. */
static void reply_response(hc_slot *slot, int status, sl_send_reply *reply)
{
    const char *ct = NULL;
    curl_easy_getinfo(slot->easy, CURLINFO_CONTENT_TYPE, &ct);
    if (slot->resp_truncated)
        return;
    reply->status = status;
    if (ct && strlen(ct) < sizeof reply->content_type && !strpbrk(ct, "\r\n"))
        snprintf(reply->content_type, sizeof reply->content_type, "%s", ct);
    free(reply->body); /* an earlier answer (a retried round) */
    reply->body = NULL;
    reply->body_len = 0;
    take_response(slot, &reply->body, &reply->body_len);
}

static void on_done(hc_lane *l, CURLMsg *m)
{
    hc_slot *slot = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&slot);
    curl_multi_remove_handle(l->multi, m->easy_handle);
    active_unlink(l, slot);
    hc_req *req = slot->req;
    int status = 0;
    bool timed_out = false;
    curl_off_t us = 0;
    /* Mapping writes results[idx], which only this thread touches until
     * finish_req hands it back under the lock. */
    map_result(l->s, slot, m->data.result, &req->batch->results[req->idx], &status, &timed_out);
    curl_easy_getinfo(slot->easy, CURLINFO_TOTAL_TIME_T, &us);
    count_request(l, status, timed_out, (double)us / 1e6);
    if (req->batch->capture)
        capture_response(slot, req->batch->capture);
    sl_send_result *res = &req->batch->results[req->idx];
    if (res->reply && res->result == SL_OK)
        reply_response(slot, status, res->reply);
    slot_put(l, slot);
    pthread_mutex_lock(&l->mu);
    l->active--;
    finish_req(l, req);
    pthread_mutex_unlock(&l->mu);
}

/* Takes requests off the lane's queue while fewer than its max_in_flight
 * are active and adds them to the multi handle. Loop thread. */
static void start_queued(hc_lane *l)
{
    for (;;) {
        pthread_mutex_lock(&l->mu);
        hc_req *req = NULL;
        if (l->active < l->max_in_flight && l->queue_head) {
            req = l->queue_head;
            l->queue_head = req->queue_next;
            if (!l->queue_head)
                l->queue_tail = NULL;
            req->queue_next = NULL;
            l->active++;
        }
        pthread_mutex_unlock(&l->mu);
        if (!req)
            return;
        hc_slot *slot = slot_get(l);
        const char *why = "out of memory preparing the request";
        if (slot && slot_setup(l->s, slot, req) == 0) {
            CURLMcode mc = curl_multi_add_handle(l->multi, slot->easy);
            if (mc == CURLM_OK) {
                active_link(l, slot);
                continue;
            }
            why = curl_multi_strerror(mc);
        }
        if (slot)
            slot_put(l, slot);
        pthread_mutex_lock(&l->mu);
        l->active--;
        fail_req(l, req, why);
        pthread_mutex_unlock(&l->mu);
    }
}

/* Fails everything still queued or in flight; used when the loop stops. */
static void abandon_all(hc_lane *l)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left)) != NULL) {
        if (m->msg == CURLMSG_DONE)
            on_done(l, m);
    }
    while (l->active_slots) {
        hc_slot *slot = l->active_slots;
        curl_multi_remove_handle(l->multi, slot->easy);
        active_unlink(l, slot);
        hc_req *req = slot->req;
        slot_put(l, slot);
        pthread_mutex_lock(&l->mu);
        l->active--;
        fail_req(l, req, "http_client connector stopped before the request finished");
        pthread_mutex_unlock(&l->mu);
    }
    pthread_mutex_lock(&l->mu);
    while (l->queue_head) {
        hc_req *req = l->queue_head;
        l->queue_head = req->queue_next;
        if (!l->queue_head)
            l->queue_tail = NULL;
        fail_req(l, req, "http_client connector stopped before the request was sent");
    }
    pthread_mutex_unlock(&l->mu);
}

static void *loop_main(void *arg)
{
    hc_lane *l = arg;
    for (;;) {
        pthread_mutex_lock(&l->mu);
        bool stop = l->stopping;
        pthread_mutex_unlock(&l->mu);
        if (stop)
            break;
        start_queued(l);
        int running = 0;
        curl_multi_perform(l->multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(l->multi, &left)) != NULL) {
            if (m->msg == CURLMSG_DONE)
                on_done(l, m);
        }
        /* Requests may have finished and freed room, or queued their
         * successors: add those before sleeping. */
        pthread_mutex_lock(&l->mu);
        bool more = l->queue_head && l->active < l->max_in_flight;
        pthread_mutex_unlock(&l->mu);
        if (!more)
            curl_multi_poll(l->multi, NULL, 0, HC_POLL_MS, NULL);
    }
    abandon_all(l);
    return NULL;
}

/* ---- connector table ---- */

/* Checks that base_url parses as an http(s) URL. */
static int check_base_url(const char *url, sl_error *err)
{
    CURLU *u = curl_url();
    if (!u)
        return sl_error_set(err, SL_ENOMEM, "http_client: out of memory");
    char *scheme = NULL;
    int rc = 0;
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (uc != CURLUE_OK) {
        rc = sl_error_set(err, SL_ECONFIG, "http_client: base_url \"%s\": %s", url,
                          curl_url_strerror(uc));
    } else if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
               (strcasecmp(scheme, "http") != 0 && strcasecmp(scheme, "https") != 0)) {
        rc =
            sl_error_set(err, SL_ECONFIG, "http_client: base_url \"%s\" is not http or https", url);
    }
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* Frees a stopped lane's slots, multi handle and mutex (of a lane that
 * lane_init set up: multi not NULL). */
static void lane_free(hc_lane *l)
{
    while (l->free_slots) {
        hc_slot *slot = l->free_slots;
        l->free_slots = slot->next_free;
        slot_free(slot);
    }
    curl_multi_cleanup(l->multi);
    pthread_mutex_destroy(&l->mu);
}

static void state_free(hc_state *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_lanes; i++)
        lane_free(&s->lanes[i]);
    free(s->lanes);
    sl_hc_auth_free(s->auth);
    free(s);
}

/* Sets lane l of s up with its share of max_in_flight (transfers and
 * connections): its mutex and multi handle. Returns 0 or -1. */
static int lane_init(hc_state *s, hc_lane *l, int share)
{
    l->s = s;
    l->max_in_flight = share;
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return -1;
    l->multi = curl_multi_init();
    if (!l->multi) {
        pthread_mutex_destroy(&l->mu);
        return -1;
    }
    curl_multi_setopt(l->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)share);
    curl_multi_setopt(l->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)share);
    curl_multi_setopt(l->multi, CURLMOPT_MAXCONNECTS, (long)share);
    return 0;
}

/* How many lanes a connector runs: one per online CPU, at most
 * HC_MAX_LANES, and only as many as give each at least HC_LANE_MIN of
 * max_in_flight (a smaller max_in_flight keeps one lane, all of it for any
 * one sender). */
static int lane_count(int max_in_flight)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int n = cpus < 1 ? 1 : cpus > HC_MAX_LANES ? HC_MAX_LANES : (int)cpus;
    if (n > max_in_flight / HC_LANE_MIN)
        n = max_in_flight / HC_LANE_MIN;
    return n < 1 ? 1 : n;
}

/* Sets up s's lanes. Returns 0 or -1 (s->n_lanes: the ones set up). */
static int lanes_init(hc_state *s)
{
    int n = lane_count(s->max_in_flight);
    s->lanes = calloc((size_t)n, sizeof *s->lanes);
    if (!s->lanes)
        return -1;
    for (; s->n_lanes < n; s->n_lanes++) {
        int i = s->n_lanes;
        if (lane_init(s, &s->lanes[i], s->max_in_flight / n + (i < s->max_in_flight % n)) < 0)
            return -1;
    }
    return 0;
}

/* Builds the state and the multi handle from c->conf (base_url required).
 * No thread yet. Returns 0, or -1 with err. */
static int hc_init(sl_connector *c, sl_error *err)
{
    const sl_http_client_conf *conf = c->conf ? c->conf->priv : NULL;
    const char *name = c->conf && c->conf->name ? c->conf->name : "http_client";
    pthread_once(&curl_once, curl_global_once);
    if (curl_init_rc != CURLE_OK)
        return sl_error_set(err, SL_EIO, "http_client %s: curl_global_init: %s", name,
                            curl_easy_strerror(curl_init_rc));
    if (!conf || !conf->base_url || !conf->base_url[0])
        return sl_error_set(err, SL_ECONFIG, "http_client %s: base_url is required", name);
    if (check_base_url(conf->base_url, err) < 0)
        return -1;
    hc_state *s = calloc(1, sizeof *s);
    if (!s)
        return sl_error_set(err, SL_ENOMEM, "http_client %s: out of memory", name);
    s->c = c;
    s->max_in_flight = conf->max_in_flight > 0 ? conf->max_in_flight : HC_DEFAULT_MAX_IN_FLIGHT;
    s->timeout_ms = conf->timeout_ms > 0 && conf->timeout_ms < (uint64_t)LONG_MAX
                        ? (long)conf->timeout_ms
                        : HC_DEFAULT_TIMEOUT_MS;
    s->auth = sl_hc_auth_new(conf, name, err);
    if (!s->auth) {
        state_free(s);
        return -1;
    }
    if (lanes_init(s) < 0) {
        state_free(s);
        return sl_error_set(err, SL_ENOMEM, "http_client %s: cannot set up its event loops", name);
    }
    if (sl_connector_metrics(c)) {
        char esc[200];
        s->metrics = sl_connector_metrics(c);
        snprintf(s->labels, sizeof s->labels, "connector=\"%s\"",
                 sl_metrics_escape(name, esc, sizeof esc));
        s->seconds = sl_metrics_histogram(s->metrics, "sluice_http_client_request_seconds",
                                          "HTTP client request duration", s->labels, NULL, 0);
    }
    c->state = s;
    return 0;
}

/* Starts lane l's event-loop thread if it is not running. Returns 0 or -1
 * with err. Thread-safe. */
static int ensure_started(hc_lane *l, sl_error *err)
{
    int rc = 0;
    pthread_mutex_lock(&l->mu);
    if (l->stopping) {
        rc = sl_error_set(err, SL_ECLOSED, "http_client connector is shutting down");
    } else if (!l->started) {
        int e = pthread_create(&l->thread, NULL, loop_main, l);
        if (e != 0) {
            rc = sl_error_set(err, SL_EIO, "http_client: cannot start its thread: %s", strerror(e));
        } else {
            sl_thread_name(l->thread, "http-out");
            l->started = true;
        }
    }
    pthread_mutex_unlock(&l->mu);
    return rc;
}

/* Starts the event-loop threads (send() also starts its lane's on first
 * use). */
static int hc_start(sl_connector *c, sl_error *err)
{
    hc_state *s = c->state;
    for (int i = 0; i < s->n_lanes; i++) {
        if (ensure_started(&s->lanes[i], err) < 0)
            return -1;
    }
    return 0;
}

/* Outputs have no input to stop; in-flight sends finish on their own. */
static void hc_stop(sl_connector *c)
{
    (void)c;
}

/* Stops the loop threads (failing with SL_RETRY anything still queued, which
 * only happens if a send() is still running against the contract), then
 * frees curl's handles and the state. */
static void hc_destroy(sl_connector *c)
{
    hc_state *s = c->state;
    if (!s)
        return;
    for (int i = 0; i < s->n_lanes; i++) {
        hc_lane *l = &s->lanes[i];
        pthread_mutex_lock(&l->mu);
        l->stopping = true;
        bool started = l->started;
        pthread_mutex_unlock(&l->mu);
        if (started) {
            curl_multi_wakeup(l->multi);
            pthread_join(l->thread, NULL);
        }
    }
    state_free(s);
    c->state = NULL;
}

/* url without "user:password@", for error messages. */
static char *shown_url(const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        return strdup(url);
    const char *host = p + 3;
    size_t auth_end = strcspn(host, "/?#");
    const char *at = memchr(host, '@', auth_end);
    if (!at)
        return strdup(url);
    size_t pre = (size_t)(host - url);
    size_t rest = strlen(at + 1);
    char *u = malloc(pre + rest + 1);
    if (!u)
        return NULL;
    memcpy(u, url, pre);
    memcpy(u + pre, at + 1, rest + 1);
    return u;
}

static bool name_is(const hc_hdr *h, const char *name)
{
    return h->name_len == strlen(name) && strncasecmp(h->name, name, h->name_len) == 0;
}

/* Adds kv headers to b->hdrs, a later one replacing an earlier one with the
 * same name. Headers with a CR or LF are skipped (init-time config, so this
 * cannot inject). */
static void merge_headers(hc_batch *b, const sl_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!kv[i].key || !kv[i].value || !kv[i].key[0])
            continue;
        hc_hdr h = {kv[i].key, strlen(kv[i].key), kv[i].value};
        if (!header_value_ok(h.name, h.name_len) || !header_value_ok(h.value, strlen(h.value)) ||
            strchr(h.name, ':'))
            continue;
        size_t j = 0;
        while (j < b->n_hdrs && !(b->hdrs[j].name_len == h.name_len &&
                                  strncasecmp(b->hdrs[j].name, h.name, h.name_len) == 0))
            j++;
        b->hdrs[j] = h;
        if (j == b->n_hdrs)
            b->n_hdrs++;
    }
}

/* Links every message to the next one with the same non-empty key
 * (next_in_key) and queues the first of each key and every message without
 * a key onto the local list head/tail. Returns 0 or -1 when out of memory. */
static int plan_batch(hc_req *reqs, size_t n, sl_msg *const *msgs, hc_req **head)
{
    size_t cap = 16;
    while (cap < n * 2)
        cap *= 2;
    hc_req **last = calloc(cap, sizeof *last); /* per key: its latest message */
    if (!last)
        return -1;
    hc_req *tail = NULL;
    *head = NULL;
    for (size_t i = 0; i < n; i++) {
        const sl_msg *m = msgs[i];
        hc_req *r = &reqs[i];
        r->idx = i;
        bool queue_it = true;
        if (m->key && m->key_len > 0) {
            size_t slot = (size_t)sl_fnv1a64(m->key, m->key_len) & (cap - 1);
            while (last[slot]) {
                const sl_msg *o = msgs[last[slot]->idx];
                if (o->key_len == m->key_len && memcmp(o->key, m->key, m->key_len) == 0)
                    break;
                slot = (slot + 1) & (cap - 1);
            }
            if (last[slot]) {
                last[slot]->next_in_key = r;
                queue_it = false;
            }
            last[slot] = r;
        }
        if (queue_it) {
            if (tail)
                tail->queue_next = r;
            else
                *head = r;
            tail = r;
        }
    }
    free(last);
    return 0;
}

/* Copies method upper-cased into b->method. Returns -1 when it is empty,
 * too long or not an HTTP token of letters. */
static int set_method(hc_batch *b, const char *method)
{
    size_t i = 0;
    for (; method[i]; i++) {
        char ch = method[i];
        if (i + 1 >= sizeof b->method || !((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')))
            return -1;
        b->method[i] = (char)(ch >= 'a' ? ch - 'a' + 'A' : ch);
    }
    b->method[i] = '\0';
    return i > 0 ? 0 : -1;
}

static void fail_all(sl_send_result *results, size_t n, const char *text)
{
    for (size_t i = 0; i < n; i++)
        sl_send_result_set(&results[i], SL_RETRY, 0, "%s", text);
}

/* Queues one request per message (same-key messages chained) and waits
 * until each has a result; with capture (n == 1), the response body is
 * handed over to it too. */
/* Merges the connector's and the output's headers into b and notes which
 * of the headers Sluice sets itself the configuration already sets. */
static void batch_headers(hc_batch *b, const sl_http_client_conf *conf,
                          const sl_http_client_output *ho)
{
    merge_headers(b, conf->headers, conf->n_headers);
    if (ho)
        merge_headers(b, ho->headers, ho->n_headers);
    b->set_content_type = b->set_idem = b->set_msgid = true;
    for (size_t i = 0; i < b->n_hdrs; i++) {
        if (name_is(&b->hdrs[i], "Content-Type"))
            b->set_content_type = false;
        else if (name_is(&b->hdrs[i], "Idempotency-Key"))
            b->set_idem = false;
        else if (name_is(&b->hdrs[i], "X-Message-Id"))
            b->set_msgid = false;
    }
}

/* Hands the n requests (a chain from head) to the curl thread and waits
 * until every one has its result. */
static void queue_and_wait(hc_lane *l, hc_batch *b, hc_req *head, size_t n)
{
    hc_req *tail = head;
    while (tail->queue_next)
        tail = tail->queue_next;
    pthread_mutex_lock(&l->mu);
    b->pending = n;
    if (l->queue_tail)
        l->queue_tail->queue_next = head;
    else
        l->queue_head = head;
    l->queue_tail = tail;
    pthread_mutex_unlock(&l->mu);
    curl_multi_wakeup(l->multi);
    pthread_mutex_lock(&l->mu);
    while (b->pending > 0)
        pthread_cond_wait(&b->done, &l->mu);
    pthread_mutex_unlock(&l->mu);
}

/* One round of requests: the n messages with the round's Authorization
 * value, each getting its result in results. */
static void run_round(hc_state *s, hc_batch *b, sl_msg *const *msgs, size_t n,
                      sl_send_result *results)
{
    hc_req *reqs = calloc(n, sizeof *reqs);
    hc_req *head = NULL;
    b->msgs = msgs;
    b->results = results;
    if (!reqs || plan_batch(reqs, n, msgs, &head) < 0) {
        fail_all(results, n, "http_client: out of memory preparing a batch");
        free(reqs);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        reqs[i].batch = b;
        sl_send_result_set(&results[i], SL_RETRY, 0, "not sent");
    }
    queue_and_wait(b->lane, b, head, n);
    free(reqs);
}

/* Gets the round's credential into *value; when there is none to be had
 * (token endpoint down), fails the n results as transient. */
static bool round_auth(hc_state *s, char **value, uint64_t *gen, sl_send_result *results, size_t n)
{
    char why[256];
    if (sl_hc_auth_value(s->auth, value, gen, why, sizeof why) == SL_OK)
        return true;
    fail_all(results, n, why);
    return false;
}

/* After a 401 with a credential that can be renewed (OAuth2, token file):
 * renews it once and sends again the messages that got the 401. */
static void retry_unauthorized(hc_state *s, hc_batch *b, sl_msg *const *msgs, size_t n,
                               sl_send_result *results, uint64_t gen)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += results[i].status == 401;
    if (k == 0 || !sl_hc_auth_renewable(s->auth))
        return;
    sl_hc_auth_invalidate(s->auth, gen);
    sl_msg **again = calloc(k, sizeof *again);
    sl_send_result *res = calloc(k, sizeof *res);
    size_t *idx = calloc(k, sizeof *idx);
    char *value = NULL;
    if (!again || !res || !idx)
        goto done; /* the 401s stand */
    if (!round_auth(s, &value, &gen, res, k)) {
        for (size_t i = 0, j = 0; i < n && j < k; i++) {
            if (results[i].status == 401)
                results[i] = res[j++];
        }
        goto done;
    }
    for (size_t i = 0, j = 0; i < n; i++) {
        if (results[i].status == 401) {
            idx[j] = i;
            again[j++] = msgs[i];
        }
    }
    if (b->capture)
        sl_http_response_free(b->capture);
    b->auth = value;
    run_round(s, b, again, k, res);
    for (size_t j = 0; j < k; j++)
        results[idx[j]] = res[j];
done:
    free(value);
    free(idx);
    free(res);
    free(again);
}

/* The lane of the calling thread: each thread that sends gets a number the
 * first time, and its batches go to lane number % n_lanes, so that route
 * workers spread over the lanes and one worker's batches stay in order on
 * one. */
static hc_lane *thread_lane(hc_state *s)
{
    static atomic_uint next_ticket;
    static _Thread_local unsigned ticket; /* 0: none yet */
    if (ticket == 0)
        ticket = atomic_fetch_add(&next_ticket, 1) + 1;
    return &s->lanes[(ticket - 1) % (unsigned)s->n_lanes];
}

static void run_batch(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                      sl_send_result *results, sl_http_response *capture)
{
    hc_state *s = c->state;
    sl_error err;
    if (n == 0)
        return;
    hc_lane *lane = thread_lane(s);
    if (ensure_started(lane, &err) < 0) {
        fail_all(results, n, err.msg);
        return;
    }
    const sl_http_client_conf *conf = c->conf->priv;
    const sl_http_client_output *ho = out ? out->priv : NULL;
    hc_batch b = {.msgs = msgs, .results = results, .capture = capture, .conf = conf, .lane = lane};
    if (set_method(&b, ho && ho->method && ho->method[0] ? ho->method : "POST") < 0) {
        for (size_t i = 0; i < n; i++)
            sl_send_result_set(&results[i], SL_FAIL, 0, "http_client: invalid method \"%.20s\"",
                               ho->method);
        return;
    }
    b.body = strcmp(b.method, "GET") != 0 && strcmp(b.method, "HEAD") != 0;
    b.url = sl_http_join_url(conf->base_url, ho ? ho->path : NULL);
    b.shown = b.url ? shown_url(b.url) : NULL;
    b.hdrs = calloc(conf->n_headers + (ho ? ho->n_headers : 0) + 1, sizeof *b.hdrs);
    bool cond_ok = pthread_cond_init(&b.done, NULL) == 0;
    char *value = NULL;
    uint64_t gen = 0;
    if (!b.url || !b.shown || !b.hdrs || !cond_ok) {
        fail_all(results, n, "http_client: out of memory preparing a batch");
    } else if (round_auth(s, &value, &gen, results, n)) {
        batch_headers(&b, conf, ho);
        b.auth = value;
        run_round(s, &b, msgs, n, results);
        retry_unauthorized(s, &b, msgs, n, results, gen);
    }
    if (cond_ok)
        pthread_cond_destroy(&b.done);
    free(value);
    free(b.hdrs);
    free(b.shown);
    free(b.url);
}

/* Sends each message as one request (see the file comment) and waits until
 * every one has a result: SL_OK on 2xx; SL_RETRY on timeouts, connection
 * and other transfer errors, 5xx, 408 and 429, and for messages held back
 * behind a failed one with the same key; SL_FAIL on any other status.
 * Thread-safe; several route workers share the connector's max_in_flight. */
static void hc_send(sl_connector *c, const sl_output_conf *out, sl_msg *const *msgs, size_t n,
                    sl_send_result *results)
{
    run_batch(c, out, msgs, n, results, NULL);
}

void sl_http_client_call(sl_connector *c, const char *method, const char *path,
                         const sl_kv *headers, size_t n_headers, const char *body, size_t body_len,
                         sl_http_response *resp)
{
    memset(resp, 0, sizeof *resp);
    if (!c || c->type != &sl_http_client_connector || !c->state) {
        resp->result = SL_FAIL;
        snprintf(resp->error, sizeof resp->error, "%s is not an http_client connector",
                 c && c->conf && c->conf->name ? c->conf->name : "(null)");
        return;
    }
    sl_msg msg;
    memset(&msg, 0, sizeof msg);
    msg.body = (char *)(body ? body : "");
    msg.body_len = body ? body_len : 0;
    msg.partition = -1;
    msg.offset = -1;
    sl_http_client_output ho = {.method = (char *)(method && method[0] ? method : "GET"),
                                .path = (char *)path,
                                .headers = (sl_kv *)headers,
                                .n_headers = n_headers};
    sl_output_conf out;
    memset(&out, 0, sizeof out);
    out.priv = &ho;
    sl_msg *msgs[1] = {&msg};
    sl_send_result r = {0};
    run_batch(c, &out, msgs, 1, &r, resp);
    resp->result = r.result;
    resp->status = r.status;
    memcpy(resp->error, r.error, sizeof resp->error);
}

void sl_http_response_free(sl_http_response *resp)
{
    if (!resp)
        return;
    free(resp->body);
    resp->body = NULL;
    resp->body_len = 0;
}

/* One synchronous request through this connector's base_url, timeout,
 * headers, credentials and tls (connectors/http_call.c), for steps. */
static int hc_call(sl_connector *c, const sl_call_req *req, sl_call_resp *resp)
{
    hc_state *s = c->state;
    return sl_http_call_auth(c->conf, s ? s->auth : NULL, req, resp);
}

const sl_connector_type sl_http_client_connector = {
    .name = "http_client",
    .can_input = false,
    .can_output = true,
    .has_breaker = true,
    .can_reply = true,
    .conf_keys = sl_http_client_conf_keys,
    .output_keys = sl_http_client_output_keys,
    .summary = "HTTP/1.1 client: each message is one request to a partner API",
    .conf_doc = sl_http_client_conf_doc,
    .output_doc = sl_http_client_output_doc,
    .parse_conf = sl_http_client_parse_conf,
    .parse_output = sl_http_client_parse_output,
    .init = hc_init,
    .attach_input = NULL,
    .start = hc_start,
    .send = hc_send,
    .stop = hc_stop,
    .destroy = hc_destroy,
    .call = hc_call,
};
