/* alert.c — quota alert levels, the alert_v1 format (its writer and its strict reader) and the
 * bounded (namespace, key) level table. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "alert.h"
#include "strtab.h"
#include "tally/tally.h"

#define PACK_KEY(pk, k) msgpack_pack_str_with_body((pk), (k), 1)

static const char *const level_names[TALLY_ALERT_NLEVELS] = {"ok", "warning", "exceeded"};

int
tally__alert_level(double usage, double maximum, uint32_t warn_percent)
{
    if (maximum < 0 || isnan(maximum) || isnan(usage))
        return TALLY_ALERT_OK;
    if (usage > maximum)
        return TALLY_ALERT_EXCEEDED;
    /* compare usage * 100 >= maximum * pct rather than dividing, so a limit
     * of 0 cannot divide by zero and 80 % of 100 is exactly 80 */
    if (warn_percent > 0 && usage * 100.0 >= maximum * (double)warn_percent)
        return maximum > 0 || usage > 0 ? TALLY_ALERT_WARNING : TALLY_ALERT_OK;
    return TALLY_ALERT_OK;
}

const char *
tally__alert_level_name(int level)
{
    return level >= 0 && level < TALLY_ALERT_NLEVELS ? level_names[level] : "?";
}

int
tally__alert_level_parse(const char *s, size_t len)
{
    for (int i = 0; i < TALLY_ALERT_NLEVELS; i++)
        if (strlen(level_names[i]) == len && memcmp(level_names[i], s, len) == 0)
            return i;
    return -1;
}

/* ---- codec ------------------------------------------------------------- */

int
tally__encode_alert(msgpack_sbuffer *out, const char *ns, size_t ns_len, const char *key,
                    double limit, double usage, int level, int64_t ts_ms)
{
    if (!ns || ns_len == 0 || ns_len > TALLY_ALERT_NS_MAX || memchr(ns, 0, ns_len) || !key ||
        !*key || strlen(key) > TALLY_ALERT_KEY_MAX || level < 0 || level >= TALLY_ALERT_NLEVELS)
        return TALLY_EINVAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    const char *lname = level_names[level];
    int bad = 0;
    bad |= msgpack_sbuffer_write(out, ns, ns_len);
    bad |= msgpack_sbuffer_write(out, "", 1);
    bad |= msgpack_pack_map(&pk, 8);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_KIND);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_KIND_alert_v1);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_VERSION);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_VERSION_V1);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_NS);
    bad |= msgpack_pack_str_with_body(&pk, ns, ns_len);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_METRIC);
    bad |= msgpack_pack_str_with_body(&pk, key, strlen(key));
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_LIMIT);
    bad |= msgpack_pack_double(&pk, limit);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_USAGE);
    bad |= msgpack_pack_double(&pk, usage);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_LEVEL);
    bad |= msgpack_pack_str_with_body(&pk, lname, strlen(lname));
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_TIME);
    bad |= msgpack_pack_int64(&pk, ts_ms);
    return bad ? -ENOMEM : 0;
}

/* A bounded reader over the message bytes, in the style of codec.c's: each
 * read checks that the bytes it needs are there, advances past what it
 * read, and returns -1 on anything else. No allocation, no object tree:
 * strings point into the caller's buffer, and a declared length is checked
 * against the bytes left before anything trusts it. */
typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
} rd_t;

static int
rd_need(const rd_t *r, uint64_t n)
{
    return (uint64_t)(r->end - r->p) >= n ? 0 : -1;
}

/* n (1..8) big-endian bytes. */
static uint64_t
rd_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* A map header: fixmap, map 16 or map 32. */
static int
rd_map(rd_t *r, uint32_t *n)
{
    if (rd_need(r, 1))
        return -1;
    uint8_t c = *r->p;
    int w = c == 0xde ? 2 : c == 0xdf ? 4 : 0;
    if (!w && (c & 0xf0) != 0x80)
        return -1;
    if (rd_need(r, 1 + (uint64_t)w))
        return -1;
    *n = w ? (uint32_t)rd_be(r->p + 1, w) : (uint32_t)(c & 0x0f);
    r->p += 1 + w;
    return 0;
}

/* A str (fixstr, str 8/16/32) of at most max bytes; bin is not a string. */
static int
rd_str(rd_t *r, tally__str_t *s, uint32_t max)
{
    if (rd_need(r, 1))
        return -1;
    uint8_t c = *r->p;
    int w = c == 0xd9 ? 1 : c == 0xda ? 2 : c == 0xdb ? 4 : 0;
    if (!w && (c & 0xe0) != 0xa0)
        return -1;
    if (rd_need(r, 1 + (uint64_t)w))
        return -1;
    uint64_t n = w ? rd_be(r->p + 1, w) : (uint64_t)(c & 0x1f);
    r->p += 1 + w;
    if (n > max || rd_need(r, n))
        return -1;
    s->p = (const char *)r->p;
    s->len = (uint32_t)n;
    r->p += n;
    return 0;
}

/* Any msgpack integer that fits int64 (*is_int = 1, *i set), or a float32
 * or float64 (*is_int = 0, *f set); any other type is -1. */
static int
rd_num(rd_t *r, int *is_int, int64_t *i, double *f)
{
    if (rd_need(r, 1))
        return -1;
    uint8_t c = *r->p;
    *is_int = 1;
    if (c <= 0x7f || c >= 0xe0) { /* positive and negative fixint */
        *i = c <= 0x7f ? c : (int64_t)c - 256;
        r->p++;
        return 0;
    }
    int w;
    switch (c) {
    case 0xcc: /* uint 8 */
    case 0xd0: /* int 8 */
        w = 1;
        break;
    case 0xcd:
    case 0xd1:
        w = 2;
        break;
    case 0xce:
    case 0xd2:
    case 0xca: /* float 32 */
        w = 4;
        break;
    case 0xcf:
    case 0xd3:
    case 0xcb: /* float 64 */
        w = 8;
        break;
    default:
        return -1;
    }
    if (rd_need(r, 1 + (uint64_t)w))
        return -1;
    uint64_t u = rd_be(r->p + 1, w);
    r->p += 1 + w;
    if (c == 0xca) {
        uint32_t u32 = (uint32_t)u;
        float fl;
        memcpy(&fl, &u32, sizeof fl);
        *f = fl;
        *is_int = 0;
    } else if (c == 0xcb) {
        memcpy(f, &u, sizeof *f);
        *is_int = 0;
    } else if (c >= 0xd0) { /* signed: sign-extend from w bytes */
        int sh = 64 - 8 * w;
        *i = (int64_t)(u << sh) >> sh;
    } else if (u > (uint64_t)INT64_MAX) {
        return -1;
    } else {
        *i = (int64_t)u;
    }
    return 0;
}

/* "k" and "v": a non-negative integer in any encoding. */
static int
rd_uint(rd_t *r, uint64_t *v)
{
    int is_int;
    int64_t i;
    double f;
    if (rd_num(r, &is_int, &i, &f) != 0 || !is_int || i < 0)
        return -1;
    *v = (uint64_t)i;
    return 0;
}

/* "q" and "u": any integer (the whole uint64 range too) or finite float. */
static int
rd_number(rd_t *r, double *v)
{
    int is_int;
    int64_t i;
    if (rd_need(r, 9) == 0 && *r->p == 0xcf) { /* uint 64 past INT64_MAX is still a number */
        *v = (double)rd_be(r->p + 1, 8);
        r->p += 9;
        return 0;
    }
    if (rd_num(r, &is_int, &i, v) != 0)
        return -1;
    if (is_int)
        *v = (double)i;
    return isfinite(*v) ? 0 : -1;
}

/* "t": any integer encoding that fits int64. */
static int
rd_int64(rd_t *r, int64_t *v)
{
    int is_int;
    double f;
    return rd_num(r, &is_int, v, &f) != 0 || !is_int ? -1 : 0;
}

/* The map, checked against alert_v1, and nothing after it. */
static int
decode_map(rd_t *r, tally__wire_alert_t *out)
{
    uint64_t kind = 0, version = 0;
    tally__str_t lvl = {0};
    unsigned seen = 0;
    uint32_t n;
    if (rd_map(r, &n) != 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        tally__str_t k;
        unsigned bit;
        int rc;
        if (rd_str(r, &k, 1) != 0 || k.len != 1)
            return -1;
        switch (k.p[0]) {
        case 'k':
            bit = 1;
            rc = rd_uint(r, &kind);
            break;
        case 'v':
            bit = 2;
            rc = rd_uint(r, &version);
            break;
        case 'n':
            bit = 4;
            rc = rd_str(r, &out->ns, TALLY_ALERT_NS_MAX);
            break;
        case 'm':
            bit = 8;
            rc = rd_str(r, &out->key, TALLY_ALERT_KEY_MAX);
            break;
        case 'q':
            bit = 16;
            rc = rd_number(r, &out->limit);
            break;
        case 'u':
            bit = 32;
            rc = rd_number(r, &out->usage);
            break;
        case 'w':
            bit = 64;
            rc = rd_str(r, &lvl, 16); /* longer than any level name */
            break;
        case 't':
            bit = 128;
            rc = rd_int64(r, &out->ts_ms);
            break;
        default:
            return -1;
        }
        if (rc != 0 || (seen & bit))
            return -1;
        seen |= bit;
    }
    if (r->p != r->end || seen != 255 || kind != TALLY_PROTO_KIND_alert_v1 || version < 1 ||
        version > TALLY_PROTO_VERSION || out->ns.len == 0 || out->key.len == 0)
        return -1;
    out->level = tally__alert_level_parse(lvl.p, lvl.len);
    return out->level < 0 ? -1 : 0;
}

int
tally__decode_alert(const void *buf, size_t len, tally__wire_alert_t *out)
{
    memset(out, 0, sizeof *out);
    const uint8_t *nul = buf ? memchr(buf, 0, len) : NULL;
    if (!nul)
        return TALLY_EPROTO;
    size_t topic_len = (size_t)(nul - (const uint8_t *)buf);
    rd_t r = {nul + 1, (const uint8_t *)buf + len};
    if (decode_map(&r, out) != 0 || out->ns.len != topic_len ||
        memcmp(out->ns.p, buf, topic_len) != 0) {
        memset(out, 0, sizeof *out);
        return TALLY_EPROTO;
    }
    return 0;
}

/* ---- level table --------------------------------------------------------
 * Chained hash over a fixed entry array with a free list: bounded memory,
 * no allocation after create. Keys are short (64 + 64 bytes) and copied. */

#define KEY_MAX 64

typedef struct entry {
    char ns[KEY_MAX + 1];
    char key[KEY_MAX + 1];
    uint64_t hash;
    uint64_t pass;
    double ratio;
    int level;
    uint32_t next; /* chain or free list: index + 1, 0 = end */
    int used;
} entry_t;

struct tally__alert_state {
    entry_t *e;
    size_t cap, n;
    uint32_t *heads; /* index + 1 */
    size_t nheads;   /* power of two */
    uint32_t free_head; /* recycled entries: index + 1, 0 = none */
    uint32_t fresh;     /* entries never used yet start here (0-based) */
};

/* the project's FNV-1a of each part, combined (no copy of the names) */
static uint64_t
hash2(const char *a, const char *b)
{
    return tally__hash_bytes(a, strlen(a)) * 1099511628211ull ^ tally__hash_bytes(b, strlen(b));
}

int
tally__alert_state_create(size_t max_entries, tally__alert_state_t **out)
{
    if (max_entries == 0 || max_entries > UINT32_MAX / 2)
        return TALLY_EINVAL;
    tally__alert_state_t *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->cap = max_entries;
    st->nheads = 16;
    while (st->nheads < max_entries)
        st->nheads <<= 1;
    st->e = calloc(max_entries, sizeof *st->e);
    st->heads = calloc(st->nheads, sizeof *st->heads);
    if (!st->e || !st->heads) {
        tally__alert_state_destroy(st);
        return -ENOMEM;
    }
    /* entries are handed out in order, then recycled through free_head:
     * nothing touches the (calloc'd, lazily mapped) table up front */
    st->free_head = 0;
    st->fresh = 0;
    *out = st;
    return 0;
}

void
tally__alert_state_destroy(tally__alert_state_t *st)
{
    if (!st)
        return;
    free(st->e);
    free(st->heads);
    free(st);
}

int
tally__alert_state_update(tally__alert_state_t *st, const char *ns, const char *key, int level,
                          double ratio, uint64_t pass, int *prev)
{
    size_t nl = ns ? strlen(ns) : 0, kl = key ? strlen(key) : 0;
    if (nl == 0 || nl > KEY_MAX || kl == 0 || kl > KEY_MAX || level < 0 ||
        level >= TALLY_ALERT_NLEVELS)
        return TALLY_EINVAL;
    uint64_t h = hash2(ns, key);
    uint32_t *head = &st->heads[h & (st->nheads - 1)];
    entry_t *e = NULL;
    for (uint32_t i = *head; i; i = st->e[i - 1].next) {
        entry_t *c = &st->e[i - 1];
        if (c->hash == h && strcmp(c->ns, ns) == 0 && strcmp(c->key, key) == 0) {
            e = c;
            break;
        }
    }
    if (!e) {
        uint32_t idx;
        if (st->free_head) {
            idx = st->free_head;
            st->free_head = st->e[idx - 1].next;
        } else if (st->fresh < st->cap) {
            idx = ++st->fresh;
        } else {
            return TALLY_EFULL;
        }
        e = &st->e[idx - 1];
        memcpy(e->ns, ns, nl + 1);
        memcpy(e->key, key, kl + 1);
        e->hash = h;
        e->level = TALLY_ALERT_OK;
        e->used = 1;
        e->next = *head;
        *head = idx;
        st->n++;
    }
    int before = e->level;
    if (prev)
        *prev = before;
    e->level = level;
    e->ratio = ratio;
    e->pass = pass;
    return level > before ? 1 : 0;
}

void
tally__alert_state_sweep(tally__alert_state_t *st, uint64_t pass)
{
    for (size_t b = 0; b < st->nheads; b++) {
        uint32_t *link = &st->heads[b];
        while (*link) {
            uint32_t idx = *link;
            entry_t *c = &st->e[idx - 1];
            if (c->pass == pass) {
                link = &c->next;
                continue;
            }
            *link = c->next;
            memset(c, 0, sizeof *c);
            c->next = st->free_head;
            st->free_head = idx;
            st->n--;
        }
    }
}

void
tally__alert_state_keep(tally__alert_state_t *st, const char *ns, uint64_t pass)
{
    for (size_t i = 0; i < st->fresh; i++)
        if (st->e[i].used && strcmp(st->e[i].ns, ns) == 0)
            st->e[i].pass = pass;
}

size_t
tally__alert_state_count(const tally__alert_state_t *st)
{
    return st->n;
}

void
tally__alert_state_each(const tally__alert_state_t *st, tally__alert_state_cb cb, void *ctx)
{
    /* entries past `fresh` were never handed out: stop there (scanning the
     * whole table made every /metrics scrape cost ~600k instructions) */
    for (size_t i = 0; i < st->fresh; i++)
        if (st->e[i].used)
            cb(ctx, st->e[i].ns, st->e[i].key, st->e[i].level, st->e[i].ratio);
}
