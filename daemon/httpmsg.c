/* httpmsg.c — bounded byte buffers, percent-decoding and response bodies (httpmsg.h). */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "httpmsg.h"

/* ---- bounded buffers and percent-decoding --------------------------------- */

int
tally__sbuf_add(tally__sbuf_t *b, const char *p, size_t n, size_t cap)
{
    if (b->len + n + 1 > cap)
        return -1;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 128;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        if (ncap > cap + 1)
            ncap = cap + 1;
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

void
tally__sbuf_reset(tally__sbuf_t *b)
{
    b->len = 0;
    if (b->p)
        b->p[0] = '\0';
}

void
tally__sbuf_free(tally__sbuf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
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

int
tally__pct_decode(char *s, int plus)
{
    char *w = s;
    for (char *r = s; *r; r++) {
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

/* ---- response helpers ----------------------------------------------------- */

void
tally_http_take_body(tally_http_res_t *res, int status, const char *content_type, char *body,
                     size_t len)
{
    free(res->body);
    res->status = status;
    res->content_type = content_type;
    res->body = body;
    res->body_len = len;
}

void
tally_http_set_body(tally_http_res_t *res, int status, const char *content_type, const char *body,
                    size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        tally_http_take_body(res, 500, "text/plain", NULL, 0);
        return;
    }
    memcpy(copy, body, len);
    copy[len] = '\0';
    tally_http_take_body(res, status, content_type, copy, len);
}

static void
json_escape_into(tally__sbuf_t *b, const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            tally__sbuf_add(b, esc, 2, 1 << 16);
        } else if (ch < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", ch);
            tally__sbuf_add(b, esc, 6, 1 << 16);
        } else {
            tally__sbuf_add(b, (const char *)&ch, 1, 1 << 16);
        }
    }
}

void
tally_http_error(tally_http_res_t *res, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tally__sbuf_t b = {0};
    tally__sbuf_add(&b, "{\"code\":\"", 9, 1 << 16);
    json_escape_into(&b, code);
    tally__sbuf_add(&b, "\",\"message\":\"", 13, 1 << 16);
    json_escape_into(&b, msg);
    tally__sbuf_add(&b, "\"}", 2, 1 << 16);
    tally_http_take_body(res, status, "application/json", b.p, b.len);
}

int
tally_http_query_get(const char *query, const char *name, char *buf, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t seg = amp ? (size_t)(amp - p) : strlen(p);
        const char *eq = memchr(p, '=', seg);
        size_t klen = eq ? (size_t)(eq - p) : seg;
        if (klen == nlen && memcmp(p, name, nlen) == 0) {
            size_t vlen = eq ? seg - klen - 1 : 0;
            if (vlen + 1 > cap)
                return 0;
            memcpy(buf, eq ? eq + 1 : "", vlen);
            buf[vlen] = '\0';
            if (tally__pct_decode(buf, 1) != 0)
                return 0;
            return 1;
        }
        p = amp ? amp + 1 : NULL;
    }
    return 0;
}
