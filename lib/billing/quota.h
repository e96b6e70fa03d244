/* quota.h — quota objects (the XC object model), label selectors, effective limits and live usage
 * against them.
 *
 * INTERFACE AGREED BETWEEN ENGINEERS: the functions below are implemented by
 * the quota module (lib/quota.c) and used by the alerts and API-limit code.
 * Keep these signatures; add what else the module needs.
 */
#ifndef TALLY_QUOTA_H
#define TALLY_QUOTA_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "catalog.h"
#include "plans.h"
#include "selector.h"
#include "store.h"

enum { TALLY_QUOTA_OBJECT = 1, TALLY_QUOTA_RESOURCE = 2 };

/** One effective object or resource limit of a namespace. */
typedef struct tally__quota_limit {
    char key[TALLY_MAX_METRIC_LEN + 1]; /**< metric label */
    int kind;                           /**< TALLY_QUOTA_OBJECT or TALLY_QUOTA_RESOURCE */
    double maximum;                     /**< the limit; < 0 = unlimited */
    char source[128];                   /**< "plan:NAME" or "quota:NAME" (where it came from) */
} tally__quota_limit_t;

/** One effective API rate limit (api_limits). */
typedef struct tally__quota_api_limit {
    char key[128];  /**< API operation name (route name, e.g. "usage_details") */
    uint32_t rate;  /**< requests per unit */
    int unit_s;     /**< the unit in seconds (1, 60, 3600, ...) */
    uint32_t burst; /**< extra requests allowed at once */
} tally__quota_api_limit_t;

typedef struct tally__quota_limits {
    tally__quota_limit_t *items;
    size_t n;
    tally__quota_api_limit_t *apis;
    size_t napis;
} tally__quota_limits_t;

/**
 * @brief Effective limits of namespace ns: the tenant plan's default quota
 *        (the applied one in store object tenant/system/default_quota when
 *        present, else the current plan's from the catalog) overlaid by the
 *        namespace's enabled quota objects (later keys win).
 * @param[out] out caller frees with tally__quota_limits_free().
 * @return 0, -ENOMEM, TALLY_ESTORE.
 */
int tally__quota_effective(tally__store_t *store, const tally__plans_t *plans,
                           const char *default_plan, const char *ns, tally__quota_limits_t *out);

/** @brief Free the arrays of l and zero it. NULL is ignored. */
void tally__quota_limits_free(tally__quota_limits_t *l);

/** Hours looked back for a gauge's latest value (tally__quota_usage()). */
#define TALLY_QUOTA_GAUGE_LOOKBACK_H 48

/**
 * @brief Live usage of one limit key in ns, as committed by the last flush:
 *        objects and gauges (catalog aggregation last or max) → the latest
 *        hourly value; accumulating resources → the current month's total.
 * @param ns a namespace; "system" (TALLY_USAGE_ALL_NS) sums every namespace
 *        of the tenant, as the usage API does.
 * @param now_s the wall clock (selects the month and the latest hour).
 * @note "The latest hour" is, per series, its most recent hourly record in
 *       the TALLY_QUOTA_GAUGE_LOOKBACK_H hours before now's hour (and the
 *       hour after, for clock skew); series whose latest record is older
 *       than the newest hour seen for the metric no longer count.
 * @return 0 (usage 0 when there is no data), TALLY_ESTORE.
 */
int tally__quota_usage(tally__store_t *store, const tally__catalog_t *cat, const char *ns,
                       const char *key, int64_t now_s, double *usage);

/* ---- quota objects (the XC configuration-object model) -------------------------
 * A quota object is stored as kind TALLY_QUOTA_KIND under its namespace and
 * name, as the JSON text of the spec's quota GetResponse in its default
 * form: {"metadata": ObjectGetMetaType, "spec": quota GetSpecType,
 * "system_metadata": SystemObjectGetMetaType}. Handlers render every
 * response format from that document. */

/** Store kind of quota objects. */
#define TALLY_QUOTA_KIND "quota"
/** Store location of the applied default quota (GlobalSpecType JSON), written on plan transitions.
 */
#define TALLY_QUOTA_DEFAULT_KIND "tenant"
#define TALLY_QUOTA_DEFAULT_NS "system"
#define TALLY_QUOTA_DEFAULT_NAME "default_quota"
/** Store location of the object_index sequence of quota objects ({"next": N}). */
#define TALLY_QUOTA_SEQ_KIND "sequence"
#define TALLY_QUOTA_SEQ_NS "system"
#define TALLY_QUOTA_SEQ_NAME "quota"
/** system_metadata.creator_class of objects created through the API. */
#define TALLY_QUOTA_CREATOR_CLASS "tallyd"
/** Longest object name (a DNS-1035 label). */
#define TALLY_QUOTA_NAME_MAX 63

/**
 * @brief Whether name is a DNS-1035 label: 1..63 bytes of [a-z0-9-],
 *        starting with a letter, not ending with '-'.
 * @param err receives the reason on failure ("must start with a lower-case
 *        letter", ...); may be NULL.
 * @return 0 or TALLY_EINVAL.
 */
int tally__quota_check_name(const char *name, char *err, size_t errlen);

/**
 * @brief Validate a quota spec (CreateSpecType / ReplaceSpecType):
 *        object_limits {METRIC: {"maximum": integer}}, resource_limits
 *        {METRIC: {"maximum": number}} with METRIC a label of cat, and
 *        api_limits {API: {"rate": integer, "unit": "SECOND" | "MINUTE" |
 *        "HOUR" | "DAY", "burst": integer}}. A negative maximum means
 *        unlimited; rate and burst are 0..2^31-1.
 * @param spec borrowed; NULL or an empty object is a spec without limits.
 * @param err receives "spec.object_limits.KEY: reason" style text on
 *        failure; may be NULL.
 * @return 0 or TALLY_EINVAL.
 */
int tally__quota_check_spec(const json_t *spec, const tally__catalog_t *cat, char *err,
                            size_t errlen);

/** Who and when, for system_metadata. Strings borrowed for the call. */
typedef struct tally__quota_origin {
    const char *tenant;  /**< billing.tenant */
    const char *creator; /**< the API token's name */
    int64_t now_s;       /**< wall clock */
} tally__quota_origin_t;

/**
 * @brief Build the stored document of a quota object from a Create or
 *        Replace request body.
 * @param body the request ({"metadata": ..., "spec": ...}); borrowed.
 * @param path_ns the namespace of the path; metadata.namespace, when set
 *        and non-empty, must equal it.
 * @param path_name NULL for Create (metadata.name is then required), the
 *        name of the path for Replace (metadata.name, when set, must equal it).
 * @param prev Replace: the stored document being replaced (its uid,
 *        creation timestamp, creator and object_index are kept); NULL for
 *        Create (a new v4 uid is drawn).
 * @param object_index Create: the object's sequence number (ignored for Replace).
 * @param[out] out the new document (caller decrefs); untouched on failure.
 * @param err receives "field: reason" on failure (e.g. "metadata.name:
 *        must start with a lower-case letter"); may be NULL.
 * @return 0, TALLY_EINVAL (bad request: err says why), -ENOMEM.
 */
int tally__quota_build(const json_t *body, const char *path_ns, const char *path_name,
                       const json_t *prev, int64_t object_index, const tally__catalog_t *cat,
                       const tally__quota_origin_t *origin, json_t **out, char *err, size_t errlen);

/**
 * @brief Create a quota object: validate (tally__quota_build()), assign the
 *        next object_index, and store it — all or nothing.
 * @param[out] out the stored document (caller decrefs); may be NULL.
 * @return 0; TALLY_EINVAL (err says why); TALLY_EEXISTS when the namespace
 *         has an object of that name; -ENOMEM, TALLY_EMAPFULL, TALLY_ESTORE.
 * @note Writers are expected on one thread (tallyd's loop): the sequence
 *       is read and written back in the same batch as the object.
 */
int tally__quota_create(tally__store_t *store, const json_t *body, const char *path_ns,
                        const tally__catalog_t *cat, const tally__quota_origin_t *origin,
                        json_t **out, char *err, size_t errlen);

/**
 * @brief Replace a quota object as a whole (metadata and spec), keeping its
 *        identity (uid, creation, creator, object_index).
 * @param[out] out the stored document (caller decrefs); may be NULL.
 * @return 0; TALLY_EINVAL (err says why); TALLY_ENOTFOUND when there is no
 *         such object; -ENOMEM, TALLY_EMAPFULL, TALLY_ESTORE.
 */
int tally__quota_replace(tally__store_t *store, const json_t *body, const char *path_ns,
                         const char *path_name, const tally__catalog_t *cat,
                         const tally__quota_origin_t *origin, json_t **out, char *err,
                         size_t errlen);

/**
 * @brief Read a stored quota object.
 * @param[out] out the document (caller decrefs).
 * @return 0, TALLY_ENOTFOUND, TALLY_ECORRUPT (not a JSON object), -ENOMEM, TALLY_ESTORE.
 */
int tally__quota_get(tally__store_t *store, const char *ns, const char *name, json_t **out);

/** @brief Delete a quota object. @return 0, TALLY_ENOTFOUND, TALLY_EMAPFULL, TALLY_ESTORE. */
int tally__quota_delete(tally__store_t *store, const char *ns, const char *name);

/**
 * @brief The quota objects of ns whose metadata.labels satisfy sel, in name
 *        order (unreadable documents are skipped).
 * @param sel NULL selects every object.
 * @param[out] out a JSON array of stored documents (caller decrefs).
 * @return 0, -ENOMEM, TALLY_ESTORE.
 */
int tally__quota_list(tally__store_t *store, const char *ns, const tally__selector_t *sel,
                      json_t **out);

/** @brief Seconds of a rate unit name ("SECOND" 1, "MINUTE" 60, "HOUR" 3600, "DAY" 86400), or 0. */
int tally__quota_unit_seconds(const char *unit);

/** @brief The rate unit name of a number of seconds (1, 60, 3600, 86400), or NULL. */
const char *tally__quota_unit_name(int unit_s);

/** @brief The limit of (kind, key) in l, or NULL. */
const tally__quota_limit_t *tally__quota_limits_find(const tally__quota_limits_t *l, int kind,
                                                     const char *key);

/** @brief The api limit of key in l, or NULL. */
const tally__quota_api_limit_t *tally__quota_limits_find_api(const tally__quota_limits_t *l,
                                                             const char *key);

#endif
