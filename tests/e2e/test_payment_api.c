/* test_payment_api.c — end-to-end tests of the payment method API (create, roles, delete, access,
 * no tokens in logs) against a real tallyd. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"
#include "openapi_validate.h"

#define ADMIN HARNESS_ADMIN_TOKEN
#define VIEWER HARNESS_DEMO_VIEWER_TOKEN
#define EDITOR HARNESS_DEMO_EDITOR_TOKEN
/* Payment methods pay the tenant's bill: whatever namespace the path names,
 * changing them needs a token that may write `system` (daemon/routes.h).
 * This suite's tokens file adds such an editor to the development tokens. */
#define BILLING "test-billing-editor-token"
#define PMS "/api/web/namespaces/demo/billing/payment_methods"
#define PM "/api/web/namespaces/demo/billing/payment_method"
#define SECRET_TOKEN "tok_Secr3t-e2e-9f8a7b6c5d"

static harness_t *H;
static json_t *doc; /* daemon/openapi.json */
static char tokdir[64], tokfile[128];

static void
setup(void)
{
    snprintf(tokdir, sizeof tokdir, "/tmp/tally-pm.XXXXXX");
    cr_assert_not_null(mkdtemp(tokdir));
    snprintf(tokfile, sizeof tokfile, "%s/tokens", tokdir);
    FILE *f = fopen(tokfile, "w");
    cr_assert_not_null(f, "%s", tokfile);
    fputs("admin admin * plain:" ADMIN "\n"
          "demo-editor editor demo plain:" EDITOR "\n"
          "demo-viewer viewer demo plain:" VIEWER "\n"
          "billing-editor editor system plain:" BILLING "\n",
          f);
    cr_assert_eq(fclose(f), 0);
    static char envv[200];
    snprintf(envv, sizeof envv, "TALLY_AUTH_TOKENS_FILE=%s", tokfile);
    /* debug logging: the strictest check that no token reaches the log */
    const char *const env[] = {"TALLY_LOG_LEVEL=debug", envv, NULL};
    H = harness_start(env);
    doc = harness_openapi(H);
}

static void
teardown(void)
{
    json_decref(doc);
    doc = NULL;
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
    if (tokdir[0]) {
        unlink(tokfile);
        rmdir(tokdir);
        tokdir[0] = '\0';
    }
}

TestSuite(payment_api, .init = setup, .fini = teardown, .timeout = 300);

/* ---- helpers ---------------------------------------------------------------------------- */

/* One request; asserts the status and validates the JSON body against schema (strict). */
static json_t *
call(const char *method, const char *path, const char *token, const char *body, int status,
     const char *schema)
{
    return harness_call(H, doc, method, path, token, body, status, schema);
}

/* An error answer: status, tallyError shape and code; returns the message (static copy). */
static const char *
call_err(const char *method, const char *path, const char *token, const char *body, int status,
         const char *code)
{
    return harness_call_err(H, doc, method, path, token, body, status, code);
}

/* A 200 with an empty object, the answer of delete and the role calls. */
static void
call_ok_empty(const char *method, const char *path, const char *token, const char *body)
{
    json_t *j = call(method, path, token, body, 200,
                     "#/paths/~1api~1web~1namespaces~1{namespace}~1billing~1payment_methods~1{name}"
                     "/delete/responses/200/content/application~1json/schema");
    cr_expect(json_is_object(j) && json_object_size(j) == 0, "%s %s", method, path);
    json_decref(j);
}

/* Create a method in demo; returns its name (caller frees). */
static char *
create(const char *token, const char *pm_token, const char *role)
{
    char body[512];
    if (role)
        snprintf(body, sizeof body,
                 "{\"namespace\":\"demo\",\"token\":\"%s\",\"role\":\"PAYMENT_METHOD_ROLE_%s\","
                 "\"contact\":{\"address1\":\"1 Main St\",\"city\":\"Oslo\",\"country\":\"NO\","
                 "\"contact_type\":\"PAYMENT\"}}",
                 pm_token, role);
    else
        snprintf(body, sizeof body, "{\"token\":\"%s\"}", pm_token);
    json_t *j = call("POST", PMS, token, body, 200, "payment_methodCreatePaymentMethodResponse");
    const char *name = json_string_value(json_object_get(j, "name"));
    cr_assert(name && strlen(name) == 36, "name: %s", name ? name : "(none)");
    char *copy = strdup(name);
    json_decref(j);
    return copy;
}

static void
role_call(const char *name, const char *what, const char *body)
{
    char path[256];
    snprintf(path, sizeof path, PM "/%s/%s", name, what);
    call_ok_empty("POST", path, BILLING, body);
}

/* Whether the delete of name answers status (200 or an error code). */
static void
delete_expect(const char *name, int status, const char *code)
{
    char path[256];
    snprintf(path, sizeof path, PMS "/%s", name);
    if (status == 200)
        call_ok_empty("DELETE", path, BILLING, NULL);
    else
        call_err("DELETE", path, BILLING, NULL, status, code);
}

/* Read tallyd's log whole (caller frees). */
static char *
read_log(void)
{
    FILE *f = fopen(H->log_path, "r");
    cr_assert_not_null(f, "%s", H->log_path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

/* ---- tests ------------------------------------------------------------------------------ */

Test(payment_api, create_returns_a_generated_name)
{
    char *a = create(BILLING, "tok_a1", NULL);
    char *b = create(ADMIN, "tok_b2", "SECONDARY");
    cr_expect_str_neq(a, b);
    /* the first is primary: deleting it while b exists conflicts */
    delete_expect(a, 409, "ECONFLICT");
    delete_expect(b, 200, NULL);
    delete_expect(b, 404, "ENOTFOUND");
    delete_expect(a, 200, NULL);
    free(a);
    free(b);
}

Test(payment_api, card_numbers_are_refused)
{
    static const char *const cards[] = {"4111111111111111", "4111 1111 1111 1111",
                                        "4111-1111-1111-1111", "378282246310005", "4222222222222"};
    for (size_t i = 0; i < sizeof cards / sizeof cards[0]; i++) {
        char body[256];
        snprintf(body, sizeof body, "{\"token\":\"%s\"}", cards[i]);
        const char *msg = call_err("POST", PMS, BILLING, body, 400, "EBADINPUT");
        cr_expect(strncmp(msg, "token:", 6) == 0, "%s", msg);
        cr_expect(strstr(msg, cards[i]) == NULL, "the message quotes the card: %s", msg);
    }
    /* not cards: 12 and 20 digits, 16 digits failing Luhn */
    free(create(BILLING, "411111111111", NULL));
    free(create(BILLING, "41111111111111111113", NULL));
    free(create(BILLING, "4111111111111112", NULL));

    call_err("POST", PMS, BILLING, "{}", 400, "EBADINPUT");
    call_err("POST", PMS, BILLING, "{\"token\":\"t\",\"role\":\"BOSS\"}", 400, "EBADINPUT");
    call_err("POST", PMS, BILLING, "{\"token\":\"t\",\"namespace\":\"shop\"}", 400, "EBADINPUT");
    call_err("POST", PMS, BILLING, "{\"token\":\"t\",\"contact\":{\"zip_code\":1}}", 400,
             "EBADINPUT");
}

Test(payment_api, primary_secondary_and_swap)
{
    char *a = create(BILLING, "tok_a", NULL);        /* primary (first) */
    char *b = create(BILLING, "tok_b", "SECONDARY"); /* secondary */
    char *c = create(BILLING, "tok_c", "NORMAL");

    /* swap without a body name: b primary, a secondary */
    role_call(a, "swap-primary", "{}");
    delete_expect(a, 200, NULL); /* a is secondary now: deletable */
    free(a);
    a = create(BILLING, "tok_a", NULL); /* normal: b holds primary */
    delete_expect(b, 409, "ECONFLICT");

    /* c primary: b becomes normal */
    role_call(c, "primary", "{\"name\":\"\",\"namespace\":\"demo\"}");
    delete_expect(b, 200, NULL);
    delete_expect(c, 409, "ECONFLICT");
    /* a secondary, then swap names a in the body: a primary, c secondary */
    role_call(a, "secondary", NULL);
    char body[128];
    snprintf(body, sizeof body, "{\"name\":\"%s\",\"namespace\":\"demo\"}", a);
    role_call("ignored", "swap-primary", body);
    delete_expect(c, 200, NULL); /* c was secondary */
    delete_expect(a, 200, NULL); /* a primary, but the last one */

    /* unknown names and mismatching bodies */
    char *d = create(BILLING, "tok_d", NULL);
    call_err("POST", PM "/nope/primary", BILLING, "{}", 404, "ENOTFOUND");
    call_err("POST", PM "/nope/secondary", BILLING, "{}", 404, "ENOTFOUND");
    call_err("POST", PM "/x/swap-primary", BILLING, "{\"name\":\"nope\"}", 404, "ENOTFOUND");
    /* d is primary, nobody secondary: nothing to exchange */
    call_err("POST", PM "/x/swap-primary", BILLING, "{}", 409, "ECONFLICT");
    char path[256];
    snprintf(path, sizeof path, PM "/%s/primary", d);
    call_err("POST", path, BILLING, "{\"name\":\"other\"}", 400, "EBADINPUT");
    call_err("POST", path, BILLING, "{\"namespace\":\"shop\"}", 400, "EBADINPUT");
    /* primary again: no change */
    role_call(d, "primary", NULL);
    free(a);
    free(b);
    free(c);
    free(d);
}

Test(payment_api, access_rules)
{
    char *a = create(BILLING, "tok_access", NULL);
    /* an editor of demo may not change the tenant's payment methods, not
     * even under demo's path (the table said "the path's namespace" before) */
    call_err("POST", PMS, EDITOR, "{\"token\":\"tok_e\"}", 403, "EPERMS");
    call_err("POST", PMS, VIEWER, "{\"token\":\"tok_v\"}", 403, "EPERMS");
    char path[256];
    snprintf(path, sizeof path, PM "/%s/secondary", a);
    call_err("POST", path, VIEWER, "{}", 403, "EPERMS");
    snprintf(path, sizeof path, PMS "/%s", a);
    call_err("DELETE", path, VIEWER, NULL, 403, "EPERMS");
    call_err("DELETE", path, EDITOR, NULL, 403, "EPERMS");
    call_err("POST", "/api/web/namespaces/system/billing/payment_methods", EDITOR,
             "{\"token\":\"tok_s\"}", 403, "EPERMS");
    call_err("POST", PMS, NULL, "{\"token\":\"tok_n\"}", 401, "EUNAUTHENTICATED");
    /* namespaces are separate: a is unknown in shop */
    snprintf(path, sizeof path, "/api/web/namespaces/shop/billing/payment_method/%s/primary", a);
    call_err("POST", path, ADMIN, "{}", 404, "ENOTFOUND");
    free(a);
}

Test(payment_api, provider_token_never_logged)
{
    char *a = create(BILLING, SECRET_TOKEN, "PRIMARY");
    char *b = create(BILLING, SECRET_TOKEN "-2", "SECONDARY");
    role_call(a, "swap-primary", NULL);
    role_call(a, "primary", NULL);
    delete_expect(a, 409, "ECONFLICT");
    /* refused card numbers are not logged either */
    call_err("POST", PMS, BILLING, "{\"token\":\"5555 5555 5555 4444\"}", 400, "EBADINPUT");
    /* and neither are rejected-for-other-reasons tokens */
    call_err("POST", PMS, BILLING, "{\"token\":\"" SECRET_TOKEN "\",\"role\":\"X\"}", 400,
             "EBADINPUT");
    char *log = read_log();
    cr_assert(strstr(log, "payment method created") != NULL, "the log is not tallyd's:\n%s", log);
    cr_expect(strstr(log, SECRET_TOKEN) == NULL, "the token is in the log:\n%s", log);
    cr_expect(strstr(log, "5555 5555 5555 4444") == NULL && strstr(log, "5555555555554444") == NULL,
              "the card number is in the log");
    cr_expect(strstr(log, "Oslo") == NULL, "the contact is in the log");
    free(log);
    free(a);
    free(b);
}
