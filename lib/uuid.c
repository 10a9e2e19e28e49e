/* UUID text form checks (see uuid.h): one copy for the AMQP and Kafka
 * inputs, which keep a source's message id when it is a UUID. */
#include "uuid.h"

static bool is_hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

bool sl_is_uuid(const char *s, size_t len)
{
    if (len != SL_UUID_TEXT_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash_place = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash_place ? s[i] != '-' : !is_hex_digit(s[i]))
            return false;
    }
    return true;
}
