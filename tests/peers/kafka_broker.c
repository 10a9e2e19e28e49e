/* A real Kafka-protocol peer for the Kafka connector's tests and benchmark:
 * librdkafka's mock cluster (N brokers on loopback TCP) in a small process
 * that prints `BOOTSTRAP host:port,...` first, then obeys commands on stdin.
 *
 * Usage: kafka_broker [-n BROKERS] (default 1). Commands, one per line, each
 * answered with `ok` or `error ...` on stdout:
 *   create TOPIC PARTITIONS      creates a topic (replication min(3, N))
 *   down BROKER_ID               closes the broker's connections, refuses new ones
 *   up BROKER_ID                 lets it accept connections again
 *   errors APIKEY ERRCODE COUNT  the next COUNT requests of APIKEY fail with ERRCODE
 *   rtt BROKER_ID MS             adds MS of latency to the broker's responses
 *   quit                         exits (so does end of input, or SIGTERM) */
#include <errno.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses a whole decimal integer in [lo, hi]. Returns 0 or -1. */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static void answer_err(rd_kafka_resp_err_t e)
{
    if (e)
        printf("error %s\n", rd_kafka_err2str(e));
    else
        printf("ok\n");
}

/* Runs one command line (already split into argv). Returns 1 on quit. */
static int run_command(rd_kafka_mock_cluster_t *mc, int argc, char **argv)
{
    long a, b, c;
    if (argc == 0) {
        printf("error empty command\n");
    } else if (strcmp(argv[0], "quit") == 0) {
        printf("ok\n");
        return 1;
    } else if (strcmp(argv[0], "create") == 0 && argc == 3 &&
               parse_long(argv[2], 1, 100000, &a) == 0) {
        answer_err(rd_kafka_mock_topic_create(mc, argv[1], (int)a, -1));
    } else if ((strcmp(argv[0], "down") == 0 || strcmp(argv[0], "up") == 0) && argc == 2 &&
               parse_long(argv[1], 0, 1000000, &a) == 0) {
        answer_err(argv[0][0] == 'd' ? rd_kafka_mock_broker_set_down(mc, (int32_t)a)
                                     : rd_kafka_mock_broker_set_up(mc, (int32_t)a));
    } else if (strcmp(argv[0], "rtt") == 0 && argc == 3 &&
               parse_long(argv[1], 0, 1000000, &a) == 0 &&
               parse_long(argv[2], 0, 600000, &b) == 0) {
        answer_err(rd_kafka_mock_broker_set_rtt(mc, (int32_t)a, (int)b));
    } else if (strcmp(argv[0], "errors") == 0 && argc == 4 &&
               parse_long(argv[1], 0, 32767, &a) == 0 &&
               parse_long(argv[2], -32768, 32767, &b) == 0 &&
               parse_long(argv[3], 1, 1000000, &c) == 0) {
        rd_kafka_resp_err_t *errs = malloc((size_t)c * sizeof *errs);
        if (!errs) {
            printf("error out of memory\n");
        } else {
            for (long i = 0; i < c; i++)
                errs[i] = (rd_kafka_resp_err_t)b;
            rd_kafka_mock_push_request_errors_array(mc, (int16_t)a, (size_t)c, errs);
            free(errs);
            printf("ok\n");
        }
    } else {
        printf("error unknown command or bad arguments: %s (want create TOPIC PARTITIONS | "
               "down ID | up ID | errors APIKEY ERRCODE COUNT | rtt ID MS | quit)\n",
               argv[0]);
    }
    return 0;
}

int main(int argc, char **argv)
{
    long brokers = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc &&
            parse_long(argv[i + 1], 1, 16, &brokers) == 0) {
            i++;
        } else {
            fprintf(stderr, "usage: kafka_broker [-n BROKERS(1..16)]\n");
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);

    /* The mock cluster needs a handle for its logging and its thread; a
     * producer with no bootstrap servers never connects anywhere. */
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kafka_broker: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kafka_broker: rd_kafka_new: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, (int)brokers);
    if (!mc) {
        fprintf(stderr, "kafka_broker: cannot create the mock cluster\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    printf("BOOTSTRAP %s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);

    char line[4096];
    int quit = 0;
    while (!quit && fgets(line, sizeof line, stdin)) {
        char *args[8];
        int n = 0;
        char *save = NULL;
        for (char *tok = strtok_r(line, " \t\r\n", &save); tok && n < 8;
             tok = strtok_r(NULL, " \t\r\n", &save))
            args[n++] = tok;
        quit = run_command(mc, n, args);
        fflush(stdout);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    rd_kafka_wait_destroyed(5000);
    return 0;
}
