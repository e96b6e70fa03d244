/* http.h — tallyctl's HTTP client: one blocking request to tallyd's API through libcurl.
 *
 * libcurl is initialised on the first request (so the commands that never
 * speak HTTP, like emit, do not pay for it) and released by
 * ctl_http_cleanup() at exit. Only http:// and https:// URLs are taken,
 * redirects are not followed and no proxy is used (tallyd is reached
 * directly, whatever http_proxy says). Single-threaded: call from main's
 * thread only.
 */
#ifndef TALLYCTL_HTTP_H
#define TALLYCTL_HTTP_H

#include <stddef.h>

/** Largest response body accepted, in bytes; a bigger one fails the call. */
#define CTL_HTTP_MAX_BODY (256u << 20)

/** One response. */
typedef struct ctl_http_resp {
    long status; /**< HTTP status code */
    char *body;  /**< the body, NUL-terminated (never NULL after success);
                      owned until ctl_http_resp_free() */
    size_t len;  /**< body bytes, without the NUL */
} ctl_http_resp_t;

/**
 * @brief Send one request and read the whole answer.
 * @param what the command's name, for messages ("usage").
 * @param base_url "http://HOST:PORT" or with a path prefix; a trailing '/'
 *        is ignored. Borrowed for the call.
 * @param method "GET" or "POST".
 * @param path the API path, starting with '/'.
 * @param token sent as "Authorization: APIToken TOKEN"; NULL sends none.
 * @param body a JSON body (Content-Type: application/json), or NULL.
 * @param[out] out the response, whatever its status; release it with
 *        ctl_http_resp_free() after success.
 * @return 0 when an HTTP answer came (any status); -1 when none did (bad
 *         URL, cannot connect, timeout, body too big, out of memory): the
 *         reason is printed on stderr and *out holds nothing to free.
 */
int ctl_http_request(const char *what, const char *base_url, const char *method, const char *path,
                     const char *token, const char *body, ctl_http_resp_t *out);

/** @brief Free a response's body. */
void ctl_http_resp_free(ctl_http_resp_t *r);

/**
 * @brief Report an answer that is not 2xx: "tallyctl WHAT: HTTP 403: MESSAGE",
 *        with the message of tally's error JSON when there is one, else
 *        the body.
 */
void ctl_http_report(const char *what, const ctl_http_resp_t *r);

/** @brief Release libcurl if a request initialised it. */
void ctl_http_cleanup(void);

#endif
