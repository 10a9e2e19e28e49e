/* Configuration loader, first stage: one YAML file (libyaml events) into a
 * tree of sl_node that remembers file, line and column, with ${VAR} expansion.
 * Anchors, aliases, duplicate keys and multi-document files are errors. */
#include "config_priv.h"
#include "name_index.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

typedef struct yparse {
    sl_conf_ctx *c;
    yaml_parser_t parser;
    const char *file;
    bool failed; /* libyaml gave up, or the nesting is too deep; no more events */
    int depth;   /* maps and lists open around the current node */
} yparse;

/* Deeper than any real config; bounds the parser's recursion (a file of
 * 100,000 '[' must be an error, not a stack overflow). */
#define SL_CONF_MAX_DEPTH 64
#define SL_CONF_MAX_FILE_BYTES (4 << 20)

/* A growable byte buffer for expansion; malloc'd. */
typedef struct sbuf {
    char *p;
    size_t n;
    size_t cap;
    bool oom;
} sbuf;

static void sbuf_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) {
        return;
    }
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1) {
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static bool is_name_start(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static bool is_name_char(char ch)
{
    return is_name_start(ch) || (ch >= '0' && ch <= '9');
}

/* ${header:NAME} and ${$.path} (name..end) are substitutions from the
 * message (AMQP routing keys), not environment variables. */
static bool is_message_ref(const char *name, const char *end)
{
    return *name == '$' ||
           (end - name == 6 && strncmp(name, "header", 6) == 0 && end[0] == ':' && end[1] != '-');
}

/* Appends the value of the variable name..end (or the default between
 * dflt and close when it is unset or empty; dflt NULL: no default) to b.
 * False after recording an error. */
static bool add_var(sl_conf_ctx *c, const char *raw, const char *name, const char *end,
                    const char *dflt, const char *close, sl_conf_pos pos, sbuf *b)
{
    char var[256];
    size_t len = (size_t)(end - name);
    if (len >= sizeof var) {
        sl_conf_error(c, pos, "environment variable name too long in '%s'", raw);
        return false;
    }
    memcpy(var, name, len);
    var[len] = '\0';
    const char *val = getenv(var);
    if (dflt && (!val || !*val)) {
        sbuf_add(b, dflt, (size_t)(close - dflt));
    } else if (val) {
        sbuf_add(b, val, strlen(val));
    } else if (!c->unset_fn || !c->unset_fn(c->unset_arg, var, pos)) {
        sl_conf_error(c, pos, "environment variable %s is not set", var);
        return false; /* (an accepted unset variable expands to nothing) */
    }
    return true;
}

/* Expands the "${...}" at dollar into b. Returns where the text goes on,
 * or NULL after recording an error. */
static const char *expand_ref(sl_conf_ctx *c, const char *raw, const char *dollar, sl_conf_pos pos,
                              sbuf *b)
{
    const char *name = dollar + 2;
    const char *end = name;
    while (is_name_char(*end)) {
        end++;
    }
    const char *close = strchr(end, '}');
    bool has_default = end[0] == ':' && end[1] == '-';
    if (close && is_message_ref(name, end)) {
        sbuf_add(b, dollar, (size_t)(close - dollar + 1));
        return close + 1;
    }
    if (!close) {
        sl_conf_error(c, pos, "unterminated '${' in '%s'", raw);
        return NULL;
    }
    if (end == name || !is_name_start(*name) || (!has_default && end != close)) {
        sl_conf_error(c, pos,
                      "invalid environment variable reference '%.*s' "
                      "(expected ${NAME} or ${NAME:-default})",
                      (int)(close - dollar + 1), dollar);
        return NULL;
    }
    return add_var(c, raw, name, end, has_default ? end + 2 : NULL, close, pos, b) ? close + 1
                                                                                   : NULL;
}

char *sl_conf_expand_env(sl_conf_ctx *c, const char *raw, sl_conf_pos pos)
{
    if (!strchr(raw, '$')) {
        return sl_pool_strdup(c->pool, raw);
    }
    sbuf b = {0};
    const char *s = raw;
    while (s && *s) {
        const char *dollar = strchr(s, '$');
        if (!dollar) {
            sbuf_add(&b, s, strlen(s));
            break;
        }
        sbuf_add(&b, s, (size_t)(dollar - s));
        if (dollar[1] != '{') { /* "$$" is one '$'; a lone '$' stays */
            sbuf_add(&b, "$", 1);
            s = dollar + (dollar[1] == '$' ? 2 : 1);
            continue;
        }
        s = expand_ref(c, raw, dollar, pos, &b);
    }
    char *out = NULL;
    if (b.oom) {
        c->pool->oom = true;
    } else if (s) {
        out = sl_pool_strdup(c->pool, b.p ? b.p : "");
    }
    free(b.p);
    return out;
}

static sl_conf_pos mark_pos(const yparse *p, yaml_mark_t m)
{
    sl_conf_pos pos = {p->file, (int)m.line + 1, (int)m.column + 1};
    return pos;
}

/* What libyaml says about the common indentation mistakes, and what to look
 * at; "" when the problem is not one of them. */
static const char *indent_hint(const char *problem)
{
    static const struct {
        const char *problem, *hint;
    } hints[] = {
        {"mapping values are not allowed",
         "; check the indentation of this line: a key must line up with its siblings (also: "
         "does the line above lack a ':'? a value holding ': ' needs quotes)"},
        {"did not find expected key",
         "; check the indentation of this line: a key must line up with its siblings"},
        {"did not find expected '-' indicator",
         "; check the indentation of this line: the '-' of a list's items must line up"},
        {"block sequence entries are not allowed",
         "; check the indentation: a list under a key starts on the next line, indented"},
        {"could not find expected ':'",
         "; a key needs ': ' after it, and a value continued on the next line must be "
         "indented more than its key"},
        {"found character that cannot start any token",
         "; YAML indents with spaces only (is there a tab?)"},
    };
    for (size_t i = 0; problem && i < sizeof hints / sizeof hints[0]; i++) {
        if (!strncmp(problem, hints[i].problem, strlen(hints[i].problem))) {
            return hints[i].hint;
        }
    }
    return "";
}

static void parser_error(yparse *p)
{
    const yaml_parser_t *ps = &p->parser;
    sl_conf_pos pos = mark_pos(p, ps->problem_mark);
    if (ps->error == YAML_MEMORY_ERROR) {
        p->c->pool->oom = true;
        sl_conf_error(p->c, pos, "out of memory while parsing");
    } else if (ps->error == YAML_READER_ERROR) {
        /* The reader counts bytes, not lines: give the offset. */
        pos.line = 0;
        sl_conf_error(p->c, pos, "%s at byte %zu", ps->problem ? ps->problem : "read error",
                      ps->problem_offset);
    } else if (ps->context) {
        sl_conf_error(p->c, pos, "%s %s%s", ps->problem ? ps->problem : "syntax error", ps->context,
                      indent_hint(ps->problem));
    } else {
        sl_conf_error(p->c, pos, "%s%s", ps->problem ? ps->problem : "syntax error",
                      indent_hint(ps->problem));
    }
    p->failed = true;
}

static bool next_event(yparse *p, yaml_event_t *ev)
{
    if (p->failed) {
        return false;
    }
    if (!yaml_parser_parse(&p->parser, ev)) {
        parser_error(p);
        return false;
    }
    return true;
}

static bool is_null_text(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static sl_node *new_node(yparse *p, sl_node_kind kind, yaml_mark_t m)
{
    sl_node *n = sl_pool_alloc(p->c->pool, sizeof *n);
    if (n) {
        n->kind = kind;
        n->pos = mark_pos(p, m);
    }
    return n;
}

static void reject_anchor(yparse *p, const yaml_char_t *anchor, yaml_mark_t m)
{
    if (anchor) {
        sl_conf_error(p->c, mark_pos(p, m), "anchors and aliases are not supported (anchor '&%s')",
                      (const char *)anchor);
    }
}

static sl_node *parse_node(yparse *p, yaml_event_t *ev);

static sl_node *parse_scalar(yparse *p, yaml_event_t *ev)
{
    reject_anchor(p, ev->data.scalar.anchor, ev->start_mark);
    const char *raw = (const char *)ev->data.scalar.value;
    bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    const char *tag = (const char *)ev->data.scalar.tag;
    if (tag && !strcmp(tag, YAML_STR_TAG)) {
        plain = false;
    }
    bool null = plain && is_null_text(raw);
    sl_node *n = new_node(p, null ? SL_NODE_NULL : SL_NODE_SCALAR, ev->start_mark);
    if (!n) {
        return NULL;
    }
    n->quoted = !plain;
    if (strlen(raw) != ev->data.scalar.length) {
        sl_conf_error(p->c, n->pos, "a NUL character is not allowed in a value");
        n->scalar = sl_pool_strdup(p->c->pool, "");
    } else if (null) {
        n->scalar = sl_pool_strdup(p->c->pool, raw);
    } else {
        n->scalar = sl_conf_expand_env(p->c, raw, n->pos);
        if (!n->scalar) {
            n->scalar = sl_pool_strdup(p->c->pool, raw);
        }
    }
    return n;
}

/* Parses items until the end event; items are collected in a malloc'd
 * vector and copied into the pool at the end. */
static sl_node *parse_seq(yparse *p, yaml_event_t *start)
{
    reject_anchor(p, start->data.sequence_start.anchor, start->start_mark);
    sl_node *n = new_node(p, SL_NODE_SEQ, start->start_mark);
    sl_node **v = NULL;
    size_t cnt = 0, cap = 0;
    yaml_event_t ev;
    while (next_event(p, &ev)) {
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        sl_node *item = parse_node(p, &ev);
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            sl_node **nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                p->c->pool->oom = true;
                continue;
            }
            v = nv;
            cap = ncap;
        }
        if (item) {
            v[cnt++] = item;
        }
    }
    if (n && cnt) {
        n->items = sl_pool_alloc(p->c->pool, cnt * sizeof *n->items);
        if (n->items) {
            memcpy(n->items, v, cnt * sizeof *v);
            n->n_items = cnt;
        }
    }
    free(v);
    return n;
}

/* A map's pairs while it is read, with an index of their keys. */
typedef struct pair_list {
    sl_node_pair *v;
    size_t cnt, cap;
    sl_name_index ks;
} pair_list;

/* Reads the key event ev (consumed) into *key: a plain scalar not seen
 * before in this map. False (error recorded) for a duplicate or a map or
 * list used as a key; the caller still reads and drops the value. */
static bool read_key(yparse *p, yaml_event_t *ev, const pair_list *l, char **key)
{
    sl_conf_pos key_pos = mark_pos(p, ev->start_mark);
    if (ev->type != YAML_SCALAR_EVENT) {
        sl_conf_error(p->c, key_pos, "a mapping key must be a plain value, not a %s",
                      ev->type == YAML_MAPPING_START_EVENT ? "map" : "list");
        parse_node(p, ev); /* consumed and dropped */
        return false;
    }
    reject_anchor(p, ev->data.scalar.anchor, ev->start_mark);
    *key = sl_pool_strdup(p->c->pool, (const char *)ev->data.scalar.value);
    yaml_event_delete(ev);
    long at = *key ? sl_name_index_find(&l->ks, l->v, sizeof *l->v, *key) : -1;
    if (at >= 0) {
        sl_conf_error(p->c, key_pos, "duplicate key '%s' (first at line %d, column %d)", *key,
                      l->v[at].key_pos.line, l->v[at].key_pos.col);
        return false;
    }
    return *key != NULL;
}

/* Appends one pair to l (pool->oom set when memory runs out). */
static void push_pair(yparse *p, pair_list *l, char *key, sl_conf_pos key_pos, sl_node *value)
{
    if (l->cnt == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        sl_node_pair *nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) {
            p->c->pool->oom = true;
            return;
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->cnt] = (sl_node_pair){.key = key, .key_pos = key_pos, .value = value};
    l->cnt++;
    if (!sl_name_index_add(&l->ks, l->v, sizeof *l->v, l->cnt - 1))
        p->c->pool->oom = true;
}

static sl_node *parse_map(yparse *p, yaml_event_t *start)
{
    reject_anchor(p, start->data.mapping_start.anchor, start->start_mark);
    sl_node *n = new_node(p, SL_NODE_MAP, start->start_mark);
    pair_list l = {.ks = {NULL, 0}};
    yaml_event_t ev;
    while (next_event(p, &ev)) {
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        sl_conf_pos key_pos = mark_pos(p, ev.start_mark);
        char *key = NULL;
        bool keep = read_key(p, &ev, &l, &key);
        yaml_event_t vev;
        if (!next_event(p, &vev)) {
            break;
        }
        sl_node *value = parse_node(p, &vev);
        if (keep && value) {
            push_pair(p, &l, key, key_pos, value);
        }
    }
    sl_name_index_free(&l.ks);
    if (n && l.cnt) {
        n->pairs = sl_pool_alloc(p->c->pool, l.cnt * sizeof *n->pairs);
        if (n->pairs) {
            memcpy(n->pairs, l.v, l.cnt * sizeof *l.v);
            n->n_pairs = l.cnt;
        }
    }
    free(l.v);
    return n;
}

/* Builds the node that ev starts, consuming ev and the events of the node's
 * content. Returns NULL on error (recorded) or allocation failure. */
static sl_node *parse_node(yparse *p, yaml_event_t *ev)
{
    sl_node *n = NULL;
    switch (ev->type) {
        case YAML_SCALAR_EVENT:
            n = parse_scalar(p, ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (p->depth >= SL_CONF_MAX_DEPTH) {
                sl_conf_error(p->c, mark_pos(p, ev->start_mark),
                              "maps and lists nested deeper than %d levels", SL_CONF_MAX_DEPTH);
                p->failed = true;
                break;
            }
            p->depth++;
            n = ev->type == YAML_SEQUENCE_START_EVENT ? parse_seq(p, ev) : parse_map(p, ev);
            p->depth--;
            break;
        case YAML_ALIAS_EVENT:
            sl_conf_error(p->c, mark_pos(p, ev->start_mark),
                          "anchors and aliases are not supported (alias '*%s')",
                          (const char *)ev->data.alias.anchor);
            break;
        default:
            sl_conf_error(p->c, mark_pos(p, ev->start_mark), "unexpected YAML event");
            p->failed = true;
            break;
    }
    yaml_event_delete(ev);
    return n;
}

/* Reads the stream: at most one document, whose root is returned. */
static sl_node *parse_stream(yparse *p)
{
    sl_node *root = NULL;
    yaml_event_t ev;
    if (!next_event(p, &ev)) { /* STREAM-START */
        return NULL;
    }
    yaml_event_delete(&ev);
    if (!next_event(p, &ev)) {
        return NULL;
    }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        return NULL;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if (!next_event(p, &ev)) {
        return NULL;
    }
    root = parse_node(p, &ev);
    if (!next_event(p, &ev)) { /* DOCUMENT-END */
        return NULL;
    }
    yaml_event_delete(&ev);
    if (!next_event(p, &ev)) {
        return NULL;
    }
    if (ev.type == YAML_DOCUMENT_START_EVENT) {
        sl_conf_error(p->c, mark_pos(p, ev.start_mark),
                      "a config file must hold one YAML document, found a second one");
        root = NULL;
    }
    yaml_event_delete(&ev);
    return root;
}

/* Opens file for reading, refusing what is not a regular file of at most
 * SL_CONF_MAX_FILE_BYTES (a FIFO would block `sluice check` for ever; a
 * device or /proc file is no config). Non-blocking open, so a FIFO is
 * refused rather than waited on. Returns NULL after recording an error. */
static FILE *open_config_file(sl_conf_ctx *c, const char *file)
{
    sl_conf_pos fpos = {file, 0, 0};
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        sl_conf_error(c, fpos, "cannot open: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    const char *why = !S_ISREG(st.st_mode)                  ? "not a regular file"
                      : st.st_size > SL_CONF_MAX_FILE_BYTES ? "larger than 4 MiB"
                                                            : NULL;
    FILE *f = why ? NULL : fdopen(fd, "rb");
    if (!f) {
        sl_conf_error(c, fpos, "cannot read: %s", why ? why : strerror(errno));
        close(fd);
    }
    return f;
}

sl_node *sl_conf_parse_file(sl_conf_ctx *c, const char *file)
{
    sl_conf_pos fpos = {file, 0, 0};
    FILE *f = open_config_file(c, file);
    if (!f) {
        return NULL;
    }
    yparse p = {.c = c, .file = file};
    if (!yaml_parser_initialize(&p.parser)) {
        fclose(f);
        c->pool->oom = true;
        sl_conf_error(c, fpos, "out of memory");
        return NULL;
    }
    yaml_parser_set_input_file(&p.parser, f);
    sl_node *root = parse_stream(&p);
    yaml_parser_delete(&p.parser);
    if (ferror(f)) {
        sl_conf_error(c, fpos, "read error: %s", strerror(errno));
        root = NULL;
    }
    fclose(f);
    return p.failed ? NULL : root;
}
