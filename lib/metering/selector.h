/* selector.h — Kubernetes-style label selectors: parse an expression once, then match label sets
 * against it.
 *
 * Grammar (the Kubernetes label-selector grammar, without the numeric
 * comparisons `>` and `<`):
 *
 *     selector    := "" | requirement { "," requirement }
 *     requirement := key                          label present
 *                  | "!" key                      label absent
 *                  | key ("=" | "==") value       present and equal
 *                  | key "!=" value               absent or different
 *                  | key "in" "(" values ")"      present and one of values
 *                  | key "notin" "(" values ")"   absent or none of values
 *     values      := value { "," value }
 *
 * Whitespace around tokens is ignored; a comma between requirements means
 * "and". A key is a qualified name: an optional DNS-1123 subdomain prefix
 * (at most 253 bytes, lower case) and "/", then a name of 1..63 bytes of
 * [A-Za-z0-9_.-] that starts and ends with an alphanumeric. A value is
 * empty (after "=", "==", "!=" only) or 1..63 bytes of the same shape.
 * An empty selector (or one of only blanks) matches every label set.
 *
 * A parsed selector is immutable: any number of threads may match against
 * it. Parse errors are precise: "at N: ..." with N the 1-based byte
 * position in the text, naming what was expected and what was found.
 */
#ifndef TALLY_SELECTOR_H
#define TALLY_SELECTOR_H

#include <stddef.h>

#include <jansson.h>

/** Longest selector text accepted, bytes. */
#define TALLY_SELECTOR_MAX_TEXT 4096

typedef struct tally__selector tally__selector_t;

/** The operator of one requirement. */
typedef enum tally__selector_op {
    TALLY_SEL_EQ = 0,     /**< key=value, key==value */
    TALLY_SEL_NEQ,        /**< key!=value */
    TALLY_SEL_IN,         /**< key in (v,...) */
    TALLY_SEL_NOTIN,      /**< key notin (v,...) */
    TALLY_SEL_EXISTS,     /**< key */
    TALLY_SEL_NOT_EXISTS, /**< !key */
} tally__selector_op_t;

/**
 * @brief Parse a selector expression.
 * @param text NUL-terminated; borrowed for the call. NULL is read as "".
 * @param[out] out the selector, owned by the caller until
 *        tally__selector_destroy(); untouched on failure.
 * @param err receives "at N: reason" on failure (N the 1-based byte
 *        position); may be NULL.
 * @return 0; TALLY_EINVAL for a syntax error, an invalid key or value, an
 *         empty value set, or a text longer than TALLY_SELECTOR_MAX_TEXT;
 *         -ENOMEM.
 */
int tally__selector_parse(const char *text, tally__selector_t **out, char *err, size_t errlen);

/** @brief Free a selector. NULL is ignored. */
void tally__selector_destroy(tally__selector_t *sel);

/** @brief Number of requirements (0 for the empty selector or NULL). */
size_t tally__selector_count(const tally__selector_t *sel);

/**
 * @brief Look a label up: its value (borrowed until the match returns), or
 *        NULL when the label set has no such key.
 */
typedef const char *(*tally__selector_get_fn)(void *ctx, const char *key);

/**
 * @brief Whether a label set satisfies every requirement.
 * @param sel NULL matches everything.
 * @return 1 or 0.
 */
int tally__selector_match(const tally__selector_t *sel, tally__selector_get_fn get, void *ctx);

/**
 * @brief tally__selector_match() over a JSON object of string values (the
 *        `labels` of an object's metadata). NULL or a non-object is an
 *        empty label set; non-string values count as absent.
 */
int tally__selector_match_json(const tally__selector_t *sel, const json_t *labels);

/**
 * @brief The canonical text of a selector: requirements in parse order,
 *        "k=v", "k!=v", "k in (a,b)" (values sorted, duplicates removed),
 *        "k notin (a)", "k", "!k", joined by ",".
 * @return the length of the full text (written truncated and NUL-terminated
 *         when cap is too small, like snprintf).
 */
size_t tally__selector_format(const tally__selector_t *sel, char *buf, size_t cap);

/**
 * @brief Check a label key (a qualified name, see above) as metadata.labels
 *        keys must be for selectors to reach them.
 * @param err receives the reason ("the name after '/' must be at most 63
 *        characters", ...); may be NULL.
 * @return 0 or TALLY_EINVAL.
 */
int tally__selector_check_key(const char *key, char *err, size_t errlen);

/** @brief Check a label value: empty, or a name as above. @return 0 or TALLY_EINVAL. */
int tally__selector_check_value(const char *value, char *err, size_t errlen);

#endif
