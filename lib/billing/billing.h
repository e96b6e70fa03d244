/* billing.h — plan transitions (the spec's state machine), plan and add-on subscriptions with their
 * billing periods, and the add-on rules.
 *
 * Everything lives in the store's API objects (namespace "system"), as JSON:
 *
 *   kind "transition", name ID      one record per transition, kept forever:
 *                                   {id, namespace, from_plan, new_plan,
 *                                    requires_manual_approval, state, reason,
 *                                    decided_by, created, updated, payload,
 *                                    history: [{state, time, note}]}
 *   kind "tenant", name "transition_in_flight"
 *                                   {id}: present while a transition waits
 *                                   for approval (at most one per tenant)
 *   kind "tenant", name "plan"      the tenant's plan (see plans.h)
 *   kind "tenant", name "default_quota"
 *                                   the default quota of the plan applied
 *                                   last, a GlobalSpecType (what the quota
 *                                   module overlays namespaces' quotas on)
 *   kind "subscription", name UID   one plan subscription: {uid, plan,
 *                                   start, cancelled, cancellation}
 *   kind "addon", name ADDON        the latest subscription of one add-on:
 *                                   {addon, start, cancelled, cancellation,
 *                                    included}
 *
 * Invariants: at most one plan subscription is not cancelled, and it is on
 * the tenant's plan; the in-flight marker exists exactly while its
 * transition is STATE_WAITING_FOR_APPROVAL. Every step of a transition
 * (create, execute, approve, reject) is ONE tally__store_obj_write() batch,
 * so a crash leaves the tenant before or after a step, never inside one.
 *
 * Billing periods are not stored: they are the calendar months of a
 * subscription's life, clipped to its start and cancellation, computed when
 * listed; so closing a subscription closes its current period and opening
 * one opens a period. A period's invoice is "invoice-YYYY-MM".
 *
 * Errors (all functions): 0, or TALLY_EINVAL (bad input → 400),
 * -EPERM (not allowed by the plan → 403), TALLY_ENOTFOUND (→ 404),
 * TALLY_EEXISTS (a transition is in flight / an included add-on → 409),
 * TALLY_EBUSY (the transition is not in a state that allows it → 409), or a
 * store error (TALLY_ESTORE, TALLY_EMAPFULL, -ENOMEM → 500). Where a
 * function takes `msg`, it receives a human sentence naming the field.
 *
 * Threads: any thread, but calls are meant to be serialized (tallyd makes
 * them on its loop thread): a step reads the objects it needs, then writes
 * its batch. The batch guards (must_exist / must_not_exist on the record
 * and the in-flight marker) still keep two transitions, or two decisions on
 * one, from both applying; an add-on change racing a transition from
 * another thread could be overwritten by it. Times are unix seconds passed
 * in by the caller (tests choose them).
 */
#ifndef TALLY_BILLING_H
#define TALLY_BILLING_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "plans.h"
#include "store.h"

/** Length of a UUID text plus its NUL. */
#define TALLY_BILLING_ID_LEN 37

/** Transition states, the spec's plan_transitionState names. */
#define TALLY_BILLING_STATE_CREATING "STATE_CREATING"
#define TALLY_BILLING_STATE_WAITING "STATE_WAITING_FOR_APPROVAL"
#define TALLY_BILLING_STATE_FINISHED "STATE_FINISHED"
#define TALLY_BILLING_STATE_FAILED "STATE_FAILED"

/** What the billing functions work on; borrowed for the call. */
typedef struct tally__billing_env {
    tally__store_t *store;
    const tally__plans_t *plans;
    const char *default_plan; /**< config billing.default_plan */
} tally__billing_env_t;

/** The answer of tally__billing_transition_create(). */
typedef struct tally__billing_created {
    char id[TALLY_BILLING_ID_LEN];
    int requires_manual_approval;
    const char *state; /**< a TALLY_BILLING_STATE_* (static) */
} tally__billing_created_t;

/**
 * @brief InitiatePlanTransition: validate, record, and run at once unless
 *        the target plan requires manual approval.
 * @param ns the namespace of the request path (recorded; transitions are
 *        tenant-wide).
 * @param req the plan_transitionInitiatePlanTransitionReq body (borrowed).
 * @param now_s the time of the request.
 * @param[out] out id, whether approval is needed and the state reached.
 * @param msg receives the reason of a TALLY_EINVAL / TALLY_EEXISTS.
 * @return 0 (also when the transition ended STATE_FAILED: it exists, with
 *         its reason), TALLY_EINVAL (new_plan unknown or current, a field the
 *         target plan requires is missing, a malformed payload: nothing
 *         stored), TALLY_EEXISTS (another transition is waiting for
 *         approval), or a store error.
 */
int tally__billing_transition_create(const tally__billing_env_t *env, const char *ns, json_t *req,
                                     int64_t now_s, tally__billing_created_t *out, char *msg,
                                     size_t msglen);

/**
 * @brief The stored record of a transition.
 * @param[out] record the record (caller decrefs), with the payload left out.
 * @return 0, TALLY_ENOTFOUND, TALLY_ECORRUPT, or a store error.
 */
int tally__billing_transition_get(tally__store_t *store, const char *id, json_t **record);

/**
 * @brief An admin's decision on a transition waiting for approval:
 *        approve runs it (STATE_FINISHED, or STATE_FAILED with the reason
 *        when it cannot apply any more), reject ends it STATE_FAILED with
 *        reason "rejected by NAME".
 * @param by the deciding token's name (recorded).
 * @param[out] record the record after the decision (caller decrefs), no payload.
 * @return 0, TALLY_ENOTFOUND, TALLY_EBUSY (not waiting for approval), or a store error.
 */
int tally__billing_transition_decide(const tally__billing_env_t *env, const char *id, int approve,
                                     const char *by, int64_t now_s, json_t **record, char *msg,
                                     size_t msglen);

/**
 * @brief ListSubscriptions: the plan subscriptions and one record per
 *        add-on, as subscriptionListSubscriptionsRsp.
 * @param current_only 1 to keep only current (not cancelled) subscriptions.
 * @param[out] rsp {"subscriptions": [...]} (caller decrefs).
 * @note A tenant that never changed plan gets its first plan subscription
 *       (and its plan's included add-ons) recorded here, starting now.
 * @return 0 or a store error.
 */
int tally__billing_subscriptions_list(const tally__billing_env_t *env, int current_only,
                                      int64_t now_s, json_t **rsp);

/**
 * @brief The add-on a subscribe / unsubscribe request names through the
 *        spec's one-of (exactly one f5xc_* field, an object).
 * @return the add-on name (static), or NULL with msg set (→ 400).
 */
const char *tally__billing_addon_choice(json_t *req, char *msg, size_t msglen);

/**
 * @brief Subscribe to an add-on of the current plan; idempotent.
 * @return 0, -EPERM (the plan does not allow it), or a store error.
 */
int tally__billing_addon_subscribe(const tally__billing_env_t *env, const char *addon,
                                   int64_t now_s, char *msg, size_t msglen);

/**
 * @brief Cancel an add-on subscription; idempotent (not subscribed → 0).
 * @return 0, TALLY_EEXISTS (the plan includes it: cannot be cancelled), or a store error.
 */
int tally__billing_addon_unsubscribe(const tally__billing_env_t *env, const char *addon,
                                     int64_t now_s, char *msg, size_t msglen);

#endif
