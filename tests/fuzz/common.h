/* common.h — shared helpers of the libFuzzer harnesses: temp files, a daemon context, HTTP request parsing. */
#ifndef TALLY_FUZZ_COMMON_H
#define TALLY_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "routes.h"

/** The harness's private temp dir (on /dev/shm when it exists), removed at exit. */
const char *fuzz_tmpdir(void);

/** Write data to NAME in the temp dir; returns the path (static buffer per name slot). */
const char *fuzz_write_file(const char *name, const uint8_t *data, size_t size);

/** A path under the source tree (TALLY_FUZZ_SOURCE_DIR, overridable by the env var). */
const char *fuzz_src(const char *rel, char *buf, size_t cap);

/** A tallyd-like context on a temp store, the checked-in catalogs and fuzz tokens. */
tally_ctx_t *fuzz_ctx(void);

/** Tokens of fuzz_ctx(): the secrets as sent in Authorization. */
#define FUZZ_ADMIN_AUTH "APIToken fuzz-admin-token"
#define FUZZ_EDITOR_AUTH "APIToken fuzz-editor-token"
#define FUZZ_VIEWER_AUTH "APIToken fuzz-viewer-token"

/**
 * Parse data as HTTP/1.1 requests with http-parser, the way daemon/http.c
 * does (same limits, same header handling, same path/query split and
 * percent-decoding), and hand each complete request to
 * tally_routes_dispatch(ctx). Returns the number of requests dispatched.
 */
int fuzz_http_feed(tally_ctx_t *ctx, const uint8_t *data, size_t size);

/**
 * Known bug (known-bugs/config/README): lib/config.c read_line() checks a
 * line's length without its trailing CR/LF run but copies all of it into
 * inih's 200-byte buffer, so a short line followed by many '\r' smashes
 * the stack. 1 when data holds such a line and TALLY_FUZZ_STRICT is unset:
 * the INI harnesses skip it so CI stays green until the fix.
 */
int fuzz_ini_known_bug(const uint8_t *data, size_t size);

/** With TALLY_FUZZ_VERBOSE set: print "STATUS PATH BODY" of a response to stderr (for seed debugging). */
void fuzz_trace(const char *path, const tally_http_res_t *res);

#endif
