/* jsonw.c — compact JSON text into a growable buffer, and base64. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

void
tally__jw_init(tally__jw_t *w)
{
    memset(w, 0, sizeof *w);
}

void
tally__jw_fini(tally__jw_t *w)
{
    free(w->p);
    w->p = NULL;
    w->len = w->cap = 0;
}

char *
tally__jw_take(tally__jw_t *w, size_t *len)
{
    if (w->err || !w->p) {
        tally__jw_fini(w);
        return NULL;
    }
    char *p = w->p;
    if (len)
        *len = w->len;
    w->p = NULL;
    w->len = w->cap = 0;
    return p;
}

static int grow(tally__jw_t *w, size_t n);

static inline int
reserve(tally__jw_t *w, size_t n)
{
    if (__builtin_expect(w->len + n + 1 <= w->cap && !w->err, 1))
        return 0;
    return grow(w, n);
}

static int
grow(tally__jw_t *w, size_t n)
{
    if (w->err)
        return -1;
    size_t ncap = w->cap ? w->cap : 1024;
    while (ncap < w->len + n + 1)
        ncap *= 2;
    char *np = realloc(w->p, ncap);
    if (!np) {
        w->err = 1;
        return -1;
    }
    w->p = np;
    w->cap = ncap;
    return 0;
}

static void
put(tally__jw_t *w, const char *s, size_t n)
{
    if (reserve(w, n))
        return;
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len] = '\0';
}

/* Before any value: a comma unless first in its container or after a key. */
static void
sep(tally__jw_t *w)
{
    if (w->after_key) {
        w->after_key = 0;
        return;
    }
    if (w->depth > 0) {
        if (w->count[w->depth - 1])
            put(w, ",", 1);
        if (w->count[w->depth - 1] < 255)
            w->count[w->depth - 1]++;
    }
}

static void
open_(tally__jw_t *w, char c)
{
    sep(w);
    put(w, &c, 1);
    if (w->depth >= TALLY_JSONW_DEPTH) {
        w->err = 1;
        return;
    }
    w->count[w->depth++] = 0;
}

static void
close_(tally__jw_t *w, char c)
{
    put(w, &c, 1);
    if (w->depth > 0)
        w->depth--;
}

void
tally__jw_obj_begin(tally__jw_t *w)
{
    open_(w, '{');
}

void
tally__jw_obj_end(tally__jw_t *w)
{
    close_(w, '}');
}

void
tally__jw_arr_begin(tally__jw_t *w)
{
    open_(w, '[');
}

void
tally__jw_arr_end(tally__jw_t *w)
{
    close_(w, ']');
}

/* 1 for the bytes a JSON string cannot hold as they are */
static const unsigned char needs_escape[256] = {
    [0x00 ... 0x1f] = 1,
    ['"'] = 1,
    ['\\'] = 1,
};

static void
escaped(tally__jw_t *w, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (reserve(w, n + 2))
        return;
    w->p[w->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (__builtin_expect(!needs_escape[c], 1))
            continue;
        put(w, s + run, i - run);
        run = i + 1;
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        switch (c) {
        case '"':
            put(w, "\\\"", 2);
            break;
        case '\\':
            put(w, "\\\\", 2);
            break;
        case '\n':
            put(w, "\\n", 2);
            break;
        case '\r':
            put(w, "\\r", 2);
            break;
        case '\t':
            put(w, "\\t", 2);
            break;
        default:
            put(w, e, 6);
        }
    }
    put(w, s + run, n - run);
    put(w, "\"", 1);
}

void
tally__jw_key(tally__jw_t *w, const char *k)
{
    /* keys are the API's field names: plain ASCII, never escaped */
    size_t n = strlen(k);
    sep(w);
    if (reserve(w, n + 3))
        return;
    w->p[w->len++] = '"';
    memcpy(w->p + w->len, k, n);
    w->len += n;
    w->p[w->len++] = '"';
    w->p[w->len++] = ':';
    w->p[w->len] = '\0';
    w->after_key = 1;
}

void
tally__jw_str_n(tally__jw_t *w, const char *s, size_t n)
{
    sep(w);
    escaped(w, s, n);
}

void
tally__jw_str(tally__jw_t *w, const char *s)
{
    tally__jw_str_n(w, s, strlen(s));
}

void
tally__jw_str_plain(tally__jw_t *w, const char *s, size_t n)
{
    sep(w);
    if (reserve(w, n + 2))
        return;
    w->p[w->len++] = '"';
    memcpy(w->p + w->len, s, n);
    w->len += n;
    w->p[w->len++] = '"';
    w->p[w->len] = '\0';
}

void
tally__jw_int(tally__jw_t *w, int64_t v)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)v);
    sep(w);
    put(w, buf, (size_t)n);
}

void
tally__jw_double(tally__jw_t *w, double v)
{
    char buf[32];
    int n;
    if (!isfinite(v))
        v = 0;
    /* shortest of %.15g..%.17g that reads back exactly */
    for (int prec = 15;; prec++) {
        n = snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (prec >= 17 || strtod(buf, NULL) == v)
            break;
    }
    /* keep it a JSON real, as a reader expecting a double would */
    if (!strpbrk(buf, ".eEn") && n + 2 < (int)sizeof buf) {
        buf[n++] = '.';
        buf[n++] = '0';
        buf[n] = '\0';
    }
    sep(w);
    put(w, buf, (size_t)n);
}

void
tally__jw_bool(tally__jw_t *w, int v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void
tally__jw_null(tally__jw_t *w)
{
    sep(w);
    put(w, "null", 4);
}

void
tally__jw_raw(tally__jw_t *w, const char *json, size_t n)
{
    sep(w);
    put(w, json, n);
}

size_t
tally__base64_encode(char *dst, size_t cap, const void *src, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t need = 4 * ((n + 2) / 3);
    if (cap < need + 1)
        return 0;
    const unsigned char *s = src;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = tab[(v >> 6) & 63];
        dst[o++] = tab[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);
        dst[o++] = tab[v >> 18];
        dst[o++] = tab[(v >> 12) & 63];
        dst[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        dst[o++] = '=';
    }
    dst[o] = '\0';
    return o;
}
