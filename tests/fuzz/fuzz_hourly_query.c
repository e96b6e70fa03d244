/* fuzz_hourly_query.c — libFuzzer harness: the hourly_breakdown_query decoder (base64 → JSON → fields) of hourly_usage_details. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Byte 0: bit 0 clear — the rest is the decoded query (JSON) and the
 * harness base64-encodes it, so mutations reach the field checks; set —
 * the rest is the query text as the client sends it (base64 or not).
 * Bit 1 picks the path namespace: "demo" or "system".
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 4096)
        return 0;
    tally_ctx_t *ctx = fuzz_ctx();
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    char *q;
    if (!(data[0] & 1)) {
        size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
        q = malloc(cap);
        if (!q)
            return 0;
        sodium_bin2base64(q, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    } else {
        q = malloc(n + 1);
        if (!q)
            return 0;
        memcpy(q, p, n);
        q[n] = '\0';
    }
    const char *ns = (data[0] & 2) ? "system" : "demo";
    json_t *body = json_pack("{s:s, s:s?}", "namespace", ns, "query", NULL);
    json_t *qs = json_string(q); /* NULL for text that is not UTF-8: the JSON layer refuses it */
    free(q);
    if (!body || !qs) {
        json_decref(body);
        json_decref(qs);
        return 0;
    }
    json_object_set_new(body, "query", qs);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (!text)
        return 0;
    tally_http_req_t req = {0};
    tally_http_res_t res = {0};
    req.method = TALLY_HTTP_POST;
    req.path = "/api/web/namespaces/x/hourly_usage_details";
    req.query = "";
    req.authorization = FUZZ_VIEWER_AUTH;
    req.body = text;
    req.body_len = strlen(text);
    req.remote = "fuzz";
    req.param_names[0] = "namespace";
    req.params[0] = ns;
    req.nparams = 1;
    req.user = (void *)tally__tokens_find(ctx->tokens, "fuzz-viewer");
    tally_route_hourly_usage_details(ctx, &req, &res);
    fuzz_trace(req.path, &res);
    if (res.status < 100 || res.status > 599 || (res.body_len && !res.body))
        abort();
    free(res.body);
    free(text);
    return 0;
}
