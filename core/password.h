/* Password hashes for `basic` authentication: crypt(3) from libxcrypt
 * (yescrypt by default: salted and deliberately slow), and the
 * `sluice hash-password` command that prints one. */
#ifndef SLUICE_PASSWORD_H
#define SLUICE_PASSWORD_H

#include <stdbool.h>
#include <stddef.h>

/* Hashes pw with a fresh random salt (yescrypt) into out (cap >= 128).
 * Returns 0, or -1 when the hash cannot be made. */
int sl_password_hash(const char *pw, char *out, size_t cap);

/* True when pw matches hash (any crypt(3) method libxcrypt knows: $y$,
 * $6$, $5$, $2b$); the final comparison is constant-time. */
bool sl_password_check(const char *pw, const char *hash);

/* True when hash looks like a crypt(3) hash of a salted method (not plain
 * text, not DES). */
bool sl_password_hash_valid(const char *hash);

/* `sluice hash-password`: reads a password (one line) from stdin, prints
 * its hash. Returns the exit code. */
int sl_password_main(void);

#endif
