/* Digests, HMAC, constant-time comparison, base64 and random bytes (see
 * crypto.h), through GnuTLS's crypto API. */
#include "crypto.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    size_t len;
    gnutls_mac_algorithm_t mac;
    gnutls_digest_algorithm_t dig;
} DIGESTS[] = {
    [SL_DIGEST_SHA1] = {"sha1", 20, GNUTLS_MAC_SHA1, GNUTLS_DIG_SHA1},
    [SL_DIGEST_SHA256] = {"sha256", 32, GNUTLS_MAC_SHA256, GNUTLS_DIG_SHA256},
    [SL_DIGEST_SHA512] = {"sha512", 64, GNUTLS_MAC_SHA512, GNUTLS_DIG_SHA512},
};

int sl_digest_parse(const char *name, sl_digest *out)
{
    for (size_t i = 0; i < sizeof DIGESTS / sizeof DIGESTS[0]; i++) {
        if (strcmp(name, DIGESTS[i].name) == 0) {
            *out = (sl_digest)i;
            return 0;
        }
    }
    return -1;
}

const char *sl_digest_name(sl_digest d)
{
    return DIGESTS[d].name;
}

size_t sl_digest_len(sl_digest d)
{
    return DIGESTS[d].len;
}

int sl_hmac(sl_digest d, const void *key, size_t klen, const void *data, size_t dlen,
            uint8_t out[SL_DIGEST_MAX])
{
    return gnutls_hmac_fast(DIGESTS[d].mac, key, klen, data, dlen, out) == 0 ? 0 : -1;
}

int sl_hash(sl_digest d, const void *data, size_t len, uint8_t out[SL_DIGEST_MAX])
{
    return gnutls_hash_fast(DIGESTS[d].dig, data, len, out) == 0 ? 0 : -1;
}

bool sl_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    /* Walk the longer length, reading within each buffer, so the time is
     * a function of the lengths only. */
    const volatile uint8_t *pa = a, *pb = b;
    size_t n = alen > blen ? alen : blen;
    uint8_t diff = alen != blen;
    for (size_t i = 0; i < n; i++) {
        uint8_t x = alen ? pa[i % alen] : 0;
        uint8_t y = blen ? pb[i % blen] : 0;
        diff |= (uint8_t)(x ^ y);
    }
    return diff == 0;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *sl_base64_encode(const void *data, size_t len)
{
    const uint8_t *p = data;
    char *out = malloc((len + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < len)
            v |= p[i + 2];
        *o++ = B64[v >> 18 & 63];
        *o++ = B64[v >> 12 & 63];
        *o++ = i + 1 < len ? B64[v >> 6 & 63] : '=';
        *o++ = i + 2 < len ? B64[v & 63] : '=';
    }
    *o = '\0';
    return out;
}

static int b64_value(char c)
{
    const char *at = c ? strchr(B64, c) : NULL;
    return at ? (int)(at - B64) : -1;
}

int sl_base64_decode(const char *s, size_t len, uint8_t **out, size_t *olen)
{
    *out = NULL;
    size_t pad = 0;
    while (pad < 2 && len > pad && s[len - 1 - pad] == '=')
        pad++;
    size_t n = len - pad; /* data characters */
    if ((pad && len % 4) || n % 4 == 1)
        return -1;
    uint8_t *buf = malloc(n / 4 * 3 + 3);
    if (!buf)
        return -1;
    size_t o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        if (i % 4 == 3) {
            buf[o++] = (uint8_t)(acc >> 16);
            buf[o++] = (uint8_t)(acc >> 8);
            buf[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) {
        buf[o++] = (uint8_t)(acc >> 4);
    } else if (n % 4 == 3) {
        buf[o++] = (uint8_t)(acc >> 10);
        buf[o++] = (uint8_t)(acc >> 2);
    }
    buf[o] = '\0';
    *out = buf;
    *olen = o;
    return 0;
}

int sl_random(void *buf, size_t len)
{
    return gnutls_rnd(GNUTLS_RND_KEY, buf, len) == 0 ? 0 : -1;
}
