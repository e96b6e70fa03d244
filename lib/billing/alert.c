/* alert.c — quota alert levels, the alert_v1 codec and the bounded (namespace, key) level table. */
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
    if (!ns || ns_len == 0 || memchr(ns, 0, ns_len) || !key || !*key || level < 0 ||
        level >= TALLY_ALERT_NLEVELS)
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

static int
obj_str(const msgpack_object *o, tally__str_t *s)
{
    if (o->type != MSGPACK_OBJECT_STR)
        return -1;
    s->p = o->via.str.ptr;
    s->len = o->via.str.size;
    return 0;
}

static int
obj_uint(const msgpack_object *o, uint64_t *v)
{
    if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return -1;
    *v = o->via.u64;
    return 0;
}

static int
obj_number(const msgpack_object *o, double *v)
{
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *v = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *v = (double)o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *v = o->via.f64;
        return isfinite(*v) ? 0 : -1;
    default:
        return -1;
    }
}

static int
obj_int64(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= (uint64_t)INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return 0;
    }
    return -1;
}

/* Check the map against alert_v1; out's strings point into the unpacked
 * object, whose string bodies msgpack-c leaves in the input buffer. */
static int
decode_map(const msgpack_object *root, tally__wire_alert_t *out)
{
    uint64_t kind = 0, version = 0;
    tally__str_t lvl = {0};
    unsigned seen = 0;
    if (root->type != MSGPACK_OBJECT_MAP)
        return -1;
    for (uint32_t i = 0; i < root->via.map.size; i++) {
        const msgpack_object_kv *kv = &root->via.map.ptr[i];
        tally__str_t k;
        unsigned bit;
        int rc;
        if (obj_str(&kv->key, &k) != 0 || k.len != 1)
            return -1;
        switch (k.p[0]) {
        case 'k':
            bit = 1;
            rc = obj_uint(&kv->val, &kind);
            break;
        case 'v':
            bit = 2;
            rc = obj_uint(&kv->val, &version);
            break;
        case 'n':
            bit = 4;
            rc = obj_str(&kv->val, &out->ns);
            break;
        case 'm':
            bit = 8;
            rc = obj_str(&kv->val, &out->key);
            break;
        case 'q':
            bit = 16;
            rc = obj_number(&kv->val, &out->limit);
            break;
        case 'u':
            bit = 32;
            rc = obj_number(&kv->val, &out->usage);
            break;
        case 'w':
            bit = 64;
            rc = obj_str(&kv->val, &lvl);
            break;
        case 't':
            bit = 128;
            rc = obj_int64(&kv->val, &out->ts_ms);
            break;
        default:
            return -1;
        }
        if (rc != 0 || (seen & bit))
            return -1;
        seen |= bit;
    }
    if (seen != 255 || kind != TALLY_PROTO_KIND_alert_v1 || version < 1 ||
        version > TALLY_PROTO_VERSION || out->ns.len == 0 || out->key.len == 0)
        return -1;
    out->level = tally__alert_level_parse(lvl.p, lvl.len);
    return out->level < 0 ? -1 : 0;
}

int
tally__decode_alert(const void *buf, size_t len, tally__wire_alert_t *out)
{
    memset(out, 0, sizeof *out);
    const char *nul = buf ? memchr(buf, 0, len) : NULL;
    if (!nul)
        return TALLY_EPROTO;
    size_t topic_len = (size_t)(nul - (const char *)buf);
    size_t off = topic_len + 1;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    int rc = TALLY_EPROTO;
    if (msgpack_unpack_next(&u, buf, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len)
        goto done;
    if (decode_map(&u.data, out) != 0)
        goto done;
    /* string bodies are referenced from buf (msgpack-c does not copy str
     * without a reference callback decision; check that to be safe) */
    if (out->ns.p < (const char *)buf || out->ns.p + out->ns.len > (const char *)buf + len ||
        out->key.p < (const char *)buf || out->key.p + out->key.len > (const char *)buf + len)
        goto done;
    if (out->ns.len != topic_len || memcmp(out->ns.p, buf, topic_len) != 0)
        goto done;
    rc = 0;
done:
    msgpack_unpacked_destroy(&u);
    if (rc)
        memset(out, 0, sizeof *out);
    return rc;
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
