/* strtab.h — an append-only string interning table: one writer thread, many readers.
 *
 * Strings get dense ids 0, 1, 2... in the order they are first seen and are
 * never removed or moved. Only the writer thread may call
 * tally__strtab_intern(); its hash index is private to that thread. Any
 * thread may call tally__strtab_get() for an id that reached it through a
 * synchronising hand-off (a ring, a lock): the slot for an id is published
 * with a release store after the string bytes are written, and read with an
 * acquire load, so a reader never sees a half-written string.
 */
#ifndef TALLY_STRTAB_H
#define TALLY_STRTAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct tally__strtab tally__strtab_t;

/** @brief Create an empty table. @return 0 or -ENOMEM. */
int tally__strtab_create(tally__strtab_t **out);

/** @brief Free the table and every string in it. No reader may be active. */
void tally__strtab_destroy(tally__strtab_t *t);

/**
 * @brief Find or add s[0..len). Writer thread only.
 * @param[out] id the string's id.
 * @return 0 when it existed, 1 when it was added, -ENOMEM, or TALLY_EFULL
 *         at 2^28 - 1 strings.
 */
int tally__strtab_intern(tally__strtab_t *t, const void *s, uint32_t len, uint32_t *id);

/**
 * @brief Look s[0..len) up without adding it. Writer thread only (it reads
 *        the private index).
 * @return 1 with *id set when present, 0 when not.
 */
int tally__strtab_find(const tally__strtab_t *t, const void *s, uint32_t len, uint32_t *id);

/**
 * @brief The string of an id; NUL-terminated, valid until destroy.
 * @param[out] len may be NULL.
 */
const char *tally__strtab_get(const tally__strtab_t *t, uint32_t id, uint32_t *len);

/** @brief How many strings the table holds (approximate for readers). */
uint32_t tally__strtab_count(const tally__strtab_t *t);

/** @brief Bytes the table holds on the heap, for /metrics and benchmarks. */
size_t tally__strtab_bytes(const tally__strtab_t *t);


#endif
