/* auth.h — tallyd API tokens: the tokens file, authentication, access rules, rate limits.
 *
 * A tally__tokens_t is the parsed tokens file (format in config/tokens):
 * one tally__token_t per line `NAME ROLE NAMESPACES SECRET`. An emitter
 * credential (role `emitter`, secret `mac:HEX`) keeps the MAC key derived
 * from its secret (credential.h); of an API token only the 32-byte SHA-256
 * is kept; a `plain:` secret is hashed while
 * its line is parsed and the line buffer is wiped, so no usable token stays
 * in memory after tally__tokens_load() returns. Error messages never quote a
 * secret (nor any field that failed to parse, since a misplaced field may be
 * one).
 *
 * Invariants: names are unique in a set; no two tokens share a digest;
 * token i of a set lives at a fixed address until tally__tokens_destroy().
 * tally__tokens_authenticate() compares the presented digest with every
 * stored digest without stopping at a match, so its timing does not depend
 * on which token matched (only on how many tokens there are).
 *
 * Threads: a loaded set is immutable except for its rate-limit buckets.
 * tally__tokens_authenticate(), tally__token_allows(), the accessors and
 * tally__tokens_count()/tally__tokens_get()/tally__tokens_find() may be
 * called from any thread; tally__token_rate_take() changes the buckets and
 * must be called from one thread only (the HTTP loop), or under the
 * caller's lock.
 *
 * Reload (SIGHUP): load a new set, swap the pointer, destroy the old one
 * once no request borrows a token of it. Buckets belong to a set, so after
 * a reload every token starts with a full bucket.
 */
#ifndef TALLY_AUTH_H
#define TALLY_AUTH_H

#include <stddef.h>
#include <stdint.h>

/** Longest token name, in bytes: [A-Za-z0-9_.-]{1,64}. */
#define TALLY__TOKEN_MAX_NAME 64
/** Longest token accepted, in bytes (printable ASCII without blanks). */
#define TALLY__TOKEN_MAX_LEN 256
/** Longest line of a tokens file, in bytes, without its newline. */
#define TALLY__TOKENS_MAX_LINE 65536

/** Roles of API tokens, from least to most powerful; then emitters, which
 *  may only send usage events (nanomsg v2 batches, POST /api/v1/events). */
enum { TALLY_ROLE_VIEWER = 1, TALLY_ROLE_EDITOR, TALLY_ROLE_ADMIN, TALLY_ROLE_EMITTER };

/** What a request needs, from nothing to administration; INGEST is what an
 *  emitter may do and nothing else may. */
enum {
    TALLY_ACCESS_NONE = 0,
    TALLY_ACCESS_READ,
    TALLY_ACCESS_WRITE,
    TALLY_ACCESS_ADMIN,
    TALLY_ACCESS_INGEST
};

/** One token: name, role, namespace scope and SHA-256 digest. */
typedef struct tally__token tally__token_t;

/** A parsed tokens file and the rate-limit buckets of its tokens. */
typedef struct tally__tokens tally__tokens_t;

/**
 * @brief Load and check a tokens file.
 * @param path the file; borrowed for the call.
 * @param[out] out the set, owned by the caller until tally__tokens_destroy();
 *        untouched on failure. An empty file (or one holding only comments
 *        and blank lines) gives a set of no tokens.
 * @param err buffer receiving a one-line reason on failure (may be NULL):
 *        "FILE:LINE: reason" for bad content, "FILE: cannot open: ..." or
 *        "FILE: cannot read: ..." otherwise. Never contains a secret.
 * @param errlen size of err.
 * @return 0; TALLY_ECONFIG for a line with too few or too many fields, a bad
 *         name, a duplicate name, a bad role, a bad namespace list, a bad
 *         `sha256:` digest (not 64 hex digits), a bad `plain:` token (empty,
 *         over TALLY__TOKEN_MAX_LEN bytes, not printable), an unknown secret
 *         scheme, two tokens with the same secret, a NUL byte or a line over
 *         TALLY__TOKENS_MAX_LINE bytes; -errno when the file cannot be
 *         opened or read (-ENOENT when missing); -ENOMEM; -EIO when
 *         libsodium cannot be initialised; TALLY_EINVAL for NULL arguments.
 * @note Logs a warning (tally__log_warn) naming each `plain:` token, never
 *       its secret. Call from one thread at a time (it initialises libsodium
 *       on first use; sodium_init() is idempotent).
 */
int tally__tokens_load(const char *path, tally__tokens_t **out, char *err, size_t errlen);

/**
 * @brief Free a set, its tokens and its buckets. NULL is ignored.
 * @note Every tally__token_t pointer obtained from the set dies with it.
 */
void tally__tokens_destroy(tally__tokens_t *t);

/** @brief How many tokens the set holds (0 for NULL). */
size_t tally__tokens_count(const tally__tokens_t *t);

/**
 * @brief Token i of the set, in file order.
 * @return a pointer valid until tally__tokens_destroy(t), or NULL when i is
 *         out of range.
 */
const tally__token_t *tally__tokens_get(const tally__tokens_t *t, size_t i);

/**
 * @brief The token called name.
 * @return a pointer valid until tally__tokens_destroy(t), or NULL when none
 *         is called so.
 */
const tally__token_t *tally__tokens_find(const tally__tokens_t *t, const char *name);

/**
 * @brief Authenticate an Authorization header value.
 * @param authorization the header value, exactly `APIToken <token>`: the
 *        scheme in any case, one or more spaces, then a token of
 *        1..TALLY__TOKEN_MAX_LEN printable non-blank ASCII characters and
 *        nothing after it (the HTTP layer strips the surrounding blanks of a
 *        header value). Borrowed for the call; not copied.
 * @return the matching token, valid until tally__tokens_destroy(t); NULL
 *         when the header is NULL, malformed or names no token of the set.
 * @note Constant time with respect to which token matched: the digest of
 *       the presented token is compared with every stored digest.
 */
const tally__token_t *tally__tokens_authenticate(const tally__tokens_t *t,
                                                 const char *authorization);

/**
 * @brief Whether a token may do something in a namespace.
 *
 * The scope comes first: `*` covers every namespace including `system`;
 * otherwise ns must be one of the listed names (`system` only when listed).
 * Then the role: a viewer may READ, an editor READ and WRITE, an admin
 * anything but INGEST — an admin limited to some namespaces is admin only
 * inside them — and an emitter INGEST only. TALLY_ACCESS_NONE is allowed
 * for every token.
 *
 * @param tok the token; NULL allows nothing.
 * @param ns a namespace name, or "system" for tenant-wide objects and usage;
 *        NULL allows nothing except TALLY_ACCESS_NONE.
 * @param access one of TALLY_ACCESS_*; any other value allows nothing.
 * @return 1 when allowed, 0 when not.
 */
int tally__token_allows(const tally__token_t *tok, const char *ns, int access);

/** @brief tally__token_allows() for a namespace that is not NUL-terminated. */
int tally__token_allows_ns(const tally__token_t *tok, const char *ns, size_t ns_len, int access);

/**
 * @brief The emitter credential called name[0..len).
 * @return the token (role TALLY_ROLE_EMITTER), valid until
 *         tally__tokens_destroy(t); NULL when no emitter has that name.
 * @note Names are not secret: the search is not constant-time.
 */
const tally__token_t *tally__tokens_find_emitter(const tally__tokens_t *t, const char *name,
                                                 size_t len);

/** @brief An emitter's 32-byte MAC key (valid as long as the token); NULL for API tokens. */
const uint8_t *tally__token_mac_key(const tally__token_t *tok);

/**
 * @brief Authenticate the HTTP door's `Authorization: Bearer NAME:SECRET`
 *        (or `APIToken NAME:SECRET`) against the emitter credentials.
 * @return the emitter, valid until tally__tokens_destroy(t); NULL when the
 *         header is malformed, names no emitter, or the secret's derived
 *         key differs (compared in constant time).
 */
const tally__token_t *tally__tokens_authenticate_emitter(const tally__tokens_t *t,
                                                         const char *authorization);

/** @brief The token's name, valid as long as the token. */
const char *tally__token_name(const tally__token_t *tok);

/** @brief The token's role: TALLY_ROLE_VIEWER, _EDITOR, _ADMIN or _EMITTER. */
int tally__token_role(const tally__token_t *tok);

/** @brief "viewer", "editor", "admin" or "emitter" for a TALLY_ROLE_*; "none" otherwise. Static. */
const char *tally__role_name(int role);

/** @brief 1 when the token's scope is `*` (every namespace, `system` included), else 0. */
int tally__token_all_namespaces(const tally__token_t *tok);

/**
 * @brief The token's namespaces as listed in the file, in file order.
 * @param[out] n how many (0 for a `*` token).
 * @return an array of n NUL-terminated names, valid as long as the token;
 *         NULL when n is 0.
 */
const char *const *tally__token_namespaces(const tally__token_t *tok, size_t *n);

/** @brief The line of the tokens file the token came from (1-based), for logs. */
int tally__token_line(const tally__token_t *tok);

/**
 * @brief Take one request from a token's bucket (token-bucket rate limit).
 *
 * Each token of the set has its own bucket, created full (burst requests)
 * at its first use and refilled at rate_per_s requests per second up to
 * burst. A clock that goes backwards refills nothing.
 *
 * @param t the set tok belongs to (its buckets are changed).
 * @param tok a token of t (from tally__tokens_authenticate(), _get(), _find()).
 * @param now_ms the current time in milliseconds, from a monotonic clock.
 * @param rate_per_s sustained requests per second; 0 = unlimited (always 1,
 *        the bucket is untouched).
 * @param burst bucket size; 0 counts as 1.
 * @param[out] retry_after_s when limited: whole seconds (at least 1) until
 *        a request would be allowed, for Retry-After. May be NULL.
 * @return 1 when allowed (one request taken), 0 when limited.
 * @note Not thread-safe: one thread (the HTTP loop) per set. A tok that is
 *       not of t is a broken invariant (TALLY_ASSERT).
 */
int tally__token_rate_take(tally__tokens_t *t, const tally__token_t *tok, int64_t now_ms,
                           uint32_t rate_per_s, uint32_t burst, uint32_t *retry_after_s);

#endif
