/* buf.h — the one growable byte buffer and the one array-growth rule of tally.
 *
 * Every module that builds text or bytes (the wire encoder, the JSON writer,
 * the /metrics writer, request parsers) and every table that grows an array
 * uses these, so the growth policy and its overflow checks live in one place.
 * It sits in the lowest layer (lib/client) because the client's encoder needs
 * it too; libtally.so does not export it (hidden visibility).
 *
 * Errors are sticky: a buffer whose growth failed keeps err = 1, ignores every
 * later write and reports the failure once, where its owner takes the result.
 */
#ifndef TALLY_BUF_H
#define TALLY_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct tally__buf {
    char *p;         /**< the bytes, NUL-terminated after every write */
    size_t len, cap; /**< bytes written; bytes allocated */
    int err;         /**< 1 once an allocation failed (sticky) */
} tally__buf_t;

/**
 * @brief Grow *arr (elements of elem bytes, *cap of them) so that it holds at
 *        least need elements: the capacity doubles from first (or from *cap),
 *        so n appends cost O(n) copies in all.
 * @return 0, or -1 (arr and cap unchanged) when memory ran out or
 *         need * elem overflows size_t.
 */
int tally__grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first);

/** @brief tally__grow() for tables that count in uint32_t (need <= UINT32_MAX). */
int tally__grow32(void **arr, uint32_t *cap, uint32_t need, size_t elem, uint32_t first);

/** @brief Make room for n more bytes and the NUL (slow path of tally__buf_reserve()).
 *  @return 0, or -1 with b->err set. */
int tally__buf_grow(tally__buf_t *b, size_t n);

/** @brief Make room for n more bytes and the NUL. @return 0, or -1 (b->err set). */
static inline int
tally__buf_reserve(tally__buf_t *b, size_t n)
{
    if (__builtin_expect(!b->err && b->len + n + 1 <= b->cap && b->len + n >= b->len, 1))
        return 0;
    return tally__buf_grow(b, n);
}

/** @brief Append n bytes of s (nothing after an earlier failure). */
static inline void
tally__buf_put(tally__buf_t *b, const void *s, size_t n)
{
    if (tally__buf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

/** @brief Append a NUL-terminated string. */
static inline void
tally__buf_puts(tally__buf_t *b, const char *s)
{
    tally__buf_put(b, s, strlen(s));
}

/** @brief Append printf-style text. */
void tally__buf_printf(tally__buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * @brief Hand the bytes to the caller and leave b empty (reusable).
 * @return the NUL-terminated bytes (caller frees; "" allocated when nothing
 *         was written), or NULL when any growth failed; *len gets their length.
 */
char *tally__buf_take(tally__buf_t *b, size_t *len);

/** @brief Free the bytes and leave b empty. */
void tally__buf_free(tally__buf_t *b);

#endif
