/* plans.c — load and validate the plan catalog, look plans up, price quantities and render plans as
 * the spec's JSON. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "plans.h"

/* ==== enums ================================================================= */

/* Each table is indexed by the enum's value (plans.h) and spelled as the spec's JSON strings:
 * reorder one and the other must follow, or plans render and parse under the wrong names. */
static const char *const plan_type_names[] = {
    "FREE", "INDIVIDUAL", "TEAM", "ORGANIZATION", "PLAN_TYPE_UNSPECIFIED", NULL};
static const char *const tenant_type_names[] = {"UNKNOWN", "FREEMIUM", "ENTERPRISE", NULL};
static const char *const period_names[] = {"PERIOD_UNKNOWN", "PERIOD_DAY",  "PERIOD_WEEK",
                                           "PERIOD_MONTH",   "PERIOD_YEAR", NULL};
static const char *const state_names[] = {"STATE_UNSPECIFIED", "STATE_READY",
                                          "STATE_TRANSITION_PENDING", NULL};
static const char *const method_names[] = {"TRANSITION_METHOD_UNSPECIFIED",
                                           "TRANSITION_METHOD_SUPPORT", "TRANSITION_METHOD_WIZARD",
                                           "TRANSITION_METHOD_RECREATE", NULL};
static const char *const field_names[] = {
    "TRANSITION_REQUIRED_FIELD_UNSPECIFIED", "TRANSITION_REQUIRED_FIELD_PAYMENT_TOKEN",
    "TRANSITION_REQUIRED_FIELD_DOMAIN", "TRANSITION_REQUIRED_FIELD_CONTACTS", NULL};
static const char *const rate_unit_names[] = {"SECOND", "MINUTE", "HOUR", "DAY", NULL};

static const char *const *const enum_tables[] = {
    [TALLY_PLANS_ENUM_PLAN_TYPE] = plan_type_names,
    [TALLY_PLANS_ENUM_TENANT_TYPE] = tenant_type_names,
    [TALLY_PLANS_ENUM_PERIOD_UNIT] = period_names,
    [TALLY_PLANS_ENUM_PLAN_STATE] = state_names,
    [TALLY_PLANS_ENUM_TRANSITION_METHOD] = method_names,
    [TALLY_PLANS_ENUM_REQUIRED_FIELD] = field_names,
    [TALLY_PLANS_ENUM_RATE_UNIT] = rate_unit_names,
};
#define NENUM (sizeof enum_tables / sizeof enum_tables[0])

/* Walks to value instead of indexing t[value], so an out-of-range value (a corrupt or newer
 * enum) yields NULL rather than a read past the table's terminator. */
const char *
tally__plans_enum_name(tally__plans_enum_t e, int value)
{
    if ((unsigned)e >= NENUM || value < 0)
        return NULL;
    const char *const *t = enum_tables[e];
    for (int i = 0; t[i]; i++)
        if (i == value)
            return t[i];
    return NULL;
}

int
tally__plans_enum_parse(tally__plans_enum_t e, const char *s, int *out)
{
    if ((unsigned)e >= NENUM || s == NULL)
        return TALLY_EINVAL;
    const char *const *t = enum_tables[e];
    for (int i = 0; t[i]; i++) {
        if (strcmp(t[i], s) == 0) {
            *out = i;
            return 0;
        }
    }
    return TALLY_EINVAL;
}

/* The add-on services of the API: the one-of fields of subscriptionSubscribeRequest.
 * The one list: the catalog checks [addon NAME] against it and billing.c the
 * subscribe request's field (tally__plans_spec_addon()). */
static const char *const spec_addons[] = {
    "f5xc_appstack_standard",
    "f5xc_big_ip_irule_standard",
    "f5xc_bigip_utilities_standard",
    "f5xc_content_delivery_network_advanced",
    "f5xc_content_delivery_network_standard",
    "f5xc_delegated_access_standard",
    "f5xc_securemesh_advanced",
    "f5xc_securemesh_standard",
    "f5xc_site_management_standard",
    "f5xc_synthetic_monitoring_standard",
    "f5xc_waap_advanced",
    "f5xc_waap_standard",
    "f5xc_web_app_scanning_standard",
    NULL,
};

const char *
tally__plans_spec_addon(const char *name)
{
    for (const char *const *a = spec_addons; *a; a++)
        if (strcmp(*a, name) == 0)
            return *a;
    return NULL;
}

/* ==== the catalog ============================================================ */

/* An add-on name a plan refers to, resolved once the whole file is read. */
struct addon_ref {
    char name[TALLY_PLANS_NAME_MAX + 1];
    int line;
};

/* Lines of a price's keys, for errors found after the key was read. */
struct price_aux {
    int price_line, tiers_line, included_line;
    tally__plan_tier_t *tiers; /* owned; pub.tiers points here */
    size_t cap;
};

enum {
    K_TITLE,
    K_SUBTITLE,
    K_DESCRIPTION,
    K_TYPE,
    K_TENANT,
    K_FLAT,
    K_RENEWAL,
    K_TRIAL,
    K_TRIAL_UNIT,
    K_BILLING_DISABLED,
    K_STATE,
    K_ALLOWED,
    K_INCLUDED,
    K_METHOD,
    K_FIELDS,
    K_MANUAL,
    NK
};
static const char *const plan_keys[NK] = {
    "title",
    "subtitle",
    "description",
    "usage_plan_type",
    "tenant_type",
    "flat_price",
    "renewal_period_unit",
    "trial_period",
    "trial_period_unit",
    "billing_disabled",
    "state",
    "allowed_addons",
    "included_addons",
    "transition.method",
    "transition.required_fields",
    "transition.requires_manual_approval",
};

struct plan_rec {
    tally__plan_t pub;
    int line;     /* of the section header */
    int seen[NK]; /* line that set each key; 0 = unset */
    char *title, *subtitle, *description;
    struct addon_ref *refs[2]; /* allowed, included */
    size_t nrefs[2], caprefs[2];
    const tally__addon_t **resolved[2];
    tally__required_field_t *fields;
    size_t nfields, capfields;
    tally__plan_price_t *prices;
    struct price_aux *aux;
    size_t nprices, capprices;
    tally__plan_limit_t *limits;
    int *limit_lines;
    size_t nlimits, caplimits;
};

struct addon_rec {
    tally__addon_t pub;
    int line;
    int display_line;
};

struct tally__plans {
    struct plan_rec **plans;
    size_t nplans, capplans;
    struct addon_rec **addons;
    size_t naddons, capaddons;
};

/* Grow *arr (element size sz) so that one more element fits. */
static int
grow(void *arr, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*(void **)arr, ncap * sz);
    if (p == NULL)
        return -ENOMEM;
    *(void **)arr = p;
    *cap = ncap;
    return 0;
}

static void
plan_free(struct plan_rec *r)
{
    if (r == NULL)
        return;
    free(r->title);
    free(r->subtitle);
    free(r->description);
    for (int i = 0; i < 2; i++) {
        free(r->refs[i]);
        free(r->resolved[i]);
    }
    free(r->fields);
    for (size_t i = 0; i < r->nprices; i++)
        free(r->aux[i].tiers);
    free(r->prices);
    free(r->aux);
    free(r->limits);
    free(r->limit_lines);
    free(r);
}

void
tally__plans_destroy(tally__plans_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->nplans; i++)
        plan_free(p->plans[i]);
    free(p->plans);
    for (size_t i = 0; i < p->naddons; i++) {
        free(p->addons[i]->pub.display_name);
        free(p->addons[i]);
    }
    free(p->addons);
    free(p);
}

/* ==== loading ================================================================ */

struct loader {
    tally__plans_t *cat;
    const tally__catalog_t *metrics;
    struct plan_rec *plan;   /* section being read, or NULL */
    struct addon_rec *addon; /* likewise */
    const char *file;
    char *err;
    size_t errlen;
};

#define REASON(...) (snprintf(reason, reasonlen, __VA_ARGS__), TALLY_ECONFIG)
#define NOMEM() (snprintf(reason, reasonlen, "out of memory"), -ENOMEM)

/* A catalog name: [a-z0-9_-]{1,64}, starting with a letter or digit. */
static int
valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        if (n >= TALLY_PLANS_NAME_MAX || !(islower(c) || isdigit(c) || c == '_' || c == '-'))
            return 0;
    }
    return n > 0 && isalnum((unsigned char)s[0]);
}

/* A text value: no control characters. Empty is fine for optional texts. */
static int
check_text(const char *v, char *reason, size_t reasonlen)
{
    for (const char *p = v; *p; p++)
        if (iscntrl((unsigned char)*p))
            return REASON("contains a control character");
    return 0;
}

static int
set_text(char **dst, const char *v, char *reason, size_t reasonlen)
{
    int rc = check_text(v, reason, reasonlen);
    if (rc != 0)
        return rc;
    char *s = strdup(v);
    if (s == NULL)
        return NOMEM();
    free(*dst);
    *dst = s;
    return 0;
}

/* Append " v" to *dst (a continued description). */
static int
append_text(char **dst, const char *v, char *reason, size_t reasonlen)
{
    int rc = check_text(v, reason, reasonlen);
    if (rc != 0)
        return rc;
    size_t a = *dst ? strlen(*dst) : 0, b = strlen(v);
    char *s = realloc(*dst, a + b + 2);
    if (s == NULL)
        return NOMEM();
    if (a)
        s[a++] = ' ';
    memcpy(s + a, v, b + 1);
    *dst = s;
    return 0;
}

/* Exact spec spellings only (no aliases, no case folding), so the error lists every accepted
 * one: a near miss such as MONTH for PERIOD_MONTH is then obvious. */
static int
parse_enum(tally__plans_enum_t e, const char *v, int *out, char *reason, size_t reasonlen)
{
    if (tally__plans_enum_parse(e, v, out) == 0)
        return 0;
    char list[512] = "";
    size_t used = 0;
    for (const char *const *t = enum_tables[e]; *t && used < sizeof list; t++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", *t);
    return REASON("'%.64s' is not one of %s", v, list);
}

/* Whole decimal integer in [min, max]. */
static int
parse_int(const char *v, int64_t min, int64_t max, int64_t *out, const char *what, char *reason,
          size_t reasonlen)
{
    int rc = tally__config_parse_int(v, INT64_MIN, INT64_MAX, out);
    if (rc != 0)
        return REASON("'%.64s' is not %s", v, what);
    /* min 0 means "not negative": say that rather than print a range reaching INT64_MAX. */
    if (*out < min && min == 0)
        return REASON("%s is negative: must be %s", v, what);
    if (*out < min || *out > max)
        return REASON("%s is out of range [%lld, %lld]", v, (long long)min, (long long)max);
    return 0;
}

static int
parse_bool(const char *v, bool *out, char *reason, size_t reasonlen)
{
    if (tally__config_parse_bool(v, out) != 0)
        return REASON("'%.64s' is not a boolean (true/false)", v);
    return 0;
}

/* ---- sections --------------------------------------------------------------- */

/*
 * A header starts a [plan NAME] or an [addon NAME]. The current section is cleared first so a
 * key can never land in the previous one. A new plan gets the defaults of the keys it may
 * omit; required keys are checked in finish(), once the section can no longer grow.
 * A duplicate section is an error, not an override: a pasted copy must not silently
 * replace the first.
 */
static int
section_item(struct loader *L, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    L->plan = NULL;
    L->addon = NULL;
    const char *s = item->section, *name;
    int is_plan;
    if (strncmp(s, "plan", 4) == 0 && isspace((unsigned char)s[4]))
        is_plan = 1, name = s + 4;
    else if (strncmp(s, "addon", 5) == 0 && isspace((unsigned char)s[5]))
        is_plan = 0, name = s + 5;
    else
        return REASON("unknown section: expected [plan NAME] or [addon NAME]");
    while (isspace((unsigned char)*name))
        name++;
    if (!valid_name(name))
        return REASON("'%s' is not a valid name ([a-z0-9_-], 1 to 64 bytes)", name);
    tally__plans_t *cat = L->cat;
    if (is_plan) {
        for (size_t i = 0; i < cat->nplans; i++)
            if (strcmp(cat->plans[i]->pub.name, name) == 0)
                return REASON("duplicate plan '%s' (first defined on line %d)", name,
                              cat->plans[i]->line);
        struct plan_rec *r = calloc(1, sizeof *r);
        if (r == NULL || grow(&cat->plans, &cat->capplans, cat->nplans, sizeof *cat->plans)) {
            free(r);
            return NOMEM();
        }
        snprintf(r->pub.name, sizeof r->pub.name, "%s", name);
        r->line = item->line;
        r->pub.tenant_type = TALLY_TENANT_UNKNOWN;
        r->pub.renewal_period_unit = TALLY_PERIOD_MONTH;
        r->pub.trial_period_unit = TALLY_PERIOD_UNKNOWN;
        r->pub.state = TALLY_PLAN_STATE_READY;
        r->pub.transition.method = TALLY_TRANSITION_METHOD_WIZARD;
        cat->plans[cat->nplans++] = r;
        L->plan = r;
        return 0;
    }
    /* An add-on the subscribe request has no field for could never be bought: refuse it
     * here rather than let a plan offer it. */
    if (!tally__plans_spec_addon(name))
        return REASON("'%s' is not an add-on service of the API (the f5xc_* fields of "
                      "SubscribeRequest, e.g. f5xc_waap_standard)",
                      name);
    for (size_t i = 0; i < cat->naddons; i++)
        if (strcmp(cat->addons[i]->pub.name, name) == 0)
            return REASON("duplicate add-on '%s' (first defined on line %d)", name,
                          cat->addons[i]->line);
    struct addon_rec *a = calloc(1, sizeof *a);
    if (a == NULL || grow(&cat->addons, &cat->capaddons, cat->naddons, sizeof *cat->addons)) {
        free(a);
        return NOMEM();
    }
    snprintf(a->pub.name, sizeof a->pub.name, "%s", name);
    a->line = item->line;
    cat->addons[cat->naddons++] = a;
    L->addon = a;
    return 0;
}

static int
addon_key(struct loader *L, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    struct addon_rec *a = L->addon;
    if (strcmp(item->key, "display_name") != 0)
        return REASON("unknown key (an [addon NAME] section has display_name)");
    if (item->continuation)
        return REASON("indented line continues the value; display_name is one line");
    if (a->display_line)
        return REASON("duplicate key (first set on line %d)", a->display_line);
    if (item->value[0] == '\0')
        return REASON("must not be empty");
    a->display_line = item->line;
    return set_text(&a->pub.display_name, item->value, reason, reasonlen);
}

/* ---- plan keys ---------------------------------------------------------------- */

/* Apply fn to each comma-separated item of v (trimmed, empty ones skipped). */
static int
each_item(const char *v, int (*fn)(struct loader *, const char *, int, char *, size_t),
          struct loader *L, int line, char *reason, size_t reasonlen)
{
    char **items = NULL;
    size_t n = 0;
    if (tally__config_split_list(v, &items, &n) != 0)
        return NOMEM();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = fn(L, items[i], line, reason, reasonlen);
    tally__config_free_list(items, n);
    return rc;
}

/*
 * Pass one of add-on resolution: only the name's syntax is checked, and the name is kept with
 * its line. Whether an [addon NAME] section exists is decided in finish(), because a plan may
 * name an add-on whose section comes later in the file. A name may appear once across both
 * lists: an add-on is either included in the plan or allowed on top of it, not both.
 */
static int
add_ref(struct loader *L, int which, const char *name, int line, char *reason, size_t reasonlen)
{
    struct plan_rec *r = L->plan;
    if (!valid_name(name))
        return REASON("'%.64s' is not an add-on name", name);
    for (int w = 0; w < 2; w++)
        for (size_t i = 0; i < r->nrefs[w]; i++)
            if (strcmp(r->refs[w][i].name, name) == 0)
                return REASON("add-on '%s' listed twice (in %s)", name,
                              w ? "included_addons" : "allowed_addons");
    if (grow(&r->refs[which], &r->caprefs[which], r->nrefs[which], sizeof *r->refs[which]))
        return NOMEM();
    struct addon_ref *ref = &r->refs[which][r->nrefs[which]++];
    snprintf(ref->name, sizeof ref->name, "%s", name);
    ref->line = line;
    return 0;
}

static int
add_allowed(struct loader *L, const char *name, int line, char *reason, size_t reasonlen)
{
    return add_ref(L, 0, name, line, reason, reasonlen);
}

static int
add_included(struct loader *L, const char *name, int line, char *reason, size_t reasonlen)
{
    return add_ref(L, 1, name, line, reason, reasonlen);
}

/* TRANSITION_REQUIRED_FIELD_UNSPECIFIED is the proto zero value, a placeholder, not a field
 * a transition can ask for. */
static int
add_field(struct loader *L, const char *name, int line, char *reason, size_t reasonlen)
{
    (void)line;
    struct plan_rec *r = L->plan;
    int f = 0;
    int rc = parse_enum(TALLY_PLANS_ENUM_REQUIRED_FIELD, name, &f, reason, reasonlen);
    if (rc != 0)
        return rc;
    if (f == TALLY_REQUIRED_FIELD_UNSPECIFIED)
        return REASON("%s is the zero value, not a field", name);
    for (size_t i = 0; i < r->nfields; i++)
        if ((int)r->fields[i] == f)
            return REASON("%s listed twice", name);
    if (grow(&r->fields, &r->capfields, r->nfields, sizeof *r->fields))
        return NOMEM();
    r->fields[r->nfields++] = (tally__required_field_t)f;
    return 0;
}

/* The price entry of metric on the plan, created (one open tier at 0) if new. */
static int
price_get(struct loader *L, const char *metric, size_t *idx, char *reason, size_t reasonlen)
{
    struct plan_rec *r = L->plan;
    if (!tally__catalog_find(L->metrics, metric))
        return REASON("unknown metric label '%.64s' (not in the metric catalog)", metric);
    for (size_t i = 0; i < r->nprices; i++) {
        if (strcmp(r->prices[i].metric, metric) == 0) {
            *idx = i;
            return 0;
        }
    }
    if (grow(&r->prices, &r->capprices, r->nprices, sizeof *r->prices))
        return NOMEM();
    /* aux runs parallel to prices: give it the same capacity so index i is valid in both. */
    size_t capaux = r->capprices;
    struct price_aux *aux = realloc(r->aux, capaux * sizeof *aux);
    if (aux == NULL)
        return NOMEM();
    r->aux = aux;
    /* nprices grows only once everything is allocated: a failure leaves the plan unchanged. */
    size_t i = r->nprices;
    tally__plan_tier_t *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NOMEM();
    memset(&r->prices[i], 0, sizeof r->prices[i]);
    memset(&r->aux[i], 0, sizeof r->aux[i]);
    snprintf(r->prices[i].metric, sizeof r->prices[i].metric, "%s", metric);
    r->aux[i].tiers = t;
    r->aux[i].cap = 1;
    r->prices[i].tiers = t;
    r->prices[i].ntiers = 1; /* [0, open) at 0 cents until a price says otherwise */
    r->nprices++;
    *idx = i;
    return 0;
}

#define MAX_PRICE_CENTS 100000000000LL /* $1e9 per billable unit: a typo, not a price */

static int
parse_price(const char *v, int64_t *out, char *reason, size_t reasonlen)
{
    int64_t c;
    if (tally__config_parse_int(v, INT64_MIN, INT64_MAX, &c) != 0)
        return REASON("'%.64s' is not a whole number of cents", v);
    if (c < 0)
        return REASON("negative price %s", v);
    if (c > MAX_PRICE_CENTS)
        return REASON("price %s is above %lld cents", v, MAX_PRICE_CENTS);
    *out = c;
    return 0;
}

/* Digits only: unlike strtoull, no sign, spaces or base prefix. At most 19 digits, which
 * cannot overflow a uint64_t. */
static int
parse_u64(const char *s, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/*
 * Tiers are half-open [FROM, TO) in billable units and must tile [0, open) exactly: the first
 * starts at 0, each starts where the previous one ends, and only the last is open-ended (that
 * last rule waits for finish(), as a tier list may continue over several lines). A gap or an
 * overlap would price units at zero or twice in tally__plan_price_charge().
 */
/* One tier "FROM-TO:PRICE" or "FROM-:PRICE", appended after the price's others. */
static int
add_tier(struct loader *L, size_t idx, const char *t, char *reason, size_t reasonlen)
{
    struct plan_rec *r = L->plan;
    tally__plan_price_t *p = &r->prices[idx];
    struct price_aux *aux = &r->aux[idx];
    const char *dash = strchr(t, '-'), *colon = strchr(t, ':');
    if (dash == NULL || colon == NULL || colon < dash)
        return REASON("tier '%.64s' is not FROM-TO:PRICE or FROM-:PRICE", t);
    uint64_t from, to = 0;
    const char *a = t, *b = dash + 1;
    while (isspace((unsigned char)*a))
        a++;
    size_t alen = (size_t)(dash - a);
    while (alen && isspace((unsigned char)a[alen - 1]))
        alen--;
    while (b < colon && isspace((unsigned char)*b))
        b++;
    size_t blen = (size_t)(colon - b);
    while (blen && isspace((unsigned char)b[blen - 1]))
        blen--;
    if (parse_u64(a, alen, &from) != 0 || (blen && parse_u64(b, blen, &to) != 0))
        return REASON("tier '%.64s': bounds must be whole billable units (FROM-TO:PRICE)", t);
    const char *pv = colon + 1;
    while (isspace((unsigned char)*pv))
        pv++;
    int64_t cents;
    int rc = parse_price(pv, &cents, reason, reasonlen);
    if (rc != 0) {
        /* reason is about to be both source and target: snprintf into itself is undefined. */
        char inner[200];
        snprintf(inner, sizeof inner, "%s", reason);
        return REASON("tier '%.64s': %s", t, inner);
    }
    if (blen && to <= from)
        return REASON("tier '%.64s' is empty or reversed (TO must exceed FROM)", t);
    /* Until the first tier is read, slot 0 holds price_get()'s placeholder: overwrite it. */
    size_t n = p->tiered ? p->ntiers : 0;
    if (n == 0 && from != 0)
        return REASON("tier '%.64s': the first tier must start at 0", t);
    if (n > 0) {
        const tally__plan_tier_t *prev = &aux->tiers[n - 1];
        if (prev->up_to == 0)
            return REASON("tier '%.64s' follows the open-ended tier '%llu-': tiers must be sorted "
                          "ascending and only the last may be open-ended",
                          t, (unsigned long long)prev->from);
        if (from < prev->up_to)
            return REASON("tier '%.64s' overlaps or precedes tier '%llu-%llu': tiers must be "
                          "sorted ascending without overlap",
                          t, (unsigned long long)prev->from, (unsigned long long)prev->up_to);
        if (from > prev->up_to)
            return REASON("tier '%.64s' leaves a gap after tier '%llu-%llu': each tier starts "
                          "where the previous one ends",
                          t, (unsigned long long)prev->from, (unsigned long long)prev->up_to);
    }
    if (n >= aux->cap) {
        size_t cap = aux->cap * 2;
        tally__plan_tier_t *nt = realloc(aux->tiers, cap * sizeof *nt);
        if (nt == NULL)
            return NOMEM();
        aux->tiers = nt;
        aux->cap = cap;
    }
    aux->tiers[n] =
        (tally__plan_tier_t){.from = from, .up_to = blen ? to : 0, .unit_price_cents = cents};
    p->tiers = aux->tiers;
    p->ntiers = n + 1;
    p->tiered = true;
    return 0;
}

static int
tiers_value(struct loader *L, size_t idx, const char *v, char *reason, size_t reasonlen)
{
    char **items = NULL;
    size_t n = 0;
    if (tally__config_split_list(v, &items, &n) != 0)
        return NOMEM();
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = add_tier(L, idx, items[i], reason, reasonlen);
    tally__config_free_list(items, n);
    return rc;
}

/* Prefixed keys: price.M, included.M, tiers.M, quota.KIND.NAME. 1 = not one of them. */
static int
prefixed_key(struct loader *L, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    struct plan_rec *r = L->plan;
    const char *k = item->key, *v = item->value;
    size_t idx;
    int rc;
    if (strncmp(k, "price.", 6) == 0 || strncmp(k, "included.", 9) == 0 ||
        strncmp(k, "tiers.", 6) == 0) {
        int what = k[0] == 'p' ? 0 : k[0] == 'i' ? 1 : 2;
        const char *metric = strchr(k, '.') + 1;
        if ((rc = price_get(L, metric, &idx, reason, reasonlen)) != 0)
            return rc;
        struct price_aux *aux = &r->aux[idx];
        tally__plan_price_t *p = &r->prices[idx];
        /* Only a tier list needs continuation lines; a continuation appends tiers to those
         * already read, so it skips the duplicate-key check below. */
        if (item->continuation && what != 2)
            return REASON("indented line continues the value; only tiers.* continue");
        if (item->continuation)
            return tiers_value(L, idx, v, reason, reasonlen);
        int *line = what == 0   ? &aux->price_line
                    : what == 1 ? &aux->included_line
                                : &aux->tiers_line;
        if (*line)
            return REASON("duplicate key (first set on line %d)", *line);
        /* price.M is the one-tier shorthand of tiers.M: both would give one metric two
         * prices. included.M combines with either. */
        if (what == 0 && aux->tiers_line)
            return REASON("price.%s and tiers.%s (line %d) exclude each other", metric, metric,
                          aux->tiers_line);
        if (what == 2 && aux->price_line)
            return REASON("tiers.%s and price.%s (line %d) exclude each other", metric, metric,
                          aux->price_line);
        *line = item->line;
        /* price.M prices the open tier price_get() created, which stays the only one. */
        if (what == 0)
            return parse_price(v, &aux->tiers[0].unit_price_cents, reason, reasonlen);
        if (what == 1) {
            int64_t q;
            if ((rc = parse_int(v, 0, INT64_MAX, &q, "a whole number of billable units", reason,
                                reasonlen)) != 0)
                return rc;
            p->included = (uint64_t)q;
            return 0;
        }
        if (v[0] == '\0')
            return REASON("must list at least one tier (FROM-TO:PRICE, ..., FROM-:PRICE)");
        return tiers_value(L, idx, v, reason, reasonlen);
    }
    /* quota.KIND.NAME: a default limit of the plan, rendered as its default_quota. Object and
     * resource names are metric labels and must be in the metric catalog, as quota objects'
     * keys must, or they would limit nothing; api and apigw names are API names, unchecked. */
    if (strncmp(k, "quota.", 6) != 0)
        return 1;
    const char *kind = k + 6, *name = strchr(kind, '.');
    tally__limit_kind_t lk;
    size_t kl = name ? (size_t)(name - kind) : 0;
    if (kl == 6 && strncmp(kind, "object", 6) == 0)
        lk = TALLY_LIMIT_OBJECT;
    else if (kl == 8 && strncmp(kind, "resource", 8) == 0)
        lk = TALLY_LIMIT_RESOURCE;
    else if (kl == 3 && strncmp(kind, "api", 3) == 0)
        lk = TALLY_LIMIT_API;
    else if (kl == 5 && strncmp(kind, "apigw", 5) == 0)
        lk = TALLY_LIMIT_APIGW;
    else
        return REASON("unknown key: quota keys are quota.object.METRIC, quota.resource.METRIC, "
                      "quota.api.API or quota.apigw.API");
    name++;
    if (item->continuation)
        return REASON("indented line continues the value; quota values are one line");
    if (strlen(name) >= sizeof r->limits[0].name || name[0] == '\0')
        return REASON("name empty or longer than %zu bytes", sizeof r->limits[0].name - 1);
    if ((lk == TALLY_LIMIT_OBJECT || lk == TALLY_LIMIT_RESOURCE) &&
        !tally__catalog_find(L->metrics, name))
        return REASON("unknown metric label '%.64s' (not in the metric catalog)", name);
    for (size_t i = 0; i < r->nlimits; i++)
        if (r->limits[i].kind == lk && strcmp(r->limits[i].name, name) == 0)
            return REASON("duplicate key (first set on line %d)", r->limit_lines[i]);
    tally__plan_limit_t lim = {.kind = lk};
    snprintf(lim.name, sizeof lim.name, "%s", name);
    /* Unlike a quota object, a plan has no "negative = unlimited": to leave a metric
     * unlimited, leave its key out. Objects are counted, so whole and within int32. */
    if (lk == TALLY_LIMIT_OBJECT) {
        int64_t m;
        if ((rc = parse_int(v, 0, INT32_MAX, &m, "a whole number of objects", reason, reasonlen)) !=
            0)
            return rc;
        lim.maximum = (double)m;
    } else if (lk == TALLY_LIMIT_RESOURCE) {
        /* In the metric's raw unit, so fractions are fine. strtod would skip leading spaces
         * and accept inf and nan: all three are refused. */
        char *end;
        errno = 0;
        double m = strtod(v, &end);
        if (v[0] == '\0' || *end != '\0' || errno || !isfinite(m) || isspace((unsigned char)v[0]))
            return REASON("'%.64s' is not a number (the metric's raw unit)", v);
        if (m < 0)
            return REASON("%s is negative", v);
        lim.maximum = m;
    } else {
        /* RATE/UNIT [burst N] */
        /* %llu accepts a sign and leading spaces ("-1" wraps to 2^64-1): the isdigit test on
         * v[0] refuses them for the rate; a negative burst wraps to a value the range check
         * refuses.
         * used is set by whichever %n was reached last, so v[used] != '\0' catches trailing
         * text in both forms. The unit is case-insensitive. */
        unsigned long long rate, burst = 0;
        char unit[16], bw[8];
        int used = 0;
        int nf = sscanf(v, "%llu/%15[A-Za-z]%n %7s %llu%n", &rate, unit, &used, bw, &burst, &used);
        int unit_ok = 0;
        if (nf >= 2) {
            for (char *c = unit; *c; c++)
                *c = (char)toupper((unsigned char)*c);
            int u;
            if (tally__plans_enum_parse(TALLY_PLANS_ENUM_RATE_UNIT, unit, &u) == 0) {
                lim.unit = (tally__rate_unit_t)u;
                unit_ok = 1;
            }
        }
        if (!(nf == 2 || (nf == 4 && strcmp(bw, "burst") == 0)) || !unit_ok || v[used] != '\0' ||
            !isdigit((unsigned char)v[0]))
            return REASON("'%.64s' is not RATE/UNIT or RATE/UNIT burst N (UNIT: SECOND, MINUTE, "
                          "HOUR, DAY)",
                          v);
        if (rate < 1 || rate > INT32_MAX || burst > INT32_MAX)
            return REASON("rate must be 1..%d and burst 0..%d", INT32_MAX, INT32_MAX);
        lim.rate = (uint32_t)rate;
        lim.burst = (uint32_t)burst;
    }
    /* limit_lines runs parallel to limits (same capacity), for duplicate-key errors. */
    if (grow(&r->limits, &r->caplimits, r->nlimits, sizeof *r->limits))
        return NOMEM();
    int *ll = realloc(r->limit_lines, r->caplimits * sizeof *ll);
    if (ll == NULL)
        return NOMEM();
    r->limit_lines = ll;
    r->limit_lines[r->nlimits] = item->line;
    r->limits[r->nlimits++] = lim;
    return 0;
}

/*
 * One key of a [plan NAME] section. Each key may be set once: a second setting is an error,
 * not an override, so a hand-edited catalog cannot carry two disagreeing values of which the
 * later silently wins. seen[] keeps the line of each, for that error and for finish().
 * Only the list keys and description may continue on indented lines.
 */
static int
plan_key(struct loader *L, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    struct plan_rec *r = L->plan;
    tally__plan_t *p = &r->pub;
    const char *v = item->value;
    int k = 0, rc, e = 0;
    while (k < NK && strcmp(plan_keys[k], item->key) != 0)
        k++;
    if (k == NK) {
        rc = prefixed_key(L, item, reason, reasonlen);
        if (rc == 1)
            return REASON("unknown key (see the header of the shipped plans.ini)");
        return rc;
    }
    int list = k == K_ALLOWED || k == K_INCLUDED || k == K_FIELDS || k == K_DESCRIPTION;
    if (item->continuation && !list)
        return REASON("indented line continues the value; %s is one line", item->key);
    /* A continuation extends the key of the line above; only that first line sets it. */
    if (!item->continuation) {
        if (r->seen[k])
            return REASON("duplicate key (first set on line %d)", r->seen[k]);
        r->seen[k] = item->line;
    }
    int64_t n;
    switch (k) {
    case K_TITLE:
        if (v[0] == '\0')
            return REASON("must not be empty");
        return set_text(&r->title, v, reason, reasonlen);
    case K_SUBTITLE:
        return set_text(&r->subtitle, v, reason, reasonlen);
    case K_DESCRIPTION:
        return append_text(&r->description, v, reason, reasonlen);
    case K_TYPE:
        if ((rc = parse_enum(TALLY_PLANS_ENUM_PLAN_TYPE, v, &e, reason, reasonlen)) != 0)
            return rc;
        p->type = (tally__plan_type_t)e;
        return 0;
    case K_TENANT:
        if ((rc = parse_enum(TALLY_PLANS_ENUM_TENANT_TYPE, v, &e, reason, reasonlen)) != 0)
            return rc;
        p->tenant_type = (tally__tenant_type_t)e;
        return 0;
    case K_FLAT:
        /* int32 cents per renewal period, as the API's flat_price. */
        if ((rc = parse_int(v, 0, INT32_MAX, &n, "a whole number of cents", reason, reasonlen)))
            return rc;
        p->flat_price_cents = (int32_t)n;
        return 0;
    case K_RENEWAL:
    case K_TRIAL_UNIT:
        if ((rc = parse_enum(TALLY_PLANS_ENUM_PERIOD_UNIT, v, &e, reason, reasonlen)) != 0)
            return rc;
        *(k == K_RENEWAL ? &p->renewal_period_unit : &p->trial_period_unit) =
            (tally__period_unit_t)e;
        return 0;
    case K_TRIAL:
        if ((rc = parse_int(v, 0, INT32_MAX, &n, "a whole number of periods", reason, reasonlen)))
            return rc;
        p->trial_period = (int32_t)n;
        return 0;
    case K_BILLING_DISABLED:
        return parse_bool(v, &p->billing_disabled, reason, reasonlen);
    case K_STATE:
        if ((rc = parse_enum(TALLY_PLANS_ENUM_PLAN_STATE, v, &e, reason, reasonlen)) != 0)
            return rc;
        p->state = (tally__plan_state_t)e;
        return 0;
    case K_ALLOWED:
        return each_item(v, add_allowed, L, item->line, reason, reasonlen);
    case K_INCLUDED:
        return each_item(v, add_included, L, item->line, reason, reasonlen);
    case K_METHOD:
        if ((rc = parse_enum(TALLY_PLANS_ENUM_TRANSITION_METHOD, v, &e, reason, reasonlen)) != 0)
            return rc;
        p->transition.method = (tally__transition_method_t)e;
        return 0;
    case K_FIELDS:
        return each_item(v, add_field, L, item->line, reason, reasonlen);
    case K_MANUAL:
        return parse_bool(v, &p->transition.requires_manual_approval, reason, reasonlen);
    }
    return TALLY_EINVAL;
}

/* Keys belong to the last section header. A key before any header never arrives here: the
 * parser refuses it, as it stops at a failed header. */
static int
on_item(void *user, const tally__ini_item_t *item, char *reason, size_t reasonlen)
{
    struct loader *L = user;
    if (item->key == NULL)
        return section_item(L, item, reason, reasonlen);
    if (L->addon)
        return addon_key(L, item, reason, reasonlen);
    TALLY_ASSERT(L->plan != NULL); /* a failed section header stops the parse */
    return plan_key(L, item, reason, reasonlen);
}

/* ---- checks once the whole file is read ------------------------------------------- */

/* Errors found after the parse still carry file:line, of the key at fault or, for a missing
 * key, of the section header, in the parser's own format. */
static int
fail_at(struct loader *L, int line, const char *section, const char *key, const char *fmt, ...)
{
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (L->err && L->errlen) {
        if (key)
            snprintf(L->err, L->errlen, "%s:%d: [%s] %s: %s", L->file, line, section, key, reason);
        else
            snprintf(L->err, L->errlen, "%s:%d: [%s]: %s", L->file, line, section, reason);
    }
    return TALLY_ECONFIG;
}

/*
 * Pass two, once the whole file is read. Add-on references were kept as names by add_ref()
 * because an [addon NAME] section may follow the plans that name it; here every add-on is
 * known and they are resolved. The resolved pointers point at the addon_recs themselves,
 * allocated one by one, which never move (only the array of pointers to them grows).
 * Checks that span keys (a trial needs its unit; billing_disabled forbids a flat price) or
 * lines (the last tier) also wait until now. The public fields are filled in last.
 */
static int
finish(struct loader *L)
{
    tally__plans_t *cat = L->cat;
    char sec[TALLY_PLANS_NAME_MAX + 8];
    for (size_t i = 0; i < cat->naddons; i++) {
        struct addon_rec *a = cat->addons[i];
        if (a->pub.display_name == NULL) {
            snprintf(sec, sizeof sec, "addon %s", a->pub.name);
            return fail_at(L, a->line, sec, NULL, "missing key display_name");
        }
    }
    /* A catalog without plans is a wrong or truncated file, never a usable configuration. */
    if (cat->nplans == 0) {
        if (L->err && L->errlen)
            snprintf(L->err, L->errlen, "%s: no [plan NAME] section: the catalog needs a plan",
                     L->file);
        return TALLY_ECONFIG;
    }
    for (size_t i = 0; i < cat->nplans; i++) {
        struct plan_rec *r = cat->plans[i];
        tally__plan_t *p = &r->pub;
        snprintf(sec, sizeof sec, "plan %s", p->name);
        if (!r->seen[K_TITLE])
            return fail_at(L, r->line, sec, NULL, "missing key title");
        if (!r->seen[K_TYPE])
            return fail_at(L, r->line, sec, NULL,
                           "missing key usage_plan_type (FREE, INDIVIDUAL, TEAM, ORGANIZATION)");
        if (p->trial_period > 0 && p->trial_period_unit == TALLY_PERIOD_UNKNOWN)
            return fail_at(L, r->seen[K_TRIAL], sec, "trial_period",
                           "a trial needs trial_period_unit (PERIOD_DAY, ...)");
        if (p->billing_disabled && p->flat_price_cents > 0)
            return fail_at(L, r->seen[K_FLAT], sec, "flat_price",
                           "a plan with billing_disabled = true cannot charge a flat price");
        for (int w = 0; w < 2; w++) {
            if (r->nrefs[w] == 0)
                continue;
            r->resolved[w] = calloc(r->nrefs[w], sizeof *r->resolved[w]);
            if (r->resolved[w] == NULL) {
                if (L->err && L->errlen)
                    snprintf(L->err, L->errlen, "%s: out of memory", L->file);
                return -ENOMEM;
            }
            for (size_t j = 0; j < r->nrefs[w]; j++) {
                const tally__addon_t *a = tally__plans_addon_find(cat, r->refs[w][j].name);
                if (a == NULL)
                    return fail_at(L, r->refs[w][j].line, sec,
                                   w ? "included_addons" : "allowed_addons",
                                   "unknown add-on '%s' (no [addon %s] section)",
                                   r->refs[w][j].name, r->refs[w][j].name);
                r->resolved[w][j] = a;
            }
        }
        p->allowed_addons = r->resolved[0];
        p->nallowed_addons = r->nrefs[0];
        p->included_addons = r->resolved[1];
        p->nincluded_addons = r->nrefs[1];
        /* Tiers may continue over lines, so only now is the list known to end open-ended:
         * otherwise units above the last TO would be free. */
        for (size_t j = 0; j < r->nprices; j++) {
            const tally__plan_price_t *pr = &r->prices[j];
            if (pr->tiered && pr->tiers[pr->ntiers - 1].up_to != 0) {
                char key[TALLY_MAX_METRIC_LEN + 8];
                snprintf(key, sizeof key, "tiers.%s", pr->metric);
                return fail_at(L, r->aux[j].tiers_line, sec, key,
                               "the last tier must be open-ended (FROM-:PRICE)");
            }
        }
        p->title = r->title;
        /* Optional texts are "" rather than NULL, so renderers need no checks. */
        p->subtitle = r->subtitle ? r->subtitle : "";
        p->description = r->description ? r->description : "";
        p->transition.required_fields = r->fields;
        p->transition.nrequired_fields = r->nfields;
        p->prices = r->prices;
        p->nprices = r->nprices;
        p->limits = r->limits;
        p->nlimits = r->nlimits;
    }
    return 0;
}

/* Pass one per item (on_item()), then pass two (finish()). On any failure the partly built
 * catalog is destroyed and *out is untouched, so a reload can keep serving the old one. */
int
tally__plans_load(const char *path, const tally__catalog_t *metrics, tally__plans_t **out,
                  char *err, size_t errlen)
{
    struct loader L = {.metrics = metrics, .file = path, .err = err, .errlen = errlen};
    int rc;
    if (err && errlen)
        err[0] = '\0';
    L.cat = calloc(1, sizeof *L.cat);
    if (L.cat == NULL) {
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if ((rc = tally__config_ini_parse(path, on_item, &L, err, errlen)) != 0)
        goto fail;
    if ((rc = finish(&L)) != 0)
        goto fail;
    *out = L.cat;
    return 0;
fail:
    tally__plans_destroy(L.cat);
    return rc;
}

/* ==== lookups ================================================================== */

size_t
tally__plans_count(const tally__plans_t *p)
{
    return p ? p->nplans : 0;
}

const tally__plan_t *
tally__plans_at(const tally__plans_t *p, size_t i)
{
    return p && i < p->nplans ? &p->plans[i]->pub : NULL;
}

const tally__plan_t *
tally__plans_find(const tally__plans_t *p, const char *name)
{
    if (p == NULL || name == NULL)
        return NULL;
    /* A handful of plans: a linear scan beats any index. */
    for (size_t i = 0; i < p->nplans; i++)
        if (strcmp(p->plans[i]->pub.name, name) == 0)
            return &p->plans[i]->pub;
    return NULL;
}

size_t
tally__plans_addon_count(const tally__plans_t *p)
{
    return p ? p->naddons : 0;
}

const tally__addon_t *
tally__plans_addon_at(const tally__plans_t *p, size_t i)
{
    return p && i < p->naddons ? &p->addons[i]->pub : NULL;
}

const tally__addon_t *
tally__plans_addon_find(const tally__plans_t *p, const char *name)
{
    if (p == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < p->naddons; i++)
        if (strcmp(p->addons[i]->pub.name, name) == 0)
            return &p->addons[i]->pub;
    return NULL;
}

static int
in_list(const tally__addon_t *const *list, size_t n, const char *name)
{
    for (size_t i = 0; name && i < n; i++)
        if (strcmp(list[i]->name, name) == 0)
            return 1;
    return 0;
}

int
tally__plan_allows_addon(const tally__plan_t *plan, const char *name)
{
    return plan ? in_list(plan->allowed_addons, plan->nallowed_addons, name) : 0;
}

int
tally__plan_includes_addon(const tally__plan_t *plan, const char *name)
{
    return plan ? in_list(plan->included_addons, plan->nincluded_addons, name) : 0;
}

int
tally__plan_requires_field(const tally__plan_t *plan, tally__required_field_t f)
{
    for (size_t i = 0; plan && i < plan->transition.nrequired_fields; i++)
        if (plan->transition.required_fields[i] == f)
            return 1;
    return 0;
}

const tally__plan_price_t *
tally__plan_price_find(const tally__plan_t *plan, const char *metric)
{
    for (size_t i = 0; plan && metric && i < plan->nprices; i++)
        if (strcmp(plan->prices[i].metric, metric) == 0)
            return &plan->prices[i];
    return NULL;
}

const tally__plan_limit_t *
tally__plan_limit_find(const tally__plan_t *plan, tally__limit_kind_t kind, const char *name)
{
    for (size_t i = 0; plan && name && i < plan->nlimits; i++)
        if (plan->limits[i].kind == kind && strcmp(plan->limits[i].name, name) == 0)
            return &plan->limits[i];
    return NULL;
}

/*
 * Cents for billable units, unrounded. The included units are free and come off the bottom of
 * the ladder: each tier is clipped to [included, billable] before it is priced. The test
 * !(billable > 0) also turns a NaN quantity into no charge.
 */
double
tally__plan_price_charge(const tally__plan_price_t *price, double billable)
{
    if (price == NULL || !(billable > 0))
        return 0;
    double free_to = (double)price->included, total = 0;
    for (size_t i = 0; i < price->ntiers; i++) {
        const tally__plan_tier_t *t = &price->tiers[i];
        double lo = (double)t->from, hi = t->up_to ? (double)t->up_to : INFINITY;
        if (lo < free_to)
            lo = free_to;
        if (hi > billable)
            hi = billable;
        if (hi > lo)
            total += (hi - lo) * (double)t->unit_price_cents;
    }
    return total;
}

/* ==== the current plan ============================================================ */

/*
 * The stored tenant/system/plan object names the current plan; default_plan applies only when
 * none is stored. A stored object without a string "plan" is TALLY_ECORRUPT, not a fallback:
 * billing a tenant under a plan it did not choose would be silent and wrong.
 */
int
tally__plans_current_name(tally__store_t *store, const char *default_plan, char *buf, size_t len)
{
    char *val = NULL;
    size_t vlen = 0;
    int rc = store ? tally__store_obj_get(store, TALLY_PLANS_CURRENT_KIND, TALLY_PLANS_CURRENT_NS,
                                          TALLY_PLANS_CURRENT_NAME, &val, &vlen)
                   : TALLY_ENOTFOUND;
    const char *name = default_plan;
    json_t *j = NULL;
    if (rc == 0) {
        j = json_loadb(val, vlen, 0, NULL);
        name = json_string_value(json_object_get(j, "plan"));
        if (name == NULL) {
            tally__log(TALLY_LOG_ERROR,
                       "stored current plan (tenant/system/plan) lacks a string member plan");
            rc = TALLY_ECORRUPT;
            goto out;
        }
    } else if (rc != TALLY_ENOTFOUND) {
        goto out;
    }
    rc = snprintf(buf, len, "%s", name ? name : "") < (int)len ? 0 : TALLY_ETOOBIG;
out:
    json_decref(j);
    free(val);
    return rc;
}

int
tally__plans_current(const tally__plans_t *p, tally__store_t *store, const char *default_plan,
                     const tally__plan_t **out)
{
    char name[TALLY_PLANS_NAME_MAX + 1];
    int rc = tally__plans_current_name(store, default_plan, name, sizeof name);
    if (rc == TALLY_ETOOBIG)
        return TALLY_ENOTFOUND; /* longer than any plan name: not in the catalog */
    if (rc != 0)
        return rc;
    const tally__plan_t *plan = tally__plans_find(p, name);
    if (plan == NULL)
        return TALLY_ENOTFOUND;
    *out = plan;
    return 0;
}

/* ==== rendering ===================================================================== */

/* Set key to a new value, stealing it; a NULL value (allocation failure) poisons *ok. */
static void
put(json_t *o, const char *key, json_t *v, int *ok)
{
    if (v == NULL || json_object_set_new(o, key, v) != 0)
        *ok = 0;
}

static json_t *
render_addons(const tally__addon_t *const *list, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) {
        json_t *o =
            json_pack("{s:s, s:s}", "name", list[i]->name, "display_name", list[i]->display_name);
        if (o == NULL || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* All four maps are always present, empty or not, as in the spec's GlobalSpecType. maps[] is
 * indexed by tally__limit_kind_t. Objects render as integers, resources as numbers. */
json_t *
tally__plan_render_quota(const tally__plan_t *plan)
{
    static const char *const maps[] = {"object_limits", "resource_limits", "api_limits",
                                       "apigw_limits"};
    json_t *q = json_object();
    int ok = q != NULL;
    for (int m = 0; ok && m < 4; m++)
        put(q, maps[m], json_object(), &ok);
    for (size_t i = 0; ok && i < plan->nlimits; i++) {
        const tally__plan_limit_t *l = &plan->limits[i];
        json_t *map = json_object_get(q, maps[l->kind]), *v;
        if (l->kind == TALLY_LIMIT_OBJECT)
            v = json_pack("{s:I}", "maximum", (json_int_t)l->maximum);
        else if (l->kind == TALLY_LIMIT_RESOURCE)
            v = json_pack("{s:f}", "maximum", l->maximum);
        else
            v = json_pack("{s:I, s:I, s:s}", "rate", (json_int_t)l->rate, "burst",
                          (json_int_t)l->burst, "unit",
                          tally__plans_enum_name(TALLY_PLANS_ENUM_RATE_UNIT, (int)l->unit));
        put(map, l->name, v, &ok);
    }
    if (!ok) {
        json_decref(q);
        return NULL;
    }
    return q;
}

json_t *
tally__plan_render(const tally__plan_t *plan, bool current)
{
    json_t *o = json_object();
    int ok = o != NULL;
    if (!ok)
        return NULL;
    put(o, "name", json_string(plan->name), &ok);
    put(o, "title", json_string(plan->title), &ok);
    put(o, "subtitle", json_string(plan->subtitle), &ok);
    put(o, "description", json_string(plan->description), &ok);
    put(o, "usage_plan_type",
        json_string(tally__plans_enum_name(TALLY_PLANS_ENUM_PLAN_TYPE, (int)plan->type)), &ok);
    put(o, "tenant_type",
        json_string(tally__plans_enum_name(TALLY_PLANS_ENUM_TENANT_TYPE, (int)plan->tenant_type)),
        &ok);
    put(o, "flat_price", json_integer(plan->flat_price_cents), &ok);
    put(o, "renewal_period_unit",
        json_string(
            tally__plans_enum_name(TALLY_PLANS_ENUM_PERIOD_UNIT, (int)plan->renewal_period_unit)),
        &ok);
    put(o, "trial_period", json_integer(plan->trial_period), &ok);
    put(o, "trial_period_unit",
        json_string(
            tally__plans_enum_name(TALLY_PLANS_ENUM_PERIOD_UNIT, (int)plan->trial_period_unit)),
        &ok);
    put(o, "billing_disabled", json_boolean(plan->billing_disabled), &ok);
    put(o, "current", json_boolean(current), &ok);
    put(o, "state",
        json_string(tally__plans_enum_name(TALLY_PLANS_ENUM_PLAN_STATE, (int)plan->state)), &ok);
    put(o, "default_quota", tally__plan_render_quota(plan), &ok);
    put(o, "allowed_addon_services", render_addons(plan->allowed_addons, plan->nallowed_addons),
        &ok);
    put(o, "included_addon_services", render_addons(plan->included_addons, plan->nincluded_addons),
        &ok);
    json_t *flow = json_object(), *fields = json_array();
    if (flow && fields) {
        for (size_t i = 0; i < plan->transition.nrequired_fields; i++)
            if (json_array_append_new(fields, json_string(tally__plans_enum_name(
                                                  TALLY_PLANS_ENUM_REQUIRED_FIELD,
                                                  (int)plan->transition.required_fields[i]))) != 0)
                ok = 0;
        put(flow, "method",
            json_string(tally__plans_enum_name(TALLY_PLANS_ENUM_TRANSITION_METHOD,
                                               (int)plan->transition.method)),
            &ok);
        put(flow, "required_fields", fields, &ok);
        /* put() stole fields, even on failure: it must not be released again below. */
        fields = NULL;
        put(flow, "requires_manual_approval",
            json_boolean(plan->transition.requires_manual_approval), &ok);
    } else {
        ok = 0;
    }
    json_decref(fields);
    put(o, "transition_flow", flow, &ok);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

json_t *
tally__plan_render_localized(const tally__plan_t *plan, bool current)
{
    json_t *p = tally__plan_render(plan, current);
    if (p == NULL)
        return NULL;
    return json_pack("{s:s, s:[o]}", "locale", TALLY_PLANS_LOCALE, "plans", p);
}

json_t *
tally__plans_render_list(const tally__plans_t *p, const char *current_name)
{
    json_t *plans = json_array();
    for (size_t i = 0; plans && i < tally__plans_count(p); i++) {
        const tally__plan_t *plan = tally__plans_at(p, i);
        json_t *o = tally__plan_render(plan, current_name && strcmp(plan->name, current_name) == 0);
        if (o == NULL || json_array_append_new(plans, o) != 0) {
            json_decref(plans);
            return NULL;
        }
    }
    if (plans == NULL)
        return NULL;
    return json_pack("{s:[{s:s, s:o}]}", "usage_plans", "locale", TALLY_PLANS_LOCALE, "plans",
                     plans);
}
