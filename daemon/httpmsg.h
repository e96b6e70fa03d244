/* httpmsg.h — the values both halves of the HTTP server build: bounded byte
 * buffers, percent-decoding, and the response bodies (tally_http_error() and
 * friends, declared in http.h). httpreq.c (the parser) and http.c (the
 * connections) both use this module and it uses neither, so the server's
 * modules form a line, not a cycle: http.c -> httpreq.c -> httpmsg.c. */
#ifndef TALLY_HTTPMSG_H
#define TALLY_HTTPMSG_H

#include <stddef.h>

/** A growable byte buffer, always NUL-terminated, with a hard cap per add. */
typedef struct tally__sbuf {
    char *p;
    size_t len, cap;
} tally__sbuf_t;

/** @brief Append n bytes unless the total would pass cap. @return 0, or -1 (nothing added). */
int tally__sbuf_add(tally__sbuf_t *b, const char *p, size_t n, size_t cap);
void tally__sbuf_reset(tally__sbuf_t *b);
void tally__sbuf_free(tally__sbuf_t *b);

/** @brief Percent-decode s in place ('+' as a space when plus). @return 0, or -1 for a bad
 *         %XX or an encoded NUL. */
int tally__pct_decode(char *s, int plus);

#endif
