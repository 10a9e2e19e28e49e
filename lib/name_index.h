/* An index over an array of records whose first member is a name (a
 * `const char *`): open addressing on FNV-1a, so that finding duplicates
 * or looking names up is linear in the array instead of quadratic. The
 * index holds positions only; the caller owns and grows the array. */
#ifndef SLUICE_LIB_NAME_INDEX_H
#define SLUICE_LIB_NAME_INDEX_H

#include <stdbool.h>
#include <stddef.h>

typedef struct sl_name_index {
    size_t *slot; /* record position + 1; 0 is empty */
    size_t mask;  /* number of slots - 1 (a power of two); 0 while empty */
} sl_name_index;

/* Returns the position of the record named name in base (records of
 * stride bytes), or -1 when none is indexed. */
long sl_name_index_find(const sl_name_index *ix, const void *base, size_t stride, const char *name);

/* Indexes record pos of base (every record before pos already indexed,
 * its name not among them). Returns false when out of memory (the index
 * is unchanged). */
bool sl_name_index_add(sl_name_index *ix, const void *base, size_t stride, size_t pos);

/* Frees the index and resets it to empty. */
void sl_name_index_free(sl_name_index *ix);

#endif
