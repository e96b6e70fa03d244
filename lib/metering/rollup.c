/* rollup.c — merging rollup records, and the one writer and reader of the series-key and
 * rollup-key formats (rollup.h describes the bytes). */
#include <string.h>

#include "rollup.h"

void
tally__rollup_init(tally__rollup_t *r)
{
    memset(r, 0, sizeof *r);
}

int
tally__rollup_add(tally__rollup_t *r, int is_float, int64_t ival, double fval, int64_t ts_ms)
{
    double v;
    int overflow = 0;
    if (is_float) {
        r->sum_f += fval;
        r->flags |= TALLY_ROLLUP_FLOAT;
        v = fval;
    } else {
        int64_t sum;
        if (__builtin_add_overflow(r->sum_i, ival, &sum)) {
            /* past int64: keep counting, approximately, and say so (the
             * flag here, the count through the return value) */
            r->sum_f += (double)ival;
            r->flags |= TALLY_ROLLUP_FLOAT | TALLY_ROLLUP_INT_OVERFLOW;
            overflow = 1;
        } else {
            r->sum_i = sum;
        }
        v = (double)ival;
    }
    if (r->count == 0 || v > r->max)
        r->max = v;
    if (r->count == 0 || ts_ms >= r->last_ts_ms) {
        r->last = v;
        r->last_ts_ms = ts_ms;
    }
    r->count++;
    return overflow;
}

int
tally__rollup_merge(tally__rollup_t *dst, const tally__rollup_t *src)
{
    if (src->count == 0)
        return 0;
    if (dst->count == 0) {
        *dst = *src;
        return 0;
    }
    int64_t sum;
    int overflow = 0;
    if (__builtin_add_overflow(dst->sum_i, src->sum_i, &sum)) {
        dst->sum_f += (double)src->sum_i; /* past int64: carry in the float part */
        dst->flags |= TALLY_ROLLUP_FLOAT | TALLY_ROLLUP_INT_OVERFLOW;
        overflow = 1;
    } else {
        dst->sum_i = sum;
    }
    dst->sum_f += src->sum_f;
    dst->last_sum += src->last_sum;
    dst->flags |= src->flags;
    dst->count += src->count;
    if (src->max > dst->max)
        dst->max = src->max;
    if (src->last_ts_ms >= dst->last_ts_ms) {
        dst->last = src->last;
        dst->last_ts_ms = src->last_ts_ms;
    }
    return overflow;
}

double
tally__rollup_sum(const tally__rollup_t *r)
{
    return (double)r->sum_i + r->sum_f;
}

int
tally__rollup_sum_is_int(const tally__rollup_t *r)
{
    return !(r->flags & TALLY_ROLLUP_FLOAT);
}

int
tally__rollup_int_overflowed(const tally__rollup_t *r)
{
    return (r->flags & TALLY_ROLLUP_INT_OVERFLOW) != 0;
}

/* Byte order of two label keys, the shorter first when one is a prefix of
 * the other: strcmp() order for keys without NUL, which they never hold. */
static int
key_cmp(const tally__str_t *a, const tally__str_t *b)
{
    int c = memcmp(a->p, b->p, a->len < b->len ? a->len : b->len);
    if (c)
        return c;
    return a->len < b->len ? -1 : a->len > b->len;
}

size_t
tally__series_key_wire(char *buf, tally__str_t ns, tally__str_t metric,
                       const tally__wire_label_t *labels, uint32_t nlabels)
{
    size_t n = 0;
    if (nlabels > TALLY_MAX_LABELS)
        nlabels = TALLY_MAX_LABELS;
    memcpy(buf + n, ns.p, ns.len);
    n += ns.len;
    buf[n++] = '\0';
    memcpy(buf + n, metric.p, metric.len);
    n += metric.len;
    buf[n++] = '\0';
    /* insertion sort of at most TALLY_MAX_LABELS indexes: stable, no allocation */
    uint32_t order[TALLY_MAX_LABELS];
    for (uint32_t i = 0; i < nlabels; i++) {
        uint32_t j = i;
        while (j > 0 && key_cmp(&labels[order[j - 1]].key, &labels[i].key) > 0) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    for (uint32_t i = 0; i < nlabels; i++) {
        const tally__wire_label_t *l = &labels[order[i]];
        if (i)
            buf[n++] = 0x1e;
        memcpy(buf + n, l->key.p, l->key.len);
        n += l->key.len;
        buf[n++] = 0x1f;
        memcpy(buf + n, l->value.p, l->value.len);
        n += l->value.len;
    }
    return n;
}

size_t
tally__series_key(char *buf, const char *ns, size_t ns_len, const char *metric, size_t metric_len,
                  const tally_label_t *labels, size_t nlabels)
{
    tally__wire_label_t wl[TALLY_MAX_LABELS];
    uint32_t nl = nlabels < TALLY_MAX_LABELS ? (uint32_t)nlabels : TALLY_MAX_LABELS;
    for (uint32_t i = 0; i < nl; i++) {
        wl[i].key = (tally__str_t){labels[i].key, (uint32_t)strlen(labels[i].key)};
        wl[i].value = (tally__str_t){labels[i].value, (uint32_t)strlen(labels[i].value)};
    }
    return tally__series_key_wire(buf, (tally__str_t){ns, (uint32_t)ns_len},
                                  (tally__str_t){metric, (uint32_t)metric_len}, wl, nl);
}

int
tally__series_parse(const char *key, size_t len, tally__series_t *out)
{
    const char *z1 = memchr(key, 0, len);
    if (!z1)
        return TALLY_ECORRUPT;
    const char *rest = z1 + 1;
    const char *z2 = memchr(rest, 0, len - (size_t)(rest - key));
    if (!z2)
        return TALLY_ECORRUPT;
    out->ns = key;
    out->ns_len = (uint32_t)(z1 - key);
    out->metric = rest;
    out->metric_len = (uint32_t)(z2 - rest);
    out->labels = z2 + 1;
    out->labels_len = (uint32_t)(len - (size_t)(z2 + 1 - key));
    return 0;
}

/* Text being built into a fixed buffer; once something does not fit,
 * nothing more is written (no gaps, no half escape). */
typedef struct text {
    char *buf;
    size_t cap, at;
    int full;
} text_t;

/* Append s[0..n), escaping '"' and '\\'; keeps room for the NUL. */
static void
text_put(text_t *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n && !t->full; i++) {
        int esc = s[i] == '"' || s[i] == '\\';
        if (t->at + (size_t)esc + 1 >= t->cap) {
            t->full = 1;
            break;
        }
        if (esc)
            t->buf[t->at++] = '\\';
        t->buf[t->at++] = s[i];
    }
}

char *
tally__series_text(const char *key, size_t len, char *buf, size_t cap)
{
    tally__series_t s;
    text_t t = {buf, cap, 0, 0};
    if (cap == 0)
        return buf;
    if (!key || tally__series_parse(key, len, &s) != 0) {
        text_put(&t, "?", 1);
        buf[t.at] = '\0';
        return buf;
    }
    text_put(&t, s.ns, s.ns_len);
    text_put(&t, "/", 1);
    text_put(&t, s.metric, s.metric_len);
    uint32_t pos = 0, kl, vl;
    const char *k, *v;
    int n = 0;
    while (tally__series_next_label(s.labels, s.labels_len, &pos, &k, &kl, &v, &vl)) {
        text_put(&t, n++ ? "," : "{", 1);
        text_put(&t, k, kl);
        text_put(&t, "=", 1);
        text_put(&t, v, vl);
    }
    if (n)
        text_put(&t, "}", 1);
    buf[t.at] = '\0';
    return buf;
}

int
tally__series_next_label(const char *labels, uint32_t len, uint32_t *pos, const char **k,
                         uint32_t *klen, const char **v, uint32_t *vlen)
{
    if (*pos >= len)
        return 0;
    const char *p = labels + *pos, *end = labels + len;
    const char *us = memchr(p, 0x1f, (size_t)(end - p));
    if (!us)
        return 0;
    const char *rs = memchr(us + 1, 0x1e, (size_t)(end - us - 1));
    if (!rs)
        rs = end;
    *k = p;
    *klen = (uint32_t)(us - p);
    *v = us + 1;
    *vlen = (uint32_t)(rs - us - 1);
    *pos = (uint32_t)(rs - labels) + (rs < end ? 1 : 0);
    if (rs == end)
        *pos = len;
    return 1;
}

void
tally__rollup_key(unsigned char *buf, uint32_t sid, int64_t period_s)
{
    uint64_t u = (uint64_t)period_s ^ (1ull << 63);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(u >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        buf[8 + i] = (unsigned char)(sid >> (24 - 8 * i));
}

int
tally__rollup_key_parse(const void *key, size_t len, uint32_t *sid, int64_t *period_s)
{
    const unsigned char *k = key;
    if (len != TALLY_ROLLUP_KEY_LEN)
        return TALLY_ECORRUPT;
    uint32_t id = 0;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | k[i];
    for (int i = 0; i < 4; i++)
        id = id << 8 | k[8 + i];
    *sid = id;
    *period_s = (int64_t)(u ^ (1ull << 63));
    return 0;
}
