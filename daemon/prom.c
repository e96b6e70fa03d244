/* prom.c — Prometheus text exposition builder (prom.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prom.h"

void
tally_prom_init(tally_prom_t *p)
{
    memset(p, 0, sizeof *p);
}

static int
grow(tally_prom_t *p, size_t n)
{
    if (p->err)
        return -1;
    size_t ncap = p->cap ? p->cap * 2 : 16384;
    while (ncap < p->len + n + 1)
        ncap *= 2;
    char *np = realloc(p->p, ncap);
    if (!np) {
        p->err = 1;
        return -1;
    }
    p->p = np;
    p->cap = ncap;
    return 0;
}

static inline void
put(tally_prom_t *p, const char *s, size_t n)
{
    if (p->len + n + 1 > p->cap && grow(p, n))
        return;
    memcpy(p->p + p->len, s, n);
    p->len += n;
}

static inline void
puts_(tally_prom_t *p, const char *s)
{
    put(p, s, strlen(s));
}

void
tally_prom_family(tally_prom_t *p, const char *name, const char *type, const char *help)
{
    puts_(p, "# HELP ");
    puts_(p, name);
    put(p, " ", 1);
    puts_(p, help);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    put(p, " ", 1);
    puts_(p, type);
    put(p, "\n", 1);
}

static void
head(tally_prom_t *p, const char *name, const char *k1, const char *v1, const char *k2,
     const char *v2)
{
    puts_(p, name);
    if (k1) {
        put(p, "{", 1);
        puts_(p, k1);
        put(p, "=\"", 2);
        puts_(p, v1);
        put(p, "\"", 1);
        if (k2) {
            put(p, ",", 1);
            puts_(p, k2);
            put(p, "=\"", 2);
            puts_(p, v2);
            put(p, "\"", 1);
        }
        put(p, "}", 1);
    }
    put(p, " ", 1);
}

/* Decimal digits of v ending at end (exclusive); returns the start. */
static char *
u64_digits(char *end, uint64_t v)
{
    char *s = end;
    do {
        *--s = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return s;
}

void
tally_prom_u64(tally_prom_t *p, const char *name, const char *k1, const char *v1, const char *k2,
               const char *v2, uint64_t v)
{
    char buf[24], *e = buf + sizeof buf;
    e[-1] = '\n';
    char *s = u64_digits(e - 1, v);
    head(p, name, k1, v1, k2, v2);
    put(p, s, (size_t)(e - s));
}

void
tally_prom_double(tally_prom_t *p, const char *name, const char *k1, const char *v1, const char *k2,
                  const char *v2, double v)
{
    char buf[40];
    head(p, name, k1, v1, k2, v2);
    if (v == (double)(int64_t)v && v > -9.2e18 && v < 9.2e18) {
        /* whole numbers (most gauges) without printf's float machinery */
        int64_t iv = (int64_t)v;
        char *e = buf + sizeof buf;
        e[-1] = '\n';
        char *s = u64_digits(e - 1, iv < 0 ? (uint64_t)0 - (uint64_t)iv : (uint64_t)iv);
        if (iv < 0)
            *--s = '-';
        put(p, s, (size_t)(e - s));
        return;
    }
    int n = snprintf(buf, sizeof buf, "%.9g\n", v);
    put(p, buf, (size_t)n);
}

char *
tally_prom_take(tally_prom_t *p, size_t *len)
{
    if (p->err || !p->p) {
        free(p->p);
        memset(p, 0, sizeof *p);
        return NULL;
    }
    p->p[p->len] = '\0';
    char *s = p->p;
    if (len)
        *len = p->len;
    memset(p, 0, sizeof *p);
    return s;
}
