/* billing.c — plan transitions, subscriptions with computed billing periods, and add-on rules over
 * the store's API objects. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "billing.h"
#include "ids.h"
#include "payment.h"
#include "log.h"
#include "plans.h"
#include "tally/tally.h"
#include "timeutil.h"

#define NS_SYSTEM "system"
#define KIND_TRANSITION "transition"
#define KIND_TENANT "tenant"
#define KIND_SUB "subscription"
#define KIND_ADDON "addon"
#define NAME_LOCK "transition_in_flight"
#define NAME_PLAN "plan"
#define NAME_QUOTA "default_quota"
/* the first plan subscription, recorded once (guarded by must_not_exist) */
#define NAME_FIRST_SUB "initial"


static void say(char *msg, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(char *msg, size_t cap, const char *fmt, ...)
{
    if (!msg || !cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
}

static const char *
str_or(json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s ? s : dflt;
}

static const char *
get_str(json_t *o, const char *key)
{
    return str_or(json_object_get(o, key), "");
}

static json_t *
time_json(int64_t unix_s)
{
    char buf[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(unix_s, buf, sizeof buf);
    return json_string(buf);
}

/* RFC 3339 field of o as unix seconds, or dflt when absent or malformed. */
static int64_t
get_time(json_t *o, const char *key, int64_t dflt)
{
    int64_t ms;
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || tally__time_parse_rfc3339(s, &ms) != 0)
        return dflt;
    return ms / 1000;
}

/* ---- the plan catalog, seen through what billing needs ------------------------ */

static const tally__plan_t *
plan_find(const tally__billing_env_t *env, const char *name)
{
    return tally__plans_find(env->plans, name);
}

/* The tenant's plan name into buf: the stored one, else the default plan. */
static int
plan_current(const tally__billing_env_t *env, char *buf, size_t cap)
{
    return tally__plans_current_name(env->store, env->default_plan, buf, cap);
}

/* The stored form of the tenant's plan (tally__plans_current_name() reads it). */
static json_t *
plan_record(const char *plan, int64_t now_s)
{
    return json_pack("{s:s, s:o}", "plan", plan, "since", time_json(now_s));
}

static int
plan_includes(const tally__plan_t *p, const char *addon)
{
    return p && tally__plan_includes_addon(p, addon);
}

/* Included add-ons count as allowed even when allowed_addons omits them. */
static int
plan_allows(const tally__plan_t *p, const char *addon)
{
    return p && (tally__plan_includes_addon(p, addon) || tally__plan_allows_addon(p, addon));
}

static int
addon_known(const tally__billing_env_t *env, const char *addon)
{
    return tally__plans_addon_find(env->plans, addon) != NULL;
}

/* ---- objects ------------------------------------------------------------------- */

/* Read a JSON object; TALLY_ENOTFOUND passes through, unparsable is TALLY_ECORRUPT. */
static int
obj_load(tally__store_t *s, const char *kind, const char *name, json_t **out)
{
    char *v = NULL;
    size_t len;
    *out = NULL;
    int rc = tally__store_obj_get(s, kind, NS_SYSTEM, name, &v, &len);
    if (rc)
        return rc;
    *out = json_loadb(v, len, 0, NULL);
    free(v);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return TALLY_ECORRUPT;
    }
    return 0;
}

typedef struct collect {
    json_t *obj; /* name -> record */
} collect_t;

static int
collect_cb(void *ctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    collect_t *c = ctx;
    json_t *j = json_loadb(value, len, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        return TALLY_ECORRUPT;
    }
    json_object_set_new(c->obj, name, j);
    return 0;
}

/* Every object of a kind in "system", as {name: record}. */
static int
obj_all(tally__store_t *s, const char *kind, json_t **out)
{
    collect_t c = {json_object()};
    if (!c.obj)
        return -ENOMEM;
    int rc = tally__store_obj_list(s, kind, NS_SYSTEM, collect_cb, &c);
    if (rc) {
        json_decref(c.obj);
        return rc;
    }
    *out = c.obj;
    return 0;
}

/* One write batch: ops with their serialized values and names, owned here. */
typedef struct batch {
    tally__obj_op_t *ops;
    char **owned; /* values and names to free */
    size_t n, nowned, cap;
    int err;
} batch_t;

static char *
batch_own(batch_t *b, char *p)
{
    if (!p) {
        b->err = 1;
        return NULL;
    }
    b->owned[b->nowned++] = p;
    return p;
}

static tally__obj_op_t *
batch_add(batch_t *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        tally__obj_op_t *ops = realloc(b->ops, cap * sizeof *ops);
        char **owned = ops ? realloc(b->owned, cap * 2 * sizeof *owned) : NULL;
        if (ops)
            b->ops = ops;
        if (!ops || !owned) {
            b->err = 1;
            return NULL;
        }
        b->owned = owned;
        b->cap = cap;
    }
    tally__obj_op_t *op = &b->ops[b->n++];
    memset(op, 0, sizeof *op);
    return op;
}

/* PUT v (borrowed) as kind/name; guard: 1 must exist, -1 must not exist, 0 none. */
static void
batch_put(batch_t *b, const char *kind, const char *name, json_t *v, int guard)
{
    tally__obj_op_t *op = batch_add(b);
    if (!op)
        return;
    char *text = batch_own(b, json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS));
    char *nm = batch_own(b, strdup(name));
    if (!text || !nm) {
        b->n--;
        return;
    }
    op->op = TALLY_OBJ_PUT;
    op->kind = kind;
    op->ns = NS_SYSTEM;
    op->name = nm;
    op->value = text;
    op->len = strlen(text);
    op->must_exist = guard > 0;
    op->must_not_exist = guard < 0;
}

static void
batch_del(batch_t *b, const char *kind, const char *name, int must_exist)
{
    tally__obj_op_t *op = batch_add(b);
    if (!op)
        return;
    char *nm = batch_own(b, strdup(name));
    if (!nm) {
        b->n--;
        return;
    }
    op->op = TALLY_OBJ_DEL;
    op->kind = kind;
    op->ns = NS_SYSTEM;
    op->name = nm;
    op->must_exist = must_exist;
}

static int
batch_commit(batch_t *b, tally__store_t *s)
{
    return b->err ? -ENOMEM : tally__store_obj_write(s, b->ops, b->n);
}

static void
batch_fini(batch_t *b)
{
    for (size_t i = 0; i < b->nowned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->ops);
    memset(b, 0, sizeof *b);
}


/* A stable UUID for a period: derived from its subscription and start. */
static void
period_uuid(const char *sub_uid, int64_t start_s, char *out)
{
    char text[128];
    int n = snprintf(text, sizeof text, "%s|%lld", sub_uid, (long long)start_s);
    tally__uuid_derived(text, (size_t)n, out);
}

/* ---- transition records ---------------------------------------------------------- */

static void
history_add(json_t *rec, const char *state, int64_t now_s, const char *note)
{
    json_t *h = json_object_get(rec, "history");
    if (!json_is_array(h)) {
        h = json_array();
        json_object_set_new(rec, "history", h);
    }
    json_t *e = json_pack("{s:s, s:o}", "state", state, "time", time_json(now_s));
    if (e && note && note[0])
        json_object_set_new(e, "note", json_string(note));
    json_array_append_new(h, e);
}

static void
set_state(json_t *rec, const char *state, int64_t now_s, const char *note)
{
    json_object_set_new(rec, "state", json_string(state));
    json_object_set_new(rec, "updated", time_json(now_s));
    history_add(rec, state, now_s, note);
}

/* The record as the API shows it: everything but the payload (it may hold tokens). */
static json_t *
record_public(json_t *rec)
{
    json_t *out = json_deep_copy(rec);
    if (out)
        json_object_del(out, "payload");
    return out;
}

/* Optional string field of the payload, "" when absent or null. */
static const char *
payload_str(json_t *payload, const char *key)
{
    return str_or(json_object_get(payload, key), "");
}

static int
contact_given(json_t *payload, const char *key)
{
    json_t *c = json_object_get(payload, key);
    return json_is_object(c) && json_object_size(c) > 0;
}

/* Check the add-on name arrays of the payload: strings, no name in both. */
static int
check_addon_lists(json_t *payload, char *msg, size_t msglen)
{
    static const char *const keys[] = {"subscribe_addon_services", "unsubscribe_addon_services"};
    for (int k = 0; k < 2; k++) {
        json_t *a = json_object_get(payload, keys[k]);
        if (!a || json_is_null(a))
            continue;
        if (!json_is_array(a)) {
            say(msg, msglen, "payload.%s: must be an array of add-on names", keys[k]);
            return TALLY_EINVAL;
        }
        size_t i;
        json_t *v;
        json_array_foreach(a, i, v)
        {
            if (!json_is_string(v) || !json_string_value(v)[0]) {
                say(msg, msglen, "payload.%s[%zu]: must be a non-empty string", keys[k], i);
                return TALLY_EINVAL;
            }
        }
    }
    json_t *sub = json_object_get(payload, keys[0]), *uns = json_object_get(payload, keys[1]);
    size_t i, j;
    json_t *a, *b;
    json_array_foreach(sub, i, a) json_array_foreach(uns, j, b)
    {
        if (strcmp(json_string_value(a), json_string_value(b)) == 0) {
            say(msg, msglen,
                "payload: add-on '%s' is in both subscribe_addon_services and "
                "unsubscribe_addon_services",
                json_string_value(a));
            return TALLY_EINVAL;
        }
    }
    return 0;
}

/* RFC 1123 host name: dot-separated labels of 1..63 letters, digits and
 * hyphens, no hyphen at either end of a label, 253 bytes at most. */
static int
is_hostname(const char *s)
{
    size_t n = strlen(s), label = 0;
    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i <= n; i++) {
        char c = s[i];
        if (c == '.' || c == '\0') {
            if (label == 0 || label > 63 || s[i - 1] == '-')
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return 0;
        if (label == 0 && c == '-')
            return 0;
        label++;
    }
    return 1;
}

/* The spec's tenantDeletionReason. */
static const char *const deletion_reasons[] = {
    "REASON_UNKNOWN",           "REASON_SWITCH_TO_FREE_PLAN", "REASON_NO_LONGER_NEEDED",
    "REASON_NOT_JUSTIFY_COSTS", "REASON_DIFFICULT_TO_USE",
};

/*
 * The payload of a transition (plan_transitionTransitionPayload), field by
 * field with the payment methods' rules: strings are strings, the boolean a
 * boolean, enums one of theirs, domain a host name, contacts contacts.
 * Absent or null fields are fine; which are required is the plan's business.
 */
static int
check_payload(json_t *payload, char *msg, size_t msglen)
{
    static const char *const strings[] = {"billing_provider_account_id",
                                          "deletion_feedback",
                                          "payment_provider_token",
                                          "support_ticket_info",
                                          "tp_subscription_id",
                                          "domain",
                                          "deletion_reason"};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++) {
        json_t *v = json_object_get(payload, strings[i]);
        if (v && !json_is_null(v) && !json_is_string(v)) {
            say(msg, msglen, "payload.%s: must be a string", strings[i]);
            return TALLY_EINVAL;
        }
        if (json_string_length(v) > 4096) {
            say(msg, msglen, "payload.%s: longer than 4096 bytes", strings[i]);
            return TALLY_EINVAL;
        }
    }
    const char *domain = payload_str(payload, "domain");
    if (domain[0] && !is_hostname(domain)) {
        say(msg, msglen, "payload.domain: must be a host name (letters, digits, hyphens, dots)");
        return TALLY_EINVAL;
    }
    const char *reason = payload_str(payload, "deletion_reason");
    if (reason[0]) {
        size_t i = 0, n = sizeof deletion_reasons / sizeof deletion_reasons[0];
        while (i < n && strcmp(reason, deletion_reasons[i]) != 0)
            i++;
        if (i == n) {
            say(msg, msglen,
                "payload.deletion_reason: must be one of REASON_UNKNOWN, "
                "REASON_SWITCH_TO_FREE_PLAN, REASON_NO_LONGER_NEEDED, REASON_NOT_JUSTIFY_COSTS, "
                "REASON_DIFFICULT_TO_USE");
            return TALLY_EINVAL;
        }
    }
    json_t *t = json_object_get(payload, "create_support_ticket");
    if (t && !json_is_null(t) && !json_is_boolean(t)) {
        say(msg, msglen, "payload.create_support_ticket: must be true or false");
        return TALLY_EINVAL;
    }
    if (tally__payment_check_contact(json_object_get(payload, "billing_address"),
                                     "payload.billing_address", msg, msglen) != 0 ||
        tally__payment_check_contact(json_object_get(payload, "payment_address"),
                                     "payload.payment_address", msg, msglen) != 0)
        return TALLY_EINVAL;
    return check_addon_lists(payload, msg, msglen);
}

/* ---- subscriptions ---------------------------------------------------------------- */

/* A plan subscription. seq orders the plan history (pricing sorts by it):
 * strictly increasing, so two changes within one second keep their order,
 * which start times (whole seconds) cannot. */
static json_t *
sub_record(const char *plan, int64_t start_s, json_int_t seq)
{
    char uid[TALLY_BILLING_ID_LEN];
    tally__uuid_random(uid);
    return json_pack("{s:s, s:s, s:o, s:b, s:I}", "uid", uid, "plan", plan, "start",
                     time_json(start_s), "cancelled", 0, "seq", seq);
}

/* The seq of the next plan subscription: one more than any recorded. */
static json_int_t
next_seq(json_t *subs)
{
    json_int_t max = 0;
    const char *name;
    json_t *rec;
    json_object_foreach(subs, name, rec)
    {
        json_int_t q = json_integer_value(json_object_get(rec, "seq"));
        if (q > max)
            max = q;
    }
    return max + 1;
}

static json_t *
addon_record(const char *addon, int64_t start_s, int included)
{
    char uid[TALLY_BILLING_ID_LEN];
    tally__uuid_random(uid);
    return json_pack("{s:s, s:s, s:o, s:b, s:b}", "uid", uid, "addon", addon, "start",
                     time_json(start_s), "cancelled", 0, "included", included);
}

static int
is_current(json_t *rec)
{
    return !json_is_true(json_object_get(rec, "cancelled"));
}

static void
cancel(json_t *rec, int64_t now_s)
{
    json_object_set_new(rec, "cancelled", json_true());
    json_object_set_new(rec, "cancellation", time_json(now_s));
}

/* The key of the current plan subscription in subs, or NULL. */
static const char *
current_sub(json_t *subs)
{
    const char *name;
    json_t *rec;
    json_object_foreach(subs, name, rec)
    {
        if (is_current(rec))
            return name;
    }
    return NULL;
}

/*
 * Add to b what a tenant with no plan subscription yet needs: its first one,
 * on plan, from the start of the current month (when tally first saw it),
 * and the plan's included add-ons that are not subscribed. Fills subs and
 * addons as if written.
 */
static void
bootstrap(batch_t *b, const tally__plan_t *plan, const char *plan_name, json_t *subs,
          json_t *addons, int64_t now_s)
{
    int64_t since = tally__time_month_start(now_s);
    json_t *first = sub_record(plan_name, since, next_seq(subs));
    batch_put(b, KIND_SUB, NAME_FIRST_SUB, first, -1);
    json_object_set_new(subs, NAME_FIRST_SUB, first);
    for (size_t i = 0; plan && i < plan->nincluded_addons; i++) {
        const char *name = plan->included_addons[i]->name;
        json_t *have = json_object_get(addons, name);
        if (have && is_current(have))
            continue;
        json_t *a = addon_record(name, since, 1);
        batch_put(b, KIND_ADDON, name, a, 0);
        json_object_set_new(addons, name, a);
    }
}

/* ---- executing a transition ---------------------------------------------------------- */

/*
 * Stage into b every change of a transition to rec.new_plan: plan record,
 * subscriptions, default quota, add-ons. Returns 0, or TALLY_EINVAL with
 * the reason in msg when the transition cannot apply (nothing staged then
 * matters: the caller discards b).
 */
static int
stage_execution(const tally__billing_env_t *env, json_t *rec, int64_t now_s, batch_t *b, char *msg,
                size_t msglen)
{
    const char *to = get_str(rec, "new_plan");
    const tally__plan_t *np = plan_find(env, to);
    char cur[TALLY_PLANS_NAME_MAX + 1];
    int rc;
    json_t *subs = NULL, *addons = NULL, *changes = NULL;
    if (!np) {
        say(msg, msglen, "plan '%s' is no longer in the catalog", to);
        return TALLY_EINVAL;
    }
    if ((rc = plan_current(env, cur, sizeof cur)) != 0)
        return rc;
    if (strcmp(cur, to) == 0) {
        say(msg, msglen, "the tenant is already on plan '%s'", to);
        return TALLY_EINVAL;
    }
    if ((rc = obj_all(env->store, KIND_SUB, &subs)) != 0 ||
        (rc = obj_all(env->store, KIND_ADDON, &addons)) != 0)
        goto out;
    if (!current_sub(subs))
        bootstrap(b, plan_find(env, cur), cur, subs, addons, now_s);

    /* add-ons: the payload's, then what the new plan includes and forbids */
    changes = json_object(); /* addon -> new record */
    json_t *payload = json_object_get(rec, "payload");
    json_t *uns = json_object_get(payload, "unsubscribe_addon_services");
    json_t *sub = json_object_get(payload, "subscribe_addon_services");
    size_t i;
    json_t *v;
    json_array_foreach(uns, i, v)
    {
        const char *a = json_string_value(v);
        if (!addon_known(env, a)) {
            say(msg, msglen, "payload.unsubscribe_addon_services: unknown add-on '%s'", a);
            rc = TALLY_EINVAL;
            goto out;
        }
        if (plan_includes(np, a)) {
            say(msg, msglen, "payload.unsubscribe_addon_services: plan '%s' includes add-on '%s'",
                to, a);
            rc = TALLY_EINVAL;
            goto out;
        }
        json_t *have = json_object_get(addons, a);
        if (have && is_current(have)) {
            json_t *c = json_deep_copy(have);
            cancel(c, now_s);
            json_object_set_new(changes, a, c);
        }
    }
    json_array_foreach(sub, i, v)
    {
        const char *a = json_string_value(v);
        if (!addon_known(env, a)) {
            say(msg, msglen, "payload.subscribe_addon_services: unknown add-on '%s'", a);
            rc = TALLY_EINVAL;
            goto out;
        }
        if (!plan_allows(np, a)) {
            say(msg, msglen,
                "payload.subscribe_addon_services: plan '%s' does not allow add-on '%s'", to, a);
            rc = TALLY_EINVAL;
            goto out;
        }
        json_t *have = json_object_get(addons, a);
        if (!have || !is_current(have))
            json_object_set_new(changes, a, addon_record(a, now_s, plan_includes(np, a)));
    }
    for (size_t k = 0; k < np->nincluded_addons; k++) {
        const char *a = np->included_addons[k]->name;
        json_t *have = json_object_get(addons, a), *c = json_object_get(changes, a);
        if (c && is_current(c))
            json_object_set_new(c, "included", json_true());
        else if (have && is_current(have)) {
            c = json_deep_copy(have);
            json_object_set_new(c, "included", json_true());
            json_object_set_new(changes, a, c);
        } else
            json_object_set_new(changes, a, addon_record(a, now_s, 1));
    }
    const char *a;
    json_t *have;
    json_object_foreach(addons, a, have)
    {
        if (!is_current(have) || json_object_get(changes, a))
            continue;
        json_t *c = json_deep_copy(have);
        if (!plan_allows(np, a))
            cancel(c, now_s); /* the new plan does not carry it */
        else if (json_is_true(json_object_get(c, "included")) && !plan_includes(np, a))
            json_object_set_new(c, "included", json_false());
        else {
            json_decref(c);
            continue;
        }
        json_object_set_new(changes, a, c);
    }

    /* the plan, its subscription periods and its default quota */
    json_t *pr = plan_record(to, now_s);
    batch_put(b, KIND_TENANT, NAME_PLAN, pr, 0);
    json_decref(pr);
    const char *old_key = current_sub(subs);
    if (old_key) {
        json_t *closed = json_deep_copy(json_object_get(subs, old_key));
        cancel(closed, now_s);
        /* must exist: also when bootstrap() staged it earlier in this batch */
        batch_put(b, KIND_SUB, old_key, closed, 1);
        json_decref(closed);
    }
    json_t *opened = sub_record(to, now_s, next_seq(subs));
    batch_put(b, KIND_SUB, get_str(opened, "uid"), opened, -1);
    json_decref(opened);
    /* the quota module reads this as a GlobalSpecType, as is */
    json_t *quota = tally__plan_render_quota(np);
    if (!quota) {
        rc = -ENOMEM;
        goto out;
    }
    batch_put(b, KIND_TENANT, NAME_QUOTA, quota, 0);
    json_decref(quota);
    json_object_foreach(changes, a, have) batch_put(b, KIND_ADDON, a, have, 0);
    rc = 0;
out:
    json_decref(changes);
    json_decref(subs);
    json_decref(addons);
    return rc;
}

/*
 * Run rec (state CREATING or WAITING) to its end in one batch: FINISHED with
 * every change, or FAILED with the reason and nothing else. holds_lock: the
 * transition owns the in-flight marker (approval path), released in the
 * batch; otherwise the batch briefly takes the marker so that it fails
 * with TALLY_EEXISTS if another transition is in flight.
 */
static int
execute(const tally__billing_env_t *env, json_t *rec, int holds_lock, int record_guard,
        const char *note, int64_t now_s)
{
    batch_t b = {0};
    char reason[512] = "";
    const char *id = get_str(rec, "id");
    int rc = stage_execution(env, rec, now_s, &b, reason, sizeof reason);
    if (rc != 0 && rc != TALLY_EINVAL)
        goto out;
    if (rc == TALLY_EINVAL) {
        batch_fini(&b);
        json_object_set_new(rec, "reason", json_string(reason));
        set_state(rec, TALLY_BILLING_STATE_FAILED, now_s, reason);
    } else {
        set_state(rec, TALLY_BILLING_STATE_FINISHED, now_s, note);
    }
    /* the record and the marker go first: their guards decide the race */
    batch_t head = {0};
    batch_put(&head, KIND_TRANSITION, id, rec, record_guard);
    if (holds_lock) {
        batch_del(&head, KIND_TENANT, NAME_LOCK, 1);
    } else {
        json_t *lock = json_pack("{s:s}", "id", id);
        batch_put(&head, KIND_TENANT, NAME_LOCK, lock, -1);
        json_decref(lock);
        batch_del(&head, KIND_TENANT, NAME_LOCK, 1);
    }
    for (size_t i = 0; i < b.n && !head.err; i++) {
        tally__obj_op_t *op = batch_add(&head);
        if (op)
            *op = b.ops[i];
    }
    rc = batch_commit(&head, env->store);
    batch_fini(&head);
    if (rc == TALLY_ENOTFOUND && holds_lock)
        rc = TALLY_EBUSY; /* decided meanwhile by someone else */
out:
    batch_fini(&b);
    return rc;
}

/* ---- the public operations ----------------------------------------------------------- */

int
tally__billing_transition_create(const tally__billing_env_t *env, const char *ns, json_t *req,
                                 int64_t now_s, tally__billing_created_t *out, char *msg,
                                 size_t msglen)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(req)) {
        say(msg, msglen, "the body must be a JSON object");
        return TALLY_EINVAL;
    }
    json_t *np = json_object_get(req, "new_plan");
    if (!json_is_string(np) || !json_string_value(np)[0]) {
        say(msg, msglen, "new_plan: required (the name of a plan of the catalog)");
        return TALLY_EINVAL;
    }
    const char *to = json_string_value(np);
    int rc;
    json_t *payload = json_object_get(req, "payload");
    if (payload && !json_is_null(payload) && !json_is_object(payload)) {
        say(msg, msglen, "payload: must be an object");
        return TALLY_EINVAL;
    }
    if (!json_is_object(payload))
        payload = NULL;
    /* the payload's types first: a malformed field is named whatever the plan */
    if (payload && (rc = check_payload(payload, msg, msglen)) != 0)
        return rc;
    const tally__plan_t *plan = plan_find(env, to);
    if (!plan) {
        say(msg, msglen, "new_plan: no plan '%.64s' in the catalog", to);
        return TALLY_EINVAL;
    }
    char cur[TALLY_PLANS_NAME_MAX + 1];
    rc = plan_current(env, cur, sizeof cur);
    if (rc)
        return rc;
    if (strcmp(cur, to) == 0) {
        say(msg, msglen, "new_plan: the tenant is already on plan '%s'", to);
        return TALLY_EINVAL;
    }
    /* the target plan's required fields, all missing ones named at once */
    char missing[256] = "";
    size_t ml = 0;
    const char *lacks[3];
    size_t nl = 0;
    if (tally__plan_requires_field(plan, TALLY_REQUIRED_FIELD_PAYMENT_TOKEN) &&
        !payload_str(payload, "payment_provider_token")[0])
        lacks[nl++] = "payload.payment_provider_token";
    if (tally__plan_requires_field(plan, TALLY_REQUIRED_FIELD_DOMAIN) &&
        !payload_str(payload, "domain")[0])
        lacks[nl++] = "payload.domain";
    if (tally__plan_requires_field(plan, TALLY_REQUIRED_FIELD_CONTACTS) &&
        !(contact_given(payload, "billing_address") || contact_given(payload, "payment_address")))
        lacks[nl++] = "payload.billing_address (contacts)";
    for (size_t i = 0; i < nl; i++)
        ml += (size_t)snprintf(missing + ml, sizeof missing - ml, "%s%s", i ? ", " : "", lacks[i]);
    if (ml) {
        say(msg, msglen, "%s: required by plan '%s'", missing, to);
        return TALLY_EINVAL;
    }
    if (tally__payment_looks_like_card(payload_str(payload, "payment_provider_token"))) {
        say(msg, msglen,
            "payload.payment_provider_token: looks like a card number; tally keeps "
            "payment provider tokens only");
        return TALLY_EINVAL;
    }
    if ((rc = check_addon_lists(payload, msg, msglen)) != 0)
        return rc;
    json_t *lock = NULL;
    if ((rc = obj_load(env->store, KIND_TENANT, NAME_LOCK, &lock)) == 0) {
        say(msg, msglen, "plan transition %s is already waiting for approval", get_str(lock, "id"));
        json_decref(lock);
        return TALLY_EEXISTS;
    }
    if (rc != TALLY_ENOTFOUND)
        return rc;

    tally__uuid_random(out->id);
    out->requires_manual_approval = plan->transition.requires_manual_approval;
    json_t *rec =
        json_pack("{s:s, s:s, s:s, s:s, s:b, s:o, s:o}", "id", out->id, "namespace",
                  ns ? ns : NS_SYSTEM, "from_plan", cur, "new_plan", to, "requires_manual_approval",
                  plan->transition.requires_manual_approval, "created", time_json(now_s), "payload",
                  payload ? json_deep_copy(payload) : json_object());
    if (!rec)
        return -ENOMEM;
    set_state(rec, TALLY_BILLING_STATE_CREATING, now_s, NULL);
    if (plan->transition.requires_manual_approval) {
        set_state(rec, TALLY_BILLING_STATE_WAITING, now_s, "the plan requires manual approval");
        batch_t b = {0};
        batch_put(&b, KIND_TRANSITION, out->id, rec, -1);
        json_t *l = json_pack("{s:s}", "id", out->id);
        batch_put(&b, KIND_TENANT, NAME_LOCK, l, -1);
        json_decref(l);
        rc = batch_commit(&b, env->store);
        batch_fini(&b);
    } else {
        rc = execute(env, rec, 0, -1, NULL, now_s);
    }
    if (rc == TALLY_EEXISTS)
        say(msg, msglen, "another plan transition is in flight");
    out->state =
        !strcmp(get_str(rec, "state"), TALLY_BILLING_STATE_FINISHED) ? TALLY_BILLING_STATE_FINISHED
        : !strcmp(get_str(rec, "state"), TALLY_BILLING_STATE_FAILED) ? TALLY_BILLING_STATE_FAILED
                                                                     : TALLY_BILLING_STATE_WAITING;
    json_decref(rec);
    return rc;
}

int
tally__billing_transition_get(tally__store_t *store, const char *id, json_t **record)
{
    json_t *rec;
    *record = NULL;
    int rc = obj_load(store, KIND_TRANSITION, id, &rec);
    if (rc)
        return rc;
    *record = record_public(rec);
    json_decref(rec);
    return *record ? 0 : -ENOMEM;
}

int
tally__billing_transition_decide(const tally__billing_env_t *env, const char *id, int approve,
                                 const char *by, int64_t now_s, json_t **record, char *msg,
                                 size_t msglen)
{
    json_t *rec;
    *record = NULL;
    int rc = obj_load(env->store, KIND_TRANSITION, id, &rec);
    if (rc == TALLY_ENOTFOUND)
        say(msg, msglen, "no plan transition '%.64s'", id);
    else if (rc == TALLY_EINVAL) /* a key the store refuses: longer than any id */
        say(msg, msglen, "id: not a plan transition id");
    if (rc)
        return rc;
    if (strcmp(get_str(rec, "state"), TALLY_BILLING_STATE_WAITING) != 0) {
        say(msg, msglen, "plan transition %s is %s, not waiting for approval", id,
            get_str(rec, "state"));
        json_decref(rec);
        return TALLY_EBUSY;
    }
    char note[160];
    snprintf(note, sizeof note, "%s by %s", approve ? "approved" : "rejected", by ? by : "?");
    json_object_set_new(rec, "decided_by", json_string(by ? by : ""));
    if (approve) {
        rc = execute(env, rec, 1, 1, note, now_s);
    } else {
        json_object_set_new(rec, "reason", json_string(note));
        set_state(rec, TALLY_BILLING_STATE_FAILED, now_s, note);
        batch_t b = {0};
        batch_put(&b, KIND_TRANSITION, id, rec, 1);
        batch_del(&b, KIND_TENANT, NAME_LOCK, 1);
        rc = batch_commit(&b, env->store);
        batch_fini(&b);
        if (rc == TALLY_ENOTFOUND)
            rc = TALLY_EBUSY;
    }
    if (rc == TALLY_EBUSY)
        say(msg, msglen, "plan transition %s was decided meanwhile", id);
    if (rc == 0)
        *record = record_public(rec);
    json_decref(rec);
    return rc;
}

/* ---- listing subscriptions ----------------------------------------------------------- */

static void
invoice_name(int64_t month_s, char *out, size_t cap)
{
    int y, mo, d, h, mi, s;
    tally__time_to_civil(month_s, &y, &mo, &d, &h, &mi, &s);
    snprintf(out, cap, "inv-%04d-%02d", y, mo); /* as lib/invoices.c names them */
}

/*
 * Render one subscription (plan or add-on) as subscriptionSubscriptionType,
 * with its billing periods: the calendar months of [start, cancellation or
 * now), each clipped to the subscription's life. The running period of a
 * current subscription is last_billing_period_*; the others are previous.
 */
static json_t *
render_sub(json_t *rec, const char *name, const char *plan_name, const char *plan_object,
           int64_t now_s)
{
    int64_t start = get_time(rec, "start", now_s);
    int current = is_current(rec);
    int64_t end = current ? now_s : get_time(rec, "cancellation", now_s);
    json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:b, s:b}", "name", name, "plan_name", plan_name,
                          "plan_object_name", plan_object, "start_date", time_json(start),
                          "cancelled", !current, "current", current);
    if (!o)
        return NULL;
    if (!current)
        json_object_set_new(o, "cancellation_date", time_json(end));
    json_t *prev = json_array();
    int64_t last_s = start, last_e = end;
    const char *uid = get_str(rec, "uid");
    for (int64_t m = tally__time_month_start(start); m <= end; m = tally__time_next_month(m)) {
        int64_t next = tally__time_next_month(m);
        int64_t ps = m > start ? m : start, pe = next < end ? next : end;
        if (current && next > now_s) { /* the running period: not previous */
            last_s = ps;
            last_e = next;
            break;
        }
        if (pe <= ps) /* a cancelled subscription's end on a month boundary */
            break;
        char inv[32], puid[TALLY_BILLING_ID_LEN];
        invoice_name(m, inv, sizeof inv);
        period_uuid(uid, ps, puid);
        json_t *p = json_pack("{s:s, s:o, s:o, s:o, s:o, s:b, s:[s]}", "uid", puid, "start_date",
                              time_json(ps), "end_date", time_json(pe), "internal_start_date",
                              time_json(ps), "internal_end_date", time_json(pe), "trial", 0,
                              "invoices", inv);
        /* the month's invoice closes when the month has ended */
        if (p)
            json_object_set_new(p, next <= now_s ? "closed_invoice" : "pending_invoice",
                                json_pack("[s]", inv));
        json_array_append_new(prev, p);
        last_s = ps;
        last_e = pe;
    }
    json_object_set_new(o, "last_billing_period_start_date", time_json(last_s));
    json_object_set_new(o, "last_billing_period_end_date", time_json(last_e));
    json_object_set_new(o, "previous_billing_periods", prev);
    return o;
}

static int
by_start(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(get_str(x, "start_date"), get_str(y, "start_date"));
    return c ? c : strcmp(get_str(x, "name"), get_str(y, "name"));
}

int
tally__billing_subscriptions_list(const tally__billing_env_t *env, int current_only, int64_t now_s,
                                  json_t **rsp)
{
    json_t *subs = NULL, *addons = NULL, **items = NULL;
    char cur[TALLY_PLANS_NAME_MAX + 1];
    size_t n = 0;
    int rc;
    *rsp = NULL;
    if ((rc = plan_current(env, cur, sizeof cur)) != 0 ||
        (rc = obj_all(env->store, KIND_SUB, &subs)) != 0 ||
        (rc = obj_all(env->store, KIND_ADDON, &addons)) != 0)
        goto out;
    if (!current_sub(subs)) {
        batch_t b = {0};
        bootstrap(&b, plan_find(env, cur), cur, subs, addons, now_s);
        rc = batch_commit(&b, env->store);
        batch_fini(&b);
        if (rc == TALLY_EEXISTS) { /* recorded meanwhile: read it again */
            json_decref(subs);
            json_decref(addons);
            subs = addons = NULL;
            if ((rc = obj_all(env->store, KIND_SUB, &subs)) != 0 ||
                (rc = obj_all(env->store, KIND_ADDON, &addons)) != 0)
                goto out;
        }
        if (rc)
            goto out;
    }
    items = calloc(json_object_size(subs) + json_object_size(addons) + 1, sizeof *items);
    if (!items) {
        rc = -ENOMEM;
        goto out;
    }
    const char *key;
    json_t *rec;
    json_object_foreach(subs, key, rec)
    {
        if (current_only && !is_current(rec))
            continue;
        const char *plan = get_str(rec, "plan");
        const tally__plan_t *p = plan_find(env, plan);
        const char *display = p ? p->title : plan;
        char name[128];
        snprintf(name, sizeof name, "plan-%s", get_str(rec, "uid"));
        if ((items[n] = render_sub(rec, name, display, plan, now_s)) != NULL)
            n++;
    }
    json_object_foreach(addons, key, rec)
    {
        if (current_only && !is_current(rec))
            continue;
        char name[128];
        snprintf(name, sizeof name, "addon-%s", key);
        const tally__addon_t *a = tally__plans_addon_find(env->plans, key);
        if ((items[n] = render_sub(rec, name, a ? a->display_name : key, key, now_s)) != NULL)
            n++;
    }
    qsort(items, n, sizeof *items, by_start);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, items[i]);
    *rsp = json_pack("{s:o}", "subscriptions", arr);
    rc = *rsp ? 0 : -ENOMEM;
out:
    free(items);
    json_decref(subs);
    json_decref(addons);
    return rc;
}

/* ---- add-ons --------------------------------------------------------------------------- */

const char *
tally__billing_addon_choice(json_t *req, char *msg, size_t msglen)
{
    const char *found = NULL;
    if (!json_is_object(req)) {
        say(msg, msglen, "the body must be a JSON object");
        return NULL;
    }
    const char *key;
    json_t *v;
    json_object_foreach(req, key, v)
    {
        if (json_is_null(v))
            continue;
        const char *name = tally__plans_spec_addon(key);
        if (!name) {
            say(msg, msglen,
                "%.64s: not an add-on field (one of f5xc_appstack_standard, ..., "
                "f5xc_web_app_scanning_standard)",
                key);
            return NULL;
        }
        if (!json_is_object(v)) {
            say(msg, msglen, "%s: must be an object ({})", key);
            return NULL;
        }
        if (found) {
            say(msg, msglen, "%s, %s: exactly one add-on field may be set", found, key);
            return NULL;
        }
        found = name;
    }
    if (!found)
        say(msg, msglen, "addon_choice: exactly one add-on field (f5xc_...) must be set");
    return found;
}

int
tally__billing_addon_subscribe(const tally__billing_env_t *env, const char *addon, int64_t now_s,
                               char *msg, size_t msglen)
{
    char cur[TALLY_PLANS_NAME_MAX + 1];
    json_t *have = NULL;
    int rc = plan_current(env, cur, sizeof cur);
    if (rc)
        return rc;
    const tally__plan_t *p = plan_find(env, cur);
    if (!plan_allows(p, addon)) {
        say(msg, msglen, "plan '%s' does not allow add-on '%s'", cur, addon);
        return -EPERM;
    }
    rc = obj_load(env->store, KIND_ADDON, addon, &have);
    if (rc && rc != TALLY_ENOTFOUND)
        return rc;
    if (have && is_current(have)) {
        json_decref(have);
        return 0; /* subscribed already */
    }
    json_decref(have);
    json_t *rec = addon_record(addon, now_s, plan_includes(p, addon));
    batch_t b = {0};
    batch_put(&b, KIND_ADDON, addon, rec, 0);
    rc = batch_commit(&b, env->store);
    batch_fini(&b);
    json_decref(rec);
    return rc;
}

int
tally__billing_addon_unsubscribe(const tally__billing_env_t *env, const char *addon, int64_t now_s,
                                 char *msg, size_t msglen)
{
    char cur[TALLY_PLANS_NAME_MAX + 1];
    json_t *have = NULL;
    int rc = plan_current(env, cur, sizeof cur);
    if (rc)
        return rc;
    if (plan_includes(plan_find(env, cur), addon)) {
        say(msg, msglen, "plan '%s' includes add-on '%s': it cannot be unsubscribed", cur, addon);
        return TALLY_EEXISTS;
    }
    rc = obj_load(env->store, KIND_ADDON, addon, &have);
    if (rc == TALLY_ENOTFOUND)
        return 0; /* never subscribed */
    if (rc)
        return rc;
    if (!is_current(have)) {
        json_decref(have);
        return 0;
    }
    cancel(have, now_s);
    batch_t b = {0};
    batch_put(&b, KIND_ADDON, addon, have, 1);
    rc = batch_commit(&b, env->store);
    batch_fini(&b);
    json_decref(have);
    return rc;
}
