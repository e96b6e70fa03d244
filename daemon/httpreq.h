/* httpreq.h — one connection's HTTP/1.1 request stream parsed into tally_http_req_t, without
 * sockets: http-parser callbacks, the header and body limits of [http], and request-target
 * decoding.
 *
 * The server (http.c) feeds it what a socket read returned; the fuzz
 * harness feeds it raw bytes. Both therefore run the same parser code. The
 * owner learns of a request's first byte, of a client waiting for
 * "100 Continue", and of each whole request through hooks, and answers the
 * request inside the last one.
 */
#ifndef TALLY_HTTPREQ_H
#define TALLY_HTTPREQ_H

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>

#include "http.h"
#include "httpmsg.h"

typedef struct tally__httpreq_hooks {
    /** The first byte of a request arrived (the owner arms its request timer). May be NULL. */
    void (*begin)(void *owner);
    /** The client sent "Expect: 100-continue" and waits for it. May be NULL. */
    void (*expect_continue)(void *owner);
    /**
     * A whole request. When res->status is already set (a malformed request
     * target), the owner only sends res; otherwise it fills res for req and
     * sends it. keep_alive is what the request asks for.
     * @return the keep-alive the owner answered with: 0 stops the stream
     *         (whatever follows is ignored).
     */
    int (*request)(void *owner, tally_http_req_t *req, tally_http_res_t *res, int keep_alive);
} tally__httpreq_hooks_t;

enum tally__hdr_kind {
    TALLY__HDR_NONE,
    TALLY__HDR_AUTH,
    TALLY__HDR_CTYPE,
    TALLY__HDR_EXPECT,
    TALLY__HDR_TE
};

/** One connection's parser state; embed it, set it up with tally__httpreq_init(). */
typedef struct tally__httpreq {
    http_parser parser;
    const tally_http_limits_t *lim;
    const tally__httpreq_hooks_t *hooks;
    void *owner;
    tally__sbuf_t url, body, auth, ctype, field, te;
    int expect_continue;
    int nauth;
    int last_was_value;
    int stopped; /* a response without keep-alive went out */
    enum tally__hdr_kind cur;
    uint32_t nheaders;
    size_t header_bytes;
    /* a refusal: what to answer before closing */
    int error_status;
    const char *error_code;
    const char *error_msg;
    char error_buf[160];
} tally__httpreq_t;

enum {
    TALLY__HTTPREQ_OK = 0,     /**< everything was consumed; read on */
    TALLY__HTTPREQ_STOP = 1,   /**< a response closed the stream; ignore the rest */
    TALLY__HTTPREQ_REFUSE = 2, /**< answer error_status/error_code/error_msg and close */
};

/** @brief Start parsing requests; lim and hooks must outlive r. */
void tally__httpreq_init(tally__httpreq_t *r, const tally_http_limits_t *lim,
                         const tally__httpreq_hooks_t *hooks, void *owner);

/**
 * @brief Parse n more bytes, calling the hooks for what completes.
 * @return TALLY__HTTPREQ_OK, _STOP or _REFUSE.
 */
int tally__httpreq_feed(tally__httpreq_t *r, const char *data, size_t n);

/** @brief Free r's buffers (r itself belongs to the caller). */
void tally__httpreq_free(tally__httpreq_t *r);

#endif
