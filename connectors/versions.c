/* The versions of the libraries connectors/ links (libcurl, libmicrohttpd,
 * librdkafka, rabbitmq-c), for `sluice version` (core/version.h): core prints
 * them without including their headers. */
#include "version.h"

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>

#if defined(__has_include) && __has_include(<rabbitmq-c/amqp.h>)
#include <rabbitmq-c/amqp.h>
#else
#include <amqp.h>
#endif

const sl_lib_version *sl_connectors_lib_versions(void)
{
    static sl_lib_version v[5];
    v[0] = (sl_lib_version){"libcurl", curl_version()};
    v[1] = (sl_lib_version){"libmicrohttpd", MHD_get_version()};
    v[2] = (sl_lib_version){"librdkafka", rd_kafka_version_str()};
    v[3] = (sl_lib_version){"rabbitmq-c", amqp_version()};
    v[4] = (sl_lib_version){NULL, NULL};
    return v;
}
