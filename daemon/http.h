/* http.h — tallyd's embedded HTTP/1.1 server: libuv TCP + http-parser, bounded in every dimension.
 *
 * The server runs on the main libuv loop. It reads requests (keep-alive,
 * pipelining, Content-Length and chunked bodies), enforces the limits of
 * [http] (header bytes and count, body bytes → 413, concurrent connections
 * → 503, idle and whole-request timeouts), and hands each complete request
 * to one dispatch function, which fills a response synchronously. Responses
 * go out in request order; a connection reads no further request while one
 * is being written (pipelined requests wait in the read buffer).
 *
 * Request-scoped memory (headers, body, response) dies with the request.
 */
#ifndef TALLY_HTTP_H
#define TALLY_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define TALLY_HTTP_MAX_PARAMS 4

/** Methods we route (a subset of http-parser's). */
enum {
    TALLY_HTTP_GET = 1,
    TALLY_HTTP_HEAD,
    TALLY_HTTP_POST,
    TALLY_HTTP_PUT,
    TALLY_HTTP_DELETE,
    TALLY_HTTP_OTHER
};

typedef struct tally_http_req {
    int method;                /**< TALLY_HTTP_*; HEAD is routed as GET with head = 1 */
    int head;                  /**< the response must carry no body */
    const char *path;          /**< NUL-terminated, percent-decoded, without the query */
    const char *query;         /**< raw query string after '?', NUL-terminated ("" if none) */
    const char *authorization; /**< Authorization header value or NULL */
    const char *content_type;  /**< Content-Type header value or NULL */
    const char *body;          /**< NUL-terminated copy of the body ("" if none) */
    size_t body_len;
    const char *remote; /**< peer address text, for logs */
    /** route parameters ({namespace}, {name}...), filled by the router */
    const char *params[TALLY_HTTP_MAX_PARAMS];
    const char *param_names[TALLY_HTTP_MAX_PARAMS];
    int nparams;
    void *user; /**< the router's per-request data (the token) */
} tally_http_req_t;

typedef struct tally_http_res {
    int status;
    const char *content_type; /**< static string; default application/json */
    char *body;               /**< heap, owned by the response (freed by the server) */
    size_t body_len;
    uint32_t retry_after; /**< seconds; sent as Retry-After when non-zero */
    const char *route;    /**< route name for metrics (static), NULL = unmatched */
} tally_http_res_t;

/** Fill res for req. Called on the loop thread; must not block for long. */
typedef void (*tally_http_dispatch_fn)(void *ctx, tally_http_req_t *req, tally_http_res_t *res);

typedef struct tally_http_limits {
    uint32_t max_header_bytes;
    uint32_t max_headers;
    uint32_t max_body_bytes;
    uint32_t max_connections;
    uint32_t idle_timeout_ms;
    uint32_t request_timeout_ms;
} tally_http_limits_t;

typedef struct tally_http_server tally_http_server_t;

/**
 * @brief Listen on host:port and serve.
 * @param port 0 lets the kernel choose; tally_http_port() tells which.
 * @return 0 or a negative libuv/errno code (bind failures name the address in the log).
 */
int tally_http_start(uv_loop_t *loop, const char *host, uint16_t port,
                     const tally_http_limits_t *limits, tally_http_dispatch_fn dispatch, void *ctx,
                     int log_requests, tally_http_server_t **out);

/** @brief The port actually bound. */
uint16_t tally_http_port(const tally_http_server_t *s);

/** @brief Stop accepting, close every connection, free once closed. */
void tally_http_close(tally_http_server_t *s);

/** @brief Connections open now (for /metrics). */
uint32_t tally_http_connections(const tally_http_server_t *s);

/* ---- response helpers ---------------------------------------------------- */

/** @brief Set a body (copied) with status and content type. */
void tally_http_set_body(tally_http_res_t *res, int status, const char *content_type,
                         const char *body, size_t len);

/** @brief Take ownership of a heap body. */
void tally_http_take_body(tally_http_res_t *res, int status, const char *content_type, char *body,
                          size_t len);

/**
 * @brief A JSON error body `{"code": CODE, "message": ...}` with status.
 * @param code the spec's ErrorCode name, e.g. "EBADINPUT", "EPERMS", "ENOTFOUND".
 */
void tally_http_error(tally_http_res_t *res, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/**
 * @brief Find a query parameter; decodes %XX and '+'.
 * @return 1 and the value in buf, 0 if absent.
 */
int tally_http_query_get(const char *query, const char *name, char *buf, size_t cap);

#endif
