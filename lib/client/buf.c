/* buf.c — the growable byte buffer and the array-growth rule (buf.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "buf.h"

int
tally__grow(void **arr, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : (first ? first : 1);
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2)
            return -1;
        ncap *= 2;
    }
    if (elem && ncap > SIZE_MAX / elem)
        return -1;
    void *p = realloc(*arr, ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

int
tally__grow32(void **arr, uint32_t *cap, uint32_t need, size_t elem, uint32_t first)
{
    size_t c = *cap;
    if (tally__grow(arr, &c, need, elem, first) != 0)
        return -1;
    /* A doubling may pass UINT32_MAX; the caller's counter then under-states
     * the allocation, which is harmless. */
    *cap = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
    return 0;
}

int
tally__buf_grow(tally__buf_t *b, size_t n)
{
    if (b->err)
        return -1;
    size_t need = b->len + n + 1;
    if (need < b->len) { /* n so large the sum wrapped */
        b->err = 1;
        return -1;
    }
    /* 1 KiB first: a JSON answer or a /metrics page rarely needs a second
     * allocation after a few doublings. */
    if (tally__grow((void **)&b->p, &b->cap, need, 1, 1024) != 0) {
        b->err = 1;
        return -1;
    }
    return 0;
}

void
tally__buf_printf(tally__buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (int tries = 0; tries < 2 && !b->err; tries++) {
        size_t room = b->cap > b->len ? b->cap - b->len : 0;
        va_start(ap, fmt);
        int n = vsnprintf(room ? b->p + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->err = 1;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        if (tally__buf_reserve(b, (size_t)n) != 0)
            return;
    }
}

char *
tally__buf_take(tally__buf_t *b, size_t *len)
{
    if (!b->err && !b->p)
        tally__buf_reserve(b, 0);
    char *p = b->err ? NULL : b->p;
    if (p)
        p[b->len] = '\0'; /* reserve() always left room for it */
    if (len)
        *len = p ? b->len : 0;
    if (!p)
        free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
    return p;
}

void
tally__buf_free(tally__buf_t *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    b->err = 0;
}
