/* libFuzzer target: the record decoder on arbitrary bytes (every record of
 * a buffer and its headers, as recovery scans a segment). */
#include <stddef.h>
#include <stdint.h>

#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        sl_record_view v;
        if (sl_record_decode(data + pos, size - pos, &v) != SL_REC_OK)
            break;
        const unsigned char *h = v.headers;
        for (uint32_t i = 0; i < v.n_headers; i++) {
            sl_header hd;
            h = sl_record_next_header(h, &hd);
        }
        if (v.size == 0)
            break;
        pos += v.size;
    }
    return 0;
}
