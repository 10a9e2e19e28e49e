/* Configuration loader, entry points: reads the main file and its includes
 * (config_yaml.c), validates them (config_schema.c), and returns the typed
 * config or every error in file order. Also durations, sizes and `sluice check`. */
#include "config_priv.h"

#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- pool ---- */

struct sl_pool_blk {
    sl_pool_blk *next;
    alignas(max_align_t) unsigned char data[];
};

void *sl_pool_alloc(sl_pool *pool, size_t size)
{
    if (size > SIZE_MAX - sizeof(sl_pool_blk)) {
        pool->oom = true;
        return NULL;
    }
    sl_pool_blk *b = calloc(1, sizeof *b + size);
    if (!b) {
        pool->oom = true;
        return NULL;
    }
    b->next = pool->head;
    pool->head = b;
    return b->data;
}

char *sl_pool_strndup(sl_pool *pool, const char *s, size_t n)
{
    if (!s) {
        return NULL;
    }
    char *d = sl_pool_alloc(pool, n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

char *sl_pool_strdup(sl_pool *pool, const char *s)
{
    return s ? sl_pool_strndup(pool, s, strlen(s)) : NULL;
}

char *sl_pool_printf(sl_pool *pool, const char *fmt, ...)
{
    va_list ap;
    char *tmp = NULL;
    va_start(ap, fmt);
    int n = vasprintf(&tmp, fmt, ap);
    va_end(ap);
    if (n < 0) {
        pool->oom = true;
        return NULL;
    }
    char *d = sl_pool_strndup(pool, tmp, (size_t)n);
    free(tmp);
    return d;
}

void sl_pool_free(sl_pool *pool)
{
    sl_pool_blk *b = pool->head;
    while (b) {
        sl_pool_blk *next = b->next;
        free(b);
        b = next;
    }
    pool->head = NULL;
    pool->oom = false;
}

/* ---- errors ---- */

static size_t file_index(const sl_conf_ctx *c, const char *file)
{
    for (size_t i = 0; i < c->n_files; i++) {
        if (c->files[i] == file) {
            return i;
        }
    }
    return c->n_files;
}

void sl_conf_error(sl_conf_ctx *c, sl_conf_pos pos, const char *fmt, ...)
{
    char *msg = NULL;
    char *line = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&msg, fmt, ap);
    va_end(ap);
    if (n < 0) {
        c->errs_oom = true;
        return;
    }
    const char *file = pos.file ? pos.file : "?";
    if (pos.line > 0) {
        n = asprintf(&line, "%s:%d:%d: %s", file, pos.line, pos.col, msg);
    } else {
        n = asprintf(&line, "%s: %s", file, msg);
    }
    free(msg);
    if (n < 0) {
        c->errs_oom = true;
        return;
    }
    if (c->n_errs == c->cap_errs) {
        size_t cap = c->cap_errs ? c->cap_errs * 2 : 16;
        sl_conf_err *v = realloc(c->errs, cap * sizeof *v);
        if (!v) {
            free(line);
            c->errs_oom = true;
            return;
        }
        c->errs = v;
        c->cap_errs = cap;
    }
    sl_conf_err *e = &c->errs[c->n_errs];
    e->file_idx = file_index(c, pos.file);
    e->line = pos.line;
    e->col = pos.col;
    e->seq = c->n_errs;
    e->text = line;
    c->n_errs++;
}

static int cmp_err(const void *a, const void *b)
{
    const sl_conf_err *x = a, *y = b;
    if (x->file_idx != y->file_idx) {
        return x->file_idx < y->file_idx ? -1 : 1;
    }
    if (x->line != y->line) {
        return x->line < y->line ? -1 : 1;
    }
    if (x->col != y->col) {
        return x->col < y->col ? -1 : 1;
    }
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* Sorts c's errors into file order and moves them to errs (or drops them
 * when errs is NULL). */
static void hand_over_errors(sl_conf_ctx *c, sl_config_errors *errs)
{
    if (c->n_errs > 1) {
        qsort(c->errs, c->n_errs, sizeof *c->errs, cmp_err);
    }
    size_t extra = c->errs_oom ? 1 : 0;
    char **lines = NULL;
    if (errs) {
        lines = realloc(errs->lines, (errs->n + c->n_errs + extra + 1) * sizeof *lines);
    }
    for (size_t i = 0; i < c->n_errs; i++) {
        if (lines) {
            lines[errs->n++] = c->errs[i].text;
        } else {
            free(c->errs[i].text);
        }
    }
    if (lines) {
        if (extra) {
            /* Static text cannot be freed by sl_config_errors_free: copy. */
            char *oom = strdup("out of memory while recording errors");
            if (oom) {
                lines[errs->n++] = oom;
            }
        }
        lines[errs->n] = NULL;
        errs->lines = lines;
    }
    free(c->errs);
    c->errs = NULL;
    c->n_errs = c->cap_errs = 0;
}

void sl_config_errors_free(sl_config_errors *errs)
{
    if (!errs) {
        return;
    }
    for (size_t i = 0; i < errs->n; i++) {
        free(errs->lines[i]);
    }
    free(errs->lines);
    errs->lines = NULL;
    errs->n = 0;
}

/* ---- files and includes ---- */

/* An include pattern matching more files than this is refused: a glob of
 * every directory four levels down would read the whole filesystem. */
#define SL_CONF_MAX_GLOB_FILES 256

typedef struct file_set {
    sl_node **roots;   /* malloc'd, parallel to c->files */
    bool parse_failed; /* some file could not be parsed: skip the schema */
    char **real;       /* realpath of each file (malloc'd), to read each once */
    size_t cap;
} file_set;

/* Registers file (copied into the pool) and parses it, unless a file with
 * the same real path was read already. Returns 0, or -1 on allocation failure. */
static int add_file(sl_conf_ctx *c, file_set *fs, const char *file)
{
    char *real = realpath(file, NULL);
    for (size_t i = 0; real && i < c->n_files; i++) {
        if (fs->real[i] && !strcmp(fs->real[i], real)) {
            free(real);
            return 0;
        }
    }
    if (c->n_files == fs->cap) {
        size_t cap = fs->cap ? fs->cap * 2 : 8;
        const char **files = realloc(c->files, cap * sizeof *files);
        if (files) {
            c->files = files;
        }
        sl_node **roots = realloc(fs->roots, cap * sizeof *roots);
        if (roots) {
            fs->roots = roots;
        }
        char **reals = realloc(fs->real, cap * sizeof *reals);
        if (reals) {
            fs->real = reals;
        }
        if (!files || !roots || !reals) {
            free(real);
            c->pool->oom = true;
            return -1;
        }
        fs->cap = cap;
    }
    const char *name = sl_pool_strdup(c->pool, file);
    if (!name) {
        free(real);
        return -1;
    }
    size_t i = c->n_files++;
    c->files[i] = name;
    fs->real[i] = real;
    size_t n_errs = c->n_errs;
    fs->roots[i] = sl_conf_parse_file(c, name);
    if (!fs->roots[i] && c->n_errs > n_errs) {
        fs->parse_failed = true;
    }
    return 0;
}

/* Resolves one include pattern against dir ("" for the current directory). */
static void include_pattern(sl_conf_ctx *c, file_set *fs, const char *dir, const sl_node *item,
                            const char *path)
{
    const char *pat = item->scalar;
    char *full = NULL;
    if (pat[0] == '/' || !*dir) {
        full = strdup(pat);
    } else if (asprintf(&full, "%s/%s", dir, pat) < 0) {
        full = NULL;
    }
    if (!full) {
        c->pool->oom = true;
        return;
    }
    if (strpbrk(pat, "*?[")) {
        glob_t g;
        int rc = glob(full, 0, NULL, &g);
        if (rc == 0 && g.gl_pathc > SL_CONF_MAX_GLOB_FILES) {
            sl_conf_error(c, item->pos, "%s: '%s' matches %zu files, more than %d", path, full,
                          (size_t)g.gl_pathc, SL_CONF_MAX_GLOB_FILES);
        } else if (rc == 0) {
            for (size_t i = 0; i < g.gl_pathc; i++) {
                if (add_file(c, fs, g.gl_pathv[i]) < 0) {
                    break;
                }
            }
        } else if (rc == GLOB_NOMATCH && c->n_warn < sizeof c->warn / sizeof c->warn[0]) {
            c->warn[c->n_warn] =
                sl_pool_printf(c->pool,
                               "%s:%d:%d: warning: %s: '%s' matches no file (patterns are relative "
                               "to the directory of the main config file)",
                               item->pos.file, item->pos.line, item->pos.col, path, full);
            c->n_warn += c->warn[c->n_warn] != NULL;
        } else if (rc != GLOB_NOMATCH) {
            sl_conf_error(c, item->pos, "%s: cannot expand '%s'%s", path, full,
                          rc == GLOB_NOSPACE ? ": out of memory" : ": read error");
        }
        globfree(&g);
    } else if (access(full, R_OK) != 0) {
        sl_conf_error(c, item->pos, "%s: cannot read '%s': %s", path, full, strerror(errno));
    } else {
        add_file(c, fs, full);
    }
    free(full);
}

/* Reads the files that sluice.include in the main file's root names. */
static void read_includes(sl_conf_ctx *c, file_set *fs, const char *main_path)
{
    const sl_node *sluice = sl_node_get(fs->roots[0], "sluice");
    const sl_node *inc = sl_node_get(sluice, "include");
    if (!inc || inc->kind == SL_NODE_NULL) {
        return;
    }
    char *dir = strdup(main_path);
    if (!dir) {
        c->pool->oom = true;
        return;
    }
    char *slash = strrchr(dir, '/');
    if (slash == dir) {
        dir[1] = '\0';
    } else if (slash) {
        *slash = '\0';
    } else {
        dir[0] = '\0';
    }
    if (!strcmp(dir, "/")) {
        dir[0] = '\0'; /* "/" + "/x" would give "//x"; patterns from / stay absolute */
    }
    if (inc->kind == SL_NODE_SCALAR) {
        include_pattern(c, fs, dir, inc, "sluice.include");
    } else if (inc->kind == SL_NODE_SEQ) {
        for (size_t i = 0; i < inc->n_items; i++) {
            char path[64];
            snprintf(path, sizeof path, "sluice.include[%zu]", i);
            if (inc->items[i]->kind != SL_NODE_SCALAR) {
                sl_conf_error(c, inc->items[i]->pos, "%s: expected a string, got %s", path,
                              inc->items[i]->kind == SL_NODE_MAP ? "a map" : "a list");
                continue;
            }
            include_pattern(c, fs, dir, inc->items[i], path);
        }
    } else {
        sl_conf_error(c, inc->pos,
                      "sluice.include: expected a string or a list of strings, got a map");
    }
    free(dir);
}

sl_config *sl_config_load(const char *path, sl_config_errors *errs)
{
    return sl_config_load_env(path, NULL, NULL, errs);
}

sl_config *sl_config_load_env(const char *path, sl_config_unset_fn unset_fn, void *arg,
                              sl_config_errors *errs)
{
    sl_conf_ctx c = {.unset_fn = unset_fn, .unset_arg = arg};
    file_set fs = {0};
    sl_config *cfg = calloc(1, sizeof *cfg);
    sl_pool *pool = calloc(1, sizeof *pool);
    if (!cfg || !pool) {
        free(cfg);
        free(pool);
        if (errs) {
            char **lines = realloc(errs->lines, (errs->n + 2) * sizeof *lines);
            char *line = NULL;
            if (lines && asprintf(&line, "%s: out of memory", path) >= 0) {
                lines[errs->n++] = line;
                lines[errs->n] = NULL;
            }
            if (lines) {
                errs->lines = lines;
            }
        }
        return NULL;
    }
    cfg->priv = pool;
    c.pool = pool;
    cfg->path = sl_pool_strdup(pool, path);
    if (add_file(&c, &fs, path) == 0 && c.n_files == 1) {
        read_includes(&c, &fs, path);
        if (!fs.parse_failed) {
            sl_conf_validate(&c, cfg, fs.roots, c.n_files);
        }
    }
    if (pool->oom) {
        sl_conf_pos pos = {c.n_files ? c.files[0] : path, 0, 0};
        sl_conf_error(&c, pos, "out of memory");
    }
    cfg->warnings = c.n_warn ? sl_pool_alloc(pool, c.n_warn * sizeof *cfg->warnings) : NULL;
    for (size_t i = 0; cfg->warnings && i < c.n_warn; i++) {
        cfg->warnings[cfg->n_warnings++] = c.warn[i];
    }
    bool failed = c.n_errs > 0 || c.errs_oom;
    hand_over_errors(&c, errs);
    for (size_t i = 0; i < c.n_files; i++) {
        free(fs.real[i]);
    }
    free(fs.real);
    free(fs.roots);
    /* File names stay in the pool (positions point at them); the array goes. */
    free(c.files);
    if (failed) {
        sl_config_free(cfg);
        return NULL;
    }
    return cfg;
}

void sl_config_free(sl_config *cfg)
{
    if (!cfg) {
        return;
    }
    sl_pool *pool = cfg->priv;
    if (pool) {
        sl_pool_free(pool);
        free(pool);
    }
    sl_name_index_free(&cfg->conn_index);
    free(cfg);
}

const sl_node *sl_node_get(const sl_node *map, const char *key)
{
    if (!map || map->kind != SL_NODE_MAP) {
        return NULL;
    }
    for (size_t i = 0; i < map->n_pairs; i++) {
        if (!strcmp(map->pairs[i].key, key)) {
            return map->pairs[i].value;
        }
    }
    return NULL;
}

const sl_connector_conf *sl_config_connector(const sl_config *cfg, const char *name)
{
    if (cfg && name && cfg->conn_index.mask) {
        long at =
            sl_name_index_find(&cfg->conn_index, cfg->connectors, sizeof *cfg->connectors, name);
        return at >= 0 ? &cfg->connectors[at] : NULL;
    }
    for (size_t i = 0; cfg && name && i < cfg->n_connectors; i++) {
        if (cfg->connectors[i].name && !strcmp(cfg->connectors[i].name, name)) {
            return &cfg->connectors[i];
        }
    }
    return NULL;
}

/* ---- durations and sizes ---- */

/* Reads the decimal digits at the start of s into *out; returns the first
 * byte after them, or NULL when there are none or the value overflows. */
static const char *parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) {
            return NULL;
        }
        v = v * 10 + d;
        p++;
    }
    if (p == s) {
        return NULL;
    }
    *out = v;
    return p;
}

static int scale(uint64_t v, uint64_t mult, uint64_t *out)
{
    if (mult && v > UINT64_MAX / mult) {
        return -1;
    }
    *out = v * mult;
    return 0;
}

int sl_parse_duration_ms(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000ULL}, {"d", 86400000ULL}};
    uint64_t v;
    const char *rest = s ? parse_u64(s, &v) : NULL;
    if (!rest) {
        return -1;
    }
    if (!*rest) {
        if (v != 0) {
            return -1; /* a bare number has no unit: only 0 is unambiguous */
        }
        *out = 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(rest, units[i].unit)) {
            return scale(v, units[i].ms, out);
        }
    }
    return -1;
}

int sl_parse_size(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t bytes;
    } units[] = {{"", 1},
                 {"B", 1},
                 {"KiB", 1ULL << 10},
                 {"MiB", 1ULL << 20},
                 {"GiB", 1ULL << 30},
                 {"TiB", 1ULL << 40},
                 {"KB", 1000ULL},
                 {"MB", 1000000ULL},
                 {"GB", 1000000000ULL},
                 {"TB", 1000000000000ULL}};
    uint64_t v;
    const char *rest = s ? parse_u64(s, &v) : NULL;
    if (!rest) {
        return -1;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (!strcmp(rest, units[i].unit)) {
            return scale(v, units[i].bytes, out);
        }
    }
    return -1;
}

/* ---- sluice check ---- */

int sl_config_check_main(const char *path, FILE *out)
{
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load(path, &errs);
    int rc = 0;
    if (cfg) {
        fprintf(out, "ok\n");
    } else {
        for (size_t i = 0; i < errs.n; i++) {
            fprintf(out, "%s\n", errs.lines[i]);
        }
        rc = 2;
    }
    sl_config_free(cfg);
    sl_config_errors_free(&errs);
    return rc;
}
