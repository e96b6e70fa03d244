/* netutil.c — raw-socket HTTP/1.1 client helpers for e2e tests (see netutil.h). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "netutil.h"

int64_t
nu_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void
nu_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int
nu_connect(nu_conn_t *c, uint16_t port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int rc;
    while ((rc = connect(fd, (struct sockaddr *)&sa, sizeof sa)) != 0 && errno == EINTR)
        ;
    if (rc != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->fd = fd;
    return 0;
}

void
nu_close(nu_conn_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

void
nu_abort(nu_conn_t *c)
{
    if (c->fd >= 0) {
        struct linger lg = {1, 0};
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    nu_close(c);
}

int
nu_send(nu_conn_t *c, const void *data, size_t len)
{
    const char *p = data;
    if (c->fd < 0)
        return -EBADF;
    for (size_t off = 0; off < len;) {
        ssize_t w = send(c->fd, p + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    return 0;
}

int
nu_send_str(nu_conn_t *c, const char *s)
{
    return nu_send(c, s, strlen(s));
}

/* Make room for at least `more` bytes after c->len. */
static int
reserve(nu_conn_t *c, size_t more)
{
    if (c->len + more + 1 <= c->cap)
        return 0;
    size_t ncap = c->cap ? c->cap : 16384;
    while (ncap < c->len + more + 1)
        ncap *= 2;
    char *nb = realloc(c->buf, ncap);
    if (!nb)
        return -ENOMEM;
    c->buf = nb;
    c->cap = ncap;
    return 0;
}

/* Read what is there within wait_ms into the buffer: bytes read, 0 on EOF, -errno. */
static ssize_t
fill(nu_conn_t *c, int wait_ms)
{
    if (c->fd < 0)
        return -EBADF;
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    int pr;
    while ((pr = poll(&pfd, 1, wait_ms < 0 ? 0 : wait_ms)) < 0 && errno == EINTR)
        ;
    if (pr < 0)
        return -errno;
    if (pr == 0)
        return -ETIMEDOUT;
    if (reserve(c, 65536) != 0)
        return -ENOMEM;
    ssize_t r;
    while ((r = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, MSG_DONTWAIT)) < 0 &&
           errno == EINTR)
        ;
    if (r < 0)
        return errno == EAGAIN ? -ETIMEDOUT : -errno;
    c->len += (size_t)r;
    c->buf[c->len] = '\0';
    return r;
}

static const char *
find_crlfcrlf(const char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    return NULL;
}

static int
header_in(const char *headers, const char *name, char *buf, size_t cap)
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
nu_resp_header(const nu_resp_t *r, const char *name, char *buf, size_t cap)
{
    return r->headers ? header_in(r->headers, name, buf, cap) : 0;
}

void
nu_resp_free(nu_resp_t *r)
{
    free(r->headers);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

int
nu_read_response(nu_conn_t *c, int head, int timeout_ms, nu_resp_t *out)
{
    memset(out, 0, sizeof *out);
    int64_t deadline = nu_mono_ms() + timeout_ms;
    const char *hend;
    while (!(hend = c->buf ? find_crlfcrlf(c->buf, c->len) : NULL)) {
        ssize_t r = fill(c, (int)(deadline - nu_mono_ms()));
        if (r == 0)
            return -EPIPE;
        if (r < 0)
            return (int)r;
    }
    if (c->len < 12 || strncmp(c->buf, "HTTP/1.", 7) != 0 || c->buf[8] != ' ')
        return -EPROTO;
    size_t hlen = (size_t)(hend - c->buf) + 4;
    out->minor = c->buf[7] - '0';
    out->status = atoi(c->buf + 9);
    const char *eol = strstr(c->buf, "\r\n");
    out->headers = strndup(eol + 2, (size_t)(hend + 2 - (eol + 2)));
    if (!out->headers)
        return -ENOMEM;
    char cl[32];
    size_t blen = 0;
    if (!head && header_in(out->headers, "Content-Length", cl, sizeof cl))
        blen = (size_t)strtoull(cl, NULL, 10);
    while (c->len < hlen + blen) {
        ssize_t r = fill(c, (int)(deadline - nu_mono_ms()));
        if (r <= 0) {
            nu_resp_free(out);
            return r == 0 ? -EPIPE : (int)r;
        }
    }
    out->body = malloc(blen + 1);
    if (!out->body) {
        nu_resp_free(out);
        return -ENOMEM;
    }
    memcpy(out->body, c->buf + hlen, blen);
    out->body[blen] = '\0';
    out->body_len = blen;
    if (blen)
        out->json = json_loadb(out->body, blen, 0, NULL);
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    c->buf[c->len] = '\0';
    return 0;
}

int
nu_wait_closed(nu_conn_t *c, int timeout_ms, size_t *extra)
{
    int64_t deadline = nu_mono_ms() + timeout_ms;
    size_t got = 0;
    int rc;
    for (;;) {
        int left = (int)(deadline - nu_mono_ms());
        ssize_t r = fill(c, left < 0 ? 0 : left);
        if (r == 0 || r == -ECONNRESET || r == -EPIPE) {
            rc = 1;
            break;
        }
        if (r == -ETIMEDOUT) {
            if (left <= 0) {
                rc = 0;
                break;
            }
            continue;
        }
        if (r < 0) {
            rc = (int)r;
            break;
        }
        got += (size_t)r;
    }
    if (extra)
        *extra = got;
    return rc;
}

int
nu_is_closed(nu_conn_t *c)
{
    return nu_wait_closed(c, 0, NULL) == 1;
}

char *
nu_request(const char *method, const char *path, const char *token, const char *extra,
           const char *body)
{
    char *req = NULL;
    int n;
    if (body)
        n = asprintf(&req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     method, path, token ? "Authorization: APIToken " : "", token ? token : "",
                     token ? "\r\n" : "", extra ? extra : "", strlen(body), body);
    else
        n = asprintf(&req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s%s%s\r\n", method, path,
                     token ? "Authorization: APIToken " : "", token ? token : "",
                     token ? "\r\n" : "", extra ? extra : "");
    return n < 0 ? NULL : req;
}

int
nu_roundtrip(uint16_t port, const char *request, int head, int timeout_ms, nu_resp_t *out)
{
    nu_conn_t c;
    nu_resp_t r;
    int rc = nu_connect(&c, port);
    if (rc != 0)
        return rc;
    if ((rc = nu_send_str(&c, request)) == 0)
        rc = nu_read_response(&c, head, timeout_ms, &r);
    nu_close(&c);
    if (rc != 0)
        return rc;
    int status = r.status;
    if (out)
        *out = r;
    else
        nu_resp_free(&r);
    return status;
}

int
nu_healthz(uint16_t port, int timeout_ms)
{
    return nu_roundtrip(port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                        0, timeout_ms, NULL);
}

uint64_t
nu_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (uint64_t)rl.rlim_cur;
}

char *
nu_slurp(const char *path, size_t *len_out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 65536, len = 0, r;
    char *buf = malloc(cap);
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
        *len_out = buf ? len : 0;
    return buf;
}

int
nu_file_has_sanitizer_report(const char *path, const char **what)
{
    static const char *const markers[] = {"ERROR: AddressSanitizer", "runtime error:",
                                          "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer",
                                          "UndefinedBehaviorSanitizer", NULL};
    char *text = nu_slurp(path, NULL);
    if (!text)
        return 0;
    int found = 0;
    for (int i = 0; markers[i]; i++)
        if (strstr(text, markers[i])) {
            if (what)
                *what = markers[i];
            found = 1;
            break;
        }
    free(text);
    return found;
}
