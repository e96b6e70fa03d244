/* harness.c — e2e test harness: tallyd per test, emits, HTTP/1.1 client, dump (harness.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "harness.h"
#include "testdir.h"
#include "openapi_validate.h"

extern char **environ;

#define READY_TIMEOUT_MS 60000
#define STOP_TIMEOUT_MS 60000
#define IO_TIMEOUT_S 30

/* ---- small utilities -------------------------------------------------------------- */

int64_t
harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

char *
harness_rfc3339(int64_t unix_s, char *buf, size_t cap)
{
    time_t t = (time_t)unix_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* The whole of a file, NUL-terminated (NULL when unreadable). */
static char *
slurp(const char *path, size_t *len_out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len - 1, fp)) > 0) {
        len += r;
        if (len + 1 == cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(fp);
    if (buf)
        buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

/* Directories: $TALLY_SOURCE_DIR, else this file's checkout; $TALLY_BIN_DIR, else SRC/build/bin. */
static void
find_dirs(harness_t *h)
{
    const char *src = getenv("TALLY_SOURCE_DIR");
    if (src && *src) {
        snprintf(h->src_dir, sizeof h->src_dir, "%s", src);
    } else {
        snprintf(h->src_dir, sizeof h->src_dir, "%s", __FILE__);
        char *p = strstr(h->src_dir, "/tests/support/");
        if (p)
            *p = '\0';
        else
            snprintf(h->src_dir, sizeof h->src_dir, ".");
    }
    const char *bin = getenv("TALLY_BIN_DIR");
    if (bin && *bin)
        snprintf(h->bin_dir, sizeof h->bin_dir, "%s", bin);
    else
        snprintf(h->bin_dir, sizeof h->bin_dir, "%s/build/bin", h->src_dir);
    snprintf(h->conf, sizeof h->conf, "%s/config/tallyd.conf", h->src_dir);
}

/* Append "KEY=VALUE" to env, replacing an entry of the same key. */
static void
env_set(char ***env, size_t *n, const char *kv)
{
    const char *eq = strchr(kv, '=');
    size_t kl = eq ? (size_t)(eq - kv) : strlen(kv);
    for (size_t i = 0; i < *n; i++)
        if (strncmp((*env)[i], kv, kl) == 0 && (*env)[i][kl] == '=') {
            free((*env)[i]);
            (*env)[i] = strdup(kv);
            return;
        }
    char **ne = realloc(*env, (*n + 2) * sizeof *ne);
    cr_assert_not_null(ne, "out of memory");
    ne[(*n)++] = strdup(kv);
    ne[*n] = NULL;
    *env = ne;
}

static void env_setf(char ***env, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
env_setf(char ***env, size_t *n, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    env_set(env, n, buf);
}

/*
 * The daemon's environment: ours without any TALLY_* overrides a developer
 * may have exported (only the two path variables stay), plus the harness'
 * own and the caller's.
 */
static void
build_env(harness_t *h, const char *const *extra)
{
    char **env = calloc(1, sizeof *env);
    size_t n = 0;
    cr_assert_not_null(env);
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, "TALLY_", 6) == 0 && strncmp(*e, "TALLY_SOURCE_DIR=", 17) != 0 &&
            strncmp(*e, "TALLY_BIN_DIR=", 14) != 0)
            continue;
        env_set(&env, &n, *e);
    }
    env_setf(&env, &n, "TALLY_STORAGE_DIR=%s", h->store_dir);
    env_setf(&env, &n, "TALLY_INGEST_LISTEN=%s", h->ingest);
    env_setf(&env, &n, "TALLY_INGEST_ACKS=ipc://%s/ingest.acks", h->dir);
    env_setf(&env, &n, "TALLY_QUOTA_ALERTS=ipc://%s/alerts", h->dir);
    env_set(&env, &n, "TALLY_HTTP_LISTEN=127.0.0.1:0");
    env_setf(&env, &n, "TALLY_AUTH_TOKENS_FILE=%s/config/tokens", h->src_dir);
    env_setf(&env, &n, "TALLY_BILLING_METRICS_FILE=%s/config/metrics.ini", h->src_dir);
    env_set(&env, &n, "TALLY_FLUSH_INTERVAL_MS=20");
    for (const char *const *e = extra; e && *e; e++)
        env_set(&env, &n, *e);
    h->env = env;
}

static void
free_env(char **env)
{
    for (char **e = env; e && *e; e++)
        free(*e);
    free(env);
}

void
harness_print_log(const harness_t *h, size_t max_bytes)
{
    size_t len;
    char *log = slurp(h->log_path, &len);
    if (!log) {
        fprintf(stderr, "harness: no log at %s\n", h->log_path);
        return;
    }
    const char *start = len > max_bytes ? log + len - max_bytes : log;
    fprintf(stderr, "harness: ---- %s%s ----\n%s---- end of tallyd log ----\n", h->log_path,
            start != log ? " (tail)" : "", start);
    free(log);
}

/* ---- start and stop ---------------------------------------------------------------- */

harness_t *
harness_start(const char *const *extra_env)
{
    harness_t *h = calloc(1, sizeof *h);
    cr_assert_not_null(h);
    find_dirs(h);
    /* Under /tmp, not $TMPDIR: ipc:// paths must fit in a sockaddr_un (108 bytes). */
    snprintf(h->dir, sizeof h->dir, "/tmp/tally-e2e.XXXXXX");
    cr_assert_not_null(mkdtemp(h->dir), "mkdtemp: %s", strerror(errno));
    snprintf(h->store_dir, sizeof h->store_dir, "%s/store", h->dir);
    snprintf(h->ingest, sizeof h->ingest, "ipc://%s/ingest", h->dir);
    snprintf(h->log_path, sizeof h->log_path, "%s/tallyd.log", h->dir);
    build_env(h, extra_env);

    char tallyd[1100];
    snprintf(tallyd, sizeof tallyd, "%s/tallyd", h->bin_dir);
    cr_assert(access(tallyd, X_OK) == 0, "no tallyd at %s (build first, or set TALLY_BIN_DIR)",
              tallyd);
    int logfd = open(h->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    cr_assert(logfd >= 0, "cannot create %s: %s", h->log_path, strerror(errno));
    pid_t parent = getpid();
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The daemon dies with the test process, whatever happens to the test. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            close(nul);
        }
        dup2(logfd, STDOUT_FILENO);
        dup2(logfd, STDERR_FILENO);
        char *argv[] = {tallyd, "-c", h->conf, NULL};
        execve(tallyd, argv, h->env);
        dprintf(STDERR_FILENO, "harness: cannot exec %s: %s\n", tallyd, strerror(errno));
        _exit(127);
    }
    close(logfd);
    h->pid = pid;

    for (int waited = 0;; waited += 20) {
        char *log = slurp(h->log_path, NULL);
        const char *ready = log ? strstr(log, "msg=ready") : NULL;
        if (ready) {
            const char *eol = strchr(ready, '\n');
            const char *http = strstr(ready, " http=");
            if (eol && http && http < eol) {
                const char *colon = NULL;
                for (const char *p = http + 6; p < eol && *p != ' '; p++)
                    if (*p == ':')
                        colon = p;
                if (colon)
                    h->port = (uint16_t)atoi(colon + 1);
            }
            free(log);
            cr_assert(h->port != 0, "cannot find http=HOST:PORT in the ready line");
            break;
        }
        free(log);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            h->pid = 0;
            harness_print_log(h, 4096);
            cr_assert_fail("tallyd exited (status %d) before logging ready",
                           WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
        }
        if (waited >= READY_TIMEOUT_MS) {
            harness_print_log(h, 4096);
            cr_assert_fail("tallyd not ready within %d ms", READY_TIMEOUT_MS);
        }
        sleep_ms(20);
    }
    return h;
}

void
harness_stop(harness_t *h)
{
    if (!h)
        return;
    if (h->client) {
        tally_client_destroy(h->client);
        h->client = NULL;
    }
    int status = 0, exited = 0, code = -1;
    if (h->pid > 0) {
        kill(h->pid, SIGTERM);
        for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += 10) {
            if (waitpid(h->pid, &status, WNOHANG) == h->pid) {
                exited = 1;
                break;
            }
            sleep_ms(10);
        }
        if (!exited) {
            kill(h->pid, SIGKILL);
            waitpid(h->pid, &status, 0);
        }
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        h->pid = 0;
    } else {
        exited = 1;
        code = 0; /* never started or already reaped (and reported) */
    }
    if (!exited || code != 0)
        harness_print_log(h, 8192);
    const char *keep = getenv("TALLY_E2E_KEEP");
    if (keep && strcmp(keep, "1") == 0)
        fprintf(stderr, "harness: kept %s\n", h->dir);
    else
        testdir_remove(h->dir);
    free_env(h->env);
    free(h);
    cr_assert(exited, "tallyd did not exit within %d ms of SIGTERM", STOP_TIMEOUT_MS);
    cr_assert_eq(code, 0, "tallyd exited with status %d after SIGTERM", code);
}

/* ---- emitting ----------------------------------------------------------------------- */

tally_client_t *
harness_client_create(harness_t *h)
{
    char producer[TALLY_MAX_PRODUCER_LEN + 1];
    snprintf(producer, sizeof producer, "harness-%d-%u", (int)getpid(), h->nclients++);
    tally_client_t *c = NULL;
    tally_client_options_t o = {.credential = HARNESS_EMITTER_KEY};
    int rc = tally_client_create(h->ingest, producer, &o, &c);
    cr_assert_eq(rc, 0, "tally_client_create(%s): %s", h->ingest, tally_strerror(rc));
    return c;
}

static void
emit(harness_t *h, const char *ns, const char *metric, int is_float, int64_t iv, double fv,
     int64_t ts_ms, const char *labels)
{
    tally_label_t lab[TALLY_MAX_LABELS];
    char buf[1024];
    size_t nl = 0;
    if (!h->client)
        h->client = harness_client_create(h);
    if (labels && *labels) {
        snprintf(buf, sizeof buf, "%s", labels);
        char *save = NULL;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            char *eq = strchr(tok, '=');
            cr_assert(eq && nl < TALLY_MAX_LABELS, "bad labels '%s' (k=v,k=v)", labels);
            *eq = '\0';
            lab[nl].key = tok;
            lab[nl].value = eq + 1;
            nl++;
        }
    }
    tally_event_t ev = {.ns = ns,
                        .metric = metric,
                        .is_float = is_float,
                        .ivalue = iv,
                        .fvalue = fv,
                        .ts_ms = ts_ms,
                        .labels = nl ? lab : NULL,
                        .nlabels = nl};
    int rc = tally_emit(h->client, &ev);
    cr_assert_eq(rc, 0, "tally_emit(%s %s): %s", ns, metric, tally_strerror(rc));
}

void
harness_emit(harness_t *h, const char *ns, const char *metric, int64_t value, int64_t ts_ms,
             const char *labels)
{
    emit(h, ns, metric, 0, value, 0.0, ts_ms, labels);
}

void
harness_emit_float(harness_t *h, const char *ns, const char *metric, double value, int64_t ts_ms,
                   const char *labels)
{
    emit(h, ns, metric, 1, 0, value, ts_ms, labels);
}

void
harness_flush(harness_t *h)
{
    if (!h->client)
        return;
    int rc = tally_flush(h->client, 30000);
    if (rc != 0)
        harness_print_log(h, 4096);
    cr_assert_eq(rc, 0, "tally_flush: %s (events not acked within 30 s)", tally_strerror(rc));
}

/* ---- HTTP ------------------------------------------------------------------------------ */

static int
connect_local(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0, "socket: %s", strerror(errno));
    struct timeval tv = {IO_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    int err = errno;
    if (rc != 0)
        close(fd);
    cr_assert_eq(rc, 0, "connect 127.0.0.1:%u: %s", port, strerror(err));
    return fd;
}

static const char *
find_header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    return NULL;
}

/* Find header `name` in a "\r\n"-separated block; copy its value. */
static int
header_value(const char *headers, const char *name, char *buf, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = headers; p && *p;) {
        const char *eol = strstr(p, "\r\n");
        size_t ll = eol ? (size_t)(eol - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (v < p + ll && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(p + ll - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (cap) {
                size_t n = vl < cap - 1 ? vl : cap - 1;
                memcpy(buf, v, n);
                buf[n] = '\0';
            }
            return 1;
        }
        p = eol ? eol + 2 : NULL;
    }
    return 0;
}

int
harness_resp_header(const harness_resp_t *r, const char *name, char *buf, size_t cap)
{
    return r->headers ? header_value(r->headers, name, buf, cap) : 0;
}

void
harness_http_raw(harness_t *h, const char *request, size_t len, harness_resp_t *out)
{
    memset(out, 0, sizeof *out);
    int fd = connect_local(h->port);
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, request + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break; /* the server may answer (and close) before reading it all */
        off += (size_t)w;
    }
    size_t cap = 16384, got = 0, need = (size_t)-1;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    const char *hend = NULL;
    for (;;) {
        if (got + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            cr_assert_not_null(nb);
            buf = nb;
            cap *= 2;
        }
        ssize_t r = recv(fd, buf + got, cap - got - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int err = errno;
            close(fd);
            free(buf);
            cr_assert_fail("reading the response: %s", strerror(err));
        }
        if (r == 0)
            break;
        got += (size_t)r;
        buf[got] = '\0';
        if (!hend && (hend = find_header_end(buf, got)) != NULL) {
            char cl[32];
            char *hb = strndup(buf, (size_t)(hend - buf));
            if (header_value(hb, "Content-Length", cl, sizeof cl))
                need = (size_t)(hend + 4 - buf) + (size_t)strtoull(cl, NULL, 10);
            free(hb);
        }
        if (hend && got >= need)
            break;
    }
    close(fd);
    buf[got] = '\0';
    hend = find_header_end(buf, got);
    if (strncmp(buf, "HTTP/1.", 7) != 0 || !hend) {
        fprintf(stderr, "harness: not an HTTP response (%zu bytes): %.200s\n", got, buf);
        free(buf);
        cr_assert_fail("not an HTTP response");
    }
    out->status = atoi(buf + 9);
    const char *first_eol = strstr(buf, "\r\n");
    out->headers = strndup(first_eol + 2, (size_t)(hend + 2 - (first_eol + 2)));
    size_t body_off = (size_t)(hend + 4 - buf);
    out->body_len = (need != (size_t)-1 && need <= got ? need : got) - body_off;
    out->body = malloc(out->body_len + 1);
    cr_assert_not_null(out->body);
    memcpy(out->body, buf + body_off, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
    if (out->body_len)
        out->json = json_loadb(out->body, out->body_len, 0, NULL);
}

void
harness_http(harness_t *h, const char *method, const char *path, const char *token,
             const char *body, harness_resp_t *out)
{
    char *req = NULL;
    size_t blen = body ? strlen(body) : 0;
    int n;
    if (body)
        n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, h->port, token ? "Authorization: APIToken " : "",
                     token ? token : "", token ? "\r\n" : "", blen, body);
    else
        n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n%s%s%s\r\n",
                     method, path, h->port, token ? "Authorization: APIToken " : "",
                     token ? token : "", token ? "\r\n" : "");
    cr_assert(n > 0, "out of memory");
    harness_http_raw(h, req, (size_t)n, out);
    free(req);
}

void
harness_resp_free(harness_resp_t *r)
{
    free(r->headers);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

json_t *
harness_post_json(harness_t *h, const char *path, const char *token, const char *body, int *status)
{
    harness_resp_t r;
    harness_http(h, "POST", path, token, body ? body : "{}", &r);
    json_t *j = json_incref(r.json);
    if (status)
        *status = r.status;
    harness_resp_free(&r);
    return j;
}

/* ---- tallyctl ---------------------------------------------------------------------------- */

char *
harness_tallyctl(harness_t *h, const char *const *argv, int *exit_status)
{
    char exe[1100];
    snprintf(exe, sizeof exe, "%s/tallyctl", h->bin_dir);
    size_t argc = 0;
    while (argv[argc])
        argc++;
    char **av = calloc(argc + 2, sizeof *av);
    cr_assert_not_null(av);
    av[0] = exe;
    for (size_t i = 0; i < argc; i++)
        av[i + 1] = (char *)argv[i];
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], STDOUT_FILENO);
        execve(exe, av, h->env);
        dprintf(STDERR_FILENO, "harness: cannot exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    free(av);
    close(fds[1]);
    size_t cap = 65536, len = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    for (;;) {
        if (len + 1 >= cap) {
            char *nb = realloc(out, cap * 2);
            cr_assert_not_null(nb);
            out = nb;
            cap *= 2;
        }
        ssize_t r = read(fds[0], out + len, cap - len - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (exit_status)
        *exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return out;
}

json_t *
harness_dump_json(harness_t *h, const char *const *extra)
{
    const char *argv[32] = {"dump", "-c", h->conf, "--json"};
    size_t n = 4;
    for (const char *const *e = extra; e && *e; e++) {
        cr_assert(n + 1 < sizeof argv / sizeof argv[0], "too many dump arguments");
        argv[n++] = *e;
    }
    argv[n] = NULL;
    int status;
    char *out = harness_tallyctl(h, argv, &status);
    cr_assert_eq(status, 0, "tallyctl dump exited with %d", status);
    json_error_t e;
    json_t *j = json_loads(out, 0, &e);
    if (!json_is_array(j)) {
        fprintf(stderr, "harness: tallyctl dump printed: %.500s\n", out);
        json_decref(j);
        j = NULL;
    }
    free(out);
    cr_assert(json_is_array(j), "tallyctl dump --json: not a JSON array (%s)", e.text);
    return j;
}

/* ---- calls checked against the OpenAPI document ------------------------------ */

json_t *
harness_openapi(harness_t *h)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/daemon/openapi.json", h->src_dir);
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    cr_assert_not_null(doc, "cannot load %s: %s", path, e.text);
    return doc;
}

json_t *
harness_call(harness_t *h, json_t *doc, const char *method, const char *path, const char *token,
             const char *body, int status, const char *schema)
{
    harness_resp_t r;
    harness_http(h, method, path, token, body, &r);
    cr_assert_eq(r.status, status, "%s %s: want %d, got %d %s", method, path, status, r.status,
                 r.body);
    cr_assert_not_null(r.json, "%s %s: not JSON: %s", method, path, r.body);
    char err[512];
    cr_assert_eq(openapi_validate_strict(doc, schema, r.json, err, sizeof err), 0,
                 "%s %s does not match %s: %s\n%s", method, path, schema, err, r.body);
    json_t *j = json_incref(r.json);
    harness_resp_free(&r);
    return j;
}

const char *
harness_call_err(harness_t *h, json_t *doc, const char *method, const char *path, const char *token,
                 const char *body, int status, const char *code)
{
    static char msg[1024];
    json_t *j = harness_call(h, doc, method, path, token, body, status, "tallyError");
    cr_expect_str_eq(json_string_value(json_object_get(j, "code")), code, "%s %s", method, path);
    snprintf(msg, sizeof msg, "%s", json_string_value(json_object_get(j, "message")));
    json_decref(j);
    return msg;
}
