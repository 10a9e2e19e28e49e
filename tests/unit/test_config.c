/* Unit tests for the configuration loader (core/config*.c): a table of bad
 * configs with the exact error lines a user sees, good configs with their
 * values and defaults, includes, ${VAR} expansion, and the shipped conf/sluice.yaml. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* Each type's parsed config (its priv), as its own header declares it. */
#include "amqp_internal.h"
#include "file.h"
#include "filter.h"
#include "http_client.h"
#include "http_server.h"
#include "kafka_internal.h"
#include "set.h"
#define HS_CONF(cc) ((const sl_http_server_conf *)(cc)->priv)
#define HC_CONF(cc) ((const sl_http_client_conf *)(cc)->priv)
#define AMQP_CONF(cc) ((const sl_amqp_conf *)(cc)->priv)
#define KAFKA_CONF(cc) ((const sl_kafka_conf *)(cc)->priv)
#define FILE_CONF(cc) ((const sl_file_conf *)(cc)->priv)
#define HS_IN(in) ((const sl_http_server_input *)(in).priv)
#define AMQP_IN(in) ((const sl_amqp_from *)(in).priv)
#define KAFKA_IN(in) ((const sl_kafka_from *)(in).priv)
#define HC_OUT(out) ((const sl_http_client_output *)(out).priv)
#define AMQP_OUT(out) ((const sl_amqp_output *)(out).priv)
#define KAFKA_OUT(out) ((const sl_kafka_output *)(out).priv)
#define FILE_OUT(out) ((const sl_file_target *)(out).priv)
#define FILTER_CONF(st) ((const sl_filter_conf *)(st).priv)
#define SET_CONF(st) ((const sl_set_conf *)(st).priv)

/* ---- temp files ---- */

typedef struct file_spec {
    const char *name; /* relative to the temp dir; may hold one subdirectory */
    const char *text;
} file_spec;

static char *make_dir(void)
{
    char tmpl[] = "/tmp/sluice-test-config-XXXXXX";
    char *dir = mkdtemp(tmpl);
    assert_non_null(dir);
    char *copy = strdup(dir);
    assert_non_null(copy);
    return copy;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (mkdir(path, 0700) != 0) {
        assert_int_equal(errno, EEXIST);
    }
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_dir(char *dir)
{
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Writes main.yaml and the extra files into a fresh directory; returns the
 * directory (free with remove_dir). */
static char *write_config(const char *main_text, const file_spec *extra, size_t n_extra)
{
    char *dir = make_dir();
    write_file(dir, "main.yaml", main_text);
    for (size_t i = 0; i < n_extra && extra[i].name; i++) {
        write_file(dir, extra[i].name, extra[i].text);
    }
    return dir;
}

static char *main_path(const char *dir)
{
    char *p = NULL;
    assert_true(asprintf(&p, "%s/main.yaml", dir) > 0);
    return p;
}

/* Replaces {F} with the main file's path and {D} with the directory. */
static char *subst(const char *tmpl, const char *dir)
{
    size_t cap = strlen(tmpl) * 2 + 1024;
    char *out = malloc(cap);
    assert_non_null(out);
    size_t n = 0;
    for (const char *s = tmpl; *s;) {
        if (!strncmp(s, "{F}", 3) || !strncmp(s, "{D}", 3)) {
            n += (size_t)snprintf(out + n, cap - n, "%s%s", dir, s[1] == 'F' ? "/main.yaml" : "");
            s += 3;
        } else {
            out[n++] = *s++;
        }
        assert_true(n < cap);
    }
    out[n] = '\0';
    return out;
}

/* Loads text as main.yaml (with extra files); the config must be valid. */
static sl_config *load_ok(const char *text, const file_spec *extra, size_t n_extra, char **dir_out)
{
    char *dir = write_config(text, extra, n_extra);
    char *path = main_path(dir);
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load(path, &errs);
    for (size_t i = 0; i < errs.n; i++) {
        print_error("unexpected: %s\n", errs.lines[i]);
    }
    assert_int_equal(errs.n, 0);
    assert_non_null(cfg);
    sl_config_errors_free(&errs);
    free(path);
    *dir_out = dir;
    return cfg;
}

/* ---- the table of bad configs ---- */

#define CONNS                                                                                      \
    "connectors:\n"                                                                                \
    "  public: { type: http_server, listen: \"127.0.0.1:8080\" }\n"                                \
    "  crm: { type: http_client, base_url: \"https://crm.example\" }\n"                            \
    "  rabbit: { type: amqp, url: \"amqp://localhost\" }\n"                                        \
    "  kafka: { type: kafka, brokers: \"localhost:9092\" }\n"                                      \
    "routes:\n"
/* Routes written after CONNS start on line 7. */

typedef struct bad_case {
    const char *name;
    const char *main;
    file_spec extra[3];
    const char *expected[12]; /* NULL-terminated; {F} = main file, {D} = its dir */
} bad_case;

static const bad_case BAD[] = {
    {"yaml syntax: unclosed flow sequence",
     "sluice:\n  data_dir: [a\n",
     {{0}},
     {"{F}:3:1: did not find expected ',' or ']' while parsing a flow sequence"}},
    {"yaml syntax: mapping value in a plain scalar",
     "a: b: c\n",
     {{0}},
     {"{F}:1:5: mapping values are not allowed in this context; check the indentation of this "
      "line: a key must line up with its siblings (also: does the line above lack a ':'? a value "
      "holding ': ' needs quotes)"}},
    {"yaml syntax: tab indentation",
     "sluice:\n\tdata_dir: x\n",
     {{0}},
     {"{F}:2:1: found character that cannot start any token while scanning for the next token; "
      "YAML indents with spaces only (is there a tab?)"}},
    {"yaml syntax: a key indented less than its siblings",
     "sluice:\n  data_dir: x\n admin: {}\n",
     {{0}},
     {"{F}:3:2: did not find expected key while parsing a block mapping; check the indentation "
      "of this line: a key must line up with its siblings"}},
    {"yaml syntax: a key indented more than its siblings",
     "sluice:\n  data_dir: x\n    log: {}\n",
     {{0}},
     {"{F}:3:8: mapping values are not allowed in this context; check the indentation of this "
      "line: a key must line up with its siblings (also: does the line above lack a ':'? a value "
      "holding ': ' needs quotes)"}},
    {"yaml syntax: list items out of line",
     "sluice:\n  include:\n    - a\n   - b\n",
     {{0}},
     {"{F}:4:4: did not find expected key while parsing a block mapping; check the indentation "
      "of this line: a key must line up with its siblings"}},
    {"two routes on the same method and path of one http_server",
     "connectors:\n  web: { type: http_server, listen: \"127.0.0.1:1\" }\n"
     "  out: { type: stdout }\n"
     "routes:\n"
     "  a: { from: { connector: web, path: /o, methods: [POST, PUT] }, to: [{connector: out}] }\n"
     "  b: { from: { connector: web, path: /o, methods: [GET, PUT] }, to: [{connector: out}] }\n"
     "  c: { from: { connector: web, path: /p }, to: [{connector: out}] }\n",
     {{0}},
     {"{F}:6:38: routes.b.from.path: PUT /o on connector 'web' is already taken by route 'a' "
      "({F}:5:14)"}},
    {"duplicate key",
     "sluice:\n  data_dir: x\n  data_dir: y\n",
     {{0}},
     {"{F}:3:3: duplicate key 'data_dir' (first at line 2, column 3)"}},
    {"two documents",
     "sluice: {}\n---\nroutes: {}\n",
     {{0}},
     {"{F}:2:1: a config file must hold one YAML document, found a second one"}},
    {"anchors and aliases",
     "sluice:\n  data_dir: &d ./data\n  log_level: *d\n",
     {{0}},
     {"{F}:2:13: anchors and aliases are not supported (anchor '&d')",
      "{F}:3:14: anchors and aliases are not supported (alias '*d')"}},
    {"top level is a list",
     "- sluice\n",
     {{0}},
     {"{F}:1:1: expected a map at the top level, got a list"}},
    {"unknown key at the top level",
     "sluice: {}\nroute: {}\n",
     {{0}},
     {"{F}:2:1: unknown key 'route' at the top level (expected one of: sluice, connectors, "
      "routes)"}},
    {"unknown key in sluice",
     "sluice:\n  datadir: ./data\n",
     {{0}},
     {"{F}:2:3: unknown key 'datadir' in sluice (expected one of: data_dir, data_dir_mode, "
      "admin, log, log_format, log_level, shutdown_timeout, dedupe_window, include)"}},
    {"unknown key in sluice.log",
     "sluice:\n  log:\n    fsynk: always\n",
     {{0}},
     {"{F}:3:5: unknown key 'fsynk' in sluice.log (expected one of: fsync, fsync_interval, "
      "segment_bytes, max_disk_bytes, retention, retention_bytes, on_corruption)"}},
    {"bad data_dir_mode and on_corruption",
     "sluice:\n  data_dir_mode: world\n  log: { on_corruption: ignore }\n",
     {{0}},
     {"{F}:2:18: sluice.data_dir_mode: expected one of private, group, got 'world'",
      "{F}:3:25: sluice.log.on_corruption: expected one of skip, stop, got 'ignore'"}},
    {"unknown key in sluice.admin",
     "sluice:\n  admin: { listen: \"127.0.0.1:9400\", tokn: x }\n",
     {{0}},
     {"{F}:2:38: unknown key 'tokn' in sluice.admin (expected one of: listen, token, tls)"}},
    {"unknown key in a connector and in its breaker",
     "connectors:\n"
     "  crm:\n"
     "    type: http_client\n"
     "    base_url: https://crm.example\n"
     "    timout: 2s\n"
     "    breaker: { failure: 50% }\n",
     {{0}},
     {"{F}:5:5: unknown key 'timout' in connectors.crm (expected one of: type, base_url, "
      "timeout, max_in_flight, headers, breaker, forward_headers, auth, tls)",
      "{F}:6:16: unknown key 'failure' in connectors.crm.breaker (expected one of: "
      "failure_rate, min_calls, window, consecutive_failures, open_for, max_open_for, "
      "half_open_calls)"}},
    {"unknown keys in a route, its from, its to and its retry",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders, queue: q }\n"
           "    to:\n"
           "      - { connector: rabbit, exchange: erp, method: POST }\n"
           "    on_error: { retry: { attempts: 3 } }\n"
           "    partition: 4\n",
     {{0}},
     {"{F}:8:47: unknown key 'queue' in routes.orders.from (expected one of: connector, path, "
      "methods, content_type, reply, sync_timeout, reply_from, rate_limit, auth)",
      "{F}:10:45: unknown key 'method' in routes.orders.to[0] (expected one of: connector, name, "
      "when, exchange, routing_key, persistent, mandatory)",
      "{F}:11:26: unknown key 'attempts' in routes.orders.on_error.retry (expected one of: "
      "max_attempts, initial_backoff, max_backoff, multiplier)",
      "{F}:12:5: unknown key 'partition' in routes.orders (expected one of: from, partitions, "
      "key, steps, to, on_error, description, log)"}},
    {"wrong type: integer",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders }\n"
           "    partitions: four\n"
           "    to: [ { topic: t } ]\n",
     {{0}},
     {"{F}:9:17: routes.orders.partitions: expected an integer, got 'four'"}},
    {"integer out of range",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders }\n"
           "    partitions: 2000\n"
           "    to: [ { topic: t } ]\n",
     {{0}},
     {"{F}:9:17: routes.orders.partitions: expected an integer from 1 to 1024, got '2000'"}},
    {"wrong type: boolean",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders }\n"
           "    to: [ { connector: rabbit, exchange: erp, persistent: maybe } ]\n",
     {{0}},
     {"{F}:9:59: routes.orders.to[0].persistent: expected true or false, got 'maybe'"}},
    {"wrong type: duration",
     "connectors:\n  crm: { type: http_client, base_url: \"https://crm\", timeout: 2 seconds }\n",
     {{0}},
     {"{F}:2:63: connectors.crm.timeout: expected a duration (e.g. 500ms, 2s, 1m), got '2 "
      "seconds'"}},
    {"wrong type: size",
     "connectors:\n  public: { type: http_server, listen: \":8080\", max_body: big }\n",
     {{0}},
     {"{F}:2:59: connectors.public.max_body: expected a size (e.g. 512KiB, 1MiB), got 'big'"}},
    {"wrong type: percentage",
     "connectors:\n"
     "  a: { type: amqp, url: \"amqp://h\", breaker: { failure_rate: lots } }\n"
     "  b: { type: amqp, url: \"amqp://h\", breaker: { failure_rate: 150% } }\n",
     {{0}},
     {"{F}:2:62: connectors.a.breaker.failure_rate: expected a rate from 0% to 100% (e.g. 50% or "
      "0.5), got 'lots'",
      "{F}:3:62: connectors.b.breaker.failure_rate: expected a rate from 0% to 100% (e.g. 50% or "
      "0.5), got '150%'"}},
    {"wrong value: enums",
     "sluice:\n  log: { fsync: sometimes }\n  log_format: xml\n",
     {{0}},
     {"{F}:2:17: sluice.log.fsync: expected one of always, interval, never, got 'sometimes'",
      "{F}:3:15: sluice.log_format: expected one of text, json, got 'xml'"}},
    {"list versus map",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders, methods: POST }\n"
           "    to: { topic: t }\n",
     {{0}},
     {"{F}:8:56: routes.orders.from.methods: expected a list, got 'POST'",
      "{F}:9:9: routes.orders.to: expected a list, got a map"}},
    {"map versus list and scalar",
     "sluice: ./data\nconnectors: [a, b]\n",
     {{0}},
     {"{F}:1:9: sluice: expected a map, got './data'",
      "{F}:2:13: connectors: expected a map, got a list"}},
    {"missing required keys",
     CONNS "  orders:\n"
           "    from: { path: /orders }\n"
           "  audit:\n"
           "    from: { connector: rabbit }\n"
           "    to: [ { connector: rabbit } ]\n",
     {{0}},
     {"{F}:8:5: routes.orders: missing required key 'to'",
      "{F}:8:11: routes.orders.from: missing required key 'connector' or 'topic'",
      "{F}:10:11: routes.audit.from: missing required key 'queue'",
      "{F}:11:11: routes.audit.to[0]: missing required key 'exchange'"}},
    {"missing required connector keys",
     "connectors:\n  public: { type: http_server }\n  k: { max_body: 1MiB }\n",
     {{0}},
     {"{F}:2:11: connectors.public: missing required key 'listen'",
      "{F}:3:6: connectors.k: missing required key 'type'"}},
    {"unknown connector reference",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders }\n"
           "    to:\n"
           "      - { connector: crm }\n"
           "      - { connector: rabit }\n",
     {{0}},
     {"{F}:11:22: routes.orders.to[1].connector: no connector named 'rabit' (defined: crm, kafka, "
      "public, rabbit)"}},
    {"connector of the wrong role",
     CONNS "  orders:\n"
           "    from: { connector: crm }\n"
           "    to: [ { connector: public } ]\n",
     {{0}},
     {"{F}:8:24: routes.orders.from.connector: connector 'crm' has type http_client, which "
      "cannot be an input",
      "{F}:9:24: routes.orders.to[0].connector: connector 'public' has type http_server, which "
      "cannot be an output"}},
    {"unknown connector type",
     "connectors:\n  x: { type: ftp, path: /srv }\n",
     {{0}},
     {"{F}:2:14: connectors.x.type: unknown connector type 'ftp' (expected one of: amqp, file, "
      "http_client, http_server, kafka, stdout)"}},
    {"duplicate route from an include",
     "sluice:\n"
     "  include: [\"routes/*.yaml\"]\n" CONNS "  orders:\n"
     "    from: { connector: public, path: /orders }\n"
     "    to: [ { topic: t } ]\n",
     {{"routes/more.yaml",
       "routes:\n  orders:\n    from: { topic: t }\n    to: [ { topic: u } ]\n"}},
     {"{D}/routes/more.yaml:2:3: routes.orders: already defined at {F}:9:3"}},
    {"duplicate connector across two includes",
     "sluice:\n  include: routes/*.yaml\n",
     {{"routes/a.yaml", "connectors:\n  out: { type: stdout }\n"},
      {"routes/b.yaml", "connectors:\n  x: { type: stdout }\n  out: { type: stdout }\n"}},
     {"{D}/routes/b.yaml:3:3: connectors.out: already defined at {D}/routes/a.yaml:2:3"}},
    {"sluice in an included file, errors in include positions",
     "sluice:\n  include: [\"inc/*.yaml\"]\n",
     {{"inc/a.yaml", "sluice: {}\nconnectors:\n  out: { type: stdout, path: x }\n"}},
     {"{D}/inc/a.yaml:1:1: 'sluice' is only allowed in the main config file (an included file may "
      "hold connectors and routes)",
      "{D}/inc/a.yaml:3:24: unknown key 'path' in connectors.out (expected one of: type)"}},
    {"include: a missing file that is not a glob",
     "sluice:\n  include: [\"routes/*.yaml\", \"missing.yaml\"]\n",
     {{0}},
     {"{F}:2:30: sluice.include[1]: cannot read '{D}/missing.yaml': No such file or directory"}},
    {"include: syntax error in an included file",
     "sluice:\n  include: [\"r/*.yaml\"]\nconnectors:\n  x: { type: bogus }\n",
     {{"r/a.yaml", "routes:\n  a: {\n"}},
     {"{D}/r/a.yaml:3:1: did not find expected node content while parsing a flow node"}},
    {"unset environment variable",
     "sluice:\n  data_dir: \"${SLUICE_TEST_UNSET}/data\"\n  admin:\n    token: "
     "${SLUICE_TEST_UNSET:-}\n"
     "    listen: \"${}\"\n",
     {{0}},
     {"{F}:2:13: environment variable SLUICE_TEST_UNSET is not set",
      "{F}:5:13: invalid environment variable reference '${}' (expected ${NAME} or "
      "${NAME:-default})",
      "{F}:5:13: sluice.admin.listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got '${}'"}},
    {"steps",
     CONNS "  orders:\n"
           "    from: { connector: public, path: /orders }\n"
           "    steps:\n"
           "      - lua: { file: a.lua }\n"
           "      - filter: { expr: x }\n"
           "      - transform: {}\n"
           "      - { set: { headers: { a: b } }, filter: x }\n"
           "      - validate: { json: true, xml_schema: a.xsd }\n"
           "      - json_to_xml: { pretty: very }\n"
           "    to: [ { topic: t } ]\n",
     {{0}},
     {"{F}:10:14: routes.orders.steps[0].lua: missing required key 'function'",
      "{F}:11:17: routes.orders.steps[1].filter: expected a Lua expression, got a map",
      "{F}:12:9: unknown step 'transform' in routes.orders.steps[2] (expected one of: lua, "
      "json_to_xml, xml_to_json, filter, set, validate)",
      "{F}:13:9: routes.orders.steps[3]: expected a map with exactly one step (one of: lua, "
      "json_to_xml, xml_to_json, filter, set, validate)",
      "{F}:14:19: routes.orders.steps[4].validate: expected exactly one of 'xml_schema: FILE' or "
      "'json: true'",
      "{F}:15:32: routes.orders.steps[5].json_to_xml.pretty: expected true or false, got "
      "'very'"}},
    {"http input details and names",
     CONNS "  bad name:\n"
           "    from: { connector: public, path: orders, methods: [POST, FETCH], reply_from: x }\n"
           "    to:\n"
           "      - { topic: \"a/b\" }\n"
           "      - { connector: crm, method: post }\n"
           "      - { connector: crm }\n",
     {{0}},
     {"{F}:7:3: invalid route name 'bad name' (use letters, digits, '.', '_' and '-')",
      "{F}:8:38: routes.bad name.from.path: expected a path starting with '/', got 'orders'",
      "{F}:8:62: routes.bad name.from.methods[1]: expected one of GET, POST, PUT, PATCH, DELETE, "
      "got 'FETCH'",
      "{F}:8:82: routes.bad name.from.reply_from: no output named 'x' in this route",
      "{F}:8:82: routes.bad name.from.reply_from: needs reply: sync",
      "{F}:10:18: routes.bad name.to[0].topic: invalid topic name 'a/b' (use letters, digits, "
      "'.', '_' and '-')",
      "{F}:11:35: routes.bad name.to[1].method: expected one of GET, POST, PUT, PATCH, DELETE, "
      "got 'post'",
      "{F}:12:9: routes.bad name.to[2]: output name 'crm' is already used by routes.bad "
      "name.to[1] (set 'name' to tell them apart)"}},
    {"file output without a path",
     "connectors:\n  f: { type: file }\n  in: { type: file, path: in.jsonl }\nroutes:\n"
     "  r:\n    from: { connector: in }\n    to: [ { connector: f } ]\n",
     {{0}},
     {"{F}:7:11: routes.r.to[0]: missing required key 'path' (connector 'f' has no path)"}},
    {"multiple errors in one file, reported in file order",
     "sluice:\n"
     "  data_dir: ./data\n"
     "  log: { fsync: sometimes, segment_bytes: huge }\n"
     "  shutdown_timeout: 10\n"
     "connectors:\n"
     "  public: { type: http_server, listen: \"8080\" }\n"
     "  crm: { type: http_client, base_url: \"crm.example\", max_in_flight: 0 }\n"
     "routes:\n"
     "  orders:\n"
     "    from: { connector: public, path: /o, content_type: yaml }\n"
     "    to: [ { connector: crm, headers: { a: [1] } } ]\n"
     "    on_error: { retry: { multiplier: 0.5 }, dead_letter: {} }\n",
     {{0}},
     {"{F}:3:17: sluice.log.fsync: expected one of always, interval, never, got 'sometimes'",
      "{F}:3:43: sluice.log.segment_bytes: expected a size (e.g. 512KiB, 1MiB), got 'huge'",
      "{F}:4:21: sluice.shutdown_timeout: expected a duration (e.g. 500ms, 2s, 1m), got '10'",
      "{F}:6:40: connectors.public.listen: expected HOST:PORT (e.g. 127.0.0.1:8080), got '8080'",
      "{F}:7:39: connectors.crm.base_url: expected an http:// or https:// URL, got 'crm.example'",
      "{F}:7:69: connectors.crm.max_in_flight: expected an integer of at least 1, got '0'",
      "{F}:10:56: routes.orders.from.content_type: expected one of json, xml, text, any, got "
      "'yaml'",
      "{F}:11:43: routes.orders.to[0].headers.a: expected a string, got a list",
      "{F}:12:38: routes.orders.on_error.retry.multiplier: expected a number of at least 1 (e.g. "
      "2 or 1.5), got '0.5'",
      "{F}:12:58: routes.orders.on_error.dead_letter: missing required key 'topic'"}},
};

static void test_bad_configs(void **state)
{
    (void)state;
    unsetenv("SLUICE_TEST_UNSET");
    int failures = 0;
    for (size_t c = 0; c < sizeof BAD / sizeof BAD[0]; c++) {
        const bad_case *bc = &BAD[c];
        char *dir = write_config(bc->main, bc->extra, 3);
        char *path = main_path(dir);
        sl_config_errors errs = {0};
        sl_config *cfg = sl_config_load(path, &errs);
        size_t n_expected = 0;
        while (bc->expected[n_expected]) {
            n_expected++;
        }
        bool same = cfg == NULL && errs.n == n_expected;
        for (size_t i = 0; same && i < n_expected; i++) {
            char *want = subst(bc->expected[i], dir);
            same = !strcmp(want, errs.lines[i]);
            free(want);
        }
        if (!same) {
            failures++;
            print_error("case '%s': config %s, errors:\n", bc->name, cfg ? "loaded" : "rejected");
            for (size_t i = 0; i < errs.n; i++) {
                print_error("  got:  %s\n", errs.lines[i]);
            }
            for (size_t i = 0; i < n_expected; i++) {
                char *want = subst(bc->expected[i], dir);
                print_error("  want: %s\n", want);
                free(want);
            }
        }
        sl_config_free(cfg);
        sl_config_errors_free(&errs);
        free(path);
        remove_dir(dir);
    }
    assert_true(sizeof BAD / sizeof BAD[0] >= 25);
    assert_int_equal(failures, 0);
}

static void test_missing_main_file(void **state)
{
    (void)state;
    sl_config_errors errs = {0};
    assert_null(sl_config_load("/nonexistent/sluice.yaml", &errs));
    assert_int_equal(errs.n, 1);
    assert_string_equal(errs.lines[0],
                        "/nonexistent/sluice.yaml: cannot open: No such file or directory");
    sl_config_errors_free(&errs);
    assert_null(errs.lines);
    assert_int_equal(errs.n, 0);
}

/* ---- good configs ---- */

static void test_defaults(void **state)
{
    (void)state;
    char *dir;
    sl_config *cfg = load_ok("connectors:\n"
                             "  in: { type: http_server, listen: \"127.0.0.1:8080\" }\n"
                             "  crm: { type: http_client, base_url: \"http://crm\" }\n"
                             "  mq: { type: amqp, url: \"amqp://h\" }\n"
                             "  k: { type: kafka, brokers: \"h:9092\" }\n"
                             "routes:\n"
                             "  r:\n"
                             "    from: { connector: in, path: /r }\n"
                             "    to:\n"
                             "      - { connector: crm }\n"
                             "      - { connector: mq, exchange: x }\n"
                             "      - { connector: k, topic: t }\n"
                             "  k-in:\n"
                             "    from: { connector: k, topics: [a], group: g }\n"
                             "    to: [ { topic: t2 } ]\n",
                             NULL, 0, &dir);
    const sl_gateway_conf *gw = &cfg->gw;
    assert_string_equal(gw->data_dir, "./data");
    assert_string_equal(gw->admin_listen, "127.0.0.1:9400");
    assert_true(gw->admin_token == NULL || gw->admin_token[0] == '\0');
    assert_int_equal(gw->log.fsync, SL_FSYNC_ALWAYS);
    assert_int_equal(gw->log.fsync_interval_ms, 10);
    assert_int_equal(gw->log.segment_bytes, 64ULL << 20);
    assert_int_equal(gw->log.max_disk_bytes, 0);
    assert_int_equal(gw->log.retention_ms, 0);
    assert_int_equal(gw->log.retention_bytes, 0);
    assert_int_equal(gw->log.index_interval_bytes, 4096);
    assert_int_equal(gw->log.on_corruption, SL_CORRUPT_SKIP);
    assert_int_equal(gw->log.data_mode, SL_DATA_PRIVATE);
    assert_int_equal(gw->log_format, SL_LOG_TEXT);
    assert_string_equal(gw->log_level, "info");
    assert_int_equal(gw->shutdown_timeout_ms, 30000);
    assert_int_equal(gw->dedupe_window_ms, 24ULL * 3600 * 1000);

    assert_int_equal(cfg->n_connectors, 4);
    const sl_connector_conf *in = sl_config_connector(cfg, "in");
    assert_non_null(in);
    assert_string_equal(in->type, "http_server");
    assert_int_equal(HS_CONF(in)->max_body, 1 << 20);
    const sl_connector_conf *crm = sl_config_connector(cfg, "crm");
    assert_int_equal(HC_CONF(crm)->timeout_ms, 5000);
    assert_int_equal(HC_CONF(crm)->max_in_flight, 64);
    assert_int_equal(HC_CONF(crm)->n_headers, 0);
    assert_true(crm->breaker.failure_rate == 0.5);
    assert_int_equal(crm->breaker.min_calls, 10);
    assert_int_equal(crm->breaker.window, 20);
    assert_int_equal(crm->breaker.consecutive_failures, 0);
    assert_int_equal(crm->breaker.open_for_ms, 10000);
    assert_int_equal(crm->breaker.max_open_for_ms, 300000);
    assert_int_equal(crm->breaker.half_open_calls, 3);
    assert_int_equal(AMQP_CONF(sl_config_connector(cfg, "mq"))->prefetch, 256);
    assert_int_equal(AMQP_CONF(sl_config_connector(cfg, "mq"))->timeout_ms, 5000);
    assert_null(sl_config_connector(cfg, "nope"));

    assert_int_equal(cfg->n_routes, 2);
    const sl_route_conf *r = &cfg->routes[0];
    assert_string_equal(r->name, "r");
    assert_int_equal(r->partitions, 1);
    assert_null(r->key);
    assert_int_equal(r->n_steps, 0);
    assert_int_equal(r->retry.max_attempts, 10);
    assert_int_equal(r->retry.initial_backoff_ms, 100);
    assert_int_equal(r->retry.max_backoff_ms, 30000);
    assert_true(r->retry.multiplier == 2.0);
    assert_string_equal(r->dead_letter_topic, "r.dlq");
    assert_string_equal(r->from.connector, "in");
    assert_null(r->from.topic);
    assert_string_equal(HS_IN(r->from)->path, "/r");
    assert_int_equal(HS_IN(r->from)->n_methods, 1);
    assert_string_equal(HS_IN(r->from)->methods[0], "POST");
    assert_int_equal(HS_IN(r->from)->content_type, SL_CT_ANY);
    assert_false(HS_IN(r->from)->reply_sync);
    assert_int_equal(HS_IN(r->from)->sync_timeout_ms, 5000);
    assert_int_equal(r->n_to, 3);
    assert_string_equal(r->to[0].name, "crm");
    assert_string_equal(HC_OUT(r->to[0])->method, "POST");
    assert_string_equal(HC_OUT(r->to[0])->path, "");
    assert_string_equal(AMQP_OUT(r->to[1])->exchange, "x");
    assert_null(AMQP_OUT(r->to[1])->routing_key);
    assert_true(AMQP_OUT(r->to[1])->persistent);
    assert_true(AMQP_OUT(r->to[1])->mandatory);
    assert_string_equal(r->to[2].topic, "t");
    assert_string_equal(r->to[2].connector, "k");
    const sl_route_conf *k = &cfg->routes[1];
    assert_string_equal(KAFKA_IN(k->from)->start, "earliest");
    assert_int_equal(KAFKA_IN(k->from)->n_topics, 1);
    assert_string_equal(KAFKA_IN(k->from)->topics[0], "a");
    assert_string_equal(KAFKA_IN(k->from)->group, "g");
    assert_string_equal(k->to[0].name, "topic:t2");
    assert_null(k->to[0].connector);
    sl_config_free(cfg);
    remove_dir(dir);
}

/* The example of SPEC.md section 2 (without its include), with every value read back. */
static void test_spec_example(void **state)
{
    (void)state;
    char *dir;
    sl_config *cfg = load_ok(
        "sluice:\n"
        "  data_dir: /var/lib/sluice\n"
        "  admin: { listen: \"0.0.0.0:9401\", token: secret }\n"
        "  log:\n"
        "    fsync: interval\n"
        "    fsync_interval: 20ms\n"
        "    segment_bytes: 16MiB\n"
        "    max_disk_bytes: 10GiB\n"
        "    retention: 7d\n"
        "    retention_bytes: 1GB\n"
        "    on_corruption: stop\n"
        "  data_dir_mode: group\n"
        "  log_format: json\n"
        "  log_level: debug\n"
        "  shutdown_timeout: 1m\n"
        "  dedupe_window: 1h\n"
        "connectors:\n"
        "  public:  { type: http_server, listen: \"0.0.0.0:8080\", max_body: 512KiB }\n"
        "  crm:     { type: http_client, base_url: \"https://crm.example\", timeout: 2s,\n"
        "             max_in_flight: 32, headers: { X-Api: k1 },\n"
        "             breaker: { failure_rate: 25%, min_calls: 5, window: 50,\n"
        "                        consecutive_failures: 3, open_for: 5s, max_open_for: 1m,\n"
        "                        half_open_calls: 2 } }\n"
        "  rabbit:  { type: amqp, url: \"amqp://guest:guest@localhost:5672/\", prefetch: 100 }\n"
        "  kafka:   { type: kafka, brokers: \"localhost:9092\",\n"
        "             options: { compression.type: lz4, linger.ms: 5 },\n"
        "             breaker: { failure_rate: 0.75 } }\n"
        "  mq-in:   { type: amqp, url: \"amqps://h\" }\n"
        "routes:\n"
        "  orders-to-erp:\n"
        "    description: the SPEC example\n"
        "    from: { connector: public, path: /orders, methods: [POST, PUT], content_type: json,\n"
        "            reply: sync, sync_timeout: 3s, reply_from: crm }\n"
        "    partitions: 4\n"
        "    key: \"$.customer.id\"\n"
        "    steps:\n"
        "      - lua: { file: lua/enrich_order.lua, function: enrich, timeout: 50ms, memory: "
        "16MiB }\n"
        "      - json_to_xml: { root: order, declaration: yes, pretty: false }\n"
        "      - xml_to_json:\n"
        "      - filter: \"msg.headers.tier ~= 'test'\"\n"
        "      - set: { headers: { x-a: \"1\" }, fields: { \"$.a.b\": c } }\n"
        "      - validate: { json: true }\n"
        "    to:\n"
        "      - { name: erp, connector: rabbit, exchange: erp, routing_key: orders.created,\n"
        "          persistent: no }\n"
        "      - { connector: kafka, topic: analytics.orders, key: \"$.customer.id\",\n"
        "          when: \"msg.headers.tier == 'gold'\" }\n"
        "      - { connector: crm, method: PUT, path: /orders, headers: { X-B: \"2\" } }\n"
        "    on_error:\n"
        "      retry: { max_attempts: 3, initial_backoff: 1s, max_backoff: 1m, multiplier: 1.5 }\n"
        "      dead_letter: { topic: orders-to-erp.dead }\n"
        "  from-mq:\n"
        "    from:\n"
        "      connector: mq-in\n"
        "      queue: q1\n"
        "      prefetch: 10\n"
        "      declare: { durable: true }\n"
        "      bind: [ { exchange: e, routing_key: k } ]\n"
        "    to: [ { topic: mq.copy } ]\n",
        NULL, 0, &dir);
    const sl_gateway_conf *gw = &cfg->gw;
    assert_string_equal(gw->data_dir, "/var/lib/sluice");
    assert_string_equal(gw->admin_listen, "0.0.0.0:9401");
    assert_string_equal(gw->admin_token, "secret");
    assert_int_equal(gw->log.fsync, SL_FSYNC_INTERVAL);
    assert_int_equal(gw->log.fsync_interval_ms, 20);
    assert_int_equal(gw->log.segment_bytes, 16ULL << 20);
    assert_int_equal(gw->log.max_disk_bytes, 10ULL << 30);
    assert_int_equal(gw->log.retention_ms, 7ULL * 86400000);
    assert_int_equal(gw->log.retention_bytes, 1000000000ULL);
    assert_int_equal(gw->log.on_corruption, SL_CORRUPT_STOP);
    assert_int_equal(gw->log.data_mode, SL_DATA_GROUP);
    assert_int_equal(gw->log_format, SL_LOG_JSON);
    assert_string_equal(gw->log_level, "debug");
    assert_int_equal(gw->shutdown_timeout_ms, 60000);
    assert_int_equal(gw->dedupe_window_ms, 3600000);

    const sl_connector_conf *crm = sl_config_connector(cfg, "crm");
    assert_int_equal(HS_CONF(sl_config_connector(cfg, "public"))->max_body, 512 * 1024);
    assert_int_equal(HC_CONF(crm)->timeout_ms, 2000);
    assert_int_equal(HC_CONF(crm)->max_in_flight, 32);
    assert_int_equal(HC_CONF(crm)->n_headers, 1);
    assert_string_equal(HC_CONF(crm)->headers[0].key, "X-Api");
    assert_string_equal(HC_CONF(crm)->headers[0].value, "k1");
    assert_true(crm->breaker.failure_rate == 0.25);
    assert_int_equal(crm->breaker.min_calls, 5);
    assert_int_equal(crm->breaker.window, 50);
    assert_int_equal(crm->breaker.consecutive_failures, 3);
    assert_int_equal(crm->breaker.open_for_ms, 5000);
    assert_int_equal(crm->breaker.max_open_for_ms, 60000);
    assert_int_equal(crm->breaker.half_open_calls, 2);
    assert_int_equal(AMQP_CONF(sl_config_connector(cfg, "rabbit"))->prefetch, 100);
    const sl_connector_conf *kafka = sl_config_connector(cfg, "kafka");
    assert_string_equal(KAFKA_CONF(kafka)->brokers, "localhost:9092");
    assert_int_equal(KAFKA_CONF(kafka)->n_options, 2);
    assert_string_equal(KAFKA_CONF(kafka)->options[0].key, "compression.type");
    assert_string_equal(KAFKA_CONF(kafka)->options[0].value, "lz4");
    assert_string_equal(KAFKA_CONF(kafka)->options[1].key, "linger.ms");
    assert_string_equal(KAFKA_CONF(kafka)->options[1].value, "5");
    assert_true(kafka->breaker.failure_rate == 0.75);
    /* The whole mapping is kept, with positions. */
    const sl_node *opts = sl_node_get(kafka->node, "options");
    assert_non_null(opts);
    assert_int_equal(opts->kind, SL_NODE_MAP);
    assert_int_equal(opts->pos.line, 26);
    assert_int_equal(opts->pos.col, 23);
    assert_int_equal(kafka->pos.line, 25);
    assert_int_equal(kafka->pos.col, 3);

    const sl_route_conf *r = &cfg->routes[0];
    assert_string_equal(r->name, "orders-to-erp");
    assert_int_equal(HS_IN(r->from)->n_methods, 2);
    assert_string_equal(HS_IN(r->from)->methods[1], "PUT");
    assert_int_equal(HS_IN(r->from)->content_type, SL_CT_JSON);
    assert_true(HS_IN(r->from)->reply_sync);
    assert_int_equal(HS_IN(r->from)->sync_timeout_ms, 3000);
    assert_string_equal(HS_IN(r->from)->reply_from, "crm");
    assert_int_equal(r->partitions, 4);
    assert_string_equal(r->key, "$.customer.id");
    assert_int_equal(r->n_steps, 6);
    assert_string_equal(r->steps[0].type, "lua");
    assert_string_equal(sl_node_get(r->steps[0].node, "function")->scalar, "enrich");
    assert_string_equal(r->steps[1].type, "json_to_xml");
    assert_string_equal(r->steps[2].type, "xml_to_json");
    assert_int_equal(r->steps[2].node->kind, SL_NODE_NULL);
    assert_string_equal(r->steps[3].type, "filter");
    assert_string_equal(FILTER_CONF(r->steps[3])->expr, "msg.headers.tier ~= 'test'");
    assert_string_equal(r->steps[4].type, "set");
    assert_int_equal(SET_CONF(r->steps[4])->n_set_headers, 1);
    assert_string_equal(SET_CONF(r->steps[4])->set_headers[0].key, "x-a");
    assert_string_equal(SET_CONF(r->steps[4])->set_headers[0].value, "1");
    assert_int_equal(SET_CONF(r->steps[4])->n_set_fields, 1);
    assert_string_equal(SET_CONF(r->steps[4])->set_fields[0].key, "$.a.b");
    assert_string_equal(SET_CONF(r->steps[4])->set_fields[0].value, "c");
    assert_string_equal(r->steps[5].type, "validate");
    assert_int_equal(r->n_to, 3);
    assert_string_equal(r->to[0].name, "erp");
    assert_string_equal(AMQP_OUT(r->to[0])->routing_key, "orders.created");
    assert_false(AMQP_OUT(r->to[0])->persistent);
    assert_true(AMQP_OUT(r->to[0])->mandatory);
    assert_string_equal(r->to[1].name, "kafka");
    assert_string_equal(r->to[1].topic, "analytics.orders");
    assert_string_equal(KAFKA_OUT(r->to[1])->key, "$.customer.id");
    assert_string_equal(r->to[1].when, "msg.headers.tier == 'gold'");
    assert_string_equal(HC_OUT(r->to[2])->method, "PUT");
    assert_string_equal(HC_OUT(r->to[2])->path, "/orders");
    assert_string_equal(HC_OUT(r->to[2])->headers[0].value, "2");
    assert_int_equal(r->retry.max_attempts, 3);
    assert_int_equal(r->retry.initial_backoff_ms, 1000);
    assert_int_equal(r->retry.max_backoff_ms, 60000);
    assert_true(r->retry.multiplier == 1.5);
    assert_string_equal(r->dead_letter_topic, "orders-to-erp.dead");

    const sl_route_conf *mq = &cfg->routes[1];
    assert_string_equal(AMQP_IN(mq->from)->queue, "q1");
    assert_int_equal(AMQP_IN(mq->from)->prefetch, 10);
    assert_int_equal(sl_node_get(mq->from.node, "declare")->kind, SL_NODE_MAP);
    assert_int_equal(sl_node_get(mq->from.node, "bind")->n_items, 1);
    sl_config_free(cfg);
    remove_dir(dir);
}

/* ${header:NAME} and ${$.path} are message substitutions for routing keys:
 * the loader keeps them as written instead of reading the environment. */
static void test_message_substitutions_are_not_env_vars(void **state)
{
    (void)state;
    setenv("SLUICE_TEST_SUFFIX", "eu", 1);
    char *dir;
    sl_config *cfg = load_ok(
        CONNS "  r:\n"
              "    from: { connector: public, path: /o }\n"
              "    to:\n"
              "      - { connector: rabbit, exchange: x,\n"
              "          routing_key: \"o.${header:type}.${$.a.b}.${SLUICE_TEST_SUFFIX}\" }\n",
        NULL, 0, &dir);
    assert_string_equal(AMQP_OUT(cfg->routes[0].to[0])->routing_key,
                        "o.${header:type}.${$.a.b}.eu");
    sl_config_free(cfg);
    remove_dir(dir);
    cfg = load_ok(
        "connectors:\n"
        "  rabbit: { type: amqp, url: \"amqps://h\", tls: { ca_file: ca.pem, verify: true } }\n"
        "  in: { type: http_server, listen: \"127.0.0.1:1\" }\n"
        "routes:\n"
        "  r: { from: { connector: in, path: /o }, to: [ { connector: rabbit, exchange: x } ] }\n",
        NULL, 0, &dir);
    assert_non_null(sl_node_get(cfg->connectors[0].node, "tls"));
    sl_config_free(cfg);
    remove_dir(dir);
    unsetenv("SLUICE_TEST_SUFFIX");
}

static void test_env_expansion(void **state)
{
    (void)state;
    setenv("SLUICE_TEST_DIR", "/srv/sluice", 1);
    setenv("SLUICE_TEST_EMPTY", "", 1);
    setenv("SLUICE_TEST_PORT", "9555", 1);
    unsetenv("SLUICE_TEST_UNSET");
    char *dir;
    sl_config *cfg =
        load_ok("sluice:\n"
                "  data_dir: ${SLUICE_TEST_DIR}/data\n"
                "  admin:\n"
                "    listen: \"127.0.0.1:${SLUICE_TEST_PORT}\"\n"
                "    token: 'a$$b$c${SLUICE_TEST_UNSET:-}'\n"
                "  log_level: \"${SLUICE_TEST_UNSET:-warn}\"\n"
                "  shutdown_timeout: ${SLUICE_TEST_EMPTY:-5s}\n"
                "connectors:\n"
                "  p: { type: http_server, listen: \"${SLUICE_TEST_UNSET:-:8080}\" }\n"
                "routes:\n"
                "  r:\n"
                "    from: { connector: p, path: /x }\n"
                "    partitions: \"${SLUICE_TEST_UNSET:-3}\"\n"
                "    to: [ { topic: \"${SLUICE_TEST_UNSET:-t}.${SLUICE_TEST_PORT}\" } ]\n",
                NULL, 0, &dir);
    assert_string_equal(cfg->gw.data_dir, "/srv/sluice/data");
    assert_string_equal(cfg->gw.admin_listen, "127.0.0.1:9555");
    assert_string_equal(cfg->gw.admin_token, "a$b$c");
    assert_string_equal(cfg->gw.log_level, "warn");
    assert_int_equal(cfg->gw.shutdown_timeout_ms, 5000);
    assert_string_equal(HS_CONF(&cfg->connectors[0])->listen, ":8080");
    assert_int_equal(cfg->routes[0].partitions, 3);
    assert_string_equal(cfg->routes[0].to[0].topic, "t.9555");
    sl_config_free(cfg);
    remove_dir(dir);
    unsetenv("SLUICE_TEST_DIR");
    unsetenv("SLUICE_TEST_EMPTY");
    unsetenv("SLUICE_TEST_PORT");
}

static void test_durations_and_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        uint64_t ms;
    } durations[] = {
        {"0", 0, 0},
        {"10ms", 0, 10},
        {"2s", 0, 2000},
        {"1m", 0, 60000},
        {"1h", 0, 3600000},
        {"1d", 0, 86400000},
        {"0s", 0, 0},
        {"500ms", 0, 500},
        {"10", -1, 0},
        {"", -1, 0},
        {"s", -1, 0},
        {"2 s", -1, 0},
        {"2 seconds", -1, 0},
        {"-1s", -1, 0},
        {"1.5s", -1, 0},
        {"2S", -1, 0},
        {"1w", -1, 0},
        {"99999999999999999999ms", -1, 0},
        {"999999999999999d", -1, 0},
    };
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        uint64_t v = 12345;
        int rc = sl_parse_duration_ms(durations[i].text, &v);
        if (rc != durations[i].rc || (rc == 0 && v != durations[i].ms)) {
            fail_msg("duration '%s': rc %d value %llu", durations[i].text, rc,
                     (unsigned long long)v);
        }
        if (rc != 0) {
            assert_int_equal(v, 12345); /* untouched on error */
        }
    }
    static const struct {
        const char *text;
        int rc;
        uint64_t bytes;
    } sizes[] = {
        {"0", 0, 0},
        {"512", 0, 512},
        {"512B", 0, 512},
        {"64KiB", 0, 64 * 1024},
        {"1MiB", 0, 1 << 20},
        {"10GiB", 0, 10ULL << 30},
        {"2TiB", 0, 2ULL << 40},
        {"1KB", 0, 1000},
        {"5MB", 0, 5000000},
        {"3GB", 0, 3000000000ULL},
        {"big", -1, 0},
        {"", -1, 0},
        {"1 MiB", -1, 0},
        {"1mib", -1, 0},
        {"1.5MiB", -1, 0},
        {"-1", -1, 0},
        {"MiB", -1, 0},
        {"99999999999GiB", -1, 0},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t v = 12345;
        int rc = sl_parse_size(sizes[i].text, &v);
        if (rc != sizes[i].rc || (rc == 0 && v != sizes[i].bytes)) {
            fail_msg("size '%s': rc %d value %llu", sizes[i].text, rc, (unsigned long long)v);
        }
    }
}

static void test_includes_merge(void **state)
{
    (void)state;
    static const file_spec files[] = {
        {"routes/b.yaml", "routes:\n  b:\n    from: { topic: a.out }\n"
                          "    to: [ { connector: out } ]\n"},
        {"routes/a.yaml", "connectors:\n  out: { type: stdout }\nroutes:\n  a:\n"
                          "    from: { connector: in, path: /a }\n    to: [ { topic: a.out } ]\n"},
        {"routes/notes.txt", "not: [yaml\n"},
        {"extra.yaml", "# only a comment\n"},
    };
    char *dir;
    sl_config *cfg = load_ok("sluice:\n"
                             "  include: [\"routes/*.yaml\", \"none/*.yaml\", \"extra.yaml\",\n"
                             "            \"*.yaml\"]\n"
                             "connectors:\n"
                             "  in: { type: http_server, listen: \":8080\" }\n"
                             "routes:\n"
                             "  main:\n"
                             "    from: { connector: in, path: /m }\n"
                             "    to: [ { connector: out } ]\n",
                             files, 4, &dir);
    /* Main file first, then the globbed files sorted by name; the main file
     * and extra.yaml matched again by "*.yaml" are read once. */
    assert_int_equal(cfg->n_routes, 3);
    assert_string_equal(cfg->routes[0].name, "main");
    assert_string_equal(cfg->routes[1].name, "a");
    assert_string_equal(cfg->routes[2].name, "b");
    char *a_file = subst("{D}/routes/a.yaml", dir);
    assert_string_equal(cfg->routes[1].pos.file, a_file);
    assert_int_equal(cfg->routes[1].pos.line, 4);
    assert_int_equal(cfg->routes[1].pos.col, 3);
    free(a_file);
    char *main_file = subst("{F}", dir);
    assert_string_equal(cfg->routes[0].pos.file, main_file);
    assert_string_equal(cfg->path, main_file);
    free(main_file);
    assert_int_equal(cfg->n_connectors, 2);
    assert_string_equal(sl_config_connector(cfg, "out")->type, "stdout");
    assert_string_equal(cfg->routes[0].to[0].connector, "out");
    assert_string_equal(cfg->routes[2].from.topic, "a.out");
    sl_config_free(cfg);
    remove_dir(dir);
}

/* The shipped conf/sluice.yaml, found through SLUICE_SOURCE_DIR or by
 * walking up from the working directory. */
static char *find_shipped_config(void)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");
    char *path = NULL;
    if (src) {
        assert_true(asprintf(&path, "%s/conf/sluice.yaml", src) > 0);
        return path;
    }
    char dir[4096];
    assert_non_null(getcwd(dir, sizeof dir));
    for (;;) {
        assert_true(asprintf(&path, "%s/conf/sluice.yaml", dir) > 0);
        if (access(path, R_OK) == 0) {
            return path;
        }
        free(path);
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir) {
            fail_msg("conf/sluice.yaml not found above the working directory; "
                     "set SLUICE_SOURCE_DIR");
        }
        *slash = '\0';
    }
}

static void test_shipped_config(void **state)
{
    (void)state;
    unsetenv("SLUICE_ADMIN_TOKEN");
    char *path = find_shipped_config();
    sl_config_errors errs = {0};
    sl_config *cfg = sl_config_load(path, &errs);
    for (size_t i = 0; i < errs.n; i++) {
        print_error("%s\n", errs.lines[i]);
    }
    assert_non_null(cfg);
    assert_string_equal(cfg->gw.data_dir, "./data");
    assert_string_equal(cfg->gw.admin_listen, "127.0.0.1:9400");
    assert_string_equal(cfg->gw.admin_token, "");
    assert_int_equal(cfg->gw.log.fsync, SL_FSYNC_ALWAYS);
    const sl_connector_conf *pub = sl_config_connector(cfg, "public");
    assert_string_equal(pub->type, "http_server");
    assert_string_equal(HS_CONF(pub)->listen, "127.0.0.1:8080");
    assert_int_equal(HS_CONF(pub)->max_body, 1 << 20);
    const sl_connector_conf *files = sl_config_connector(cfg, "files");
    assert_string_equal(files->type, "file");
    assert_string_equal(FILE_CONF(files)->path, "./out/orders.jsonl");
    assert_int_equal(cfg->n_routes, 2);
    const sl_route_conf *r = &cfg->routes[0];
    assert_string_equal(r->name, "orders");
    assert_string_equal(r->from.connector, "public");
    assert_string_equal(HS_IN(r->from)->path, "/orders");
    assert_int_equal(HS_IN(r->from)->n_methods, 1);
    assert_string_equal(HS_IN(r->from)->methods[0], "POST");
    assert_int_equal(HS_IN(r->from)->content_type, SL_CT_JSON);
    assert_false(HS_IN(r->from)->reply_sync);
    assert_int_equal(r->partitions, 4);
    assert_string_equal(r->key, "$.customer.id");
    assert_int_equal(r->n_steps, 1);
    assert_string_equal(r->steps[0].type, "set");
    assert_int_equal(SET_CONF(r->steps[0])->n_set_headers, 1);
    assert_string_equal(SET_CONF(r->steps[0])->set_headers[0].key, "x-source");
    assert_string_equal(SET_CONF(r->steps[0])->set_headers[0].value, "public-api");
    assert_int_equal(r->n_to, 2);
    assert_string_equal(r->to[0].connector, "files");
    assert_string_equal(FILE_OUT(r->to[0])->path, "./out/orders.jsonl");
    assert_null(r->to[1].connector);
    assert_string_equal(r->to[1].topic, "orders.accepted");
    assert_string_equal(r->to[1].name, "topic:orders.accepted");
    assert_int_equal(r->retry.max_attempts, 5);
    assert_int_equal(r->retry.initial_backoff_ms, 100);
    assert_int_equal(r->retry.max_backoff_ms, 5000);
    assert_string_equal(r->dead_letter_topic, "orders.dlq");
    const sl_route_conf *audit = &cfg->routes[1];
    assert_string_equal(audit->name, "orders-audit");
    assert_string_equal(audit->from.topic, "orders.accepted");
    assert_null(audit->from.connector);
    assert_string_equal(FILE_OUT(audit->to[0])->path, "./out/audit.jsonl");
    sl_config_free(cfg);
    sl_config_errors_free(&errs);

    /* And through the CLI entry point. */
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(sl_config_check_main(path, out), 0);
    char buf[256] = {0};
    rewind(out);
    assert_true(fread(buf, 1, sizeof buf - 1, out) > 0);
    assert_string_equal(buf, "ok\n");
    fclose(out);
    free(path);
}

static void test_check_main_errors(void **state)
{
    (void)state;
    char *dir = write_config("sluice:\n  log_level: loud\n  bogus: 1\n", NULL, 0);
    char *path = main_path(dir);
    FILE *out = tmpfile();
    assert_non_null(out);
    assert_int_equal(sl_config_check_main(path, out), 2);
    char buf[1024] = {0};
    rewind(out);
    assert_true(fread(buf, 1, sizeof buf - 1, out) > 0);
    char *want = subst("{F}:2:14: sluice.log_level: expected one of debug, info, warn, error, got "
                       "'loud'\n"
                       "{F}:3:3: unknown key 'bogus' in sluice (expected one of: data_dir, "
                       "data_dir_mode, admin, log, log_format, log_level, shutdown_timeout, "
                       "dedupe_window, include)\n",
                       dir);
    assert_string_equal(buf, want);
    free(want);
    fclose(out);
    free(path);
    remove_dir(dir);
}

/* Node tree details: positions, quoting, nulls, and an empty file. */
static void test_node_tree(void **state)
{
    (void)state;
    char *dir;
    sl_config *cfg = load_ok("connectors:\n"
                             "  k:\n"
                             "    type: kafka\n"
                             "    brokers: \"h:1\"\n"
                             "    options:\n"
                             "      acks: all\n"
                             "      quoted: \"123\"\n"
                             "      plain: 123\n"
                             "  mq: { type: amqp, url: \"amqp://h\" }\n"
                             "routes:\n"
                             "  r:\n"
                             "    from: { connector: mq, queue: q, declare: { durable: ~ } }\n"
                             "    to: [ { topic: t } ]\n",
                             NULL, 0, &dir);
    const sl_node *opts = sl_node_get(cfg->connectors[0].node, "options");
    assert_int_equal(opts->n_pairs, 3);
    assert_string_equal(opts->pairs[1].key, "quoted");
    assert_int_equal(opts->pairs[1].key_pos.line, 7);
    assert_int_equal(opts->pairs[1].key_pos.col, 7);
    assert_true(opts->pairs[1].value->quoted);
    assert_int_equal(opts->pairs[1].value->pos.col, 15);
    assert_false(opts->pairs[2].value->quoted);
    assert_string_equal(opts->pairs[2].value->scalar, "123");
    const sl_node *declare = sl_node_get(cfg->routes[0].from.node, "declare");
    assert_int_equal(sl_node_get(declare, "durable")->kind, SL_NODE_NULL);
    assert_int_equal(declare->pos.line, 12);
    assert_int_equal(declare->pos.col, 47);
    assert_null(sl_node_get(opts, "missing"));
    assert_null(sl_node_get(opts->pairs[0].value, "x")); /* not a map */
    assert_null(sl_node_get(NULL, "x"));
    sl_config_free(cfg);
    remove_dir(dir);
}

static void test_kafka_option_must_be_scalar(void **state)
{
    (void)state;
    char *dir = write_config("connectors:\n  k: { type: kafka, brokers: h, options: { a: [1] } }\n",
                             NULL, 0);
    char *path = main_path(dir);
    sl_config_errors errs = {0};
    assert_null(sl_config_load(path, &errs));
    assert_int_equal(errs.n, 1);
    char *want = subst("{F}:2:47: connectors.k.options.a: expected a string, got a list", dir);
    assert_string_equal(errs.lines[0], want);
    free(want);
    sl_config_errors_free(&errs);
    free(path);
    remove_dir(dir);
}

static void test_empty_file(void **state)
{
    (void)state;
    char *dir;
    sl_config *cfg = load_ok("# nothing yet\n", NULL, 0, &dir);
    assert_int_equal(cfg->n_routes, 0);
    assert_int_equal(cfg->n_connectors, 0);
    assert_string_equal(cfg->gw.data_dir, "./data");
    sl_config_free(cfg);
    sl_config_free(NULL);
    sl_config_errors_free(NULL);
    remove_dir(dir);
}

/* 100,000 nested '[' (and as many '{'): one error naming the depth, no
 * stack overflow (this crashed `sluice check` and a SIGHUP reload before). */
static void test_deep_nesting_is_an_error(void **state)
{
    (void)state;
    static const struct {
        const char *open; /* repeated 100,000 times after "routes: " */
        const char *error;
    } cases[] = {
        {"[", "{F}:1:72: maps and lists nested deeper than 64 levels"},
        {"{a: ", "{F}:1:261: maps and lists nested deeper than 64 levels"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        size_t step = strlen(cases[k].open), n = 100000;
        char *text = malloc(8 + n * step + 1);
        assert_non_null(text);
        memcpy(text, "routes: ", 8);
        for (size_t i = 0; i < n; i++)
            memcpy(text + 8 + i * step, cases[k].open, step);
        text[8 + n * step] = '\0';
        char *dir = write_config(text, NULL, 0);
        char *path = main_path(dir);
        sl_config_errors errs = {0};
        assert_null(sl_config_load(path, &errs));
        char *want = subst(cases[k].error, dir);
        assert_int_equal(errs.n, 1);
        assert_string_equal(errs.lines[0], want);
        free(want);
        sl_config_errors_free(&errs);
        free(path);
        free(text);
        remove_dir(dir);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_deep_nesting_is_an_error),
        cmocka_unit_test(test_missing_main_file),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_spec_example),
        cmocka_unit_test(test_env_expansion),
        cmocka_unit_test(test_message_substitutions_are_not_env_vars),
        cmocka_unit_test(test_durations_and_sizes),
        cmocka_unit_test(test_includes_merge),
        cmocka_unit_test(test_shipped_config),
        cmocka_unit_test(test_check_main_errors),
        cmocka_unit_test(test_node_tree),
        cmocka_unit_test(test_kafka_option_must_be_scalar),
        cmocka_unit_test(test_empty_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
