/* httpreq.c — http-parser callbacks, limits and request-target decoding for one request stream. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpreq.h"

/* Every per-request field back to empty, keeping the buffers' memory: a
 * keep-alive connection parses many requests and should not allocate for
 * each. Called at a message's start and after its answer. */
static void
reset_request(tally__httpreq_t *r)
{
    tally__sbuf_reset(&r->url);
    tally__sbuf_reset(&r->body);
    tally__sbuf_reset(&r->auth);
    tally__sbuf_reset(&r->ctype);
    tally__sbuf_reset(&r->field);
    tally__sbuf_reset(&r->te);
    r->cur = TALLY__HDR_NONE;
    r->last_was_value = 0;
    r->nheaders = 0;
    r->header_bytes = 0;
    r->error_status = 0;
    r->expect_continue = 0;
    r->nauth = 0;
}

/* Note why the request is refused and stop http-parser: the owner answers
 * with the status and closes, since after a refused head the byte stream can
 * no longer be trusted to frame the next request. */
static int
refuse(tally__httpreq_t *r, int status, const char *code, const char *msg)
{
    r->error_status = status;
    r->error_code = code;
    r->error_msg = msg;
    return -1; /* stops the parser */
}

static int
cb_message_begin(http_parser *p)
{
    tally__httpreq_t *r = p->data;
    reset_request(r);
    if (r->hooks->begin)
        r->hooks->begin(r->owner);
    return 0;
}

/* The request line and every header name and value count against one
 * budget (http.max_header_bytes), so that neither a long target nor many
 * small headers can make a connection hold unbounded memory before the
 * request is known. */
static int
count_header_bytes(tally__httpreq_t *r, size_t n)
{
    r->header_bytes += n;
    if (r->header_bytes > r->lim->max_header_bytes)
        return refuse(r, 431, "ETOOLARGE", "request line and headers exceed http.max_header_bytes");
    return 0;
}

static int
cb_url(http_parser *p, const char *at, size_t n)
{
    tally__httpreq_t *r = p->data;
    if (count_header_bytes(r, n))
        return -1;
    if (tally__sbuf_add(&r->url, at, n, r->lim->max_header_bytes))
        return refuse(r, 414, "ETOOLARGE", "request target too long");
    return 0;
}

/* http-parser may hand a name in pieces; a new name starts after a value.
 * Only names up to 64 bytes are kept: every header tally reads is shorter,
 * and a longer one only needs counting, not storing. */
static int
cb_header_field(http_parser *p, const char *at, size_t n)
{
    tally__httpreq_t *r = p->data;
    if (count_header_bytes(r, n))
        return -1;
    if (r->last_was_value || r->nheaders == 0) {
        if (++r->nheaders > r->lim->max_headers)
            return refuse(r, 431, "ETOOLARGE", "more headers than http.max_headers");
        tally__sbuf_reset(&r->field);
        r->last_was_value = 0;
    }
    if (tally__sbuf_add(&r->field, at, n, 64) != 0)
        tally__sbuf_add(&r->field, "", 0, 64); /* a long name is none we care about */
    return 0;
}

/* Only four headers matter to tally (Authorization, Content-Type, Expect,
 * Transfer-Encoding); their values are kept under small caps of their own,
 * the rest are counted and dropped. */
static int
cb_header_value(http_parser *p, const char *at, size_t n)
{
    tally__httpreq_t *r = p->data;
    if (count_header_bytes(r, n))
        return -1;
    if (!r->last_was_value) {
        const char *f = r->field.p ? r->field.p : "";
        r->last_was_value = 1;
        r->cur = TALLY__HDR_NONE;
        if (strcasecmp(f, "authorization") == 0) {
            /* two credentials are ambiguous: which one would we check? */
            if (++r->nauth > 1)
                return refuse(r, 400, "EBADINPUT", "more than one Authorization header");
            r->cur = TALLY__HDR_AUTH;
            tally__sbuf_reset(&r->auth);
        } else if (strcasecmp(f, "transfer-encoding") == 0) {
            r->cur = TALLY__HDR_TE;
        } else if (strcasecmp(f, "content-type") == 0) {
            r->cur = TALLY__HDR_CTYPE;
            tally__sbuf_reset(&r->ctype);
        } else if (strcasecmp(f, "expect") == 0) {
            r->cur = TALLY__HDR_EXPECT;
        }
    }
    if (r->cur == TALLY__HDR_AUTH)
        tally__sbuf_add(&r->auth, at, n, 1024);
    else if (r->cur == TALLY__HDR_CTYPE)
        tally__sbuf_add(&r->ctype, at, n, 256);
    else if (r->cur == TALLY__HDR_EXPECT && n >= 12 && strncasecmp(at, "100-continue", 12) == 0)
        r->expect_continue = 1;
    else if (r->cur == TALLY__HDR_TE)
        tally__sbuf_add(&r->te, at, n, 128);
    return 0;
}

static int
cb_headers_complete(http_parser *p)
{
    tally__httpreq_t *r = p->data;
    if ((p->flags & F_CONTENTLENGTH) && p->content_length > r->lim->max_body_bytes)
        return refuse(r, 413, "ETOOLARGE", "request body exceeds http.max_body_bytes");
    if (r->te.len) {
        /* http-parser decodes chunked and ignores the rest: refuse codings
         * we would silently misread */
        char *v = r->te.p;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t l = strlen(v);
        while (l && (v[l - 1] == ' ' || v[l - 1] == '\t'))
            l--;
        if (l != 7 || strncasecmp(v, "chunked", 7) != 0)
            return refuse(r, 501, "ENOTIMPLEMENTED",
                          "only the chunked transfer coding is supported");
    }
    if (r->expect_continue) { /* the client waits for this before sending the body */
        if (r->hooks->expect_continue)
            r->hooks->expect_continue(r->owner);
        r->expect_continue = 0;
    }
    return 0;
}

static int
cb_body(http_parser *p, const char *at, size_t n)
{
    tally__httpreq_t *r = p->data;
    if (tally__sbuf_add(&r->body, at, n, (size_t)r->lim->max_body_bytes + 1)) /* + its NUL */
        return refuse(r, 413, "ETOOLARGE", "request body exceeds http.max_body_bytes");
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

/* A whole request: decode its target, hand it to the owner, and start over.
 * A malformed target still gets an answer (400) on a connection that stays
 * usable, because its framing was sound. HEAD is served as GET without the
 * body, so every route answers HEAD alike. */
static int
cb_message_complete(http_parser *p)
{
    tally__httpreq_t *r = p->data;
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
    if (!r->url.p || http_parser_parse_url(r->url.p, r->url.len, 0, &u) != 0 ||
        !(u.field_set & (1 << UF_PATH))) {
        tally_http_error(&res, 400, "EBADINPUT", "malformed request target");
        goto respond;
    }
    path = strndup(r->url.p + u.field_data[UF_PATH].off, u.field_data[UF_PATH].len);
    query = (u.field_set & (1 << UF_QUERY))
                ? strndup(r->url.p + u.field_data[UF_QUERY].off, u.field_data[UF_QUERY].len)
                : strdup("");
    if (!path || !query) {
        tally_http_error(&res, 500, "EINTERNAL", "out of memory");
        goto respond;
    }
    if (tally__pct_decode(path, 0) != 0) {
        tally_http_error(&res, 400, "EBADINPUT", "malformed percent-encoding in the path");
        goto respond;
    }
    req.path = path;
    req.query = query;
    while (r->auth.len && (r->auth.p[r->auth.len - 1] == ' ' || r->auth.p[r->auth.len - 1] == '\t'))
        r->auth.p[--r->auth.len] = '\0'; /* optional trailing whitespace (RFC 9110) */
    req.authorization = r->auth.len ? r->auth.p : NULL;
    req.content_type = r->ctype.len ? r->ctype.p : NULL;
    req.body = r->body.p ? r->body.p : empty;
    req.body_len = r->body.len;
respond:;
    int keep_alive = r->hooks->request(r->owner, &req, &res, http_should_keep_alive(p));
    free(res.body);
    free(path);
    free(query);
    reset_request(r);
    if (!keep_alive) {
        r->stopped = 1;
        return -1; /* ignore whatever follows */
    }
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = cb_message_begin,
    .on_url = cb_url,
    .on_header_field = cb_header_field,
    .on_header_value = cb_header_value,
    .on_headers_complete = cb_headers_complete,
    .on_body = cb_body,
    .on_message_complete = cb_message_complete,
};

void
tally__httpreq_init(tally__httpreq_t *r, const tally_http_limits_t *lim,
                    const tally__httpreq_hooks_t *hooks, void *owner)
{
    memset(r, 0, sizeof *r);
    http_parser_init(&r->parser, HTTP_REQUEST);
    r->parser.data = r;
    r->lim = lim;
    r->hooks = hooks;
    r->owner = owner;
}

int
tally__httpreq_feed(tally__httpreq_t *r, const char *data, size_t n)
{
    if (r->stopped)
        return TALLY__HTTPREQ_STOP;
    size_t done = http_parser_execute(&r->parser, &settings, data, n);
    enum http_errno err = HTTP_PARSER_ERRNO(&r->parser);
    if (r->stopped)
        return TALLY__HTTPREQ_STOP; /* the response to a Connection: close request is out */
    if (r->error_status)
        return TALLY__HTTPREQ_REFUSE;
    if (err != HPE_OK || done != n) {
        snprintf(r->error_buf, sizeof r->error_buf, "malformed HTTP request: %s",
                 http_errno_description(err));
        r->error_status = 400;
        r->error_code = "EBADINPUT";
        r->error_msg = r->error_buf;
        return TALLY__HTTPREQ_REFUSE;
    }
    return TALLY__HTTPREQ_OK;
}

void
tally__httpreq_free(tally__httpreq_t *r)
{
    tally__sbuf_free(&r->url);
    tally__sbuf_free(&r->body);
    tally__sbuf_free(&r->auth);
    tally__sbuf_free(&r->ctype);
    tally__sbuf_free(&r->field);
    tally__sbuf_free(&r->te);
}
