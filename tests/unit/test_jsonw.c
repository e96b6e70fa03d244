/* test_jsonw.c — the JSON response writer: structure, escaping, numbers, and base64 against RFC
 * 4648 vectors. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <string.h>

#include "ids.h"
#include "jsonw.h"

static char *
finish(tally__jw_t *w)
{
    size_t len;
    char *s = tally__jw_take(w, &len);
    cr_assert_not_null(s);
    cr_assert_eq(strlen(s), len);
    return s;
}

Test(jsonw, nests_objects_and_arrays_with_commas_in_place)
{
    tally__jw_t w;
    tally__jw_init(&w);
    tally__jw_obj_begin(&w);
    tally__jw_key(&w, "a");
    tally__jw_arr_begin(&w);
    tally__jw_int(&w, 1);
    tally__jw_obj_begin(&w);
    tally__jw_obj_end(&w);
    tally__jw_arr_begin(&w);
    tally__jw_arr_end(&w);
    tally__jw_null(&w);
    tally__jw_bool(&w, 1);
    tally__jw_arr_end(&w);
    tally__jw_key(&w, "b");
    tally__jw_str(&w, "x");
    tally__jw_obj_end(&w);
    char *s = finish(&w);
    cr_assert_str_eq(s, "{\"a\":[1,{},[],null,true],\"b\":\"x\"}");
    free(s);
}

Test(jsonw, escapes_what_json_requires_and_round_trips_through_jansson)
{
    const char *in = "q\"b\\s/\n\r\t\x01\x1f caf\xc3\xa9 \xf0\x9f\x98\x80";
    tally__jw_t w;
    tally__jw_init(&w);
    tally__jw_arr_begin(&w);
    tally__jw_str(&w, in);
    tally__jw_arr_end(&w);
    char *s = finish(&w);
    json_error_t e;
    json_t *v = json_loads(s, 0, &e);
    cr_assert_not_null(v, "not JSON: %s (%s)", s, e.text);
    cr_assert_str_eq(json_string_value(json_array_get(v, 0)), in);
    cr_assert(strstr(s, "\\u0001") && strstr(s, "\\\"") && strstr(s, "\\\\") && strstr(s, "\\n"));
    json_decref(v);
    free(s);
}

Test(jsonw, numbers_read_back_exactly)
{
    const double ds[] = {0.1, 1.0 / 3.0, 1e300, -2.5e-308, 123456789.125, 5e-324};
    for (size_t i = 0; i < sizeof ds / sizeof ds[0]; i++) {
        tally__jw_t w;
        tally__jw_init(&w);
        tally__jw_double(&w, ds[i]);
        char *s = finish(&w);
        cr_assert_eq(strtod(s, NULL), ds[i], "%s", s);
        cr_assert(strpbrk(s, ".e"), "a real keeps a '.' or an exponent: %s", s);
        free(s);
    }
    tally__jw_t w;
    tally__jw_init(&w);
    tally__jw_arr_begin(&w);
    tally__jw_int(&w, INT64_MIN);
    tally__jw_int(&w, INT64_MAX);
    tally__jw_double(&w, 3.0);
    tally__jw_double(&w, NAN);
    tally__jw_arr_end(&w);
    char *s = finish(&w);
    cr_assert_str_eq(s, "[-9223372036854775808,9223372036854775807,3.0,0.0]");
    free(s);
}

Test(jsonw, base64_matches_rfc4648_vectors)
{
    static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *const out[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                      "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    char buf[16];
    for (size_t i = 0; i < 7; i++) {
        size_t n = tally__base64_encode(buf, sizeof buf, in[i], strlen(in[i]));
        cr_assert_eq(n, strlen(out[i]));
        cr_assert_str_eq(buf, out[i]);
    }
    cr_assert_eq(tally__base64_encode(buf, 4, "foo", 3), 0, "no room for the NUL");
}

Test(jsonw, plain_strings_and_raw_values_go_in_verbatim)
{
    tally__jw_t w;
    tally__jw_init(&w);
    tally__jw_obj_begin(&w);
    tally__jw_key(&w, "t");
    tally__jw_str_plain(&w, "2026-11-26T17:00:00Z", 20);
    tally__jw_key(&w, "r");
    tally__jw_raw(&w, "[1,2]", 5);
    tally__jw_obj_end(&w);
    char *s = finish(&w);
    cr_assert_str_eq(s, "{\"t\":\"2026-11-26T17:00:00Z\",\"r\":[1,2]}");
    free(s);
}

Test(jsonw, large_documents_grow_the_buffer)
{
    tally__jw_t w;
    tally__jw_init(&w);
    tally__jw_arr_begin(&w);
    for (int i = 0; i < 100000; i++)
        tally__jw_int(&w, i);
    tally__jw_arr_end(&w);
    char *s = finish(&w);
    json_t *v = json_loads(s, 0, NULL);
    cr_assert_eq(json_array_size(v), 100000);
    cr_assert_eq(json_integer_value(json_array_get(v, 99999)), 99999);
    json_decref(v);
    free(s);
}
