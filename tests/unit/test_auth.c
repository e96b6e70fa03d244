/* test_auth.c — unit tests of the tokens file, authentication, access rules and rate limits. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <sodium.h>

#include "auth.h"
#include "credential.h"
#include "log.h"
#include "tally/tally.h"

static void
quiet_logs(void)
{
    tally__log_set_level(TALLY_LOG_ERROR); /* plain: warnings are expected */
    cr_assert_geq(sodium_init(), 0);
}

TestSuite(auth, .init = quiet_logs);

/* Write text to a new file under /tmp; returns its heap path. */
static char *
write_temp(const char *text)
{
    char *path = strdup("/tmp/tally-test-auth-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void
remove_temp(char *path)
{
    unlink(path);
    free(path);
}

/* A file of the source tree: $TALLY_SOURCE_DIR/rel (set by CTest); else
 * relative to this binary (BUILD/bin/../../rel), else to the working dir. */
static char *
source_path(const char *rel)
{
    char *path;
    const char *src = getenv("TALLY_SOURCE_DIR");
    if (src != NULL && src[0] != '\0') {
        cr_assert_neq(asprintf(&path, "%s/%s", src, rel), -1);
        return path;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        *strrchr(exe, '/') = '\0';
        cr_assert_neq(asprintf(&path, "%s/../../%s", exe, rel), -1);
        if (access(path, R_OK) == 0)
            return path;
        free(path);
    }
    cr_assert_neq(asprintf(&path, "%s", rel), -1);
    return path;
}

/* SHA-256 of s as lowercase (or uppercase) hex. */
static void
sha256_hex(const char *s, char hex[65], int upper)
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)s, strlen(s));
    sodium_bin2hex(hex, 65, d, sizeof d);
    for (int i = 0; upper && hex[i]; i++)
        if (hex[i] >= 'a' && hex[i] <= 'f')
            hex[i] = (char)(hex[i] - 'a' + 'A');
}

/* Load text as a tokens file; the load must succeed. */
static tally__tokens_t *
load_text(const char *text)
{
    char *path = write_temp(text);
    char err[512];
    tally__tokens_t *t = NULL;
    int rc = tally__tokens_load(path, &t, err, sizeof err);
    remove_temp(path);
    cr_assert_eq(rc, 0, "load: %d %s", rc, err);
    cr_assert_not_null(t);
    return t;
}

/* Load text as a tokens file; the load must fail with TALLY_ECONFIG at
 * line, with an error holding want and never secret (when not NULL). */
static void
expect_error(const char *text, int line, const char *want, const char *secret)
{
    char *path = write_temp(text);
    char err[512] = "";
    tally__tokens_t *t = (tally__tokens_t *)0x1;
    int rc = tally__tokens_load(path, &t, err, sizeof err);
    char prefix[PATH_MAX + 32];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    cr_expect_eq(rc, TALLY_ECONFIG, "rc %d for %s", rc, text);
    cr_expect_eq(t, (tally__tokens_t *)0x1, "out touched on failure");
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "err \"%s\" does not start with \"%s\"",
              err, prefix);
    cr_expect(strstr(err, want) != NULL, "err \"%s\" lacks \"%s\"", err, want);
    if (secret != NULL)
        cr_expect(strstr(err, secret) == NULL, "err \"%s\" holds the secret", err);
    remove_temp(path);
}

/* ---- loading ------------------------------------------------------------ */

Test(auth, loads_the_shipped_tokens_file)
{
    char *path = source_path("config/tokens");
    char err[512];
    tally__tokens_t *t = NULL;
    int rc = tally__tokens_load(path, &t, err, sizeof err);
    cr_assert_eq(rc, 0, "%s: %s", path, err);
    cr_expect_eq(tally__tokens_count(t), 5);

    const tally__token_t *admin = tally__tokens_authenticate(t, "APIToken dev-admin-token");
    cr_assert_not_null(admin);
    cr_expect_str_eq(tally__token_name(admin), "admin");
    cr_expect_eq(tally__token_role(admin), TALLY_ROLE_ADMIN);
    cr_expect_str_eq(tally__role_name(tally__token_role(admin)), "admin");
    cr_expect(tally__token_all_namespaces(admin));

    const tally__token_t *ed = tally__tokens_authenticate(t, "APIToken dev-demo-editor-token");
    cr_assert_not_null(ed);
    cr_expect_str_eq(tally__token_name(ed), "demo-editor");
    cr_expect_str_eq(tally__role_name(tally__token_role(ed)), "editor");
    size_t n = 0;
    const char *const *ns = tally__token_namespaces(ed, &n);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(ns[0], "demo");
    cr_expect_not(tally__token_all_namespaces(ed));

    const tally__token_t *vw = tally__tokens_authenticate(t, "APIToken dev-demo-viewer-token");
    cr_assert_not_null(vw);
    cr_expect_str_eq(tally__token_name(vw), "demo-viewer");
    cr_expect_eq(tally__tokens_find(t, "demo-viewer"), vw);
    cr_expect_eq(tally__tokens_get(t, 2), vw);
    cr_expect_null(tally__tokens_get(t, 5));
    cr_expect_null(tally__tokens_find(t, "ci-reader")); /* commented out */
    const tally__token_t *em = tally__tokens_find(t, "dev-emitter");
    cr_assert_not_null(em);
    cr_expect_eq(tally__token_role(em), TALLY_ROLE_EMITTER);
    cr_expect_str_eq(tally__role_name(TALLY_ROLE_EMITTER), "emitter");
    tally__tokens_destroy(t);
    free(path);
}

Test(auth, shipped_hashed_example_matches_its_token)
{
    /* config/tokens documents the commented ci-reader line's token. */
    char hex[65];
    sha256_hex("ci-reader-token", hex, 0);
    cr_expect_str_eq(hex, "a5835c72ff5990869ba782ea1337bd3d4664a3f23efef3703ba73bce77a7a297");
}

Test(auth, sha256_and_plain_tokens_authenticate)
{
    char lower[65], upper[65], text[1024];
    sha256_hex("hashed-secret-1", lower, 0);
    sha256_hex("HASHED_secret_2!", upper, 1);
    snprintf(text, sizeof text,
             "# leading comment\n"
             "\n"
             "   \t\n"
             "h1\tviewer demo  sha256:%s   # trailing comment\n"
             "h2 editor demo,shop sha256:%s\r\n"
             "p1 admin * plain:pl41n~t0ken#comment right after\n"
             "p.2_x-Y viewer system plain:other",
             lower, upper);
    tally__tokens_t *t = load_text(text);
    cr_assert_eq(tally__tokens_count(t), 4);

    const tally__token_t *h1 = tally__tokens_authenticate(t, "APIToken hashed-secret-1");
    cr_assert_not_null(h1);
    cr_expect_str_eq(tally__token_name(h1), "h1");
    cr_expect_eq(tally__token_line(h1), 4);
    const tally__token_t *h2 = tally__tokens_authenticate(t, "apitoken   HASHED_secret_2!");
    cr_assert_not_null(h2);
    cr_expect_str_eq(tally__token_name(h2), "h2");
    size_t n = 0;
    const char *const *ns = tally__token_namespaces(h2, &n);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(ns[0], "demo");
    cr_expect_str_eq(ns[1], "shop");
    const tally__token_t *p1 = tally__tokens_authenticate(t, "APITOKEN pl41n~t0ken");
    cr_assert_not_null(p1);
    cr_expect_str_eq(tally__token_name(p1), "p1");
    cr_expect_null(tally__token_namespaces(p1, &n));
    cr_expect_eq(n, 0);
    const tally__token_t *p2 = tally__tokens_authenticate(t, "APIToken other");
    cr_assert_not_null(p2);
    cr_expect_str_eq(tally__token_name(p2), "p.2_x-Y");
    tally__tokens_destroy(t);
}

Test(auth, empty_and_comment_only_files_hold_no_tokens)
{
    tally__tokens_t *t = load_text("");
    cr_expect_eq(tally__tokens_count(t), 0);
    cr_expect_null(tally__tokens_authenticate(t, "APIToken anything"));
    tally__tokens_destroy(t);

    t = load_text("# nothing here\n\n  # indented comment\n\t\n");
    cr_expect_eq(tally__tokens_count(t), 0);
    tally__tokens_destroy(t);
}

Test(auth, missing_file_is_enoent)
{
    char err[512];
    tally__tokens_t *t = NULL;
    int rc = tally__tokens_load("/nonexistent/tally/tokens", &t, err, sizeof err);
    cr_expect_eq(rc, -ENOENT);
    cr_expect_null(t);
    cr_expect(strncmp(err, "/nonexistent/tally/tokens: cannot open: ", 40) == 0, "%s", err);
}

Test(auth, directory_is_a_read_error)
{
    char err[512];
    tally__tokens_t *t = NULL;
    int rc = tally__tokens_load("/tmp", &t, err, sizeof err);
    cr_expect_eq(rc, -EISDIR, "rc %d err %s", rc, err);
    cr_expect_null(t);
    cr_expect(strstr(err, "/tmp: cannot read: ") == err, "%s", err);
}

Test(auth, null_arguments_are_rejected_and_destroy_null_is_fine)
{
    tally__tokens_t *t = NULL;
    cr_expect_eq(tally__tokens_load(NULL, &t, NULL, 0), TALLY_EINVAL);
    tally__tokens_destroy(NULL);
    cr_expect_eq(tally__tokens_count(NULL), 0);
    cr_expect_null(tally__tokens_authenticate(NULL, "APIToken x"));
    cr_expect_null(tally__tokens_find(NULL, "x"));
    cr_expect_null(tally__tokens_get(NULL, 0));
}

/* ---- parse errors ------------------------------------------------------- */

Test(auth, bad_role_is_reported_with_its_line)
{
    expect_error("# c\nok viewer demo plain:aaa\nbad owner demo plain:s3cr3t-role\n", 3, "bad role",
                 "s3cr3t-role");
    /* a secret in the role's place is not quoted back */
    expect_error("x plain:leaked-secret * admin\n", 1, "bad role", "leaked-secret");
    expect_error("x Admin * plain:abc\n", 1, "bad role", NULL);
}

Test(auth, bad_namespaces_are_reported)
{
    expect_error("\n\nx viewer Demo plain:sec-ns-1\n", 3, "bad namespace", "sec-ns-1");
    expect_error("x viewer demo,,shop plain:sec-ns-2\n", 1, "empty namespace", "sec-ns-2");
    expect_error("x viewer demo, plain:sec-ns-3\n", 1, "empty namespace", "sec-ns-3");
    expect_error("x viewer *,demo plain:sec-ns-4\n", 1, "stand alone", "sec-ns-4");
    expect_error("x viewer demo_1 plain:sec-ns-5\n", 1, "bad namespace", "sec-ns-5");
    char longns[80];
    memset(longns, 'a', 65);
    longns[65] = '\0';
    char text[256];
    snprintf(text, sizeof text, "x viewer %s plain:sec-ns-6\n", longns);
    expect_error(text, 1, "bad namespace", "sec-ns-6");
    expect_error("x viewer demo,shop,demo plain:sec-ns-7\n", 1, "listed twice", "sec-ns-7");
    /* 64 bytes is fine */
    longns[64] = '\0';
    snprintf(text, sizeof text, "x viewer %s,system plain:sec-ns-8\n", longns);
    tally__tokens_t *t = load_text(text);
    cr_expect(tally__token_allows(tally__tokens_get(t, 0), longns, TALLY_ACCESS_READ));
    tally__tokens_destroy(t);
}

Test(auth, bad_sha256_digests_are_reported)
{
    char hex[65], text[512];
    sha256_hex("whatever", hex, 0);
    /* 63 hex digits */
    snprintf(text, sizeof text, "a viewer * plain:x\nb viewer * sha256:%.63s\n", hex);
    expect_error(text, 2, "64 hex digits, found 63", hex);
    /* 65 hex digits */
    snprintf(text, sizeof text, "b viewer * sha256:%s0\n", hex);
    expect_error(text, 1, "64 hex digits, found 65", hex);
    expect_error("b viewer * sha256:\n", 1, "64 hex digits, found 0", NULL);
    /* 64 characters, one not hex */
    char bad[65];
    memcpy(bad, hex, 65);
    bad[10] = 'g';
    snprintf(text, sizeof text, "\n# x\nb viewer * sha256:%s\n", bad);
    expect_error(text, 3, "not a hex digit", bad);
}

Test(auth, unknown_secret_scheme_is_reported)
{
    expect_error("a viewer * md5:topsecret-value\n", 1, "unknown secret scheme", "topsecret-value");
    expect_error("a viewer * raw-token-without-scheme\n", 1, "unknown secret scheme",
                 "raw-token-without-scheme");
    expect_error("a viewer * Plain:CaseMatters\n", 1, "unknown secret scheme", "CaseMatters");
    expect_error("a viewer * plain:\n", 1, "plain: token is empty", NULL);
    char text[512], tok[300];
    memset(tok, 'k', 257);
    tok[257] = '\0';
    snprintf(text, sizeof text, "a viewer * plain:%s\n", tok);
    expect_error(text, 1, "longer than 256", tok);
    expect_error("a viewer * plain:caf\xc3\xa9-secret\n", 1, "not printable", "-secret");
}

Test(auth, duplicate_names_and_secrets_are_reported)
{
    expect_error("same viewer * plain:dup-s1\n\nsame editor demo plain:dup-s2\n", 3,
                 "duplicate token name \"same\" (first on line 1)", "dup-s2");
    char hex[65], text[512];
    sha256_hex("shared-secret", hex, 0);
    snprintf(text, sizeof text, "a viewer * plain:shared-secret\nb viewer * sha256:%s\n", hex);
    expect_error(text, 2, "same secret as \"a\"", "shared-secret");
}

Test(auth, bad_names_are_reported)
{
    expect_error("bad/name viewer * plain:name-sec-1\n", 1, "bad token name", "name-sec-1");
    char name[80], text[256];
    memset(name, 'n', 65);
    name[65] = '\0';
    snprintf(text, sizeof text, "%s viewer * plain:name-sec-2\n", name);
    expect_error(text, 1, "bad token name", "name-sec-2");
    /* a secret in the name's place is not quoted back */
    expect_error("plain:name-sec-3 viewer * x\n", 1, "bad token name", "name-sec-3");
}

Test(auth, wrong_field_counts_are_reported)
{
    expect_error("a viewer *\n", 1, "too few fields", NULL);
    expect_error("ok viewer * plain:q\na viewer plain:few-sec # * x\n", 2, "too few fields",
                 "few-sec");
    expect_error("a viewer * plain:many-sec extra\n", 1, "too many fields", "many-sec");
    expect_error("a viewer * plain:many-sec2 extra more fields here\n", 1, "too many fields",
                 "many-sec2");
}

Test(auth, nul_bytes_and_long_lines_are_reported)
{
    /* write_temp() cannot write a NUL; build the file by hand. */
    char *path = strdup("/tmp/tally-test-auth-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char text[] = "a viewer * plain:x\nb viewer * plain:y\0z\n";
    cr_assert_eq(write(fd, text, sizeof text - 1), (ssize_t)(sizeof text - 1));
    close(fd);
    char err[512];
    tally__tokens_t *t = NULL;
    cr_expect_eq(tally__tokens_load(path, &t, err, sizeof err), TALLY_ECONFIG);
    cr_expect(strstr(err, ":2: NUL byte") != NULL, "%s", err);
    remove_temp(path);

    size_t big = TALLY__TOKENS_MAX_LINE + 10;
    char *line = malloc(big + 64);
    strcpy(line, "# ok\n#");
    memset(line + 6, 'c', big);
    strcpy(line + 6 + big, "\n");
    expect_error(line, 2, "line too long", NULL);
    free(line);
}

/* ---- authentication ----------------------------------------------------- */

Test(auth, malformed_or_unknown_headers_do_not_authenticate)
{
    tally__tokens_t *t = load_text("a viewer * plain:good-token\n");
    cr_assert_not_null(tally__tokens_authenticate(t, "APIToken good-token"));
    cr_expect_null(tally__tokens_authenticate(t, NULL));
    cr_expect_null(tally__tokens_authenticate(t, ""));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken wrong-token"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken good-toke"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken good-token2"));
    cr_expect_null(tally__tokens_authenticate(t, "Bearer good-token"));
    cr_expect_null(tally__tokens_authenticate(t, "Bearer x"));
    cr_expect_null(tally__tokens_authenticate(t, "APITokengood-token"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken "));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken    "));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken\tgood-token"));
    cr_expect_null(tally__tokens_authenticate(t, " APIToken good-token"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken good-token "));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken good token"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken good-token\n"));
    cr_expect_null(tally__tokens_authenticate(t, "good-token"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToke good-token"));
    tally__tokens_destroy(t);
}

Test(auth, token_length_bounds)
{
    char tok[300], hex[65], text[512], hdr[400];
    memset(tok, 'T', 256);
    tok[256] = '\0';
    sha256_hex(tok, hex, 0);
    snprintf(text, sizeof text, "long viewer * sha256:%s\n", hex);
    tally__tokens_t *t = load_text(text);
    snprintf(hdr, sizeof hdr, "APIToken %s", tok);
    cr_expect_not_null(tally__tokens_authenticate(t, hdr));
    /* 257 characters never authenticate, even if their prefix would */
    snprintf(hdr, sizeof hdr, "APIToken %sT", tok);
    cr_expect_null(tally__tokens_authenticate(t, hdr));
    tally__tokens_destroy(t);

    t = load_text("one viewer * plain:Z\n");
    cr_expect_not_null(tally__tokens_authenticate(t, "APIToken Z"));
    tally__tokens_destroy(t);
}

/* ---- access ------------------------------------------------------------- */

Test(auth, access_matrix)
{
    tally__tokens_t *t = load_text("va viewer * plain:va\n"
                                   "vd viewer demo plain:vd\n"
                                   "ea editor * plain:ea\n"
                                   "ed editor demo plain:ed\n"
                                   "aa admin * plain:aa\n"
                                   "ad admin demo plain:ad\n"
                                   "as admin demo,system plain:as\n");
    /* expected[token][ns][access-1]; ns: own "demo", other "shop", "system" */
    static const struct {
        const char *name;
        int want[3][3];
    } rows[] = {
        /* clang-format off */
        {"va", {{1, 0, 0}, {1, 0, 0}, {1, 0, 0}}},
        {"vd", {{1, 0, 0}, {0, 0, 0}, {0, 0, 0}}},
        {"ea", {{1, 1, 0}, {1, 1, 0}, {1, 1, 0}}},
        {"ed", {{1, 1, 0}, {0, 0, 0}, {0, 0, 0}}},
        {"aa", {{1, 1, 1}, {1, 1, 1}, {1, 1, 1}}},
        {"ad", {{1, 1, 1}, {0, 0, 0}, {0, 0, 0}}},
        {"as", {{1, 1, 1}, {0, 0, 0}, {1, 1, 1}}},
        /* clang-format on */
    };
    static const char *const nss[3] = {"demo", "shop", "system"};
    static const int acc[3] = {TALLY_ACCESS_READ, TALLY_ACCESS_WRITE, TALLY_ACCESS_ADMIN};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        const tally__token_t *tok = tally__tokens_find(t, rows[r].name);
        cr_assert_not_null(tok, "%s", rows[r].name);
        for (int n = 0; n < 3; n++) {
            for (int a = 0; a < 3; a++) {
                cr_expect_eq(tally__token_allows(tok, nss[n], acc[a]), rows[r].want[n][a],
                             "token %s ns %s access %d", rows[r].name, nss[n], acc[a]);
            }
            cr_expect_eq(tally__token_allows(tok, nss[n], TALLY_ACCESS_NONE), 1);
        }
        cr_expect_eq(tally__token_allows(tok, NULL, TALLY_ACCESS_READ), 0);
        cr_expect_eq(tally__token_allows(tok, "demo", 42), 0);
        cr_expect_eq(tally__token_allows(tok, "demo", -1), 0);
        cr_expect_eq(tally__token_allows(tok, "Demo", TALLY_ACCESS_READ),
                     tally__token_all_namespaces(tok));
    }
    cr_expect_eq(tally__token_allows(NULL, "demo", TALLY_ACCESS_READ), 0);
    cr_expect_eq(tally__token_allows(NULL, "demo", TALLY_ACCESS_NONE), 0);
    cr_expect_str_eq(tally__role_name(TALLY_ROLE_VIEWER), "viewer");
    cr_expect_str_eq(tally__role_name(0), "none");
    tally__tokens_destroy(t);
}

/* ---- rate limiting ------------------------------------------------------ */

Test(auth, rate_limit_burst_then_limited_then_refilled)
{
    tally__tokens_t *t = load_text("a viewer * plain:rate-a\n");
    const tally__token_t *a = tally__tokens_get(t, 0);
    int64_t now = 1000000;
    uint32_t retry = 0;
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tally__token_rate_take(t, a, now, 2, 5, &retry), 1, "request %d", i);
    cr_expect_eq(tally__token_rate_take(t, a, now, 2, 5, &retry), 0);
    cr_expect_eq(retry, 1); /* 2/s: one more in 500 ms, rounded up to 1 s */

    /* 499 ms later: not yet */
    retry = 0;
    cr_expect_eq(tally__token_rate_take(t, a, now + 499, 2, 5, &retry), 0);
    cr_expect_geq(retry, 1);
    /* 500 ms: one request refilled */
    cr_expect_eq(tally__token_rate_take(t, a, now + 500, 2, 5, &retry), 1);
    cr_expect_eq(tally__token_rate_take(t, a, now + 500, 2, 5, &retry), 0);
    /* a long pause refills only up to the burst */
    now += 3600 * 1000;
    for (int i = 0; i < 5; i++)
        cr_expect_eq(tally__token_rate_take(t, a, now, 2, 5, &retry), 1, "request %d", i);
    cr_expect_eq(tally__token_rate_take(t, a, now, 2, 5, &retry), 0);
    /* a clock going backwards refills nothing */
    cr_expect_eq(tally__token_rate_take(t, a, now - 10000, 2, 5, &retry), 0);
    tally__tokens_destroy(t);
}

Test(auth, rate_limit_retry_after_counts_whole_seconds)
{
    tally__tokens_t *t = load_text("a viewer * plain:rate-a\n");
    const tally__token_t *a = tally__tokens_get(t, 0);
    uint32_t retry = 0;
    /* 1 request per second, burst 1 */
    cr_expect_eq(tally__token_rate_take(t, a, 0, 1, 1, &retry), 1);
    cr_expect_eq(tally__token_rate_take(t, a, 0, 1, 1, &retry), 0);
    cr_expect_eq(retry, 1);
    cr_expect_eq(tally__token_rate_take(t, a, 999, 1, 1, &retry), 0);
    cr_expect_eq(retry, 1);
    cr_expect_eq(tally__token_rate_take(t, a, 1000, 1, 1, &retry), 1);
    /* burst 0 counts as 1 */
    cr_expect_eq(tally__token_rate_take(t, a, 5000, 1, 0, &retry), 1);
    cr_expect_eq(tally__token_rate_take(t, a, 5000, 1, 0, &retry), 0);
    cr_expect_eq(tally__token_rate_take(t, a, 5000, 1, 0, NULL), 0);
    tally__tokens_destroy(t);

    /* a partly refilled bucket still rounds the wait up to a whole second */
    t = load_text("a viewer * plain:rate-a\n");
    a = tally__tokens_get(t, 0);
    cr_expect_eq(tally__token_rate_take(t, a, 0, 1, 1, &retry), 1);
    retry = 0;
    cr_expect_eq(tally__token_rate_take(t, a, 250, 1, 1, &retry), 0);
    cr_expect_eq(retry, 1);
    tally__tokens_destroy(t);
}

Test(auth, rate_zero_is_unlimited)
{
    tally__tokens_t *t = load_text("a viewer * plain:rate-a\n");
    const tally__token_t *a = tally__tokens_get(t, 0);
    uint32_t retry = 0;
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(tally__token_rate_take(t, a, 0, 0, 1, &retry), 1);
    cr_expect_eq(retry, 0);
    tally__tokens_destroy(t);
}

Test(auth, rate_buckets_are_independent_per_token)
{
    tally__tokens_t *t = load_text("a viewer * plain:rate-a\nb viewer * plain:rate-b\n");
    const tally__token_t *a = tally__tokens_authenticate(t, "APIToken rate-a");
    const tally__token_t *b = tally__tokens_authenticate(t, "APIToken rate-b");
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    cr_assert_neq(a, b);
    uint32_t retry = 0;
    for (int i = 0; i < 3; i++)
        cr_expect_eq(tally__token_rate_take(t, a, 100, 1, 3, &retry), 1);
    cr_expect_eq(tally__token_rate_take(t, a, 100, 1, 3, &retry), 0);
    /* b still has its whole burst */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(tally__token_rate_take(t, b, 100, 1, 3, &retry), 1);
    cr_expect_eq(tally__token_rate_take(t, b, 100, 1, 3, &retry), 0);
    tally__tokens_destroy(t);

    /* a reloaded set starts with full buckets */
    t = load_text("a viewer * plain:rate-a\nb viewer * plain:rate-b\n");
    a = tally__tokens_find(t, "a");
    cr_expect_eq(tally__token_rate_take(t, a, 100, 1, 3, &retry), 1);
    tally__tokens_destroy(t);
}

/* ---- secrecy ------------------------------------------------------------ */

Test(auth, secrets_never_appear_in_errors)
{
    static const char *const secrets[] = {"SuperSecret-1", "SuperSecret-2", "SuperSecret-3"};
    char text[512];
    /* every error after a line holding a plain secret, and on that line */
    snprintf(text, sizeof text, "a admin * plain:%s extra\n", secrets[0]);
    expect_error(text, 1, "too many fields", secrets[0]);
    snprintf(text, sizeof text, "a boss * plain:%s\n", secrets[1]);
    expect_error(text, 1, "bad role", secrets[1]);
    snprintf(text, sizeof text, "a admin BAD plain:%s\n", secrets[2]);
    expect_error(text, 1, "bad namespace", secrets[2]);
    snprintf(text, sizeof text, "a admin * %s\n", secrets[0]);
    expect_error(text, 1, "unknown secret scheme", secrets[0]);
    snprintf(text, sizeof text, "a admin * plain:%s\na viewer * plain:%s\n", secrets[0],
             secrets[1]);
    expect_error(text, 2, "duplicate token name", secrets[1]);
    snprintf(text, sizeof text, "a admin * plain:%s\nb viewer * plain:%s\n", secrets[2],
             secrets[2]);
    expect_error(text, 2, "same secret", secrets[2]);
}

/* ---- emitter credentials -------------------------------------------------- */

#define DEV_EMITTER "dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"
#define DEMO_EMITTER "demo-emitter:O7tNEPJEh9nQkqAoh_Vfk1IdSJSnySNKVB9RDoTiTOw"

static tally__tokens_t *
shipped_tokens(void)
{
    char *path = source_path("config/tokens");
    char err[512];
    tally__tokens_t *t = NULL;
    cr_assert_eq(tally__tokens_load(path, &t, err, sizeof err), 0, "%s", err);
    free(path);
    return t;
}

Test(auth, emitter_authenticates_only_at_the_door_with_its_secret)
{
    tally__tokens_t *t = shipped_tokens();
    const tally__token_t *em = tally__tokens_authenticate_emitter(t, "Bearer " DEV_EMITTER);
    cr_assert_not_null(em);
    cr_expect_str_eq(tally__token_name(em), "dev-emitter");
    cr_expect_eq(tally__tokens_authenticate_emitter(t, "APIToken " DEV_EMITTER), em);
    cr_expect_eq(tally__tokens_authenticate_emitter(t, "bearer   " DEV_EMITTER), em);
    /* the right secret under another name, a changed secret, no secret */
    cr_expect_null(tally__tokens_authenticate_emitter(
        t, "Bearer demo-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyo"));
    cr_expect_null(tally__tokens_authenticate_emitter(
        t, "Bearer dev-emitter:Vo86vbdGmaM_u-JvU-WrRpSYWpG_T6UM3vGSL5uyCyp"));
    cr_expect_null(tally__tokens_authenticate_emitter(t, "Bearer dev-emitter:"));
    cr_expect_null(tally__tokens_authenticate_emitter(t, "Bearer dev-emitter"));
    cr_expect_null(tally__tokens_authenticate_emitter(t, "Basic " DEV_EMITTER));
    /* an API token is not an emitter, and an emitter is not an API token */
    cr_expect_null(tally__tokens_authenticate_emitter(t, "Bearer admin:dev-admin-token"));
    cr_expect_null(tally__tokens_authenticate(t, "APIToken " DEV_EMITTER));
    tally__tokens_destroy(t);
}

Test(auth, emitters_may_ingest_in_scope_and_nothing_else)
{
    tally__tokens_t *t = shipped_tokens();
    const tally__token_t *dev = tally__tokens_find(t, "dev-emitter");
    const tally__token_t *demo = tally__tokens_find(t, "demo-emitter");
    const tally__token_t *admin = tally__tokens_find(t, "admin");
    cr_assert(dev && demo && admin);
    cr_expect(tally__token_allows(dev, "anything", TALLY_ACCESS_INGEST));
    cr_expect(tally__token_allows(demo, "demo", TALLY_ACCESS_INGEST));
    cr_expect_not(tally__token_allows(demo, "demo-2", TALLY_ACCESS_INGEST));
    cr_expect(tally__token_allows_ns(demo, "demo-2", 4, TALLY_ACCESS_INGEST));
    for (int a = TALLY_ACCESS_READ; a <= TALLY_ACCESS_ADMIN; a++) {
        cr_expect_not(tally__token_allows(dev, "demo", a), "emitter allowed access %d", a);
        cr_expect_not(tally__token_allows(demo, "demo", a), "emitter allowed access %d", a);
    }
    cr_expect_not(tally__token_allows(admin, "demo", TALLY_ACCESS_INGEST));
    cr_expect_not_null(tally__token_mac_key(dev));
    cr_expect_null(tally__token_mac_key(admin));
    /* the key in the file is the one derived from the credential's secret */
    tally__cred_t c;
    cr_assert_eq(tally__cred_parse(DEMO_EMITTER, strlen(DEMO_EMITTER), &c), 0);
    cr_expect_str_eq(c.name, "demo-emitter");
    cr_expect(memcmp(c.key, tally__token_mac_key(demo), sizeof c.key) == 0);
    tally__tokens_destroy(t);
}

Test(auth, rejects_malformed_emitter_lines)
{
    expect_error("e emitter * sha256:"
                 "a5835c72ff5990869ba782ea1337bd3d4664a3f23efef3703ba73bce77a7a297\n",
                 1, "mac:HEX", NULL);
    expect_error("e emitter * mac:abcd\n", 1, "hex digits", NULL);
    expect_error("e emitter * mac:"
                 "zz835c72ff5990869ba782ea1337bd3d4664a3f23efef3703ba73bce77a7a297\n",
                 1, "hex digits", NULL);
    expect_error("e1 emitter * mac:"
                 "a5835c72ff5990869ba782ea1337bd3d4664a3f23efef3703ba73bce77a7a297\n"
                 "e2 emitter demo mac:"
                 "a5835c72ff5990869ba782ea1337bd3d4664a3f23efef3703ba73bce77a7a297\n",
                 2, "same secret", NULL);
}
