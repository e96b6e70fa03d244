/* harness.h — e2e test harness: a real tallyd in a temp dir, libtally emits, HTTP, dump.
 *
 * Every harness owns one tallyd process and one fresh directory under /tmp
 * (ipc:// paths must fit a sockaddr_un) holding the store, the ipc
 * endpoints and tallyd's stderr (tallyd.log). tallyd reads the checked-in
 * config/tallyd.conf with TALLY_SECTION_KEY overrides pointing every
 * endpoint and file into that directory, HTTP on 127.0.0.1 with a port the
 * kernel picks (parsed from the `msg=ready ... http=127.0.0.1:PORT` line).
 *
 * Paths: TALLY_BIN_DIR (tallyd, tallyctl) and TALLY_SOURCE_DIR (config/),
 * as CTest sets them; run by hand they default to this checkout and its
 * build/bin. TALLY_E2E_KEEP=1 keeps the directory after the test.
 *
 * Failures are Criterion assertion failures (cr_assert), so the helpers are
 * for use inside a Criterion test, .init or .fini. Start the daemon in the
 * suite's .init and stop it in .fini: Criterion runs .fini after a failed
 * assertion too, and the daemon also dies with the test process
 * (PR_SET_PDEATHSIG), so no tallyd outlives its test. Not thread-safe: one
 * test thread uses a harness.
 */
#ifndef TALLY_TEST_HARNESS_H
#define TALLY_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "tally/tally.h"

/** The development tokens of config/tokens. */
#define HARNESS_ADMIN_TOKEN "dev-admin-token"             /**< admin, every namespace */
#define HARNESS_DEMO_EDITOR_TOKEN "dev-demo-editor-token" /**< editor of demo */
#define HARNESS_DEMO_VIEWER_TOKEN "dev-demo-viewer-token" /**< viewer of demo */
/** The development emitter credentials of config/tokens. */
#define HARNESS_EMITTER_KEY "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo" /**< every ns */
#define HARNESS_DEMO_EMITTER_KEY                                                                   \
    "demo-emitter:O7tNEPJEh9nQkqAoh_Vfk1IdSJSnySNKVB9RDoTiTOw" /**< namespace demo only */

typedef struct harness {
    char dir[64];           /**< the temp directory */
    char store_dir[128];    /**< DIR/store */
    char ingest[128];       /**< ipc://DIR/ingest */
    char log_path[128];     /**< DIR/tallyd.log */
    char conf[1024];        /**< $TALLY_SOURCE_DIR/config/tallyd.conf */
    char bin_dir[1024];     /**< $TALLY_BIN_DIR */
    char src_dir[512];      /**< $TALLY_SOURCE_DIR */
    char **env;             /**< the environment tallyd and tallyctl run with */
    pid_t pid;              /**< tallyd; 0 once stopped */
    uint16_t port;          /**< its HTTP port */
    tally_client_t *client; /**< created by the first harness_emit*() */
    unsigned nclients;      /**< for unique producer ids */
} harness_t;

/**
 * @brief Make a temp dir and start tallyd in it; return once it logged ready.
 * @param extra_env NULL, or a NULL-terminated list of "KEY=VALUE" added to
 *        (and overriding) the harness' environment, e.g.
 *        {"TALLY_INGEST_LATE_WINDOW_HOURS=2", NULL}.
 * @return the harness (heap, owned by the caller until harness_stop()).
 *         Asserts (fails the test) when tallyd exits or is not ready within
 *         60 s, printing its log.
 */
harness_t *harness_start(const char *const *extra_env);

/**
 * @brief Destroy the harness' client, SIGTERM tallyd, wait for it (SIGKILL
 *        after 60 s), remove the directory, free h; then assert that tallyd
 *        exited with status 0 (its log is printed when not). NULL is ignored.
 */
void harness_stop(harness_t *h);

/** @brief The tail (last max_bytes) of tallyd's log to stderr, for diagnosis. */
void harness_print_log(const harness_t *h, size_t max_bytes);

/* ---- emitting -------------------------------------------------------------- */

/**
 * @brief A new libtally client on the harness' ingest endpoint, with a
 *        producer id unique to this harness. The caller destroys it.
 */
tally_client_t *harness_client_create(harness_t *h);

/**
 * @brief Queue an integer event through the harness' own client.
 * @param ts_ms event time, unix milliseconds (0 = now).
 * @param labels NULL or "k=v,k=v" (at most TALLY_MAX_LABELS pairs).
 * @note Asserts tally_emit() succeeded. Call harness_flush() to commit.
 */
void harness_emit(harness_t *h, const char *ns, const char *metric, int64_t value, int64_t ts_ms,
                  const char *labels);

/** @brief Like harness_emit() with a float value. */
void harness_emit_float(harness_t *h, const char *ns, const char *metric, double value,
                        int64_t ts_ms, const char *labels);

/**
 * @brief Send what the harness' client holds and wait (up to 30 s) until
 *        every batch is acked: the events are then committed to the store
 *        and visible to the HTTP API and tallyctl dump. Asserts.
 */
void harness_flush(harness_t *h);

/* ---- HTTP -------------------------------------------------------------------- */

/** A response of harness_http(). */
typedef struct harness_resp {
    int status;      /**< HTTP status code */
    char *headers;   /**< the header block, "Name: value\r\n" lines, NUL-terminated */
    char *body;      /**< the body, NUL-terminated (may hold other NULs) */
    size_t body_len; /**< its length per Content-Length (or until EOF) */
    json_t *json;    /**< the body parsed as JSON, NULL when it is not JSON */
} harness_resp_t;

/**
 * @brief One blocking HTTP/1.1 request to tallyd (a new connection,
 *        `Connection: close`), reading the whole response.
 * @param method "GET", "POST", ...
 * @param path with the query string if any.
 * @param token NULL for no Authorization header, else sent as `APIToken <token>`.
 * @param body NULL for none; sent with Content-Type: application/json and
 *        Content-Length.
 * @param[out] out the response; release with harness_resp_free().
 * @note Asserts on connection or protocol failures (30 s timeout).
 */
void harness_http(harness_t *h, const char *method, const char *path, const char *token,
                  const char *body, harness_resp_t *out);

/**
 * @brief Like harness_http() with raw request bytes (request line, headers
 *        and body exactly as given), for malformed requests.
 */
void harness_http_raw(harness_t *h, const char *request, size_t len, harness_resp_t *out);

/** @brief The value of header `name` (case-insensitive) in buf, or 0 when absent. */
int harness_resp_header(const harness_resp_t *r, const char *name, char *buf, size_t cap);

/** @brief Free what harness_http() filled; the struct is zeroed. */
void harness_resp_free(harness_resp_t *r);

/**
 * @brief POST a JSON body (text) and return the parsed JSON response.
 * @param[out] status the HTTP status.
 * @return the JSON body (caller decrefs), or NULL when the body is not JSON.
 */
json_t *harness_post_json(harness_t *h, const char *path, const char *token, const char *body,
                          int *status);

/** @brief The project's own OpenAPI document, daemon/openapi.json, parsed
 *         (asserts; the caller decrefs). */
json_t *harness_openapi(harness_t *h);

/**
 * @brief One request whose answer must have the given status and a JSON
 *        body matching schema of doc strictly (asserts both).
 * @return the body (caller decrefs).
 */
json_t *harness_call(harness_t *h, json_t *doc, const char *method, const char *path,
                     const char *token, const char *body, int status, const char *schema);

/**
 * @brief An error answer: asserts the status, the tallyError shape and code.
 * @return its message (a static copy, valid until the next call).
 */
const char *harness_call_err(harness_t *h, json_t *doc, const char *method, const char *path,
                             const char *token, const char *body, int status, const char *code);

/* ---- tallyctl ------------------------------------------------------------------ */

/**
 * @brief Run $TALLY_BIN_DIR/tallyctl with the harness' environment (the
 *        same store) and capture its stdout.
 * @param argv arguments after "tallyctl", NULL-terminated.
 * @param[out] exit_status the exit status (or 128 + signal).
 * @return stdout, NUL-terminated, malloc'd (caller frees).
 */
char *harness_tallyctl(harness_t *h, const char *const *argv, int *exit_status);

/**
 * @brief `tallyctl dump -c CONF --json [extra args]` parsed: an array of
 *        {ns, metric, period, start, sum, count, max, last, labels}.
 * @param extra NULL or NULL-terminated extra arguments ("--from", T, ...).
 * @return the array (caller decrefs). Asserts exit 0 and valid JSON.
 */
json_t *harness_dump_json(harness_t *h, const char *const *extra);

/* ---- time --------------------------------------------------------------------- */

/** @brief The wall clock, unix milliseconds. */
int64_t harness_now_ms(void);

/** @brief Unix seconds as "YYYY-MM-DDTHH:MM:SSZ" into buf (>= 32 bytes); returns buf. */
char *harness_rfc3339(int64_t unix_s, char *buf, size_t cap);

#endif
