/* Digests, HMAC, constant-time comparison, base64 and random bytes for the
 * edge (webhook signatures, credentials) and Lua's crypto module. Backed by
 * GnuTLS, the library libmicrohttpd already uses for TLS: one crypto
 * library in the whole gateway, no hand-written primitives. */
#ifndef SLUICE_LIB_CRYPTO_H
#define SLUICE_LIB_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hex.h"

typedef enum { SL_DIGEST_SHA1, SL_DIGEST_SHA256, SL_DIGEST_SHA512 } sl_digest;

/* Enough room for the longest digest (SHA-512). */
#define SL_DIGEST_MAX 64

/* Parses "sha1", "sha256" or "sha512" (exact, lowercase) into *out:
 * 0, or -1 for any other name (then *out is untouched). */
int sl_digest_parse(const char *name, sl_digest *out);

/* The lowercase name of d, as sl_digest_parse reads it. */
const char *sl_digest_name(sl_digest d);

/* The length in bytes of d's output: 20, 32 or 64. */
size_t sl_digest_len(sl_digest d);

/* HMAC-d of data under key: writes sl_digest_len(d) bytes to out.
 * Returns 0, or -1 when the library refuses (never in practice). */
int sl_hmac(sl_digest d, const void *key, size_t klen, const void *data, size_t dlen,
            uint8_t out[SL_DIGEST_MAX]);

/* The plain digest d of data: writes sl_digest_len(d) bytes to out; 0 or -1. */
int sl_hash(sl_digest d, const void *data, size_t len, uint8_t out[SL_DIGEST_MAX]);

/* True when a and b hold the same bytes. The time taken depends only on the
 * two lengths, never on the content: for comparing secrets (tokens, keys,
 * signatures) with what a caller sent. */
bool sl_ct_equal(const void *a, size_t alen, const void *b, size_t blen);

/* Standard base64 (RFC 4648, with padding) of len bytes: a malloc'd,
 * NUL-terminated string, or NULL when out of memory. */
char *sl_base64_encode(const void *data, size_t len);

/* Decodes standard base64 (padding optional; no whitespace) of len chars
 * at s into a malloc'd buffer *out of *olen bytes (NUL-terminated past the
 * end for convenience). Returns 0, or -1 on a character outside the
 * alphabet, a misplaced '=', impossible length, or out of memory (then *out
 * is NULL). */
int sl_base64_decode(const char *s, size_t len, uint8_t **out, size_t *olen);

/* Fills buf with len cryptographically random bytes: 0, or -1. */
int sl_random(void *buf, size_t len);

#endif
