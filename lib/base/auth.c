/* auth.c — tokens file to SHA-256 digests; header authentication, access checks, rate limits. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "auth.h"
#include "ids.h"
#include "credential.h"
#include "log.h"
#include "tally/tally.h"
#include "tbucket.h"

#define DIGEST_LEN crypto_hash_sha256_BYTES /* 32 */
#define NS_MAX_LEN 64

/* Buckets count in thousandths of a request, so that a refill of rate_per_s
 * requests per second is exactly rate_per_s units per millisecond. */

struct tally__token {
    char name[TALLY__TOKEN_MAX_NAME + 1];
    int role;
    int all_ns;
    int line;
    size_t index; /* position in its set, keys the bucket */
    char *ns_buf; /* the namespaces field, commas turned into NULs */
    const char **ns;
    size_t nns;
    unsigned char digest[DIGEST_LEN]; /* API tokens: SHA-256 of the token */
    uint8_t mac_key[TALLY__CRED_KEY_LEN]; /* emitters: the derived MAC key */
};


struct tally__tokens {
    tally__token_t *toks;
    size_t n;
    size_t cap;
    tally__tbucket_t *buckets; /* n entries */
};

/* ==== parsing ============================================================== */

struct parse {
    const char *path;
    int lineno;
    char *err;
    size_t errlen;
};

static void fail(struct parse *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write "FILE:LINE: reason". The reason never quotes a field's text except a
 * valid name: a misplaced field might be a secret. */
static void
fail(struct parse *p, const char *fmt, ...)
{
    if (p->err == NULL || p->errlen == 0)
        return;
    int n = snprintf(p->err, p->errlen, "%s:%d: ", p->path, p->lineno);
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (err == NULL || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int
is_blank(int c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static int
is_name_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

static int
is_ns_char(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

/* Printable ASCII without the space: what a token may hold. */
static int
is_token_char(int c)
{
    return c > 0x20 && c < 0x7f;
}

static int
parse_role(const char *s)
{
    if (strcmp(s, "admin") == 0)
        return TALLY_ROLE_ADMIN;
    if (strcmp(s, "editor") == 0)
        return TALLY_ROLE_EDITOR;
    if (strcmp(s, "viewer") == 0)
        return TALLY_ROLE_VIEWER;
    if (strcmp(s, "emitter") == 0)
        return TALLY_ROLE_EMITTER;
    return 0;
}

/*
 * Read one line (without its newline) into *buf, growing it as needed. A
 * grown buffer's old copy is wiped before it is freed, because the line may
 * hold a plain token. Returns 1 with a line, 0 at end of file, -EIO on a
 * read error (errno, when getc() set it, says which), -ENOMEM, or TALLY_ECONFIG (over-long line, NUL byte) with
 * *why set.
 */
static int
read_line(FILE *fp, char **buf, size_t *cap, size_t *len, const char **why)
{
    size_t n = 0;
    int c;
    int any = 0;
    int bad = 0;
    while ((c = getc(fp)) != EOF) {
        any = 1;
        if (c == '\n')
            break;
        if (bad)
            continue; /* skip to the end of the line; its number is reported */
        if (c == '\0') {
            *why = "NUL byte in line";
            bad = TALLY_ECONFIG;
            continue;
        }
        if (n >= TALLY__TOKENS_MAX_LINE) {
            *why = "line too long";
            bad = TALLY_ECONFIG;
            continue;
        }
        if (n + 1 >= *cap) {
            size_t ncap = *cap ? *cap * 2 : 256;
            char *nb = malloc(ncap);
            if (nb == NULL)
                return -ENOMEM;
            if (*buf != NULL) {
                memcpy(nb, *buf, n);
                sodium_memzero(*buf, *cap);
                free(*buf);
            }
            *buf = nb;
            *cap = ncap;
        }
        (*buf)[n++] = (char)c;
    }
    if (ferror(fp))
        return -EIO; /* errno (when set) tells the caller more */
    if (!any)
        return 0;
    if (bad)
        return bad;
    if (*buf == NULL) { /* an empty line before any growth */
        *buf = malloc(256);
        if (*buf == NULL)
            return -ENOMEM;
        *cap = 256;
    }
    (*buf)[n] = '\0';
    *len = n;
    return 1;
}

/* Split line into at most 5 blank-separated fields (in place), after cutting
 * the comment. Returns the number of fields found, 5 meaning "more than 4". */
static int
split_fields(char *line, char *f[5])
{
    char *hash = strchr(line, '#');
    if (hash != NULL)
        *hash = '\0';
    int nf = 0;
    char *s = line;
    for (;;) {
        while (*s != '\0' && is_blank((unsigned char)*s))
            s++;
        if (*s == '\0')
            break;
        if (nf == 5)
            break;
        f[nf++] = s;
        while (*s != '\0' && !is_blank((unsigned char)*s))
            s++;
        if (*s != '\0')
            *s++ = '\0';
    }
    return nf;
}

/* Fill tok's scope from the NAMESPACES field. */
static int
parse_namespaces(struct parse *p, tally__token_t *tok, const char *field)
{
    if (strcmp(field, "*") == 0) {
        tok->all_ns = 1;
        return 0;
    }
    size_t count = 1;
    for (const char *s = field; *s; s++) {
        if (*s == ',')
            count++;
    }
    tok->ns_buf = strdup(field);
    tok->ns = calloc(count, sizeof *tok->ns);
    if (tok->ns_buf == NULL || tok->ns == NULL) {
        fail(p, "out of memory");
        return -ENOMEM;
    }
    char *s = tok->ns_buf;
    for (size_t i = 0; i < count; i++) {
        char *item = s;
        char *comma = strchr(s, ',');
        if (comma != NULL) {
            *comma = '\0';
            s = comma + 1;
        }
        size_t len = strlen(item);
        if (len == 0) {
            fail(p, "empty namespace in list (NAMESPACES is '*' or name,name,...)");
            return TALLY_ECONFIG;
        }
        if (strcmp(item, "*") == 0) {
            fail(p, "'*' must stand alone in NAMESPACES");
            return TALLY_ECONFIG;
        }
        int ok = len <= NS_MAX_LEN;
        for (size_t k = 0; ok && k < len; k++)
            ok = is_ns_char((unsigned char)item[k]);
        if (!ok) {
            fail(p, "bad namespace #%zu (expected [a-z0-9-], 1..%d bytes)", i + 1, NS_MAX_LEN);
            return TALLY_ECONFIG;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(tok->ns[k], item) == 0) {
                fail(p, "namespace #%zu is listed twice", i + 1);
                return TALLY_ECONFIG;
            }
        }
        tok->ns[i] = item;
    }
    tok->nns = count;
    return 0;
}

/* An emitter's SECRET field: `mac:HEX`, the MAC key derived from its secret
 * (tally__cred_derive), as `tallyctl keygen` prints it. */
static int
parse_emitter_secret(struct parse *p, tally__token_t *tok, const char *field)
{
    static const char mac[] = "mac:";
    if (strncmp(field, mac, sizeof mac - 1) != 0) {
        fail(p, "emitter \"%s\": secret must be mac:HEX (from tallyctl keygen)", tok->name);
        return TALLY_ECONFIG;
    }
    if (tally__hex_decode(field + sizeof mac - 1, tok->mac_key, sizeof tok->mac_key) != 0) {
        fail(p, "emitter \"%s\": mac: needs %d hex digits", tok->name,
             2 * TALLY__CRED_KEY_LEN);
        return TALLY_ECONFIG;
    }
    /* an emitter's digest is unused (tally__tokens_authenticate skips
     * emitters); make it the key's hash so duplicate keys are caught below */
    crypto_hash_sha256(tok->digest, tok->mac_key, sizeof tok->mac_key);
    return 0;
}

/* Fill tok->digest from the SECRET field. */
static int
parse_secret(struct parse *p, tally__token_t *tok, const char *field)
{
    static const char sha[] = "sha256:";
    static const char plain[] = "plain:";
    if (tok->role == TALLY_ROLE_EMITTER)
        return parse_emitter_secret(p, tok, field);
    if (strncmp(field, sha, sizeof sha - 1) == 0) {
        const char *hex = field + sizeof sha - 1;
        size_t len = strlen(hex);
        if (len != 2 * DIGEST_LEN) {
            fail(p, "sha256: needs %d hex digits, found %zu", 2 * DIGEST_LEN, len);
            return TALLY_ECONFIG;
        }
        if (tally__hex_decode(hex, tok->digest, DIGEST_LEN) != 0) {
            fail(p, "sha256: digest holds a character that is not a hex digit");
            return TALLY_ECONFIG;
        }
        return 0;
    }
    if (strncmp(field, plain, sizeof plain - 1) == 0) {
        const char *t = field + sizeof plain - 1;
        size_t len = strlen(t);
        if (len == 0) {
            fail(p, "plain: token is empty");
            return TALLY_ECONFIG;
        }
        if (len > TALLY__TOKEN_MAX_LEN) {
            fail(p, "plain: token longer than %d bytes", TALLY__TOKEN_MAX_LEN);
            return TALLY_ECONFIG;
        }
        for (size_t i = 0; i < len; i++) {
            if (!is_token_char((unsigned char)t[i])) {
                fail(p, "plain: token holds a character that is not printable ASCII");
                return TALLY_ECONFIG;
            }
        }
        crypto_hash_sha256(tok->digest, (const unsigned char *)t, len);
        tally__log_warn("plain token in tokens file: development only, use sha256: instead "
                        "token=%s file=%s line=%d",
                        tok->name, p->path, p->lineno);
        return 0;
    }
    fail(p, "unknown secret scheme (expected sha256:HEX or plain:TOKEN)");
    return TALLY_ECONFIG;
}

static void
token_fini(tally__token_t *tok)
{
    free(tok->ns_buf);
    free(tok->ns);
    sodium_memzero(tok, sizeof *tok);
}

/* Parse one line into a new token of t (when it holds one). */
static int
parse_line(struct parse *p, tally__tokens_t *t, char *line)
{
    char *f[5];
    int nf = split_fields(line, f);
    if (nf == 0)
        return 0; /* blank or comment */
    if (nf < 4) {
        fail(p, "too few fields: %d (expected NAME ROLE NAMESPACES SECRET)", nf);
        return TALLY_ECONFIG;
    }
    if (nf > 4) {
        fail(p, "too many fields (expected NAME ROLE NAMESPACES SECRET)");
        return TALLY_ECONFIG;
    }

    size_t nlen = strlen(f[0]);
    int ok = nlen <= TALLY__TOKEN_MAX_NAME;
    for (size_t i = 0; ok && i < nlen; i++)
        ok = is_name_char((unsigned char)f[0][i]);
    if (!ok) {
        fail(p, "bad token name (expected [A-Za-z0-9_.-], 1..%d bytes)", TALLY__TOKEN_MAX_NAME);
        return TALLY_ECONFIG;
    }
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->toks[i].name, f[0]) == 0) {
            fail(p, "duplicate token name \"%s\" (first on line %d)", f[0], t->toks[i].line);
            return TALLY_ECONFIG;
        }
    }
    int role = parse_role(f[1]);
    if (role == 0) {
        fail(p, "token \"%s\": bad role (expected admin, editor, viewer or emitter)", f[0]);
        return TALLY_ECONFIG;
    }

    if (t->n == t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 8;
        tally__token_t *nt = realloc(t->toks, ncap * sizeof *nt);
        if (nt == NULL) {
            fail(p, "out of memory");
            return -ENOMEM;
        }
        t->toks = nt;
        t->cap = ncap;
    }
    tally__token_t *tok = &t->toks[t->n];
    memset(tok, 0, sizeof *tok);
    memcpy(tok->name, f[0], nlen + 1);
    tok->role = role;
    tok->line = p->lineno;
    tok->index = t->n;

    int rc = parse_namespaces(p, tok, f[2]);
    if (rc == 0)
        rc = parse_secret(p, tok, f[3]);
    if (rc == 0) {
        for (size_t i = 0; i < t->n; i++) {
            /* Load time, not attacker-facing: an early exit is fine here. */
            if (memcmp(t->toks[i].digest, tok->digest, DIGEST_LEN) == 0) {
                fail(p, "token \"%s\" has the same secret as \"%s\" (line %d)", tok->name,
                     t->toks[i].name, t->toks[i].line);
                rc = TALLY_ECONFIG;
                break;
            }
        }
    }
    if (rc != 0) {
        token_fini(tok);
        return rc;
    }
    t->n++;
    return 0;
}

int
tally__tokens_load(const char *path, tally__tokens_t **out, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (path == NULL || out == NULL) {
        set_err(err, errlen, "tokens file: no path given");
        return TALLY_EINVAL;
    }
    if (sodium_init() < 0) {
        set_err(err, errlen, "%s: libsodium cannot be initialised", path);
        return -EIO;
    }

    /* stdio reads through a buffer of ours, so it can be wiped afterwards. */
    char iobuf[4096];
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    tally__tokens_t *t = calloc(1, sizeof *t);
    if (t == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        rc = -errno;
        set_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    setvbuf(fp, iobuf, _IOFBF, sizeof iobuf);

    struct parse p = {.path = path, .err = err, .errlen = errlen};
    for (;;) {
        size_t len = 0;
        const char *why = NULL;
        p.lineno++;
        errno = 0;
        int r = read_line(fp, &line, &cap, &len, &why);
        if (r == 0)
            break;
        if (r == TALLY_ECONFIG) {
            fail(&p, "%s (at most %d bytes, no NUL)", why, TALLY__TOKENS_MAX_LINE);
            rc = r;
            break;
        }
        if (r == -ENOMEM) {
            set_err(err, errlen, "%s: out of memory", path);
            rc = r;
            break;
        }
        if (r < 0) { /* a read error: -EIO, with errno from getc() when it set one */
            int e = r == -EIO && errno > 0 ? errno : -r;
            set_err(err, errlen, "%s: cannot read: %s", path, strerror(e));
            rc = -e;
            break;
        }
        rc = parse_line(&p, t, line);
        sodium_memzero(line, cap);
        if (rc != 0)
            break;
    }
    fclose(fp);
    sodium_memzero(iobuf, sizeof iobuf);
    if (line != NULL) {
        sodium_memzero(line, cap);
        free(line);
        line = NULL;
    }
    if (rc != 0)
        goto fail;

    if (t->n > 0) {
        t->buckets = calloc(t->n, sizeof *t->buckets);
        if (t->buckets == NULL) {
            rc = -ENOMEM;
            set_err(err, errlen, "%s: out of memory", path);
            goto fail;
        }
    }
    *out = t;
    return 0;

fail:
    tally__tokens_destroy(t);
    return rc;
}

void
tally__tokens_destroy(tally__tokens_t *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->n; i++)
        token_fini(&t->toks[i]);
    free(t->toks);
    free(t->buckets);
    free(t);
}

size_t
tally__tokens_count(const tally__tokens_t *t)
{
    return t != NULL ? t->n : 0;
}

const tally__token_t *
tally__tokens_get(const tally__tokens_t *t, size_t i)
{
    if (t == NULL || i >= t->n)
        return NULL;
    return &t->toks[i];
}

const tally__token_t *
tally__tokens_find(const tally__tokens_t *t, const char *name)
{
    if (t == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->toks[i].name, name) == 0)
            return &t->toks[i];
    }
    return NULL;
}

/* ==== authentication ====================================================== */

const tally__token_t *
tally__tokens_authenticate(const tally__tokens_t *t, const char *authorization)
{
    static const char scheme[] = "APIToken";
    if (t == NULL || authorization == NULL)
        return NULL;
    if (strncasecmp(authorization, scheme, sizeof scheme - 1) != 0)
        return NULL;
    const char *s = authorization + sizeof scheme - 1;
    if (*s != ' ')
        return NULL;
    while (*s == ' ')
        s++;
    size_t len = 0;
    while (len <= TALLY__TOKEN_MAX_LEN && is_token_char((unsigned char)s[len]))
        len++;
    if (len == 0 || len > TALLY__TOKEN_MAX_LEN || s[len] != '\0')
        return NULL;

    unsigned char digest[DIGEST_LEN];
    crypto_hash_sha256(digest, (const unsigned char *)s, len);
    /* Visit every token and select the match with masks rather than a
     * branch, so the time taken does not tell which token matched. */
    size_t found = 0;
    size_t matched = 0;
    for (size_t i = 0; i < t->n; i++) {
        size_t eq = (size_t)(sodium_memcmp(digest, t->toks[i].digest, DIGEST_LEN) == 0);
        eq &= (size_t)(t->toks[i].role != TALLY_ROLE_EMITTER); /* not an API token */
        size_t mask = (size_t)0 - eq;
        found = (found & ~mask) | (i & mask);
        matched |= eq;
    }
    sodium_memzero(digest, sizeof digest);
    return matched ? &t->toks[found] : NULL;
}

/* ==== access ============================================================== */

int
tally__token_allows(const tally__token_t *tok, const char *ns, int access)
{
    if (tok == NULL)
        return 0;
    if (access == TALLY_ACCESS_NONE)
        return 1;
    if (ns == NULL || access < TALLY_ACCESS_READ || access > TALLY_ACCESS_INGEST)
        return 0;
    int in_scope = tok->all_ns;
    for (size_t i = 0; !in_scope && i < tok->nns; i++)
        in_scope = strcmp(tok->ns[i], ns) == 0;
    if (!in_scope)
        return 0;
    switch (tok->role) {
    case TALLY_ROLE_ADMIN:
        return access != TALLY_ACCESS_INGEST;
    case TALLY_ROLE_EDITOR:
        return access <= TALLY_ACCESS_WRITE;
    case TALLY_ROLE_VIEWER:
        return access == TALLY_ACCESS_READ;
    case TALLY_ROLE_EMITTER:
        return access == TALLY_ACCESS_INGEST;
    default:
        return 0;
    }
}

int
tally__token_allows_ns(const tally__token_t *tok, const char *ns, size_t ns_len, int access)
{
    char buf[NS_MAX_LEN + 1];
    if (ns == NULL || ns_len > NS_MAX_LEN)
        return 0;
    memcpy(buf, ns, ns_len);
    buf[ns_len] = '\0';
    return tally__token_allows(tok, buf, access);
}

const tally__token_t *
tally__tokens_find_emitter(const tally__tokens_t *t, const char *name, size_t len)
{
    if (t == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        const tally__token_t *tok = &t->toks[i];
        if (tok->role == TALLY_ROLE_EMITTER && strlen(tok->name) == len &&
            memcmp(tok->name, name, len) == 0)
            return tok;
    }
    return NULL;
}

const uint8_t *
tally__token_mac_key(const tally__token_t *tok)
{
    return tok->role == TALLY_ROLE_EMITTER ? tok->mac_key : NULL;
}

const tally__token_t *
tally__tokens_authenticate_emitter(const tally__tokens_t *t, const char *authorization)
{
    static const char bearer[] = "Bearer", apitoken[] = "APIToken";
    const char *s;
    tally__cred_t cred;
    if (t == NULL || authorization == NULL)
        return NULL;
    if (strncasecmp(authorization, bearer, sizeof bearer - 1) == 0)
        s = authorization + sizeof bearer - 1;
    else if (strncasecmp(authorization, apitoken, sizeof apitoken - 1) == 0)
        s = authorization + sizeof apitoken - 1;
    else
        return NULL;
    if (*s != ' ')
        return NULL;
    while (*s == ' ')
        s++;
    if (tally__cred_parse(s, strlen(s), &cred) != 0)
        return NULL;
    const tally__token_t *tok = tally__tokens_find_emitter(t, cred.name, cred.name_len);
    /* The name is not secret; the key comparison is constant-time. A
     * missing name still costs one comparison, against a key of zeros. */
    static const uint8_t zero[TALLY__CRED_KEY_LEN];
    int ok = sodium_memcmp(cred.key, tok ? tok->mac_key : zero, TALLY__CRED_KEY_LEN) == 0;
    sodium_memzero(&cred, sizeof cred);
    return ok && tok ? tok : NULL;
}

const char *
tally__token_name(const tally__token_t *tok)
{
    return tok->name;
}

int
tally__token_role(const tally__token_t *tok)
{
    return tok->role;
}

const char *
tally__role_name(int role)
{
    switch (role) {
    case TALLY_ROLE_ADMIN:
        return "admin";
    case TALLY_ROLE_EDITOR:
        return "editor";
    case TALLY_ROLE_VIEWER:
        return "viewer";
    case TALLY_ROLE_EMITTER:
        return "emitter";
    default:
        return "none";
    }
}

int
tally__token_all_namespaces(const tally__token_t *tok)
{
    return tok->all_ns;
}

const char *const *
tally__token_namespaces(const tally__token_t *tok, size_t *n)
{
    *n = tok->nns;
    return tok->nns > 0 ? tok->ns : NULL;
}

int
tally__token_line(const tally__token_t *tok)
{
    return tok->line;
}

/* ==== rate limiting ======================================================= */

int
tally__token_rate_take(tally__tokens_t *t, const tally__token_t *tok, int64_t now_ms,
                       uint32_t rate_per_s, uint32_t burst, uint32_t *retry_after_s)
{
    if (rate_per_s == 0)
        return 1;
    TALLY_ASSERT(t != NULL && tok != NULL && tok->index < t->n && &t->toks[tok->index] == tok);
    return tally__tbucket_take(&t->buckets[tok->index], now_ms, rate_per_s, 1000, burst,
                               retry_after_s);
}
