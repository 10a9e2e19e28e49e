/* CRC32C (Castagnoli) for the event log's record checksums: see crc32c.h.
 * The hardware path runs three bytes per cycle or better with SSE4.2; the
 * table path is slicing-by-8 over tables built once at first use. */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define SL_CRC32C_X86 1
#endif

#define CRC32C_POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = crc_table[0][n];
        for (int k = 1; k < 8; k++) {
            c = crc_table[0][c & 0xff] ^ (c >> 8);
            crc_table[k][n] = c;
        }
    }
}

uint32_t sl_crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    pthread_once(&crc_table_once, crc_table_build);
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        len--;
    }
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w ^= crc;
        crc = crc_table[7][w & 0xff] ^ crc_table[6][(w >> 8) & 0xff] ^
              crc_table[5][(w >> 16) & 0xff] ^ crc_table[4][(w >> 24) & 0xff] ^
              crc_table[3][(w >> 32) & 0xff] ^ crc_table[2][(w >> 40) & 0xff] ^
              crc_table[1][(w >> 48) & 0xff] ^ crc_table[0][w >> 56];
        p += 8;
        len -= 8;
    }
#endif
    while (len--)
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

#ifdef SL_CRC32C_X86
__attribute__((target("sse4.2"))) uint32_t sl_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t c = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        c = _mm_crc32_u8((uint32_t)c, *p++);
        len--;
    }
#ifdef __x86_64__
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
        p += 8;
        len -= 8;
    }
#endif
    while (len >= 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        c = _mm_crc32_u32((uint32_t)c, w);
        p += 4;
        len -= 4;
    }
    while (len--)
        c = _mm_crc32_u8((uint32_t)c, *p++);
    return ~(uint32_t)c;
}

int sl_crc32c_hw_available(void)
{
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#else
uint32_t sl_crc32c_hw(uint32_t crc, const void *data, size_t len)
{
    return sl_crc32c_sw(crc, data, len);
}

int sl_crc32c_hw_available(void)
{
    return 0;
}
#endif

uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len)
{
    /* always false only in the non-x86 build, where cppcheck also looks */
    // cppcheck-suppress knownConditionTrueFalse
    if (sl_crc32c_hw_available())
        return sl_crc32c_hw(crc, data, len);
    return sl_crc32c_sw(crc, data, len);
}
