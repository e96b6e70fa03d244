/* test_ingest_isolation.c — end-to-end namespace isolation of ingest: a matrix generated from config/tokens (every emitter whose credential the file documents × demo, other, system and every listed namespace) proving each emitter's events count exactly where its scope allows and are refused (scope, or reserved for system) everywhere else. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "harness.h"

static harness_t *H;

static void
setup(void)
{
    H = harness_start(NULL);
}

static void
teardown(void)
{
    harness_t *h = H;
    H = NULL;
    harness_stop(h);
}

TestSuite(ingest_isolation, .init = setup, .fini = teardown, .timeout = 600);

/* ---- the tokens file --------------------------------------------------------------------------- */

#define MAX_EMITTERS 32
#define MAX_NS 64

typedef struct emitter {
    char name[80];
    char cred[160]; /* NAME:SECRET from the file's comments; "" when not documented */
    int all;        /* namespaces '*' */
    char ns[MAX_NS][80];
    size_t nns;
} emitter_t;

static int
is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* A documented credential in a comment line: a word NAME:SECRET with a
 * [A-Za-z0-9_.-] name and a 43-character base64url secret. */
static int
comment_credential(const char *line, char *name, size_t ncap, char *cred, size_t ccap)
{
    for (const char *p = line; *p; p++) {
        if (p != line && is_name_char(p[-1]))
            continue;
        const char *q = p;
        while (is_name_char(*q))
            q++;
        if (q == p || *q != ':')
            continue;
        const char *s = q + 1, *e = s;
        while ((*e >= 'A' && *e <= 'Z') || (*e >= 'a' && *e <= 'z') || (*e >= '0' && *e <= '9') ||
               *e == '_' || *e == '-')
            e++;
        if (e - s != 43 || is_name_char(*e) || *e == '=')
            continue;
        snprintf(name, ncap, "%.*s", (int)(q - p), p);
        snprintf(cred, ccap, "%.*s", (int)(e - p), p);
        return 1;
    }
    return 0;
}

/* Every `emitter` line of config/tokens, with the credential its comments document. */
static size_t
load_emitters(const char *path, emitter_t *em, size_t cap, size_t *nlines)
{
    char line[4096];
    FILE *fp = fopen(path, "r");
    cr_assert_not_null(fp, "cannot open %s", path);
    char dname[MAX_EMITTERS][80], dcred[MAX_EMITTERS][160];
    size_t nd = 0, n = 0;
    *nlines = 0;
    while (fgets(line, sizeof line, fp)) {
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p == '#') {
            if (nd < MAX_EMITTERS &&
                comment_credential(p, dname[nd], sizeof dname[nd], dcred[nd], sizeof dcred[nd]))
                nd++;
            continue;
        }
        char name[80], role[32], ns[1024], secret[256], extra[8];
        int f = sscanf(p, "%79s %31s %1023s %255s %7s", name, role, ns, secret, extra);
        if (f < 4 || strcmp(role, "emitter") != 0)
            continue;
        ++*nlines;
        cr_assert_lt(n, cap);
        emitter_t *e = &em[n++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", name);
        if (strcmp(ns, "*") == 0) {
            e->all = 1;
        } else {
            char *save = NULL;
            for (char *t = strtok_r(ns, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                cr_assert_lt(e->nns, MAX_NS);
                snprintf(e->ns[e->nns++], sizeof e->ns[0], "%s", t);
            }
        }
    }
    fclose(fp);
    /* a credential documented before or after its line: match by name */
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < nd; k++)
            if (strcmp(em[i].name, dname[k]) == 0)
                snprintf(em[i].cred, sizeof em[i].cred, "%.*s", (int)sizeof em[i].cred - 1,
                         dcred[k]);
    return n;
}

static void
add_ns(char (*set)[80], size_t *n, const char *ns)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp(set[i], ns) == 0)
            return;
    cr_assert_lt(*n, MAX_NS);
    snprintf(set[(*n)++], sizeof set[0], "%s", ns);
}

/* What the file says: accepted iff ns is listed (or the list is '*'), and never system. */
static int
expect_accept(const emitter_t *e, const char *ns)
{
    if (strcmp(ns, "system") == 0)
        return 0;
    if (e->all)
        return 1;
    for (size_t i = 0; i < e->nns; i++)
        if (strcmp(e->ns[i], ns) == 0)
            return 1;
    return 0;
}

/* ---- observing tallyd ---------------------------------------------------------------------------- */

static long long
rejects(const char *reason)
{
    harness_resp_t r;
    harness_http(H, "GET", "/metrics", NULL, NULL, &r);
    cr_assert_eq(r.status, 200);
    char key[128];
    snprintf(key, sizeof key, "tally_ingest_rejected_total{reason=\"%s\"} ", reason);
    const char *p = r.body ? strstr(r.body, key) : NULL;
    long long v = p ? atoll(p + strlen(key)) : -1;
    harness_resp_free(&r);
    cr_assert_geq(v, 0, "/metrics has no %s", key);
    return v;
}

/* Events counted in ns whose label `emitter` is name (sum of counts). */
static long long
counted(json_t *dump, const char *ns, const char *name)
{
    long long n = 0;
    size_t i;
    json_t *rec;
    json_array_foreach(dump, i, rec)
    {
        const char *rns = json_string_value(json_object_get(rec, "ns"));
        const char *lab = json_string_value(json_object_get(json_object_get(rec, "labels"),
                                                            "emitter"));
        if (rns && lab && strcmp(rns, ns) == 0 && strcmp(lab, name) == 0)
            n += json_integer_value(json_object_get(rec, "count"));
    }
    return n;
}

/* ---- the matrix ------------------------------------------------------------------------------------ */

typedef struct cell {
    const emitter_t *e;
    const char *ns;
    int expect;  /* 1 accept, 0 refuse */
    int acked;   /* observed: the batch was acked */
    int refused; /* observed: the expected reason counted it */
} cell_t;

/* The matrix of the tokens file at path, which the running tallyd (H) loaded. */
static void
run_matrix(const char *path)
{
    static emitter_t em[MAX_EMITTERS];
    size_t nlines;
    size_t n = load_emitters(path, em, MAX_EMITTERS, &nlines);
    cr_assert_gt(n, 0, "config/tokens has no emitter line");
    /* the namespaces: demo, other, system and every listed one */
    static char nsset[MAX_NS][80];
    size_t nns = 0;
    add_ns(nsset, &nns, "demo");
    add_ns(nsset, &nns, "other");
    add_ns(nsset, &nns, "system");
    size_t usable = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < em[i].nns; k++)
            add_ns(nsset, &nns, em[i].ns[k]);
        if (em[i].cred[0])
            usable++;
        else
            cr_log_warn("emitter %s: its credential is not documented in config/tokens; left out "
                        "of the matrix",
                        em[i].name);
    }
    cr_assert_gt(usable, 0, "no emitter of config/tokens has a documented credential");
    /* both kinds of scope must be in the matrix, or half of it proves nothing */
    int have_all = 0, have_list = 0;
    for (size_t i = 0; i < n; i++)
        if (em[i].cred[0])
            em[i].all ? (have_all = 1) : (have_list = 1);
    cr_expect(have_all && have_list, "the matrix lacks a '*' emitter or a listed-scope one");

    static cell_t cells[MAX_EMITTERS * MAX_NS];
    size_t nc = 0;
    for (size_t i = 0; i < n; i++) {
        if (!em[i].cred[0])
            continue;
        for (size_t k = 0; k < nns; k++)
            cells[nc++] =
                (cell_t){.e = &em[i], .ns = nsset[k], .expect = expect_accept(&em[i], nsset[k])};
    }

    /* One cell at a time: a fresh producer under the emitter's credential sends one event with
     * label emitter=NAME; then we watch whether it is acked, or refused for the right reason. */
    for (size_t c = 0; c < nc; c++) {
        cell_t *cl = &cells[c];
        const char *reason = strcmp(cl->ns, "system") == 0 ? "reserved" : "scope";
        long long before = rejects(reason);
        char producer[TALLY_MAX_PRODUCER_LEN + 1];
        snprintf(producer, sizeof producer, "iso-%zu", c);
        tally_client_options_t o = {.credential = cl->e->cred, .batch_events = 1};
        tally_client_t *cli = NULL;
        int rc = tally_client_create(H->ingest, producer, &o, &cli);
        cr_assert_eq(rc, 0, "client for %s: %s", cl->e->name, tally_strerror(rc));
        tally_label_t lab[] = {{"emitter", cl->e->name}};
        tally_event_t ev = {.ns = cl->ns, .metric = "http_requests", .ivalue = 1, .labels = lab,
                            .nlabels = 1};
        cr_assert_eq(tally_emit(cli, &ev), 0);
        /* an accepted batch is acked within a flush; give it plenty */
        cl->acked = tally_flush(cli, cl->expect ? 30000 : 1000) == 0;
        for (int w = 0; w < 50; w++) {
            if (rejects(reason) > before) {
                cl->refused = 1;
                break;
            }
            if (cl->acked)
                break; /* checked once: an accepted batch is not also refused */
            struct timespec ts = {0, 100 * 1000000L};
            nanosleep(&ts, NULL);
        }
        tally_client_destroy(cli);
    }

    /* and what the store holds */
    json_t *dump = harness_dump_json(H, NULL);
    int wrong = 0;
    for (size_t c = 0; c < nc; c++) {
        cell_t *cl = &cells[c];
        long long got = counted(dump, cl->ns, cl->e->name);
        int ok = cl->expect ? (cl->acked && got == 1) : (!cl->acked && cl->refused && got == 0);
        cr_log_info("%-14s %-8s expect %-7s: acked %d, refused %d, counted %lld%s", cl->e->name,
                    cl->ns, cl->expect ? "accept" : "refuse", cl->acked, cl->refused, got,
                    ok ? "" : "   <-- WRONG");
        if (!ok) {
            wrong++;
            cr_log_error("%s into %s: expected %s, observed acked=%d refused=%d counted=%lld",
                         cl->e->name, cl->ns, cl->expect ? "accepted and counted once" : "refused",
                         cl->acked, cl->refused, got);
        }
    }
    json_decref(dump);
    cr_log_info("ingest isolation: %zu emitter lines (%zu with a documented credential) x %zu "
                "namespaces = %zu cells, %d wrong",
                nlines, usable, nns, nc, wrong);
    cr_assert_eq(wrong, 0, "%d of %zu cells wrong (see the log)", wrong, nc);
}

Test(ingest_isolation, every_emitter_counts_only_inside_its_namespaces)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/config/tokens", H->src_dir);
    run_matrix(path);
}

/* ---- the same matrix over config/tokens plus keygen'd emitters ------------------------------------ */

/* config/tokens has one '*' emitter and one of demo only: add scopes whose names share prefixes
 * with each other (demo, demo-x, dem), a list of two, and one that lists system (keygen refuses
 * --ns system, so that line is edited after; ingest must still refuse system). Made with
 * `tallyctl keygen`, their credentials written as comments the way config/tokens documents its
 * own, so the matrix finds them the same way. */
static const char *const extra_emitters[][2] = {
    {"shop-emitter", "shop,demo-x"},
    {"dem-emitter", "dem"},
    {"sys-emitter", "other"}, /* the tokens line lists system too: see setup_extra() */
};

static char extra_dir[64], extra_path[128];

static void
setup_extra(void)
{
    char src[1024], bin[1100], cmd[4096], line[1024];
    const char *e = getenv("TALLY_SOURCE_DIR");
    if (e && *e) {
        snprintf(src, sizeof src, "%s", e);
    } else {
        snprintf(src, sizeof src, "%s", __FILE__);
        char *p = strstr(src, "/tests/e2e/");
        cr_assert_not_null(p, "set TALLY_SOURCE_DIR");
        *p = '\0';
    }
    e = getenv("TALLY_BIN_DIR");
    if (e && *e)
        snprintf(bin, sizeof bin, "%s", e);
    else
        snprintf(bin, sizeof bin, "%s/build/bin", src);
    snprintf(extra_dir, sizeof extra_dir, "/tmp/tally-isotok.XXXXXX");
    cr_assert_not_null(mkdtemp(extra_dir));
    snprintf(extra_path, sizeof extra_path, "%s/tokens", extra_dir);
    snprintf(cmd, sizeof cmd, "cp '%s/config/tokens' '%s'", src, extra_path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    FILE *out = fopen(extra_path, "a");
    cr_assert_not_null(out);
    fputs("\n# test_ingest_isolation: emitters made with tallyctl keygen\n", out);
    for (size_t i = 0; i < sizeof extra_emitters / sizeof extra_emitters[0]; i++) {
        snprintf(cmd, sizeof cmd, "'%s/tallyctl' keygen %s --ns %s", bin, extra_emitters[i][0],
                 extra_emitters[i][1]);
        FILE *kg = popen(cmd, "r");
        cr_assert_not_null(kg, "%s", cmd);
        int lines = 0;
        while (fgets(line, sizeof line, kg)) {
            if (line[0] == '#')
                continue;
            /* the tokens line as it is (sys-emitter's with system added); the credential as a
             * comment */
            char *mac = strstr(line, " mac:");
            if (strstr(line, " emitter ") && strcmp(extra_emitters[i][0], "sys-emitter") == 0 &&
                mac)
                fprintf(out, "sys-emitter emitter other,system%s", mac);
            else
                fprintf(out, "%s%s", strstr(line, " emitter ") ? "" : "#   ", line);
            lines++;
        }
        cr_assert_eq(pclose(kg), 0, "%s failed", cmd);
        cr_assert_eq(lines, 2, "%s: expected a tokens line and a credential", cmd);
    }
    fclose(out);
    char env[256];
    snprintf(env, sizeof env, "TALLY_AUTH_TOKENS_FILE=%s", extra_path);
    const char *const extra[] = {env, NULL};
    H = harness_start(extra);
}

static void
teardown_extra(void)
{
    teardown();
    if (extra_path[0])
        unlink(extra_path);
    if (extra_dir[0])
        rmdir(extra_dir);
}

Test(ingest_isolation_keygen, every_emitter_counts_only_inside_its_namespaces, .init = setup_extra,
     .fini = teardown_extra, .timeout = 600)
{
    run_matrix(extra_path);
}
