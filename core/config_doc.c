/* The config reference: the documentation tables of core's own sections
 * (beside the key lists of core/config_schema.c), and the two views built
 * from every table, core's and each connector and step type's: Markdown
 * (`sluice config reference`, docs/config-reference.md) and JSON Schema
 * draft 2020-12 (`sluice config schema`, for editors). */
#include "config.h"
#include "connector.h"
#include "http_tls.h"
#include "log_backend.h"
#include "step.h"

#include <stdio.h>
#include <string.h>

#define BREAKER_NOTE "circuit breaker settings (see Breaker); defaults apply when absent"

static const sl_conf_doc TOP_DOC[] = {
    SL_DOC("sluice", "object", NULL, "the gateway's own settings (main file only)"),
    SL_DOC("connectors", "map", NULL, "connectors by name: the partners and listeners routes use"),
    SL_DOC("routes", "map", NULL, "routes by name: from one input, through steps, to outputs"),
    SL_DOC_END};

static const sl_conf_doc INC_DOC[] = {
    SL_DOC("connectors", "map", NULL, "more connectors (a name may be defined once in all files)"),
    SL_DOC("routes", "map", NULL, "more routes (a name may be defined once in all files)"),
    SL_DOC_END};

static const sl_conf_doc GW_DOC[] = {
    SL_DOC("data_dir", "string", "./data", "directory of the event log, offsets and state"),
    SL_DOC("data_dir_mode", "enum:private|group", "private",
           "permissions of what Sluice creates in data_dir: private 0700/0600, group 0750/0640"),
    SL_DOC("admin", "object", NULL, "admin API listener (see sluice.admin)"),
    SL_DOC("log", "object", NULL, "event log settings (see sluice.log)"),
    SL_DOC("log_format", "enum:text|json", "text",
           "format of the gateway's own log lines on stderr"),
    SL_DOC("log_level", "enum:debug|info|warn|error", "info", "least severe log line written"),
    SL_DOC("shutdown_timeout", "duration", "30s",
           "on SIGTERM, how long in-flight deliveries may finish before the gateway exits"),
    SL_DOC("dedupe_window", "duration", "24h",
           "how long an http_server remembers an Idempotency-Key and its answer (0: off)"),
    SL_DOC("include", "any", NULL,
           "a glob or list of globs of more config files (connectors, routes), relative to this "
           "file's directory; a glob matching nothing is a warning"),
    SL_DOC_END};

static const sl_conf_doc ADMIN_DOC[] = {
    SL_DOC("listen", "listen", "127.0.0.1:9400",
           "HOST:PORT of the admin API, /health and /metrics"),
    SL_DOC("token", "string", "\"\"",
           "bearer token every admin call needs except /health and /ready (empty: none); a "
           "secret: ${SLUICE_ADMIN_TOKEN} or file:PATH"),
    SL_DOC_SUB("tls", "HTTPS for the admin API (plain HTTP when absent); see docs/SECURITY.md",
               sl_tls_doc),
    SL_DOC_END};

static const sl_conf_doc LOG_DOC[] = {
    SL_DOC(
        "fsync", "enum:always|interval|never", "always",
        "when appends reach the disk: before each acknowledgement, every fsync_interval, or never"),
    SL_DOC("fsync_interval", "duration", "10ms", "fsync: interval: time between fsyncs"),
    SL_DOC("segment_bytes", "size", "64MiB", "size of one log segment file (at least 4KiB)"),
    SL_DOC("max_disk_bytes", "size", "0",
           "cap on the log's bytes across topics; past it appends fail (ingest 503) (0: none)"),
    SL_DOC("retention", "duration", "0",
           "delete segments older than this once every consumer has passed them (0: keep)"),
    SL_DOC("retention_bytes", "size", "0",
           "delete the oldest segments of a partition larger than this, never past a consumer (0: "
           "none)"),
    SL_DOC("on_corruption", "enum:skip|stop", "skip",
           "a record failing its checksum: skip copies its bytes to the route's dead letter topic "
           "and goes on; stop holds the partition (/ready 503) until a rewind past it"),
    SL_DOC_END};

static const sl_conf_doc CONN_DOC[] = {
    SL_DOC_REQ("type", "string", "the connector type (see below)"), SL_DOC_END};

static const sl_conf_doc BREAKER_DOC[] = {
    SL_DOC("failure_rate", "rate", "50%", "open when this share of the last `window` calls failed"),
    SL_DOC("min_calls", "integer", "10", "calls needed in the window before failure_rate applies"),
    SL_DOC("window", "integer", "20", "calls the failure rate is computed over"),
    SL_DOC("consecutive_failures", "integer", "0",
           "also open after this many failures in a row (0: off)"),
    SL_DOC("open_for", "duration", "10s",
           "how long the breaker stays open; doubled each time a half-open trial fails"),
    SL_DOC("max_open_for", "duration", "5m", "the ceiling of the doubled open_for"),
    SL_DOC("half_open_calls", "integer", "3",
           "trial calls let through when half-open; all must pass"),
    SL_DOC_END};

static const sl_conf_doc ROUTE_DOC[] = {
    SL_DOC_REQ("from", "object", "the input: a connector (with its keys) or an internal topic"),
    SL_DOC("partitions", "integer", "1",
           "partitions of the route's log (1 to 1024); order is per key"),
    SL_DOC("key", "string", NULL,
           "message key: $.json.path, header:NAME or an XPath /a/b; none: round robin"),
    SL_DOC("steps", "list", NULL, "steps run in order on each message (see Steps)"),
    SL_DOC_REQ("to", "list", "outputs; a message is done when every output took it"),
    SL_DOC("on_error", "object", NULL, "retries and dead letters (see on_error)"),
    SL_DOC("description", "string", NULL, "free text, shown by the admin API"),
    SL_DOC("log", "map", NULL,
           "the route's log on a connector (see routes.NAME.log); none: the embedded log"),
    SL_DOC_END};

static const sl_conf_doc ROUTE_LOG_DOC[] = {
    SL_DOC_REQ("connector", "string", "name of a connector whose type can hold a route's log"),
    SL_DOC_END};

static const sl_conf_doc FROM_CONN_DOC[] = {
    SL_DOC_REQ("connector", "string", "name of a connector that can be an input"), SL_DOC_END};

static const sl_conf_doc FROM_TOPIC_DOC[] = {
    SL_DOC_REQ("topic", "string", "internal topic read (written by another route's to: {topic})"),
    SL_DOC_END};

static const sl_conf_doc TO_CONN_DOC[] = {
    SL_DOC_REQ("connector", "string", "name of a connector that can be an output"),
    SL_DOC("name", "string", "the connector's name",
           "output name in metrics and status (unique per route)"),
    SL_DOC("when", "string", NULL,
           "Lua condition over msg; the output takes only messages it is true for"),
    SL_DOC_END};

static const sl_conf_doc TO_TOPIC_DOC[] = {
    SL_DOC_REQ("topic", "string", "internal topic appended to; another route may read it"),
    SL_DOC("name", "string", "topic:TOPIC", "output name in metrics and status (unique per route)"),
    SL_DOC("when", "string", NULL,
           "Lua condition over msg; the output takes only messages it is true for"),
    SL_DOC_END};

static const sl_conf_doc ON_ERROR_DOC[] = {
    SL_DOC("retry", "object", NULL, "backoff of transient failures (see on_error.retry)"),
    SL_DOC("dead_letter", "object", NULL, "where failed messages go (see on_error.dead_letter)"),
    SL_DOC_END};

static const sl_conf_doc RETRY_DOC[] = {
    SL_DOC("max_attempts", "integer", "10",
           "attempts in all, the first included; then dead letter"),
    SL_DOC("initial_backoff", "duration", "100ms", "wait before the second attempt"),
    SL_DOC("max_backoff", "duration", "30s", "ceiling of the wait (not less than initial_backoff)"),
    SL_DOC("multiplier", "number", "2", "each wait is the previous one times this (at least 1)"),
    SL_DOC_END};

static const sl_conf_doc DLQ_DOC[] = {
    SL_DOC_REQ("topic", "string",
               "internal topic dead letters are appended to (without dead_letter: ROUTE.dlq)"),
    SL_DOC_END};

static const struct {
    const char *name;
    const sl_conf_doc *doc;
} CORE_DOCS[] = {
    {"top", TOP_DOC},
    {"include", INC_DOC},
    {"sluice", GW_DOC},
    {"sluice.admin", ADMIN_DOC},
    {"sluice.log", LOG_DOC},
    {"connector", CONN_DOC},
    {"breaker", BREAKER_DOC},
    {"route", ROUTE_DOC},
    {"route.log", ROUTE_LOG_DOC},
    {"from.connector", FROM_CONN_DOC},
    {"from.topic", FROM_TOPIC_DOC},
    {"to.connector", TO_CONN_DOC},
    {"to.topic", TO_TOPIC_DOC},
    {"on_error", ON_ERROR_DOC},
    {"on_error.retry", RETRY_DOC},
    {"on_error.dead_letter", DLQ_DOC},
};

const sl_conf_doc *sl_conf_core_doc(const char *name)
{
    for (size_t i = 0; i < sizeof CORE_DOCS / sizeof CORE_DOCS[0]; i++) {
        if (!strcmp(CORE_DOCS[i].name, name)) {
            return CORE_DOCS[i].doc;
        }
    }
    return NULL;
}

/* ---- Markdown ---- */

/* Writes s with '|' escaped, for a table cell. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|') {
            fputc('\\', out);
        }
        fputc(*s, out);
    }
}

static void md_type(FILE *out, const char *type)
{
    if (strncmp(type, "enum:", 5) != 0) {
        md_cell(out, type);
        return;
    }
    fputs("one of", out);
    const char *p = type + 5;
    while (*p) {
        size_t n = strcspn(p, "|");
        fprintf(out, " `%.*s`", (int)n, p);
        p += n + (p[n] == '|');
    }
}

static void md_rows(FILE *out, const sl_conf_doc *doc, const char *prefix)
{
    for (const sl_conf_doc *d = doc; d && d->key; d++) {
        fprintf(out, "| `%s%s` | ", prefix, d->key);
        md_type(out, d->type);
        fputs(" | ", out);
        if (d->required) {
            fputs("required", out);
        } else if (d->def) {
            fputc('`', out);
            md_cell(out, d->def);
            fputc('`', out);
        }
        fputs(" | ", out);
        md_cell(out, d->meaning);
        fputs(" |\n", out);
        if (d->sub) {
            char p[128];
            snprintf(p, sizeof p, "%s%s.", prefix, d->key);
            md_rows(out, d->sub, p);
        }
    }
}

static void md_table(FILE *out, const char *title, const sl_conf_doc *doc)
{
    if (title) {
        fprintf(out, "%s\n\n", title);
    }
    if (!doc || !doc->key) {
        fputs("No keys.\n\n", out);
        return;
    }
    fputs("| Key | Type | Default | Meaning |\n|---|---|---|---|\n", out);
    md_rows(out, doc, "");
    fputc('\n', out);
}

static void md_intro(FILE *out)
{
    fputs("# Configuration reference\n\n"
          "<!-- Generated by `sluice config reference` (`make reference`) from the tables "
          "beside the code that parses each key. Do not edit: `make test` fails when this "
          "file is not current. -->\n\n"
          "Every key the gateway reads, its type, its default and what it does. "
          "`sluice config schema` prints the same as JSON Schema for editors; "
          "`sluice check -c FILE` checks a config. `${VAR}` and `${VAR:-default}` are "
          "expanded in every value.\n\n"
          "Types: `duration` is `500ms`, `2s`, `1m`, `1h` or `1d` (a bare `0` is allowed); "
          "`size` is bytes or `KiB`, `MiB`, `GiB`, `TiB` (`KB`, `MB`, `GB` are powers of 10); "
          "`rate` is `50%` or `0.5`; `listen` is `HOST:PORT` (an empty host listens on every "
          "interface); `list` is a YAML list of strings; `map` is a map of names to strings; "
          "`any` is described in its line.\n\n",
          out);
}

static void md_core(FILE *out, const char *heading, const char *name)
{
    md_table(out, heading, sl_conf_core_doc(name));
}

static void md_gateway(FILE *out)
{
    md_core(out, "## Top level", "top");
    md_core(out, "An included file (`sluice.include`) may hold:", "include");
    md_core(out, "## sluice", "sluice");
    md_core(out, "### sluice.admin", "sluice.admin");
    md_core(out, "### sluice.log", "sluice.log");
}

static void md_connectors(FILE *out)
{
    fputs("## connectors.NAME\n\n", out);
    md_core(out, "Every connector has:", "connector");
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        const sl_connector_type *t = sl_connector_registry[i];
        fprintf(out, "### type: %s\n\n%s.\n\n", t->name, t->summary ? t->summary : "");
        md_table(out, "Connector keys:", t->conf_doc);
        if (t->can_input) {
            md_table(out, "As a route's `from:` (with `connector`):", t->input_doc);
        }
        if (t->can_output) {
            md_table(out, "As an element of a route's `to:` (with `connector`, `name`, `when`):",
                     t->output_doc);
        }
    }
    md_core(out,
            "### Breaker\n\n`breaker:` of a connector that calls a partner (its type "
            "lists `breaker`). Closed, it counts calls; open, it rejects them at once "
            "(a transient failure, retried with the route's backoff); after `open_for` it "
            "lets `half_open_calls` through and closes when they all pass.",
            "breaker");
}

/* routes.NAME.log: core's `connector`, then each log backend's own keys. */
static void md_route_log(FILE *out)
{
    md_core(out,
            "### log\n\nA route's log held by a connector instead of the embedded log "
            "(docs/KAFKA-LOG.md). Plus the keys of the connector type's log below.",
            "route.log");
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        const sl_connector_type *t = sl_connector_registry[i];
        if (t->log_backend) {
            char title[128];
            snprintf(title, sizeof title, "With a connector of type %s:", t->name);
            md_table(out, title, t->log_backend->doc);
        }
    }
}

static void md_routes(FILE *out)
{
    md_core(out, "## routes.NAME\n\nA route name uses letters, digits, `.`, `_` and `-`.", "route");
    md_core(out, "### from (a connector)\n\nPlus the connector type's input keys above.",
            "from.connector");
    md_core(out, "### from (an internal topic)", "from.topic");
    md_core(out, "### to[] (a connector)\n\nPlus the connector type's output keys above.",
            "to.connector");
    md_core(out, "### to[] (an internal topic)", "to.topic");
    md_core(out, "### on_error", "on_error");
    md_core(out,
            "### on_error.retry\n\nThe wait before attempt n+1 is initial_backoff × "
            "multiplier^(n-1), at most max_backoff.",
            "on_error.retry");
    md_core(out, "### on_error.dead_letter", "on_error.dead_letter");
    md_route_log(out);
}

static void md_steps(FILE *out)
{
    fputs("## Steps\n\nEach element of `steps:` is a map with one key, the step type.\n\n", out);
    for (size_t i = 0; sl_step_registry[i]; i++) {
        const sl_step_type *t = sl_step_registry[i];
        fprintf(out, "### %s\n\n%s.\n\n", t->name, t->summary ? t->summary : "");
        if (t->value) {
            fprintf(out, "`%s: VALUE` where VALUE is a %s: ", t->name, t->value->type);
            md_cell(out, t->value->meaning);
            fputs(".\n\n", out);
        } else {
            md_table(out, NULL, t->conf_doc);
        }
    }
}

/* Writes the whole reference as Markdown. */
static void write_markdown(FILE *out)
{
    md_intro(out);
    md_gateway(out);
    md_connectors(out);
    md_routes(out);
    md_steps(out);
}

/* ---- JSON Schema ---- */

static void js_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            fprintf(out, "\\%c", *s);
        } else if ((unsigned char)*s < 0x20) {
            fprintf(out, "\\u%04x", (unsigned)(unsigned char)*s);
        } else {
            fputc(*s, out);
        }
    }
    fputc('"', out);
}

/* Accepting ${VAR} where a number or boolean is expected. */
#define JS_VAR "{\"type\": \"string\", \"pattern\": \"\\\\$\\\\{\"}"

static void js_props(FILE *out, const sl_conf_doc *doc, const char *extra);

/* Writes the schema of one value of type d->type (without the braces' end). */
static void js_type(FILE *out, const sl_conf_doc *d)
{
    const char *t = d->type;
    if (!strncmp(t, "enum:", 5)) {
        fputs("{\"enum\": [", out);
        for (const char *p = t + 5; *p;) {
            size_t n = strcspn(p, "|");
            fprintf(out, "%s\"%.*s\"", p == t + 5 ? "" : ", ", (int)n, p);
            p += n + (p[n] == '|');
        }
        fputs("]", out);
    } else if (!strcmp(t, "integer") || !strcmp(t, "number") || !strcmp(t, "boolean")) {
        fprintf(out, "{\"anyOf\": [{\"type\": \"%s\"}, " JS_VAR "]", t);
    } else if (!strcmp(t, "size") || !strcmp(t, "duration")) {
        fputs("{\"type\": [\"string\", \"integer\"]", out);
    } else if (!strcmp(t, "rate")) {
        fputs("{\"type\": [\"string\", \"number\"]", out);
    } else if (!strcmp(t, "list")) {
        const char *items = !strcmp(d->key, "to")      ? "{\"$ref\": \"#/$defs/to\"}"
                            : !strcmp(d->key, "steps") ? "{\"$ref\": \"#/$defs/step\"}"
                                                       : "{\"type\": \"string\"}";
        fprintf(out, "{\"type\": \"array\", \"items\": %s", items);
    } else if (!strcmp(t, "map")) {
        fputs("{\"type\": \"object\"", out);
    } else if (!strcmp(t, "breaker")) {
        fputs("{\"$ref\": \"#/$defs/breaker\"", out);
    } else if (!strcmp(t, "object") && d->sub) {
        fputs("{\"type\": \"object\", ", out);
        js_props(out, d->sub, NULL);
    } else if (!strcmp(t, "object")) {
        fprintf(out, "{\"$ref\": \"#/$defs/%s\"", d->key); /* a section of its own */
    } else if (!strcmp(t, "any")) {
        fputs("{", out);
    } else {
        fputs("{\"type\": \"string\"", out);
    }
}

static void js_value(FILE *out, const sl_conf_doc *d)
{
    js_type(out, d);
    fputs(strcmp(d->type, "any") ? ", " : "", out);
    fputs("\"description\": ", out);
    js_str(out, d->meaning);
    if (d->def) {
        fputs(", \"default\": ", out);
        js_str(out, d->def);
    }
    fputc('}', out);
}

/* "properties": {...}, "required": [...], "additionalProperties": false;
 * extra (JSON text) is more properties, or NULL. */
static void js_props(FILE *out, const sl_conf_doc *doc, const char *extra)
{
    fputs("\"properties\": {", out);
    bool first = true;
    for (const sl_conf_doc *d = doc; d && d->key; d++) {
        fprintf(out, "%s\n  ", first ? "" : ",");
        js_str(out, d->key);
        fputs(": ", out);
        js_value(out, d);
        first = false;
    }
    if (extra) {
        fprintf(out, "%s%s", first ? "" : ", ", extra);
    }
    fputs("}, \"required\": [", out);
    first = true;
    for (const sl_conf_doc *d = doc; d && d->key; d++) {
        if (d->required) {
            fprintf(out, "%s\"%s\"", first ? "" : ", ", d->key);
            first = false;
        }
    }
    fputs("], \"additionalProperties\": false", out);
}

/* Two tables as one object schema (core's generic keys, then a type's). */
static void js_object2(FILE *out, const sl_conf_doc *a, const sl_conf_doc *b, const char *extra)
{
    sl_conf_doc all[64];
    size_t n = 0;
    for (const sl_conf_doc *d = a; d && d->key && n < 63; d++) {
        all[n++] = *d;
    }
    for (const sl_conf_doc *d = b; d && d->key && n < 63; d++) {
        all[n++] = *d;
    }
    all[n] = (sl_conf_doc){0};
    fputs("{\"type\": \"object\", ", out);
    js_props(out, all, extra);
    fputc('}', out);
}

static void js_connector_defs(FILE *out)
{
    fputs(",\n\"connector\": {\"type\": \"object\", \"required\": [\"type\"], "
          "\"properties\": {\"type\": {\"enum\": [",
          out);
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        fprintf(out, "%s\"%s\"", i ? ", " : "", sl_connector_registry[i]->name);
    }
    fputs("]}}, \"allOf\": [", out);
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        const sl_connector_type *t = sl_connector_registry[i];
        char extra[128];
        snprintf(extra, sizeof extra, "\"type\": {\"const\": \"%s\"}", t->name);
        fprintf(out, "%s\n {\"if\": {\"properties\": {\"type\": {\"const\": \"%s\"}}}, \"then\": ",
                i ? "," : "", t->name);
        js_object2(out, NULL, t->conf_doc, extra);
        fputc('}', out);
    }
    fputs("]}", out);
}

/* from: or to[]: any of the topic form and each type's connector form. */
static void js_endpoint(FILE *out, const char *def, bool input)
{
    fprintf(out, ",\n\"%s\": {\"anyOf\": [", def);
    js_object2(out, sl_conf_core_doc(input ? "from.topic" : "to.topic"), NULL, NULL);
    for (size_t i = 0; sl_connector_registry[i]; i++) {
        const sl_connector_type *t = sl_connector_registry[i];
        if (input ? !t->can_input : !t->can_output) {
            continue;
        }
        fputs(",\n ", out);
        js_object2(out, sl_conf_core_doc(input ? "from.connector" : "to.connector"),
                   input ? t->input_doc : t->output_doc, NULL);
    }
    fputs("]}", out);
}

static void js_step_def(FILE *out)
{
    fputs(",\n\"step\": {\"oneOf\": [", out);
    for (size_t i = 0; sl_step_registry[i]; i++) {
        const sl_step_type *t = sl_step_registry[i];
        fprintf(out, "%s\n {\"type\": \"object\", \"properties\": {\"%s\": ", i ? "," : "",
                t->name);
        if (t->value) {
            js_value(out, t->value);
        } else {
            fputs("{\"anyOf\": [{\"type\": \"null\"}, {\"type\": \"object\", ", out);
            js_props(out, t->conf_doc, NULL);
            fputs("}], \"description\": ", out);
            js_str(out, t->summary ? t->summary : "");
            fputc('}', out);
        }
        fprintf(out, "}, \"required\": [\"%s\"], \"additionalProperties\": false}", t->name);
    }
    fputs("]}", out);
}

static void js_core_def(FILE *out, const char *def, const char *name, const char *extra)
{
    fprintf(out, ",\n\"%s\": ", def);
    js_object2(out, sl_conf_core_doc(name), NULL, extra);
}

/* Writes the whole config as one JSON Schema document. */
static void write_schema(FILE *out)
{
    fputs("{\"$schema\": \"https://json-schema.org/draft/2020-12/schema\",\n"
          "\"$id\": \"https://sluice.invalid/config.schema.json\",\n"
          "\"title\": \"Sluice gateway configuration\",\n"
          "\"description\": \"Generated by sluice config schema; see docs/config-reference.md\",\n"
          "\"type\": \"object\",\n"
          "\"properties\": {\"sluice\": {\"$ref\": \"#/$defs/sluice\"},\n"
          " \"connectors\": {\"type\": \"object\", \"additionalProperties\": "
          "{\"$ref\": \"#/$defs/connector\"}},\n"
          " \"routes\": {\"type\": \"object\", \"additionalProperties\": "
          "{\"$ref\": \"#/$defs/route\"}}},\n"
          "\"additionalProperties\": false,\n\"$defs\": {\n\"breaker\": ",
          out);
    js_object2(out, sl_conf_core_doc("breaker"), NULL, NULL);
    js_core_def(out, "log", "sluice.log", NULL);
    js_core_def(out, "admin", "sluice.admin", NULL);
    js_core_def(out, "sluice", "sluice", NULL);
    js_connector_defs(out);
    js_endpoint(out, "from", true);
    js_endpoint(out, "to", false);
    js_step_def(out);
    js_core_def(out, "retry", "on_error.retry", NULL);
    js_core_def(out, "dead_letter", "on_error.dead_letter", NULL);
    js_core_def(out, "on_error", "on_error", NULL);
    js_core_def(out, "route", "route", NULL);
    fputs("}}\n", out);
}

int sl_config_doc_main(int argc, char **argv, FILE *out)
{
    const char *sub = argc > 1 ? argv[1] : "";
    if (argc == 2 && !strcmp(sub, "reference")) {
        write_markdown(out);
        return 0;
    }
    if (argc == 2 && !strcmp(sub, "schema")) {
        write_schema(out);
        return 0;
    }
    fprintf(stderr, "usage: sluice config reference|schema\n");
    return 2;
}
