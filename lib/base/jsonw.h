/* jsonw.h — a fast append-only JSON writer for HTTP responses (jansson parses requests; this writes
 * replies).
 *
 * Writes compact JSON into one growable buffer, with commas placed from a
 * small nesting stack. Strings are escaped per RFC 8259 and must be valid
 * UTF-8 already (everything tally stores is). An allocation failure sets
 * `err` and turns later calls into no-ops, so callers check once at the end.
 * Why not json_dumps(): it walks the text a character at a time through
 * UTF-8 decoding and costs ~100 instructions a byte (measured with
 * callgrind: 80% of a usage_details request).
 */
#ifndef TALLY_JSONW_H
#define TALLY_JSONW_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define TALLY_JSONW_DEPTH 32

typedef struct tally__jw {
    tally__buf_t b; /**< the text; b.err set once an allocation failed */
    int depth;
    uint8_t count[TALLY_JSONW_DEPTH]; /* elements written at each level (saturating) */
    int after_key;
} tally__jw_t;

/** @brief Start an empty writer. */
void tally__jw_init(tally__jw_t *w);
/** @brief Free the buffer (when not taken). */
void tally__jw_fini(tally__jw_t *w);
/**
 * @brief Hand the text to the caller (NUL-terminated, malloc'd).
 * @return the text, or NULL after an allocation failure (buffer freed).
 */
char *tally__jw_take(tally__jw_t *w, size_t *len);

void tally__jw_obj_begin(tally__jw_t *w);
void tally__jw_obj_end(tally__jw_t *w);
void tally__jw_arr_begin(tally__jw_t *w);
void tally__jw_arr_end(tally__jw_t *w);
/** @brief An object key (plain ASCII, written as is); the next value call is its value. */
void tally__jw_key(tally__jw_t *w, const char *k);
void tally__jw_str(tally__jw_t *w, const char *s);
void tally__jw_str_n(tally__jw_t *w, const char *s, size_t n);
/** @brief A string the caller knows needs no escaping (base64, RFC 3339, validated names). */
void tally__jw_str_plain(tally__jw_t *w, const char *s, size_t n);
void tally__jw_int(tally__jw_t *w, int64_t v);
/** @brief A finite double, shortest form that reads back the same; non-finite → 0. */
void tally__jw_double(tally__jw_t *w, double v);
void tally__jw_bool(tally__jw_t *w, int v);
void tally__jw_null(tally__jw_t *w);
/** @brief Append pre-rendered JSON as one value (trusted). */
void tally__jw_raw(tally__jw_t *w, const char *json, size_t n);


#endif
