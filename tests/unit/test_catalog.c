/* test_catalog.c — unit tests of the metric catalog: loading, defaults, lookups and errors. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "catalog.h"
#include "tally/tally.h"

static char *
write_temp(const char *text)
{
    char *path = strdup("/tmp/tally-test-catalog-XXXXXX");
    cr_assert_not_null(path);
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
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

static void
expect_error(const char *text, int line, const char *fragment)
{
    char *path = write_temp(text);
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    int rc = tally__catalog_load(path, &cat, err, sizeof err);
    char prefix[256];
    snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    cr_expect_eq(rc, TALLY_ECONFIG, "rc %d for:\n%s", rc, text);
    cr_expect_null(cat);
    cr_expect(strncmp(err, prefix, strlen(prefix)) == 0, "error '%s' lacks '%s'", err, prefix);
    cr_expect(strstr(err, fragment) != NULL, "error '%s' lacks '%s'", err, fragment);
    tally__catalog_destroy(cat);
    remove_temp(path);
}

Test(catalog, loads_definitions_in_file_order)
{
    char *path = write_temp("[zeta]\n"
                            "usage_type = Zeta Things\n"
                            "unit = things\n"
                            "aggregation = max\n"
                            "billable_unit = thousand things ; a comment\n"
                            "division_factor = 1000\n"
                            "\n"
                            "[alpha]\n"
                            "aggregation = last\n"
                            "unit = objects\n"
                            "[mid.metric:v2-x]\n"
                            "aggregation = COUNT\n");
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tally__catalog_count(cat), 3);
    cr_expect_str_eq(tally__catalog_at(cat, 0)->metric, "zeta");
    cr_expect_str_eq(tally__catalog_at(cat, 1)->metric, "alpha");
    cr_expect_str_eq(tally__catalog_at(cat, 2)->metric, "mid.metric:v2-x");
    cr_expect_null(tally__catalog_at(cat, 3));

    const tally__metric_def_t *z = tally__catalog_find(cat, "zeta");
    cr_assert_not_null(z);
    cr_expect_str_eq(z->usage_type, "Zeta Things");
    cr_expect_str_eq(z->unit, "things");
    cr_expect_eq(z->aggregation, TALLY_AGG_MAX);
    cr_expect_str_eq(z->billable_unit, "thousand things");
    cr_expect_eq(z->division_factor, 1000);
    cr_expect_float_eq(tally__metric_billable(z, 2500.0), 2.5, 1e-9);

    /* Omitted keys take their defaults; billable_unit follows unit. */
    const tally__metric_def_t *a = tally__catalog_find(cat, "alpha");
    cr_assert_not_null(a);
    cr_expect_str_eq(a->usage_type, "alpha");
    cr_expect_str_eq(a->unit, "objects");
    cr_expect_eq(a->aggregation, TALLY_AGG_LAST);
    cr_expect_str_eq(a->billable_unit, "objects");
    cr_expect_eq(a->division_factor, 1);

    const tally__metric_def_t *m = tally__catalog_find(cat, "mid.metric:v2-x");
    cr_assert_not_null(m);
    cr_expect_eq(m->aggregation, TALLY_AGG_COUNT);
    cr_expect_str_eq(m->unit, "count");

    cr_expect_null(tally__catalog_find(cat, "beta"));
    cr_expect_null(tally__catalog_find(cat, "zet"));
    cr_expect_null(tally__catalog_find(cat, ""));
    tally__catalog_destroy(cat);
    remove_temp(path);
}

Test(catalog, finds_every_metric_of_a_larger_catalog)
{
    char text[16384] = "";
    size_t off = 0;
    for (int i = 99; i >= 0; i--)
        off += (size_t)snprintf(text + off, sizeof text - off, "[m%02d]\ndivision_factor = %d\n", i,
                                i + 1);
    char *path = write_temp(text);
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tally__catalog_count(cat), 100);
    for (int i = 0; i < 100; i++) {
        char name[8];
        snprintf(name, sizeof name, "m%02d", i);
        const tally__metric_def_t *d = tally__catalog_find(cat, name);
        cr_assert_not_null(d, "%s", name);
        cr_expect_eq(d->division_factor, (uint64_t)i + 1);
    }
    tally__catalog_destroy(cat);
    remove_temp(path);
}

Test(catalog, unknown_metric_gets_the_default_definition)
{
    char *path = write_temp("[http_requests]\nunit = requests\n");
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    tally__metric_def_t tmp;
    const tally__metric_def_t *d = tally__catalog_lookup_or_default(cat, "custom_metric", &tmp);
    cr_expect_eq(d, &tmp);
    cr_expect_str_eq(d->metric, "custom_metric");
    cr_expect_str_eq(d->usage_type, "custom_metric");
    cr_expect_str_eq(d->unit, "count");
    cr_expect_eq(d->aggregation, TALLY_AGG_SUM);
    cr_expect_str_eq(d->billable_unit, "count");
    cr_expect_eq(d->division_factor, 1);

    d = tally__catalog_lookup_or_default(cat, "http_requests", &tmp);
    cr_expect_neq(d, &tmp);
    cr_expect_str_eq(d->unit, "requests");

    /* No catalog at all behaves as an empty one. */
    cr_expect_eq(tally__catalog_count(NULL), 0);
    cr_expect_null(tally__catalog_find(NULL, "http_requests"));
    cr_expect_eq(tally__catalog_lookup_or_default(NULL, "x", &tmp), &tmp);
    tally__catalog_destroy(cat);
    remove_temp(path);
}

Test(catalog, empty_file_is_an_empty_catalog)
{
    char *path = write_temp("# nothing yet\n");
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    cr_expect_eq(tally__catalog_count(cat), 0);
    cr_expect_null(tally__catalog_find(cat, "x"));
    tally__catalog_destroy(cat);
    remove_temp(path);
}

Test(catalog, unknown_key_is_an_error)
{
    expect_error("[a]\nunit = x\nunits = y\n", 3, "[a] units: unknown key");
}

Test(catalog, bad_aggregation_is_an_error)
{
    expect_error("[a]\naggregation = avg\n", 2, "[a] aggregation: 'avg' is not an aggregation");
}

Test(catalog, division_factor_must_be_a_positive_integer)
{
    expect_error("[a]\ndivision_factor = 0\n", 2, "[a] division_factor: 0 is not a positive");
    expect_error("[a]\ndivision_factor = -3\n", 2, "-3 is not a positive integer");
    expect_error("[a]\ndivision_factor = 1e9\n", 2, "'1e9' is not an integer");
    expect_error("[a]\ndivision_factor = 99999999999999999999\n", 2, "not a positive integer");
}

Test(catalog, bad_metric_labels_are_errors)
{
    expect_error("[ok]\n[bad label]\nunit = x\n", 2, "[bad label]: not a metric label");
    expect_error("[bad/label]\n", 1, "not a metric label");
    expect_error("[]\n", 1, "not a metric label");
    /* 65 bytes: one too many (and longer than inih's own section buffer). */
    expect_error("[aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n", 1,
                 "not a metric label");
}

Test(catalog, a_64_byte_label_is_kept_whole)
{
    const char *label = "m123456789012345678901234567890123456789012345678901234567890123";
    cr_assert_eq(strlen(label), 64);
    char text[256];
    snprintf(text, sizeof text, "[%s]\nunit = bytes\n", label);
    char *path = write_temp(text);
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    const tally__metric_def_t *d = tally__catalog_find(cat, label);
    cr_assert_not_null(d);
    cr_expect_str_eq(d->unit, "bytes");
    tally__catalog_destroy(cat);
    remove_temp(path);
}

Test(catalog, duplicate_metric_names_the_first_line)
{
    expect_error("[a]\nunit = x\n\n[b]\n[a]\n", 5,
                 "[a]: duplicate metric (first defined on line 1)");
}

Test(catalog, duplicate_key_names_the_first_line)
{
    expect_error("[a]\nunit = x\nunit = y\n", 3, "[a] unit: duplicate key (first set on line 2)");
}

Test(catalog, empty_and_overlong_texts_are_errors)
{
    expect_error("[a]\nusage_type =\n", 2, "[a] usage_type: must not be empty");
    char text[256];
    int n = snprintf(text, sizeof text, "[a]\nunit = ");
    memset(text + n, 'u', 150);
    text[n + 150] = '\n';
    text[n + 151] = '\0';
    expect_error(text, 2, "[a] unit: longer than 127 bytes");
}

Test(catalog, syntax_errors_carry_the_line)
{
    expect_error("unit = x\n[a]\n", 1, "outside any [section]");
    expect_error("[a]\nunit x\n", 2, "expected 'key = value'");
    expect_error("[a]\nunit = x\n  more\n", 3, "values are one line");
}

Test(catalog, missing_file_is_an_error_naming_it)
{
    tally__catalog_t *cat = NULL;
    char err[256] = "";
    cr_expect_eq(tally__catalog_load("/nonexistent/metrics.ini", &cat, err, sizeof err), -ENOENT);
    cr_expect_null(cat);
    cr_expect(strncmp(err, "/nonexistent/metrics.ini: ", 26) == 0, "error: %s", err);
}

Test(catalog, shipped_catalog_loads_with_the_contract_metrics)
{
    char *path = source_path("config/metrics.ini");
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);

    const tally__metric_def_t *d = tally__catalog_find(cat, "http_requests");
    cr_assert_not_null(d);
    cr_expect_eq(d->aggregation, TALLY_AGG_SUM);
    cr_expect_str_eq(d->usage_type, "HTTP Requests");
    cr_expect_str_eq(d->unit, "requests");
    cr_expect_str_eq(d->billable_unit, "million requests");
    cr_expect_eq(d->division_factor, 1000000);

    d = tally__catalog_find(cat, "bytes_out");
    cr_assert_not_null(d);
    cr_expect_eq(d->aggregation, TALLY_AGG_SUM);
    cr_expect_str_eq(d->usage_type, "Data Transfer Out");
    cr_expect_str_eq(d->unit, "bytes");
    cr_expect_eq(d->division_factor, 1000000000);

    d = tally__catalog_find(cat, "vcpu_seconds");
    cr_assert_not_null(d);
    cr_expect_eq(d->aggregation, TALLY_AGG_SUM);
    cr_expect_str_eq(d->usage_type, "vCPU");
    cr_expect_str_eq(d->unit, "seconds");
    cr_expect_eq(d->division_factor, 3600);

    d = tally__catalog_find(cat, "lb_count");
    cr_assert_not_null(d);
    cr_expect_eq(d->aggregation, TALLY_AGG_LAST);
    cr_expect_str_eq(d->usage_type, "Load Balancers");
    cr_expect_str_eq(d->unit, "objects");
    cr_expect_str_eq(d->billable_unit, "object-hours");
    cr_expect_eq(d->division_factor, 1);

    d = tally__catalog_find(cat, "storage_bytes");
    cr_assert_not_null(d);
    cr_expect_eq(d->aggregation, TALLY_AGG_LAST);
    d = tally__catalog_find(cat, "active_sites");
    cr_assert_not_null(d);
    cr_expect_eq(d->aggregation, TALLY_AGG_MAX);
    cr_expect_not_null(tally__catalog_find(cat, "api_calls"));

    tally__catalog_destroy(cat);
    free(path);
}

Test(catalog, aggregation_names_round_trip)
{
    tally__agg_t all[] = {TALLY_AGG_SUM, TALLY_AGG_COUNT, TALLY_AGG_MAX, TALLY_AGG_LAST};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        tally__agg_t back;
        cr_expect_eq(tally__agg_parse(tally__agg_name(all[i]), &back), 0);
        cr_expect_eq(back, all[i]);
    }
    cr_expect_str_eq(tally__agg_name(TALLY_AGG_LAST), "last");
    tally__agg_t g;
    cr_expect_eq(tally__agg_parse("gauge", &g), 0);
    cr_expect_eq(g, TALLY_AGG_LAST);
    cr_expect_eq(tally__agg_parse("avg", &g), TALLY_EINVAL);
    cr_expect_str_eq(tally__agg_name((tally__agg_t)42), "unknown");
}

Test(catalog, label_validation_follows_the_wire_rules)
{
    cr_expect(tally__catalog_valid_label("a"));
    cr_expect(tally__catalog_valid_label("A-z_0.9:x"));
    cr_expect_not(tally__catalog_valid_label(""));
    cr_expect_not(tally__catalog_valid_label("a b"));
    cr_expect_not(tally__catalog_valid_label("a/b"));
    cr_expect_not(tally__catalog_valid_label("é"));
}

Test(catalog, value_field_defaults_to_value_and_is_validated)
{
    char *path = write_temp("[llm_tokens]\nvalue_field = tokens\n"
                            "[plain]\nunit = x\n"
                            "[dotted]\nvalue_field = usage.total-1\n");
    tally__catalog_t *cat = NULL;
    char err[512] = "";
    cr_assert_eq(tally__catalog_load(path, &cat, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(tally__catalog_value_field(cat, "llm_tokens"), "tokens");
    cr_expect_str_eq(tally__catalog_value_field(cat, "dotted"), "usage.total-1");
    cr_expect_str_eq(tally__catalog_value_field(cat, "plain"), "value");
    cr_expect_str_eq(tally__catalog_value_field(cat, "not_catalogued"), "value");
    cr_expect_str_eq(tally__catalog_value_field(NULL, "llm_tokens"), "value");
    tally__catalog_destroy(cat);
    remove_temp(path);

    expect_error("[a]\nvalue_field = a b\n", 2, "[a] value_field: 'a b' is not a value field name");
    expect_error("[a]\nvalue_field = $.tokens\n", 2, "is not a value field name");
    expect_error("[a]\nvalue_field = x\nvalue_field = y\n", 3, "duplicate key");
    char text[256];
    int n = snprintf(text, sizeof text, "[a]\nvalue_field = ");
    memset(text + n, 'v', 65);
    text[n + 65] = '\n';
    text[n + 66] = '\0';
    expect_error(text, 2, "is not a value field name");
    cr_expect(tally__catalog_valid_value_field("a"));
    cr_expect(tally__catalog_valid_value_field("A-z_0.9"));
    cr_expect_not(tally__catalog_valid_value_field(""));
    cr_expect_not(tally__catalog_valid_value_field("a:b"));
    cr_expect_not(tally__catalog_valid_value_field("a/b"));
}
