/* The http_client connector's `auth:` and `tls:` keys, read with the config
 * reader into sl_http_client_conf (the credentials themselves are applied
 * at run time by http_client_auth.c). Secrets are read with sl_conf_secret,
 * so they may come from ${VAR} or file:PATH and never appear in errors. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "http_client.h"

static const char *const AUTH_TYPES[] = {"basic", "bearer", "oauth2", NULL};
static const char *const CLIENT_AUTH[] = {"basic", "body", NULL};
static const char *const AUTH_KEYS[] = {
    "type",          "user",  "password", "token",       "token_file",     "token_url", "client_id",
    "client_secret", "scope", "audience", "client_auth", "refresh_margin", NULL};
static const char *const TLS_KEYS[] = {"ca", "cert", "key", NULL};

const sl_conf_doc sl_http_client_auth_doc[] = {
    SL_DOC_REQ("type", "enum:basic|bearer|oauth2", "which credentials"),
    SL_DOC("user", "string", NULL, "basic: the user name"),
    SL_DOC("password", "string", NULL, "basic: the password (${VAR} or file:PATH)"),
    SL_DOC("token", "string", NULL, "bearer: the token (${VAR} or file:PATH, read once)"),
    SL_DOC("token_file", "string", NULL,
           "bearer: file holding the token (relative to the YAML file), read again whenever it "
           "changes"),
    SL_DOC("token_url", "url", NULL, "oauth2: the token endpoint (client credentials grant)"),
    SL_DOC("client_id", "string", NULL, "oauth2: the client id"),
    SL_DOC("client_secret", "string", NULL, "oauth2: the client secret (${VAR} or file:PATH)"),
    SL_DOC("scope", "string", NULL, "oauth2: scope asked for (space-separated)"),
    SL_DOC("audience", "string", NULL, "oauth2: audience asked for (Auth0 and others)"),
    SL_DOC("client_auth", "enum:basic|body", "basic",
           "oauth2: client id and secret in HTTP Basic or in the form body"),
    SL_DOC("refresh_margin", "duration", "30s",
           "oauth2: a token is renewed this long before it expires"),
    SL_DOC_END};

const sl_conf_doc sl_http_client_tls_doc[] = {
    SL_DOC("ca", "string", NULL,
           "PEM file of the CAs trusted instead of the system's (paths relative to the YAML file)"),
    SL_DOC("cert", "string", NULL, "PEM client certificate presented to the partner (mTLS)"),
    SL_DOC("key", "string", NULL, "PEM private key of cert (unencrypted)"), SL_DOC_END};

/* A required secret or string of the auth map, with the error naming the
 * type that needs it. */
static void need(sl_conf_reader *r, const sl_node *a, const char *path, const char *key,
                 bool secret, const char **out)
{
    if (secret) {
        sl_conf_secret(r, a, key, path, true, out);
        return;
    }
    char *s = NULL;
    if (sl_conf_need_str(r, a, key, path, &s))
        *out = s;
}

static void opt_str(sl_conf_reader *r, const sl_node *a, const char *path, const char *key,
                    const char **out)
{
    char *s = NULL;
    if (sl_conf_str(r, a, key, path, &s))
        *out = s;
}

/* A file path at key, resolved against the directory of the YAML file
 * that names it (as `file:` secrets and lua scripts are); when readable,
 * it must be readable now (else an error at the key). */
static void opt_file(sl_conf_reader *r, const sl_node *a, const char *path, const char *key,
                     bool readable, const char **out)
{
    char *s = NULL;
    if (!sl_conf_str(r, a, key, path, &s))
        return;
    const sl_node *n = sl_conf_value(a, key);
    const char *slash = n->pos.file ? strrchr(n->pos.file, '/') : NULL;
    if (s[0] != '/' && slash)
        s = sl_pool_printf(sl_conf_pool(r), "%.*s/%s", (int)(slash - n->pos.file), n->pos.file, s);
    if (!s)
        return;
    if (readable && access(s, R_OK) != 0)
        sl_conf_error_at(r, n->pos, "%s.%s: %s: %s", path, key, s, strerror(errno));
    *out = s;
}

/* bearer: exactly one of token and token_file. */
static void parse_bearer(sl_conf_reader *r, sl_hc_auth_conf *ac, const sl_node *a, const char *path)
{
    bool has_token = sl_conf_value(a, "token") != NULL;
    bool has_file = sl_conf_value(a, "token_file") != NULL;
    if (has_token == has_file) {
        sl_conf_error_at(r, a->pos, "%s: bearer needs exactly one of 'token' and 'token_file'",
                         path);
        return;
    }
    if (has_token)
        need(r, a, path, "token", true, &ac->token);
    else
        opt_file(r, a, path, "token_file", false, &ac->token_file);
}

static void parse_oauth2(sl_conf_reader *r, sl_hc_auth_conf *ac, const sl_node *a, const char *path)
{
    need(r, a, path, "token_url", false, &ac->token_url);
    if (ac->token_url && strncmp(ac->token_url, "http://", 7) != 0 &&
        strncmp(ac->token_url, "https://", 8) != 0)
        sl_conf_error_at(r, sl_conf_value(a, "token_url")->pos,
                         "%s.token_url: expected an http:// or https:// URL", path);
    need(r, a, path, "client_id", false, &ac->client_id);
    need(r, a, path, "client_secret", true, &ac->client_secret);
    opt_str(r, a, path, "scope", &ac->scope);
    opt_str(r, a, path, "audience", &ac->audience);
    int i;
    if (sl_conf_enum(r, a, "client_auth", path, CLIENT_AUTH, &i))
        ac->client_auth_body = i == 1;
    sl_conf_duration(r, a, "refresh_margin", path, &ac->refresh_margin_ms);
}

void sl_http_client_parse_auth(sl_conf_reader *r, sl_http_client_conf *hc, const sl_node *n,
                               const char *path)
{
    const sl_node *a = sl_conf_value(n, "auth");
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, "auth");
    if (!a || !sl_conf_want_map(r, a, p))
        return;
    sl_conf_check_keys(r, a, p, AUTH_KEYS);
    sl_hc_auth_conf *ac = &hc->auth;
    ac->refresh_margin_ms = 30000;
    int t;
    if (!sl_conf_enum(r, a, "type", p, AUTH_TYPES, &t)) {
        if (!sl_conf_value(a, "type"))
            sl_conf_missing(r, a, p, "type");
        return;
    }
    if (t == 0) {
        ac->type = SL_HC_AUTH_BASIC;
        need(r, a, p, "user", false, &ac->user);
        if (ac->user && strchr(ac->user, ':'))
            sl_conf_error_at(r, sl_conf_value(a, "user")->pos,
                             "%s.user: a basic auth user name cannot hold ':'", p);
        need(r, a, p, "password", true, &ac->password);
    } else if (t == 1) {
        ac->type = SL_HC_AUTH_BEARER;
        parse_bearer(r, ac, a, p);
    } else {
        ac->type = SL_HC_AUTH_OAUTH2;
        parse_oauth2(r, ac, a, p);
    }
}

void sl_http_client_parse_tls(sl_conf_reader *r, sl_http_client_conf *hc, const sl_node *n,
                              const char *path)
{
    const sl_node *t = sl_conf_value(n, "tls");
    char p[SL_CONF_PATH_LEN];
    sl_conf_path_key(p, path, "tls");
    if (!t || !sl_conf_want_map(r, t, p))
        return;
    sl_conf_check_keys(r, t, p, TLS_KEYS);
    opt_file(r, t, p, "ca", true, &hc->tls.ca);
    opt_file(r, t, p, "cert", true, &hc->tls.cert);
    opt_file(r, t, p, "key", true, &hc->tls.key);
    if ((hc->tls.cert != NULL) != (hc->tls.key != NULL))
        sl_conf_error_at(r, t->pos, "%s: 'cert' and 'key' go together", p);
}
