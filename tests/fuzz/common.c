/* common.c — shared helpers of the libFuzzer harnesses: temp files, a daemon context, HTTP request parsing. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "common.h"
#include "log.h"
#include "rollup.h"
#include "timeutil.h"

#ifndef TALLY_FUZZ_SOURCE_DIR
#define TALLY_FUZZ_SOURCE_DIR "."
#endif

static char tmpdir[256];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void fuzz_ctx_free(void);

static void
cleanup(void)
{
    fuzz_ctx_free();
    if (tmpdir[0])
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_tmpdir(void)
{
    if (tmpdir[0])
        return tmpdir;
    /* tests/fuzz.sh hands one base to all runs and removes it after them,
     * crashed runs included (their atexit() never runs) */
    const char *base = getenv("TALLY_FUZZ_TMPDIR");
    if (!base || !base[0])
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/tally-fuzz-XXXXXX", base && base[0] ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("fuzz: mkdtemp");
        abort();
    }
    atexit(cleanup);
    return tmpdir;
}

const char *
fuzz_write_file(const char *name, const uint8_t *data, size_t size)
{
    static char paths[8][512];
    static int next;
    char *path = paths[next++ & 7];
    snprintf(path, 512, "%s/%s", fuzz_tmpdir(), name);
    FILE *fp = fopen(path, "wb");
    if (!fp || (size && fwrite(data, 1, size, fp) != size) || fclose(fp) != 0) {
        perror("fuzz: write temp file");
        abort();
    }
    return path;
}

const char *
fuzz_src(const char *rel, char *buf, size_t cap)
{
    const char *root = getenv("TALLY_SOURCE_DIR");
    snprintf(buf, cap, "%s/%s", root && root[0] ? root : TALLY_FUZZ_SOURCE_DIR, rel);
    return buf;
}

int
fuzz_ini_known_bug(const uint8_t *data, size_t size)
{
    /* both INI bugs the fuzzer found are fixed (lib/config.c); inputs that
     * hit them are replayed from tests/fuzz/regressions/ */
    (void)data;
    (void)size;
    return 0;
}

/* ---- context ---------------------------------------------------------------- */

static tally_ctx_t ctx;
static tally__config_t *cfg;
static tally__catalog_t *catalog;
static tally__plans_t *plans;
static tally__store_t *store;
static tally__tokens_t *tokens;
static int ctx_ready;

static void
fuzz_ctx_free(void)
{
    if (!ctx_ready)
        return;
    tally__store_close(store);
    tally__plans_destroy(plans);
    tally__catalog_destroy(catalog);
    tally__tokens_destroy(tokens);
    tally__config_destroy(cfg);
    ctx_ready = 0;
}

static void
die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz: %s: %s\n", what, err);
    abort();
}

/* A little usage, so the usage, pricing and hourly routes render items:
 * demo/http_requests (object x) and shop/vcpu_seconds in January 2024 and now. */
static void
seed_store(tally__store_t *s)
{
    static const struct {
        const char *ns, *metric, *object;
        int is_float;
    } series[] = {{"demo", "http_requests", "x", 0}, {"shop", "vcpu_seconds", NULL, 1}};
    int64_t now_h = (int64_t)time(NULL) / 3600 * 3600;
    const int64_t hours[] = {1704067200, 1704067200 + 3600, 1704067200 + 7200, now_h - 3600};
    for (size_t i = 0; i < sizeof series / sizeof series[0]; i++) {
        for (size_t h = 0; h < sizeof hours / sizeof hours[0]; h++) {
            tally_label_t lab[3] = {{"object", series[i].object},
                                    {"deployment", "web"},
                                    {"container", "nginx"}};
            char key[TALLY_SERIES_KEY_MAX];
            size_t klen = series[i].object
                              ? tally__series_key(key, series[i].ns, strlen(series[i].ns),
                                                  series[i].metric, strlen(series[i].metric), lab, 3)
                              : tally__series_key(key, series[i].ns, strlen(series[i].ns),
                                                  series[i].metric, strlen(series[i].metric),
                                                  lab + 1, 2);
            tally__rollup_t r;
            tally__rollup_init(&r);
            tally__rollup_add(&r, series[i].is_float, 7, 2.5, (hours[h] + 1) * 1000);
            tally__rollup_add(&r, series[i].is_float, 5, 0.25, (hours[h] + 2) * 1000);
            tally__store_put_t hp = {key, (uint32_t)klen, hours[h], &r, 1};
            tally__store_put_t mp = {key, (uint32_t)klen, tally__time_month_start(hours[h]), &r, 0};
            if (tally__store_commit(s, &hp, 1, &mp, 1, NULL, 0) != 0)
                die("store", "cannot seed usage");
        }
    }
}

tally_ctx_t *
fuzz_ctx(void)
{
    if (ctx_ready)
        return &ctx;
    char err[512], metrics[512], plansf[512];
    const char *dir = fuzz_tmpdir();
    static const char tok[] = "fuzz-admin  admin  *     plain:fuzz-admin-token\n"
                              "fuzz-editor editor demo  plain:fuzz-editor-token\n"
                              "fuzz-viewer viewer demo  plain:fuzz-viewer-token\n";
    const char *tokens_path = fuzz_write_file("ctx-tokens", (const uint8_t *)tok, sizeof tok - 1);
    char conf[2048];
    /* organization: the plan with the highest api_limits, so 429s stay rare;
     * rate_per_token 0: unlimited; log level error: quiet */
    int n = snprintf(conf, sizeof conf,
                     "[storage]\ndir = %s/store\nmap_size_mb = 64\n"
                     "[ingest]\nlisten = inproc://fuzz-in\nacks = inproc://fuzz-acks\n"
                     "[http]\nrate_per_token = 0\n"
                     "[auth]\ntokens_file = %s\n"
                     "[billing]\nplans_file = %s\nmetrics_file = %s\ndefault_plan = organization\n"
                     "[quota]\nalerts = inproc://fuzz-alerts\n"
                     "[log]\nlevel = error\n",
                     dir, tokens_path, fuzz_src("config/plans.ini", plansf, sizeof plansf),
                     fuzz_src("config/metrics.ini", metrics, sizeof metrics));
    const char *conf_path = fuzz_write_file("ctx-tallyd.conf", (const uint8_t *)conf, (size_t)n);
    if (tally__config_load(conf_path, &cfg, err, sizeof err) != 0)
        die("config", err);
    tally__log_set_level(cfg->log.level);
    if (tally__catalog_load(cfg->billing.metrics_file, &catalog, err, sizeof err) != 0)
        die("metrics catalog", err);
    if (tally__tokens_load(cfg->auth.tokens_file, &tokens, err, sizeof err) != 0)
        die("tokens", err);
    if (tally__plans_load(cfg->billing.plans_file, catalog, &plans, err, sizeof err) != 0)
        die("plans", err);
    int rc = tally__store_open(cfg->storage.dir, cfg->storage.map_size_mb << 20, 0, &store);
    if (rc != 0)
        die("store", "cannot open");
    seed_store(store);
    ctx.cfg = cfg;
    ctx.catalog = catalog;
    ctx.plans = plans;
    ctx.store = store;
    ctx.tokens = tokens;
    ctx.http = NULL;
    ctx.started_ms = 0;
    ctx_ready = 1;
    return &ctx;
}

void
fuzz_trace(const char *path, const tally_http_res_t *res)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("TALLY_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz: %d %s %.300s\n", res->status, path,
                res->body && res->body_len ? res->body : "");
}

/* ---- HTTP: http-parser callbacks as in daemon/http.c ------------------------ */

#define MAX_HEADER_BYTES 8192u
#define MAX_HEADERS 64u
#define MAX_BODY_BYTES (1u << 20)

typedef struct sbuf {
    char *p;
    size_t len, cap;
} sbuf_t;

enum hdr { HDR_NONE, HDR_AUTH, HDR_CTYPE, HDR_TE };

typedef struct pstate {
    tally_ctx_t *ctx;
    sbuf_t url, body, auth, ctype, field, te;
    int nauth, last_was_value, error, dispatched;
    enum hdr cur;
    uint32_t nheaders;
    size_t header_bytes;
} pstate_t;

static int
sbuf_add(sbuf_t *b, const char *p, size_t n, size_t cap)
{
    if (b->len + n + 1 > cap)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 128;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *np = realloc(b->p, ncap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static void
sbuf_reset(sbuf_t *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

static void
reset(pstate_t *s)
{
    sbuf_reset(&s->url);
    sbuf_reset(&s->body);
    sbuf_reset(&s->auth);
    sbuf_reset(&s->ctype);
    sbuf_reset(&s->field);
    sbuf_reset(&s->te);
    s->nauth = s->last_was_value = 0;
    s->cur = HDR_NONE;
    s->nheaders = 0;
    s->header_bytes = 0;
}

static int
fail(pstate_t *s)
{
    s->error = 1;
    return -1;
}

static int
cb_begin(http_parser *p)
{
    reset(p->data);
    return 0;
}

static int
count_bytes(pstate_t *s, size_t n)
{
    s->header_bytes += n;
    return s->header_bytes > MAX_HEADER_BYTES ? fail(s) : 0;
}

static int
cb_url(http_parser *p, const char *at, size_t n)
{
    pstate_t *s = p->data;
    if (count_bytes(s, n) || sbuf_add(&s->url, at, n, MAX_HEADER_BYTES))
        return fail(s);
    return 0;
}

static int
cb_field(http_parser *p, const char *at, size_t n)
{
    pstate_t *s = p->data;
    if (count_bytes(s, n))
        return -1;
    if (s->last_was_value || s->nheaders == 0) {
        if (++s->nheaders > MAX_HEADERS)
            return fail(s);
        sbuf_reset(&s->field);
        s->last_was_value = 0;
    }
    if (sbuf_add(&s->field, at, n, 64) != 0)
        sbuf_add(&s->field, "", 0, 64);
    return 0;
}

static int
cb_value(http_parser *p, const char *at, size_t n)
{
    pstate_t *s = p->data;
    if (count_bytes(s, n))
        return -1;
    if (!s->last_was_value) {
        const char *f = s->field.p ? s->field.p : "";
        s->last_was_value = 1;
        s->cur = HDR_NONE;
        if (strcasecmp(f, "authorization") == 0) {
            if (++s->nauth > 1)
                return fail(s);
            s->cur = HDR_AUTH;
            sbuf_reset(&s->auth);
        } else if (strcasecmp(f, "transfer-encoding") == 0) {
            s->cur = HDR_TE;
        } else if (strcasecmp(f, "content-type") == 0) {
            s->cur = HDR_CTYPE;
            sbuf_reset(&s->ctype);
        }
    }
    if (s->cur == HDR_AUTH)
        sbuf_add(&s->auth, at, n, 1024);
    else if (s->cur == HDR_CTYPE)
        sbuf_add(&s->ctype, at, n, 256);
    else if (s->cur == HDR_TE)
        sbuf_add(&s->te, at, n, 128);
    return 0;
}

static int
cb_headers_complete(http_parser *p)
{
    pstate_t *s = p->data;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > MAX_BODY_BYTES)
        return fail(s);
    if (s->te.len) {
        char *v = s->te.p;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t l = strlen(v);
        while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
            l--;
        if (l != 7 || strncasecmp(v, "chunked", 7) != 0)
            return fail(s);
    }
    return 0;
}

static int
cb_body(http_parser *p, const char *at, size_t n)
{
    pstate_t *s = p->data;
    return sbuf_add(&s->body, at, n, (size_t)MAX_BODY_BYTES + 1) ? fail(s) : 0;
}

static int
hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* daemon/http.c's pct_decode (static there), byte for byte. */
static int
pct_decode(char *str, int plus)
{
    char *w = str;
    for (char *r = str; *r; r++) {
        if (*r == '%') {
            int h = hexval((unsigned char)r[1]), l = h < 0 ? -1 : hexval((unsigned char)r[2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return -1;
            *w++ = (char)(h * 16 + l);
            r += 2;
        } else if (plus && *r == '+') {
            *w++ = ' ';
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

static int
map_method(unsigned m)
{
    switch (m) {
    case HTTP_GET:
        return TALLY_HTTP_GET;
    case HTTP_HEAD:
        return TALLY_HTTP_HEAD;
    case HTTP_POST:
        return TALLY_HTTP_POST;
    case HTTP_PUT:
        return TALLY_HTTP_PUT;
    case HTTP_DELETE:
        return TALLY_HTTP_DELETE;
    default:
        return TALLY_HTTP_OTHER;
    }
}

static int
cb_complete(http_parser *p)
{
    pstate_t *s = p->data;
    tally_http_req_t req = {0};
    tally_http_res_t res = {0};
    struct http_parser_url u;
    char empty[1] = "";
    char *path = NULL, *query = NULL;
    req.method = map_method(p->method);
    if (req.method == TALLY_HTTP_HEAD) {
        req.method = TALLY_HTTP_GET;
        req.head = 1;
    }
    http_parser_url_init(&u);
    if (!s->url.p || http_parser_parse_url(s->url.p, s->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH)))
        goto out;
    path = strndup(s->url.p + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    query = (u.field_set & (1 << UF_QUERY))
                ? strndup(s->url.p + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len)
                : strdup("");
    if (!path || !query || pct_decode(path, 0) != 0)
        goto out;
    req.path = path;
    req.query = query;
    while (s->auth.len && (s->auth.p[s->auth.len - 1] == ' ' || s->auth.p[s->auth.len - 1] == '\t'))
        s->auth.p[--s->auth.len] = '\0';
    req.authorization = s->auth.len ? s->auth.p : NULL;
    req.content_type = s->ctype.len ? s->ctype.p : NULL;
    req.body = s->body.p ? s->body.p : empty;
    req.body_len = s->body.len;
    req.remote = "fuzz";
    tally_routes_dispatch(s->ctx, &req, &res);
    s->dispatched++;
    fuzz_trace(req.path, &res);
    /* what send_response() relies on: a status and a body of body_len bytes */
    if (res.status < 100 || res.status > 599 || (res.body_len && !res.body))
        abort();
    if (res.body_len) {
        volatile unsigned char sink = 0;
        for (size_t i = 0; i < res.body_len; i++)
            sink ^= (unsigned char)res.body[i];
        (void)sink;
    }
out:
    free(res.body);
    free(path);
    free(query);
    reset(s);
    return http_should_keep_alive(p) ? 0 : -1;
}

int
fuzz_http_feed(tally_ctx_t *c, const uint8_t *data, size_t size)
{
    static http_parser_settings settings;
    static int init;
    if (!init) {
        http_parser_settings_init(&settings);
        settings.on_message_begin = cb_begin;
        settings.on_url = cb_url;
        settings.on_header_field = cb_field;
        settings.on_header_value = cb_value;
        settings.on_headers_complete = cb_headers_complete;
        settings.on_body = cb_body;
        settings.on_message_complete = cb_complete;
        init = 1;
    }
    pstate_t s = {.ctx = c};
    http_parser parser;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = &s;
    http_parser_execute(&parser, &settings, (const char *)data, size);
    free(s.url.p);
    free(s.body.p);
    free(s.auth.p);
    free(s.ctype.p);
    free(s.field.p);
    free(s.te.p);
    return s.dispatched;
}
