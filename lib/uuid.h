/* UUID text checks shared by the input connectors that take a message id
 * from the source (AMQP message-id, Kafka header): pure, no allocation. */
#ifndef SLUICE_LIB_UUID_H
#define SLUICE_LIB_UUID_H

#include <stdbool.h>
#include <stddef.h>

#define SL_UUID_TEXT_LEN 36 /* 8-4-4-4-12 hex digits and dashes, no NUL */

/* True when s (len bytes, not necessarily NUL-terminated) is a UUID in its
 * 8-4-4-4-12 text form: exactly 36 bytes, dashes at 8, 13, 18 and 23, hex
 * digits of either case elsewhere. The version and variant are not checked. */
bool sl_is_uuid(const char *s, size_t len);

#endif
