/* plans.h — the plan catalog ([billing] plans_file): plans, their prices and quotas, add-on
 * services, transition flows.
 *
 * The catalog is an INI file (format documented at the top of the shipped
 * config/plans.ini) with one `[addon NAME]` section per add-on service and
 * one `[plan NAME]` section per plan. Each plan carries everything of the
 * API's PlanInternal (title, type, flat price, trial, default quota,
 * allowed / included add-ons, transition flow, state) plus what pricing
 * needs: per metric label a unit price in cents per billable unit, an
 * included quantity, and optional graduated tiers.
 *
 * Units. Prices, included quantities and tier bounds are in the metric's
 * billable unit (metrics.ini billable_unit: raw / division_factor, e.g. GB
 * for bytes_out). Default-quota limits follow the API: object and resource
 * limits in the metric's raw unit, api limits as rate per time unit.
 *
 * Invariants of a loaded catalog: plan and add-on names are unique; every
 * price and quota metric is in the metric catalog it was loaded against;
 * every add-on a plan names is in the add-on catalog; tiers start at 0, are
 * contiguous and ascending, and only the last one is open-ended; no price
 * is negative; every enum value is one of the spec's.
 *
 * A loaded catalog is immutable: any number of threads may read it without
 * locks; a reload builds a new one and swaps the pointer. Every pointer
 * handed out (plans, add-ons, prices, strings) lives until
 * tally__plans_destroy().
 */
#ifndef TALLY_PLANS_H
#define TALLY_PLANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"
#include "store.h"

typedef struct tally__plans tally__plans_t;

/** Locale of the LocalizedPlan objects tally renders (the catalog has one language). */
#define TALLY_PLANS_LOCALE "en-us"

/** Longest plan or add-on name, bytes without NUL: [a-z0-9_-]{1,64}. */
#define TALLY_PLANS_NAME_MAX 64

/* ---- enums of the spec --------------------------------------------------- *
 * Each enum below mirrors a spec enum value for value; tally__plans_enum_name()
 * gives the exact spec string and tally__plans_enum_parse() reads it back. */

/** schemaPlanType */
typedef enum tally__plan_type {
    TALLY_PLAN_TYPE_FREE = 0,
    TALLY_PLAN_TYPE_INDIVIDUAL,
    TALLY_PLAN_TYPE_TEAM,
    TALLY_PLAN_TYPE_ORGANIZATION,
    TALLY_PLAN_TYPE_UNSPECIFIED, /* "PLAN_TYPE_UNSPECIFIED" */
} tally__plan_type_t;

/** schemaTenantType */
typedef enum tally__tenant_type {
    TALLY_TENANT_UNKNOWN = 0,
    TALLY_TENANT_FREEMIUM,
    TALLY_TENANT_ENTERPRISE,
} tally__tenant_type_t;

/** planPeriodUnitType */
typedef enum tally__period_unit {
    TALLY_PERIOD_UNKNOWN = 0,
    TALLY_PERIOD_DAY,
    TALLY_PERIOD_WEEK,
    TALLY_PERIOD_MONTH,
    TALLY_PERIOD_YEAR,
} tally__period_unit_t;

/** planPlanState */
typedef enum tally__plan_state {
    TALLY_PLAN_STATE_UNSPECIFIED = 0,
    TALLY_PLAN_STATE_READY,
    TALLY_PLAN_STATE_TRANSITION_PENDING,
} tally__plan_state_t;

/** planPlanTransitionMethod */
typedef enum tally__transition_method {
    TALLY_TRANSITION_METHOD_UNSPECIFIED = 0,
    TALLY_TRANSITION_METHOD_SUPPORT,
    TALLY_TRANSITION_METHOD_WIZARD,
    TALLY_TRANSITION_METHOD_RECREATE,
} tally__transition_method_t;

/** planPlanTransitionRequiredField */
typedef enum tally__required_field {
    TALLY_REQUIRED_FIELD_UNSPECIFIED = 0,
    TALLY_REQUIRED_FIELD_PAYMENT_TOKEN,
    TALLY_REQUIRED_FIELD_DOMAIN,
    TALLY_REQUIRED_FIELD_CONTACTS,
} tally__required_field_t;

/** Time unit of an api rate limit (quotaRateLimitType.unit). */
typedef enum tally__rate_unit {
    TALLY_RATE_SECOND = 0,
    TALLY_RATE_MINUTE,
    TALLY_RATE_HOUR,
    TALLY_RATE_DAY,
} tally__rate_unit_t;

/** Which enum tally__plans_enum_name() / tally__plans_enum_parse() speak of. */
typedef enum tally__plans_enum {
    TALLY_PLANS_ENUM_PLAN_TYPE = 0,     /**< tally__plan_type_t */
    TALLY_PLANS_ENUM_TENANT_TYPE,       /**< tally__tenant_type_t */
    TALLY_PLANS_ENUM_PERIOD_UNIT,       /**< tally__period_unit_t */
    TALLY_PLANS_ENUM_PLAN_STATE,        /**< tally__plan_state_t */
    TALLY_PLANS_ENUM_TRANSITION_METHOD, /**< tally__transition_method_t */
    TALLY_PLANS_ENUM_REQUIRED_FIELD,    /**< tally__required_field_t */
    TALLY_PLANS_ENUM_RATE_UNIT,         /**< tally__rate_unit_t */
} tally__plans_enum_t;

/**
 * @brief The exact spec string of an enum value ("TEAM", "PERIOD_MONTH",
 *        "TRANSITION_REQUIRED_FIELD_PAYMENT_TOKEN", "MINUTE", ...).
 * @return a static string; NULL for a value outside the enum.
 */
const char *tally__plans_enum_name(tally__plans_enum_t e, int value);

/**
 * @brief Parse the exact spec string of an enum value (case-sensitive, as
 *        on the wire).
 * @return 0 with *out set, or TALLY_EINVAL.
 */
int tally__plans_enum_parse(tally__plans_enum_t e, const char *s, int *out);

/* ---- catalog entries ----------------------------------------------------- */

/** An add-on service of the catalog (`[addon NAME]`). */
typedef struct tally__addon {
    char name[TALLY_PLANS_NAME_MAX + 1]; /**< a subscribe request's f5xc_* field name */
    char *display_name;                  /**< shown to people; never NULL */
} tally__addon_t;

/** One graduated tier: billable units in [from, up_to) cost unit_price_cents each. */
typedef struct tally__plan_tier {
    uint64_t from;            /**< first billable unit of the tier (the previous up_to) */
    uint64_t up_to;           /**< end, exclusive; 0 = open-ended (only the last tier) */
    int64_t unit_price_cents; /**< >= 0 */
} tally__plan_tier_t;

/**
 * The price of one metric on a plan. A `price.M` key gives one open tier
 * from 0 at that price; `tiers.M` gives several. Usage up to `included` is
 * free; each billable unit above it costs the price of the tier it falls in
 * (tiers count from 0, the included units included). A metric of the plan
 * without a price line (only `included.M`) has one open tier at 0 cents.
 */
typedef struct tally__plan_price {
    char metric[TALLY_MAX_METRIC_LEN + 1]; /**< a metric label of the metric catalog */
    uint64_t included;                     /**< free billable units per renewal period */
    const tally__plan_tier_t *tiers;       /**< ascending, contiguous, from 0; last open */
    size_t ntiers;                         /**< >= 1 */
    bool tiered;                           /**< set with tiers.M (else price.M or none) */
} tally__plan_price_t;

/** The map of GlobalSpecType a limit belongs to. */
typedef enum tally__limit_kind {
    TALLY_LIMIT_OBJECT = 0, /**< object_limits: {"maximum": integer} */
    TALLY_LIMIT_RESOURCE,   /**< resource_limits: {"maximum": number}, raw unit */
    TALLY_LIMIT_API,        /**< api_limits: {"rate", "burst", "unit"} */
    TALLY_LIMIT_APIGW,      /**< apigw_limits: {"rate", "burst", "unit"} */
} tally__limit_kind_t;

/** One entry of a plan's default quota. */
typedef struct tally__plan_limit {
    tally__limit_kind_t kind;
    char name[128];          /**< metric label (object, resource) or API name (api, apigw) */
    double maximum;          /**< object (a whole number) and resource limits */
    uint32_t rate;           /**< api / apigw: events per unit */
    uint32_t burst;          /**< api / apigw: extra events in a burst (0 = none) */
    tally__rate_unit_t unit; /**< api / apigw */
} tally__plan_limit_t;

/** A plan of the catalog (`[plan NAME]`): PlanInternal plus prices. */
typedef struct tally__plan {
    char name[TALLY_PLANS_NAME_MAX + 1]; /**< catalog key, e.g. "team" */
    const char *title;                   /**< never NULL (required key) */
    const char *subtitle;                /**< "" when unset */
    const char *description;             /**< "" when unset */
    tally__plan_type_t type;             /**< usage_plan_type (required key) */
    tally__tenant_type_t tenant_type;
    int32_t flat_price_cents; /**< per renewal period, >= 0 */
    tally__period_unit_t renewal_period_unit;
    int32_t trial_period; /**< in trial_period_unit; 0 = no trial */
    tally__period_unit_t trial_period_unit;
    bool billing_disabled; /**< never invoiced */
    tally__plan_state_t state;
    const tally__addon_t *const *allowed_addons; /**< into the add-on catalog */
    size_t nallowed_addons;
    const tally__addon_t *const *included_addons;
    size_t nincluded_addons;
    struct {
        tally__transition_method_t method;
        const tally__required_field_t *required_fields; /**< no duplicates */
        size_t nrequired_fields;
        bool requires_manual_approval;
    } transition;
    const tally__plan_price_t *prices; /**< in file order of first mention */
    size_t nprices;
    const tally__plan_limit_t *limits; /**< default quota, in file order */
    size_t nlimits;
} tally__plan_t;

/* ---- loading --------------------------------------------------------------- */

/**
 * @brief Load and validate the plan catalog.
 * @param path the INI file; borrowed for the call.
 * @param metrics the metric catalog (price and quota keys must be its
 *        metric labels); borrowed for the call (the plan catalog keeps no
 *        pointer into it).
 * @param[out] out the catalog, owned by the caller until
 *        tally__plans_destroy(); untouched on failure.
 * @param err "FILE:LINE: [section] key: reason" (or "FILE:LINE: [section]:
 *        reason", "FILE: reason") on failure; may be NULL.
 * @return 0; TALLY_ECONFIG for a syntax error, an unknown section kind or
 *         key, a duplicate plan, add-on or key, a missing required key, an
 *         unknown metric label, add-on or enum value, a negative or
 *         malformed price, overlapping, unsorted or gapped tiers, a bad
 *         limit, or a catalog without plans; -errno when the file cannot be
 *         read (-ENOENT when missing); -ENOMEM.
 */
int tally__plans_load(const char *path, const tally__catalog_t *metrics, tally__plans_t **out,
                      char *err, size_t errlen);

/** @brief Free a catalog. NULL is ignored. Pointers from it die with it. */
void tally__plans_destroy(tally__plans_t *p);

/* ---- lookups ----------------------------------------------------------------- */

/** @brief Number of plans; 0 for NULL (for `tallyd --check-config`). */
size_t tally__plans_count(const tally__plans_t *p);

/** @brief The i-th plan in catalog (file) order, or NULL when i >= count. */
const tally__plan_t *tally__plans_at(const tally__plans_t *p, size_t i);

/** @brief The plan called name, or NULL (also for a NULL catalog or name). */
const tally__plan_t *tally__plans_find(const tally__plans_t *p, const char *name);

/** @brief Number of add-on services of the catalog; 0 for NULL. */
size_t tally__plans_addon_count(const tally__plans_t *p);

/** @brief The add-on service of the API (an f5xc_* one-of field of the
 *         subscribe request) named name, as a static string; NULL when the API
 *         has none of that name. The one list of them. */
const char *tally__plans_spec_addon(const char *name);

/** @brief The i-th add-on in file order, or NULL when i >= count. */
const tally__addon_t *tally__plans_addon_at(const tally__plans_t *p, size_t i);

/** @brief The add-on called name (e.g. "f5xc_waap_standard"), or NULL. */
const tally__addon_t *tally__plans_addon_find(const tally__plans_t *p, const char *name);

/** @brief Whether plan allows subscribing to add-on name. 1 or 0. */
int tally__plan_allows_addon(const tally__plan_t *plan, const char *name);

/** @brief Whether plan includes add-on name at no charge. 1 or 0. */
int tally__plan_includes_addon(const tally__plan_t *plan, const char *name);

/** @brief Whether plan's transition flow requires field f. 1 or 0. */
int tally__plan_requires_field(const tally__plan_t *plan, tally__required_field_t f);

/** @brief The plan's price of metric, or NULL when the plan does not price it. */
const tally__plan_price_t *tally__plan_price_find(const tally__plan_t *plan, const char *metric);

/** @brief The plan's default-quota entry (kind, name), or NULL. */
const tally__plan_limit_t *tally__plan_limit_find(const tally__plan_t *plan,
                                                  tally__limit_kind_t kind, const char *name);

/**
 * @brief The charge for a billable quantity under a price: units above
 *        `included`, each at the price of the tier it falls in.
 * @param billable the period's billable quantity (raw / division_factor);
 *        negative or NaN counts as 0.
 * @return cents, possibly fractional (the caller rounds once per line);
 *         0 for a NULL price.
 */
double tally__plan_price_charge(const tally__plan_price_t *price, double billable);

/* ---- the tenant's current plan ----------------------------------------------- */

/** Store location of the tenant's current plan, written by plan transitions. */
#define TALLY_PLANS_CURRENT_KIND "tenant"
#define TALLY_PLANS_CURRENT_NS "system"
#define TALLY_PLANS_CURRENT_NAME "plan"

/**
 * @brief The name of the tenant's current plan: the "plan" member of the
 *        store object (kind "tenant", ns "system", name "plan"; JSON text
 *        {"plan": "NAME", ...} written by the plan-transition module), or
 *        default_plan when that object does not exist.
 * @param store the store; NULL behaves as a store without the object.
 * @param default_plan `[billing] default_plan`; borrowed.
 * @param buf receives the name, NUL-terminated.
 * @param len size of buf (TALLY_PLANS_NAME_MAX + 1 is always enough for a
 *        valid name).
 * @return 0; TALLY_ECORRUPT when the stored object is not JSON with a
 *         string "plan" member; TALLY_ETOOBIG when the name does not fit
 *         buf; TALLY_ESTORE when the store cannot be read.
 * @note Thread-safe (one LMDB read transaction).
 */
int tally__plans_current_name(tally__store_t *store, const char *default_plan, char *buf,
                              size_t len);

/**
 * @brief The tenant's current plan (tally__plans_current_name() looked up in
 *        the catalog).
 * @param[out] out the plan, valid until tally__plans_destroy().
 * @return 0; TALLY_ENOTFOUND when the named plan is not in the catalog
 *         (e.g. removed by a reload); the errors of tally__plans_current_name().
 */
int tally__plans_current(const tally__plans_t *p, tally__store_t *store, const char *default_plan,
                         const tally__plan_t **out);

/* ---- rendering (jansson; not a hot path) ---------------------------------- */

/**
 * @brief A plan as the spec's PlanInternal (planPlanInternal): every field,
 *        enums as their spec strings, flat_price in cents.
 * @param current the value of the `current` field.
 * @return a new reference (caller decrefs), NULL on allocation failure.
 */
json_t *tally__plan_render(const tally__plan_t *plan, bool current);

/**
 * @brief A plan's default quota as the spec's GlobalSpecType: object_limits,
 *        resource_limits, api_limits and apigw_limits maps (each present,
 *        possibly empty).
 * @return a new reference (caller decrefs), NULL on allocation failure.
 */
json_t *tally__plan_render_quota(const tally__plan_t *plan);

/**
 * @brief One LocalizedPlan (planLocalizedPlan): locale "en-us" and, in
 *        plans, the given plan with `current` as given.
 * @return a new reference (caller decrefs), NULL on allocation failure.
 */
json_t *tally__plan_render_localized(const tally__plan_t *plan, bool current);

/**
 * @brief The catalog as ListUsagePlansRsp (planListUsagePlansRsp): one
 *        LocalizedPlan (locale "en-us") holding every plan in catalog
 *        order, `current` true exactly on the plan called current_name.
 * @param current_name the tenant's current plan; NULL marks none.
 * @return a new reference (caller decrefs), NULL on allocation failure.
 */
json_t *tally__plans_render_list(const tally__plans_t *p, const char *current_name);

#endif
