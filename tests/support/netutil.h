/* netutil.h — raw-socket HTTP/1.1 client helpers for e2e tests: persistent connections, pipelined responses, close detection, timing.
 *
 * The harness (harness.h) sends one request per connection and asserts on
 * any failure. These helpers keep a connection open across requests, read
 * responses one at a time (leftover bytes stay buffered, so pipelined
 * responses can be read in order), tell whether the server closed a
 * connection, and report failures as return values, so that a test can
 * assert what it expects (e.g. "this socket is closed now").
 *
 * Loopback IPv4 only. Not thread-safe; one connection per nu_conn_t.
 */
#ifndef TALLY_TEST_NETUTIL_H
#define TALLY_TEST_NETUTIL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/** A client connection with its read buffer. */
typedef struct nu_conn {
    int fd;     /**< -1 when closed */
    char *buf;  /**< bytes received but not yet consumed */
    size_t len; /**< how many */
    size_t cap;
} nu_conn_t;

/** One response read by nu_read_response(). */
typedef struct nu_resp {
    int status;      /**< the status code */
    int minor;       /**< HTTP/1.minor of the status line */
    char *headers;   /**< "Name: value\r\n" lines after the status line, NUL-terminated */
    char *body;      /**< the body, NUL-terminated (may hold other NULs) */
    size_t body_len; /**< per Content-Length (0 for a HEAD response) */
    json_t *json;    /**< the body parsed as JSON, or NULL */
} nu_resp_t;

/** @brief Monotonic milliseconds. */
int64_t nu_mono_ms(void);

/** @brief Sleep for ms milliseconds. */
void nu_sleep_ms(int ms);

/**
 * @brief A blocking TCP connection to 127.0.0.1:port (close-on-exec).
 * @return 0 with c filled, or -errno (c->fd is then -1).
 */
int nu_connect(nu_conn_t *c, uint16_t port);

/** @brief Close the socket (if open) and free the buffer; c may be reused. */
void nu_close(nu_conn_t *c);

/**
 * @brief Close with SO_LINGER 0, so the peer sees a reset rather than a FIN.
 */
void nu_abort(nu_conn_t *c);

/**
 * @brief Send all of data (MSG_NOSIGNAL).
 * @return 0, or -errno when the peer closed or the send failed.
 */
int nu_send(nu_conn_t *c, const void *data, size_t len);

/** @brief nu_send() of a NUL-terminated string. */
int nu_send_str(nu_conn_t *c, const char *s);

/**
 * @brief Read one response: status line, headers, and a body of
 *        Content-Length bytes (none when head is set, as for HEAD).
 *        Bytes after it stay in c's buffer for the next call.
 * @param timeout_ms total time allowed.
 * @return 0 with out filled (free with nu_resp_free()); -ETIMEDOUT; -EPIPE
 *         when the connection closed before a whole response; -EPROTO when
 *         the bytes are not an HTTP/1.x response; other -errno.
 */
int nu_read_response(nu_conn_t *c, int head, int timeout_ms, nu_resp_t *out);

/** @brief Free what nu_read_response() filled; the struct is zeroed. */
void nu_resp_free(nu_resp_t *r);

/** @brief Header `name` (case-insensitive) of r into buf; 1 when present, 0 when absent. */
int nu_resp_header(const nu_resp_t *r, const char *name, char *buf, size_t cap);

/**
 * @brief Wait until the server closes the connection (EOF or reset).
 * @param timeout_ms how long to wait.
 * @param[out] extra when not NULL: how many bytes arrived meanwhile (they are
 *        appended to c's buffer).
 * @return 1 when closed, 0 when still open after timeout_ms, -errno on an
 *         unexpected error.
 */
int nu_wait_closed(nu_conn_t *c, int timeout_ms, size_t *extra);

/**
 * @brief Whether the server closed the connection already (non-blocking):
 *        1 closed, 0 open.
 */
int nu_is_closed(nu_conn_t *c);

/**
 * @brief A complete request text: METHOD PATH HTTP/1.1, Host, an optional
 *        `Authorization: APIToken TOKEN`, extra header lines (each ending in
 *        "\r\n", or NULL), and a JSON body with Content-Length when body is
 *        not NULL. Keep-alive unless extra says otherwise.
 * @return malloc'd text (caller frees).
 */
char *nu_request(const char *method, const char *path, const char *token, const char *extra,
                 const char *body);

/**
 * @brief One request on a new connection with a timeout; never asserts.
 * @return the status code, or -errno when no response arrived in timeout_ms.
 *         When out is not NULL it receives the response (caller frees) on success.
 */
int nu_roundtrip(uint16_t port, const char *request, int head, int timeout_ms, nu_resp_t *out);

/** @brief GET /healthz on a new connection: the status, or -errno. */
int nu_healthz(uint16_t port, int timeout_ms);

/**
 * @brief Raise RLIMIT_NOFILE's soft limit to the hard limit.
 * @return the soft limit now in force.
 */
uint64_t nu_raise_nofile(void);

/**
 * @brief Whether a file contains a sanitizer report (AddressSanitizer,
 *        UndefinedBehaviorSanitizer "runtime error:", LeakSanitizer,
 *        ThreadSanitizer).
 * @param[out] what the marker found (static), may be NULL.
 * @return 1 when it does, 0 when not (or unreadable).
 */
int nu_file_has_sanitizer_report(const char *path, const char **what);

/** @brief The whole file, NUL-terminated and malloc'd, or NULL. */
char *nu_slurp(const char *path, size_t *len);

#endif
