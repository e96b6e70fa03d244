/* jsonw.c — compact JSON text into the shared growable buffer (buf.h). */
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
    tally__buf_free(&w->b);
}

char *
tally__jw_take(tally__jw_t *w, size_t *len)
{
    if (!w->b.p) /* nothing written is not a document */
        w->b.err = 1;
    return tally__buf_take(&w->b, len);
}

static inline int
reserve(tally__jw_t *w, size_t n)
{
    return tally__buf_reserve(&w->b, n);
}

static inline void
put(tally__jw_t *w, const char *s, size_t n)
{
    tally__buf_put(&w->b, s, n);
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
        w->b.err = 1;
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
    w->b.p[w->b.len++] = '"';
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
    w->b.p[w->b.len++] = '"';
    memcpy(w->b.p + w->b.len, k, n);
    w->b.len += n;
    w->b.p[w->b.len++] = '"';
    w->b.p[w->b.len++] = ':';
    w->b.p[w->b.len] = '\0';
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
    w->b.p[w->b.len++] = '"';
    memcpy(w->b.p + w->b.len, s, n);
    w->b.len += n;
    w->b.p[w->b.len++] = '"';
    w->b.p[w->b.len] = '\0';
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
