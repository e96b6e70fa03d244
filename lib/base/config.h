/* config.h — tallyd's configuration: defaults, INI file and environment in one immutable struct.
 *
 * Loading follows nginx: every key starts at its built-in default, the INI
 * file (if any) replaces some, the environment (`TALLY_SECTION_KEY`, upper
 * case) replaces some more, and then one pass converts and validates every
 * key from its final text, so each error names where that text came from:
 * "FILE:LINE: [section] key: reason" or "environment TALLY_X: reason".
 *
 * A loaded tally__config_t is immutable: nothing changes it after
 * tally__config_load() returns, so any number of threads may read it without
 * locks. A reload builds a new one and swaps the pointer; the old one is
 * destroyed once nobody borrows it any more.
 *
 * The INI reader underneath (tally__config_ini_parse) is shared with the
 * other catalogs (metrics, plans): it wraps inih, keeps line numbers, reports
 * section headers, refuses over-long lines instead of splitting them, and
 * formats errors the same way everywhere.
 *
 * INI syntax accepted (inih): `[section]` headers, `key = value` (or
 * `key: value`), comments on their own line starting with `;` or `#`, inline
 * comments starting with ` ;` (a semicolon after a blank). A value wrapped
 * in one pair of double quotes loses them. Key names hold no blanks. An
 * indented line continues the previous key's value; only list keys accept
 * that (the parts are joined with commas). Lines may be at most
 * TALLY__CONFIG_MAX_LINE bytes.
 */
#ifndef TALLY_CONFIG_H
#define TALLY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/** Longest INI line accepted, in bytes, without its newline (inih's limit). */
#define TALLY__CONFIG_MAX_LINE 197

/** Longest nanomsg endpoint address accepted (nanomsg's NN_SOCKADDR_MAX - 1). */
#define TALLY__CONFIG_MAX_ENDPOINT 127

/**
 * The configuration of one tallyd (and of tallyctl's offline commands).
 * Every string is NUL-terminated, owned by the struct and freed by
 * tally__config_destroy(). Paths are absolute and lexically cleaned (no `.`
 * segments, no doubled slashes); a relative path given in the file is
 * resolved against the directory of the config file, one given in the
 * environment against the working directory at load time, and a relative
 * default against the config file's directory (the working directory when
 * there is no file).
 */
typedef struct tally__config {
    /** Absolute path of the file that was loaded; NULL when none was. */
    char *path;
    /** Absolute directory that relative paths of the file and of the defaults
        were resolved against (the file's directory, or the working directory). */
    char *dir;

    struct {
        /** storage.dir: LMDB environment directory, created if missing.
            Default "/var/lib/tally". */
        char *dir;
        /** storage.map_size_mb: LMDB map size in MiB, 1..16777216. Default 1024. */
        uint64_t map_size_mb;
        /** storage.map_max_mb: 0 = the map never grows beyond map_size_mb;
            otherwise it may grow up to this many MiB (>= map_size_mb,
            <= 16777216). Default 0. */
        uint64_t map_max_mb;
        /** storage.hourly_retention_days: hourly rollups whose hour started
            more than this many days ago are pruned by tallyd in the
            background (monthly rollups are kept); 0 = keep forever,
            otherwise 1..36500 and more than ingest.late_window_hours
            (a late event must never land in an hour already pruned).
            Default 400. */
        uint32_t hourly_retention_days;
        /** storage.writemap: write through LMDB's map, with the map
            reserved on disk (store.h TALLY_STORE_WRITEMAP); false = LMDB's
            copy mode. Default true. */
        bool writemap;
    } storage;

    struct {
        /** ingest.listen: nanomsg PULL endpoints (`ipc://`, `tcp://`, `ws://`,
            `inproc://`), comma-separated in the file, at least one.
            Default "ipc:///run/tally/ingest,tcp://127.0.0.1:7410". */
        char **listen;
        size_t nlisten; /**< number of entries in listen */
        /** ingest.acks: nanomsg PUB endpoints publishing producer high-water
            marks, at least one.
            Default "ipc:///run/tally/ingest.acks,tcp://127.0.0.1:7411". */
        char **acks;
        size_t nacks; /**< number of entries in acks */
        /** ingest.late_window_hours: how many hours old an event may be and
            still count, 0..8784 (0: only the current hour). Default 168. */
        uint32_t late_window_hours;
        /** ingest.future_skew_s: how many seconds ahead of the daemon's clock
            an event may be stamped, 0..86400. Default 300. */
        uint32_t future_skew_s;
        /** ingest.ring_size: slots per ingest ring, a power of two,
            2..16777216. Default 1024. */
        uint32_t ring_size;
        /** ingest.max_batch_events: events accepted in one batch,
            1..TALLY_MAX_BATCH_EVENTS (4096). Default 4096. */
        uint32_t max_batch_events;
        /** ingest.max_message_bytes: largest ingest message accepted, in bytes,
            1024..67108864. Default 1048576. */
        uint32_t max_message_bytes;
        /** ingest.require_auth: when true (the default), every endpoint takes
            only authenticated (protocol v2) batches. When false, `ipc://` and
            `inproc://` endpoints also take unauthenticated v1 batches (the
            socket file's permissions decide who may write); `tcp://` and
            `ws://` endpoints require authentication either way. */
        bool require_auth;
        /** ingest.max_producers_per_credential: distinct producer ids one
            emitter credential may hold state for, 1..1000000. Default 4096. */
        uint32_t max_producers_per_credential;
        /** ingest.http_dedup_hours: how long a CloudEvent (source, id) is
            remembered so a resend is not counted again, 1..8784. Default 24. */
        uint32_t http_dedup_hours;
        /** ingest.http_dedup_max_events: most (source, id) pairs remembered at
            once, 1000..1000000000; past it the oldest are forgotten early
            (counted, logged); at twice it the HTTP door answers 503.
            Default 2000000. */
        uint64_t http_dedup_max_events;
    } ingest;

    struct {
        /** flush.interval_ms: how often counters are committed to LMDB,
            1..60000. Default 100. */
        uint32_t interval_ms;
    } flush;

    struct {
        /** http.listen: `HOST:PORT` of the HTTP API as written (an IPv6 host
            in brackets: `[::1]:7400`). Default "127.0.0.1:7400". */
        char *listen;
        /** The host part of listen, without brackets. */
        char *host;
        /** The port part of listen, 0..65535 (0: the kernel picks one). */
        uint16_t port;
        /** http.max_header_bytes: bytes of request line plus headers,
            256..1048576. Default 8192. */
        uint32_t max_header_bytes;
        /** http.max_headers: headers per request, 1..1024. Default 64. */
        uint32_t max_headers;
        /** http.max_body_bytes: request body bytes, 0..268435456.
            Default 1048576. */
        uint32_t max_body_bytes;
        /** http.max_connections: open connections, 1..1000000. Default 1024. */
        uint32_t max_connections;
        /** http.max_connections_per_address: open connections from one client
            address (IPv6: one /64), 0..1000000, 0 = no limit. Default 64. */
        uint32_t max_connections_per_address;
        /** http.metrics_max_series: most (namespace, metric) pairs that
            tally_usage_total tracks, 0..1000000 (0: none). Default 10000. */
        uint32_t metrics_max_series;
        /** http.idle_timeout_ms: an idle keep-alive connection is closed after
            this long, 1..3600000. Default 30000. */
        uint32_t idle_timeout_ms;
        /** http.request_timeout_ms: a request must arrive whole within this
            long, 1..3600000. Default 10000. */
        uint32_t request_timeout_ms;
        /** http.pending_timeout_ms: a deferred answer must come within this
            long, else the server answers 503, 1..3600000. Default 30000. */
        uint32_t pending_timeout_ms;
        /** http.rate_per_token: requests per second each token may make
            (token bucket), 0 = unlimited. Default 1000. */
        uint32_t rate_per_token;
        /** http.rate_burst: requests a token may make at once before the
            rate applies, 1..10000000. Default 2000. */
        uint32_t rate_burst;
        /** http.max_heavy_reads_per_token: usage_details (and its group_by)
            reads one token may run at once; more answer 429 with
            Retry-After, 1..1000. Default 2. */
        uint32_t max_heavy_reads_per_token;
    } http;

    struct {
        /** auth.tokens_file: the tokens file (format in config/tokens).
            Default "tokens" (beside the config file). */
        char *tokens_file;
    } auth;

    struct {
        /** billing.tenant: the tenant name reported in objects, 1..64 bytes
            without blanks or control characters. Default "acme". */
        char *tenant;
        /** billing.plans_file: plan catalog. Default "plans.ini". */
        char *plans_file;
        /** billing.metrics_file: metric catalog. Default "metrics.ini". */
        char *metrics_file;
        /** billing.default_plan: plan a new tenant starts on, non-empty.
            Default "free". */
        char *default_plan;
        /** billing.currency: ISO 4217 code of every amount. Default "USD". */
        char *currency;
        /** billing.due_days: an issued invoice is OVERDUE this many days after
            issue while unpaid, 0..3650. Default 30. */
        uint32_t due_days;
        /** billing.close_grace_hours: an ended month is closed automatically
            this many hours after its end, 0..ingest.late_window_hours
            (more is refused). Default 48, or the late window when that is
            shorter and the key is not set. */
        uint32_t close_grace_hours;
        /** billing.tax_rate_bp: tax on invoices in basis points (1 = 0.01 %,
            2000 = 20 %), 0..10000; 0 = no tax. Default 0. */
        uint32_t tax_rate_bp;
        /** billing.tax_label: what invoices call the tax ("VAT"). Default "Tax". */
        char *tax_label;
        /** billing.payment_terms: the terms line of an invoice ("Net 30");
            "" = "Due within due_days days of issue". Default "". */
        char *payment_terms;
        /** billing.payment_instructions: how to pay (bank, reference); "\n"
            (two characters) breaks lines. Default "". */
        char *payment_instructions;
    } billing;

    /** [seller]: who issues the invoices (shown on every invoice and credit
        note); each key may be "" (not shown). */
    struct {
        char *name;    /**< seller.name: legal name. Default "" (billing.tenant's seller unknown) */
        char *address; /**< seller.address: lines separated by "\n" (two characters). Default "" */
        char *tax_id;  /**< seller.tax_id: VAT / tax number. Default "" */
        char *email;   /**< seller.email: billing contact. Default "" */
    } seller;

    struct {
        /** quota.alerts: nanomsg PUB endpoint for quota alerts; "" publishes
            none (alerts still show in /metrics).
            Default "ipc:///run/tally/alerts". */
        char *alerts;
        /** quota.warn_percent: warn when usage reaches this percentage of a
            limit, 0..100 (0: no warnings, only limit alerts). Default 80. */
        uint32_t warn_percent;
    } quota;

    struct {
        /** log.level: TALLY_LOG_DEBUG..TALLY_LOG_ERROR (log.h), from
            "debug", "info", "warn" or "error". Default "info". */
        int level;
        /** log.requests: log one line per HTTP request. Default false. */
        bool requests;
    } log;

    struct {
        /** tallyctl.token_file: the file holding the API token tallyctl's
            HTTP commands send when neither --token-file nor TALLY_TOKEN
            gives one; "" = none (the default). tallyd ignores it. */
        char *token_file;
    } tallyctl;
} tally__config_t;

/**
 * @brief Load the configuration: defaults, then the file, then the
 *        environment, validated in one pass.
 * @param path the INI file, or NULL for defaults and environment only.
 *        Borrowed for the call.
 * @param[out] out the configuration, owned by the caller until
 *        tally__config_destroy(); untouched on failure.
 * @param err buffer receiving a one-line reason on failure (may be NULL);
 *        "FILE:LINE: [section] key: reason", "FILE:LINE: [section]: reason",
 *        "FILE:LINE: reason" (syntax), "environment TALLY_X: reason" or
 *        "FILE: reason" (cannot open or read).
 * @param errlen size of err.
 * @return 0; TALLY_ECONFIG for an unknown section or key, a duplicate key,
 *         a syntax error, a bad value (not a number, out of range, bad bool,
 *         bad level, bad endpoint, bad HOST:PORT, empty); -errno when the
 *         file cannot be opened or read (-ENOENT for a missing file);
 *         -ENOMEM.
 * @note Reads the environment and the working directory: call it from one
 *       thread while no other thread changes either.
 */
int tally__config_load(const char *path, tally__config_t **out, char *err, size_t errlen);

/** @brief Free a configuration and every string in it. NULL is ignored. */
void tally__config_destroy(tally__config_t *cfg);

/**
 * @brief Write the effective configuration as an INI file that loads back to
 *        the same values (for `tallyd --check-config` and debugging).
 * @return 0, or -errno when writing fails.
 */
int tally__config_dump(const tally__config_t *cfg, FILE *fp);

/**
 * @brief The environment variable overriding [section] key:
 *        "TALLY_" + upper(section) + "_" + upper(key), e.g. TALLY_FLUSH_INTERVAL_MS.
 * @return 0, or TALLY_ETOOBIG when it does not fit in len bytes.
 */
int tally__config_env_name(const char *section, const char *key, char *buf, size_t len);

/* ---- value parsers shared with the catalogs ------------------------------ */

/**
 * @brief Parse a boolean: true/false, yes/no, on/off, 1/0 (any case).
 * @return 0 with *out set, or TALLY_EINVAL.
 */
int tally__config_parse_bool(const char *s, bool *out);

/**
 * @brief Parse a whole decimal integer (optional leading '-', nothing else
 *        around it) within [min, max].
 * @return 0 with *out set; TALLY_EINVAL when s is not an integer;
 *         TALLY_ETOOBIG when it is outside [min, max].
 */
int tally__config_parse_int(const char *s, int64_t min, int64_t max, int64_t *out);

/**
 * @brief Split a comma-separated list, trimming blanks around each item and
 *        skipping empty items ("a, b,,c," gives a, b, c).
 * @param[out] out a NULL-terminated heap array of heap strings (NULL when
 *        *n is 0), owned by the caller until tally__config_free_list().
 * @param[out] n number of items.
 * @return 0 or -ENOMEM (nothing allocated then).
 */
int tally__config_split_list(const char *s, char ***out, size_t *n);

/** @brief Free a list from tally__config_split_list(). NULL is ignored. */
void tally__config_free_list(char **list, size_t n);

/**
 * @brief Check a nanomsg endpoint address: `ipc://`, `tcp://`, `ws://` or
 *        `inproc://` followed by something, at most TALLY__CONFIG_MAX_ENDPOINT
 *        bytes.
 * @return 0 or TALLY_EINVAL.
 */
int tally__config_check_endpoint(const char *ep);

/* ---- the INI reader shared by config, metric and plan catalogs ---------- */

/** One event of tally__config_ini_parse(): a section header or a key. */
typedef struct tally__ini_item {
    const char *file;    /**< path as given to tally__config_ini_parse */
    int line;            /**< 1-based line number */
    const char *section; /**< section name, whole (not truncated by inih) */
    const char *key;     /**< key name; NULL for a section header */
    const char *value;   /**< value, blanks, inline comment and one pair of
                              double quotes removed; NULL for a section header */
    int continuation;    /**< 1: an indented line continuing key's value */
} tally__ini_item_t;

/**
 * Called for each section header and each key. Strings in item are valid
 * only during the call. Return 0 to go on, or a negative code after writing
 * the reason (no location: the reader adds "FILE:LINE: [section] key: ")
 * into reason; parsing then stops.
 */
typedef int (*tally__ini_cb)(void *user, const tally__ini_item_t *item, char *reason,
                             size_t reasonlen);

/**
 * @brief Parse an INI file, calling cb for every section header and key, in
 *        file order.
 * @param path the file; borrowed for the call.
 * @return 0; TALLY_ECONFIG for a syntax error, a key outside any section,
 *         an empty key name, an over-long line or a NUL byte; the negative
 *         code cb returned (TALLY_ECONFIG for bad content by convention,
 *         -ENOMEM); -errno when the file cannot be opened or read.
 *         err receives the located reason in every case.
 */
int tally__config_ini_parse(const char *path, tally__ini_cb cb, void *user, char *err,
                            size_t errlen);

#endif
