/* Rewind by timestamp on a Kafka-backed route: checks the brokers' answer
 * to offsets-for-times where it says "no record at or after the timestamp"
 * (-1). A real broker says so only when the partition's last record is
 * older; librdkafka's mock cluster says so for every timestamp. Reading
 * the last record tells the two apart; when the answer was wrong, the
 * partition is read from its start to the first record at or after the
 * timestamp (what offsets-for-times answers on a real cluster). */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "kafka_log.h"
#include "logging.h"

#define KT_SCAN_MS 10000 /* the most one partition's read may take */

void sl_kafka_log_reader_close(rd_kafka_t **rk)
{
    if (*rk == NULL)
        return;
    rd_kafka_consumer_close(*rk);
    rd_kafka_destroy(*rk);
    *rk = NULL;
}

rd_kafka_t *sl_kafka_log_reader(sl_log_backend *b, sl_kafka_client *cl, const char *purpose,
                                bool partition_eof, sl_error *err)
{
    rd_kafka_conf_t *conf = sl_kafka_conf_new(b->k, cl, err);
    if (!conf)
        return NULL;
    char group[300];
    snprintf(group, sizeof group, "%s.%s.%" PRId64, b->topic, purpose, sl_mono_us());
    if (sl_kafka_conf_apply_options(b->k, conf, err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.auto.commit", "false", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "enable.partition.eof", partition_eof ? "true" : "false",
                          err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "fetch.wait.max.ms", "50", err) < 0 ||
        sl_kafka_conf_set(b->k, conf, "group.id", group, err) < 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    char errstr[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        sl_error_set(err, SL_ECONFIG, "connector %s: %s: %s", b->k->name, cl->role, errstr);
        return NULL;
    }
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

rd_kafka_t *sl_kafka_log_read_all(sl_log_backend *b, sl_kafka_client *cl, const char *topic, int n,
                                  sl_error *err)
{
    rd_kafka_t *rk = sl_kafka_log_reader(b, cl, "reader", false, err);
    if (!rk)
        return NULL;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int p = 0; p < n; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        sl_error_set(err, SL_EIO, "connector %s: %s: %s", b->k->name, cl->role,
                     rd_kafka_err2str(e));
        rd_kafka_destroy(rk);
        return NULL;
    }
    return rk;
}

/* The offset of the first record of partition p in [from, hi) stamped at
 * or after ts, or hi when none is; -1 when it cannot be read in time. */
static int64_t kt_scan(rd_kafka_t *rk, const char *topic, int p, int64_t from, int64_t hi,
                       int64_t ts)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, p)->offset = from;
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int64_t found = -1, until = sl_mono_ms() + KT_SCAN_MS;
    while (!e && found < 0 && sl_mono_ms() < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        rd_kafka_timestamp_type_t tt;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
            found = hi;
        else if (!m->err && m->partition == p && rd_kafka_message_timestamp(m, &tt) >= ts)
            found = m->offset;
        else if (!m->err && m->partition == p && m->offset + 1 >= hi)
            found = hi;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(rk, NULL);
    return found;
}

/* Checks one partition's "none at or after ts" (*off == -1) by reading. */
static int kt_check(sl_log_backend *b, rd_kafka_t *rk, int p, int64_t ts, int64_t *off)
{
    int64_t lo = 0, hi = 0;
    if (rd_kafka_query_watermark_offsets(b->cons, b->topic, p, &lo, &hi, 5000) != 0)
        return -1;
    if (hi <= lo)
        return 0; /* empty: the end is right */
    int64_t last = kt_scan(rk, b->topic, p, hi - 1, hi, ts);
    if (last == hi)
        return 0; /* the last record is older: the broker was right */
    int64_t first = last < 0 ? -1 : kt_scan(rk, b->topic, p, lo, hi, ts);
    if (first < 0)
        return -1;
    sl_info(SL_KAFKA_COMPONENT,
            "connector %s (%s): partition %d: offsets-for-times said no record at or after "
            "the timestamp, reading found offset %" PRId64,
            b->k->name, b->ccl.role, p, first);
    *off = first;
    return 0;
}

int sl_kafka_log_times_check(sl_log_backend *b, rd_kafka_topic_partition_list_t *l, int64_t ts,
                             sl_error *err)
{
    bool any = false;
    for (int i = 0; i < l->cnt; i++)
        any |= l->elems[i].offset < 0;
    if (!any)
        return 0;
    sl_kafka_client cl = {.k = b->k};
    snprintf(cl.role, sizeof cl.role, "rewind reader of route %s", b->route->name);
    rd_kafka_t *rk = sl_kafka_log_reader(b, &cl, "time", true, err);
    if (!rk)
        return -1;
    int rc = 0;
    for (int i = 0; rc == 0 && i < l->cnt; i++) {
        if (l->elems[i].offset < 0 &&
            kt_check(b, rk, (int)l->elems[i].partition, ts, &l->elems[i].offset) < 0)
            rc = sl_error_set(err, SL_ETIMEOUT, "Kafka rewind of %s [%d]: cannot read it", b->topic,
                              (int)l->elems[i].partition);
    }
    sl_kafka_log_reader_close(&rk);
    return rc;
}
