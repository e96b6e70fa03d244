/* test_selector.c — Criterion tests of lib/selector: the label-selector grammar, its error messages
 * and matching. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>
#include <jansson.h>

#include "selector.h"
#include "tally/tally.h"

TestSuite(selector, .timeout = 30);

/* Parse text, assert success, and return the canonical form in buf. */
static const char *
canon(const char *text, char *buf, size_t cap)
{
    tally__selector_t *sel = NULL;
    char err[256] = "";
    int rc = tally__selector_parse(text, &sel, err, sizeof err);
    cr_assert_eq(rc, 0, "'%s' should parse: %s", text, err);
    tally__selector_format(sel, buf, cap);
    tally__selector_destroy(sel);
    return buf;
}

/* Parse text, assert TALLY_EINVAL, and return the message. */
static const char *
parse_err(const char *text, char *err, size_t cap)
{
    tally__selector_t *sel = NULL;
    int rc = tally__selector_parse(text, &sel, err, cap);
    cr_assert_eq(rc, TALLY_EINVAL, "'%s' should not parse", text);
    cr_assert_null(sel);
    return err;
}

static int
matches(const char *text, const char *labels_json)
{
    tally__selector_t *sel = NULL;
    char err[256] = "";
    cr_assert_eq(tally__selector_parse(text, &sel, err, sizeof err), 0, "%s", err);
    json_t *labels = labels_json ? json_loads(labels_json, 0, NULL) : NULL;
    int m = tally__selector_match_json(sel, labels);
    json_decref(labels);
    tally__selector_destroy(sel);
    return m;
}

Test(selector, every_operator_parses_to_its_canonical_form)
{
    char b[256];
    cr_expect_str_eq(canon("a=b", b, sizeof b), "a=b");
    cr_expect_str_eq(canon("a==b", b, sizeof b), "a=b");
    cr_expect_str_eq(canon("a!=b", b, sizeof b), "a!=b");
    cr_expect_str_eq(canon("a in (y,x)", b, sizeof b), "a in (x,y)");
    cr_expect_str_eq(canon("a notin (x)", b, sizeof b), "a notin (x)");
    cr_expect_str_eq(canon("a", b, sizeof b), "a");
    cr_expect_str_eq(canon("!a", b, sizeof b), "!a");
    cr_expect_str_eq(canon("a=", b, sizeof b), "a=");
}

Test(selector, blanks_are_ignored_and_commas_join)
{
    char b[256];
    cr_expect_str_eq(
        canon("  env = prod ,  tier in ( web , db , web ) , !canary,team ", b, sizeof b),
        "env=prod,tier in (db,web),!canary,team");
    cr_expect_str_eq(canon("a in(x)", b, sizeof b), "a in (x)");
    cr_expect_str_eq(canon("example.com/app=v1.2_3-x", b, sizeof b), "example.com/app=v1.2_3-x");
}

Test(selector, empty_text_is_the_empty_selector_that_matches_all)
{
    tally__selector_t *sel = NULL;
    cr_assert_eq(tally__selector_parse("   ", &sel, NULL, 0), 0);
    cr_expect_eq(tally__selector_count(sel), 0);
    cr_expect(tally__selector_match_json(sel, NULL));
    tally__selector_destroy(sel);
    cr_assert_eq(tally__selector_parse(NULL, &sel, NULL, 0), 0);
    cr_expect_eq(tally__selector_count(sel), 0);
    tally__selector_destroy(sel);
    cr_expect(tally__selector_match_json(NULL, NULL), "a NULL selector matches everything");
}

Test(selector, matching_follows_kubernetes_semantics)
{
    const char *L = "{\"env\":\"prod\",\"tier\":\"web\",\"empty\":\"\"}";
    cr_expect(matches("env=prod", L));
    cr_expect_not(matches("env=dev", L));
    cr_expect_not(matches("missing=x", L));
    cr_expect(matches("env!=dev", L));
    cr_expect_not(matches("env!=prod", L));
    cr_expect(matches("missing!=x", L), "!= holds when the label is absent");
    cr_expect(matches("tier in (db,web)", L));
    cr_expect_not(matches("tier in (db)", L));
    cr_expect_not(matches("missing in (x)", L));
    cr_expect(matches("tier notin (db)", L));
    cr_expect_not(matches("tier notin (web,db)", L));
    cr_expect(matches("missing notin (x)", L), "notin holds when the label is absent");
    cr_expect(matches("env", L));
    cr_expect_not(matches("missing", L));
    cr_expect(matches("!missing", L));
    cr_expect_not(matches("!env", L));
    cr_expect(matches("empty=", L));
    cr_expect_not(matches("env=", L));
    cr_expect(matches("env=prod,tier=web,!missing", L), "comma means and");
    cr_expect_not(matches("env=prod,tier=db", L));
    cr_expect_not(matches("env", NULL), "no labels at all");
    cr_expect(matches("!env", NULL));
    cr_expect_not(matches("env=prod", "{\"env\":1}"), "non-string values count as absent");
}

Test(selector, errors_name_position_expectation_and_finding)
{
    char e[256];
    cr_expect_str_eq(parse_err("a=b,", e, sizeof e),
                     "at 5: expected a requirement after ',', found the end of the expression");
    cr_expect_str_eq(parse_err(",a", e, sizeof e), "at 1: expected a label key or '!', found ','");
    cr_expect_str_eq(parse_err("a in x", e, sizeof e), "at 6: expected '(' after 'in', found 'x'");
    cr_expect_str_eq(parse_err("a in ()", e, sizeof e),
                     "at 7: the value set of 'in' must not be empty");
    cr_expect_str_eq(
        parse_err("a notin (x", e, sizeof e),
        "at 11: expected ',' or ')' in the value set, found the end of the expression");
    cr_expect_str_eq(parse_err("a in (x,)", e, sizeof e), "at 9: expected a value, found ')'");
    cr_expect_str_eq(parse_err("a b", e, sizeof e),
                     "at 3: expected '=', '==', '!=', 'in', 'notin', ',' or the end after key "
                     "'a', found 'b'");
    cr_expect_str_eq(parse_err("a=b=c", e, sizeof e),
                     "at 4: expected ',' or the end after a value, found '='");
    cr_expect_str_eq(parse_err("!", e, sizeof e),
                     "at 2: expected a label key after '!', found the end of the expression");
    cr_expect_str_eq(parse_err("!a=b", e, sizeof e),
                     "at 3: expected ',' or the end after a '!key' requirement, found '='");
    cr_expect_str_eq(parse_err("a>1", e, sizeof e),
                     "at 2: operator '>' is not supported (expected '=', '==', '!=', 'in', "
                     "'notin', ',' or the end after key 'a')");
    cr_expect_str_eq(parse_err("a=(", e, sizeof e), "at 3: expected a value after '=', found '('");
    cr_expect_str_eq(parse_err("a in (x) y", e, sizeof e),
                     "at 10: expected ',' or the end after ')', found 'y'");
}

Test(selector, invalid_keys_and_values_are_refused_with_the_reason)
{
    char e[256];
    cr_expect_str_eq(parse_err("-a=b", e, sizeof e),
                     "at 1: invalid label key '-a': must begin and end with a letter or digit");
    cr_expect_str_eq(parse_err("a=b$c", e, sizeof e),
                     "at 3: invalid label value 'b$c': may contain only letters, digits, '-', "
                     "'_' and '.'");
    cr_expect_str_eq(parse_err("Example.com/a", e, sizeof e),
                     "at 1: invalid label key 'Example.com/a': the prefix before '/' must be a "
                     "DNS subdomain (lower-case labels of a-z, 0-9 and '-' joined by '.')");
    cr_expect_str_eq(parse_err("x.io/", e, sizeof e),
                     "at 1: invalid label key 'x.io/': the name after '/' must not be empty");
    char longkey[80];
    memset(longkey, 'k', 64);
    longkey[64] = '\0';
    cr_expect_str_eq(parse_err(longkey, e, sizeof e),
                     "at 1: invalid label key "
                     "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk': must be "
                     "at most 63 characters");
    char longval[90];
    snprintf(longval, sizeof longval, "a in (x,%s)", longkey);
    parse_err(longval, e, sizeof e);
    cr_expect(strstr(e, "at 9: invalid label value") == e, "%s", e);
}

Test(selector, over_long_text_is_refused)
{
    char *t = malloc(TALLY_SELECTOR_MAX_TEXT + 2);
    cr_assert_not_null(t);
    memset(t, 'a', TALLY_SELECTOR_MAX_TEXT + 1);
    t[TALLY_SELECTOR_MAX_TEXT + 1] = '\0';
    char e[256];
    parse_err(t, e, sizeof e);
    free(t);
    cr_expect(strstr(e, "longer than 4096 bytes") != NULL, "%s", e);
}

Test(selector, check_key_and_value_helpers)
{
    char e[128];
    cr_expect_eq(tally__selector_check_key("app.kubernetes.io/name", e, sizeof e), 0);
    cr_expect_eq(tally__selector_check_key("a_b.c-d", e, sizeof e), 0);
    cr_expect_eq(tally__selector_check_key("", e, sizeof e), TALLY_EINVAL);
    cr_expect_str_eq(e, "must not be empty");
    cr_expect_eq(tally__selector_check_key("a b", e, sizeof e), TALLY_EINVAL);
    cr_expect_eq(tally__selector_check_value("", e, sizeof e), 0);
    cr_expect_eq(tally__selector_check_value("v1", e, sizeof e), 0);
    cr_expect_eq(tally__selector_check_value("v1,", e, sizeof e), TALLY_EINVAL);
}

Test(selector, format_truncates_like_snprintf)
{
    tally__selector_t *sel = NULL;
    cr_assert_eq(tally__selector_parse("abc=def,g", &sel, NULL, 0), 0);
    char b[5];
    cr_expect_eq(tally__selector_format(sel, b, sizeof b), 9);
    cr_expect_str_eq(b, "abc=");
    cr_expect_eq(tally__selector_count(sel), 2);
    tally__selector_destroy(sel);
}
