/* codec.c — wire protocol v1: msgpack-c packs messages; a strict cursor reader decodes them.
 *
 * Why not msgpack_unpack() for decoding: it builds an object tree and sizes
 * its allocations from the container lengths the sender declares, before
 * the bytes that back them have been seen. A hostile 20-byte message can ask
 * for gigabytes. The reader below walks the buffer once, checks every length
 * against the bytes that remain and against the protocol's bounds, and
 * writes straight into the decoder's reusable arrays.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"

static const char *const reject_names[] = {
#define TALLY__RN(name, text) #name,
    TALLY_PROTO_REJECTS(TALLY__RN)
#undef TALLY__RN
};
static const char *const reject_texts[] = {
#define TALLY__RT(name, text) text,
    TALLY_PROTO_REJECTS(TALLY__RT)
#undef TALLY__RT
};

const char *
tally__reject_name(int reason)
{
    if (reason < 0 || reason >= TALLY_PROTO_REJECT_COUNT)
        return "unknown";
    return reject_names[reason];
}

const char *
tally__reject_text(int reason)
{
    if (reason < 0 || reason >= TALLY_PROTO_REJECT_COUNT)
        return "unknown";
    return reject_texts[reason];
}

/* ---- names ------------------------------------------------------------ */

int
tally__valid_ns(const char *s, size_t len)
{
    if (len == 0 || len > TALLY_MAX_NS_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

int
tally__valid_metric(const char *s, size_t len)
{
    if (len == 0 || len > TALLY_MAX_METRIC_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == ':' || c == '-'))
            return 0;
    }
    return 1;
}

int
tally__valid_producer(const char *s, size_t len)
{
    if (len == 0 || len > TALLY_MAX_PRODUCER_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f)
            return 0;
    }
    return 1;
}

static int
valid_label_key(const char *s, size_t len)
{
    if (len == 0 || len > TALLY_MAX_LABEL_KEY_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || c == '/'))
            return 0;
    }
    return 1;
}

/* Label values are free text: valid UTF-8 without control characters, so
 * they can be stored in keys (which use 0x1e/0x1f as separators) and
 * printed in JSON and logs safely. */
static int
valid_label_value(const char *s, size_t len)
{
    if (len > TALLY_MAX_LABEL_VALUE_LEN)
        return 0;
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        unsigned char c = *p;
        if (c < 0x80) {
            if (c < 0x20 || c == 0x7f)
                return 0;
            p++;
            continue;
        }
        int n;
        uint32_t cp;
        if ((c & 0xe0) == 0xc0) {
            n = 1;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (end - p <= n)
            return 0;
        for (int i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* overlong forms, surrogates and out-of-range code points */
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp < 0xa0))
            return 0;
        p += n + 1;
    }
    return 1;
}

/* ---- the reader ------------------------------------------------------- */

typedef struct rd {
    const uint8_t *p;
    const uint8_t *end;
} rd_t;

#define NEED(r, n)                                                                                 \
    do {                                                                                           \
        if ((size_t)((r)->end - (r)->p) < (size_t)(n))                                             \
            return TALLY_PROTO_REJECT_msgpack;                                                     \
    } while (0)

static uint16_t
be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t
be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t
be64(const uint8_t *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

/* Reader functions return -1 on success, else a reject reason: the
 * reasons are small non-negative integers. */
enum { RD_OK = -1 };

static int
rd_container(rd_t *r, int map, uint32_t *n)
{
    NEED(r, 1);
    uint8_t c = *r->p;
    uint8_t fix = map ? 0x80 : 0x90, b16 = map ? 0xde : 0xdc, b32 = map ? 0xdf : 0xdd;
    if ((c & 0xf0) == fix) {
        *n = c & 0x0f;
        r->p++;
    } else if (c == b16) {
        NEED(r, 3);
        *n = be16(r->p + 1);
        r->p += 3;
    } else if (c == b32) {
        NEED(r, 5);
        *n = be32(r->p + 1);
        r->p += 5;
    } else {
        return TALLY_PROTO_REJECT_type;
    }
    /* every element takes at least one byte (two for a map entry) */
    if ((uint64_t)*n * (map ? 2u : 1u) > (uint64_t)(r->end - r->p))
        return TALLY_PROTO_REJECT_msgpack;
    return RD_OK;
}

static int
rd_str(rd_t *r, tally__str_t *s)
{
    NEED(r, 1);
    uint8_t c = *r->p;
    uint32_t n;
    if ((c & 0xe0) == 0xa0) {
        n = c & 0x1f;
        r->p++;
    } else if (c == 0xd9) {
        NEED(r, 2);
        n = r->p[1];
        r->p += 2;
    } else if (c == 0xda) {
        NEED(r, 3);
        n = be16(r->p + 1);
        r->p += 3;
    } else if (c == 0xdb) {
        NEED(r, 5);
        n = be32(r->p + 1);
        r->p += 5;
    } else {
        return TALLY_PROTO_REJECT_type;
    }
    NEED(r, n);
    s->p = (const char *)r->p;
    s->len = n;
    r->p += n;
    return RD_OK;
}

/* Any msgpack number. Integers that fit int64 come back as integers;
 * uint64 above INT64_MAX is a bad value for us. */
static int
rd_number(rd_t *r, int *is_float, int64_t *iv, double *fv)
{
    NEED(r, 1);
    const uint8_t *p = r->p;
    uint8_t c = *p;
    *is_float = 0;
    if (c <= 0x7f) {
        *iv = c;
        r->p++;
    } else if (c >= 0xe0) {
        *iv = (int64_t)c - 256; /* negative fixint: 111xxxxx is -32..-1 */
        r->p++;
    } else {
        switch (c) {
        case 0xcc:
            NEED(r, 2);
            *iv = p[1];
            r->p += 2;
            break;
        case 0xcd:
            NEED(r, 3);
            *iv = be16(p + 1);
            r->p += 3;
            break;
        case 0xce:
            NEED(r, 5);
            *iv = be32(p + 1);
            r->p += 5;
            break;
        case 0xcf: {
            NEED(r, 9);
            uint64_t u = be64(p + 1);
            if (u > INT64_MAX)
                return TALLY_PROTO_REJECT_bad_value;
            *iv = (int64_t)u;
            r->p += 9;
            break;
        }
        case 0xd0:
            NEED(r, 2);
            *iv = p[1] >= 0x80 ? (int64_t)p[1] - 256 : (int64_t)p[1]; /* int 8 */
            r->p += 2;
            break;
        case 0xd1:
            NEED(r, 3);
            *iv = (int16_t)be16(p + 1);
            r->p += 3;
            break;
        case 0xd2:
            NEED(r, 5);
            *iv = (int32_t)be32(p + 1);
            r->p += 5;
            break;
        case 0xd3:
            NEED(r, 9);
            *iv = (int64_t)be64(p + 1);
            r->p += 9;
            break;
        case 0xca: {
            NEED(r, 5);
            uint32_t u = be32(p + 1);
            float f;
            memcpy(&f, &u, sizeof f);
            *fv = f;
            *is_float = 1;
            r->p += 5;
            break;
        }
        case 0xcb: {
            NEED(r, 9);
            uint64_t u = be64(p + 1);
            memcpy(fv, &u, sizeof *fv);
            *is_float = 1;
            r->p += 9;
            break;
        }
        default:
            return TALLY_PROTO_REJECT_type;
        }
    }
    return RD_OK; /* finiteness is the caller's check: only values may be floats */
}

static int
rd_uint(rd_t *r, uint64_t *out)
{
    int is_float;
    int64_t iv;
    double fv;
    const uint8_t *save = r->p;
    NEED(r, 1);
    if (*r->p == 0xcf) { /* full uint64 range for sequence numbers */
        NEED(r, 9);
        *out = be64(r->p + 1);
        r->p += 9;
        return RD_OK;
    }
    int rc = rd_number(r, &is_float, &iv, &fv);
    if (rc != RD_OK)
        return rc;
    if (is_float || iv < 0) {
        r->p = save;
        return TALLY_PROTO_REJECT_type;
    }
    *out = (uint64_t)iv;
    return RD_OK;
}

/* A one-letter key as a small integer, or 0 for anything else. */
static int
key_letter(const tally__str_t *k)
{
    return k->len == 1 ? (unsigned char)k->p[0] : 0;
}

/* ---- decoder ---------------------------------------------------------- */

int
tally__decoder_init(tally__decoder_t *d, uint32_t max_events)
{
    memset(d, 0, sizeof *d);
    if (max_events == 0 || max_events > TALLY_MAX_BATCH_EVENTS)
        return TALLY_EINVAL;
    d->max_events = max_events;
    return 0;
}

void
tally__decoder_fini(tally__decoder_t *d)
{
    free(d->events);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

static inline int
grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    return tally__grow32(arr, cap, need, elem, 64);
}

static int
decode_labels(tally__decoder_t *d, rd_t *r, uint32_t *nlabels_total, tally__wire_event_t *ev)
{
    uint32_t n;
    int rc = rd_container(r, 1, &n);
    if (rc != RD_OK)
        return rc;
    if (n > TALLY_MAX_LABELS)
        return TALLY_PROTO_REJECT_too_many_labels;
    if (grow((void **)&d->labels, &d->cap_labels, *nlabels_total + n, sizeof *d->labels))
        return TALLY_PROTO_REJECT_oversize;
    ev->label_off = *nlabels_total;
    ev->nlabels = n;
    uint32_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        tally__wire_label_t *l = &d->labels[*nlabels_total + i];
        if ((rc = rd_str(r, &l->key)) != RD_OK)
            return rc;
        if ((rc = rd_str(r, &l->value)) != RD_OK)
            return rc;
        if (l->key.len > TALLY_MAX_LABEL_KEY_LEN || l->value.len > TALLY_MAX_LABEL_VALUE_LEN)
            return TALLY_PROTO_REJECT_too_long;
        if (!valid_label_key(l->key.p, l->key.len) || !valid_label_value(l->value.p, l->value.len))
            return TALLY_PROTO_REJECT_bad_name;
        total += l->key.len + l->value.len + 2;
        if (total > TALLY_MAX_LABELS_BYTES)
            return TALLY_PROTO_REJECT_too_long;
        for (uint32_t j = 0; j < i; j++) {
            const tally__wire_label_t *o = &d->labels[*nlabels_total + j];
            if (o->key.len == l->key.len && memcmp(o->key.p, l->key.p, l->key.len) == 0)
                return TALLY_PROTO_REJECT_duplicate_field;
        }
    }
    *nlabels_total += n;
    return RD_OK;
}

static int
decode_event(tally__decoder_t *d, rd_t *r, uint32_t *nlabels_total, tally__wire_event_t *ev)
{
    uint32_t n;
    int rc = rd_container(r, 1, &n);
    if (rc != RD_OK)
        return rc;
    unsigned seen = 0;
    memset(ev, 0, sizeof *ev);
    for (uint32_t i = 0; i < n; i++) {
        tally__str_t k;
        if ((rc = rd_str(r, &k)) != RD_OK)
            return rc;
        unsigned bit;
        switch (key_letter(&k)) {
        case 'n':
            bit = 1;
            rc = rd_str(r, &ev->ns);
            break;
        case 'm':
            bit = 2;
            rc = rd_str(r, &ev->metric);
            break;
        case 'x':
            bit = 4;
            rc = rd_number(r, &ev->is_float, &ev->ival, &ev->fval);
            if (rc == RD_OK && ev->is_float && !isfinite(ev->fval))
                rc = TALLY_PROTO_REJECT_bad_value;
            break;
        case 't': {
            bit = 8;
            int is_float;
            double fv;
            rc = rd_number(r, &is_float, &ev->ts_ms, &fv);
            if (rc == RD_OK && is_float)
                rc = TALLY_PROTO_REJECT_type;
            else if (rc == RD_OK && ev->ts_ms <= 0)
                rc = TALLY_PROTO_REJECT_bad_time;
            break;
        }
        case 'l':
            bit = 16;
            rc = decode_labels(d, r, nlabels_total, ev);
            break;
        default:
            return TALLY_PROTO_REJECT_unknown_field;
        }
        if (rc != RD_OK)
            return rc;
        if (seen & bit)
            return TALLY_PROTO_REJECT_duplicate_field;
        seen |= bit;
    }
    if ((seen & 15) != 15)
        return TALLY_PROTO_REJECT_missing;
    if (ev->ns.len > TALLY_MAX_NS_LEN || ev->metric.len > TALLY_MAX_METRIC_LEN)
        return TALLY_PROTO_REJECT_too_long;
    if (!tally__valid_ns(ev->ns.p, ev->ns.len) ||
        !tally__valid_metric(ev->metric.p, ev->metric.len))
        return TALLY_PROTO_REJECT_bad_name;
    return RD_OK;
}

int
tally__peek_batch(const void *buf, size_t len, uint32_t *version, tally__str_t *cred, int *reason)
{
    rd_t r = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    uint32_t n;
    uint64_t kind = 0, v = 0;
    tally__str_t k;
    int rc;
    cred->p = NULL;
    cred->len = 0;
    *version = 0;
    if ((rc = rd_container(&r, 1, &n)) != RD_OK)
        goto reject;
    if (n < 2) {
        rc = TALLY_PROTO_REJECT_missing;
        goto reject;
    }
    if ((rc = rd_str(&r, &k)) != RD_OK)
        goto reject;
    if (key_letter(&k) != 'k') {
        rc = TALLY_PROTO_REJECT_missing;
        goto reject;
    }
    if ((rc = rd_uint(&r, &kind)) != RD_OK)
        goto reject;
    if (kind != TALLY_PROTO_KIND_batch_v1) {
        rc = TALLY_PROTO_REJECT_kind;
        goto reject;
    }
    if ((rc = rd_str(&r, &k)) != RD_OK)
        goto reject;
    if (key_letter(&k) != 'v') {
        rc = TALLY_PROTO_REJECT_missing;
        goto reject;
    }
    if ((rc = rd_uint(&r, &v)) != RD_OK)
        goto reject;
    if (v < 1 || v > TALLY_PROTO_VERSION) {
        rc = TALLY_PROTO_REJECT_version;
        goto reject;
    }
    *version = (uint32_t)v;
    if (v == TALLY_PROTO_VERSION_V1)
        return 0;
    if (n < 3 || (rc = rd_str(&r, &k)) != RD_OK || key_letter(&k) != 'a') {
        rc = rc == RD_OK || n < 3 ? TALLY_PROTO_REJECT_missing : rc;
        goto reject;
    }
    if ((rc = rd_str(&r, cred)) != RD_OK)
        goto reject;
    if (!tally__cred_valid_name(cred->p, cred->len)) {
        rc = cred->len > TALLY__CRED_MAX_NAME ? TALLY_PROTO_REJECT_too_long
                                              : TALLY_PROTO_REJECT_bad_name;
        goto reject;
    }
    return 0;
reject:
    *reason = rc;
    return rc == TALLY_PROTO_REJECT_version ? TALLY_EVERSION : TALLY_EPROTO;
}

int
tally__decode_batch(tally__decoder_t *d, const void *buf, size_t len, tally__wire_batch_t *out,
                    int *reason)
{
    rd_t r = {(const uint8_t *)buf, (const uint8_t *)buf + len};
    uint32_t n, nlabels = 0;
    unsigned seen = 0, need = 63;
    uint64_t kind = 0, version = 0;
    int rc = rd_container(&r, 1, &n);
    memset(out, 0, sizeof *out);
    if (rc != RD_OK)
        goto reject;
    /* The kind and version come first so that a newer or different message
     * is recognised before its fields are judged; in version 2 the
     * credential comes third, so the MAC can be checked before the rest. */
    for (uint32_t i = 0; i < n; i++) {
        tally__str_t k;
        if ((rc = rd_str(&r, &k)) != RD_OK)
            goto reject;
        unsigned bit;
        if ((i == 0 && key_letter(&k) != 'k') || (i == 1 && key_letter(&k) != 'v') ||
            (i == 2 && version == TALLY_PROTO_VERSION_V2 && key_letter(&k) != 'a')) {
            rc = TALLY_PROTO_REJECT_missing;
            goto reject;
        }
        switch (key_letter(&k)) {
        case 'k':
            bit = 1;
            rc = rd_uint(&r, &kind);
            if (rc == RD_OK && kind != TALLY_PROTO_KIND_batch_v1)
                rc = TALLY_PROTO_REJECT_kind;
            break;
        case 'v':
            bit = 2;
            rc = rd_uint(&r, &version);
            if (rc == RD_OK && (version < 1 || version > TALLY_PROTO_VERSION))
                rc = TALLY_PROTO_REJECT_version;
            if (version == TALLY_PROTO_VERSION_V2)
                need = 127;
            break;
        case 'a':
            bit = 64;
            if (version != TALLY_PROTO_VERSION_V2) {
                rc = TALLY_PROTO_REJECT_unknown_field;
                break;
            }
            rc = rd_str(&r, &out->cred);
            if (rc == RD_OK && out->cred.len > TALLY__CRED_MAX_NAME)
                rc = TALLY_PROTO_REJECT_too_long;
            else if (rc == RD_OK && !tally__cred_valid_name(out->cred.p, out->cred.len))
                rc = TALLY_PROTO_REJECT_bad_name;
            break;
        case 'p':
            bit = 4;
            rc = rd_str(&r, &out->producer);
            if (rc == RD_OK && out->producer.len > TALLY_MAX_PRODUCER_LEN)
                rc = TALLY_PROTO_REJECT_too_long;
            else if (rc == RD_OK && !tally__valid_producer(out->producer.p, out->producer.len))
                rc = TALLY_PROTO_REJECT_bad_name;
            break;
        case 's':
            bit = 8;
            rc = rd_uint(&r, &out->seq);
            break;
        case 'b':
            bit = 16;
            rc = rd_uint(&r, &out->base);
            break;
        case 'e': {
            bit = 32;
            uint32_t ne;
            if ((rc = rd_container(&r, 0, &ne)) != RD_OK)
                break;
            if (ne == 0) {
                rc = TALLY_PROTO_REJECT_no_events;
                break;
            }
            if (ne > d->max_events) {
                rc = TALLY_PROTO_REJECT_too_many_events;
                break;
            }
            if (grow((void **)&d->events, &d->cap_events, ne, sizeof *d->events)) {
                rc = TALLY_PROTO_REJECT_oversize;
                break;
            }
            for (uint32_t j = 0; j < ne && rc == RD_OK; j++)
                rc = decode_event(d, &r, &nlabels, &d->events[j]);
            out->nevents = ne;
            break;
        }
        default:
            rc = TALLY_PROTO_REJECT_unknown_field;
            break;
        }
        if (rc != RD_OK)
            goto reject;
        if (seen & bit) {
            rc = TALLY_PROTO_REJECT_duplicate_field;
            goto reject;
        }
        seen |= bit;
    }
    if ((seen & need) != need) {
        rc = TALLY_PROTO_REJECT_missing;
        goto reject;
    }
    if (r.p != r.end) {
        rc = TALLY_PROTO_REJECT_trailing;
        goto reject;
    }
    if (out->seq == 0 || out->base == 0 || out->base > out->seq) {
        rc = TALLY_PROTO_REJECT_bad_seq;
        goto reject;
    }
    out->version = (uint32_t)version;
    out->events = d->events;
    out->labels = d->labels;
    return 0;
reject:
    *reason = rc;
    out->nevents = 0;
    return rc == TALLY_PROTO_REJECT_version ? TALLY_EVERSION : TALLY_EPROTO;
}

/* ---- encoding --------------------------------------------------------- */

int
tally__event_validate(const tally_event_t *ev, int *reason)
{
    int dummy;
    if (!reason)
        reason = &dummy;
    if (!ev || !ev->ns || !ev->metric) {
        *reason = TALLY_PROTO_REJECT_missing;
        return TALLY_EINVAL;
    }
    if (strlen(ev->ns) > TALLY_MAX_NS_LEN || strlen(ev->metric) > TALLY_MAX_METRIC_LEN) {
        *reason = TALLY_PROTO_REJECT_too_long; /* as the decoder says */
        return TALLY_EINVAL;
    }
    if (!tally__valid_ns(ev->ns, strlen(ev->ns)) ||
        !tally__valid_metric(ev->metric, strlen(ev->metric))) {
        *reason = TALLY_PROTO_REJECT_bad_name;
        return TALLY_EINVAL;
    }
    if (ev->is_float && !isfinite(ev->fvalue)) {
        *reason = TALLY_PROTO_REJECT_bad_value;
        return TALLY_EINVAL;
    }
    if (ev->ts_ms < 0) {
        *reason = TALLY_PROTO_REJECT_bad_time;
        return TALLY_EINVAL;
    }
    if (ev->nlabels > TALLY_MAX_LABELS || (ev->nlabels && !ev->labels)) {
        *reason = TALLY_PROTO_REJECT_too_many_labels;
        return TALLY_EINVAL;
    }
    size_t total = 0;
    for (size_t i = 0; i < ev->nlabels; i++) {
        const tally_label_t *l = &ev->labels[i];
        total += (l->key ? strlen(l->key) : 0) + (l->value ? strlen(l->value) : 0) + 2;
        if (total > TALLY_MAX_LABELS_BYTES) {
            *reason = TALLY_PROTO_REJECT_too_long;
            return TALLY_EINVAL;
        }
        if (!l->key || !l->value || !valid_label_key(l->key, strlen(l->key)) ||
            !valid_label_value(l->value, strlen(l->value))) {
            *reason = TALLY_PROTO_REJECT_bad_name;
            return TALLY_EINVAL;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(ev->labels[j].key, l->key) == 0) {
                *reason = TALLY_PROTO_REJECT_duplicate_field;
                return TALLY_EINVAL;
            }
    }
    return 0;
}

static int
pack_cstr(msgpack_packer *pk, const char *s, size_t len)
{
    if (msgpack_pack_str(pk, len) != 0 || msgpack_pack_str_body(pk, s, len) != 0)
        return -1;
    return 0;
}

#define PACK_KEY(pk, k) pack_cstr((pk), (k), 1)

int
tally__encode_event(msgpack_sbuffer *sb, const tally_event_t *ev, int64_t ts_ms)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    int bad = 0;
    bad |= msgpack_pack_map(&pk, ev->nlabels ? 5 : 4);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_NS);
    bad |= pack_cstr(&pk, ev->ns, strlen(ev->ns));
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_METRIC);
    bad |= pack_cstr(&pk, ev->metric, strlen(ev->metric));
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_VALUE);
    bad |=
        ev->is_float ? msgpack_pack_double(&pk, ev->fvalue) : msgpack_pack_int64(&pk, ev->ivalue);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_TIME);
    bad |= msgpack_pack_int64(&pk, ts_ms);
    if (ev->nlabels) {
        bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_LABELS);
        bad |= msgpack_pack_map(&pk, ev->nlabels);
        for (size_t i = 0; i < ev->nlabels; i++) {
            bad |= pack_cstr(&pk, ev->labels[i].key, strlen(ev->labels[i].key));
            bad |= pack_cstr(&pk, ev->labels[i].value, strlen(ev->labels[i].value));
        }
    }
    return bad ? -ENOMEM : 0;
}

int
tally__encode_batch(msgpack_sbuffer *out, const char *producer, uint64_t seq, uint64_t base,
                    uint32_t nevents, const void *events, size_t events_len)
{
    return tally__encode_batch_v2(out, NULL, producer, seq, base, nevents, events, events_len);
}

int
tally__encode_batch_v2(msgpack_sbuffer *out, const tally__cred_t *cred, const char *producer,
                       uint64_t seq, uint64_t base, uint32_t nevents, const void *events,
                       size_t events_len)
{
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int bad = 0;
    bad |= msgpack_pack_map(&pk, cred ? 7 : 6);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_KIND);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_KIND_batch_v1);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_VERSION);
    bad |= msgpack_pack_uint32(&pk, cred ? TALLY_PROTO_VERSION_V2 : TALLY_PROTO_VERSION_V1);
    if (cred) {
        bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_CREDENTIAL);
        bad |= pack_cstr(&pk, cred->name, cred->name_len);
    }
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_PRODUCER);
    bad |= pack_cstr(&pk, producer, strlen(producer));
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_SEQ);
    bad |= msgpack_pack_uint64(&pk, seq);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_BASE);
    bad |= msgpack_pack_uint64(&pk, base);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_EVENTS);
    bad |= msgpack_pack_array(&pk, nevents);
    bad |= msgpack_sbuffer_write(out, events, events_len);
    if (cred && !bad) {
        uint8_t tag[TALLY__MAC_LEN];
        tally__mac(cred->key, out->data + start, out->size - start, tag);
        bad |= msgpack_sbuffer_write(out, (const char *)tag, sizeof tag);
    }
    return bad ? -ENOMEM : 0;
}

int
tally__encode_ack(msgpack_sbuffer *out, const char *producer, size_t producer_len, uint64_t hwm,
                  uint64_t max_seq)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    int bad = 0;
    bad |= msgpack_sbuffer_write(out, producer, producer_len);
    bad |= msgpack_sbuffer_write(out, "", 1);
    bad |= msgpack_pack_map(&pk, 5);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_KIND);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_KIND_ack_v1);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_VERSION);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_VERSION_V1);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_PRODUCER);
    bad |= pack_cstr(&pk, producer, producer_len);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_HWM);
    bad |= msgpack_pack_uint64(&pk, hwm);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_MAXSEQ);
    bad |= msgpack_pack_uint64(&pk, max_seq);
    return bad ? -ENOMEM : 0;
}

/* An ack's map, exactly: k = 2, v = version, h, c, and "p" when version 1
 * (a v2 ack's topic stands for the producer). Everything read, nothing more. */
static int
read_ack_map(rd_t *r, uint64_t version_want, tally__wire_ack_t *out)
{
    uint32_t n;
    unsigned seen = 0, need = version_want == TALLY_PROTO_VERSION_V1 ? 31 : 27;
    uint64_t kind = 0, version = 0;
    if (rd_container(r, 1, &n) != RD_OK)
        return TALLY_EPROTO;
    for (uint32_t i = 0; i < n; i++) {
        tally__str_t k;
        int rc;
        unsigned bit;
        if (rd_str(r, &k) != RD_OK)
            return TALLY_EPROTO;
        switch (key_letter(&k)) {
        case 'k':
            bit = 1;
            rc = rd_uint(r, &kind);
            break;
        case 'v':
            bit = 2;
            rc = rd_uint(r, &version);
            break;
        case 'p':
            if (version_want != TALLY_PROTO_VERSION_V1)
                return TALLY_EPROTO;
            bit = 4;
            rc = rd_str(r, &out->producer);
            break;
        case 'h':
            bit = 8;
            rc = rd_uint(r, &out->hwm);
            break;
        case 'c':
            bit = 16;
            rc = rd_uint(r, &out->max_seq);
            break;
        default:
            return TALLY_EPROTO;
        }
        if (rc != RD_OK || (seen & bit))
            return TALLY_EPROTO;
        seen |= bit;
    }
    if (seen != need || r->p != r->end || kind != TALLY_PROTO_KIND_ack_v1 ||
        version != version_want)
        return TALLY_EPROTO;
    return 0;
}

int
tally__decode_ack(const void *buf, size_t len, tally__wire_ack_t *out)
{
    const uint8_t *nul = memchr(buf, 0, len);
    memset(out, 0, sizeof *out);
    if (!nul)
        return TALLY_EPROTO;
    rd_t r = {nul + 1, (const uint8_t *)buf + len};
    if (read_ack_map(&r, TALLY_PROTO_VERSION_V1, out) != 0)
        return TALLY_EPROTO;
    if (out->producer.len != (size_t)(nul - (const uint8_t *)buf) ||
        memcmp(out->producer.p, buf, out->producer.len) != 0)
        return TALLY_EPROTO;
    return 0;
}

int
tally__encode_ack_v2(msgpack_sbuffer *out, const uint8_t key[TALLY__CRED_KEY_LEN],
                     const char *producer, size_t producer_len, uint64_t hwm, uint64_t max_seq)
{
    char topic[TALLY__ACK_TOPIC_LEN + 1];
    size_t start = out->size;
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    tally__ack_topic(key, producer, producer_len, topic);
    int bad = 0;
    bad |= msgpack_sbuffer_write(out, topic, sizeof topic); /* with its NUL */
    bad |= msgpack_pack_map(&pk, 4);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_KIND);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_KIND_ack_v1);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_VERSION);
    bad |= msgpack_pack_uint32(&pk, TALLY_PROTO_VERSION_V2);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_HWM);
    bad |= msgpack_pack_uint64(&pk, hwm);
    bad |= PACK_KEY(&pk, TALLY_PROTO_KEY_MAXSEQ);
    bad |= msgpack_pack_uint64(&pk, max_seq);
    if (!bad) {
        uint8_t tag[TALLY__MAC_LEN];
        tally__mac(key, out->data + start, out->size - start, tag);
        bad |= msgpack_sbuffer_write(out, (const char *)tag, sizeof tag);
    }
    return bad ? -ENOMEM : 0;
}

int
tally__decode_ack_v2(const void *buf, size_t len, const uint8_t key[TALLY__CRED_KEY_LEN],
                     const char *topic, tally__wire_ack_t *out)
{
    const uint8_t *b = buf;
    memset(out, 0, sizeof *out);
    /* topic, NUL, a map of at least 9 bytes, the tag */
    if (len < TALLY__ACK_TOPIC_LEN + 1 + 9 + TALLY__MAC_LEN ||
        memcmp(b, topic, TALLY__ACK_TOPIC_LEN + 1) != 0 || !tally__mac_check(key, b, len))
        return TALLY_EPROTO;
    rd_t r = {b + TALLY__ACK_TOPIC_LEN + 1, b + len - TALLY__MAC_LEN};
    return read_ack_map(&r, TALLY_PROTO_VERSION_V2, out);
}
