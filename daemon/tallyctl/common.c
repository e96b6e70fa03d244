/* common.c — configuration, store, secrets, HTTP target and JSON output shared by tallyctl's
 * commands. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "tally/tally.h"

int
ctl_config_load(const ctl_args_t *a, tally__config_t **cfg)
{
    const char *path = ctl_opt_str(a, "config");
    /* the installed file when there is one, as tallyd under systemd reads it */
    if (path == NULL && access(TALLYCTL_DEFAULT_CONFIG, F_OK) == 0)
        path = TALLYCTL_DEFAULT_CONFIG;
    char err[1024] = "";
    int rc = tally__config_load(path, cfg, err, sizeof err);
    if (rc != 0)
        return ctl_fail(a, "%s", err[0] ? err : tally_strerror(rc));
    return 0;
}

int
ctl_store_open(const ctl_args_t *a, int readonly, tally__config_t **cfg, tally__store_t **store)
{
    if (ctl_config_load(a, cfg) != 0)
        return CTL_EXIT_FAIL;
    int rc =
        tally__store_open((*cfg)->storage.dir, (*cfg)->storage.map_size_mb << 20, readonly, store);
    if (rc != 0) {
        ctl_fail(a, "cannot open the store in %s: %s", (*cfg)->storage.dir, tally_strerror(rc));
        tally__config_destroy(*cfg);
        *cfg = NULL;
        return CTL_EXIT_FAIL;
    }
    return 0;
}

/* 1 when s holds only printable ASCII without blanks: what fits an HTTP
 * header value and a tokens-file field, and cannot smuggle a header in */
static int
secret_chars_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return 0;
    return 1;
}

int
ctl_read_secret(const ctl_args_t *a, const char *what, const char *file, char *out)
{
    int status = CTL_EXIT_FAIL;
    char *line = NULL;
    size_t cap = 0;
    FILE *fp = fopen(file, "re");
    out[0] = '\0';
    if (fp == NULL)
        return ctl_fail(a, "%s %s: %s", what, file, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
        fprintf(stderr,
                "tallyctl %s: warning: %s %s may be read by group or others (chmod 600 %s)\n",
                a->cmd->name, what, file, file);
    ssize_t n;
    errno = 0;
    while ((n = getline(&line, &cap, fp)) >= 0) {
        char *p = line, *e = line + n;
        while (p < e && (*p == ' ' || *p == '\t'))
            p++;
        while (e > p && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (p == e || *p == '#')
            continue;
        *e = '\0';
        if ((size_t)(e - p) >= CTL_SECRET_MAX) {
            ctl_fail(a, "%s %s: the secret is longer than %d bytes", what, file,
                     CTL_SECRET_MAX - 1);
        } else if (!secret_chars_ok(p)) {
            ctl_fail(a, "%s %s: the secret holds a blank or control character", what, file);
        } else {
            memcpy(out, p, (size_t)(e - p) + 1);
            status = 0;
        }
        break;
    }
    if (status != 0 && n < 0) {
        if (errno == ENOMEM)
            ctl_fail(a, "%s %s: out of memory", what, file);
        else if (ferror(fp))
            ctl_fail(a, "%s %s: %s", what, file, strerror(errno));
        else
            ctl_fail(a, "%s %s: no secret in it (only blank lines and # comments)", what, file);
    }
    if (line) {
        sodium_memzero(line, cap);
        free(line);
    }
    fclose(fp);
    return status;
}

/* The token from --token-file, --token or TALLY_TOKEN, in that order; none
 * of them leaves t->token empty for the configuration to fill. */
static int
token_from_command_line(const ctl_args_t *a, ctl_target_t *t)
{
    const char *token = ctl_opt_str(a, "token"), *token_file = ctl_opt_str(a, "token-file");
    const char *env = getenv("TALLY_TOKEN");
    if (token && token_file)
        return ctl_usage_error(a, "give --token-file or --token, not both");
    if (token_file)
        return ctl_read_secret(a, "--token-file", token_file, t->token);
    if (token) {
        if (strlen(token) >= sizeof t->token || !secret_chars_ok(token))
            return ctl_usage_error(a,
                                   "--token: not a token (printable, no blanks, at most %zu "
                                   "bytes)",
                                   sizeof t->token - 1);
        snprintf(t->token, sizeof t->token, "%s", token);
    } else if (env && *env) {
        if (strlen(env) >= sizeof t->token || !secret_chars_ok(env))
            return ctl_fail(a, "TALLY_TOKEN: not a token (printable, no blanks, at most %zu bytes)",
                            sizeof t->token - 1);
        snprintf(t->token, sizeof t->token, "%s", env);
    }
    return 0;
}

/* http.listen as a URL a client can reach: a wildcard host means this host */
static int
url_from_config(const ctl_args_t *a, const tally__config_t *cfg, ctl_target_t *t)
{
    const char *host = cfg->http.host;
    if (cfg->http.port == 0)
        return ctl_fail(a,
                        "[http] listen of %s is %s: port 0 is picked by the kernel when tallyd "
                        "starts; give --url",
                        cfg->path ? cfg->path : "the built-in configuration", cfg->http.listen);
    if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "*") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    int ipv6 = strchr(host, ':') != NULL;
    snprintf(t->url, sizeof t->url, "http://%s%s%s:%u", ipv6 ? "[" : "", host, ipv6 ? "]" : "",
             (unsigned)cfg->http.port);
    return 0;
}

int
ctl_target_resolve(const ctl_args_t *a, int need_token, ctl_target_t *t)
{
    tally__config_t *cfg = NULL;
    int status = 0;
    const char *url = ctl_opt_str(a, "url");
    memset(t, 0, sizeof *t);
    if (url) {
        if (strlen(url) >= sizeof t->url)
            return ctl_usage_error(a, "--url is longer than %zu bytes", sizeof t->url - 1);
        snprintf(t->url, sizeof t->url, "%s", url);
    }
    if (need_token && (status = token_from_command_line(a, t)) != 0)
        goto out;
    /* only what is still missing comes from the configuration */
    if (!url || (need_token && !t->token[0])) {
        if ((status = ctl_config_load(a, &cfg)) != 0)
            goto out;
        if (!url && (status = url_from_config(a, cfg, t)) != 0)
            goto out;
        if (need_token && !t->token[0] && cfg->tallyctl.token_file[0] &&
            (status = ctl_read_secret(a, "[tallyctl] token_file", cfg->tallyctl.token_file,
                                      t->token)) != 0)
            goto out;
    }
    if (need_token && !t->token[0])
        status = ctl_usage_error(a,
                                 "no API token: give --token-file FILE, set TALLY_TOKEN, or set "
                                 "token_file in the [tallyctl] section of %s",
                                 cfg && cfg->path ? cfg->path : "the configuration (--config)");
out:
    tally__config_destroy(cfg);
    if (status != 0)
        ctl_target_fini(t);
    return status;
}

void
ctl_target_fini(ctl_target_t *t)
{
    sodium_memzero(t->token, sizeof t->token);
}

int
ctl_json_print(const ctl_args_t *a, json_t *j, size_t flags)
{
    if (j == NULL)
        return ctl_fail(a, "out of memory");
    char *text = json_dumps(j, flags | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (text == NULL)
        return ctl_fail(a, "out of memory");
    int ok = puts(text) >= 0;
    free(text);
    return ok ? 0 : ctl_fail(a, "cannot write the output: %s", strerror(errno));
}

json_t *
ctl_json_stringn(const char *s, size_t n)
{
    json_t *j = json_stringn(s, n);
    if (j != NULL)
        return j;
    /* not UTF-8: replace each byte that does not start a valid sequence */
    char *buf = malloc(n * 3 + 1);
    if (buf == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        json_t *probe = len && i + len <= n ? json_stringn(s + i, len) : NULL;
        if (probe) {
            memcpy(buf + o, s + i, len);
            o += len;
            i += len;
            json_decref(probe);
        } else {
            buf[o++] = (char)0xef; /* U+FFFD in UTF-8 */
            buf[o++] = (char)0xbf;
            buf[o++] = (char)0xbd;
            i++;
        }
    }
    j = json_stringn(buf, o);
    free(buf);
    return j;
}

json_t *
ctl_json_number(double v)
{
    if (!isfinite(v))
        return json_null(); /* JSON has no NaN or infinity */
    if (fabs(v) < 9007199254740992.0 && v == floor(v))
        return json_integer((json_int_t)v);
    return json_real(v);
}

int
ctl_stderr_is_tty(void)
{
    return isatty(STDERR_FILENO);
}
