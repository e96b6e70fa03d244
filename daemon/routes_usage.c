/* routes_usage.c — usage_details, hourly_usage_details and usage_summary over lib/usage. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "ids.h"
#include "codec.h"
#include "auth.h"
#include "jsonw.h"
#include "log.h"
#include "selector.h"
#include "routes.h"
#include "stats.h"
#include "timeutil.h"
#include "usage.h"

#define SIX_HOURS_MS (6LL * 3600 * 1000)

/* ---- parsing ------------------------------------------------------------------ */

/* Time syntaxes a field accepts. */

/* Turn a requested [from, to) into the effective window, or write a 400. */
static int
make_window(int64_t from_ms, int64_t to_ms, const char *from_key, const char *to_key,
            tally__usage_window_t *w, tally_http_res_t *res)
{
    if (from_ms >= to_ms) {
        tally_http_error(res, 400, "EBADINPUT", "%s: must be before %s", from_key, to_key);
        return -1;
    }
    if (tally__usage_window(from_ms, to_ms, w) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "%s: the window leaves the years 0000..9999",
                         to_key);
        return -1;
    }
    return 0;
}

/* ---- rendering ---------------------------------------------------------------- */

/* A quantity as a JSON number: an integer when exact, a real otherwise. */
static void
put_qty(tally__jw_t *w, const tally__usage_qty_t *q)
{
    int64_t x;
    if (tally__usage_qty_as_int(q, &x))
        tally__jw_int(w, x);
    else
        tally__jw_double(w, tally__usage_qty_value(q));
}

/* tally's extension field (docs/semantics-overflow.md, daemon/openapi.json):
 * "tally_inexact": true on a line whose quantity passed int64 somewhere in
 * its integer sums and went on in double precision; absent otherwise, so
 * lines of the reference schema are unchanged. */
static void
put_inexact(tally__jw_t *w, const tally__usage_qty_t *q)
{
    if (!q->int_overflow)
        return;
    tally__jw_key(w, "tally_inexact");
    tally__jw_bool(w, 1);
}

/* ---- response cache ------------------------------------------------------------
 * Usage answers change only when a flush commits, so a rendered answer is
 * kept per (route, path namespace, window) and served again until the next
 * commit (the flush counter is the store's generation). Dashboards polling
 * the same window hit it; correctness does not depend on it. Loop thread
 * only; bounded: CACHE_SLOTS entries of at most CACHE_MAX_BODY bytes. */
#define CACHE_SLOTS 64
#define CACHE_MAX_BODY (64u * 1024u)

typedef struct cache_ent {
    uint64_t gen;
    uint64_t used;
    char key[192];
    char *body;
    size_t len;
} cache_ent_t;

static cache_ent_t cache[CACHE_SLOTS];
static uint64_t cache_clock;

static uint64_t
store_generation(void)
{
    /* the rollups change with every commit and every retention prune */
    return TALLY_STAT_GET(flushes) + TALLY_STAT_GET(retention_pruned);
}

static int
cache_get(const char *key, tally_http_res_t *res)
{
    uint64_t gen = store_generation();
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_ent_t *e = &cache[i];
        if (e->body && e->gen == gen && strcmp(e->key, key) == 0) {
            e->used = ++cache_clock;
            tally_http_set_body(res, 200, "application/json", e->body, e->len);
            return 1;
        }
    }
    return 0;
}

static void
cache_put(const char *key, uint64_t gen, const char *body, size_t len)
{
    if (len > CACHE_MAX_BODY || strlen(key) >= sizeof cache[0].key)
        return;
    cache_ent_t *victim = &cache[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        cache_ent_t *e = &cache[i];
        if (!e->body || e->gen != store_generation()) {
            victim = e;
            break;
        }
        if (e->used < victim->used)
            victim = e;
    }
    char *copy = malloc(len);
    if (!copy)
        return;
    memcpy(copy, body, len);
    free(victim->body);
    victim->body = copy;
    victim->len = len;
    victim->gen = gen;
    victim->used = ++cache_clock;
    snprintf(victim->key, sizeof victim->key, "%s", key);
}

static void
store_error(tally_http_res_t *res, int rc)
{
    tally_http_error(res, 500, "EINTERNAL", "cannot read usage from the store: %s",
                     tally_strerror(rc));
}

/* ---- usage_details -------------------------------------------------------------
 * Streamed (tally_http_stream): a producer on the thread pool renders the
 * items of a tally__usage_iter_t into pieces of about PIECE_BYTES, so a
 * read holds one piece and the iterator's bounded passes whatever the
 * number of series (docs/performance.md states the bound). Tally's
 * extensions (docs/api.md): limit + page_token, metric_label,
 * label_selector, group_by. */

/* below glibc's mmap threshold (128 KiB) with the slack: a piece then comes from the
 * heap and is reused, instead of fresh mmapped pages faulted in for each piece */
#define PIECE_BYTES (100u * 1024u)
#define LIMIT_MAX 100000
#define TOP_DEFAULT 100
#define TOP_MAX 10000
#define GROUPS_MAX 65536
#define TOKEN_MAX 1024

/* -- heavy reads per token (loop thread only) -- */

typedef struct heavy {
    char name[128];
    uint32_t n;
} heavy_t;

static heavy_t *heavy;
static size_t nheavy;

/* Take a heavy-read slot for the token, or say how many it holds. */
static int
heavy_take(const char *name, uint32_t max)
{
    for (size_t i = 0; i < nheavy; i++) {
        if (strcmp(heavy[i].name, name) == 0) {
            if (heavy[i].n >= max)
                return -1;
            heavy[i].n++;
            TALLY_STAT_ADD(heavy_reads, 1);
            return 0;
        }
    }
    heavy_t *nh = realloc(heavy, (nheavy + 1) * sizeof *nh);
    if (!nh)
        return -1;
    heavy = nh;
    snprintf(heavy[nheavy].name, sizeof heavy[nheavy].name, "%s", name);
    heavy[nheavy++].n = 1;
    TALLY_STAT_ADD(heavy_reads, 1);
    return 0;
}

static void
heavy_give(const char *name)
{
    for (size_t i = 0; i < nheavy; i++) {
        if (strcmp(heavy[i].name, name) == 0) {
            TALLY_STAT_ADD(heavy_reads, (uint64_t)-1);
            if (--heavy[i].n == 0)
                heavy[i] = heavy[--nheavy];
            return;
        }
    }
}

/* -- one streamed read -- */

typedef struct details {
    tally_ctx_t *ctx;
    tally__usage_query_t q;
    tally__usage_iter_t *it;
    tally__selector_t *sel;
    char ns[TALLY_MAX_NS_LEN + 1];
    char metric[TALLY_MAX_METRIC_LEN + 1];
    char group_by[TALLY_MAX_LABEL_KEY_LEN + 1];
    size_t limit;      /* items of a page (0: all); groups shown with group_by */
    size_t emitted;
    size_t emitted_first; /* 0 until the first piece went: (size_t)-1 after */
    int stage;         /* 0: nothing written; 1: items; 2: done */
    char qhash[17];    /* binds page tokens to the query */
    tally__usage_item_t last; /* the last item written (for the next page token) */
    char token[128];   /* the heavy slot's owner */
    /* a small plain answer goes in the response cache (finish, loop thread) */
    char key[192];
    uint64_t gen;
    char *cache_body;
    size_t cache_len;
    tally__jw_t jw;
    /* the window's ends as RFC 3339, rendered once (tally_route_put_time
     * keeps a loop-thread memo: producers run on the thread pool) */
    char from_txt[TALLY_TIME_RFC3339_LEN], to_txt[TALLY_TIME_RFC3339_LEN];
    size_t from_len, to_len;
    tally__jw_t scratch; /* the breakdown query's JSON, reused item to item */
} details_t;

/* Standard base64 of the breakdown query, with the window's text rendered once. */
static void
put_breakdown_query_d(tally__jw_t *jw, details_t *d, const tally__usage_item_t *it)
{
    tally__jw_t *q = &d->scratch;
    q->b.len = 0;
    q->depth = 0;
    q->count[0] = 0;
    q->after_key = 0;
    tally__jw_obj_begin(q);
    tally__jw_key(q, "namespace");
    tally__jw_str(q, it->ns);
    tally__jw_key(q, "metric_label");
    tally__jw_str(q, it->metric);
    tally__jw_key(q, "object_name");
    tally__jw_str(q, it->object);
    tally__jw_key(q, "from");
    tally__jw_str_plain(q, d->from_txt, d->from_len);
    tally__jw_key(q, "to");
    tally__jw_str_plain(q, d->to_txt, d->to_len);
    tally__jw_obj_end(q);
    char b64[1024];
    size_t bl = q->b.err ? 0 : tally__base64_encode(b64, sizeof b64, q->b.p, q->b.len);
    if (bl)
        tally__jw_str_plain(jw, b64, bl);
    else
        jw->b.err = 1;
}

static void
put_item(tally__jw_t *jw, details_t *d, const tally__usage_item_t *it)
{
    tally__jw_obj_begin(jw);
    tally__jw_key(jw, "namespace");
    tally__jw_str_plain(jw, it->ns, strlen(it->ns)); /* [a-z0-9-] */
    tally__jw_key(jw, "metric_label");
    tally__jw_str_plain(jw, it->metric, strlen(it->metric)); /* [A-Za-z0-9_.:-] */
    tally__jw_key(jw, "object_name");
    tally__jw_str(jw, it->object);
    tally__jw_key(jw, "usage_type");
    tally__jw_str(jw, it->def.usage_type);
    tally__jw_key(jw, "unit_name");
    tally__jw_str(jw, it->def.unit);
    tally__jw_key(jw, "quantity");
    put_qty(jw, &it->quantity);
    put_inexact(jw, &it->quantity);
    tally__jw_key(jw, "start_timestamp");
    tally__jw_str_plain(jw, d->from_txt, d->from_len);
    tally__jw_key(jw, "end_timestamp");
    tally__jw_str_plain(jw, d->to_txt, d->to_len);
    tally__jw_key(jw, "hourly_breakdown_query");
    put_breakdown_query_d(jw, d, it);
    tally__jw_key(jw, "hourly_breakdown");
    tally__jw_arr_begin(jw);
    tally__jw_arr_end(jw);
    tally__jw_obj_end(jw);
}

/* The page token after item `last`: base64url of {"q","ns","m","o"}. */
static void
put_page_token(tally__jw_t *jw, const details_t *d)
{
    tally__jw_t t;
    tally__jw_init(&t);
    tally__jw_obj_begin(&t);
    tally__jw_key(&t, "q");
    tally__jw_str_plain(&t, d->qhash, strlen(d->qhash));
    tally__jw_key(&t, "ns");
    tally__jw_str(&t, d->last.ns);
    tally__jw_key(&t, "m");
    tally__jw_str(&t, d->last.metric);
    tally__jw_key(&t, "o");
    tally__jw_str(&t, d->last.object);
    tally__jw_obj_end(&t);
    size_t len;
    char *text = tally__jw_take(&t, &len);
    char b64[TOKEN_MAX + 1];
    if (!text || sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING) >
                     sizeof b64) {
        free(text);
        jw->b.err = 1;
        return;
    }
    sodium_bin2base64(b64, sizeof b64, (const unsigned char *)text, len,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    free(text);
    tally__jw_key(jw, "next_page_token");
    tally__jw_str_plain(jw, b64, strlen(b64));
}

static void
put_groups(tally__jw_t *jw, const details_t *d, const tally__usage_group_t *g, size_t n,
           size_t total)
{
    tally__jw_obj_begin(jw);
    tally__jw_key(jw, "group_by");
    tally__jw_str(jw, d->group_by);
    tally__jw_key(jw, "start_timestamp");
    tally__jw_str_plain(jw, d->from_txt, d->from_len);
    tally__jw_key(jw, "end_timestamp");
    tally__jw_str_plain(jw, d->to_txt, d->to_len);
    tally__jw_key(jw, "total_groups");
    tally__jw_int(jw, (int64_t)total);
    tally__jw_key(jw, "usage_groups");
    tally__jw_arr_begin(jw);
    for (size_t i = 0; i < n; i++) {
        tally__jw_obj_begin(jw);
        tally__jw_key(jw, "metric_label");
        tally__jw_str(jw, g[i].metric);
        tally__jw_key(jw, "value");
        tally__jw_str(jw, g[i].value);
        tally__jw_key(jw, "usage_type");
        tally__jw_str(jw, g[i].def.usage_type);
        tally__jw_key(jw, "unit_name");
        tally__jw_str(jw, g[i].def.unit);
        tally__jw_key(jw, "quantity");
        put_qty(jw, &g[i].quantity);
        put_inexact(jw, &g[i].quantity);
        tally__jw_key(jw, "series");
        tally__jw_int(jw, (int64_t)g[i].series);
        tally__jw_obj_end(jw);
    }
    tally__jw_arr_end(jw);
    tally__jw_obj_end(jw);
}

/* Thread pool: the next piece of the answer. */
static int
details_produce(void *vd, char **piece, size_t *len, int *done)
{
    details_t *d = vd;
    tally__jw_t *jw = &d->jw;
    int rc = 0;
    if (!jw->b.p && !d->group_by[0]) {
        /* one allocation a piece: growing by doubling would copy it ~twice */
        if (!(jw->b.p = malloc(PIECE_BYTES + 16384)))
            return -ENOMEM;
        jw->b.cap = PIECE_BYTES + 16384;
        jw->b.len = 0;
    }
    if (d->group_by[0]) {
        tally__usage_group_t *g = NULL;
        size_t n = 0, total = 0;
        rc = tally__usage_groups(d->ctx->store, d->ctx->catalog, &d->q, d->group_by, GROUPS_MAX,
                                 d->limit ? d->limit : TOP_DEFAULT, &g, &n, &total);
        if (rc == TALLY_ETOOBIG) {
            /* bounded memory: a group per distinct value, at most GROUPS_MAX */
            char msg[200];
            snprintf(msg, sizeof msg,
                     "group_by: more than %d distinct (metric, value) pairs; narrow the read "
                     "with metric_label or label_selector",
                     GROUPS_MAX);
            tally__jw_obj_begin(jw);
            tally__jw_key(jw, "code");
            tally__jw_str(jw, "EBADINPUT");
            tally__jw_key(jw, "message");
            tally__jw_str(jw, msg);
            tally__jw_obj_end(jw);
            *done = 1;
            *piece = jw->b.p;
            *len = jw->b.len;
            jw->b.p = NULL;
            jw->b.len = jw->b.cap = 0;
            return 400;
        }
        if (rc)
            return rc;
        put_groups(jw, d, g, n, total);
        tally__usage_groups_free(g);
        d->stage = 2;
    } else {
        if (d->stage == 0) {
            if ((rc = tally__usage_iter_open(d->ctx->store, d->ctx->catalog, &d->q, &d->it)) != 0)
                return rc;
            tally__jw_obj_begin(jw);
            tally__jw_key(jw, "usage_items");
            tally__jw_arr_begin(jw);
            d->stage = 1;
        }
        const tally__usage_item_t *e;
        while (d->stage == 1 && jw->b.len < PIECE_BYTES) {
            rc = tally__usage_iter_next(d->it, &e);
            if (rc < 0)
                return rc;
            if (rc == 1 && d->limit && d->emitted == d->limit) {
                /* one more exists: the page ends here, with a token */
                tally__jw_arr_end(jw);
                put_page_token(jw, d);
                tally__jw_obj_end(jw);
                d->stage = 2;
                break;
            }
            if (rc == 0) {
                tally__jw_arr_end(jw);
                tally__jw_obj_end(jw);
                d->stage = 2;
                break;
            }
            put_item(jw, d, e);
            d->emitted++;
            if (d->limit)
                d->last = *e;
        }
    }
    if (jw->b.err)
        return -ENOMEM;
    *done = d->stage == 2;
    *piece = jw->b.p;
    *len = jw->b.len;
    /* the writer keeps its nesting state; its buffer goes with the piece */
    jw->b.p = NULL;
    jw->b.len = jw->b.cap = 0;
    if (*done && d->key[0] && !d->cache_body && *len > 0 && *len <= CACHE_MAX_BODY && *piece &&
        d->stage == 2 && d->emitted == d->emitted_first) {
        /* the whole answer was this one piece */
        if ((d->cache_body = malloc(*len)) != NULL) {
            memcpy(d->cache_body, *piece, *len);
            d->cache_len = *len;
        }
    }
    d->emitted_first = (size_t)-1; /* only the first piece may be the whole answer */
    return 0;
}

/* Loop thread: the stream is over. */
static void
details_finish(void *vd, int ok, uint64_t sent)
{
    details_t *d = vd;
    (void)sent;
    if (ok && d->cache_body)
        cache_put(d->key, d->gen, d->cache_body, d->cache_len);
    free(d->cache_body);
    heavy_give(d->token);
    tally__usage_iter_close(d->it);
    tally__selector_destroy(d->sel);
    tally__jw_fini(&d->jw);
    tally__jw_fini(&d->scratch);
    free(d);
}

/* A page token: base64url JSON from put_page_token, for this very query. */
static int
parse_page_token(json_t *v, details_t *d, const char *path_ns, tally_http_res_t *res)
{
    const char *b64 = json_string_value(v);
    size_t len = b64 ? strlen(b64) : 0, blen = 0;
    const char *end = NULL;
    unsigned char bin[TOKEN_MAX];
    json_error_t e;
    if (!json_is_string(v) || len == 0 || len > TOKEN_MAX ||
        sodium_base642bin(bin, sizeof bin, b64, len, NULL, &blen, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != b64 + len) {
        tally_http_error(res, 400, "EBADINPUT",
                         "page_token: not a token of this API (pass next_page_token as is)");
        return -1;
    }
    json_t *doc = json_loadb((const char *)bin, blen, JSON_REJECT_DUPLICATES, &e);
    const char *q = json_string_value(json_object_get(doc, "q"));
    const char *ns = json_string_value(json_object_get(doc, "ns"));
    const char *m = json_string_value(json_object_get(doc, "m"));
    const char *o = json_string_value(json_object_get(doc, "o"));
    int ok = json_is_object(doc) && q && ns && m && o && json_object_size(doc) == 4 &&
             tally__valid_ns(ns, strlen(ns)) && tally__valid_metric(m, strlen(m)) &&
             strlen(o) <= TALLY_MAX_LABEL_VALUE_LEN;
    if (!ok) {
        json_decref(doc);
        tally_http_error(res, 400, "EBADINPUT",
                         "page_token: not a token of this API (pass next_page_token as is)");
        return -1;
    }
    if (strcmp(q, d->qhash) != 0 || !tally__usage_ns_allowed(path_ns, ns)) {
        json_decref(doc);
        tally_http_error(res, 400, "EBADINPUT",
                         "page_token: made for another request (namespace, window and filters "
                         "must stay the same from page to page)");
        return -1;
    }
    d->q.has_after = 1;
    snprintf(d->q.after_ns, sizeof d->q.after_ns, "%s", ns);
    snprintf(d->q.after_metric, sizeof d->q.after_metric, "%s", m);
    snprintf(d->q.after_object, sizeof d->q.after_object, "%s", o);
    json_decref(doc);
    return 0;
}

/* A label key as the API takes it: [A-Za-z0-9_.-/], 1..TALLY_MAX_LABEL_KEY_LEN bytes. */
static int
valid_label_key(const char *k)
{
    size_t n = strlen(k);
    if (n == 0 || n > TALLY_MAX_LABEL_KEY_LEN)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || c == '/'))
            return 0;
    }
    return 1;
}

/* The extensions of the body; 0, or -1 after writing a 400 naming the field. */
static int
parse_extensions(json_t *body, details_t *d, const char *path_ns, tally_http_res_t *res)
{
    json_t *v;
    char sel_text[256] = "";
    if ((v = json_object_get(body, "metric_label")) && !json_is_null(v)) {
        const char *m = json_string_value(v);
        if (!m || !tally__valid_metric(m, strlen(m))) {
            tally_http_error(res, 400, "EBADINPUT",
                             "metric_label: must be a metric label ([A-Za-z0-9_.:-], 1..%d bytes)",
                             TALLY_MAX_METRIC_LEN);
            return -1;
        }
        snprintf(d->metric, sizeof d->metric, "%s", m);
    }
    if ((v = json_object_get(body, "label_selector")) && !json_is_null(v)) {
        char err[160];
        if (!json_is_string(v)) {
            tally_http_error(res, 400, "EBADINPUT", "label_selector: must be a string");
            return -1;
        }
        if (tally__selector_parse(json_string_value(v), &d->sel, err, sizeof err) != 0) {
            tally_http_error(res, 400, "EBADINPUT", "label_selector: %s", err);
            return -1;
        }
        tally__selector_format(d->sel, sel_text, sizeof sel_text);
    }
    if ((v = json_object_get(body, "group_by")) && !json_is_null(v)) {
        const char *g = json_string_value(v);
        if (!g || !valid_label_key(g)) {
            tally_http_error(res, 400, "EBADINPUT",
                             "group_by: must be one label key ([A-Za-z0-9_./-], 1..%d bytes)",
                             TALLY_MAX_LABEL_KEY_LEN);
            return -1;
        }
        snprintf(d->group_by, sizeof d->group_by, "%s", g);
    }
    if ((v = json_object_get(body, "limit")) && !json_is_null(v)) {
        json_int_t max = d->group_by[0] ? TOP_MAX : LIMIT_MAX;
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > max) {
            tally_http_error(res, 400, "EBADINPUT", "limit: must be an integer in 1..%lld",
                             (long long)max);
            return -1;
        }
        d->limit = (size_t)json_integer_value(v);
    }
    /* what a page token is bound to: the path, the window and the filters */
    unsigned char h[8];
    char bind[640];
    int bl = snprintf(bind, sizeof bind, "%s|%lld|%lld|%s|%s", path_ns, (long long)d->q.w.from_s,
                      (long long)d->q.w.to_s, d->metric, sel_text);
    crypto_generichash(h, sizeof h, (const unsigned char *)bind, (size_t)bl, NULL, 0);
    sodium_bin2hex(d->qhash, sizeof d->qhash, h, sizeof h);
    if ((v = json_object_get(body, "page_token")) && !json_is_null(v)) {
        if (d->group_by[0]) {
            tally_http_error(res, 400, "EBADINPUT",
                             "page_token: not with group_by (group_by answers one top-N page)");
            return -1;
        }
        if (parse_page_token(v, d, path_ns, res) != 0)
            return -1;
    }
    return 0;
}

static const tally_http_stream_ops_t details_ops = {details_produce, details_finish};

void
tally_route_usage_details(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    int64_t now = tally__time_now_ms(), from_ms = 0, to_ms = now;
    tally__usage_window_t w;
    int has_from = 0, has_to = 0;
    details_t *d = NULL;
    if (tally_route_body_ns(body, path_ns, res) != 0 ||
        (has_from = tally_route_body_time(body, "from", TALLY_ROUTE_TIME_RFC3339, &from_ms, res)) < 0 ||
        (has_to = tally_route_body_time(body, "to", TALLY_ROUTE_TIME_RFC3339, &to_ms, res)) < 0)
        goto out;
    /* Default: month to date (the month of `to` when only `to` is given). */
    if (!has_from)
        from_ms = tally__time_month_start((has_to ? to_ms - 1 : now) / 1000) * 1000;
    if (make_window(from_ms, to_ms, "from", "to", &w, res) != 0)
        goto out;
    if (!(d = calloc(1, sizeof *d))) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory");
        goto out;
    }
    d->ctx = ctx;
    d->q.w = w;
    d->from_len = tally__time_format_rfc3339(w.from_s, d->from_txt, sizeof d->from_txt);
    d->to_len = tally__time_format_rfc3339(w.to_s, d->to_txt, sizeof d->to_txt);
    if (parse_extensions(body, d, path_ns, res) != 0)
        goto out;
    snprintf(d->ns, sizeof d->ns, "%s", path_ns);
    d->q.ns = tally__usage_scope(path_ns) ? d->ns : NULL;
    if (d->metric[0])
        d->q.metric = d->metric;
    d->q.selector = d->sel;
    int plain = !d->metric[0] && !d->sel && !d->group_by[0] && !d->limit && !d->q.has_after;
    if (plain) {
        snprintf(d->key, sizeof d->key, "details|%s|%lld|%lld", path_ns, (long long)w.from_s,
                 (long long)w.to_s);
        if (cache_get(d->key, res))
            goto out;
        /* read the generation first: a commit during the scan makes the
         * entry stale at once rather than wrongly fresh */
        d->gen = store_generation();
    }
    const tally__token_t *tok = tally_route_token(req);
    snprintf(d->token, sizeof d->token, "%s", tok ? tally__token_name(tok) : "");
    if (heavy_take(d->token, ctx->cfg->http.max_heavy_reads_per_token) != 0) {
        TALLY_STAT_ADD(heavy_reads_refused, 1);
        tally__log_info("usage read refused: token runs its most heavy reads at once token=%s "
                        "max=%u", d->token, ctx->cfg->http.max_heavy_reads_per_token);
        tally_http_error(res, 429, "ETOOMANY",
                         "this token already runs %u usage reads at once "
                         "(http.max_heavy_reads_per_token); retry when one has finished",
                         ctx->cfg->http.max_heavy_reads_per_token);
        res->retry_after = 1;
        goto out;
    }
    tally__jw_init(&d->jw);
    if (tally_http_stream(req, res, 200, "application/json", &details_ops, d) != 0) {
        /* not served by a server (the fuzz harness): answer here, whole */
        char *all = NULL;
        size_t n = 0;
        int done = 0, rc = 0;
        while (!done && rc == 0) {
            char *piece = NULL;
            size_t len = 0;
            if ((rc = details_produce(d, &piece, &len, &done)) == 0 && len) {
                char *na = realloc(all, n + len);
                if (!na)
                    rc = -ENOMEM;
                else
                    memcpy((all = na) + n, piece, len), n += len;
            }
            free(piece);
        }
        if (rc) {
            free(all);
            store_error(res, rc);
        } else {
            tally_http_take_body(res, 200, "application/json", all, n);
        }
        details_finish(d, 0, 0);
    }
    d = NULL;
out:
    if (d) {
        tally__selector_destroy(d->sel);
        free(d);
    }
    json_decref(body);
}

/* ---- hourly_usage_details --------------------------------------------------------- */

/* A decoded hourly breakdown query; strings point into `doc`. */
typedef struct hourly_query {
    json_t *doc;
    const char *ns, *metric, *object;
    int64_t from_ms, to_ms;
} hourly_query_t;

/* Decode and check the base64 JSON query, or write a 400 naming `query`. */
static int
parse_query(const char *b64, hourly_query_t *q, tally_http_res_t *res)
{
    size_t len = strlen(b64), blen = 0;
    const char *end = NULL;
    unsigned char *bin = malloc(len + 1);
    json_error_t e;
    if (!bin) {
        tally_http_error(res, 500, "EINTERNAL", "out of memory");
        return -1;
    }
    if (len == 0 ||
        sodium_base642bin(bin, len + 1, b64, len, NULL, &blen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64 + len) {
        free(bin);
        tally_http_error(res, 400, "EBADINPUT",
                         "query: not standard base64 (pass hourly_breakdown_query as is)");
        return -1;
    }
    q->doc = json_loadb((const char *)bin, blen, JSON_REJECT_DUPLICATES, &e);
    free(bin);
    if (!q->doc || !json_is_object(q->doc)) {
        tally_http_error(res, 400, "EBADINPUT",
                         "query: does not decode to a JSON object (pass hourly_breakdown_query "
                         "as is)");
        return -1;
    }
    const char *keys[] = {"namespace", "metric_label", "object_name", "from", "to"};
    const char *vals[5];
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(q->doc, keys[i]);
        if (!json_is_string(v)) {
            tally_http_error(res, 400, "EBADINPUT", "query: field %s missing or not a string",
                             keys[i]);
            return -1;
        }
        vals[i] = json_string_value(v);
    }
    q->ns = vals[0];
    q->metric = vals[1];
    q->object = vals[2];
    if (!tally__valid_ns(q->ns, strlen(q->ns)) ||
        !tally__valid_metric(q->metric, strlen(q->metric)) ||
        strlen(q->object) > TALLY_MAX_LABEL_VALUE_LEN) {
        tally_http_error(res, 400, "EBADINPUT",
                         "query: namespace, metric_label or object_name is malformed");
        return -1;
    }
    if (tally__time_parse_rfc3339(vals[3], &q->from_ms) != 0 ||
        tally__time_parse_rfc3339(vals[4], &q->to_ms) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "query: from and to must be RFC 3339 date-times");
        return -1;
    }
    return 0;
}

void
tally_route_hourly_usage_details(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    const char *path_ns = tally_route_param(req, "namespace");
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    hourly_query_t q = {0};
    tally__usage_window_t w;
    tally__usage_hour_t *hours = NULL;
    size_t n = 0;
    int rc;
    if (tally_route_body_ns(body, path_ns, res) != 0)
        goto out;
    json_t *qv = json_object_get(body, "query");
    if (!json_is_string(qv)) {
        tally_http_error(res, 400, "EBADINPUT",
                         qv ? "query: must be a string (an hourly_breakdown_query)"
                            : "query: required (an hourly_breakdown_query of usage_details)");
        goto out;
    }
    if (parse_query(json_string_value(qv), &q, res) != 0)
        goto out;
    if (!tally__usage_ns_allowed(path_ns, q.ns)) {
        tally_http_error(res, 403, "EPERMS",
                         "query: namespace '%s' is outside the namespace of the path '%s'", q.ns,
                         path_ns);
        goto out;
    }
    if (q.from_ms >= q.to_ms || tally__usage_window(q.from_ms, q.to_ms, &w) != 0) {
        tally_http_error(res, 400, "EBADINPUT", "query: from must be before to");
        goto out;
    }
    if ((rc = tally__usage_hourly(ctx->store, ctx->catalog, q.ns, q.metric, q.object, &w, &hours,
                                  &n)) != 0) {
        store_error(res, rc);
        goto out;
    }
    tally__metric_def_t tmp;
    const tally__metric_def_t *def = tally__catalog_lookup_or_default(ctx->catalog, q.metric, &tmp);
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "hourly_usage_items");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < n; i++) {
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "start_timestamp");
        tally_route_put_time(&jw, hours[i].hour_s);
        tally__jw_key(&jw, "end_timestamp");
        tally_route_put_time(&jw, hours[i].hour_s + 3600);
        tally__jw_key(&jw, "quantity");
        put_qty(&jw, &hours[i].quantity);
        put_inexact(&jw, &hours[i].quantity);
        tally__jw_key(&jw, "unit_name");
        tally__jw_str(&jw, def->unit);
        tally__jw_key(&jw, "deployment");
        tally__jw_str(&jw, hours[i].deployment);
        tally__jw_key(&jw, "container");
        tally__jw_str(&jw, hours[i].container);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally__usage_hours_free(hours);
    tally_route_respond(res, &jw);
out:
    json_decref(q.doc);
    json_decref(body);
}

/* ---- usage_summary ------------------------------------------------------------------ */

void
tally_route_usage_summary(tally_ctx_t *ctx, tally_http_req_t *req, tally_http_res_t *res)
{
    json_t *body = tally_route_body_json(req, res);
    if (!body)
        return;
    int64_t now = tally__time_now_ms(), start_ms = 0, end_ms = 0;
    tally__usage_window_t w;
    tally__usage_summary_t *sums = NULL;
    size_t n = 0;
    int has_start = 0, has_end = 0, rc;
    if ((has_start = tally_route_body_time(body, "start_time", TALLY_ROUTE_TIME_ANY, &start_ms, res)) < 0 ||
        (has_end = tally_route_body_time(body, "end_time", TALLY_ROUTE_TIME_ANY, &end_ms, res)) < 0)
        goto out;
    /* The spec's defaults: a 6-hour window ending now, or 6 hours from/to the given end. */
    if (!has_start && !has_end) {
        end_ms = now;
        start_ms = now - SIX_HOURS_MS;
    } else if (!has_end) {
        end_ms = start_ms + SIX_HOURS_MS;
    } else if (!has_start) {
        start_ms = end_ms - SIX_HOURS_MS;
    }
    if (make_window(start_ms, end_ms, "start_time", "end_time", &w, res) != 0)
        goto out;
    if ((rc = tally__usage_summary(ctx->store, ctx->catalog, NULL, &w, &sums, &n)) != 0) {
        store_error(res, rc);
        goto out;
    }
    tally__jw_t jw;
    tally__jw_init(&jw);
    tally__jw_obj_begin(&jw);
    tally__jw_key(&jw, "usage_summary_items");
    tally__jw_arr_begin(&jw);
    for (size_t i = 0; i < n; i++) {
        const tally__usage_summary_t *s = &sums[i];
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "name");
        tally__jw_str(&jw, s->usage_type);
        tally__jw_key(&jw, "service");
        tally__jw_str(&jw, "tally");
        put_inexact(&jw, &s->raw);
        tally__jw_key(&jw, "usage_metric_data");
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "unit");
        tally__jw_str(&jw, s->unit);
        tally__jw_key(&jw, "metric_value");
        tally__jw_obj_begin(&jw);
        /* the value holds at the end of the requested window */
        tally__jw_key(&jw, "timestamp");
        tally__jw_int(&jw, end_ms / 1000);
        tally__jw_key(&jw, "value");
        tally__jw_str(&jw, s->raw_text);
        tally__jw_obj_end(&jw);
        tally__jw_obj_end(&jw);
        tally__jw_key(&jw, "billing_metric_data");
        tally__jw_obj_begin(&jw);
        tally__jw_key(&jw, "unit");
        tally__jw_str(&jw, s->billable_unit);
        tally__jw_key(&jw, "value");
        tally__jw_str(&jw, s->billable_text);
        tally__jw_obj_end(&jw);
        tally__jw_obj_end(&jw);
    }
    tally__jw_arr_end(&jw);
    tally__jw_obj_end(&jw);
    tally__usage_summaries_free(sums);
    tally_route_respond(res, &jw);
out:
    json_decref(body);
}
