/* Outbound credentials of an http_client connector (see http_client_auth.h):
 * the Authorization value each request carries, kept per connector behind
 * one mutex. OAuth2 tokens come from the token endpoint by the client
 * credentials grant on the calling thread (a route worker that is waiting
 * for its batch anyway), one fetch at a time; the curl loop thread never
 * blocks on them. */
#include "http_client_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "crypto.h"

#define TOKEN_FILE_MAX (64 * 1024) /* bytes read from a token file */
#define TOKEN_RESP_MAX (64 * 1024) /* bytes kept of a token endpoint's answer */
#define DEFAULT_EXPIRES_S 300      /* lifetime assumed when the answer has no expires_in */

struct sl_hc_auth {
    const sl_http_client_conf *conf;
    const char *name;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* a token fetch ended */
    char *value;        /* the current Authorization value, or NULL */
    uint64_t gen;       /* bumped whenever value changes */
    int64_t renew_ns;   /* oauth2: monotonic time from which value is renewed */
    bool fetching;      /* oauth2: a caller is asking token_url */
    uint64_t fetches;   /* oauth2: fetches ended */
    char last_err[256]; /* oauth2: why the last fetch failed */
    bool file_read;     /* token_file: value reflects file_st */
    struct stat file_st;
};

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* "PREFIX" followed by text, malloc'd; NULL when out of memory. */
static char *prefixed(const char *prefix, const char *text)
{
    size_t pl = strlen(prefix), tl = strlen(text);
    char *v = malloc(pl + tl + 1);
    if (v) {
        memcpy(v, prefix, pl);
        memcpy(v + pl, text, tl + 1);
    }
    return v;
}

/* True when a token can go into a header line. */
static bool token_ok(const char *t, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

/* "Basic base64(user:password)", malloc'd; NULL when out of memory. */
static char *basic_value(const char *user, const char *password)
{
    size_t ul = strlen(user), pl = strlen(password);
    char *pair = malloc(ul + pl + 2);
    if (!pair)
        return NULL;
    memcpy(pair, user, ul);
    pair[ul] = ':';
    memcpy(pair + ul + 1, password, pl + 1);
    char *b64 = sl_base64_encode(pair, ul + pl + 1);
    explicit_bzero(pair, ul + pl + 1);
    free(pair);
    char *v = b64 ? prefixed("Basic ", b64) : NULL;
    if (b64)
        explicit_bzero(b64, strlen(b64));
    free(b64);
    return v;
}

sl_hc_auth *sl_hc_auth_new(const sl_http_client_conf *conf, const char *name, sl_error *err)
{
    sl_hc_auth *a = calloc(1, sizeof *a);
    if (!a || pthread_mutex_init(&a->mu, NULL) != 0) {
        free(a);
        sl_error_set(err, SL_ENOMEM, "http_client %s: out of memory", name);
        return NULL;
    }
    pthread_cond_init(&a->cv, NULL);
    a->conf = conf;
    a->name = name;
    const sl_hc_auth_conf *ac = &conf->auth;
    if (ac->type == SL_HC_AUTH_BEARER && ac->token) {
        if (!token_ok(ac->token, strlen(ac->token))) {
            sl_hc_auth_free(a);
            sl_error_set(err, SL_ECONFIG,
                         "http_client %s: auth.token is empty or holds a "
                         "control character",
                         name);
            return NULL;
        }
        a->value = prefixed("Bearer ", ac->token);
    } else if (ac->type == SL_HC_AUTH_BASIC) {
        a->value = basic_value(ac->user, ac->password);
    } else {
        return a;
    }
    if (!a->value) {
        sl_hc_auth_free(a);
        sl_error_set(err, SL_ENOMEM, "http_client %s: out of memory", name);
        return NULL;
    }
    return a;
}

/* Frees a credential string after wiping it. s may be NULL. */
static void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

void sl_hc_auth_free(sl_hc_auth *a)
{
    if (!a)
        return;
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    free_secret(a->value);
    free(a);
}

bool sl_hc_auth_renewable(const sl_hc_auth *a)
{
    return a && (a->conf->auth.type == SL_HC_AUTH_OAUTH2 || a->conf->auth.token_file);
}

void sl_hc_auth_invalidate(sl_hc_auth *a, uint64_t gen)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->mu);
    if (gen == a->gen) {
        a->renew_ns = 0;
        a->file_read = false;
    }
    pthread_mutex_unlock(&a->mu);
}

/* ---- bearer token_file ---- */

static bool same_file(const struct stat *x, const struct stat *y)
{
    return x->st_ino == y->st_ino && x->st_dev == y->st_dev && x->st_size == y->st_size &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec;
}

/* Reads the token file into a->value (whitespace at its end dropped) when
 * it changed since it was last read. Keeps the old token when the file
 * cannot be read now but was before. Caller holds a->mu. */
static sl_result read_token_file(sl_hc_auth *a, char *err, size_t cap)
{
    const char *path = a->conf->auth.token_file;
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        snprintf(err, cap, "http_client %s: auth.token_file %s: %s", a->name, path, strerror(e));
        return a->value ? SL_OK : SL_RETRY;
    }
    if (a->file_read && same_file(&st, &a->file_st)) {
        close(fd);
        return SL_OK;
    }
    char buf[TOKEN_FILE_MAX + 1];
    ssize_t n = read(fd, buf, TOKEN_FILE_MAX);
    close(fd);
    size_t len = n > 0 ? (size_t)n : 0;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    if (!token_ok(buf, len)) {
        snprintf(err, cap,
                 "http_client %s: auth.token_file %s is empty or holds a control "
                 "character",
                 a->name, path);
        return a->value ? SL_OK : SL_RETRY;
    }
    char *v = prefixed("Bearer ", buf);
    if (!v) {
        snprintf(err, cap, "http_client %s: out of memory", a->name);
        return SL_RETRY;
    }
    free_secret(a->value);
    a->value = v;
    a->gen++;
    a->file_st = st;
    a->file_read = true;
    return SL_OK;
}

/* ---- oauth2 ---- */

typedef struct token_resp {
    char *data;
    size_t len;
} token_resp;

static size_t on_token_body(char *data, size_t size, size_t nmemb, void *arg)
{
    token_resp *t = arg;
    size_t n = size * nmemb;
    if (t->len + n > TOKEN_RESP_MAX)
        return 0;
    char *p = realloc(t->data, t->len + n + 1);
    if (!p)
        return 0;
    memcpy(p + t->len, data, n);
    t->len += n;
    p[t->len] = '\0';
    t->data = p;
    return n;
}

/* Appends "&key=escaped(value)" (no '&' when the form is empty). */
static int form_add(CURL *e, char **form, const char *key, const char *value)
{
    if (!value)
        return 0;
    char *esc = curl_easy_escape(e, value, 0);
    if (!esc)
        return -1;
    size_t old = *form ? strlen(*form) : 0;
    size_t need = old + strlen(key) + strlen(esc) + 3;
    char *f = realloc(*form, need);
    if (f)
        snprintf(f + old, need - old, "%s%s=%s", old ? "&" : "", key, esc);
    curl_free(esc);
    if (!f)
        return -1;
    *form = f;
    return 0;
}

/* The form of the client credentials grant; with HTTP Basic client
 * authentication, id and secret go on e as user and password instead
 * (form-encoded first, as RFC 6749 2.3.1 asks). */
static char *token_form(CURL *e, const sl_hc_auth_conf *ac, char **user, char **pass)
{
    char *form = NULL;
    if (form_add(e, &form, "grant_type", "client_credentials") < 0 ||
        form_add(e, &form, "scope", ac->scope) < 0 ||
        form_add(e, &form, "audience", ac->audience) < 0)
        goto oom;
    if (ac->client_auth_body) {
        if (form_add(e, &form, "client_id", ac->client_id) < 0 ||
            form_add(e, &form, "client_secret", ac->client_secret) < 0)
            goto oom;
        return form;
    }
    *user = curl_easy_escape(e, ac->client_id, 0);
    *pass = curl_easy_escape(e, ac->client_secret, 0);
    if (*user && *pass)
        return form;
oom:
    free(form);
    return NULL;
}

/* Reads access_token and expires_in (seconds; a number or a numeric
 * string) from the endpoint's JSON answer. Returns 0, or -1 with err. */
static int parse_token(const sl_hc_auth *a, const token_resp *t, char **token, long *expires_s,
                       char *err, size_t cap)
{
    json_t *root = t->data ? json_loadb(t->data, t->len, 0, NULL) : NULL;
    const char *tok = root ? json_string_value(json_object_get(root, "access_token")) : NULL;
    if (!tok || !token_ok(tok, strlen(tok))) {
        snprintf(err, cap,
                 "http_client %s: the token endpoint's answer has no usable "
                 "access_token",
                 a->name);
        json_decref(root);
        return -1;
    }
    json_t *exp = json_object_get(root, "expires_in");
    *expires_s = DEFAULT_EXPIRES_S;
    if (json_is_number(exp))
        *expires_s = (long)json_number_value(exp);
    else if (json_is_string(exp))
        *expires_s = strtol(json_string_value(exp), NULL, 10);
    *token = strdup(tok);
    json_decref(root);
    if (!*token) {
        snprintf(err, cap, "http_client %s: out of memory", a->name);
        return -1;
    }
    return 0;
}

/* Runs one token request on e (prepared but for its transfer options) and
 * parses the answer. Returns 0 with *token, or -1 with err. */
static int token_request(const sl_hc_auth *a, CURL *e, char **token, long *expires_s, char *err,
                         size_t cap)
{
    token_resp t = {0};
    long timeout = a->conf->timeout_ms ? (long)a->conf->timeout_ms : 5000;
    curl_easy_setopt(e, CURLOPT_URL, a->conf->auth.token_url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_token_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    CURLcode cc = sl_hc_tls_apply(e, &a->conf->tls);
    if (cc == CURLE_OK)
        cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    int rc = -1;
    if (cc != CURLE_OK)
        snprintf(err, cap, "http_client %s: token endpoint: %s", a->name, curl_easy_strerror(cc));
    else if (status < 200 || status > 299)
        snprintf(err, cap, "http_client %s: token endpoint answered HTTP %ld", a->name, status);
    else
        rc = parse_token(a, &t, token, expires_s, err, cap);
    free(t.data);
    return rc;
}

/* Asks token_url for a token (client credentials grant). Returns 0 with a
 * malloc'd *token and its lifetime, or -1 with err. No lock held. */
static int oauth2_fetch(const sl_hc_auth *a, char **token, long *expires_s, char *err, size_t cap)
{
    const sl_hc_auth_conf *ac = &a->conf->auth;
    CURL *e = curl_easy_init();
    char *user = NULL, *pass = NULL, *form = NULL;
    struct curl_slist *hdrs = NULL;
    int rc = -1;
    snprintf(err, cap, "http_client %s: out of memory", a->name);
    if (e)
        form = token_form(e, ac, &user, &pass);
    if (form) {
        hdrs = curl_slist_append(NULL, "Accept: application/json");
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, form);
        if (user) {
            curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
            curl_easy_setopt(e, CURLOPT_USERNAME, user);
            curl_easy_setopt(e, CURLOPT_PASSWORD, pass);
        }
        rc = token_request(a, e, token, expires_s, err, cap);
    }
    curl_slist_free_all(hdrs);
    curl_free(user);
    curl_free(pass);
    free(form);
    if (e)
        curl_easy_cleanup(e);
    return rc;
}

/* When a token that lives expires_s seconds is renewed: margin before its
 * end, or half-way when the margin would eat most of it. */
static int64_t renew_at(const sl_hc_auth *a, int64_t now, long expires_s)
{
    int64_t life = (int64_t)(expires_s > 0 ? expires_s : 1) * 1000000000;
    int64_t margin = (int64_t)a->conf->auth.refresh_margin_ms * 1000000;
    return now + (margin * 2 < life ? life - margin : life / 2);
}

/* Fetches a token with the lock released and stores the outcome. Caller
 * holds a->mu and has set a->fetching. */
static void oauth2_refresh(sl_hc_auth *a)
{
    char err[sizeof a->last_err];
    char *token = NULL;
    long expires_s = 0;
    pthread_mutex_unlock(&a->mu);
    int rc = oauth2_fetch(a, &token, &expires_s, err, sizeof err);
    char *v = rc == 0 ? prefixed("Bearer ", token) : NULL;
    if (rc == 0 && !v)
        snprintf(err, sizeof err, "http_client %s: out of memory", a->name);
    free_secret(token);
    pthread_mutex_lock(&a->mu);
    if (v) {
        free_secret(a->value);
        a->value = v;
        a->gen++;
        a->renew_ns = renew_at(a, mono_ns(), expires_s);
    } else {
        snprintf(a->last_err, sizeof a->last_err, "%s", err);
    }
    a->fetching = false;
    a->fetches++;
    pthread_cond_broadcast(&a->cv);
}

/* Makes sure a->value holds a token that is not due for renewal, fetching
 * one (or waiting for the fetch under way and sharing its outcome).
 * Caller holds a->mu. */
static sl_result oauth2_current(sl_hc_auth *a, char *err, size_t cap)
{
    for (;;) {
        if (a->value && mono_ns() < a->renew_ns)
            return SL_OK;
        if (!a->fetching)
            break;
        uint64_t seen = a->fetches;
        while (a->fetching)
            pthread_cond_wait(&a->cv, &a->mu);
        if (a->fetches != seen && !(a->value && mono_ns() < a->renew_ns)) {
            snprintf(err, cap, "%s", a->last_err);
            return SL_RETRY;
        }
    }
    a->fetching = true;
    oauth2_refresh(a);
    if (a->value && mono_ns() < a->renew_ns)
        return SL_OK;
    snprintf(err, cap, "%s", a->last_err);
    return SL_RETRY;
}

sl_result sl_hc_auth_value(sl_hc_auth *a, char **value, uint64_t *gen, char *err, size_t cap)
{
    *value = NULL;
    *gen = 0;
    if (!a || a->conf->auth.type == SL_HC_AUTH_NONE)
        return SL_OK;
    pthread_mutex_lock(&a->mu);
    sl_result res = SL_OK;
    if (a->conf->auth.type == SL_HC_AUTH_OAUTH2)
        res = oauth2_current(a, err, cap);
    else if (a->conf->auth.token_file)
        res = read_token_file(a, err, cap);
    if (res == SL_OK) {
        *value = a->value ? strdup(a->value) : NULL;
        *gen = a->gen;
        if (!*value) {
            snprintf(err, cap, "http_client %s: out of memory", a->name);
            res = SL_RETRY;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return res;
}

CURLcode sl_hc_tls_apply(CURL *e, const sl_hc_tls_conf *tls)
{
    CURLcode rc = CURLE_OK;
    if (tls->ca)
        rc = curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca);
    if (rc == CURLE_OK && tls->cert)
        rc = curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert);
    if (rc == CURLE_OK && tls->key)
        rc = curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key);
    return rc;
}
