/* FNV-1a, 64-bit: the one non-cryptographic hash of the project (partition
 * choice by key, hash tables of metrics, status, idempotency keys, HTTP
 * batching). Fast and stable across runs and builds; never for secrets. */
#ifndef SLUICE_LIB_FNV_H
#define SLUICE_LIB_FNV_H

#include <stddef.h>
#include <stdint.h>

/* The offset basis Sluice has always used. It is NOT the published FNV
 * basis (14695981039346656037, 0xcbf29ce484222325): the first copy lost the
 * last digit and every later copy kept it. Keys are mapped to partitions by
 * this hash, so changing it would move keys of existing logs to other
 * partitions and break their order: it stays. The algorithm (xor, then
 * multiply by the FNV prime) is FNV-1a's. */
#define SL_FNV1A64_INIT 1469598103934665603ULL

/* Folds n bytes of data into the running hash h (start with SL_FNV1A64_INIT)
 * and returns the new hash, so that several pieces hash as one text. */
uint64_t sl_fnv1a64_add(uint64_t h, const void *data, size_t n);

/* The FNV-1a 64-bit hash of data[0..n) from SL_FNV1A64_INIT.
 * sl_fnv1a64("", 0) is that basis. Partition numbers are derived from it:
 * it must never change. */
uint64_t sl_fnv1a64(const void *data, size_t n);

/* The hash of the NUL-terminated string s (without the NUL). */
uint64_t sl_fnv1a64_str(const char *s);

#endif
