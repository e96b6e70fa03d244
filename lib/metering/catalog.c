/* catalog.c — load the metric catalog INI file and look metric labels up in it. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "catalog.h"
#include "config.h"
#include "log.h"

/* value_fields sits beside defs rather than inside tally__metric_def_t:
 * definitions are copied by value into every usage item, and only the
 * CloudEvents door reads this key. */
struct tally__catalog {
    tally__metric_def_t *defs;                      /* file order */
    const tally__metric_def_t **sorted;             /* into defs, by label */
    char (*value_fields)[TALLY__CATALOG_FIELD_LEN]; /* per def, file order */
    size_t n;
};

/* ==== aggregations ======================================================== */

static const char *const agg_names[TALLY__AGG_N] = {
    [TALLY_AGG_SUM] = "sum",
    [TALLY_AGG_COUNT] = "count",
    [TALLY_AGG_MAX] = "max",
    [TALLY_AGG_LAST] = "last",
};

const char *
tally__agg_name(tally__agg_t agg)
{
    if ((unsigned)agg >= TALLY__AGG_N)
        return "unknown";
    return agg_names[agg];
}

int
tally__agg_parse(const char *s, tally__agg_t *out)
{
    for (unsigned i = 0; i < TALLY__AGG_N; i++) {
        if (strcasecmp(s, agg_names[i]) == 0) {
            *out = (tally__agg_t)i;
            return 0;
        }
    }
    if (strcasecmp(s, "gauge") == 0) {
        *out = TALLY_AGG_LAST;
        return 0;
    }
    return TALLY_EINVAL;
}

/* ==== definitions ========================================================= */

int
tally__catalog_valid_label(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (!(isalnum(c) || c == '_' || c == '.' || c == ':' || c == '-') || n >= 64)
            return 0;
    }
    return n > 0;
}

void
tally__metric_def_default(const char *metric, tally__metric_def_t *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->metric, sizeof out->metric, "%s", metric);
    snprintf(out->usage_type, sizeof out->usage_type, "%s", out->metric);
    snprintf(out->unit, sizeof out->unit, "count");
    out->aggregation = TALLY_AGG_SUM;
    snprintf(out->billable_unit, sizeof out->billable_unit, "count");
    out->division_factor = 1;
}

int
tally__catalog_valid_value_field(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || c == '-';
        if (!ok || n >= TALLY__CATALOG_FIELD_LEN - 1)
            return 0;
    }
    return n > 0;
}

double
tally__metric_billable(const tally__metric_def_t *def, double raw)
{
    return raw / (double)(def->division_factor ? def->division_factor : 1);
}

/* ==== loading ============================================================= */

/* The keys of a metric section, in the order of the seen[] lines below. */
enum {
    KEY_USAGE_TYPE,
    KEY_UNIT,
    KEY_AGGREGATION,
    KEY_BILLABLE_UNIT,
    KEY_DIVISION_FACTOR,
    KEY_VALUE_FIELD,
    NKEY
};
static const char *const key_names[NKEY] = {
    "usage_type", "unit", "aggregation", "billable_unit", "division_factor", "value_field"};

struct loader {
    tally__metric_def_t *defs;
    char (*vfields)[TALLY__CATALOG_FIELD_LEN]; /* per def: value_field */
    int (*seen)[NKEY]; /* per def: the line that set each key, 0 = not set */
    int *lines;        /* per def: the line of its section header */
    size_t n, cap;
};

static int
grow(struct loader *L)
{
    if (L->n < L->cap)
        return 0;
    size_t cap = L->cap ? L->cap * 2 : 16;
    tally__metric_def_t *defs = realloc(L->defs, cap * sizeof *defs);
    if (defs == NULL)
        return -ENOMEM;
    L->defs = defs;
    int(*seen)[NKEY] = realloc(L->seen, cap * sizeof *seen);
    if (seen == NULL)
        return -ENOMEM;
    L->seen = seen;
    int *lines = realloc(L->lines, cap * sizeof *lines);
    if (lines == NULL)
        return -ENOMEM;
    L->lines = lines;
    char(*vfields)[TALLY__CATALOG_FIELD_LEN] = realloc(L->vfields, cap * sizeof *vfields);
    if (vfields == NULL)
        return -ENOMEM;
    L->vfields = vfields;
    L->cap = cap;
    return 0;
}

static int
set_text(char *dst, const char *value, char *reason, size_t reasonlen)
{
    size_t len = strlen(value);
    if (len == 0) {
        snprintf(reason, reasonlen, "must not be empty");
        return TALLY_ECONFIG;
    }
    if (len >= TALLY__CATALOG_TEXT_LEN) {
        snprintf(reason, reasonlen, "longer than %d bytes", TALLY__CATALOG_TEXT_LEN - 1);
        return TALLY_ECONFIG;
    }
    for (const char *p = value; *p; p++) {
        if (iscntrl((unsigned char)*p)) {
            snprintf(reason, reasonlen, "contains a control character");
            return TALLY_ECONFIG;
        }
    }
    memcpy(dst, value, len + 1);
    return 0;
}

static int
section_item(struct loader *L, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    if (!tally__catalog_valid_label(item->section)) {
        snprintf(reason, reasonlen, "not a metric label ([A-Za-z0-9_.:-], 1 to 64 bytes)");
        return TALLY_ECONFIG;
    }
    for (size_t i = 0; i < L->n; i++) {
        if (strcmp(L->defs[i].metric, item->section) == 0) {
            snprintf(reason, reasonlen, "duplicate metric (first defined on line %d)", L->lines[i]);
            return TALLY_ECONFIG;
        }
    }
    if (grow(L) != 0) {
        snprintf(reason, reasonlen, "out of memory");
        return -ENOMEM;
    }
    tally__metric_def_default(item->section, &L->defs[L->n]);
    /* A catalogued metric's billable unit follows its unit unless set. */
    L->defs[L->n].billable_unit[0] = '\0';
    memset(L->seen[L->n], 0, sizeof L->seen[L->n]);
    snprintf(L->vfields[L->n], sizeof L->vfields[L->n], "%s", TALLY__CATALOG_VALUE_FIELD);
    L->lines[L->n] = item->line;
    L->n++;
    return 0;
}

static int
key_item(struct loader *L, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    TALLY_ASSERT(L->n > 0); /* the reader rejects keys outside sections */
    tally__metric_def_t *def = &L->defs[L->n - 1];
    int k = 0;
    while (k < NKEY && strcmp(key_names[k], item->key) != 0)
        k++;
    if (k == NKEY) {
        snprintf(reason, reasonlen,
                 "unknown key (usage_type, unit, aggregation, billable_unit, division_factor, "
                 "value_field)");
        return TALLY_ECONFIG;
    }
    if (item->continuation) {
        snprintf(reason, reasonlen, "indented line continues the value; values are one line");
        return TALLY_ECONFIG;
    }
    if (L->seen[L->n - 1][k]) {
        snprintf(reason, reasonlen, "duplicate key (first set on line %d)", L->seen[L->n - 1][k]);
        return TALLY_ECONFIG;
    }
    L->seen[L->n - 1][k] = item->line;

    switch (k) {
    case KEY_USAGE_TYPE:
        return set_text(def->usage_type, item->value, reason, reasonlen);
    case KEY_UNIT:
        return set_text(def->unit, item->value, reason, reasonlen);
    case KEY_BILLABLE_UNIT:
        return set_text(def->billable_unit, item->value, reason, reasonlen);
    case KEY_AGGREGATION:
        if (tally__agg_parse(item->value, &def->aggregation) != 0) {
            snprintf(reason, reasonlen, "'%s' is not an aggregation (sum, count, max, last)",
                     item->value);
            return TALLY_ECONFIG;
        }
        return 0;
    case KEY_DIVISION_FACTOR: {
        int64_t v;
        int rc = tally__config_parse_int(item->value, INT64_MIN, INT64_MAX, &v);
        if (rc == TALLY_EINVAL) {
            snprintf(reason, reasonlen, "'%s' is not an integer", item->value);
            return TALLY_ECONFIG;
        }
        if (rc != 0 || v <= 0) {
            snprintf(reason, reasonlen, "%s is not a positive integer", item->value);
            return TALLY_ECONFIG;
        }
        def->division_factor = (uint64_t)v;
        return 0;
    }
    case KEY_VALUE_FIELD:
        if (!tally__catalog_valid_value_field(item->value)) {
            snprintf(reason, reasonlen,
                     "'%.64s' is not a value field name ([A-Za-z0-9_.-], 1 to 64 bytes)",
                     item->value);
            return TALLY_ECONFIG;
        }
        snprintf(L->vfields[L->n - 1], sizeof L->vfields[L->n - 1], "%s", item->value);
        return 0;
    }
    return TALLY_EINVAL;
}

static int
on_item(void *user, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    struct loader *L = user;
    if (item->key == NULL)
        return section_item(L, item, reason, reasonlen);
    return key_item(L, item, reason, reasonlen);
}

static int
cmp_def(const void *a, const void *b)
{
    const tally__metric_def_t *da = *(const tally__metric_def_t *const *)a;
    const tally__metric_def_t *db = *(const tally__metric_def_t *const *)b;
    return strcmp(da->metric, db->metric);
}

int
tally__catalog_load(const char *path, tally__catalog_t **out, char *err, size_t errlen)
{
    struct loader L = {0};
    tally__catalog_t *cat = NULL;
    int rc;

    if ((rc = tally__config_ini_parse(path, on_item, &L, err, errlen)) != 0)
        goto fail;
    cat = calloc(1, sizeof *cat);
    if (cat == NULL) {
        rc = -ENOMEM;
        goto fail;
    }
    if (L.n > 0) {
        cat->sorted = malloc(L.n * sizeof *cat->sorted);
        if (cat->sorted == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    for (size_t i = 0; i < L.n; i++) {
        if (L.defs[i].billable_unit[0] == '\0')
            memcpy(L.defs[i].billable_unit, L.defs[i].unit, sizeof L.defs[i].unit);
        cat->sorted[i] = &L.defs[i];
    }
    if (L.n > 1)
        qsort(cat->sorted, L.n, sizeof *cat->sorted, cmp_def);
    cat->defs = L.defs;
    cat->value_fields = L.vfields;
    cat->n = L.n;
    free(L.seen);
    free(L.lines);
    *out = cat;
    return 0;

fail:
    if (rc == -ENOMEM && err != NULL && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "%s: out of memory", path);
    if (cat != NULL)
        free(cat->sorted);
    free(cat);
    free(L.defs);
    free(L.vfields);
    free(L.seen);
    free(L.lines);
    return rc;
}

void
tally__catalog_destroy(tally__catalog_t *cat)
{
    if (cat == NULL)
        return;
    free(cat->defs);
    free(cat->sorted);
    free(cat->value_fields);
    free(cat);
}

size_t
tally__catalog_count(const tally__catalog_t *cat)
{
    return cat ? cat->n : 0;
}

const tally__metric_def_t *
tally__catalog_at(const tally__catalog_t *cat, size_t i)
{
    if (cat == NULL || i >= cat->n)
        return NULL;
    return &cat->defs[i];
}

const tally__metric_def_t *
tally__catalog_find(const tally__catalog_t *cat, const char *metric)
{
    if (cat == NULL)
        return NULL;
    size_t lo = 0, hi = cat->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const tally__metric_def_t *d = cat->sorted[mid];
        int c = strcmp(metric, d->metric);
        if (c == 0)
            return d;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

const tally__metric_def_t *
tally__catalog_lookup_or_default(const tally__catalog_t *cat, const char *metric,
                                 tally__metric_def_t *tmp)
{
    const tally__metric_def_t *d = tally__catalog_find(cat, metric);
    if (d != NULL)
        return d;
    tally__metric_def_default(metric, tmp);
    return tmp;
}

const char *
tally__catalog_value_field(const tally__catalog_t *cat, const char *metric)
{
    const tally__metric_def_t *d = tally__catalog_find(cat, metric);
    if (d == NULL)
        return TALLY__CATALOG_VALUE_FIELD;
    return cat->value_fields[d - cat->defs];
}
