/* The connector registry: maps a config `type:` to the connector's table of
 * functions. A new connector is one new file and one line here. */
#include "connector.h"

#include <stdio.h>
#include <string.h>

extern const sl_connector_type sl_http_server_connector;
extern const sl_connector_type sl_http_client_connector;
extern const sl_connector_type sl_file_connector;
extern const sl_connector_type sl_stdout_connector;
extern const sl_connector_type sl_amqp_connector;
extern const sl_connector_type sl_kafka_connector;

/* one line per entry */
/* clang-format off */
static const sl_connector_type *const registry[] = {
    &sl_http_server_connector,
    &sl_http_client_connector,
    &sl_file_connector,
    &sl_stdout_connector,
    &sl_amqp_connector,
    &sl_kafka_connector,
};
/* clang-format on */

const sl_connector_type *sl_connector_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; i++) {
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    }
    return NULL;
}

void sl_send_result_set(sl_send_result *r, sl_result res, int status, const char *fmt, ...)
{
    r->result = res;
    r->status = status;
    r->held_back = false;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->error, sizeof r->error, fmt, ap);
        va_end(ap);
    } else {
        r->error[0] = '\0';
    }
}
