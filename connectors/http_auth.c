/* Authentication of http_server routes: the `auth:` list read from the
 * config (secrets through sl_conf_secret), and the checks, cheap ones from
 * the headers before the body is read, HMAC signatures over the raw body
 * after. Every secret comparison is sl_ct_equal. */
#include "http_auth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hex.h"
#include "password.h"

#define HA_SIG_MAX 1024 /* longest signature header read */

static const char *const TYPES[] = {"bearer", "api_key", "basic", "hmac", "mtls", NULL};
static const char *const KEYS[][9] = {
    {"type", "tokens", NULL},
    {"type", "header", "keys", NULL},
    {"type", "users", NULL},
    {"type", "header", "secret", "algorithm", "encoding", "prefix", "scheme", "tolerance", NULL},
    {"type", "subjects", NULL},
};
static const char *const ALGS[] = {"sha256", "sha1", "sha512", NULL};
static const char *const ENCODINGS[] = {"hex", "base64", NULL};
static const char *const SCHEMES[] = {"plain", "stripe", NULL};

/* ---- config ---------------------------------------------------------------- */

/* A list of secrets at item.key: each element read with sl_conf_secret. */
static void secret_list(sl_conf_reader *r, const sl_node *item, const char *key, const char *path,
                        const char ***out, size_t *n_out)
{
    const sl_node *seq = sl_conf_value(item, key);
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, key);
    if (seq == NULL) {
        sl_conf_missing(r, item, path, key);
        return;
    }
    if (seq->kind != SL_NODE_SEQ || seq->n_items == 0) {
        sl_conf_type_error(r, seq, p, "a non-empty list of secrets");
        return;
    }
    *out = sl_pool_alloc(sl_conf_pool(r), seq->n_items * sizeof **out);
    if (*out == NULL)
        return;
    for (size_t i = 0; i < seq->n_items; i++) {
        sl_node_pair pair = {(char *)"secret", seq->items[i]->pos, seq->items[i]};
        sl_node one = {
            .kind = SL_NODE_MAP, .pos = seq->items[i]->pos, .pairs = &pair, .n_pairs = 1};
        char ip[SL_CONF_PATH_LEN];
        sl_conf_path_index(ip, p, i);
        const char *v = NULL;
        if (sl_conf_secret(r, &one, "secret", ip, true, &v))
            (*out)[(*n_out)++] = v;
    }
}

static void parse_hmac(sl_conf_reader *r, const sl_node *item, const char *p, ha_entry *e)
{
    int i = 0;
    e->alg = SL_DIGEST_SHA256;
    e->tolerance_s = 300;
    sl_conf_need_str(r, item, "header", p, &e->header);
    sl_conf_secret(r, item, "secret", p, true, &e->secret);
    if (sl_conf_enum(r, item, "algorithm", p, ALGS, &i))
        sl_digest_parse(ALGS[i], &e->alg);
    if (sl_conf_enum(r, item, "encoding", p, ENCODINGS, &i))
        e->base64 = i == 1;
    sl_conf_str(r, item, "prefix", p, &e->prefix);
    if (sl_conf_enum(r, item, "scheme", p, SCHEMES, &i))
        e->stripe = i == 1;
    uint64_t tol_ms = 0;
    if (sl_conf_duration(r, item, "tolerance", p, &tol_ms))
        e->tolerance_s = tol_ms / 1000;
}

static void parse_entry(sl_conf_reader *r, const sl_node *item, const char *p, ha_entry *e)
{
    int t = 0;
    if (!sl_conf_want_map(r, item, p))
        return;
    if (!sl_conf_value(item, "type")) {
        sl_conf_missing(r, item, p, "type");
        return;
    }
    if (!sl_conf_enum(r, item, "type", p, TYPES, &t))
        return;
    e->type = (ha_type)t;
    sl_conf_check_keys(r, item, p, KEYS[t]);
    switch (e->type) {
        case HA_BEARER:
            secret_list(r, item, "tokens", p, &e->secrets, &e->n_secrets);
            break;
        case HA_API_KEY:
            sl_conf_need_str(r, item, "header", p, &e->header);
            secret_list(r, item, "keys", p, &e->secrets, &e->n_secrets);
            break;
        case HA_BASIC:
            if (!sl_conf_value(item, "users"))
                sl_conf_missing(r, item, p, "users");
            else if (sl_conf_kv(r, item, "users", p, &e->users, &e->n_users))
                for (size_t i = 0; i < e->n_users; i++)
                    if (!sl_password_hash_valid(e->users[i].value))
                        sl_conf_error_at(r, sl_conf_value(item, "users")->pos,
                                         "%s.users.%s: not a salted crypt(3) hash (make one with "
                                         "`sluice hash-password`)",
                                         p, e->users[i].key);
            break;
        case HA_HMAC:
            parse_hmac(r, item, p, e);
            break;
        case HA_MTLS:
            if (!sl_conf_value(item, "subjects"))
                sl_conf_missing(r, item, p, "subjects");
            else
                sl_conf_list(r, item, "subjects", p, NULL, &e->subjects, &e->n_subjects);
            break;
    }
}

void ha_parse(sl_conf_reader *r, const sl_node *n, const char *path, ha_conf *c)
{
    const sl_node *list = sl_conf_value(n, "auth");
    char p[SL_CONF_PATH_LEN];
    if (list == NULL)
        return;
    sl_conf_path_key(p, path, "auth");
    if (list->kind != SL_NODE_SEQ || list->n_items == 0) {
        sl_conf_type_error(r, list, p, "a non-empty list of {type: ...} entries");
        return;
    }
    c->entries = sl_pool_alloc(sl_conf_pool(r), list->n_items * sizeof *c->entries);
    if (c->entries == NULL)
        return;
    memset(c->entries, 0, list->n_items * sizeof *c->entries);
    for (size_t i = 0; i < list->n_items; i++) {
        char ip[SL_CONF_PATH_LEN];
        sl_conf_path_index(ip, p, i);
        parse_entry(r, list->items[i], ip, &c->entries[i]);
        c->has_hmac |= c->entries[i].type == HA_HMAC;
    }
    c->n = list->n_items;
}

/* ---- checks ---------------------------------------------------------------- */

const char *ha_reason(ha_result res)
{
    switch (res) {
        case HA_FORBIDDEN:
            return "auth_forbidden";
        case HA_INVALID:
            return "auth_invalid";
        default:
            return "auth_missing";
    }
}

/* The credential after "SCHEME " in the Authorization header, or NULL. */
static const char *authz(struct MHD_Connection *conn, const char *scheme)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    size_t n = strlen(scheme);
    if (h == NULL || strncasecmp(h, scheme, n) != 0 || h[n] != ' ')
        return NULL;
    h += n;
    while (*h == ' ')
        h++;
    return h;
}

/* True when v equals one of the secrets; every secret is compared. */
static bool one_of(const char *v, const char **secrets, size_t n)
{
    bool ok = false;
    for (size_t i = 0; i < n; i++)
        ok |= sl_ct_equal(v, strlen(v), secrets[i], strlen(secrets[i]));
    return ok;
}

static ha_result check_basic(const ha_entry *e, struct MHD_Connection *conn)
{
    const char *cred = authz(conn, "Basic");
    uint8_t *raw = NULL;
    size_t len = 0;
    if (cred == NULL)
        return HA_MISSING;
    if (sl_base64_decode(cred, strlen(cred), &raw, &len) != 0)
        return HA_INVALID;
    char *text = malloc(len + 1);
    ha_result res = HA_INVALID;
    if (text != NULL) {
        memcpy(text, raw, len);
        text[len] = '\0';
        char *colon = memchr(text, ':', len);
        if (colon != NULL && strlen(text) == len) {
            *colon = '\0';
            for (size_t i = 0; i < e->n_users && res != HA_PASS; i++)
                if (strcmp(e->users[i].key, text) == 0 &&
                    sl_password_check(colon + 1, e->users[i].value))
                    res = HA_PASS;
        }
        explicit_bzero(text, len);
        free(text);
    }
    explicit_bzero(raw, len);
    free(raw);
    return res;
}

static ha_result check_one(const ha_entry *e, struct MHD_Connection *conn, const char *subject)
{
    const char *v;
    switch (e->type) {
        case HA_BEARER:
            v = authz(conn, "Bearer");
            return v == NULL                             ? HA_MISSING
                   : one_of(v, e->secrets, e->n_secrets) ? HA_PASS
                                                         : HA_INVALID;
        case HA_API_KEY:
            v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, e->header);
            return v == NULL                             ? HA_MISSING
                   : one_of(v, e->secrets, e->n_secrets) ? HA_PASS
                                                         : HA_INVALID;
        case HA_BASIC:
            return check_basic(e, conn);
        case HA_MTLS:
            if (subject == NULL || subject[0] == '\0')
                return HA_MISSING;
            for (size_t i = 0; i < e->n_subjects; i++)
                if (strcmp(subject, e->subjects[i]) == 0)
                    return HA_PASS;
            return HA_FORBIDDEN;
        case HA_HMAC:
            v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, e->header);
            return v == NULL ? HA_MISSING : HA_NEED_BODY;
    }
    return HA_MISSING;
}

/* The stronger of two outcomes: pass > need body > forbidden > invalid > missing. */
static ha_result better(ha_result a, ha_result b)
{
    static const int rank[] = {
        [HA_PASS] = 4, [HA_NEED_BODY] = 3, [HA_FORBIDDEN] = 2, [HA_INVALID] = 1, [HA_MISSING] = 0};
    return rank[b] > rank[a] ? b : a;
}

bool ha_known_token(const ha_conf *c, struct MHD_Connection *conn)
{
    bool known = false;
    for (size_t i = 0; i < c->n; i++)
        if (c->entries[i].type == HA_BEARER || c->entries[i].type == HA_API_KEY)
            known |= check_one(&c->entries[i], conn, NULL) == HA_PASS;
    return known;
}

ha_result ha_check_headers(const ha_conf *c, struct MHD_Connection *conn, const char *subject)
{
    ha_result best = HA_MISSING;
    for (size_t i = 0; i < c->n && best != HA_PASS; i++)
        best = better(best, check_one(&c->entries[i], conn, subject));
    return best;
}

/* True when sig (encoded as e says) is the HMAC of the n parts. */
static bool hmac_matches(const ha_entry *e, const char *sig, size_t sig_len, const void *data,
                         size_t len)
{
    uint8_t mac[SL_DIGEST_MAX], got[SL_DIGEST_MAX];
    size_t mlen = sl_digest_len(e->alg);
    long glen = -1;
    if (sl_hmac(e->alg, e->secret, strlen(e->secret), data, len, mac) != 0)
        return false;
    if (!e->base64) {
        glen = sl_hex_decode(sig, sig_len, got, sizeof got);
    } else {
        uint8_t *raw = NULL;
        size_t rlen = 0;
        if (sl_base64_decode(sig, sig_len, &raw, &rlen) == 0 && rlen <= sizeof got) {
            memcpy(got, raw, rlen);
            glen = (long)rlen;
        }
        free(raw);
    }
    return glen >= 0 && sl_ct_equal(got, (size_t)glen, mac, mlen);
}

/* GitHub style: HEADER: PREFIX + encoded HMAC(secret, body). */
static bool check_plain(const ha_entry *e, const char *h, const char *body, size_t len)
{
    size_t pl = e->prefix != NULL ? strlen(e->prefix) : 0;
    if (pl > 0 && strncmp(h, e->prefix, pl) != 0)
        return false;
    return hmac_matches(e, h + pl, strlen(h + pl), body, len);
}

/* Stripe style: HEADER: t=UNIX,v1=HEX[,v1=HEX...] over "t.body", t within
 * the tolerance of now. */
static bool check_stripe(const ha_entry *e, const char *h, const char *body, size_t len,
                         int64_t now_s)
{
    char ts[24] = "";
    const char *p = h;
    while (*p != '\0') { /* find t= */
        size_t n = strcspn(p, ",");
        if (n > 2 && n - 2 < sizeof ts && strncmp(p, "t=", 2) == 0)
            snprintf(ts, sizeof ts, "%.*s", (int)(n - 2), p + 2);
        p += n + (p[n] == ',');
    }
    size_t tl = strlen(ts);
    if (tl == 0 || tl > 12 || strspn(ts, "0123456789") != tl)
        return false; /* Unix seconds, unsigned, no overflow below */
    long long t = strtoll(ts, NULL, 10);
    if (llabs((long long)now_s - t) > (long long)e->tolerance_s)
        return false;
    char *signed_payload = malloc(tl + 1 + len);
    if (signed_payload == NULL)
        return false;
    memcpy(signed_payload, ts, tl);
    signed_payload[tl] = '.';
    memcpy(signed_payload + tl + 1, body, len);
    bool ok = false;
    for (p = h; *p != '\0';) { /* every v1= */
        size_t n = strcspn(p, ",");
        if (n > 3 && strncmp(p, "v1=", 3) == 0)
            ok |= hmac_matches(e, p + 3, n - 3, signed_payload, tl + 1 + len);
        p += n + (p[n] == ',');
    }
    free(signed_payload);
    return ok;
}

ha_result ha_check_body(const ha_conf *c, struct MHD_Connection *conn, const char *body, size_t len,
                        int64_t now_s)
{
    ha_result best = HA_MISSING;
    for (size_t i = 0; i < c->n; i++) {
        const ha_entry *e = &c->entries[i];
        if (e->type != HA_HMAC)
            continue;
        const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, e->header);
        if (h == NULL || strlen(h) > HA_SIG_MAX)
            continue;
        bool ok = e->stripe ? check_stripe(e, h, body, len, now_s) : check_plain(e, h, body, len);
        if (ok)
            return HA_PASS;
        best = HA_INVALID;
    }
    return best;
}

void ha_challenge(const ha_conf *c, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->n && at < cap; i++) {
        const ha_entry *e = &c->entries[i];
        char one[200];
        switch (e->type) {
            case HA_BEARER:
                snprintf(one, sizeof one, "Bearer realm=\"sluice\"");
                break;
            case HA_BASIC:
                snprintf(one, sizeof one, "Basic realm=\"sluice\", charset=\"UTF-8\"");
                break;
            case HA_API_KEY:
                snprintf(one, sizeof one, "ApiKey realm=\"sluice\", header=\"%s\"", e->header);
                break;
            case HA_HMAC:
                snprintf(one, sizeof one, "HMAC realm=\"sluice\", header=\"%s\"", e->header);
                break;
            case HA_MTLS:
                snprintf(one, sizeof one, "MutualTLS realm=\"sluice\"");
                break;
        }
        if (strstr(out, one) == NULL)
            at += (size_t)snprintf(out + at, cap - at, "%s%s", at ? ", " : "", one);
    }
}
