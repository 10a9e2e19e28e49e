/* A route's log on a Kafka topic (`log: { connector: KAFKA, ... }`), shared
 * between its files: connectors/kafka_log.c (config, topic, the producer
 * inputs append through, delivery tickets, the backend table) and
 * connectors/kafka_log_consume.c (the consumer group whose partitions the
 * route's workers read and commit), connectors/kafka_log_reply.c (`reply:
 * sync` answers between gateways) and connectors/kafka_log_dlq.c (dead
 * letters to a Kafka topic). */
#ifndef SLUICE_KAFKA_LOG_H
#define SLUICE_KAFKA_LOG_H

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "kafka_internal.h"
#include "log_backend.h"

#define KL_TICKET_BUCKETS 1024

/* `log:` keys of a route on a kafka connector (sl_route_log_conf.priv). */
typedef struct sl_kafka_log_conf {
    char *topic;        /* default sluice.ROUTE */
    char *group;        /* default sluice.ROUTE */
    int partitions;     /* 0: the topic's count, or 1 when it is created */
    char *replies;      /* answers of `reply: sync` between gateways; default sluice.replies */
    char *dead_letters; /* default sluice.ROUTE.dlq */
    /* default TOPIC.idem (connectors/kafka_log_idem.c) */
    char *idem_topic;
    /* default TOPIC.status (connectors/kafka_log_status.c) */
    char *status_topic;
    /* the route's input keeps its source's messages until acknowledged:
     * appends wait for the cluster without a time limit (message.timeout.ms
     * 0 unless options: say otherwise), so an outage drops no message from
     * the middle of a partition */
    bool no_timeout;
} sl_kafka_log_conf;

/* One append waiting for its delivery report (sl_log_backend_type.append). */
typedef struct kl_ticket {
    int64_t id;
    bool done;      /* the report came */
    int64_t offset; /* its offset, when done without error */
    sl_error err;   /* its error, when done with one */
    bool failed;
    sl_durable_fn fn; /* registered by on_durable, or NULL */
    void *arg;
    struct kl_ticket *next;
} kl_ticket;

/* One partition of the topic as this gateway sees it. The consumer thread
 * pushes fetched messages; the partition's route worker reads and commits. */
typedef struct kl_part {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool assigned;          /* this gateway's share of the group now */
    bool revoking;          /* being given up: hand out nothing more */
    bool fresh;             /* assigned or rewound since the worker last read */
    bool busy;              /* the worker holds records read under read_gen */
    bool woken;             /* wake() called */
    bool fetch_paused;      /* fetching paused: the buffer is full */
    bool held;              /* fetching paused: the worker waits for a breaker (hold) */
    unsigned gen;           /* bumped on every assign, revoke and rewind */
    unsigned read_gen;      /* gen of the worker's last read that returned records */
    rd_kafka_message_t **q; /* fetched, not yet committed past: a ring */
    size_t head, n, cap;
    int64_t committed; /* the last committed next offset, or -1 */
    int64_t unsaved;   /* a delivered offset whose commit the group refused mid-rebalance,
                        * committed when the partition comes back to us; -1: none */
} kl_part;

typedef struct kl_idem kl_idem;     /* connectors/kafka_log_idem.c */
typedef struct kl_status kl_status; /* connectors/kafka_log_status.c */

/* The backend of one route (sl_log_backend). */
struct sl_log_backend {
    sl_kafka *k;
    const sl_route_conf *route;
    char *topic;
    char *group;
    int n_parts;
    sl_kafka_client pcl; /* the producer's opaque */
    sl_kafka_client ccl; /* the consumer's */
    rd_kafka_t *prod;
    rd_kafka_queue_t *topics_q; /* answers of the dead letter and replies topics' creation */
    rd_kafka_t *cons;
    pthread_t prod_thread, cons_thread;
    bool prod_running, cons_running;
    atomic_bool stop;
    atomic_bool stopped;
    atomic_bool cluster_down;     /* all brokers down and no delivery since */
    atomic_int_fast64_t probe_ms; /* when the last append was let through while down */
    pthread_mutex_t tmu;          /* the tickets */
    kl_ticket *tickets[KL_TICKET_BUCKETS];
    int64_t next_ticket;
    kl_part *parts;
    /* a rewind asked of the consumer thread (it alone moves positions) */
    pthread_mutex_t rmu;
    pthread_cond_t rcv;
    bool rewind_asked;
    int64_t rewind_offset, rewind_ts;
    int rewind_rc;
    sl_error rewind_err;
    struct kl_extra *extra; /* replies and dead letters (kafka_log_reply.c) */
    kl_idem *idem;          /* the shared Idempotency-Key store, once opened */
    kl_status *status;      /* the shared message status, once opened */
};

/* The table the kafka connector type points at (connectors/kafka_log.c). */
extern const sl_log_backend_type sl_kafka_log_backend;

/* The partition count of topic, 0 when it does not exist, or -1 with err.
 * Lists every topic through b's producer, which unlike naming it never asks
 * the brokers to auto-create it. */
int sl_kafka_log_topic_partitions(sl_log_backend *b, const char *topic, sl_error *err);

/* Creates topic with n partitions, the brokers' replication default and
 * configs (NULL, or NULL-terminated name, value pairs) through Kafka's
 * CreateTopics on b's producer; one that already exists is no error.
 * Returns 0 or -1 with err (connectors/kafka_log_topics.c). */
int sl_kafka_log_topic_create(sl_log_backend *b, const char *topic, int n,
                              const char *const *configs, sl_error *err);

/* Sends the CreateTopics of sl_kafka_log_topic_create without waiting: the
 * answer comes to q (topic, its opaque, must outlive it). Returns 0, or -1
 * when nothing was sent. */
int sl_kafka_log_topic_create_async(sl_log_backend *b, const char *topic, int n,
                                    const char *const *configs, rd_kafka_queue_t *q);

/* NULL when the CreateTopics answer ev says the topic was created or
 * exists, else why not. */
const char *sl_kafka_log_topic_created(rd_kafka_event_t *ev);

/* Creates topic as sl_kafka_log_topic_create when it does not exist.
 * Returns its partition count (> 0), or -1 with err. */
int sl_kafka_log_topic_ensure(sl_log_backend *b, const char *topic, int n,
                              const char *const *configs, sl_error *err);

/* Asks Kafka to create the dead letter and replies topics of b's route when
 * missing, with the log's partition count, without waiting (the answers
 * are logged by sl_kafka_log_topics_poll): the route starts whether or not
 * they can be created (they may be created otherwise). At open, once
 * b->n_parts is known. */
void sl_kafka_log_topics_extra(sl_log_backend *b);

/* Logs the answers of those creations that came (producer thread); with
 * final, also frees the queue they come to (at stop, after the thread). */
void sl_kafka_log_topics_poll(sl_log_backend *b, bool final);

/* Creates the consumer of b's group (not subscribed yet) and the partition
 * states. Returns 0 or -1 with err. */
int sl_kafka_log_consumer_new(sl_log_backend *b, sl_error *err);

/* Subscribes and starts the consumer thread. Returns 0 or -1 with err. */
int sl_kafka_log_consumer_start(sl_log_backend *b, sl_error *err);

/* Gives every partition up (the workers' last commits go through), leaves
 * the group and destroys the consumer. Idempotent. */
void sl_kafka_log_consumer_stop(sl_log_backend *b);

/* Frees the partition states (after stop). */
void sl_kafka_log_consumer_free(sl_log_backend *b);

/* The backend table's read, commit, wake, info and rewind (see
 * core/log_backend.h). */
int sl_kafka_log_read(sl_log_backend *b, int p, int64_t from, size_t max_records, sl_batch *out,
                      int timeout_ms, sl_error *err);
int sl_kafka_log_commit(sl_log_backend *b, int p, int64_t next, sl_error *err);
void sl_kafka_log_wake(sl_log_backend *b, int p);
void sl_kafka_log_info(sl_log_backend *b, int p, sl_log_backend_info *out);
void sl_kafka_log_hold(sl_log_backend *b, int p, bool held);
int sl_kafka_log_rewind(sl_log_backend *b, int64_t offset, int64_t timestamp_ms, sl_error *err);

/* Sets up (no threads, no connections) what replies and dead letters
 * need. Returns 0 or -1 with err. */
int sl_kafka_log_extra_new(sl_log_backend *b, sl_error *err);

/* Stops reading answers and sending replies and dead letters (what was
 * sent waits, bounded). Idempotent. */
void sl_kafka_log_extra_stop(sl_log_backend *b);

/* Frees it (after stop). */
void sl_kafka_log_extra_free(sl_log_backend *b);

/* Produces a record to topic with the replies' and dead letters' producer
 * (idempotent, acks=all), and when wait is set waits until Kafka has it.
 * Returns 0, or -1 with err. Thread-safe. */
int sl_kafka_log_extra_produce(sl_log_backend *b, const char *topic, const sl_record *rec,
                               bool wait, sl_error *err);

/* The backend table's reply_address, reply, dead_letter, dead_letter_topic. */
const char *sl_kafka_log_reply_address(sl_log_backend *b, sl_route_done_fn deliver, void *arg,
                                       sl_error *err);
void sl_kafka_log_reply(sl_log_backend *b, const char *address, const char *id,
                        const sl_route_outcome *o);
int sl_kafka_log_dead_letter(sl_log_backend *b, const sl_record *rec, sl_error *err);
const char *sl_kafka_log_dead_letter_topic(sl_log_backend *b);

/* The backend table's dlq_list and dlq_act (the admin API's dead letter
 * calls; connectors/kafka_log_admin.c). */
int sl_kafka_log_dlq_list(sl_log_backend *b, int64_t from, size_t limit, sl_dlq_entry **out,
                          size_t *n, int64_t *pending, sl_error *err);
int sl_kafka_log_dlq_act(sl_log_backend *b, const sl_dlq_select *sel, bool purge, const char *by,
                         sl_log_redrive_fn redrive, void *arg, size_t *count, size_t *refused,
                         sl_error *err);

/* The backend table's idem_open, idem_get and idem_put (core/log_backend.h;
 * connectors/kafka_log_idem.c). */
int sl_kafka_log_idem_open(sl_log_backend *b, uint64_t window_ms, sl_error *err);
int sl_kafka_log_idem_get(sl_log_backend *b, const char *key, size_t klen, char **val, size_t *len,
                          uint64_t *at_ms);
int sl_kafka_log_idem_put(sl_log_backend *b, const char *key, size_t klen, const char *val,
                          size_t len, sl_error *err);

/* A consumer of b's cluster that reads by assignment: a group.id of its
 * own (TOPIC.purpose.N), never joined, never committed; partition_eof turns
 * on the end-of-partition events. NULL with err. (kafka_log_time.c) */
rd_kafka_t *sl_kafka_log_reader(sl_log_backend *b, sl_kafka_client *cl, const char *purpose,
                                bool partition_eof, sl_error *err);

/* Leaves and frees the reader or consumer *rk (NULL: nothing) and sets it
 * to NULL. (kafka_log_time.c) */
void sl_kafka_log_reader_close(rd_kafka_t **rk);

/* A reader (sl_kafka_log_reader) assigned every partition of topic (n of
 * them) from the beginning: for the compacted topics every gateway reads in
 * full (Idempotency-Keys, message status). NULL with err. */
rd_kafka_t *sl_kafka_log_read_all(sl_log_backend *b, sl_kafka_client *cl, const char *topic, int n,
                                  sl_error *err);

/* Checks, by reading, the partitions of l for which offsets-for-times
 * answered -1 ("no record at or after ts"), and puts the first offset
 * stamped at or after ts there when the answer was wrong (librdkafka's
 * mock cluster answers -1 for every timestamp). connectors/kafka_log_time.c.
 * Returns 0 or -1 with err. Consumer thread. */
int sl_kafka_log_times_check(sl_log_backend *b, rd_kafka_topic_partition_list_t *l, int64_t ts,
                             sl_error *err);

/* Stops the store's consumer (idempotent); frees the store (after stop).
 * Both accept a backend without one. */
void sl_kafka_log_idem_stop(sl_log_backend *b);
void sl_kafka_log_idem_free(sl_log_backend *b);

/* The backend table's status_open and status_finished, and the stop and
 * free of what they started (connectors/kafka_log_status.c). */
int sl_kafka_log_status_open(sl_log_backend *b, sl_status *table, sl_error *err);
void sl_kafka_log_status_finished(sl_log_backend *b, const sl_msg_status *st);
void sl_kafka_log_status_stop(sl_log_backend *b);
void sl_kafka_log_status_free(sl_log_backend *b);

#endif
