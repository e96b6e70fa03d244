/* test_config.c — unit tests of the configuration loader: defaults, file, environment, errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config.h"
#include "log.h"
#include "tally/tally.h"

extern char **environ;

/* Tests must not see the developer's TALLY_* overrides; CTest's own
 * TALLY_SOURCE_DIR and TALLY_BIN_DIR are no config keys and stay. */
static void
clear_tally_env(void)
{
    char *names[256];
    size_t n = 0;
    for (char **e = environ; *e && n < 256; e++) {
        if (strncmp(*e, "TALLY_", 6) != 0 || strncmp(*e, "TALLY_SOURCE_DIR=", 17) == 0 ||
            strncmp(*e, "TALLY_BIN_DIR=", 14) == 0)
            continue;
        names[n++] = strndup(*e, strcspn(*e, "="));
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
}

TestSuite(config, .init = clear_tally_env);

/* Write text to a new file under dir ("/tmp" when NULL); returns its heap path. */
static char *
write_temp_in(const char *dir, const char *text)
{
    char *path;
    cr_assert_neq(asprintf(&path, "%s/tally-test-config-XXXXXX", dir ? dir : "/tmp"), -1);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static char *
write_temp(const char *text)
{
    return write_temp_in(NULL, text);
}

static void
remove_temp(char *path)
{
    unlink(path);
    free(path);
}

/* A file of the source tree: $TALLY_SOURCE_DIR/rel (set by CTest); else the
 * source directory recorded in the build tree's CMakeCache.txt (this binary
 * lives in BUILD/bin); else BUILD/bin/../../rel. */
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
    cr_assert_gt(n, 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    char cache[PATH_MAX + 32];
    snprintf(cache, sizeof cache, "%s/../CMakeCache.txt", exe);
    FILE *fp = fopen(cache, "r");
    if (fp != NULL) {
        static const char key[] = "CMAKE_HOME_DIRECTORY:INTERNAL=";
        char line[PATH_MAX + 64];
        path = NULL;
        while (path == NULL && fgets(line, sizeof line, fp) != NULL) {
            if (strncmp(line, key, sizeof key - 1) == 0) {
                line[strcspn(line, "\n")] = '\0';
                cr_assert_neq(asprintf(&path, "%s/%s", line + sizeof key - 1, rel), -1);
            }
        }
        fclose(fp);
        if (path != NULL)
            return path;
    }
    cr_assert_neq(asprintf(&path, "%s/../../%s", exe, rel), -1);
    return path;
}

/* Load text as a config file and expect TALLY_ECONFIG with an error that
 * starts "FILE:LINE: " and contains fragment. */
static void
expect_file_error(const char *text, int line, const char *fragment)
{
    char *path = write_temp(text);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    int rc = tally__config_load(path, &cfg, err, sizeof err);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    cr_expect_eq(rc, TALLY_ECONFIG, "rc %d for:\n%s", rc, text);
    cr_expect_null(cfg);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' lacks '%s'", err, prefix);
    cr_expect(strstr(err, fragment) != NULL, "error '%s' lacks '%s'", err, fragment);
    tally__config_destroy(cfg);
    remove_temp(path);
}

/* Load defaults plus environment and expect an error naming the variable. */
static void
expect_env_error(const char *name, const char *value, const char *fragment)
{
    setenv(name, value, 1);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    int rc = tally__config_load(NULL, &cfg, err, sizeof err);
    unsetenv(name);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "environment %s: ", name);
    cr_expect_eq(rc, TALLY_ECONFIG, "rc %d for %s=%s", rc, name, value);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' lacks '%s'", err, prefix);
    cr_expect(strstr(err, fragment) != NULL, "error '%s' lacks '%s'", err, fragment);
    tally__config_destroy(cfg);
}

static char *
cwd_join(const char *rel)
{
    char cwd[PATH_MAX];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    char *p;
    cr_assert_neq(asprintf(&p, "%s%s%s", strcmp(cwd, "/") ? cwd : "", "/", rel), -1);
    return p;
}

/* ---- defaults, file, environment ---------------------------------------- */

Test(config, defaults_apply_without_file_or_environment)
{
    tally__config_t *cfg = NULL;
    char err[256] = "";
    cr_assert_eq(tally__config_load(NULL, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_null(cfg->path);
    cr_expect_str_eq(cfg->storage.dir, "/var/lib/tally");
    cr_expect_eq(cfg->storage.map_size_mb, 1024);
    cr_expect_eq(cfg->storage.map_max_mb, 0);
    cr_assert_eq(cfg->ingest.nlisten, 2);
    cr_expect_str_eq(cfg->ingest.listen[0], "ipc:///run/tally/ingest");
    cr_expect_str_eq(cfg->ingest.listen[1], "tcp://127.0.0.1:7410");
    cr_expect_null(cfg->ingest.listen[2]);
    cr_assert_eq(cfg->ingest.nacks, 2);
    cr_expect_str_eq(cfg->ingest.acks[0], "ipc:///run/tally/ingest.acks");
    cr_expect_str_eq(cfg->ingest.acks[1], "tcp://127.0.0.1:7411");
    cr_expect_eq(cfg->ingest.late_window_hours, 168);
    cr_expect_eq(cfg->ingest.future_skew_s, 300);
    cr_expect_eq(cfg->ingest.ring_size, 1024);
    cr_expect_eq(cfg->ingest.max_batch_events, TALLY_MAX_BATCH_EVENTS);
    cr_expect_eq(cfg->ingest.max_message_bytes, 1048576);
    cr_expect_eq(cfg->flush.interval_ms, 100);
    cr_expect_str_eq(cfg->http.listen, "127.0.0.1:7400");
    cr_expect_str_eq(cfg->http.host, "127.0.0.1");
    cr_expect_eq(cfg->http.port, 7400);
    cr_expect_eq(cfg->http.max_header_bytes, 8192);
    cr_expect_eq(cfg->http.max_headers, 64);
    cr_expect_eq(cfg->http.max_body_bytes, 1048576);
    cr_expect_eq(cfg->http.max_connections, 1024);
    cr_expect_eq(cfg->http.max_connections_per_address, 64);
    cr_expect_eq(cfg->http.metrics_max_series, 10000);
    cr_expect_eq(cfg->http.idle_timeout_ms, 30000);
    cr_expect_eq(cfg->http.request_timeout_ms, 10000);
    cr_expect_str_eq(cfg->billing.tenant, "acme");
    cr_expect_str_eq(cfg->billing.default_plan, "free");
    cr_expect_str_eq(cfg->quota.alerts, "ipc:///run/tally/alerts");
    cr_expect_eq(cfg->quota.warn_percent, 80);
    cr_expect_eq(cfg->log.level, TALLY_LOG_INFO);
    cr_expect_eq(cfg->log.requests, false);

    /* Without a file, relative defaults resolve against the working directory. */
    char *tokens = cwd_join("tokens");
    char *plans = cwd_join("plans.ini");
    char *metrics = cwd_join("metrics.ini");
    cr_expect_str_eq(cfg->auth.tokens_file, tokens);
    cr_expect_str_eq(cfg->billing.plans_file, plans);
    cr_expect_str_eq(cfg->billing.metrics_file, metrics);
    free(tokens);
    free(plans);
    free(metrics);
    tally__config_destroy(cfg);
}

Test(config, file_values_replace_defaults)
{
    char *path = write_temp("[storage]\n"
                            "dir = /srv/tally\n"
                            "map_size_mb = 64\n"
                            "map_max_mb = 4096\n"
                            "[ingest]\n"
                            "listen = tcp://0.0.0.0:9000\n"
                            "late_window_hours = 24\n"
                            "ring_size = 4096\n"
                            "max_batch_events = 100\n"
                            "[flush]\n"
                            "interval_ms = 250\n"
                            "[http]\n"
                            "listen = 0.0.0.0:8080\n"
                            "max_connections = 10\n"
                            "[billing]\n"
                            "tenant = globex\n"
                            "default_plan = team\n"
                            "[quota]\n"
                            "alerts =\n"
                            "warn_percent = 90\n"
                            "[log]\n"
                            "level = debug\n"
                            "requests = yes\n");
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg->path, path);
    cr_expect_str_eq(cfg->dir, "/tmp");
    cr_expect_str_eq(cfg->storage.dir, "/srv/tally");
    cr_expect_eq(cfg->storage.map_size_mb, 64);
    cr_expect_eq(cfg->storage.map_max_mb, 4096);
    cr_assert_eq(cfg->ingest.nlisten, 1);
    cr_expect_str_eq(cfg->ingest.listen[0], "tcp://0.0.0.0:9000");
    cr_expect_eq(cfg->ingest.nacks, 2, "unset keys keep their defaults");
    cr_expect_eq(cfg->ingest.late_window_hours, 24);
    cr_expect_eq(cfg->ingest.ring_size, 4096);
    cr_expect_eq(cfg->ingest.max_batch_events, 100);
    cr_expect_eq(cfg->flush.interval_ms, 250);
    cr_expect_str_eq(cfg->http.host, "0.0.0.0");
    cr_expect_eq(cfg->http.port, 8080);
    cr_expect_eq(cfg->http.max_connections, 10);
    cr_expect_eq(cfg->http.max_headers, 64);
    cr_expect_str_eq(cfg->billing.tenant, "globex");
    cr_expect_str_eq(cfg->billing.default_plan, "team");
    cr_expect_str_eq(cfg->quota.alerts, "", "an empty alerts endpoint disables alerts");
    cr_expect_eq(cfg->quota.warn_percent, 90);
    cr_expect_eq(cfg->log.level, TALLY_LOG_DEBUG);
    cr_expect_eq(cfg->log.requests, true);
    tally__config_destroy(cfg);
    remove_temp(path);
}

Test(config, environment_overrides_file_values)
{
    char *path = write_temp("[flush]\ninterval_ms = 200\n"
                            "[http]\nlisten = 127.0.0.1:7500\nmax_headers = 10\n"
                            "[log]\nlevel = warn\n");
    setenv("TALLY_FLUSH_INTERVAL_MS", "300", 1);
    setenv("TALLY_HTTP_LISTEN", "127.0.0.1:17400", 1);
    setenv("TALLY_INGEST_LISTEN", "ipc:///tmp/a, tcp://127.0.0.1:17410", 1);
    setenv("TALLY_LOG_REQUESTS", "on", 1);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    int rc = tally__config_load(path, &cfg, err, sizeof err);
    unsetenv("TALLY_FLUSH_INTERVAL_MS");
    unsetenv("TALLY_HTTP_LISTEN");
    unsetenv("TALLY_INGEST_LISTEN");
    unsetenv("TALLY_LOG_REQUESTS");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(cfg->flush.interval_ms, 300, "environment beats file");
    cr_expect_eq(cfg->http.port, 17400, "environment beats file");
    cr_expect_eq(cfg->http.max_headers, 10, "file values without an override stay");
    cr_expect_eq(cfg->log.level, TALLY_LOG_WARN);
    cr_expect_eq(cfg->log.requests, true, "environment beats default");
    cr_assert_eq(cfg->ingest.nlisten, 2);
    cr_expect_str_eq(cfg->ingest.listen[0], "ipc:///tmp/a");
    cr_expect_str_eq(cfg->ingest.listen[1], "tcp://127.0.0.1:17410");
    tally__config_destroy(cfg);
    remove_temp(path);
}

Test(config, environment_overrides_a_bad_file_value)
{
    /* Validation runs once on the final values: a value the environment
     * replaces is never judged. */
    char *path = write_temp("[flush]\ninterval_ms = 0\n");
    setenv("TALLY_FLUSH_INTERVAL_MS", "5", 1);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    int rc = tally__config_load(path, &cfg, err, sizeof err);
    unsetenv("TALLY_FLUSH_INTERVAL_MS");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_eq(cfg->flush.interval_ms, 5);
    tally__config_destroy(cfg);
    remove_temp(path);
}

Test(config, unrelated_tally_variables_are_ignored)
{
    setenv("TALLY_NOT_A_KEY", "whatever", 1);
    tally__config_t *cfg = NULL;
    char err[256] = "";
    int rc = tally__config_load(NULL, &cfg, err, sizeof err);
    unsetenv("TALLY_NOT_A_KEY");
    cr_assert_eq(rc, 0, "%s", err);
    tally__config_destroy(cfg);
}

/* ---- paths ---------------------------------------------------------------- */

Test(config, relative_paths_resolve_against_the_config_directory)
{
    char dir[] = "/tmp/tally-test-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *path = write_temp_in(dir, "[storage]\ndir = ./data//store/\n"
                                    "[auth]\ntokens_file = secrets/tokens\n"
                                    "[billing]\nmetrics_file = ../shared/metrics.ini\n");
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &cfg, err, sizeof err), 0, "%s", err);
    char want[PATH_MAX];
    cr_expect_str_eq(cfg->dir, dir);
    snprintf(want, sizeof want, "%s/data/store", dir);
    cr_expect_str_eq(cfg->storage.dir, want);
    snprintf(want, sizeof want, "%s/secrets/tokens", dir);
    cr_expect_str_eq(cfg->auth.tokens_file, want);
    snprintf(want, sizeof want, "%s/../shared/metrics.ini", dir);
    cr_expect_str_eq(cfg->billing.metrics_file, want);
    /* Defaults left relative follow the file too. */
    snprintf(want, sizeof want, "%s/plans.ini", dir);
    cr_expect_str_eq(cfg->billing.plans_file, want);
    tally__config_destroy(cfg);
    remove_temp(path);
    rmdir(dir);
}

Test(config, a_relative_config_path_is_made_absolute)
{
    char dir[] = "/tmp/tally-test-dir-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char *path = write_temp_in(dir, "[auth]\ntokens_file = tokens\n");
    cr_assert_eq(chdir("/tmp"), 0);
    const char *rel = path + strlen("/tmp/"); /* "tally-test-dir-XXX/tally-test-config-XXX" */
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(rel, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(cfg->path, path);
    cr_expect_str_eq(cfg->dir, dir);
    char want[PATH_MAX];
    snprintf(want, sizeof want, "%s/tokens", dir);
    cr_expect_str_eq(cfg->auth.tokens_file, want);
    tally__config_destroy(cfg);
    remove_temp(path);
    rmdir(dir);
}

Test(config, relative_environment_paths_resolve_against_the_working_directory)
{
    char *path = write_temp("[storage]\ndir = from-file\n");
    cr_assert_eq(chdir("/var"), 0);
    setenv("TALLY_STORAGE_DIR", "tmp/./tally", 1);
    setenv("TALLY_BILLING_PLANS_FILE", "/etc//tally/plans.ini", 1);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    int rc = tally__config_load(path, &cfg, err, sizeof err);
    unsetenv("TALLY_STORAGE_DIR");
    unsetenv("TALLY_BILLING_PLANS_FILE");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cfg->storage.dir, "/var/tmp/tally");
    cr_expect_str_eq(cfg->billing.plans_file, "/etc/tally/plans.ini", "absolute paths are kept");
    cr_expect_str_eq(cfg->auth.tokens_file, "/tmp/tokens", "file-relative defaults stay");
    tally__config_destroy(cfg);
    remove_temp(path);
}

/* ---- values --------------------------------------------------------------- */

Test(config, lists_are_trimmed_and_may_continue_on_indented_lines)
{
    char *path = write_temp("[ingest]\n"
                            "listen = ipc:///tmp/i ,  tcp://127.0.0.1:1,\n"
                            "    tcp://127.0.0.1:2 ; inline comment\n"
                            "\n"
                            "    ws://127.0.0.1:3\n"
                            "acks = \"inproc://acks\"\n");
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg->ingest.nlisten, 4);
    cr_expect_str_eq(cfg->ingest.listen[0], "ipc:///tmp/i");
    cr_expect_str_eq(cfg->ingest.listen[1], "tcp://127.0.0.1:1");
    cr_expect_str_eq(cfg->ingest.listen[2], "tcp://127.0.0.1:2");
    cr_expect_str_eq(cfg->ingest.listen[3], "ws://127.0.0.1:3");
    cr_assert_eq(cfg->ingest.nacks, 1);
    cr_expect_str_eq(cfg->ingest.acks[0], "inproc://acks", "one pair of quotes is dropped");
    tally__config_destroy(cfg);
    remove_temp(path);
}

Test(config, http_listen_accepts_ipv6_in_brackets_and_port_zero)
{
    setenv("TALLY_HTTP_LISTEN", "[::1]:0", 1);
    tally__config_t *cfg = NULL;
    char err[256] = "";
    int rc = tally__config_load(NULL, &cfg, err, sizeof err);
    unsetenv("TALLY_HTTP_LISTEN");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cfg->http.listen, "[::1]:0");
    cr_expect_str_eq(cfg->http.host, "::1");
    cr_expect_eq(cfg->http.port, 0);
    tally__config_destroy(cfg);
}

Test(config, comments_blank_lines_and_colons_are_accepted)
{
    char *path = write_temp("\xEF\xBB\xBF# a comment\n"
                            "; another\n"
                            "\n"
                            "[log] ; section comment\n"
                            "level: error ; inline comment\n"
                            "requests = FALSE\r\n");
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_eq(cfg->log.level, TALLY_LOG_ERROR);
    cr_expect_eq(cfg->log.requests, false);
    tally__config_destroy(cfg);
    remove_temp(path);
}

/* ---- errors, with file and line ------------------------------------------ */

Test(config, unknown_section_is_reported_at_its_header)
{
    expect_file_error("[http]\nmax_headers = 8\n\n[htpp]\nlisten = x\n", 4,
                      "[htpp]: unknown section");
}

Test(config, unknown_key_is_reported_with_section_and_key)
{
    expect_file_error("[http]\nmax_headers = 8\nmax_header = 9\n", 3,
                      "[http] max_header: unknown key");
}

Test(config, key_outside_any_section_is_an_error)
{
    expect_file_error("# top\ndir = /x\n[storage]\n", 2, "outside any [section]");
}

Test(config, bad_integers_are_errors)
{
    expect_file_error("[flush]\ninterval_ms = fast\n", 2,
                      "[flush] interval_ms: 'fast' is not an integer");
    expect_file_error("[flush]\ninterval_ms = 10ms\n", 2, "'10ms' is not an integer");
    expect_file_error("[flush]\ninterval_ms = \n", 2, "is not an integer");
    expect_file_error("[flush]\n\ninterval_ms = 0\n", 3, "0 is out of range (1..60000)");
    expect_file_error("[flush]\ninterval_ms = 60001\n", 2, "out of range");
    expect_file_error("[storage]\nmap_size_mb = -1\n", 2, "-1 is out of range");
    expect_file_error("[storage]\nmap_size_mb = 99999999999999999999999\n", 2, "out of range");
    expect_file_error("[ingest]\nmax_batch_events = 4097\n", 2,
                      "[ingest] max_batch_events: 4097 is out of range (1..4096)");
    expect_file_error("[ingest]\nring_size = 1000\n", 2,
                      "[ingest] ring_size: 1000 is not a power of two");
}

Test(config, bad_bool_is_an_error)
{
    expect_file_error("[log]\nrequests = maybe\n", 2, "[log] requests: 'maybe' is not a boolean");
}

Test(config, bad_log_level_is_an_error)
{
    expect_file_error("[log]\nlevel = loud\n", 2, "[log] level: 'loud' is not a log level");
}

Test(config, bad_endpoints_are_errors)
{
    expect_file_error("[ingest]\nlisten = ipc:///ok, http://127.0.0.1:1\n", 2,
                      "'http://127.0.0.1:1' is not a nanomsg endpoint");
    expect_file_error("[ingest]\nacks = , ,\n", 2, "[ingest] acks: needs at least one endpoint");
    expect_file_error("[quota]\nalerts = /run/alerts\n", 2,
                      "[quota] alerts: '/run/alerts' is not a nanomsg endpoint");
}

Test(config, bad_http_listen_is_an_error)
{
    expect_file_error("[http]\nlisten = 7400\n", 2, "'7400' is not HOST:PORT");
    expect_file_error("[http]\nlisten = :7400\n", 2, "is not HOST:PORT");
    expect_file_error("[http]\nlisten = localhost:70000\n", 2, "is not HOST:PORT");
    expect_file_error("[http]\nlisten = ::1:7400\n", 2, "is not HOST:PORT");
}

Test(config, empty_or_blank_names_are_errors)
{
    expect_file_error("[billing]\ntenant =\n", 2, "[billing] tenant: must not be empty");
    expect_file_error("[billing]\ndefault_plan = my plan\n", 2, "contains a blank");
    expect_file_error("[auth]\ntokens_file = \"\"\n", 2, "[auth] tokens_file: must not be empty");
}

Test(config, duplicate_key_names_the_first_line)
{
    expect_file_error("[flush]\ninterval_ms = 5\n[http]\n[flush]\ninterval_ms = 6\n", 5,
                      "duplicate key (first set on line 2)");
}

Test(config, indented_line_continues_only_lists)
{
    expect_file_error("[flush]\ninterval_ms = 5\n  6\n", 3, "only lists may span lines");
}

Test(config, map_max_below_map_size_is_an_error)
{
    expect_file_error("[storage]\nmap_size_mb = 2048\nmap_max_mb = 1024\n", 3,
                      "[storage] map_max_mb: 1024 is below storage.map_size_mb (2048)");
}

Test(config, syntax_errors_say_what_is_wrong)
{
    expect_file_error("[http]\nlisten = 127.0.0.1:1\n[log\n", 3, "without a closing ']'");
    expect_file_error("[http]\n\nlisten 127.0.0.1:1\n", 3,
                      "key 'listen 127.0.0.1' contains a blank: expected 'key = value'");
    expect_file_error("[http]\nlisten\n", 2, "expected 'key = value'");
    expect_file_error("[http]\n= 127.0.0.1:1\n", 2, "missing key name");
}

Test(config, overlong_line_is_an_error_not_a_split)
{
    char text[400];
    int n = snprintf(text, sizeof text, "[billing]\ntenant = ");
    memset(text + n, 'a', 250);
    text[n + 250] = '\n';
    text[n + 251] = '\0';
    expect_file_error(text, 2, "line longer than 197 bytes");
}

Test(config, environment_errors_name_the_variable)
{
    expect_env_error("TALLY_FLUSH_INTERVAL_MS", "soon", "'soon' is not an integer");
    expect_env_error("TALLY_FLUSH_INTERVAL_MS", "", "is not an integer");
    expect_env_error("TALLY_HTTP_MAX_HEADERS", "0", "0 is out of range (1..1024)");
    expect_env_error("TALLY_LOG_REQUESTS", "2", "is not a boolean");
    expect_env_error("TALLY_LOG_LEVEL", "verbose", "is not a log level");
    expect_env_error("TALLY_INGEST_ACKS", "udp://x", "is not a nanomsg endpoint");
    expect_env_error("TALLY_STORAGE_MAP_MAX_MB", "10", "is below storage.map_size_mb (1024)");
}

Test(config, missing_file_is_an_error_naming_it)
{
    tally__config_t *cfg = NULL;
    char err[256] = "";
    int rc = tally__config_load("/nonexistent/tally/tallyd.conf", &cfg, err, sizeof err);
    cr_expect_eq(rc, -ENOENT);
    cr_expect_null(cfg);
    cr_expect(strstr(err, "/nonexistent/tally/tallyd.conf") == err, "error: %s", err);
    cr_expect(strstr(err, strerror(ENOENT)) != NULL, "error: %s", err);
}

Test(config, a_directory_is_not_a_config_file)
{
    tally__config_t *cfg = NULL;
    char err[256] = "";
    int rc = tally__config_load("/tmp", &cfg, err, sizeof err);
    cr_expect_lt(rc, 0);
    cr_expect_null(cfg);
    cr_expect(strncmp(err, "/tmp: ", 6) == 0, "error: %s", err);
}

Test(config, errors_need_no_buffer)
{
    tally__config_t *cfg = NULL;
    cr_expect_eq(tally__config_load("/nonexistent/tallyd.conf", &cfg, NULL, 0), -ENOENT);
    char *path = write_temp("[nope]\n");
    cr_expect_eq(tally__config_load(path, &cfg, NULL, 0), TALLY_ECONFIG);
    cr_expect_null(cfg);
    remove_temp(path);
}

/* ---- the shipped file and the dump --------------------------------------- */

static char *
dump_to_string(const tally__config_t *cfg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);
    cr_assert_not_null(fp);
    cr_assert_eq(tally__config_dump(cfg, fp), 0);
    fclose(fp);
    /* The first line names the source; the rest is the values. */
    char *body = strdup(strchr(buf, '\n') + 1);
    free(buf);
    return body;
}

Test(config, shipped_config_loads_and_documents_the_defaults)
{
    char *path = source_path("config/tallyd.conf");
    tally__config_t *shipped = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &shipped, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(shipped->storage.dir, "/var/lib/tally");
    cr_expect(strstr(shipped->auth.tokens_file, "/config/tokens") != NULL, "%s",
              shipped->auth.tokens_file);
    cr_expect(strstr(shipped->billing.plans_file, "/config/plans.ini") != NULL);
    cr_expect(strstr(shipped->billing.metrics_file, "/config/metrics.ini") != NULL);

    /* From the config directory, the defaults resolve the same paths: the
     * shipped file then must say exactly what the defaults are. */
    cr_assert_eq(chdir(shipped->dir), 0);
    tally__config_t *defaults = NULL;
    cr_assert_eq(tally__config_load(NULL, &defaults, err, sizeof err), 0, "%s", err);
    char *a = dump_to_string(shipped);
    char *b = dump_to_string(defaults);
    cr_expect_str_eq(a, b);
    free(a);
    free(b);
    tally__config_destroy(defaults);
    tally__config_destroy(shipped);
    free(path);
}

Test(config, dump_loads_back_to_the_same_values)
{
    setenv("TALLY_INGEST_LISTEN",
           "ipc:///tmp/tally-test-a-rather-long-ingest-endpoint-name-number-one,"
           "ipc:///tmp/tally-test-a-rather-long-ingest-endpoint-name-number-two,"
           "tcp://127.0.0.1:17410",
           1);
    setenv("TALLY_LOG_LEVEL", "warn", 1);
    setenv("TALLY_QUOTA_ALERTS", "", 1);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    int rc = tally__config_load(NULL, &cfg, err, sizeof err);
    unsetenv("TALLY_INGEST_LISTEN");
    unsetenv("TALLY_LOG_LEVEL");
    unsetenv("TALLY_QUOTA_ALERTS");
    cr_assert_eq(rc, 0, "%s", err);
    cr_expect_str_eq(cfg->quota.alerts, "", "an empty variable is a value, not an absence");

    char *text = dump_to_string(cfg);
    char *path = write_temp(text);
    tally__config_t *again = NULL;
    cr_assert_eq(tally__config_load(path, &again, err, sizeof err), 0, "%s\n%s", err, text);
    char *text2 = dump_to_string(again);
    cr_expect_str_eq(text, text2);
    cr_expect_eq(again->ingest.nlisten, 3);
    free(text);
    free(text2);
    tally__config_destroy(again);
    tally__config_destroy(cfg);
    remove_temp(path);
}

/* ---- helpers -------------------------------------------------------------- */

Test(config, parse_bool_accepts_common_spellings)
{
    const char *yes[] = {"true", "TRUE", "yes", "On", "1"};
    const char *no[] = {"false", "No", "off", "0"};
    bool b;
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        b = false;
        cr_expect_eq(tally__config_parse_bool(yes[i], &b), 0, "%s", yes[i]);
        cr_expect_eq(b, true, "%s", yes[i]);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        b = true;
        cr_expect_eq(tally__config_parse_bool(no[i], &b), 0, "%s", no[i]);
        cr_expect_eq(b, false, "%s", no[i]);
    }
    cr_expect_eq(tally__config_parse_bool("", &b), TALLY_EINVAL);
    cr_expect_eq(tally__config_parse_bool("y", &b), TALLY_EINVAL);
}

Test(config, parse_int_checks_form_and_range)
{
    int64_t v = 0;
    cr_expect_eq(tally__config_parse_int("42", 0, 100, &v), 0);
    cr_expect_eq(v, 42);
    cr_expect_eq(tally__config_parse_int("-5", -10, 10, &v), 0);
    cr_expect_eq(v, -5);
    cr_expect_eq(tally__config_parse_int("101", 0, 100, &v), TALLY_ETOOBIG);
    cr_expect_eq(tally__config_parse_int(" 1", 0, 100, &v), TALLY_EINVAL);
    cr_expect_eq(tally__config_parse_int("+1", 0, 100, &v), TALLY_EINVAL);
    cr_expect_eq(tally__config_parse_int("0x10", 0, 100, &v), TALLY_EINVAL);
    cr_expect_eq(tally__config_parse_int("-", 0, 100, &v), TALLY_EINVAL);
    cr_expect_eq(tally__config_parse_int("9223372036854775808", INT64_MIN, INT64_MAX, &v),
                 TALLY_ETOOBIG);
}

Test(config, split_list_trims_and_skips_empty_items)
{
    char **list = NULL;
    size_t n = 99;
    cr_assert_eq(tally__config_split_list(" a , b,,\tc ,", &list, &n), 0);
    cr_assert_eq(n, 3);
    cr_expect_str_eq(list[0], "a");
    cr_expect_str_eq(list[1], "b");
    cr_expect_str_eq(list[2], "c");
    cr_expect_null(list[3]);
    tally__config_free_list(list, n);

    cr_assert_eq(tally__config_split_list(" , ", &list, &n), 0);
    cr_expect_eq(n, 0);
    cr_expect_null(list);
    tally__config_free_list(list, n);
}

Test(config, env_name_is_upper_case_section_and_key)
{
    char name[64];
    cr_assert_eq(tally__config_env_name("flush", "interval_ms", name, sizeof name), 0);
    cr_expect_str_eq(name, "TALLY_FLUSH_INTERVAL_MS");
    cr_expect_eq(tally__config_env_name("flush", "interval_ms", name, 10), TALLY_ETOOBIG);
}

/* Found by tests/fuzz (fuzz_config): a short line followed by a long run of
 * carriage returns overflowed the INI reader's line buffer. */
Test(config, trailing_carriage_returns_do_not_overflow_regression)
{
    char text[1024];
    size_t n = (size_t)snprintf(text, sizeof text, "[flush]\ninterval_ms = 250");
    memset(text + n, '\r', 600);
    text[n + 600] = '\n';
    text[n + 601] = '\0';
    char *path = write_temp(text);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &cfg, err, sizeof err), 0, "%s", err);
    cr_assert_eq(cfg->flush.interval_ms, 250);
    tally__config_destroy(cfg);
    remove_temp(path);
}

/* Found by tests/fuzz (fuzz_config): a relative path that resolved to more
 * than an INI line could hold made tally__config_dump() write a file that
 * did not load back. Such paths are refused at load, naming the length. */
Test(config, resolved_paths_must_fit_a_line_regression)
{
    char text[512], rel[190];
    memset(rel, 'a', sizeof rel - 1);
    rel[sizeof rel - 1] = '\0';
    snprintf(text, sizeof text, "[storage]\ndir = %s\n", rel);
    char *path = write_temp(text);
    tally__config_t *cfg = NULL;
    char err[512] = "";
    cr_assert_eq(tally__config_load(path, &cfg, err, sizeof err), TALLY_ECONFIG);
    cr_assert(strstr(err, "resolved path is longer than") != NULL, "%s", err);
    cr_assert(strstr(err, ":2:") != NULL, "names the line: %s", err);
    remove_temp(path);
}

/* Issue 15: the close grace may not outlast the late window. */
Test(config, close_grace_beyond_the_late_window_is_an_error)
{
    expect_file_error("[ingest]\nlate_window_hours = 24\n[billing]\nclose_grace_hours = 25\n", 4,
                      "[billing] close_grace_hours: 25 is more than ingest.late_window_hours (24)");
    tally__config_t *cfg = NULL;
    char err[512] = "";
    setenv("TALLY_INGEST_LATE_WINDOW_HOURS", "12", 1);
    cr_assert_eq(tally__config_load(NULL, &cfg, err, sizeof err), 0, "%s", err);
    unsetenv("TALLY_INGEST_LATE_WINDOW_HOURS");
    cr_expect_eq(cfg->billing.close_grace_hours, 12, "unset: cut to the late window");
    tally__config_destroy(cfg);
    cr_assert_eq(tally__config_load(NULL, &cfg, err, sizeof err), 0, "%s", err);
    cr_expect_eq(cfg->billing.close_grace_hours, 48, "the default");
    tally__config_destroy(cfg);
}
