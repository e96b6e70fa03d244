/* selector.c — the Kubernetes-style label-selector parser and matcher (grammar in selector.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "selector.h"
#include "tally/tally.h"

typedef struct req {
    tally__selector_op_t op;
    char *key;
    char **values; /* EQ/NEQ: one; IN/NOTIN: sorted, unique, >= 1; else none */
    size_t nvalues;
} req_t;

struct tally__selector {
    req_t *reqs;
    size_t n;
};

/* ---- lexer ---------------------------------------------------------------------
 * Tokens as Kubernetes' lexer has them: punctuation, and identifiers = runs
 * of bytes that are neither blanks nor punctuation. "in" and "notin" are
 * identifiers the parser reads as keywords in operator position. */

enum tok_kind { T_END, T_IDENT, T_COMMA, T_LPAREN, T_RPAREN, T_BANG, T_EQ, T_NEQ, T_BAD };

typedef struct tok {
    enum tok_kind kind;
    const char *s; /* start in the text */
    size_t len;
    size_t pos; /* 1-based */
} tok_t;

typedef struct lexer {
    const char *text;
    size_t i;
    tok_t cur; /* the lookahead */
    char *err;
    size_t errlen;
} lexer_t;

static int
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static int
is_special(char c)
{
    return c == '!' || c == '=' || c == '(' || c == ')' || c == ',' || c == '<' || c == '>';
}

static void
lex_next(lexer_t *L)
{
    const char *t = L->text;
    while (t[L->i] && is_blank(t[L->i]))
        L->i++;
    tok_t *k = &L->cur;
    k->s = t + L->i;
    k->pos = L->i + 1;
    k->len = 1;
    char c = t[L->i];
    switch (c) {
    case '\0':
        k->kind = T_END;
        k->len = 0;
        return;
    case ',':
        k->kind = T_COMMA;
        break;
    case '(':
        k->kind = T_LPAREN;
        break;
    case ')':
        k->kind = T_RPAREN;
        break;
    case '!':
        if (t[L->i + 1] == '=') {
            k->kind = T_NEQ;
            k->len = 2;
        } else {
            k->kind = T_BANG;
        }
        break;
    case '=':
        k->kind = T_EQ;
        if (t[L->i + 1] == '=')
            k->len = 2;
        break;
    case '<':
    case '>':
        k->kind = T_BAD;
        break;
    default: {
        size_t j = L->i;
        while (t[j] && !is_blank(t[j]) && !is_special(t[j]))
            j++;
        k->kind = T_IDENT;
        k->len = j - L->i;
        break;
    }
    }
    L->i += k->len;
}

/* Describe the lookahead for an error message. */
static void
describe(const tok_t *k, char *buf, size_t cap)
{
    if (k->kind == T_END)
        snprintf(buf, cap, "the end of the expression");
    else
        snprintf(buf, cap, "'%.*s'", (int)(k->len > 64 ? 64 : k->len), k->s);
}

static int fail(lexer_t *L, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(lexer_t *L, size_t pos, const char *fmt, ...)
{
    if (L->err && L->errlen) {
        int n = snprintf(L->err, L->errlen, "at %zu: ", pos);
        if (n >= 0 && (size_t)n < L->errlen) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(L->err + n, L->errlen - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return TALLY_EINVAL;
}

/* "expected X, found Y" at the lookahead. */
static int
expected(lexer_t *L, const char *what)
{
    char found[80];
    describe(&L->cur, found, sizeof found);
    if (L->cur.kind == T_BAD)
        return fail(L, L->cur.pos, "operator %s is not supported (expected %s)", found, what);
    return fail(L, L->cur.pos, "expected %s, found %s", what, found);
}

/* ---- validation of keys and values -------------------------------------------- */

static int
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], 1..63 bytes; NULL or the reason. */
static const char *
name_problem(const char *s, size_t n)
{
    if (n == 0)
        return "must not be empty";
    if (n > 63)
        return "must be at most 63 characters";
    if (!is_alnum(s[0]) || !is_alnum(s[n - 1]))
        return "must begin and end with a letter or digit";
    for (size_t i = 0; i < n; i++)
        if (!is_alnum(s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
            return "may contain only letters, digits, '-', '_' and '.'";
    return NULL;
}

/* DNS-1123 subdomain: lower-case labels of [a-z0-9-] joined by '.', <= 253 bytes. */
static const char *
prefix_problem(const char *s, size_t n)
{
    if (n == 0)
        return "the prefix before '/' must not be empty";
    if (n > 253)
        return "the prefix before '/' must be at most 253 characters";
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63 || s[start] == '-' || s[i - 1] == '-')
                return "the prefix before '/' must be a DNS subdomain (lower-case labels "
                       "of a-z, 0-9 and '-' joined by '.')";
            start = i + 1;
            continue;
        }
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return "the prefix before '/' must be a DNS subdomain (lower-case labels "
                   "of a-z, 0-9 and '-' joined by '.')";
    }
    return NULL;
}

static int
check_key(lexer_t *L, const tok_t *k)
{
    const char *slash = memchr(k->s, '/', k->len);
    const char *why;
    if (slash) {
        size_t pl = (size_t)(slash - k->s);
        if ((why = prefix_problem(k->s, pl)) != NULL)
            return fail(L, k->pos, "invalid label key '%.*s': %s", (int)k->len, k->s, why);
        if ((why = name_problem(slash + 1, k->len - pl - 1)) != NULL)
            return fail(L, k->pos, "invalid label key '%.*s': the name after '/' %s", (int)k->len,
                        k->s, why);
        return 0;
    }
    if ((why = name_problem(k->s, k->len)) != NULL)
        return fail(L, k->pos, "invalid label key '%.*s': %s", (int)k->len, k->s, why);
    return 0;
}

static int
check_value(lexer_t *L, const tok_t *k)
{
    const char *why = name_problem(k->s, k->len);
    if (why)
        return fail(L, k->pos, "invalid label value '%.*s': %s", (int)k->len, k->s, why);
    return 0;
}

int
tally__selector_check_key(const char *key, char *err, size_t errlen)
{
    size_t n = strlen(key);
    const char *slash = memchr(key, '/', n);
    const char *why;
    char buf[160];
    if (slash) {
        size_t pl = (size_t)(slash - key);
        why = prefix_problem(key, pl);
        if (!why && (why = name_problem(slash + 1, n - pl - 1)) != NULL) {
            snprintf(buf, sizeof buf, "the name after '/' %s", why);
            why = buf;
        }
    } else {
        why = name_problem(key, n);
    }
    if (why && err && errlen)
        snprintf(err, errlen, "%s", why);
    return why ? TALLY_EINVAL : 0;
}

int
tally__selector_check_value(const char *value, char *err, size_t errlen)
{
    size_t n = strlen(value);
    const char *why = n ? name_problem(value, n) : NULL;
    if (why && err && errlen)
        snprintf(err, errlen, "%s", why);
    return why ? TALLY_EINVAL : 0;
}

/* ---- parser ------------------------------------------------------------------- */

static void
req_fini(req_t *r)
{
    free(r->key);
    for (size_t i = 0; i < r->nvalues; i++)
        free(r->values[i]);
    free(r->values);
}

static int
add_value(req_t *r, const char *s, size_t n)
{
    char **v = realloc(r->values, (r->nvalues + 1) * sizeof *v);
    if (!v)
        return -ENOMEM;
    r->values = v;
    if (!(v[r->nvalues] = strndup(s, n)))
        return -ENOMEM;
    r->nvalues++;
    return 0;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort a set's values and drop duplicates (sets are sets). */
static void
normalize_set(req_t *r)
{
    qsort(r->values, r->nvalues, sizeof *r->values, cmp_str);
    size_t w = 0;
    for (size_t i = 0; i < r->nvalues; i++) {
        if (w > 0 && strcmp(r->values[w - 1], r->values[i]) == 0) {
            free(r->values[i]);
            continue;
        }
        r->values[w++] = r->values[i];
    }
    r->nvalues = w;
}

/* "(" value { "," value } ")" after in/notin; the lookahead is at "(". */
static int
parse_set(lexer_t *L, req_t *r, const tok_t *optok)
{
    int rc;
    if (L->cur.kind != T_LPAREN) {
        char what[64];
        snprintf(what, sizeof what, "'(' after '%.*s'", (int)optok->len, optok->s);
        return expected(L, what);
    }
    lex_next(L);
    if (L->cur.kind == T_RPAREN)
        return fail(L, L->cur.pos, "the value set of '%.*s' must not be empty", (int)optok->len,
                    optok->s);
    for (;;) {
        if (L->cur.kind != T_IDENT)
            return expected(L, "a value");
        if ((rc = check_value(L, &L->cur)) != 0)
            return rc;
        if ((rc = add_value(r, L->cur.s, L->cur.len)) != 0)
            return rc;
        lex_next(L);
        if (L->cur.kind == T_RPAREN)
            break;
        if (L->cur.kind != T_COMMA)
            return expected(L, "',' or ')' in the value set");
        lex_next(L);
    }
    lex_next(L); /* past ')' */
    normalize_set(r);
    return 0;
}

static int
parse_requirement(lexer_t *L, req_t *r)
{
    int rc;
    if (L->cur.kind == T_BANG) {
        lex_next(L);
        if (L->cur.kind != T_IDENT)
            return expected(L, "a label key after '!'");
        if ((rc = check_key(L, &L->cur)) != 0)
            return rc;
        r->op = TALLY_SEL_NOT_EXISTS;
        if (!(r->key = strndup(L->cur.s, L->cur.len)))
            return -ENOMEM;
        lex_next(L);
        if (L->cur.kind != T_COMMA && L->cur.kind != T_END)
            return expected(L, "',' or the end after a '!key' requirement");
        return 0;
    }
    if (L->cur.kind != T_IDENT)
        return expected(L, "a label key or '!'");
    if ((rc = check_key(L, &L->cur)) != 0)
        return rc;
    if (!(r->key = strndup(L->cur.s, L->cur.len)))
        return -ENOMEM;
    tok_t keytok = L->cur;
    lex_next(L);
    switch (L->cur.kind) {
    case T_END:
    case T_COMMA:
        r->op = TALLY_SEL_EXISTS;
        return 0;
    case T_EQ:
    case T_NEQ: {
        r->op = L->cur.kind == T_EQ ? TALLY_SEL_EQ : TALLY_SEL_NEQ;
        tok_t optok = L->cur;
        lex_next(L);
        if (L->cur.kind == T_END || L->cur.kind == T_COMMA) {
            rc = add_value(r, "", 0); /* key= : the label is present and empty */
        } else if (L->cur.kind == T_IDENT) {
            if ((rc = check_value(L, &L->cur)) != 0)
                return rc;
            rc = add_value(r, L->cur.s, L->cur.len);
            lex_next(L);
        } else {
            char what[64];
            snprintf(what, sizeof what, "a value after '%.*s'", (int)optok.len, optok.s);
            return expected(L, what);
        }
        if (rc != 0)
            return rc;
        if (L->cur.kind != T_COMMA && L->cur.kind != T_END)
            return expected(L, "',' or the end after a value");
        return 0;
    }
    case T_IDENT:
        if (L->cur.len == 2 && memcmp(L->cur.s, "in", 2) == 0)
            r->op = TALLY_SEL_IN;
        else if (L->cur.len == 5 && memcmp(L->cur.s, "notin", 5) == 0)
            r->op = TALLY_SEL_NOTIN;
        else
            break;
        {
            tok_t optok = L->cur;
            lex_next(L);
            if ((rc = parse_set(L, r, &optok)) != 0)
                return rc;
        }
        if (L->cur.kind != T_COMMA && L->cur.kind != T_END)
            return expected(L, "',' or the end after ')'");
        return 0;
    default:
        break;
    }
    char what[128];
    snprintf(what, sizeof what, "'=', '==', '!=', 'in', 'notin', ',' or the end after key '%.*s'",
             (int)(keytok.len > 64 ? 64 : keytok.len), keytok.s);
    return expected(L, what);
}

int
tally__selector_parse(const char *text, tally__selector_t **out, char *err, size_t errlen)
{
    if (!text)
        text = "";
    if (err && errlen)
        err[0] = '\0';
    lexer_t L = {.text = text, .err = err, .errlen = errlen};
    if (strlen(text) > TALLY_SELECTOR_MAX_TEXT)
        return fail(&L, TALLY_SELECTOR_MAX_TEXT + 1, "the expression is longer than %d bytes",
                    TALLY_SELECTOR_MAX_TEXT);
    int rc;
    tally__selector_t *sel = calloc(1, sizeof *sel);
    if (!sel)
        return -ENOMEM;
    size_t cap = 0;
    lex_next(&L);
    if (L.cur.kind != T_END) {
        for (;;) {
            if (tally__grow((void **)&sel->reqs, &cap, sel->n + 1, sizeof *sel->reqs, 4)) {
                rc = -ENOMEM;
                goto fail;
            }
            req_t *r = &sel->reqs[sel->n++];
            memset(r, 0, sizeof *r);
            if ((rc = parse_requirement(&L, r)) != 0)
                goto fail;
            if (L.cur.kind == T_END)
                break;
            /* parse_requirement stops only at ',' or the end */
            lex_next(&L);
            if (L.cur.kind == T_END) {
                rc = fail(&L, L.cur.pos,
                          "expected a requirement after ',', found the end of "
                          "the expression");
                goto fail;
            }
        }
    }
    *out = sel;
    return 0;
fail:
    if (rc == -ENOMEM && err && errlen)
        snprintf(err, errlen, "out of memory");
    tally__selector_destroy(sel);
    return rc;
}

void
tally__selector_destroy(tally__selector_t *sel)
{
    if (!sel)
        return;
    for (size_t i = 0; i < sel->n; i++)
        req_fini(&sel->reqs[i]);
    free(sel->reqs);
    free(sel);
}

size_t
tally__selector_count(const tally__selector_t *sel)
{
    return sel ? sel->n : 0;
}

/* ---- matching ------------------------------------------------------------------ */

static int
in_set(const req_t *r, const char *v)
{
    for (size_t i = 0; i < r->nvalues; i++)
        if (strcmp(r->values[i], v) == 0)
            return 1;
    return 0;
}

int
tally__selector_match(const tally__selector_t *sel, tally__selector_get_fn get, void *ctx)
{
    if (!sel)
        return 1;
    for (size_t i = 0; i < sel->n; i++) {
        const req_t *r = &sel->reqs[i];
        const char *v = get(ctx, r->key);
        int ok;
        switch (r->op) {
        case TALLY_SEL_EQ:
            ok = v && strcmp(v, r->values[0]) == 0;
            break;
        case TALLY_SEL_NEQ:
            ok = !v || strcmp(v, r->values[0]) != 0;
            break;
        case TALLY_SEL_IN:
            ok = v && in_set(r, v);
            break;
        case TALLY_SEL_NOTIN:
            ok = !v || !in_set(r, v);
            break;
        case TALLY_SEL_EXISTS:
            ok = v != NULL;
            break;
        case TALLY_SEL_NOT_EXISTS:
        default:
            ok = v == NULL;
            break;
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static const char *
json_get(void *ctx, const char *key)
{
    const json_t *labels = ctx;
    if (!json_is_object(labels))
        return NULL;
    json_t *v = json_object_get(labels, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int
tally__selector_match_json(const tally__selector_t *sel, const json_t *labels)
{
    return tally__selector_match(sel, json_get, (void *)labels);
}

/* ---- formatting ------------------------------------------------------------------ */

typedef struct sbuf {
    char *buf;
    size_t cap, len;
} sbuf_t;

static void
put(sbuf_t *b, const char *s)
{
    size_t n = strlen(s);
    if (b->cap && b->len < b->cap - 1) {
        size_t room = b->cap - 1 - b->len;
        memcpy(b->buf + b->len, s, n < room ? n : room);
    }
    b->len += n;
}

size_t
tally__selector_format(const tally__selector_t *sel, char *buf, size_t cap)
{
    sbuf_t b = {buf, cap, 0};
    for (size_t i = 0; sel && i < sel->n; i++) {
        const req_t *r = &sel->reqs[i];
        if (i)
            put(&b, ",");
        if (r->op == TALLY_SEL_NOT_EXISTS)
            put(&b, "!");
        put(&b, r->key);
        switch (r->op) {
        case TALLY_SEL_EQ:
            put(&b, "=");
            put(&b, r->values[0]);
            break;
        case TALLY_SEL_NEQ:
            put(&b, "!=");
            put(&b, r->values[0]);
            break;
        case TALLY_SEL_IN:
        case TALLY_SEL_NOTIN:
            put(&b, r->op == TALLY_SEL_IN ? " in (" : " notin (");
            for (size_t j = 0; j < r->nvalues; j++) {
                if (j)
                    put(&b, ",");
                put(&b, r->values[j]);
            }
            put(&b, ")");
            break;
        default:
            break;
        }
    }
    if (cap)
        buf[b.len < cap ? b.len : cap - 1] = '\0';
    return b.len;
}
