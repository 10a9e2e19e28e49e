/* The sluice command line: run the gateway, check a config, inspect a
 * data_dir's log, print versions. Exit codes: 0 success, 1 runtime failure,
 * 2 usage or config error. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"
#include "gateway.h"
#include "log.h"
#include "log_json.h"
#include "log_remote.h"
#include "log_verify.h"
#include "logging.h"
#include "password.h"
#include "route_test.h"
#include "step.h"
#include "thread_name.h"
#include "version.h"

#define DEFAULT_CONFIG "conf/sluice.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sluice run [-c FILE]        run the gateway (default config %s)\n"
            "       sluice check [-c FILE]      validate a config (and compile its Lua, schemas,\n"
            "                                   when: expressions); prints ok or FILE:LINE:COL: "
            "errors\n"
            "       sluice test FILE...         run route tests (fixtures in, expected messages "
            "out)\n"
            "       sluice log ls [-d DATA_DIR]                 topics, partitions, offsets\n"
            "       sluice log dump [-d DATA_DIR] TOPIC [-p N] [-o OFFSET] [-n COUNT]\n"
            "       sluice log tail [-d DATA_DIR] TOPIC [-p N] [-n COUNT]\n"
            "       sluice log ls|dump|tail --admin HOST:PORT [--token T] ...  the same, from a\n"
            "                                   running gateway's admin API (token also from\n"
            "                                   SLUICE_ADMIN_TOKEN); tail -f keeps polling;\n"
            "                                   --admin https://HOST:PORT for a TLS admin\n"
            "                                   listener: [--cacert FILE] (default: the system's\n"
            "                                   CAs) [--cert FILE --key FILE] (client_ca)\n"
            "       sluice log replay ROUTE --from OFFSET|RFC3339 --admin HOST:PORT [--token T]\n"
            "                                   rewind ROUTE (POST /v1/routes/ROUTE/rewind)\n"
            "       sluice log verify [DATA_DIR]              check every record; prints each\n"
            "                                   damaged range, exit 1 when any (read only)\n"
            "                                   records as JSON lines (offline: the gateway must\n"
            "                                   not be running on DATA_DIR)\n"
            "       sluice config reference     every config key as Markdown "
            "(docs/config-reference.md)\n"
            "       sluice config schema        the config as JSON Schema (for editors)\n"
            "       sluice hash-password        read a password on stdin, print its yescrypt hash\n"
            "                                   (for basic auth users)\n"
            "       sluice version              versions of sluice and its libraries\n",
            DEFAULT_CONFIG);
}

static const char *config_arg(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int opt;
    optind = 1;
    while ((opt = getopt(argc, argv, "c:")) != -1) {
        if (opt == 'c')
            path = optarg;
        else
            return NULL;
    }
    if (optind != argc)
        return NULL;
    return path;
}

static int cmd_version(void)
{
    printf("sluice %s\n", SLUICE_VERSION);
    for (const sl_lib_version *v = sl_connectors_lib_versions(); v->name; v++)
        printf("  %-13s %s\n", v->name, v->version);
    printf("  jansson       %s\n", JANSSON_VERSION);
    for (const sl_lib_version *v = sl_transforms_lib_versions; v->name; v++)
        printf("  %-13s %s\n", v->name, v->version);
    printf("  libyaml       %s\n", yaml_get_version_string());
    return 0;
}

/* ---- check ---- */

static void print_error(void *arg, const char *msg)
{
    (void)arg;
    printf("%s\n", msg);
}

/* Builds every route's steps and compiles its key and `when:` expressions,
 * the way workers will, so that a script that does not compile fails the
 * check. Prints each error; returns how many there were. */
static size_t check_routes(sl_config *conf)
{
    size_t errors = 0;
    for (size_t i = 0; i < conf->n_routes; i++) {
        const sl_route_conf *rc = &conf->routes[i];
        sl_step **steps = NULL;
        size_t n = 0;
        sl_error err;
        if (sl_steps_build(NULL, NULL, rc, &steps, &n, &err) < 0) {
            printf("%s\n", err.msg);
            errors++;
        }
        sl_steps_free(steps, n);
        errors += sl_route_check_exprs(rc, print_error, NULL);
    }
    return errors;
}

static int cmd_check(const char *path)
{
    sl_config_errors errs = {0};
    sl_config *conf = sl_config_load(path, &errs);
    if (!conf) {
        for (size_t i = 0; i < errs.n; i++)
            printf("%s\n", errs.lines[i]);
        sl_config_errors_free(&errs);
        return 2;
    }
    sl_config_errors_free(&errs);
    for (size_t i = 0; i < conf->n_warnings; i++)
        fprintf(stderr, "%s\n", conf->warnings[i]);
    size_t errors = check_routes(conf);
    sl_config_free(conf);
    if (errors)
        return 2;
    printf("ok\n");
    return 0;
}

/* ---- run ---- */

typedef struct watchdog {
    uint64_t timeout_ms;
} watchdog;

static void *watchdog_main(void *arg)
{
    const watchdog *wd = arg;
    struct timespec ts = {.tv_sec = (time_t)(wd->timeout_ms / 1000),
                          .tv_nsec = (long)(wd->timeout_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    sl_err("main", "shutdown_timeout (%" PRIu64 " ms) passed before the drain finished; exiting",
           wd->timeout_ms);
    _exit(1);
    return NULL;
}

/* SIGHUP: loads path again; a config with errors is reported and the
 * running one kept. */
static void reload(sl_gateway **gw, const char *path)
{
    sl_info("main", "SIGHUP: reloading %s", path);
    sl_config_errors errs = {0};
    sl_config *conf = sl_config_load(path, &errs);
    if (!conf) {
        for (size_t i = 0; i < errs.n; i++)
            sl_err("main", "reload: %s", errs.lines[i]);
        sl_err("main", "reload: %zu error(s); the running config stays", errs.n);
        sl_config_errors_free(&errs);
        return;
    }
    sl_config_errors_free(&errs);
    sl_error err;
    if (sl_gateway_reload(gw, conf, &err) < 0)
        sl_err("main", "reload: %s", err.msg);
}

/* Loads path for `run`: errors go to stderr and NULL is returned; on
 * success logging is set up from the config and its warnings are logged. */
static sl_config *load_for_run(const char *path)
{
    sl_config_errors errs = {0};
    sl_config *conf = sl_config_load(path, &errs);
    if (!conf) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "%s\n", errs.lines[i]);
        sl_config_errors_free(&errs);
        return NULL;
    }
    sl_config_errors_free(&errs);
    sl_logging_setup(conf->gw.log_format == SL_LOG_JSON, sl_level_parse(conf->gw.log_level));
    for (size_t i = 0; i < conf->n_warnings; i++)
        sl_warn("config", "%s", conf->warnings[i]);
    return conf;
}

/* Signals go to this thread only, through sigwait; every other thread
 * inherits the blocked mask. Fills set with the signals to wait for. */
static void block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Builds and starts the gateway from conf. Returns it, or NULL with the
 * error logged and *code set to the exit code (2 for a config error). */
static sl_gateway *start_gateway(sl_config *conf, int *code)
{
    sl_error err;
    sl_error_clear(&err);
    sl_gateway *gw = sl_gateway_new(conf, NULL, &err);
    if (!gw) {
        sl_err("main", "%s", err.msg);
        *code = err.code == SL_ECONFIG ? 2 : 1;
        return NULL;
    }
    if (sl_gateway_start(gw, &err) < 0) {
        sl_err("main", "%s", err.msg);
        sl_gateway_stop(gw);
        sl_gateway_free(gw);
        *code = err.code == SL_ECONFIG ? 2 : 1;
        return NULL;
    }
    return gw;
}

/* Waits for SIGINT or SIGTERM, reloading path on each SIGHUP. Returns 0 to
 * drain, or -1 when a reload left no gateway (*gw NULL). */
static int serve_until_signal(sl_gateway **gw, const sigset_t *set, const char *path,
                              uint64_t shutdown_timeout)
{
    for (;;) {
        int sig = 0;
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            reload(gw, path);
            if (!*gw)
                return -1;
            continue;
        }
        sl_info("main", "%s: draining (shutdown_timeout %" PRIu64 " ms)",
                sig == SIGINT ? "SIGINT" : "SIGTERM", shutdown_timeout);
        return 0;
    }
}

/* Stops and frees gw; a watchdog thread exits the process with 1 if that
 * takes longer than shutdown_timeout ms. */
static void drain_and_stop(sl_gateway *gw, uint64_t shutdown_timeout)
{
    static watchdog wd;
    wd.timeout_ms = shutdown_timeout;
    pthread_t wt;
    if (pthread_create(&wt, NULL, watchdog_main, &wd) == 0) {
        sl_thread_name(wt, "sl-stop-watch");
        pthread_detach(wt);
    }
    sl_gateway_stop(gw);
    sl_gateway_free(gw);
    sl_info("main", "stopped");
}

static int cmd_run(const char *path)
{
    sl_config *conf = load_for_run(path);
    if (!conf)
        return 2;
    sigset_t set;
    block_signals(&set);
    uint64_t shutdown_timeout = conf->gw.shutdown_timeout_ms;
    int code = 0;
    sl_gateway *gw = start_gateway(conf, &code);
    if (!gw)
        return code;
    if (serve_until_signal(&gw, &set, path, shutdown_timeout) < 0)
        return 1;
    drain_and_stop(gw, shutdown_timeout);
    return 0;
}

/* ---- log ---- */

static void print_record(FILE *out, const char *topic, int part, const sl_record *r)
{
    sl_buf b = {0};
    sl_log_record_json(&b, topic, part, r);
    sl_buf_putc(&b, '\n');
    if (!b.oom)
        fwrite(b.p, 1, b.len, out);
    free(b.p);
}

static int log_dump(sl_log *log, const char *topic_name, int part, int64_t from, int64_t count,
                    bool tail)
{
    sl_error err;
    sl_topic *t = sl_log_topic(log, topic_name, 0, &err);
    if (!t) {
        fprintf(stderr, "sluice log: %s\n", err.msg);
        return 1;
    }
    int n = sl_topic_partition_count(t);
    sl_batch b;
    sl_batch_init(&b);
    int rc = 0;
    for (int p = 0; p < n; p++) {
        if (part >= 0 && p != part)
            continue;
        sl_partition *pp = sl_topic_partition(t, p);
        int64_t off = from;
        if (tail) {
            off = sl_partition_end_offset(pp) - (count >= 0 ? count : 10);
            if (off < 0)
                off = 0;
        }
        int64_t left = count;
        while (left != 0) {
            int got = sl_partition_read(pp, off, 1024, 8u << 20, &b, &err);
            if (got < 0) {
                fprintf(stderr, "sluice log: %s partition %d: %s\n", topic_name, p, err.msg);
                rc = 1;
                break;
            }
            if (got == 0)
                break;
            for (int i = 0; i < got && left != 0; i++, left--)
                print_record(stdout, topic_name, p, &b.records[i]);
            off = b.next_offset;
        }
    }
    sl_batch_free(&b);
    return rc;
}

static int log_ls(sl_log *log)
{
    sl_error err;
    char **names = NULL;
    size_t n = 0;
    if (sl_log_list_topics(log, &names, &n, &err) < 0) {
        fprintf(stderr, "sluice log: %s\n", err.msg);
        return 1;
    }
    printf("%-40s %9s %14s %14s\n", "TOPIC", "PARTITION", "START", "END");
    for (size_t i = 0; i < n; i++) {
        sl_topic *t = sl_log_topic(log, names[i], 0, &err);
        if (!t) {
            printf("%-40s  error: %s\n", names[i], err.msg);
            continue;
        }
        for (int p = 0; p < sl_topic_partition_count(t); p++) {
            sl_partition *pp = sl_topic_partition(t, p);
            printf("%-40s %9d %14" PRId64 " %14" PRId64 "\n", names[i], p,
                   sl_partition_start_offset(pp), sl_partition_end_offset(pp));
        }
    }
    sl_log_free_names(names, n);
    return 0;
}

/* sluice log verify: 0 when every record reads, 1 when a range is damaged
 * (or DIR holds no log). */
static int log_verify(const char *dir)
{
    size_t bad;
    uint64_t records;
    if (sl_log_verify(dir, stdout, &bad, &records) != 0) {
        fprintf(stderr, "sluice log verify: cannot read %s/topics: %s\n", dir, strerror(errno));
        return 1;
    }
    printf("%" PRIu64 " records read, %zu damaged range(s)\n", records, bad);
    return bad ? 1 : 0;
}

/* sluice log ls|dump|tail on a data_dir no gateway holds (topic NULL: ls). */
static int log_offline(const char *dir, const char *topic, int part, int64_t from, int64_t count,
                       bool tail)
{
    sl_error err;
    sl_log_options opt_log;
    sl_log_options_default(&opt_log);
    opt_log.fsync = SL_FSYNC_NEVER;
    sl_log *log = sl_log_open(dir, &opt_log, &err);
    if (!log) {
        fprintf(stderr, "sluice log: %s\n", err.msg);
        return 1;
    }
    int rc = topic == NULL ? log_ls(log) : log_dump(log, topic, part, from, count, tail);
    sl_log_close(log);
    return rc;
}

/* The options of `sluice log`. */
typedef struct log_args {
    const char *dir;
    int part;
    int64_t from;
    int64_t count;
    bool follow;
    const char *from_text; /* replay --from */
    sl_log_remote remote;  /* addr NULL: offline */
} log_args;

/* Takes an option of the admin API (--admin, --token, --cacert, --cert,
 * --key) into r. Returns false when opt is not one of them. */
static bool remote_opt(int opt, sl_log_remote *r)
{
    switch (opt) {
        case 'A':
            r->addr = optarg;
            return true;
        case 'T':
            r->token = optarg;
            return true;
        case 'C':
            r->tls.cacert = optarg;
            return true;
        case 'E':
            r->tls.cert = optarg;
            return true;
        case 'K':
            r->tls.key = optarg;
            return true;
        default:
            return false;
    }
}

/* Parses argv[2..] into la. Returns 0, or 2 after printing the usage. */
static int log_parse(int argc, char **argv, log_args *la)
{
    static const struct option longopts[] = {
        {"admin", required_argument, NULL, 'A'},  {"token", required_argument, NULL, 'T'},
        {"cacert", required_argument, NULL, 'C'}, {"cert", required_argument, NULL, 'E'},
        {"key", required_argument, NULL, 'K'},    {"from", required_argument, NULL, 'F'},
        {"follow", no_argument, NULL, 'f'},       {NULL, 0, NULL, 0}};
    int opt;
    optind = 2;
    while ((opt = getopt_long(argc, argv, "d:p:o:n:f", longopts, NULL)) != -1) {
        if (remote_opt(opt, &la->remote))
            continue;
        switch (opt) {
            case 'd':
                la->dir = optarg;
                break;
            case 'p':
                la->part = atoi(optarg);
                break;
            case 'o':
                la->from = strtoll(optarg, NULL, 10);
                break;
            case 'n':
                la->count = strtoll(optarg, NULL, 10);
                break;
            case 'f':
                la->follow = true;
                break;
            case 'F':
                la->from_text = optarg;
                break;
            default:
                usage(stderr);
                return 2;
        }
    }
    if (la->remote.token == NULL)
        la->remote.token = getenv("SLUICE_ADMIN_TOKEN");
    return 0;
}

/* sluice log replay ROUTE --from OFFSET|TIME --admin HOST:PORT */
static int log_replay(int argc, char **argv, const log_args *la)
{
    if (optind != argc - 1 || la->from_text == NULL || la->remote.addr == NULL) {
        fprintf(stderr, "sluice log replay: usage: sluice log replay ROUTE --from OFFSET|TIME "
                        "--admin HOST:PORT [--token T]\n");
        return 2;
    }
    return sl_log_remote_replay(&la->remote, argv[optind], la->from_text);
}

static int cmd_log(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *sub = argv[1];
    log_args la = {.dir = "./data", .part = -1, .count = -1, .remote = {.timeout_ms = 10000}};
    if (log_parse(argc, argv, &la) != 0)
        return 2;
    if (strcmp(sub, "verify") == 0)
        return log_verify(optind < argc ? argv[optind] : la.dir);
    if (strcmp(sub, "replay") == 0)
        return log_replay(argc, argv, &la);
    bool is_ls = strcmp(sub, "ls") == 0;
    bool is_dump = strcmp(sub, "dump") == 0;
    bool is_tail = strcmp(sub, "tail") == 0;
    if (!is_ls && !is_dump && !is_tail) {
        usage(stderr);
        return 2;
    }
    if (!is_ls && optind != argc - 1) {
        fprintf(stderr, "sluice log %s: name one TOPIC\n", sub);
        return 2;
    }
    if (la.follow && (!is_tail || la.remote.addr == NULL)) {
        fprintf(stderr, "sluice log: -f works with tail --admin HOST:PORT\n");
        return 2;
    }
    if (la.remote.addr != NULL)
        return is_ls ? sl_log_remote_ls(&la.remote)
                     : sl_log_remote_dump(&la.remote, argv[optind], la.part, la.from, la.count,
                                          is_tail, la.follow);
    return log_offline(la.dir, is_ls ? NULL : argv[optind], la.part, la.from, la.count, is_tail);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "check") == 0) {
        const char *path = config_arg(argc - 1, argv + 1);
        if (!path) {
            usage(stderr);
            return 2;
        }
        if (strcmp(cmd, "check") == 0)
            return cmd_check(path);
        return cmd_run(path);
    }
    if (strcmp(cmd, "log") == 0)
        return cmd_log(argc - 1, argv + 1);
    if (strcmp(cmd, "test") == 0)
        return sl_route_test_main(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0)
        return sl_config_doc_main(argc - 1, argv + 1, stdout);
    if (strcmp(cmd, "hash-password") == 0)
        return sl_password_main();
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cmd_version();
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "sluice: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
