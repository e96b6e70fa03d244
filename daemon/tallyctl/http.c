/* http.c — tallyctl's HTTP client on libcurl (see http.h). */
#define _GNU_SOURCE
#include "http.h"

#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int curl_ready;

typedef struct sink {
    char *buf;
    size_t len, cap;
    int too_big, oom;
} sink_t;

static size_t
on_data(char *p, size_t size, size_t n, void *user)
{
    sink_t *s = user;
    size_t add = size * n;
    if (add > CTL_HTTP_MAX_BODY - s->len) {
        s->too_big = 1;
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    if (s->len + add + 1 > s->cap) {
        size_t cap = s->cap ? s->cap : 16384;
        while (cap < s->len + add + 1)
            cap *= 2;
        char *nb = realloc(s->buf, cap);
        if (nb == NULL) {
            s->oom = 1;
            return 0;
        }
        s->buf = nb;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, p, add);
    s->len += add;
    s->buf[s->len] = '\0';
    return add;
}

int
ctl_http_request(const char *what, const char *base_url, const char *method, const char *path,
                 const char *token, const char *body, ctl_http_resp_t *out)
{
    memset(out, 0, sizeof *out);
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0) {
        fprintf(stderr, "tallyctl %s: --url must start with http:// or https:// (got %s)\n", what,
                base_url);
        return -1;
    }
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fprintf(stderr, "tallyctl %s: cannot initialise libcurl\n", what);
            return -1;
        }
        curl_ready = 1;
    }
    int rc = -1;
    char *url = NULL, *auth = NULL;
    struct curl_slist *hdrs = NULL, *h;
    sink_t sink = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    size_t blen = strlen(base_url);
    while (blen > 0 && base_url[blen - 1] == '/')
        blen--;
    CURL *c = curl_easy_init();
    if (c == NULL || asprintf(&url, "%.*s%s", (int)blen, base_url, path) < 0) {
        url = NULL;
        fprintf(stderr, "tallyctl %s: out of memory\n", what);
        goto out;
    }
    if ((h = curl_slist_append(hdrs, "Content-Type: application/json")) == NULL)
        goto oom;
    hdrs = h;
    /* no "Expect: 100-continue" round trip for a small body */
    if ((h = curl_slist_append(hdrs, "Expect:")) == NULL)
        goto oom;
    hdrs = h;
    if (token) {
        if (asprintf(&auth, "Authorization: APIToken %s", token) < 0) {
            auth = NULL;
            goto oom;
        }
        if ((h = curl_slist_append(hdrs, auth)) == NULL)
            goto oom;
        hdrs = h;
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    /* tallyd is reached directly, as the hand-written client did: an
     * http_proxy meant for the web must not swallow requests to 127.0.0.1 */
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    /* a usage query over a large store may take a while, a hung daemon must not */
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 300L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "tallyctl/" TALLY_VERSION);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    } else if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        if (sink.too_big)
            fprintf(stderr, "tallyctl %s: the answer of %s is bigger than %u MiB\n", what, url,
                    CTL_HTTP_MAX_BODY >> 20);
        else if (sink.oom)
            fprintf(stderr, "tallyctl %s: out of memory reading the answer of %s\n", what, url);
        else
            fprintf(stderr, "tallyctl %s: cannot reach %s: %s\n", what, url,
                    errbuf[0] ? errbuf : curl_easy_strerror(cc));
        free(sink.buf);
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    if (sink.buf == NULL && (sink.buf = strdup("")) == NULL)
        goto oom;
    out->body = sink.buf;
    out->len = sink.len;
    rc = 0;
    goto out;
oom:
    fprintf(stderr, "tallyctl %s: out of memory\n", what);
out:
    curl_slist_free_all(hdrs);
    if (auth) {
        /* our copy of the token does not linger in freed heap (libcurl's
         * copy in the header list is freed as it is) */
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    free(url);
    if (c)
        curl_easy_cleanup(c);
    return rc;
}

void
ctl_http_resp_free(ctl_http_resp_t *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

void
ctl_http_report(const char *what, const ctl_http_resp_t *r)
{
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "message"));
    const char *code = json_string_value(json_object_get(j, "code"));
    if (msg)
        fprintf(stderr, "tallyctl %s: HTTP %ld: %s%s%s\n", what, r->status, code ? code : "",
                code ? ": " : "", msg);
    else
        fprintf(stderr, "tallyctl %s: HTTP %ld: %.*s\n", what, r->status, (int)r->len, r->body);
    json_decref(j);
}

void
ctl_http_cleanup(void)
{
    if (curl_ready)
        curl_global_cleanup();
    curl_ready = 0;
}
