/* Dead letters of a route whose log is a Kafka topic: the route worker that
 * gives a message up appends it (the original body and key, the failure in
 * x-sluice-* headers, as the embedded log's dead letters carry them) to the
 * log's dead letter topic (`dead_letters:`, default sluice.ROUTE.dlq) and
 * waits for Kafka's acknowledgement before the message's offset is
 * committed. */
#include "kafka_log.h"

int sl_kafka_log_dead_letter(sl_log_backend *b, const sl_record *rec, sl_error *err)
{
    return sl_kafka_log_extra_produce(b, sl_kafka_log_dead_letter_topic(b), rec, true, err);
}
