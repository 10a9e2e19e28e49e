/* The connector registry: every connector type built into sluice, which core
 * looks up by the config `type:` (core/connector.h). A new connector is one
 * new file in connectors/ and one line here. */
#include "connector.h"

extern const sl_connector_type sl_http_server_connector;
extern const sl_connector_type sl_http_client_connector;
extern const sl_connector_type sl_file_connector;
extern const sl_connector_type sl_stdout_connector;
extern const sl_connector_type sl_amqp_connector;
extern const sl_connector_type sl_kafka_connector;

/* one line per entry; NULL ends the list */
/* clang-format off */
const sl_connector_type *const sl_connector_registry[] = {
    &sl_http_server_connector,
    &sl_http_client_connector,
    &sl_file_connector,
    &sl_stdout_connector,
    &sl_amqp_connector,
    &sl_kafka_connector,
    NULL,
};
/* clang-format on */
