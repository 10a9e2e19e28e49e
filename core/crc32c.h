/* CRC32C (Castagnoli), the checksum of every event log record.
 * Uses the SSE4.2 crc32 instruction when the CPU has it, and a
 * slicing-by-8 table otherwise; both give identical results. */
#ifndef SLUICE_CRC32C_H
#define SLUICE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Returns the CRC32C of len bytes at data, continuing from crc: pass 0 to
 * start, and the previous result to chain (sl_crc32c(sl_crc32c(0, a, n), b,
 * m) equals the CRC of a followed by b). data may be NULL when len is 0.
 * Thread-safe; cannot fail. */
uint32_t sl_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable slicing-by-8 implementation, same contract as sl_crc32c.
 * Exposed so that tests can check both paths. */
uint32_t sl_crc32c_sw(uint32_t crc, const void *data, size_t len);

/* The SSE4.2 implementation, same contract as sl_crc32c. Only call it when
 * sl_crc32c_hw_available() returns 1 (it would fault otherwise). */
uint32_t sl_crc32c_hw(uint32_t crc, const void *data, size_t len);

/* Returns 1 when the CPU supports the SSE4.2 crc32 instruction, else 0. */
int sl_crc32c_hw_available(void);

#endif
