/* test_payment.c — Criterion tests of lib/payment: card-number refusal, role rules, delete rules
 * and storage. */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "payment.h"
#include "store.h"
#include "tally/tally.h"
#include "testdir.h"

#define MiB (1024ull * 1024ull)
#define T0 1709247600LL /* 2024-02-29T23:00:00Z */

#define P TALLY_PAYMENT_ROLE_PRIMARY
#define S TALLY_PAYMENT_ROLE_SECONDARY
#define N TALLY_PAYMENT_ROLE_NORMAL

static char dir[64];
static tally__store_t *store;

static void
open_store(void)
{
    char sdir[128];
    snprintf(sdir, sizeof sdir, "%s/store", dir);
    int rc = tally__store_open(sdir, 16 * MiB, 0, &store);
    cr_assert_eq(rc, 0, "store open: %s", tally_strerror(rc));
}

static void
setup(void)
{
    testdir_make(dir, sizeof dir, "payment");
    open_store();
}

static void
teardown(void)
{
    tally__store_close(store);
    store = NULL;
    testdir_remove(dir);
}

TestSuite(payment, .init = setup, .fini = teardown, .timeout = 60);

/* ---- helpers ------------------------------------------------------------------------ */

/* Digits of length n (a deterministic pattern) made Luhn-valid (valid=1) or not. */
static void
luhn_number(char *out, size_t n, unsigned seed, int valid)
{
    for (size_t i = 0; i + 1 < n; i++)
        out[i] = (char)('0' + (seed * 7 + i * 3 + 1) % 10);
    /* the check digit: with it at index n-1 (doubled positions count from the right) */
    int sum = 0;
    for (size_t k = 1; k < n; k++) {
        int d = out[n - 1 - k] - '0';
        if (k % 2) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
    }
    int check = (10 - sum % 10) % 10;
    if (!valid)
        check = (check + 1) % 10;
    out[n - 1] = (char)('0' + check);
    out[n] = '\0';
}

/* s with a separator after every 4 characters. */
static void
grouped(const char *s, char sep, char *out)
{
    size_t k = 0;
    for (size_t i = 0; s[i]; i++) {
        if (i && i % 4 == 0)
            out[k++] = sep;
        out[k++] = s[i];
    }
    out[k] = '\0';
}

static json_t *
J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    cr_assert_not_null(v, "bad test JSON: %s: %s", e.text, text);
    return v;
}

/* Create a method in ns with role text (NULL for none); returns its name (static slot). */
static const char *
create(const char *ns, const char *role)
{
    static char names[8][TALLY_PAYMENT_NAME_LEN];
    static int next;
    char body[512], msg[256] = "";
    if (role)
        snprintf(body, sizeof body, "{\"token\":\"tok_%d\",\"role\":\"%s\"}", next, role);
    else
        snprintf(body, sizeof body, "{\"token\":\"tok_%d\"}", next);
    json_t *req = J(body);
    char *out = names[next++ % 8];
    int rc = tally__payment_create(store, ns, req, T0, out, msg, sizeof msg);
    json_decref(req);
    cr_assert_eq(rc, 0, "create: %s %s", tally_strerror(rc), msg);
    return out;
}

/* The stored role of name in ns, or -1 when it is not stored. */
static int
stored_role(const char *ns, const char *name)
{
    tally__payment_list_t l = {0};
    cr_assert_eq(tally__payment_load(store, ns, &l), 0);
    long i = tally__payment_list_find(&l, name);
    int role = i < 0 ? -1 : l.v[i].role;
    tally__payment_list_fini(&l);
    return role;
}

static size_t
stored_count(const char *ns)
{
    tally__payment_list_t l = {0};
    cr_assert_eq(tally__payment_load(store, ns, &l), 0);
    size_t n = l.n;
    tally__payment_list_fini(&l);
    return n;
}

/* A pure list of roles named "m0", "m1", ... */
static void
list_of(tally__payment_list_t *l, const int *roles, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "m%zu", i);
        cr_assert_eq(tally__payment_list_add(l, name, roles[i], NULL), 0);
    }
}

static void
expect_roles(const tally__payment_list_t *l, const int *roles)
{
    for (size_t i = 0; i < l->n; i++)
        cr_expect_eq(l->v[i].role, roles[i], "m%zu: role %d, want %d", i, l->v[i].role, roles[i]);
}

/* ---- card detection ----------------------------------------------------------------- */

Test(payment, luhn_valid_card_numbers_of_13_to_19_digits_are_cards)
{
    static const char *const known[] = {"4222222222222",    "30569309025904",   "378282246310005",
                                        "4111111111111111", "5555555555554444", "6011000990139424"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        cr_expect(tally__payment_looks_like_card(known[i]), "%s", known[i]);
    for (size_t n = 13; n <= 19; n++)
        for (unsigned seed = 0; seed < 5; seed++) {
            char num[32], sp[48], da[48];
            luhn_number(num, n, seed, 1);
            grouped(num, ' ', sp);
            grouped(num, '-', da);
            cr_expect(tally__payment_looks_like_card(num), "%s", num);
            cr_expect(tally__payment_looks_like_card(sp), "'%s'", sp);
            cr_expect(tally__payment_looks_like_card(da), "'%s'", da);
        }
    cr_expect(tally__payment_looks_like_card("4111 1111-1111 1111"));
}

Test(payment, twelve_and_twenty_digits_and_non_luhn_are_not_cards)
{
    for (unsigned seed = 0; seed < 5; seed++) {
        char num[32], sp[48];
        luhn_number(num, 12, seed, 1);
        cr_expect_not(tally__payment_looks_like_card(num), "%s", num);
        luhn_number(num, 20, seed, 1);
        cr_expect_not(tally__payment_looks_like_card(num), "%s", num);
        grouped(num, ' ', sp);
        cr_expect_not(tally__payment_looks_like_card(sp), "%s", sp);
        luhn_number(num, 16, seed, 0);
        cr_expect_not(tally__payment_looks_like_card(num), "%s", num);
    }
    cr_expect_not(tally__payment_looks_like_card("4111111111111112"));
    cr_expect_not(tally__payment_looks_like_card(NULL));
    cr_expect_not(tally__payment_looks_like_card(""));
}

Test(payment, provider_tokens_are_not_cards)
{
    static const char *const toks[] = {
        "tok_visa",       "pm_1NqLz2Ld8mQ3",   "tok_4111111111111111", "4111111111111111x",
        "card_1234-5678", "src_0000000000000", "4111.1111.1111.1111",  "4111_1111_1111_1111"};
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++)
        cr_expect_not(tally__payment_looks_like_card(toks[i]), "%s", toks[i]);
    /* random alphanumeric tokens */
    srand(42);
    for (int k = 0; k < 200; k++) {
        char t[33];
        static const char al[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
        snprintf(t, sizeof t, "tok_");
        for (int i = 4; i < 32; i++)
            t[i] = al[rand() % (int)(sizeof al - 1)];
        t[32] = '\0';
        cr_expect_not(tally__payment_looks_like_card(t), "%s", t);
    }
}

Test(payment, create_refuses_card_numbers_without_quoting_them)
{
    char num[32], sp[48], body[256], msg[256] = "", name[TALLY_PAYMENT_NAME_LEN];
    luhn_number(num, 16, 3, 1);
    grouped(num, ' ', sp);
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", sp);
    json_t *req = J(body);
    int rc = tally__payment_create(store, "demo", req, T0, name, msg, sizeof msg);
    json_decref(req);
    cr_assert_eq(rc, TALLY_EINVAL);
    cr_expect(strstr(msg, "token") != NULL, "%s", msg);
    cr_expect(strstr(msg, num) == NULL && strstr(msg, sp) == NULL, "%s", msg);
    cr_expect_eq(stored_count("demo"), 0);

    /* 20 digits and non-Luhn 16 digits are accepted */
    luhn_number(num, 20, 3, 1);
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", num);
    req = J(body);
    cr_expect_eq(tally__payment_create(store, "demo", req, T0, name, msg, sizeof msg), 0, "%s",
                 msg);
    json_decref(req);
    luhn_number(num, 16, 3, 0);
    snprintf(body, sizeof body, "{\"token\":\"%s\"}", num);
    req = J(body);
    cr_expect_eq(tally__payment_create(store, "demo", req, T0, name, msg, sizeof msg), 0, "%s",
                 msg);
    json_decref(req);
    cr_expect_eq(stored_count("demo"), 2);
}

Test(payment, create_validation_names_the_field)
{
    static const struct {
        const char *body, *field;
    } cases[] = {
        {"{}", "token"},
        {"{\"token\":\"\"}", "token"},
        {"{\"token\":7}", "token"},
        {"{\"token\":\"t\",\"role\":\"BOSS\"}", "role"},
        {"{\"token\":\"t\",\"role\":3}", "role"},
        {"{\"token\":\"t\",\"namespace\":\"other\"}", "namespace"},
        {"{\"token\":\"t\",\"contact\":[]}", "contact"},
        {"{\"token\":\"t\",\"contact\":{\"city\":5}}", "contact.city"},
        {"{\"token\":\"t\",\"contact\":{\"contact_type\":\"HOME\"}}", "contact.contact_type"},
        {"{\"token\":\"a\\u0001b\"}", "token"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256] = "", name[TALLY_PAYMENT_NAME_LEN];
        json_t *req = J(cases[i].body);
        int rc = tally__payment_create(store, "demo", req, T0, name, msg, sizeof msg);
        json_decref(req);
        cr_expect_eq(rc, TALLY_EINVAL, "%s", cases[i].body);
        cr_expect(strncmp(msg, cases[i].field, strlen(cases[i].field)) == 0, "%s -> %s",
                  cases[i].body, msg);
    }
    cr_expect_eq(stored_count("demo"), 0);
}

/* ---- role rules (pure) ------------------------------------------------------------- */

Test(payment, initial_role_first_method_is_primary)
{
    tally__payment_list_t l = {0};
    cr_expect_eq(tally__payment_initial_role(&l, TALLY_PAYMENT_ROLE_UNKNOWN), P);
    cr_expect_eq(tally__payment_initial_role(&l, N), N);
    list_of(&l, (int[]){N}, 1);
    cr_expect_eq(tally__payment_initial_role(&l, TALLY_PAYMENT_ROLE_UNKNOWN), P);
    tally__payment_list_fini(&l);
    list_of(&l, (int[]){P}, 1);
    cr_expect_eq(tally__payment_initial_role(&l, TALLY_PAYMENT_ROLE_UNKNOWN), N);
    cr_expect_eq(tally__payment_initial_role(&l, S), S);
    tally__payment_list_fini(&l);
}

Test(payment, every_set_role_transition)
{
    /* from each role of m0 (with a primary, secondary and normal around) to each role */
    static const int from[] = {P, S, N};
    static const int to[] = {P, S, N};
    for (size_t f = 0; f < 3; f++)
        for (size_t t = 0; t < 3; t++) {
            /* m0 has role from[f]; the other two roles are held by m1, m2 where free */
            int roles[3] = {from[f], N, N};
            int others[2], k = 0;
            for (int r = P; r <= N && k < 2; r++)
                if (r != from[f])
                    others[k++] = r;
            roles[1] = others[0];
            roles[2] = others[1];
            tally__payment_list_t l = {0};
            list_of(&l, roles, 3);
            cr_assert_eq(tally__payment_set_role(&l, 0, to[t]), 0);
            int want[3] = {to[t], roles[1], roles[2]};
            if (to[t] != N && to[t] != from[f])
                for (int i = 1; i < 3; i++)
                    if (roles[i] == to[t])
                        want[i] = N;
            expect_roles(&l, want);
            /* only what moved is marked changed */
            for (int i = 0; i < 3; i++)
                cr_expect_eq(l.v[i].changed, want[i] != roles[i], "from %d to %d: m%d", from[f],
                             to[t], i);
            /* the invariant holds */
            int np = 0, ns = 0;
            for (int i = 0; i < 3; i++) {
                np += l.v[i].role == P;
                ns += l.v[i].role == S;
            }
            cr_expect(np <= 1 && ns <= 1);
            tally__payment_list_fini(&l);
        }
}

Test(payment, primary_of_the_secondary_leaves_no_secondary)
{
    tally__payment_list_t l = {0};
    list_of(&l, (int[]){P, S, N}, 3);
    cr_assert_eq(tally__payment_set_role(&l, 1, P), 0);
    expect_roles(&l, (int[]){N, P, N});
    cr_expect_eq(tally__payment_list_holder(&l, S), -1);
    cr_assert_eq(tally__payment_set_role(&l, 1, S), 0);
    expect_roles(&l, (int[]){N, S, N});
    cr_expect_eq(tally__payment_list_holder(&l, P), -1);
    cr_expect_eq(tally__payment_set_role(&l, 3, P), TALLY_EINVAL);
    cr_expect_eq(tally__payment_set_role(&l, 0, TALLY_PAYMENT_ROLE_UNKNOWN), TALLY_EINVAL);
    tally__payment_list_fini(&l);
}

Test(payment, swap_exchanges_primary_and_secondary)
{
    tally__payment_list_t l = {0};
    list_of(&l, (int[]){P, S, N}, 3);
    cr_assert_eq(tally__payment_swap(&l, -1), 0);
    expect_roles(&l, (int[]){S, P, N});
    cr_assert_eq(tally__payment_swap(&l, -1), 0);
    expect_roles(&l, (int[]){P, S, N});
    /* a named normal method is promoted; the primary becomes secondary, the secondary normal */
    cr_assert_eq(tally__payment_swap(&l, 2), 0);
    expect_roles(&l, (int[]){S, N, P});
    /* promoting the primary changes nothing */
    for (size_t i = 0; i < l.n; i++)
        l.v[i].changed = 0;
    cr_assert_eq(tally__payment_swap(&l, 2), 0);
    expect_roles(&l, (int[]){S, N, P});
    for (size_t i = 0; i < l.n; i++)
        cr_expect_eq(l.v[i].changed, 0);
    cr_expect_eq(tally__payment_swap(&l, 7), TALLY_EINVAL);
    tally__payment_list_fini(&l);
}

Test(payment, swap_without_secondary)
{
    tally__payment_list_t l = {0};
    list_of(&l, (int[]){P, N}, 2);
    cr_expect_eq(tally__payment_swap(&l, -1), TALLY_EBUSY);
    expect_roles(&l, (int[]){P, N});
    tally__payment_list_fini(&l);
    /* a secondary and no primary: the secondary becomes primary */
    list_of(&l, (int[]){N, S}, 2);
    cr_expect_eq(tally__payment_swap(&l, -1), 0);
    expect_roles(&l, (int[]){N, P});
    tally__payment_list_fini(&l);
}

Test(payment, delete_rules)
{
    tally__payment_list_t l = {0};
    list_of(&l, (int[]){P, S, N}, 3);
    cr_expect_eq(tally__payment_check_delete(&l, 0), TALLY_EBUSY);
    cr_expect_eq(tally__payment_check_delete(&l, 1), 0);
    cr_expect_eq(tally__payment_check_delete(&l, 2), 0);
    cr_expect_eq(tally__payment_check_delete(&l, 3), TALLY_EINVAL);
    tally__payment_list_fini(&l);
    list_of(&l, (int[]){P}, 1);
    cr_expect_eq(tally__payment_check_delete(&l, 0), 0);
    tally__payment_list_fini(&l);
}

Test(payment, role_names_round_trip)
{
    for (int r = TALLY_PAYMENT_ROLE_UNKNOWN; r <= N; r++) {
        int back = -1;
        cr_expect_eq(tally__payment_role_parse(tally__payment_role_name(r), &back), 0);
        cr_expect_eq(back, r);
    }
    int x;
    cr_expect_eq(tally__payment_role_parse("PRIMARY", &x), TALLY_EINVAL);
    cr_expect_eq(tally__payment_role_parse(NULL, &x), TALLY_EINVAL);
    cr_expect_str_eq(tally__payment_role_name(9), "");
}

/* ---- persistence -------------------------------------------------------------------- */

Test(payment, stored_roles_follow_the_rules)
{
    const char *a = create("demo", NULL); /* first: primary */
    const char *b = create("demo", NULL); /* then normal */
    cr_expect_eq(stored_role("demo", a), P);
    cr_expect_eq(stored_role("demo", b), N);
    const char *c = create("demo", "PAYMENT_METHOD_ROLE_SECONDARY");
    cr_expect_eq(stored_role("demo", c), S);
    /* a new primary displaces the old one in the same batch */
    const char *d = create("demo", "PAYMENT_METHOD_ROLE_PRIMARY");
    cr_expect_eq(stored_role("demo", d), P);
    cr_expect_eq(stored_role("demo", a), N);

    cr_assert_eq(tally__payment_make(store, "demo", b, S), 0);
    cr_expect_eq(stored_role("demo", b), S);
    cr_expect_eq(stored_role("demo", c), N);
    cr_assert_eq(tally__payment_swap_roles(store, "demo", NULL), 0);
    cr_expect_eq(stored_role("demo", b), P);
    cr_expect_eq(stored_role("demo", d), S);
    cr_assert_eq(tally__payment_swap_roles(store, "demo", a), 0);
    cr_expect_eq(stored_role("demo", a), P);
    cr_expect_eq(stored_role("demo", b), S);
    cr_expect_eq(stored_role("demo", d), N);

    cr_expect_eq(tally__payment_make(store, "demo", "nope", P), TALLY_ENOTFOUND);
    cr_expect_eq(tally__payment_swap_roles(store, "demo", "nope"), TALLY_ENOTFOUND);
    cr_expect_eq(tally__payment_make(store, "demo", a, N), TALLY_EINVAL);
    /* other namespaces are untouched and separate */
    cr_expect_eq(stored_count("other"), 0);
    cr_expect_eq(tally__payment_make(store, "other", a, P), TALLY_ENOTFOUND);
}

Test(payment, delete_primary_with_others_conflicts)
{
    const char *a = create("demo", NULL);
    const char *b = create("demo", NULL);
    cr_expect_eq(tally__payment_delete(store, "demo", a), TALLY_EBUSY);
    cr_expect_eq(stored_count("demo"), 2);
    cr_expect_eq(tally__payment_delete(store, "demo", b), 0);
    cr_expect_eq(tally__payment_delete(store, "demo", b), TALLY_ENOTFOUND);
    cr_expect_eq(tally__payment_delete(store, "demo", a), 0); /* the last one may go */
    cr_expect_eq(stored_count("demo"), 0);
    cr_expect_eq(tally__payment_swap_roles(store, "demo", NULL), TALLY_EBUSY);
}

Test(payment, records_survive_reopen)
{
    char msg[256] = "", name[TALLY_PAYMENT_NAME_LEN];
    json_t *req = J("{\"token\":\"tok_persist\",\"role\":\"PAYMENT_METHOD_ROLE_SECONDARY\","
                    "\"namespace\":\"demo\",\"contact\":{\"city\":\"Oslo\",\"contact_type\":"
                    "\"PAYMENT\",\"extra\":\"dropped\"}}");
    cr_assert_eq(tally__payment_create(store, "demo", req, T0, name, msg, sizeof msg), 0, "%s",
                 msg);
    json_decref(req);
    cr_expect_eq(strlen(name), 36);
    const char *p = create("demo", NULL);
    char pname[TALLY_PAYMENT_NAME_LEN];
    snprintf(pname, sizeof pname, "%s", p);

    tally__store_close(store);
    store = NULL;
    open_store();

    cr_expect_eq(stored_role("demo", name), S);
    cr_expect_eq(stored_role("demo", pname), P);
    char *text;
    size_t len;
    cr_assert_eq(tally__store_obj_get(store, TALLY_PAYMENT_KIND, "demo", name, &text, &len), 0);
    json_t *rec;
    int role;
    cr_assert_eq(tally__payment_record_parse(text, len, &rec, &role), 0);
    free(text);
    cr_expect_eq(role, S);
    cr_expect_str_eq(json_string_value(json_object_get(rec, "token")), "tok_persist");
    cr_expect_str_eq(json_string_value(json_object_get(rec, "namespace")), "demo");
    cr_expect_str_eq(json_string_value(json_object_get(rec, "name")), name);
    cr_expect_str_eq(json_string_value(json_object_get(rec, "created")), "2024-02-29T23:00:00Z");
    json_t *c = json_object_get(rec, "contact");
    cr_expect_str_eq(json_string_value(json_object_get(c, "city")), "Oslo");
    cr_expect_null(json_object_get(c, "extra"));
    json_decref(rec);

    /* a swap after reopen writes both methods */
    cr_assert_eq(tally__payment_swap_roles(store, "demo", NULL), 0);
    tally__store_close(store);
    store = NULL;
    open_store();
    cr_expect_eq(stored_role("demo", name), P);
    cr_expect_eq(stored_role("demo", pname), S);
}

Test(payment, corrupt_records_are_reported)
{
    json_t *rec;
    int role;
    cr_expect_eq(tally__payment_record_parse("nope", 4, &rec, &role), TALLY_ECORRUPT);
    const char *bad = "{\"name\":\"x\",\"role\":\"PAYMENT_METHOD_ROLE_UNKNOWN\"}";
    cr_expect_eq(tally__payment_record_parse(bad, strlen(bad), &rec, &role), TALLY_ECORRUPT);
    const char *good = "{\"name\":\"x\",\"role\":\"PAYMENT_METHOD_ROLE_NORMAL\"}";
    cr_assert_eq(tally__payment_record_parse(good, strlen(good), &rec, &role), 0);
    cr_expect_eq(role, N);
    json_decref(rec);
}
