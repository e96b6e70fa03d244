/* http.c — the HTTP/1.1 server: connections, limits, timeouts, responses and deferred answers;
 * requests are parsed by httpreq.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "http.h"
#include "httpmsg.h"
#include "httpreq.h"
#include "log.h"
#include "tally/tally.h"

/* Stop reading a connection whose unsent responses exceed this: a client
 * that pipelines without reading must not make us buffer without bound. */
#define WRITE_QUEUE_MAX (1u << 20)

/* While an answer is pending the socket is still read, only to notice a
 * peer that goes away; what it sends meanwhile is held unparsed up to this,
 * then reading stops until the answer is out. */
#define HELD_MAX (64u * 1024)

/* One socket read at most (on_alloc's slab). */
#define READ_MAX 65536

typedef struct conn conn_t;
typedef struct queued queued_t;

/* What an accepted connection is: an ordinary one, one of the reserve kept
 * for /healthz and /metrics (TALLY_HTTP_RESERVED_CONNECTIONS), or one being
 * refused (its 503/429 is on the way, then it closes). */
enum { CONN_NORMAL, CONN_RESERVED, CONN_REFUSED };

/* Open connections of one client address (addr_key()); n == 0: a free slot. */
typedef struct addr_slot {
    uint8_t key[16];
    uint32_t n;
} addr_slot_t;

struct tally_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    tally_http_limits_t lim;
    tally_http_dispatch_fn dispatch;
    void *ctx;
    int log_requests;
    uint16_t port;
    uint32_t nconns;
    uint64_t pending_ms; /* the pending limit, resolved */
    tally_http_observe_fn observe;
    uint32_t npending;
    uint64_t pending_timeouts, pending_dropped;
    int closing;
    int listener_closed;
    conn_t *conns; /* doubly linked, for shutdown */
    uint32_t nnormal, nreserved; /* open connections by kind (CONN_REFUSED ones in nconns only) */
    uint64_t refused_max, refused_per_address, request_timeouts, idle_timeouts, evicted;
    tally__ratelimit_t rl_refused;
    /* open connections per client address: linear probing, power-of-two
     * size, at most half full; the hash is seeded per server so that
     * chosen addresses cannot make long probe runs */
    addr_slot_t *addrs;
    uint32_t addr_mask, naddrs;
    uint64_t addr_seed;
};

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    tally__httpreq_t req; /* the request stream being parsed */
    tally_http_server_t *s;
    conn_t *prev, *next;
    int closing;
    int in_request; /* bytes of a request have arrived */
    int reading;
    int close_after; /* close once the queued responses are written */
    int handles_open;
    int refused;      /* a refusal is queued: the stream is done */
    int owe_continue; /* "100 Continue" is due once the answers before it are out */
    int kind;         /* CONN_* */
    int fresh;        /* no request answered yet: the request timeout runs from the accept */
    int addr_counted; /* counted in s->addrs under addr */
    uint8_t addr[16];
    /* the deferred answer awaited (borrowed from its owner); requests parsed
     * behind it, in order; bytes read behind it, unparsed */
    tally_http_pending_t *pending;
    queued_t *qhead, *qtail;
    tally__sbuf_t held;
    char remote[64];
};

/* What answering a request needs to know of it once dispatch has returned. */
typedef struct ask {
    uint64_t t0;      /* the dispatch began (uv_hrtime) */
    const char *path; /* for the log; NULL for a malformed target */
    unsigned method;  /* http-parser's, for the log */
    int head;         /* answer without the body */
    int keep_alive;   /* what the answer says */
    int dispatched;   /* the dispatch ran: report to the observer */
    int quiet;        /* a refusal: not logged as a request */
} ask_t;

/* One dispatch in progress; req->srv points at it. */
typedef struct dispatching {
    conn_t *c;
    tally_http_res_t *res;
    const ask_t *ask;
    tally_http_pending_t *p; /* deferred and not completed yet */
    int deferred;            /* tally_http_defer() was called */
} dispatching_t;

/* The handle belongs to whoever called tally_http_defer(); the connection
 * only borrows it (c->pending) while it waits, and lets go by clearing c. */
struct tally_http_pending {
    conn_t *c;         /* the connection waiting; NULL once it closed or got the 503 */
    dispatching_t *d;  /* set while the deferring dispatch still runs */
    const char *route; /* as the dispatch set it */
    ask_t ask;         /* ask.path points at path */
    char path[];
};

/* A request parsed while an earlier answer was pending: a deep copy, since
 * the parser's buffers are reused for the next request. */
struct queued {
    queued_t *next;
    tally_http_req_t req;
    tally_http_res_t res; /* preset for a malformed target or a refusal */
    unsigned method;
    int keep_alive;
    int quiet;
    char data[]; /* the request's strings */
};

typedef struct wreq {
    uv_write_t req;
    conn_t *c;
    char *data;
} wreq_t;

static const char *
status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

/* ---- connections per client address ------------------------------------------ */

/* The address a per-address limit counts under, as 16 bytes: an IPv4 client
 * as its IPv4-mapped IPv6 address, an IPv6 client by its /64 (one host
 * usually holds a whole /64, so counting single addresses would limit
 * nothing). Returns 0, or -1 for another family. */
static int
addr_key(const struct sockaddr_storage *ss, uint8_t key[16])
{
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return 0;
    }
    if (ss->ss_family != AF_INET6)
        return -1;
    const uint8_t *a = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    /* an IPv4 client of a dual-stack listener keeps its whole address */
    memcpy(key, a, memcmp(a, v4mapped, 12) == 0 ? 16 : 8);
    return 0;
}

static uint32_t
addr_hash(const tally_http_server_t *s, const uint8_t key[16])
{
    uint64_t w0, w1;
    memcpy(&w0, key, 8);
    memcpy(&w1, key + 8, 8);
    uint64_t h = (w0 ^ s->addr_seed) * 0x9e3779b97f4a7c15ull;
    h = (h ^ (h >> 29) ^ w1) * 0xbf58476d1ce4e5b9ull;
    return (uint32_t)(h ^ (h >> 32));
}

/* The slot holding key, or the free slot where it would go. */
static uint32_t
addr_find(const tally_http_server_t *s, const uint8_t key[16])
{
    uint32_t i = addr_hash(s, key) & s->addr_mask;
    while (s->addrs[i].n && memcmp(s->addrs[i].key, key, 16) != 0)
        i = (i + 1) & s->addr_mask;
    return i;
}

/* Open connections from key now. */
static uint32_t
addr_count(const tally_http_server_t *s, const uint8_t key[16])
{
    return s->addrs ? s->addrs[addr_find(s, key)].n : 0;
}

/* Count one more connection from key; 0, or -1 when memory ran out. */
static int
addr_inc(tally_http_server_t *s, const uint8_t key[16])
{
    if (!s->addrs || (s->naddrs + 1) * 2 > s->addr_mask + 1) {
        uint32_t ncap = s->addrs ? (s->addr_mask + 1) * 2 : 64;
        addr_slot_t *old = s->addrs, *na = calloc(ncap, sizeof *na);
        if (!na)
            return -1;
        uint32_t omask = s->addr_mask;
        s->addrs = na;
        s->addr_mask = ncap - 1;
        for (uint32_t i = 0; old && i <= omask; i++)
            if (old[i].n)
                s->addrs[addr_find(s, old[i].key)] = old[i];
        free(old);
    }
    addr_slot_t *e = &s->addrs[addr_find(s, key)];
    if (!e->n) {
        memcpy(e->key, key, 16);
        s->naddrs++;
    }
    e->n++;
    return 0;
}

/* Count one connection from key less; a slot that reaches 0 is removed by
 * shifting back the entries of its probe run (no tombstones). */
static void
addr_dec(tally_http_server_t *s, const uint8_t key[16])
{
    uint32_t i = addr_find(s, key);
    TALLY_ASSERT(s->addrs[i].n > 0); /* only counted connections are uncounted */
    if (--s->addrs[i].n)
        return;
    s->naddrs--;
    for (uint32_t j = i;;) {
        j = (j + 1) & s->addr_mask;
        if (!s->addrs[j].n)
            break;
        uint32_t home = addr_hash(s, s->addrs[j].key) & s->addr_mask;
        /* j stays when its home lies cyclically in (i, j] */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        s->addrs[i] = s->addrs[j];
        s->addrs[j].n = 0;
        i = j;
    }
}

/* ---- connections ------------------------------------------------------------ */

static void conn_close(conn_t *c);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);

static void
on_handle_closed(uv_handle_t *h)
{
    conn_t *c = h->data;
    if (--c->handles_open > 0)
        return;
    tally_http_server_t *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (s->listener_closed && s->nconns == 0) {
        free(s->addrs);
        free(s); /* the last connection of a closed server */
    }
    while (c->qhead) {
        queued_t *q = c->qhead;
        c->qhead = q->next;
        free(q->res.body);
        free(q);
    }
    tally__sbuf_free(&c->held);
    tally__httpreq_free(&c->req);
    free(c);
}

static void
conn_close(conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    /* its slot and its address's count are free from now: a connection
     * accepted before the close callback may take them */
    tally_http_server_t *s = c->s;
    if (c->kind == CONN_NORMAL)
        s->nnormal--;
    else if (c->kind == CONN_RESERVED)
        s->nreserved--;
    c->kind = CONN_REFUSED;
    if (c->addr_counted) {
        addr_dec(s, c->addr);
        c->addr_counted = 0;
    }
    if (c->pending) {
        /* the handle stays its owner's: tally_http_complete() will only free it */
        tally__log_debug("http deferred answer dropped, connection closed path=%s remote=%s",
                         c->pending->path, c->remote);
        c->pending->c = NULL;
        c->pending = NULL;
        c->s->npending--;
        c->s->pending_dropped++;
    }
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

static void
on_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    /* idle keep-alive connections just go; a request that did not arrive
     * whole in time (slowloris, or a connection that never sends one) is
     * cut off the same way: answering would only keep its socket around longer */
    if (c->in_request || c->fresh) {
        c->s->request_timeouts++;
        tally__log_debug("http request timeout remote=%s", c->remote);
    } else {
        c->s->idle_timeouts++;
    }
    conn_close(c);
}

static void
arm_timer(conn_t *c)
{
    /* while an answer is pending its own limit runs instead (on_pending_timeout) */
    if (c->closing || c->pending)
        return;
    /* a new connection's first request must arrive whole within the request
     * timeout of the accept: waiting for its first byte is no reason to hold
     * a slot for the (longer) idle timeout */
    uint32_t ms = c->in_request || c->fresh ? c->s->lim.request_timeout_ms
                                            : c->s->lim.idle_timeout_ms;
    uv_timer_start(&c->timer, on_timeout, ms, 0);
}

/* Read when we can take more: not closing or done, not too much unsent (stop
 * above WRITE_QUEUE_MAX, resume below half of it), not too much held. */
static void
update_reading(conn_t *c)
{
    if (c->closing)
        return;
    size_t queued = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
    int can = !c->close_after && !c->refused && c->held.len < HELD_MAX;
    if (c->reading && (!can || queued > WRITE_QUEUE_MAX)) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    } else if (!c->reading && can && queued < WRITE_QUEUE_MAX / 2) {
        if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
            c->reading = 1;
    }
}

static void
on_write(uv_write_t *req, int status)
{
    wreq_t *w = (wreq_t *)req;
    conn_t *c = w->c;
    free(w->data);
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after && uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        conn_close(c);
        return;
    }
    update_reading(c);
}

/* Append s (n bytes) at *p; returns the new end. */
static char *
cat(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Decimal digits of v at p; returns the new end. */
static char *
cat_u64(char *p, uint64_t v)
{
    char tmp[20], *e = tmp + sizeof tmp, *s = e;
    do {
        *--s = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return cat(p, s, (size_t)(e - s));
}

/* The status line and headers of res into hdr (at least 512 bytes); returns
 * their length. Pieces are copied, not printed: snprintf cost about 3,000
 * instructions per response, a tenth of a cached usage_details answer. */
static size_t
format_head(char *hdr, const tally_http_res_t *res, int keep_alive)
{
    int status = res->status >= 100 && res->status <= 999 ? res->status : 500;
    const char *text = status_text(status);
    const char *ctype = res->content_type ? res->content_type : "application/json";
    size_t ctlen = strlen(ctype);
    if (ctlen > 200)
        ctlen = 200; /* content types are our own literals; this only keeps hdr in bounds */
    char *p = cat(hdr, "HTTP/1.1 ", 9);
    p = cat_u64(p, (uint64_t)status);
    *p++ = ' ';
    p = cat(p, text, strlen(text));
    static const char server[] = "\r\nServer: tallyd\r\nContent-Type: ";
    p = cat(p, server, sizeof server - 1);
    p = cat(p, ctype, ctlen);
    static const char clen[] = "\r\nContent-Length: ";
    p = cat(p, clen, sizeof clen - 1);
    p = cat_u64(p, res->body_len);
    static const char ka[] = "\r\nConnection: keep-alive\r\n";
    static const char cl[] = "\r\nConnection: close\r\n";
    p = keep_alive ? cat(p, ka, sizeof ka - 1) : cat(p, cl, sizeof cl - 1);
    if (res->retry_after) {
        static const char ra[] = "Retry-After: ";
        p = cat(p, ra, sizeof ra - 1);
        p = cat_u64(p, res->retry_after);
        p = cat(p, "\r\n", 2);
    }
    p = cat(p, "\r\n", 2);
    return (size_t)(p - hdr);
}

static void
send_response(conn_t *c, const tally_http_res_t *res, int head, int keep_alive)
{
    char hdr[512];
    size_t n = format_head(hdr, res, keep_alive);
    size_t blen = head ? 0 : res->body_len;
    uv_buf_t bufs[2] = {uv_buf_init(hdr, (unsigned)n), uv_buf_init(res->body, (unsigned)blen)};
    if (!keep_alive)
        c->close_after = 1;
    /* Write at once when nothing is queued: almost every answer fits the
     * socket buffer, and then it costs one writev with no copy of the body,
     * no write request and no completion callback (whose POLLOUT bookkeeping
     * costs libuv an epoll_ctl per response). uv_try_write refuses with
     * UV_EAGAIN while earlier responses are queued, so order is kept. */
    size_t done = 0;
    int w = uv_try_write((uv_stream_t *)&c->tcp, bufs, blen ? 2 : 1);
    if (w >= 0) {
        done = (size_t)w;
    } else if (w != UV_EAGAIN) {
        conn_close(c); /* the peer is gone */
        return;
    }
    if (done == n + blen) {
        if (c->close_after)
            conn_close(c); /* as on_write would; c lives until the close callback */
        return;
    }
    /* the rest is copied, since res dies when the handler returns */
    size_t rest = n + blen - done;
    wreq_t *wr = malloc(sizeof *wr);
    char *data = malloc(rest);
    if (!wr || !data) {
        free(wr);
        free(data);
        conn_close(c);
        return;
    }
    if (done < n) {
        memcpy(data, hdr + done, n - done);
        if (blen)
            memcpy(data + (n - done), res->body, blen);
    } else {
        memcpy(data, res->body + (done - n), rest);
    }
    wr->c = c;
    wr->data = data;
    uv_buf_t b = uv_buf_init(data, (unsigned)rest);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(data);
        free(wr);
        conn_close(c);
        return;
    }
    update_reading(c);
}

/* Send res for the request a describes, and report it as every answer is:
 * the observer (dispatched requests) and the request log. One path for
 * synchronous, deferred and timed-out answers. */
static void
answer(conn_t *c, const ask_t *a, const tally_http_res_t *res)
{
    tally_http_server_t *s = c->s;
    if (a->dispatched && s->observe)
        s->observe(s->ctx, res->route, res->status, uv_hrtime() - a->t0);
    send_response(c, res, a->head, a->keep_alive);
    if (s->log_requests && !a->quiet)
        tally__log_info("request method=%s path=%s status=%d us=%llu remote=%s",
                        http_method_str((enum http_method)a->method), a->path ? a->path : "-",
                        res->status, (unsigned long long)((uv_hrtime() - a->t0) / 1000), c->remote);
}

/* Refuse the request in progress: answer and close the connection, since
 * the rest of the stream can no longer be trusted to be framed. */
static void
refuse_stream(conn_t *c, int status, const char *code, const char *msg)
{
    tally_http_res_t res = {0};
    tally_http_error(&res, status, code, "%s", msg);
    send_response(c, &res, 0, 0);
    free(res.body);
}

/* ---- deferred answers ----------------------------------------------------- */

static void drain(conn_t *c);

static void
on_pending_timeout(uv_timer_t *t)
{
    conn_t *c = t->data;
    tally_http_pending_t *p = c->pending;
    TALLY_ASSERT(p != NULL); /* the timer runs this callback only while an answer is pending */
    tally_http_server_t *s = c->s;
    /* let go of the handle first: its owner still completes it, which then only frees */
    p->c = NULL;
    c->pending = NULL;
    s->npending--;
    s->pending_timeouts++;
    tally__log_warn("http deferred answer timed out ms=%llu path=%s remote=%s",
                    (unsigned long long)s->pending_ms, p->path, c->remote);
    tally_http_res_t res = {.route = p->route, .retry_after = 1};
    tally_http_error(&res, 503, "EUNAVAILABLE",
                     "no answer within %llu ms (http.pending_timeout_ms); retry later",
                     (unsigned long long)s->pending_ms);
    answer(c, &p->ask, &res);
    free(res.body);
    drain(c);
}

/* Dispatch req (unless res is preset) and answer it, or leave the
 * connection waiting when the dispatch deferred. */
static void
serve(conn_t *c, tally_http_req_t *req, tally_http_res_t *res, unsigned method, int keep_alive,
      int quiet)
{
    tally_http_server_t *s = c->s;
    ask_t a = {.t0 = uv_hrtime(),
               .path = req->path,
               .method = method,
               .head = req->head,
               .keep_alive = keep_alive,
               .quiet = quiet};
    req->remote = c->remote;
    if (!res->status) {
        dispatching_t d = {.c = c, .res = res, .ask = &a};
        req->srv = &d;
        s->dispatch(s->ctx, req, res);
        req->srv = NULL;
        a.dispatched = 1;
        if (d.p) {
            tally_http_pending_t *p = d.p;
            p->d = NULL;
            p->route = res->route;
            if (c->closing) { /* the dispatch closed the server: nothing to wait for */
                p->c = NULL;
                s->pending_dropped++;
                return;
            }
            c->pending = p;
            s->npending++;
            uv_timer_start(&c->timer, on_pending_timeout, s->pending_ms, 0);
            return;
        }
    }
    answer(c, &a, res);
}

/* Copy n bytes of p (plus a NUL) to *w; returns the copy, NULL for a NULL p. */
static const char *
put(char **w, const char *p, size_t n)
{
    if (!p)
        return NULL;
    char *at = *w;
    memcpy(at, p, n);
    at[n] = '\0';
    *w += n + 1;
    return at;
}

/* Queue a request behind the pending answer. Takes res->body. */
static int
enqueue(conn_t *c, const tally_http_req_t *req, tally_http_res_t *res, unsigned method,
        int keep_alive, int quiet)
{
    size_t lp = req->path ? strlen(req->path) : 0, lq = req->query ? strlen(req->query) : 0,
           la = req->authorization ? strlen(req->authorization) : 0,
           lc = req->content_type ? strlen(req->content_type) : 0,
           lb = req->body ? req->body_len : 0;
    queued_t *q = calloc(1, sizeof *q + lp + lq + la + lc + lb + 5);
    if (!q)
        return -1;
    char *w = q->data;
    q->req.method = req->method;
    q->req.head = req->head;
    q->req.path = put(&w, req->path, lp);
    q->req.query = put(&w, req->query, lq);
    q->req.authorization = put(&w, req->authorization, la);
    q->req.content_type = put(&w, req->content_type, lc);
    q->req.body = put(&w, req->body, lb);
    q->req.body_len = lb;
    q->res = *res;
    res->body = NULL;
    q->method = method;
    q->keep_alive = keep_alive;
    q->quiet = quiet;
    if (c->qtail)
        c->qtail->next = q;
    else
        c->qhead = q;
    c->qtail = q;
    return 0;
}

static void
send_continue(conn_t *c)
{
    static char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(cont, sizeof cont - 1);
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

/* ---- the request stream's hooks ----------------------------------------- */

/* What a reserved connection may ask for (TALLY_HTTP_RESERVED_CONNECTIONS). */
static int
reserve_serves(const tally_http_req_t *req)
{
    return req->method == TALLY_HTTP_GET && req->path &&
           (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/metrics") == 0);
}

static void
hook_begin(void *owner)
{
    conn_t *c = owner;
    if (!c->in_request) {
        c->in_request = 1;
        if (!c->fresh) /* the first request's timer runs from the accept */
            arm_timer(c);
    }
}

static void
hook_expect_continue(void *owner)
{
    conn_t *c = owner;
    if (c->pending || c->qhead)
        c->owe_continue = 1; /* not before the answers that come first */
    else
        send_continue(c);
}

static int
hook_request(void *owner, tally_http_req_t *req, tally_http_res_t *res, int keep_alive)
{
    conn_t *c = owner;
    keep_alive = keep_alive && !c->s->closing;
    c->in_request = 0;
    c->fresh = 0;
    if (c->kind == CONN_RESERVED) {
        /* one request per reserved slot, and only a health check or a scrape */
        keep_alive = 0;
        if (!res->status && !reserve_serves(req)) {
            c->s->refused_max++;
            res->retry_after = 1;
            tally_http_error(res, 503, "EUNAVAILABLE",
                             "too many connections (http.max_connections); only GET /healthz "
                             "and /metrics are served until some close");
        }
    }
    c->owe_continue = 0; /* it was for this request, whose body is here */
    if (c->pending || c->qhead) {
        /* an earlier answer is pending: this request waits its turn */
        if (enqueue(c, req, res, c->req.parser.method, keep_alive, 0) != 0) {
            conn_close(c); /* answering out of order is not an option */
            return 0;
        }
        return keep_alive;
    }
    arm_timer(c);
    serve(c, req, res, c->req.parser.method, keep_alive, 0);
    return c->closing ? 0 : keep_alive;
}

static const tally__httpreq_hooks_t hooks = {hook_begin, hook_expect_continue, hook_request};

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    /* the loop is single-threaded; data is parsed (or held) before the next read */
    static char slab[READ_MAX];
    *buf = uv_buf_init(slab, sizeof slab);
}

/* Parse n bytes of the stream, answering (or queueing) what completes. */
static void
parse(conn_t *c, const char *data, size_t n)
{
    if (!c->in_request) {
        c->in_request = 1;
        if (!c->fresh) /* the first request's timer runs from the accept */
            arm_timer(c);
    }
    int rc = tally__httpreq_feed(&c->req, data, n);
    if (rc == TALLY__HTTPREQ_STOP || c->close_after || c->closing)
        return; /* the response to a Connection: close request is on its way */
    if (rc != TALLY__HTTPREQ_REFUSE)
        return;
    if (!c->pending && !c->qhead) {
        refuse_stream(c, c->req.error_status, c->req.error_code, c->req.error_msg);
        return;
    }
    /* the refusal goes out after the answers before it */
    tally_http_req_t none = {0};
    tally_http_res_t res = {0};
    tally_http_error(&res, c->req.error_status, c->req.error_code, "%s", c->req.error_msg);
    c->refused = 1;
    if (enqueue(c, &none, &res, c->req.parser.method, 0, 1) != 0) {
        free(res.body);
        conn_close(c);
    }
}

/* Answer what waited behind a completed answer: the queued requests, then
 * the bytes held, until the connection waits again or is done. */
static void
drain(conn_t *c)
{
    for (;;) {
        while (c->qhead && !c->pending && !c->closing) {
            queued_t *q = c->qhead;
            c->qhead = q->next;
            if (!c->qhead)
                c->qtail = NULL;
            serve(c, &q->req, &q->res, q->method, q->keep_alive, q->quiet);
            free(q->res.body);
            free(q);
        }
        if (c->pending || c->closing || c->close_after || c->qhead || !c->held.len)
            break;
        tally__sbuf_t held = c->held; /* parse may hold bytes again */
        memset(&c->held, 0, sizeof c->held);
        if (!c->refused)
            parse(c, held.p, held.len);
        tally__sbuf_free(&held);
    }
    if (c->pending || c->closing)
        return;
    if (c->owe_continue && !c->close_after) {
        c->owe_continue = 0;
        send_continue(c);
    }
    arm_timer(c);
    update_reading(c);
}

static void
on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    conn_t *c = st->data;
    if (nread < 0) {
        conn_close(c);
        return;
    }
    if (nread == 0 || c->close_after || c->refused)
        return;
    if (c->pending || c->qhead) {
        /* an answer is pending: keep the bytes for later, unparsed (the
         * cap leaves room for one whole read once below HELD_MAX) */
        if (tally__sbuf_add(&c->held, buf->base, (size_t)nread, HELD_MAX + READ_MAX) != 0)
            conn_close(c);
        else
            update_reading(c);
        return;
    }
    parse(c, buf->base, (size_t)nread);
}

/* Refuse an accepted connection: the answer, then the close. Counted and
 * logged (rate-limited: a flood must not flood the log too). */
static void
refuse_conn(conn_t *c, int status, const char *code, const char *why, uint32_t open,
            uint32_t limit)
{
    tally_http_server_t *s = c->s;
    uint32_t supp;
    if (tally__ratelimit_ok(&s->rl_refused, 5, 10000, &supp))
        tally__log_warn("http connection refused reason=%s remote=%s open=%u limit=%u "
                        "suppressed=%u",
                        why, c->remote[0] ? c->remote : "-", open, limit, supp);
    c->kind = CONN_REFUSED;
    c->refused = 1;
    tally_http_res_t res = {.retry_after = 1};
    if (status == 429)
        tally_http_error(&res, 429, code,
                         "too many connections from this address "
                         "(http.max_connections_per_address = %u)",
                         limit);
    else
        tally_http_error(&res, 503, code, "too many connections (http.max_connections)");
    send_response(c, &res, 0, 0);
    free(res.body);
}

/* The oldest reserved connection that has not sent a byte, or NULL. A
 * health check or a scrape sends its request at once, so such a connection
 * is most likely one holding the reserve on purpose. */
static conn_t *
silent_reserved(tally_http_server_t *s)
{
    conn_t *oldest = NULL;
    for (conn_t *c = s->conns; c; c = c->next) /* newest first */
        if (c->kind == CONN_RESERVED && c->fresh && !c->in_request && !c->closing)
            oldest = c;
    return oldest;
}

static void
on_connection(uv_stream_t *server, int status)
{
    tally_http_server_t *s = server->data;
    if (status < 0 || s->closing)
        return;
    conn_t *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles_open = 2;
    c->kind = CONN_REFUSED; /* until it is counted as one of the others */
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int len = sizeof ss, have_addr = 0;
    conn_t *victim;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->remote, sizeof c->remote);
        else
            uv_ip4_name((struct sockaddr_in *)&ss, c->remote, sizeof c->remote);
        have_addr = addr_key(&ss, c->addr) == 0;
    }
    /* the per-address limit first: one client must not take the reserve either */
    uint32_t per = s->lim.max_connections_per_address;
    if (have_addr && per) {
        uint32_t open = addr_count(s, c->addr);
        if (open >= per) {
            s->refused_per_address++;
            refuse_conn(c, 429, "ETOOMANY", "per_address", open, per);
            return;
        }
    }
    if (s->nnormal < s->lim.max_connections) {
        c->kind = CONN_NORMAL;
        s->nnormal++;
    } else if (s->nreserved < TALLY_HTTP_RESERVED_CONNECTIONS) {
        c->kind = CONN_RESERVED;
        s->nreserved++;
    } else if ((victim = silent_reserved(s)) != NULL) {
        /* the reserve is full of connections that sent nothing: the oldest
         * makes room, so that silent clients cannot hold the reserve */
        s->evicted++;
        tally__log_debug("http reserved connection closed for a new one remote=%s",
                         victim->remote);
        conn_close(victim);
        c->kind = CONN_RESERVED;
        s->nreserved++;
    } else {
        s->refused_max++;
        refuse_conn(c, 503, "EUNAVAILABLE", "max_connections", s->nnormal + s->nreserved,
                    s->lim.max_connections);
        return;
    }
    if (have_addr && addr_inc(s, c->addr) == 0)
        c->addr_counted = 1; /* out of memory: not counted, rather than refused */
    tally__httpreq_init(&c->req, &c->s->lim, &hooks, c);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = 1;
    c->fresh = 1;
    arm_timer(c);
}

static void
on_failed_listener_closed(uv_handle_t *h)
{
    free(h->data); /* the server; the listener is a member, not the allocation */
}

int
tally_http_start(uv_loop_t *loop, const char *host, uint16_t port,
                 const tally_http_limits_t *limits, tally_http_dispatch_fn dispatch, void *ctx,
                 int log_requests, tally_http_server_t **out)
{
    struct sockaddr_storage addr;
    int rc;
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&addr) != 0)
        return UV_EINVAL;
    tally_http_server_t *s = calloc(1, sizeof *s);
    if (!s)
        return UV_ENOMEM;
    s->loop = loop;
    s->lim = *limits;
    s->pending_ms = limits->pending_timeout_ms ? limits->pending_timeout_ms
                                               : 3 * (uint64_t)limits->request_timeout_ms;
    s->dispatch = dispatch;
    s->ctx = ctx;
    s->log_requests = log_requests;
    s->addr_seed = uv_hrtime() ^ (uint64_t)(uintptr_t)s;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    if ((rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection)) != 0) {
        tally__log_error("cannot listen for HTTP host=%s port=%u err=\"%s\"", host, port,
                         uv_strerror(rc));
        s->listener_closed = 0;
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed);
        return rc;
    }
    int len = sizeof addr;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&addr, &len);
    s->port = ntohs(addr.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&addr)->sin6_port
                                               : ((struct sockaddr_in *)&addr)->sin_port);
    *out = s;
    return 0;
}

uint16_t
tally_http_port(const tally_http_server_t *s)
{
    return s->port;
}

uint32_t
tally_http_connections(const tally_http_server_t *s)
{
    return s->nconns;
}

void
tally_http_set_observer(tally_http_server_t *s, tally_http_observe_fn fn)
{
    s->observe = fn;
}

void
tally_http_stats(const tally_http_server_t *s, tally_http_stats_t *out)
{
    out->connections = s->nconns;
    out->pending = s->npending;
    out->pending_timeouts = s->pending_timeouts;
    out->pending_dropped = s->pending_dropped;
    out->reserved = s->nreserved;
    out->refused_max = s->refused_max;
    out->refused_per_address = s->refused_per_address;
    out->request_timeouts = s->request_timeouts;
    out->idle_timeouts = s->idle_timeouts;
    out->reserve_evictions = s->evicted;
}

tally_http_pending_t *
tally_http_defer(tally_http_req_t *req)
{
    dispatching_t *d = req->srv;
    /* not dispatched by a server (e.g. the fuzz harness): the caller answers now */
    if (!d)
        return NULL;
    TALLY_ASSERT(!d->deferred); /* once per request */
    size_t plen = strlen(d->ask->path ? d->ask->path : "");
    tally_http_pending_t *p = malloc(sizeof *p + plen + 1);
    if (!p)
        return NULL;
    p->c = d->c;
    p->d = d;
    p->route = NULL;
    p->ask = *d->ask;
    p->ask.dispatched = 1;
    memcpy(p->path, d->ask->path ? d->ask->path : "", plen + 1);
    p->ask.path = p->path;
    d->p = p;
    d->deferred = 1;
    return p;
}

int
tally_http_deferred(const tally_http_req_t *req)
{
    const dispatching_t *d = req->srv;
    return d && d->p;
}

void
tally_http_complete(tally_http_pending_t *p, tally_http_res_t *res)
{
    if (p->d) {
        /* still inside the dispatch that deferred: this is its answer */
        tally_http_res_t *dst = p->d->res;
        tally_http_take_body(dst, res->status, res->content_type, res->body, res->body_len);
        dst->retry_after = res->retry_after;
        res->body = NULL;
        p->d->p = NULL;
        free(p);
        return;
    }
    conn_t *c = p->c;
    if (c) {
        TALLY_ASSERT(c->pending == p);
        c->pending = NULL;
        c->s->npending--;
        uv_timer_stop(&c->timer);
        tally_http_res_t r = *res;
        r.route = p->route;
        answer(c, &p->ask, &r);
    } else {
        tally__log_debug("http deferred answer dropped path=%s status=%d", p->path, res->status);
    }
    free(res->body);
    res->body = NULL;
    free(p);
    if (c)
        drain(c);
}

static void
on_listener_closed(uv_handle_t *h)
{
    tally_http_server_t *s = h->data;
    s->listener_closed = 1;
    if (s->nconns == 0) {
        free(s->addrs);
        free(s);
    }
}

void
tally_http_close(tally_http_server_t *s)
{
    s->closing = 1;
    for (conn_t *c = s->conns; c; c = c->next)
        conn_close(c);
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
}

/* ---- streamed answers ------------------------------------------------------
 * A streamed answer is a deferred one (tally_http_defer) whose body a
 * producer makes piece by piece on libuv's thread pool. The first piece
 * decides the framing: when the producer is done after it, the answer goes
 * out as any other (Content-Length, through tally_http_complete); else the
 * head goes out with Transfer-Encoding: chunked, then each piece as a
 * chunk. One piece is in flight at a time, produced or written, so a
 * stream holds at most one piece (plus what the producer keeps) whatever
 * the answer's size, and a slow reader slows its producer, not the loop.
 * While the stream runs the connection's answer is still "pending" (later
 * requests wait their turn, the idle and request timeouts do not run); the
 * connection's timer instead cuts off a reader that takes no bytes for
 * idle_timeout_ms. */

struct tally_http_stream {
    tally_http_pending_t *p;
    tally_http_stream_ops_t ops;
    void *ctx;
    uv_loop_t *loop;
    uv_work_t work;
    uv_write_t wr;
    int status;
    const char *ctype;
    char *piece; /* produced, not written yet (or being written) */
    size_t len;
    int done;      /* the producer said so */
    int err;       /* the producer failed */
    int started;   /* the chunked head went out */
    uint64_t sent; /* body bytes written */
    char chunk_head[24];
};

static void stream_step(tally_http_stream_t *st);

/* The end of a stream, whatever ended it: tell the owner, free. */
static void
stream_end(tally_http_stream_t *st, int ok)
{
    if (st->ops.finish)
        st->ops.finish(st->ctx, ok, st->sent);
    free(st->piece);
    free(st);
}

static void
stream_work(uv_work_t *w)
{
    tally_http_stream_t *st = w->data;
    free(st->piece);
    st->piece = NULL;
    st->len = 0;
    int rc = st->ops.produce(st->ctx, &st->piece, &st->len, &st->done);
    if (rc > 0 && !st->started) {
        /* the producer's own answer (an error it names) instead of the body */
        st->status = rc;
        st->done = 1;
        return;
    }
    if (rc != 0) {
        st->err = rc;
        free(st->piece);
        st->piece = NULL;
        st->len = 0;
    }
}

static void
on_stream_stall(uv_timer_t *t)
{
    conn_t *c = t->data;
    tally__log_warn("http streamed answer stalled, reader took nothing for %u ms remote=%s",
                    c->s->lim.idle_timeout_ms, c->remote);
    conn_close(c); /* the write in flight is cancelled: on_stream_write ends the stream */
}

/* The stream is over on the connection: let it serve what waits. */
static void
stream_release(tally_http_stream_t *st, conn_t *c)
{
    tally_http_pending_t *p = st->p;
    tally_http_server_t *s = c->s;
    c->pending = NULL;
    s->npending--;
    uv_timer_stop(&c->timer);
    if (s->observe)
        s->observe(s->ctx, p->route, st->status, uv_hrtime() - p->ask.t0);
    if (s->log_requests)
        tally__log_info("request method=%s path=%s status=%d us=%llu bytes=%llu remote=%s",
                        http_method_str((enum http_method)p->ask.method), p->path, st->status,
                        (unsigned long long)((uv_hrtime() - p->ask.t0) / 1000),
                        (unsigned long long)st->sent, c->remote);
    int keep_alive = p->ask.keep_alive;
    free(p);
    st->p = NULL;
    if (!keep_alive) {
        conn_close(c);
        return;
    }
    drain(c);
}

static void
on_stream_write(uv_write_t *req, int status)
{
    tally_http_stream_t *st = req->data;
    conn_t *c = st->p->c;
    if (status < 0 || !c || c->closing) {
        if (c && !c->closing)
            conn_close(c);
        tally_http_complete(st->p, &(tally_http_res_t){0}); /* only frees: the connection is gone */
        st->p = NULL;
        stream_end(st, 0);
        return;
    }
    st->sent += st->len;
    free(st->piece);
    st->piece = NULL;
    if (st->done || c->s->closing) {
        int ok = st->done;
        stream_release(st, c);
        stream_end(st, ok);
        return;
    }
    stream_step(st);
}

/* Write the piece produced (and the last chunk when done). */
static void
stream_write(tally_http_stream_t *st, conn_t *c)
{
    static const char crlf[] = "\r\n", last[] = "0\r\n\r\n";
    uv_buf_t b[4];
    int nb = 0;
    int hn = snprintf(st->chunk_head, sizeof st->chunk_head, "%zx\r\n", st->len);
    if (st->len) {
        b[nb++] = uv_buf_init(st->chunk_head, (unsigned)hn);
        b[nb++] = uv_buf_init(st->piece, (unsigned)st->len);
        b[nb++] = uv_buf_init((char *)crlf, 2);
    }
    if (st->done)
        b[nb++] = uv_buf_init((char *)last, sizeof last - 1);
    if (st->p->ask.head) { /* HEAD: the head alone */
        nb = 0;
        st->done = 1;
    }
    st->wr.data = st;
    uv_timer_start(&c->timer, on_stream_stall, c->s->lim.idle_timeout_ms, 0);
    if (nb == 0) {
        /* nothing to send: go on as if written (a HEAD, or an empty piece) */
        on_stream_write(&st->wr, 0);
        return;
    }
    if (uv_write(&st->wr, (uv_stream_t *)&c->tcp, b, (unsigned)nb, on_stream_write) != 0) {
        conn_close(c);
        tally_http_complete(st->p, &(tally_http_res_t){0});
        st->p = NULL;
        stream_end(st, 0);
    }
}

static void
on_stream_head_written(uv_write_t *req, int status)
{
    (void)status; /* a failure shows in the chunk written after it */
    free(req->data);
    free(req);
}

static void
stream_after_work(uv_work_t *w, int status)
{
    tally_http_stream_t *st = w->data;
    conn_t *c = st->p->c;
    if (status < 0 && !st->err)
        st->err = status;
    if (!c || c->closing) {
        /* the connection went (or the pending limit answered 503) */
        tally_http_complete(st->p, &(tally_http_res_t){0});
        st->p = NULL;
        stream_end(st, 0);
        return;
    }
    if (!st->started) {
        if (st->err || st->done) {
            /* all of it (or a failure) before anything went out: a plain answer */
            tally_http_res_t res = {.status = st->status, .content_type = st->ctype};
            if (st->err) {
                tally__log_error("http streamed answer failed before its head path=%s err=\"%s\"",
                                 st->p->path, tally_strerror(st->err));
                tally_http_error(&res, 500, "EINTERNAL", "cannot produce the answer: %s",
                                 tally_strerror(st->err));
            } else {
                res.body = st->piece;
                res.body_len = st->len;
                st->piece = NULL;
                st->sent = st->len;
            }
            tally_http_complete(st->p, &res);
            st->p = NULL;
            stream_end(st, !st->err);
            return;
        }
        /* the head, then chunks */
        char hdr[512];
        const char *text = status_text(st->status);
        int n = snprintf(hdr, sizeof hdr,
                         "HTTP/1.1 %d %s\r\nServer: tallyd\r\nContent-Type: %s\r\n"
                         "Transfer-Encoding: chunked\r\nConnection: %s\r\n\r\n",
                         st->status, text, st->ctype, st->p->ask.keep_alive ? "keep-alive" : "close");
        char *h = malloc((size_t)n);
        uv_write_t *hw = malloc(sizeof *hw);
        if (!h || !hw) {
            free(h);
            free(hw);
            conn_close(c);
            tally_http_complete(st->p, &(tally_http_res_t){0});
            st->p = NULL;
            stream_end(st, 0);
            return;
        }
        memcpy(h, hdr, (size_t)n);
        uv_buf_t b = uv_buf_init(h, (unsigned)n);
        hw->data = h;
        if (uv_write(hw, (uv_stream_t *)&c->tcp, &b, 1, on_stream_head_written) != 0) {
            free(h);
            free(hw);
            conn_close(c);
            tally_http_complete(st->p, &(tally_http_res_t){0});
            st->p = NULL;
            stream_end(st, 0);
            return;
        }
        st->started = 1;
        uv_timer_stop(&c->timer); /* the pending limit no longer applies */
        /* each chunk ends in a small write ("\r\n"): with Nagle on, it waits
         * for the peer's delayed ACK (40 ms a chunk) */
        uv_tcp_nodelay(&c->tcp, 1);
    }
    if (st->err) {
        /* the head is out: the only way to say "incomplete" is to cut the
         * chunked body short (no last chunk), which every client notices */
        tally__log_error("http streamed answer failed after %llu bytes path=%s err=\"%s\"",
                         (unsigned long long)st->sent, st->p->path, tally_strerror(st->err));
        conn_close(c);
        tally_http_complete(st->p, &(tally_http_res_t){0});
        st->p = NULL;
        stream_end(st, 0);
        return;
    }
    stream_write(st, c);
}

static void
stream_step(tally_http_stream_t *st)
{
    st->work.data = st;
    if (uv_queue_work(st->loop, &st->work, stream_work, stream_after_work) != 0) {
        st->err = -ENOMEM;
        stream_after_work(&st->work, 0);
    }
}

int
tally_http_stream(tally_http_req_t *req, tally_http_res_t *res, int status, const char *ctype,
                  const tally_http_stream_ops_t *ops, void *ctx)
{
    tally_http_pending_t *p = tally_http_defer(req);
    if (!p)
        return -1;
    tally_http_stream_t *st = calloc(1, sizeof *st);
    if (!st) {
        tally_http_res_t r = {0};
        tally_http_error(&r, 503, "EUNAVAILABLE", "out of memory; retry later");
        r.retry_after = 1;
        tally_http_complete(p, &r); /* inside the dispatch: becomes its answer */
        if (ops->finish)
            ops->finish(ctx, 0, 0);
        return 0;
    }
    (void)res;
    st->p = p;
    st->ops = *ops;
    st->ctx = ctx;
    st->loop = p->c->s->loop;
    st->status = status;
    st->ctype = ctype ? ctype : "application/json";
    stream_step(st);
    return 0;
}
