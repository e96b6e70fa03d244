/* config.c — load tallyd's configuration (defaults, file, environment) into one checked struct. */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Debian's libinih is built with INI_HANDLER_LINENO=1: its handler receives
 * the line number as a fifth argument. We count lines ourselves in the
 * reader (it has to see every line anyway), so the argument is only
 * declared to match the library's calling convention. */
#define INI_HANDLER_LINENO 1
#include <ini.h>

#include "config.h"
#include "log.h"
#include "tally/tally.h"

/* ==== the INI reader ====================================================== */

/*
 * inih does the tokenising; a reader callback in front of it sees every raw
 * line first. That is where we count lines, refuse lines inih would silently
 * split (it reads with fgets into a fixed buffer), report section headers
 * (inih calls nothing for them and truncates their names to 49 bytes), keep
 * whole key names, tell continuation lines apart, and catch the lines inih
 * would reject so the message can say why. The classification mirrors
 * inih's ini_parse_stream() of version 55 line for line.
 */
struct ini_state {
    FILE *fp;
    const char *file;
    char *buf;  /* getline() buffer */
    size_t cap; /* its capacity */
    int lineno;
    int have_section;
    int continuation; /* the current line continues prev key's value */
    char section[INI_MAX_LINE + 1];
    char key[INI_MAX_LINE + 1]; /* last key name; "" = none since the header */
    tally__ini_cb cb;
    void *user;
    int rc; /* first failure; parsing stops at it */
    char *err;
    size_t errlen;
};

static void ini_fail(struct ini_state *st, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
ini_fail(struct ini_state *st, int rc, const char *fmt, ...)
{
    if (st->rc != 0)
        return;
    st->rc = rc;
    if (st->err == NULL || st->errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->err, st->errlen, fmt, ap);
    va_end(ap);
}

static char *
rstrip(char *s)
{
    char *p = s + strlen(s);
    while (p > s && isspace((unsigned char)p[-1]))
        *--p = '\0';
    return s;
}

static char *
lskip(char *s)
{
    while (*s && isspace((unsigned char)*s))
        s++;
    return s;
}

/* inih's find_chars_or_comment(): the first of chars, or the start of an
 * inline comment (a comment prefix right after a blank), or the end. */
static char *
find_chars_or_comment(char *s, const char *chars)
{
    int was_space = 0;
    while (*s && (!chars || !strchr(chars, *s)) &&
           !(INI_ALLOW_INLINE_COMMENTS && was_space && strchr(INI_INLINE_COMMENT_PREFIXES, *s))) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* Classify the raw line in st->buf; 0 to hand it to inih, or a failure. */
static int
ini_classify(struct ini_state *st)
{
    char *line = st->buf;
    char *start = line;
    if (st->lineno == 1 && (unsigned char)start[0] == 0xEF && (unsigned char)start[1] == 0xBB &&
        (unsigned char)start[2] == 0xBF)
        start += 3;
    start = lskip(rstrip(start));
    st->continuation = 0;

    if (*start == '\0' || strchr(INI_START_COMMENT_PREFIXES, *start))
        return 0;
    if (INI_ALLOW_MULTILINE && st->key[0] && start > line) {
        st->continuation = 1;
        return 0;
    }
    if (*start == '[') {
        char *end = find_chars_or_comment(start + 1, "]");
        if (*end != ']') {
            ini_fail(st, TALLY_ECONFIG, "%s:%d: section header without a closing ']'", st->file,
                     st->lineno);
            return st->rc;
        }
        *end = '\0';
        snprintf(st->section, sizeof st->section, "%s", start + 1);
        st->have_section = 1;
        st->key[0] = '\0';
        char reason[256] = "";
        tally__ini_item_t item = {.file = st->file, .line = st->lineno, .section = st->section};
        int rc = st->cb(st->user, &item, reason, sizeof reason);
        if (rc != 0)
            ini_fail(st, rc, "%s:%d: [%s]: %s", st->file, st->lineno, st->section, reason);
        return rc;
    }
    char *end = find_chars_or_comment(start, "=:");
    if (*end != '=' && *end != ':') {
        ini_fail(st, TALLY_ECONFIG, "%s:%d: expected 'key = value', '[section]' or a comment",
                 st->file, st->lineno);
        return st->rc;
    }
    *end = '\0';
    rstrip(start);
    /* Our keys are identifiers: a blank inside one is a missing '=' ("listen
     * 127.0.0.1:7400" would otherwise split at the ':'). */
    for (const char *p = start; *p; p++) {
        if (isspace((unsigned char)*p)) {
            ini_fail(st, TALLY_ECONFIG, "%s:%d: key '%s' contains a blank: expected 'key = value'",
                     st->file, st->lineno, start);
            return st->rc;
        }
    }
    snprintf(st->key, sizeof st->key, "%s", start);
    return 0;
}

static char *
read_line(char *str, int num, void *stream)
{
    struct ini_state *st = stream;
    if (st->rc != 0)
        return NULL;
    errno = 0;
    ssize_t n = getline(&st->buf, &st->cap, st->fp);
    if (n < 0) {
        if (ferror(st->fp))
            ini_fail(st, errno ? -errno : -EIO, "%s: cannot read: %s", st->file,
                     strerror(errno ? errno : EIO));
        return NULL;
    }
    st->lineno++;
    if (memchr(st->buf, '\0', (size_t)n) != NULL) {
        ini_fail(st, TALLY_ECONFIG, "%s:%d: NUL byte in line", st->file, st->lineno);
        return NULL;
    }
    size_t content = (size_t)n;
    while (content > 0 && (st->buf[content - 1] == '\n' || st->buf[content - 1] == '\r'))
        content--;
    /* inih needs room for the line, "\r\n" and the NUL. */
    if (num < 3 || content > (size_t)num - 3) {
        ini_fail(st, TALLY_ECONFIG,
                 "%s:%d: line longer than %d bytes (continue a list on an indented line)", st->file,
                 st->lineno, num - 3);
        return NULL;
    }
    /* only the content and one newline: a run of trailing CRs must not
     * overflow inih's buffer (found by tests/fuzz: fuzz_config) */
    memcpy(str, st->buf, content);
    str[content] = '\n';
    str[content + 1] = '\0';
    if (ini_classify(st) != 0)
        return NULL;
    return str;
}

static int
on_pair(void *user, const char *section, const char *name, const char *value, int lineno)
{
    struct ini_state *st = user;
    (void)section; /* may be truncated by inih: we use our own copy */
    (void)name;    /* likewise */
    (void)lineno;  /* equals st->lineno: one reader call is one line */
    if (st->rc != 0)
        return 0;
    if (!st->have_section) {
        ini_fail(st, TALLY_ECONFIG, "%s:%d: %s: key outside any [section]", st->file, st->lineno,
                 st->key);
        return 0;
    }
    if (st->key[0] == '\0') {
        ini_fail(st, TALLY_ECONFIG, "%s:%d: [%s]: missing key name before '='", st->file,
                 st->lineno, st->section);
        return 0;
    }
    char v[INI_MAX_LINE + 1];
    size_t len = strlen(value);
    if (len >= sizeof v)
        len = sizeof v - 1; /* cannot happen: the line fitted */
    memcpy(v, value, len);
    v[len] = '\0';
    if (st->continuation) {
        /* inih keeps inline comments on continuation lines; drop them like
         * on the first line of the value. */
        *find_chars_or_comment(v, NULL) = '\0';
        rstrip(v);
        len = strlen(v);
    }
    if (len >= 2 && v[0] == '"' && v[len - 1] == '"') {
        memmove(v, v + 1, len - 2);
        v[len - 2] = '\0';
    }
    char reason[256] = "";
    tally__ini_item_t item = {.file = st->file,
                              .line = st->lineno,
                              .section = st->section,
                              .key = st->key,
                              .value = v,
                              .continuation = st->continuation};
    int rc = st->cb(st->user, &item, reason, sizeof reason);
    if (rc != 0) {
        ini_fail(st, rc, "%s:%d: [%s] %s: %s", st->file, st->lineno, st->section, st->key, reason);
        return 0;
    }
    return 1;
}

int
tally__config_ini_parse(const char *path, tally__ini_cb cb, void *user, char *err, size_t errlen)
{
    struct ini_state st = {.file = path, .cb = cb, .user = user, .err = err, .errlen = errlen};
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    st.fp = fopen(path, "r");
    if (st.fp == NULL) {
        int e = errno;
        ini_fail(&st, -e, "%s: cannot open: %s", path, strerror(e));
        return st.rc;
    }
    int r = ini_parse_stream(read_line, &st, on_pair, &st);
    fclose(st.fp);
    free(st.buf);
    if (st.rc != 0)
        return st.rc;
    if (r == -2) {
        ini_fail(&st, -ENOMEM, "%s: out of memory", path);
        return st.rc;
    }
    if (r != 0) {
        /* Every line inih rejects is caught by ini_classify() first; keep a
         * plain message in case a future inih rejects more. */
        ini_fail(&st, TALLY_ECONFIG, "%s:%d: syntax error", path, r);
        return st.rc;
    }
    return 0;
}

/* ==== value parsers ======================================================= */

int
tally__config_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return TALLY_EINVAL;
}

int
tally__config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return TALLY_EINVAL;
    while (isdigit((unsigned char)*p))
        p++;
    if (*p != '\0')
        return TALLY_EINVAL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE || v < min || v > max)
        return TALLY_ETOOBIG;
    *out = (int64_t)v;
    return 0;
}

void
tally__config_free_list(char **list, size_t n)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

int
tally__config_split_list(const char *s, char ***out, size_t *n)
{
    char **list = NULL;
    size_t count = 0;
    const char *p = s;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *a = p;
        const char *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        if (b > a) {
            char **grown = realloc(list, (count + 2) * sizeof *list);
            if (grown == NULL)
                goto fail;
            list = grown;
            list[count] = strndup(a, (size_t)(b - a));
            if (list[count] == NULL)
                goto fail;
            list[++count] = NULL;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *out = list;
    *n = count;
    return 0;
fail:
    tally__config_free_list(list, count);
    return -ENOMEM;
}

int
tally__config_check_endpoint(const char *ep)
{
    static const char *const schemes[] = {"ipc://", "tcp://", "ws://", "inproc://"};
    size_t len = strlen(ep);
    if (len > TALLY__CONFIG_MAX_ENDPOINT)
        return TALLY_EINVAL;
    for (const char *p = ep; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return TALLY_EINVAL;
    for (size_t i = 0; i < sizeof schemes / sizeof schemes[0]; i++) {
        size_t sl = strlen(schemes[i]);
        if (len > sl && strncmp(ep, schemes[i], sl) == 0)
            return 0;
    }
    return TALLY_EINVAL;
}

int
tally__config_env_name(const char *section, const char *key, char *buf, size_t len)
{
    int n = snprintf(buf, len, "TALLY_%s_%s", section, key);
    if (n < 0 || (size_t)n >= len)
        return TALLY_ETOOBIG;
    for (char *p = buf; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    return 0;
}

/* ==== paths =============================================================== */

/* base + "/" + p (p alone when absolute), with empty and "." segments
 * dropped. ".." stays: resolving it lexically would be wrong across
 * symlinks, and the kernel resolves it right. */
static char *
path_resolve(const char *base, const char *p)
{
    size_t need = strlen(p) + 2 + (p[0] == '/' ? 0 : strlen(base));
    char *joined = malloc(need);
    char *out = malloc(need + 1);
    if (joined == NULL || out == NULL) {
        free(joined);
        free(out);
        return NULL;
    }
    if (p[0] == '/')
        snprintf(joined, need, "%s", p);
    else
        snprintf(joined, need, "%s/%s", base, p);
    size_t o = 0;
    const char *s = joined;
    while (*s) {
        while (*s == '/')
            s++;
        const char *e = s;
        while (*e && *e != '/')
            e++;
        size_t seg = (size_t)(e - s);
        if (seg > 0 && !(seg == 1 && s[0] == '.')) {
            out[o++] = '/';
            memcpy(out + o, s, seg);
            o += seg;
        }
        s = e;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    free(joined);
    return out;
}

/* ==== the keys ============================================================ */

enum kind {
    K_STR,      /* any text */
    K_NAME,     /* 1..64 bytes, no blanks or control characters */
    K_PATH,     /* a path, resolved to absolute */
    K_LIST,     /* comma-separated nanomsg endpoints, at least one */
    K_ENDPOINT, /* one nanomsg endpoint, or "" for none */
    K_HOSTPORT, /* HOST:PORT */
    K_U32,      /* integer in [min, max] */
    K_U64,      /* integer in [min, max] */
    K_BOOL,     /* boolean */
    K_LEVEL,    /* log level */
};

#define F_POW2 1u     /* integer must be a power of two */
#define F_OPTIONAL 2u /* K_PATH: "" means none (kept as "") */

struct keydef {
    const char *section;
    const char *key;
    enum kind kind;
    const char *def;
    int64_t min, max;
    unsigned flags;
    size_t off;   /* the field in tally__config_t */
    size_t off_n; /* K_LIST: its count field */
};

#define OFF(f) offsetof(tally__config_t, f)
#define MAP_MB_MAX 16777216 /* 16 TiB: beyond any disk this runs on */

static const struct keydef keys[] = {
    {"storage", "dir", K_PATH, "/var/lib/tally", .off = OFF(storage.dir)},
    {"storage", "map_size_mb", K_U64, "1024", 1, MAP_MB_MAX, .off = OFF(storage.map_size_mb)},
    {"storage", "map_max_mb", K_U64, "0", 0, MAP_MB_MAX, .off = OFF(storage.map_max_mb)},
    {"storage", "writemap", K_BOOL, "true", .off = OFF(storage.writemap)},
    {"storage", "hourly_retention_days", K_U32, "400", 0, 36500,
     .off = OFF(storage.hourly_retention_days)},
    {"ingest", "listen", K_LIST, "ipc:///run/tally/ingest,tcp://127.0.0.1:7410",
     .off = OFF(ingest.listen), .off_n = OFF(ingest.nlisten)},
    {"ingest", "acks", K_LIST, "ipc:///run/tally/ingest.acks,tcp://127.0.0.1:7411",
     .off = OFF(ingest.acks), .off_n = OFF(ingest.nacks)},
    {"ingest", "late_window_hours", K_U32, "168", 0, 8784, .off = OFF(ingest.late_window_hours)},
    {"ingest", "future_skew_s", K_U32, "300", 0, 86400, .off = OFF(ingest.future_skew_s)},
    {"ingest", "ring_size", K_U32, "1024", 2, 16777216, F_POW2, OFF(ingest.ring_size)},
    {"ingest", "max_batch_events", K_U32, "4096", 1, TALLY_MAX_BATCH_EVENTS,
     .off = OFF(ingest.max_batch_events)},
    {"ingest", "max_message_bytes", K_U32, "1048576", 1024, 67108864,
     .off = OFF(ingest.max_message_bytes)},
    {"ingest", "require_auth", K_BOOL, "true", .off = OFF(ingest.require_auth)},
    {"ingest", "max_producers_per_credential", K_U32, "4096", 1, 1000000,
     .off = OFF(ingest.max_producers_per_credential)},
    {"ingest", "http_dedup_hours", K_U32, "24", 1, 8784, .off = OFF(ingest.http_dedup_hours)},
    {"ingest", "http_dedup_max_events", K_U64, "2000000", 1000, 1000000000,
     .off = OFF(ingest.http_dedup_max_events)},
    {"flush", "interval_ms", K_U32, "100", 1, 60000, .off = OFF(flush.interval_ms)},
    {"http", "listen", K_HOSTPORT, "127.0.0.1:7400", .off = OFF(http.listen)},
    {"http", "max_header_bytes", K_U32, "8192", 256, 1048576, .off = OFF(http.max_header_bytes)},
    {"http", "max_headers", K_U32, "64", 1, 1024, .off = OFF(http.max_headers)},
    {"http", "max_body_bytes", K_U32, "1048576", 0, 268435456, .off = OFF(http.max_body_bytes)},
    {"http", "max_connections", K_U32, "1024", 1, 1000000, .off = OFF(http.max_connections)},
    {"http", "max_connections_per_address", K_U32, "64", 0, 1000000,
     .off = OFF(http.max_connections_per_address)},
    {"http", "metrics_max_series", K_U32, "10000", 0, 1000000, .off = OFF(http.metrics_max_series)},
    {"http", "idle_timeout_ms", K_U32, "30000", 1, 3600000, .off = OFF(http.idle_timeout_ms)},
    {"http", "rate_per_token", K_U32, "1000", 0, 10000000, .off = OFF(http.rate_per_token)},
    {"http", "rate_burst", K_U32, "2000", 1, 10000000, .off = OFF(http.rate_burst)},
    {"http", "request_timeout_ms", K_U32, "10000", 1, 3600000, .off = OFF(http.request_timeout_ms)},
    {"http", "pending_timeout_ms", K_U32, "30000", 1, 3600000, .off = OFF(http.pending_timeout_ms)},
    {"http", "max_heavy_reads_per_token", K_U32, "2", 1, 1000,
     .off = OFF(http.max_heavy_reads_per_token)},
    {"auth", "tokens_file", K_PATH, "tokens", .off = OFF(auth.tokens_file)},
    {"billing", "tenant", K_NAME, "acme", .off = OFF(billing.tenant)},
    {"billing", "plans_file", K_PATH, "plans.ini", .off = OFF(billing.plans_file)},
    {"billing", "metrics_file", K_PATH, "metrics.ini", .off = OFF(billing.metrics_file)},
    {"billing", "default_plan", K_NAME, "free", .off = OFF(billing.default_plan)},
    {"billing", "currency", K_NAME, "USD", .off = OFF(billing.currency)},
    {"billing", "due_days", K_U32, "30", 0, 3650, .off = OFF(billing.due_days)},
    {"billing", "close_grace_hours", K_U32, "48", 0, 8784, .off = OFF(billing.close_grace_hours)},
    {"billing", "tax_rate_bp", K_U32, "0", 0, 10000, .off = OFF(billing.tax_rate_bp)},
    {"billing", "tax_label", K_STR, "Tax", .off = OFF(billing.tax_label)},
    {"billing", "payment_terms", K_STR, "", .off = OFF(billing.payment_terms)},
    {"billing", "payment_instructions", K_STR, "", .off = OFF(billing.payment_instructions)},
    {"seller", "name", K_STR, "", .off = OFF(seller.name)},
    {"seller", "address", K_STR, "", .off = OFF(seller.address)},
    {"seller", "tax_id", K_STR, "", .off = OFF(seller.tax_id)},
    {"seller", "email", K_STR, "", .off = OFF(seller.email)},
    {"quota", "alerts", K_ENDPOINT, "ipc:///run/tally/alerts", .off = OFF(quota.alerts)},
    {"quota", "warn_percent", K_U32, "80", 0, 100, .off = OFF(quota.warn_percent)},
    {"log", "level", K_LEVEL, "info", .off = OFF(log.level)},
    {"log", "requests", K_BOOL, "false", .off = OFF(log.requests)},
    {"tallyctl", "token_file", K_PATH, "", .flags = F_OPTIONAL, .off = OFF(tallyctl.token_file)},
};

#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* Where a key's final text came from. */
enum origin { FROM_DEFAULT, FROM_FILE, FROM_ENV };

struct slot {
    char *text; /* heap; NULL: the default */
    enum origin origin;
    int line; /* FROM_FILE: its first line */
};

struct loader {
    const char *file; /* as given */
    struct slot slot[NKEYS];
};

static int
find_key(const char *section, const char *key)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].key, key) == 0)
            return (int)i;
    return -1;
}

static int
section_known(const char *section)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0)
            return 1;
    return 0;
}

static int
file_item(void *user, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    struct loader *L = user;
    if (item->key == NULL) {
        if (!section_known(item->section)) {
            snprintf(reason, reasonlen, "unknown section");
            return TALLY_ECONFIG;
        }
        return 0;
    }
    int k = find_key(item->section, item->key);
    if (k < 0) {
        snprintf(reason, reasonlen, "unknown key");
        return TALLY_ECONFIG;
    }
    struct slot *s = &L->slot[k];
    if (item->continuation) {
        if (keys[k].kind != K_LIST) {
            snprintf(reason, reasonlen,
                     "indented line continues the value, but only lists may span lines");
            return TALLY_ECONFIG;
        }
        size_t need = strlen(s->text) + strlen(item->value) + 2;
        char *joined = malloc(need);
        if (joined == NULL) {
            snprintf(reason, reasonlen, "out of memory");
            return -ENOMEM;
        }
        snprintf(joined, need, "%s,%s", s->text, item->value);
        free(s->text);
        s->text = joined;
        return 0;
    }
    if (s->origin == FROM_FILE) {
        snprintf(reason, reasonlen, "duplicate key (first set on line %d)", s->line);
        return TALLY_ECONFIG;
    }
    char *text = strdup(item->value);
    if (text == NULL) {
        snprintf(reason, reasonlen, "out of memory");
        return -ENOMEM;
    }
    free(s->text);
    s->text = text;
    s->origin = FROM_FILE;
    s->line = item->line;
    return 0;
}

static int
env_apply(struct loader *L, char *err, size_t errlen)
{
    for (size_t k = 0; k < NKEYS; k++) {
        char name[128];
        if (tally__config_env_name(keys[k].section, keys[k].key, name, sizeof name) != 0)
            continue; /* cannot happen: the table's names are short */
        const char *v = getenv(name);
        if (v == NULL)
            continue;
        char *text = strdup(v);
        if (text == NULL) {
            snprintf(err, errlen, "environment %s: out of memory", name);
            return -ENOMEM;
        }
        free(L->slot[k].text);
        L->slot[k].text = text;
        L->slot[k].origin = FROM_ENV;
        L->slot[k].line = 0;
    }
    return 0;
}

/* Write "where: reason" for key k into err. */
static int key_fail(const struct loader *L, size_t k, char *err, size_t errlen, const char *fmt,
                    ...) __attribute__((format(printf, 5, 6)));

static int
key_fail(const struct loader *L, size_t k, char *err, size_t errlen, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    const struct slot *s = &L->slot[k];
    if (s->origin == FROM_FILE) {
        snprintf(err, errlen, "%s:%d: [%s] %s: %s", L->file, s->line, keys[k].section, keys[k].key,
                 reason);
    } else if (s->origin == FROM_ENV) {
        char name[128];
        tally__config_env_name(keys[k].section, keys[k].key, name, sizeof name);
        snprintf(err, errlen, "environment %s: %s", name, reason);
    } else {
        snprintf(err, errlen, "default of [%s] %s: %s", keys[k].section, keys[k].key, reason);
    }
    return TALLY_ECONFIG;
}

/* "[host]:port" or "host:port" into host and port. */
static int
parse_hostport(const char *s, char **host, uint16_t *port)
{
    const char *colon;
    const char *h = s;
    size_t hlen;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return TALLY_EINVAL;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL)
            return TALLY_EINVAL;
        hlen = (size_t)(colon - s);
        if (memchr(s, ':', hlen) != NULL) /* bare IPv6 needs brackets */
            return TALLY_EINVAL;
    }
    if (hlen == 0)
        return TALLY_EINVAL;
    for (size_t i = 0; i < hlen; i++)
        if (isspace((unsigned char)h[i]) || iscntrl((unsigned char)h[i]))
            return TALLY_EINVAL;
    int64_t p;
    if (tally__config_parse_int(colon + 1, 0, 65535, &p) != 0 || colon[1] == '-')
        return TALLY_EINVAL;
    *host = strndup(h, hlen);
    if (*host == NULL)
        return -ENOMEM;
    *port = (uint16_t)p;
    return 0;
}

/* Convert and check key k from its final text; write it into cfg. */
static int
convert(const struct loader *L, size_t k, tally__config_t *cfg, const char *cwd, char *err,
        size_t errlen)
{
    const struct keydef *d = &keys[k];
    const struct slot *s = &L->slot[k];
    const char *text = s->text ? s->text : d->def;
    char *field = (char *)cfg + d->off;

    switch (d->kind) {
    case K_STR:
    case K_NAME: {
        if (d->kind == K_NAME) {
            size_t len = strlen(text);
            if (len == 0)
                return key_fail(L, k, err, errlen, "must not be empty");
            if (len > 64)
                return key_fail(L, k, err, errlen, "longer than 64 bytes");
            for (const char *p = text; *p; p++)
                if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
                    return key_fail(L, k, err, errlen, "'%s' contains a blank or control character",
                                    text);
        }
        char *v = strdup(text);
        if (v == NULL)
            return -ENOMEM;
        *(char **)field = v;
        return 0;
    }
    case K_PATH: {
        if (text[0] == '\0' && (d->flags & F_OPTIONAL)) {
            char *none = strdup("");
            if (none == NULL)
                return -ENOMEM;
            *(char **)field = none;
            return 0;
        }
        if (text[0] == '\0')
            return key_fail(L, k, err, errlen, "must not be empty");
        const char *base = s->origin == FROM_ENV ? cwd : cfg->dir;
        if (text[0] != '/' && base == NULL)
            return key_fail(L, k, err, errlen,
                            "relative path '%s' but the working directory is unknown", text);
        char *v = path_resolve(base ? base : "/", text);
        if (v == NULL)
            return -ENOMEM;
        *(char **)field = v;
        /* tally__config_dump() writes the resolved path: it must fit an
         * INI line so that the dump loads back (found by tests/fuzz) */
        for (const char *c = v; *c; c++)
            if ((unsigned char)*c < 0x20 ||
                ((c[0] == ' ' || c[0] == '\t') && (c[1] == ';' || c[1] == '#')))
                return key_fail(L, k, err, errlen,
                                "a path may not hold control characters or ' ;' / ' #' "
                                "(they read as a comment)");
        /* + 2: the dump quotes a path with blanks at either end */
        if (strlen(v) + strlen(d->key) + 5 > TALLY__CONFIG_MAX_LINE)
            return key_fail(L, k, err, errlen, "resolved path is longer than %d bytes: %s",
                            (int)(TALLY__CONFIG_MAX_LINE - strlen(d->key) - 5), v);
        return 0;
    }
    case K_LIST: {
        char **list;
        size_t n;
        if (tally__config_split_list(text, &list, &n) != 0)
            return -ENOMEM;
        *(char ***)field = list;
        *(size_t *)((char *)cfg + d->off_n) = n;
        if (n == 0)
            return key_fail(L, k, err, errlen, "needs at least one endpoint");
        for (size_t i = 0; i < n; i++)
            if (tally__config_check_endpoint(list[i]) != 0)
                return key_fail(L, k, err, errlen,
                                "'%s' is not a nanomsg endpoint (ipc://, tcp://, ws:// or "
                                "inproc://, at most %d bytes)",
                                list[i], TALLY__CONFIG_MAX_ENDPOINT);
        return 0;
    }
    case K_ENDPOINT: {
        if (text[0] != '\0' && tally__config_check_endpoint(text) != 0)
            return key_fail(L, k, err, errlen,
                            "'%s' is not a nanomsg endpoint (ipc://, tcp://, ws:// or inproc://, "
                            "at most %d bytes)",
                            text, TALLY__CONFIG_MAX_ENDPOINT);
        char *v = strdup(text);
        if (v == NULL)
            return -ENOMEM;
        *(char **)field = v;
        return 0;
    }
    case K_HOSTPORT: {
        int rc = parse_hostport(text, &cfg->http.host, &cfg->http.port);
        if (rc == -ENOMEM)
            return rc;
        if (rc != 0)
            return key_fail(L, k, err, errlen,
                            "'%s' is not HOST:PORT (port 0..65535, IPv6 in brackets)", text);
        char *v = strdup(text);
        if (v == NULL)
            return -ENOMEM;
        *(char **)field = v;
        return 0;
    }
    case K_U32:
    case K_U64: {
        int64_t v;
        int rc = tally__config_parse_int(text, d->min, d->max, &v);
        if (rc == TALLY_EINVAL)
            return key_fail(L, k, err, errlen, "'%s' is not an integer", text);
        if (rc != 0)
            return key_fail(L, k, err, errlen, "%s is out of range (%" PRId64 "..%" PRId64 ")",
                            text, d->min, d->max);
        if ((d->flags & F_POW2) && (v & (v - 1)) != 0)
            return key_fail(L, k, err, errlen, "%s is not a power of two", text);
        if (d->kind == K_U32)
            *(uint32_t *)field = (uint32_t)v;
        else
            *(uint64_t *)field = (uint64_t)v;
        return 0;
    }
    case K_BOOL:
        if (tally__config_parse_bool(text, (bool *)field) != 0)
            return key_fail(L, k, err, errlen,
                            "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", text);
        return 0;
    case K_LEVEL: {
        int level = tally__log_parse_level(text);
        if (level < 0)
            return key_fail(L, k, err, errlen, "'%s' is not a log level (debug, info, warn, error)",
                            text);
        *(int *)field = level;
        return 0;
    }
    }
    TALLY_ASSERT(!"unhandled key kind");
    return TALLY_EINVAL;
}

/* The directory of path, absolute. */
static char *
dir_of(const char *path, const char *cwd)
{
    const char *slash = strrchr(path, '/');
    char *dir;
    if (slash == NULL)
        dir = strdup(".");
    else if (slash == path)
        dir = strdup("/");
    else
        dir = strndup(path, (size_t)(slash - path));
    if (dir == NULL)
        return NULL;
    char *abs = path_resolve(cwd ? cwd : "/", dir);
    free(dir);
    return abs;
}

int
tally__config_load(const char *path, tally__config_t **out, char *err, size_t errlen)
{
    char errbuf[512];
    if (err == NULL || errlen == 0) {
        err = errbuf;
        errlen = sizeof errbuf;
    }
    err[0] = '\0';

    struct loader L = {.file = path};
    tally__config_t *cfg = NULL;
    char cwdbuf[PATH_MAX];
    const char *cwd = getcwd(cwdbuf, sizeof cwdbuf);
    int rc;

    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (path != NULL) {
        if (path[0] != '/' && cwd == NULL) {
            rc = -errno;
            snprintf(err, errlen, "%s: cannot resolve: working directory unknown", path);
            goto fail;
        }
        cfg->path = path_resolve(cwd ? cwd : "/", path);
        cfg->dir = dir_of(path, cwd);
        if (cfg->path == NULL || cfg->dir == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
        if ((rc = tally__config_ini_parse(path, file_item, &L, err, errlen)) != 0)
            goto fail;
    } else if (cwd != NULL) {
        if ((cfg->dir = strdup(cwd)) == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    if ((rc = env_apply(&L, err, errlen)) != 0)
        goto fail;

    for (size_t k = 0; k < NKEYS; k++)
        if ((rc = convert(&L, k, cfg, cwd, err, errlen)) != 0)
            goto fail;

    /* Checks across keys, reported at the key that has to change. */
    if (cfg->storage.map_max_mb != 0 && cfg->storage.map_max_mb < cfg->storage.map_size_mb) {
        rc = key_fail(&L, (size_t)find_key("storage", "map_max_mb"), err, errlen,
                      "%" PRIu64 " is below storage.map_size_mb (%" PRIu64 "); use 0 for a "
                      "fixed map",
                      cfg->storage.map_max_mb, cfg->storage.map_size_mb);
        goto fail;
    }
    /* A late event must never land in an hour retention already pruned:
     * its monthly `last` bookkeeping would count it twice. */
    if (cfg->storage.hourly_retention_days != 0 &&
        (uint64_t)cfg->storage.hourly_retention_days * 24 <
            (uint64_t)cfg->ingest.late_window_hours + 24) {
        rc = key_fail(&L, (size_t)find_key("storage", "hourly_retention_days"), err, errlen,
                      "%" PRIu32 " days do not cover ingest.late_window_hours (%" PRIu32
                      ") plus a day; use 0 to keep hourly rollups forever",
                      cfg->storage.hourly_retention_days, cfg->ingest.late_window_hours);
        goto fail;
    }

    /* Usage may still arrive for a month closed after its grace (billed
     * late); a grace longer than the late window would only delay invoices. */
    if (cfg->billing.close_grace_hours > cfg->ingest.late_window_hours) {
        size_t gk = (size_t)find_key("billing", "close_grace_hours");
        if (L.slot[gk].text) {
            rc = key_fail(&L, gk, err, errlen,
                          "%" PRIu32 " is more than ingest.late_window_hours (%" PRIu32 ")",
                          cfg->billing.close_grace_hours, cfg->ingest.late_window_hours);
            goto fail;
        }
        cfg->billing.close_grace_hours = cfg->ingest.late_window_hours;
    }

    for (size_t k = 0; k < NKEYS; k++)
        free(L.slot[k].text);
    *out = cfg;
    return 0;

fail:
    if (rc == -ENOMEM && err[0] == '\0')
        snprintf(err, errlen, "%s: out of memory", path ? path : "configuration");
    for (size_t k = 0; k < NKEYS; k++)
        free(L.slot[k].text);
    tally__config_destroy(cfg);
    return rc;
}

void
tally__config_destroy(tally__config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t k = 0; k < NKEYS; k++) {
        char *field = (char *)cfg + keys[k].off;
        switch (keys[k].kind) {
        case K_STR:
        case K_NAME:
        case K_PATH:
        case K_ENDPOINT:
        case K_HOSTPORT:
            free(*(char **)field);
            break;
        case K_LIST:
            tally__config_free_list(*(char ***)field, *(size_t *)((char *)cfg + keys[k].off_n));
            break;
        default:
            break;
        }
    }
    free(cfg->http.host);
    free(cfg->path);
    free(cfg->dir);
    free(cfg);
}

int
tally__config_dump(const tally__config_t *cfg, FILE *fp)
{
    const char *section = "";
    if (cfg->path != NULL)
        fprintf(fp, "; effective configuration, loaded from %s\n", cfg->path);
    else
        fprintf(fp, "; effective configuration, built-in defaults and environment\n");
    for (size_t k = 0; k < NKEYS; k++) {
        const struct keydef *d = &keys[k];
        const char *field = (const char *)cfg + d->off;
        if (strcmp(section, d->section) != 0) {
            section = d->section;
            fprintf(fp, "\n[%s]\n", section);
        }
        fprintf(fp, "%s = ", d->key);
        switch (d->kind) {
        case K_STR:
        case K_NAME:
        case K_PATH:
        case K_ENDPOINT:
        case K_HOSTPORT: {
            /* quoted only when the reader would not keep it as it is: blanks
             * at either end, or a value wrapped in quotes (found by
             * tests/fuzz: fuzz_config); quoting more would lengthen lines */
            const char *v = *(char *const *)field;
            size_t vl = strlen(v);
            int quote = vl && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[vl - 1]) ||
                               (v[0] == '"' && v[vl - 1] == '"'));
            fprintf(fp, quote ? "\"%s\"\n" : "%s\n", v);
            break;
        }
        case K_LIST: {
            /* One endpoint a line: a long list would not fit in one. */
            char *const *list = *(char **const *)field;
            size_t n = *(const size_t *)((const char *)cfg + d->off_n);
            for (size_t i = 0; i < n; i++)
                fprintf(fp, "%s%s\n", i ? "    " : "", list[i]);
            if (n == 0)
                fprintf(fp, "\n");
            break;
        }
        case K_U32:
            fprintf(fp, "%" PRIu32 "\n", *(const uint32_t *)field);
            break;
        case K_U64:
            fprintf(fp, "%" PRIu64 "\n", *(const uint64_t *)field);
            break;
        case K_BOOL:
            fprintf(fp, "%s\n", *(const bool *)field ? "true" : "false");
            break;
        case K_LEVEL: {
            int level = *(const int *)field;
            fprintf(fp, "%s\n", level_names[level < 0 ? 0 : level > 3 ? 3 : level]);
            break;
        }
        }
    }
    if (fflush(fp) != 0 || ferror(fp))
        return -(errno ? errno : EIO);
    return 0;
}
