/* Password hashes with libxcrypt's crypt(3): yescrypt for new hashes, any
 * salted method libxcrypt knows for checking, compared in constant time. */
#include "password.h"

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

int sl_password_hash(const char *pw, char *out, size_t cap)
{
    char salt[CRYPT_GENSALT_OUTPUT_SIZE];
    struct crypt_data cd;
    if (crypt_gensalt_rn("$y$", 0, NULL, 0, salt, sizeof salt) == NULL)
        return -1;
    memset(&cd, 0, sizeof cd);
    const char *h = crypt_rn(pw, salt, &cd, sizeof cd);
    if (h == NULL || h[0] == '*' || strlen(h) >= cap) {
        explicit_bzero(&cd, sizeof cd);
        return -1;
    }
    snprintf(out, cap, "%s", h);
    explicit_bzero(&cd, sizeof cd);
    return 0;
}

bool sl_password_check(const char *pw, const char *hash)
{
    struct crypt_data *cd = calloc(1, sizeof *cd);
    if (cd == NULL)
        return false;
    const char *h = crypt_rn(pw, hash, cd, sizeof *cd);
    bool ok = h != NULL && h[0] != '*' && sl_ct_equal(h, strlen(h), hash, strlen(hash));
    explicit_bzero(cd, sizeof *cd);
    free(cd);
    return ok;
}

bool sl_password_hash_valid(const char *hash)
{
    static const char *const PREFIXES[] = {"$y$",  "$gy$", "$7$", "$2b$",
                                           "$2y$", "$6$",  "$5$", NULL};
    for (int i = 0; PREFIXES[i] != NULL; i++)
        if (strncmp(hash, PREFIXES[i], strlen(PREFIXES[i])) == 0)
            return crypt_checksalt(hash) == CRYPT_SALT_OK;
    return false;
}

int sl_password_main(void)
{
    char line[1024];
    if (fgets(line, sizeof line, stdin) == NULL) {
        fprintf(stderr, "sluice hash-password: reads the password from stdin (one line)\n");
        return 2;
    }
    line[strcspn(line, "\r\n")] = '\0';
    if (line[0] == '\0') {
        fprintf(stderr, "sluice hash-password: empty password\n");
        return 2;
    }
    char hash[256];
    int rc = sl_password_hash(line, hash, sizeof hash);
    explicit_bzero(line, sizeof line);
    if (rc != 0) {
        fprintf(stderr, "sluice hash-password: cannot hash (libxcrypt)\n");
        return 1;
    }
    printf("%s\n", hash);
    return 0;
}
