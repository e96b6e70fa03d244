/* http.h — tallyd's embedded HTTP/1.1 server: libuv TCP + http-parser, bounded in every dimension.
 *
 * The server runs on the main libuv loop. It reads requests (keep-alive,
 * pipelining, Content-Length and chunked bodies), enforces the limits of
 * [http] (header bytes and count, body bytes → 413, concurrent connections
 * → 503, connections per client address → 429, idle and whole-request
 * timeouts), and hands each complete request
 * to one dispatch function. The dispatch either fills the response
 * synchronously, or defers it: it calls tally_http_defer() and leaves the
 * response empty, and the answer goes out when tally_http_complete() is
 * called on the handle, later, on the loop thread.
 *
 * Responses go out in request order. A connection parses no further
 * request while one is being written or while an answer is pending:
 * pipelined requests wait (those already parsed from the same read are
 * queued, copied, and dispatched in turn once the answer before them is
 * out; later bytes are held unparsed, at most 64 KiB, beyond which the
 * socket is no longer read). While an answer is pending the idle and
 * request timeouts do not apply; the pending limit does instead
 * (tally_http_limits_t.pending_timeout_ms, by default 3 × request_timeout_ms):
 * past it the server answers 503 EUNAVAILABLE itself, and the handle only
 * waits to be freed by tally_http_complete().
 *
 * Ownership of a deferred handle: tally_http_defer() creates it and the
 * dispatcher owns it from then on; exactly one tally_http_complete() frees it,
 * whatever happened meanwhile. The server only borrows it while the
 * connection waits, and lets go (never frees) when the connection closes
 * (peer gone, tally_http_close()) or the pending limit answers 503. So a
 * handle may outlive its connection and its server.
 *
 * Request-scoped memory (headers, body, response) dies with the request:
 * a deferring dispatch copies what it needs before returning.
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
    void *srv;  /**< the server's, for tally_http_defer(); dispatch leaves it alone */
} tally_http_req_t;

typedef struct tally_http_res {
    int status;
    const char *content_type; /**< static string; default application/json */
    char *body;               /**< heap, owned by the response (freed by the server) */
    size_t body_len;
    uint32_t retry_after; /**< seconds; sent as Retry-After when non-zero */
    const char *route;    /**< route name for metrics (static), NULL = unmatched */
} tally_http_res_t;

/**
 * Fill res for req, or defer it with tally_http_defer(). Called on the loop
 * thread; must not block for long. req and its strings are valid until it
 * returns; res is sent (and res->body freed) by the server.
 */
typedef void (*tally_http_dispatch_fn)(void *ctx, tally_http_req_t *req, tally_http_res_t *res);

/**
 * Told of each answer to a dispatched request, once it is handed to the
 * connection (see tally_http_set_observer()).
 * @param route res->route as the dispatch set it (NULL = unmatched).
 * @param status the status sent.
 * @param ns nanoseconds from the start of the dispatch to the answer.
 */
typedef void (*tally_http_observe_fn)(void *ctx, const char *route, int status, uint64_t ns);

typedef struct tally_http_limits {
    uint32_t max_header_bytes;
    uint32_t max_headers;
    uint32_t max_body_bytes;
    uint32_t max_connections;
    uint32_t idle_timeout_ms;
    uint32_t request_timeout_ms;
    /** how long a deferred answer may take before the server answers 503;
     *  0 = 3 × request_timeout_ms */
    uint32_t pending_timeout_ms;
    /** open connections from one client address (an IPv6 client: its /64),
     *  reserved ones included; more are answered 429 and closed. 0 = no limit */
    uint32_t max_connections_per_address;
} tally_http_limits_t;

/**
 * Connections beyond max_connections kept for monitoring: while
 * max_connections are open, up to this many more are accepted, each for one
 * request (answered with Connection: close) that may only be GET or HEAD
 * /healthz or /metrics; any other request on them is answered 503. So a
 * health check still gets through when idle or slow clients hold every
 * ordinary slot (each for at most request_timeout_ms). When the reserve is
 * full too, a new connection takes the place of the oldest reserved one that
 * has not sent a byte yet (closed), so that silent clients cannot hold the
 * reserve; only when every reserved connection has begun a request is the
 * new one answered 503.
 */
#define TALLY_HTTP_RESERVED_CONNECTIONS 8

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

/**
 * @brief Stop accepting, close every connection, free once closed.
 * @note Pending answers are dropped (counted in pending_dropped); their
 *       handles stay valid until tally_http_complete(), which then only frees.
 */
void tally_http_close(tally_http_server_t *s);

/** @brief Connections open now (for /metrics). */
uint32_t tally_http_connections(const tally_http_server_t *s);

/**
 * @brief Report every answer to a dispatched request to fn, with the
 *        dispatch's ctx: synchronous answers right after the dispatch,
 *        deferred ones at tally_http_complete() or at the server's 503 when
 *        the pending limit passed. Not reported: requests refused before
 *        dispatch (malformed, over a limit) and deferred answers dropped
 *        because their connection had closed (see tally_http_stats()).
 *        NULL (the default) reports nothing.
 */
void tally_http_set_observer(tally_http_server_t *s, tally_http_observe_fn fn);

/** What tally_http_stats() reports. */
typedef struct tally_http_stats {
    uint32_t connections;      /**< open now */
    uint32_t pending;          /**< deferred answers awaited by an open connection now */
    uint64_t pending_timeouts; /**< deferred requests answered 503 after the pending limit */
    uint64_t pending_dropped;  /**< deferred requests whose connection closed first */
    uint32_t reserved;         /**< open now on the reserve (TALLY_HTTP_RESERVED_CONNECTIONS) */
    /** connections refused at max_connections (reserve full, or a reserved
     *  connection asking for something else than /healthz or /metrics) */
    uint64_t refused_max;
    uint64_t refused_per_address; /**< refused at max_connections_per_address */
    /** connections closed because a request (the first one: counted from the
     *  accept) did not arrive whole within request_timeout_ms */
    uint64_t request_timeouts;
    uint64_t idle_timeouts; /**< keep-alive connections closed after idle_timeout_ms */
    /** reserved connections that had sent nothing, closed to make room for a new one */
    uint64_t reserve_evictions;
} tally_http_stats_t;

/** @brief The server's counters (for /metrics). */
void tally_http_stats(const tally_http_server_t *s, tally_http_stats_t *out);

/* ---- deferred answers ---------------------------------------------------- */

/** A request whose answer comes later; see tally_http_defer(). */
typedef struct tally_http_pending tally_http_pending_t;

/**
 * @brief Called inside a dispatch function: the answer comes later through
 *        tally_http_complete(). The dispatch leaves res untouched apart from
 *        res->route (for metrics and the observer).
 * @return a handle, owned by the caller and valid until tally_http_complete()
 *         is called on it exactly once (even if the connection closes or the
 *         server is closed meanwhile); NULL on ENOMEM, and for a req that is
 *         not being dispatched by a server (e.g. the fuzz harness): then the
 *         dispatch must answer synchronously, e.g. 503.
 * @note The request's strings (body etc.) die when dispatch returns: copy
 *       what you need. Loop thread only; at most once per request (a broken
 *       invariant aborts).
 */
tally_http_pending_t *tally_http_defer(tally_http_req_t *req);

/**
 * @brief Whether req's answer is deferred (tally_http_defer() was called on it
 *        in this dispatch and the answer is not given yet). For dispatchers
 *        that check for an empty response after a handler.
 */
int tally_http_deferred(const tally_http_req_t *req);

/**
 * @brief Send the answer of a deferred request (loop thread only) and free p.
 *        Takes ownership of res->body (set to NULL); the rest of res is
 *        read now. res->route is not used: the route is what the dispatch set.
 *        The answer keeps the request's HEAD and keep-alive handling, and is
 *        logged and reported to the observer like a synchronous one.
 *        If the connection went away meanwhile (counted in pending_dropped
 *        when it closed), or the server already answered 503 (pending_timeouts),
 *        the answer is dropped and p only freed. Called inside the dispatch that
 *        deferred, the answer becomes that dispatch's synchronous response.
 * @note Pipelined requests behind this one are dispatched from inside this
 *       call, so the dispatch function may run re-entrantly here.
 */
void tally_http_complete(tally_http_pending_t *p, tally_http_res_t *res);

/* ---- streamed answers ---------------------------------------------------- */

/** What a streamed answer's owner provides (see tally_http_stream()). */
typedef struct tally_http_stream_ops {
    /**
     * Make the next piece of the body. Runs on libuv's thread pool, one call
     * at a time per stream, never while the previous piece is being written:
     * keep the piece bounded (tallyd's usage routes stop near 100 KiB).
     * @param[out] piece malloc'd bytes (the server frees them), or NULL with len 0.
     * @param[out] done 1 when this piece is the last.
     * @return 0; or, for the first piece only, an HTTP status (100..599):
     *         the piece is then the whole body of an answer with that status
     *         (a 4xx the producer found out late); or a negative code: the
     *         answer fails (500 when nothing went out yet, else the
     *         connection is cut before the last chunk, so the client sees an
     *         incomplete body).
     */
    int (*produce)(void *ctx, char **piece, size_t *len, int *done);
    /**
     * Called once on the loop thread when the stream is over: ok 1 when the
     * whole body went out, 0 when it failed or the peer went away. sent is
     * the body bytes written. The owner frees ctx here. May be NULL.
     */
    void (*finish)(void *ctx, int ok, uint64_t sent);
} tally_http_stream_ops_t;

typedef struct tally_http_stream tally_http_stream_t;

/**
 * @brief Called inside a dispatch function instead of filling res: the body
 *        is made piece by piece by ops->produce on the thread pool and
 *        written as the socket drains. When the first piece is the whole
 *        body it goes out with a Content-Length like any answer; otherwise
 *        with Transfer-Encoding: chunked, one chunk per piece. Memory is one
 *        piece in flight, whatever the body's size; the loop thread only
 *        writes. A reader that takes nothing for idle_timeout_ms is cut off.
 *        Until the first piece is made the pending limit applies (as for a
 *        deferred answer).
 * @param status the status of the answer (usually 200).
 * @param ctype static content type; NULL for application/json.
 * @return 0 (the stream owns the answer; finish() will be called), or -1
 *         when the request cannot be deferred (not dispatched by a server,
 *         or ENOMEM): the caller answers synchronously and keeps ctx.
 * @note Loop thread only; the request's strings die when dispatch returns.
 */
int tally_http_stream(tally_http_req_t *req, tally_http_res_t *res, int status, const char *ctype,
                      const tally_http_stream_ops_t *ops, void *ctx);

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
