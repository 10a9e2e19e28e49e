/* Compiling and evaluating key and condition expressions through the
 * language tables of core/expr.h: core picks the language by its prefix
 * rule and never knows what the language is. */
#include "expr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_expr {
    const sl_expr_lang *lang;
    void *h;
};

static const sl_expr_lang *find_lang(const sl_expr_lang *const *langs, const char *text)
{
    for (size_t i = 0; langs[i]; i++) {
        if (langs[i]->accepts(text))
            return langs[i];
    }
    return NULL;
}

/* "expected A, B or C" from the languages' syntax texts. */
static void expected_list(const sl_expr_lang *const *langs, char *out, size_t cap)
{
    size_t n = 0, o = 0;
    while (langs[n])
        n++;
    out[0] = '\0';
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *sep = i == 0 ? "" : i + 1 == n ? " or " : ", ";
        int w = snprintf(out + o, cap - o, "%s%s", sep, langs[i]->syntax);
        o += w > 0 ? (size_t)w : 0;
    }
}

static sl_expr *compile_with(const sl_expr_lang *lang, const char *text, const sl_conf_pos *pos,
                             sl_error *err)
{
    sl_expr *e = calloc(1, sizeof *e);
    if (!e) {
        sl_error_set(err, SL_ENOMEM, "out of memory");
        return NULL;
    }
    e->lang = lang;
    e->h = lang->compile(text, pos, err);
    if (!e->h) {
        free(e);
        return NULL;
    }
    return e;
}

sl_expr *sl_expr_compile_key(const char *text, const sl_conf_pos *pos, sl_error *err)
{
    const sl_expr_lang *lang = find_lang(sl_expr_key_langs, text);
    if (!lang) {
        char expected[512];
        expected_list(sl_expr_key_langs, expected, sizeof expected);
        sl_error_set(err, SL_EINVAL, "malformed key expression \"%s\": expected %s", text,
                     expected);
        return NULL;
    }
    return compile_with(lang, text, pos, err);
}

sl_expr *sl_expr_compile_cond(const char *text, const sl_conf_pos *pos, sl_error *err)
{
    const sl_expr_lang *lang = find_lang(sl_expr_cond_langs, text);
    if (!lang) {
        char expected[512];
        expected_list(sl_expr_cond_langs, expected, sizeof expected);
        sl_error_set(err, SL_ECONFIG, "malformed condition \"%s\": expected %s", text, expected);
        return NULL;
    }
    return compile_with(lang, text, pos, err);
}

int sl_expr_eval_key(sl_expr *e, sl_msg *msg, char **out, size_t *len, sl_error *err)
{
    size_t unused;
    *out = NULL;
    if (!len)
        len = &unused;
    *len = 0;
    if (!e->lang->eval_key)
        return sl_error_set(err, SL_EINVAL, "%s expressions cannot be keys", e->lang->name);
    return e->lang->eval_key(e->h, msg, out, len, err);
}

int sl_expr_eval_bool(sl_expr *e, sl_msg *msg, bool *out, sl_error *err)
{
    *out = false;
    if (!e->lang->eval_bool)
        return sl_error_set(err, SL_EINVAL, "%s expressions cannot be conditions", e->lang->name);
    return e->lang->eval_bool(e->h, msg, out, err);
}

void sl_expr_free(sl_expr *e)
{
    if (!e)
        return;
    e->lang->free(e->h);
    free(e);
}

/* ---- a connector's compiled keys ---- */

typedef struct expr_set_entry {
    char *text;
    sl_expr *e;    /* NULL when text does not compile: */
    sl_error fail; /* then why */
} expr_set_entry;

struct sl_expr_set {
    expr_set_entry *v;
    size_t n;
};

sl_expr_set *sl_expr_set_new(void)
{
    return calloc(1, sizeof(sl_expr_set));
}

static const expr_set_entry *expr_set_find(const sl_expr_set *s, const char *text)
{
    for (size_t i = 0; s && i < s->n; i++) {
        if (strcmp(s->v[i].text, text) == 0)
            return &s->v[i];
    }
    return NULL;
}

int sl_expr_set_add(sl_expr_set *s, const char *text, sl_error *err)
{
    if (expr_set_find(s, text))
        return 0;
    expr_set_entry *v = realloc(s->v, (s->n + 1) * sizeof *v);
    if (!v)
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    s->v = v;
    expr_set_entry *en = &v[s->n];
    memset(en, 0, sizeof *en);
    if (!(en->text = strdup(text)))
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    en->e = sl_expr_compile_key(text, NULL, &en->fail);
    if (!en->e && en->fail.code == SL_ENOMEM) {
        free(en->text);
        return sl_error_set(err, SL_ENOMEM, "out of memory");
    }
    s->n++;
    return 0;
}

int sl_expr_set_eval(const sl_expr_set *s, const char *text, sl_msg *msg, char **out, size_t *len,
                     sl_error *err)
{
    const expr_set_entry *en = expr_set_find(s, text);
    if (!en)
        return sl_msg_eval_key(msg, text, out, len, err);
    if (!en->e) {
        *out = NULL;
        if (len)
            *len = 0;
        *err = en->fail;
        return -1;
    }
    return sl_expr_eval_key(en->e, msg, out, len, err);
}

void sl_expr_set_free(sl_expr_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].text);
        sl_expr_free(s->v[i].e);
    }
    free(s->v);
    free(s);
}
