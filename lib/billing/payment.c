/* payment.c — payment methods: validation (card-number refusal), role rules, records and storage.
 */
#include "payment.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "tally/tally.h"
#include "timeutil.h"

/* ---- roles and tokens ---------------------------------------------------------- */

static const char *const role_names[] = {
    [TALLY_PAYMENT_ROLE_UNKNOWN] = "PAYMENT_METHOD_ROLE_UNKNOWN",
    [TALLY_PAYMENT_ROLE_PRIMARY] = "PAYMENT_METHOD_ROLE_PRIMARY",
    [TALLY_PAYMENT_ROLE_SECONDARY] = "PAYMENT_METHOD_ROLE_SECONDARY",
    [TALLY_PAYMENT_ROLE_NORMAL] = "PAYMENT_METHOD_ROLE_NORMAL",
};

const char *
tally__payment_role_name(int role)
{
    if (role < 0 || role > TALLY_PAYMENT_ROLE_NORMAL)
        return "";
    return role_names[role];
}

int
tally__payment_role_parse(const char *s, int *role)
{
    for (int r = 0; s && r <= TALLY_PAYMENT_ROLE_NORMAL; r++)
        if (strcmp(s, role_names[r]) == 0) {
            *role = r;
            return 0;
        }
    return TALLY_EINVAL;
}

int
tally__payment_looks_like_card(const char *s)
{
    if (!s)
        return 0;
    /* collect the digits; a grouped number ("4111 1111-1111 1111") counts too */
    char d[20];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        if (*p == ' ' || *p == '-')
            continue;
        if (*p < '0' || *p > '9' || n == sizeof d)
            return 0;
        d[n++] = *p;
    }
    if (n < 13 || n > 19)
        return 0;
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int x = d[n - 1 - i] - '0';
        if (i % 2) {
            x *= 2;
            if (x > 9)
                x -= 9;
        }
        sum += x;
    }
    return sum % 10 == 0;
}

/* ---- the list and the role rules ---------------------------------------------- */

int
tally__payment_list_add(tally__payment_list_t *l, const char *name, int role, json_t *rec)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        tally__payment_entry_t *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *copy = strdup(name);
    if (!copy)
        return -ENOMEM;
    l->v[l->n++] = (tally__payment_entry_t){.name = copy, .role = role, .changed = 0, .rec = rec};
    return 0;
}

void
tally__payment_list_fini(tally__payment_list_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
        json_decref(l->v[i].rec);
    }
    free(l->v);
    memset(l, 0, sizeof *l);
}

long
tally__payment_list_find(const tally__payment_list_t *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return (long)i;
    return -1;
}

long
tally__payment_list_holder(const tally__payment_list_t *l, int role)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].role == role)
            return (long)i;
    return -1;
}

int
tally__payment_initial_role(const tally__payment_list_t *l, int requested)
{
    if (requested != TALLY_PAYMENT_ROLE_UNKNOWN)
        return requested;
    /* a namespace's first method is the one charged: make it primary */
    return tally__payment_list_holder(l, TALLY_PAYMENT_ROLE_PRIMARY) < 0
               ? TALLY_PAYMENT_ROLE_PRIMARY
               : TALLY_PAYMENT_ROLE_NORMAL;
}

static void
assign(tally__payment_entry_t *e, int role)
{
    if (e->role != role) {
        e->role = role;
        e->changed = 1;
    }
}

int
tally__payment_set_role(tally__payment_list_t *l, size_t i, int role)
{
    if (i >= l->n || role < TALLY_PAYMENT_ROLE_PRIMARY || role > TALLY_PAYMENT_ROLE_NORMAL)
        return TALLY_EINVAL;
    if (l->v[i].role == role)
        return 0;
    if (role != TALLY_PAYMENT_ROLE_NORMAL) {
        long h = tally__payment_list_holder(l, role);
        if (h >= 0)
            assign(&l->v[h], TALLY_PAYMENT_ROLE_NORMAL);
    }
    assign(&l->v[i], role);
    return 0;
}

int
tally__payment_swap(tally__payment_list_t *l, long target)
{
    long p = tally__payment_list_holder(l, TALLY_PAYMENT_ROLE_PRIMARY);
    long s = tally__payment_list_holder(l, TALLY_PAYMENT_ROLE_SECONDARY);
    if (target < 0) {
        if (s < 0)
            return TALLY_EBUSY;
        target = s;
    }
    if ((size_t)target >= l->n)
        return TALLY_EINVAL;
    if (target == p)
        return 0;
    if (s >= 0 && s != target)
        assign(&l->v[s], TALLY_PAYMENT_ROLE_NORMAL);
    if (p >= 0)
        assign(&l->v[p], TALLY_PAYMENT_ROLE_SECONDARY);
    assign(&l->v[target], TALLY_PAYMENT_ROLE_PRIMARY);
    return 0;
}

int
tally__payment_check_delete(const tally__payment_list_t *l, size_t i)
{
    if (i >= l->n)
        return TALLY_EINVAL;
    if (l->v[i].role == TALLY_PAYMENT_ROLE_PRIMARY && l->n > 1)
        return TALLY_EBUSY;
    return 0;
}

/* ---- records ------------------------------------------------------------------- */

static const char *const contact_fields[] = {"address1", "address2",     "city",  "country",
                                             "county",   "phone_number", "state", "state_code",
                                             "zip_code", "contact_type"};

static void
say(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || !msglen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

/* An optional string field: absent or null is "", anything but a string is refused. */
static int
opt_str(json_t *obj, const char *key, const char *prefix, const char **out, char *msg,
        size_t msglen)
{
    json_t *v = json_object_get(obj, key);
    *out = "";
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v)) {
        say(msg, msglen, "%s%s: must be a string", prefix, key);
        return TALLY_EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

int
tally__payment_check_contact(json_t *c, const char *field, char *msg, size_t msglen)
{
    char prefix[96];
    snprintf(prefix, sizeof prefix, "%s.", field);
    if (!c || json_is_null(c))
        return 0;
    if (!json_is_object(c)) {
        say(msg, msglen, "%s: must be an object", field);
        return TALLY_EINVAL;
    }
    for (size_t i = 0; i < sizeof contact_fields / sizeof contact_fields[0]; i++) {
        const char *s;
        if (opt_str(c, contact_fields[i], prefix, &s, msg, msglen) != 0)
            return TALLY_EINVAL;
        if (strlen(s) > 256) {
            say(msg, msglen, "%s%s: longer than 256 bytes", prefix, contact_fields[i]);
            return TALLY_EINVAL;
        }
    }
    const char *t;
    (void)opt_str(c, "contact_type", prefix, &t, msg, msglen);
    if (t[0] && strcmp(t, "MAILING") != 0 && strcmp(t, "BILLING") != 0 &&
        strcmp(t, "PAYMENT") != 0) {
        say(msg, msglen, "%scontact_type: must be MAILING, BILLING or PAYMENT", prefix);
        return TALLY_EINVAL;
    }
    return 0;
}

int
tally__payment_validate_create(json_t *req, const char *path_ns, const char **token, int *role,
                               char *msg, size_t msglen)
{
    const char *s;
    if (!json_is_object(req)) {
        say(msg, msglen, "request body must be a JSON object");
        return TALLY_EINVAL;
    }
    if (opt_str(req, "namespace", "", &s, msg, msglen) != 0)
        return TALLY_EINVAL;
    if (s[0] && strcmp(s, path_ns) != 0) {
        say(msg, msglen, "namespace: '%.64s' differs from the namespace of the path '%s'", s,
            path_ns);
        return TALLY_EINVAL;
    }
    if (opt_str(req, "role", "", &s, msg, msglen) != 0)
        return TALLY_EINVAL;
    *role = TALLY_PAYMENT_ROLE_UNKNOWN;
    if (s[0] && tally__payment_role_parse(s, role) != 0) {
        say(msg, msglen,
            "role: must be one of PAYMENT_METHOD_ROLE_UNKNOWN, PAYMENT_METHOD_ROLE_PRIMARY, "
            "PAYMENT_METHOD_ROLE_SECONDARY, PAYMENT_METHOD_ROLE_NORMAL");
        return TALLY_EINVAL;
    }
    if (tally__payment_check_contact(json_object_get(req, "contact"), "contact", msg, msglen) != 0)
        return TALLY_EINVAL;
    /* the token last, and never quoted: it may be what tally must not keep */
    if (opt_str(req, "token", "", &s, msg, msglen) != 0)
        return TALLY_EINVAL;
    size_t n = strlen(s);
    if (n == 0) {
        say(msg, msglen, "token: required (the payment provider's token)");
        return TALLY_EINVAL;
    }
    if (n > TALLY_PAYMENT_TOKEN_MAX) {
        say(msg, msglen, "token: longer than %d bytes", TALLY_PAYMENT_TOKEN_MAX);
        return TALLY_EINVAL;
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            say(msg, msglen, "token: contains control characters");
            return TALLY_EINVAL;
        }
    if (tally__payment_looks_like_card(s)) {
        say(msg, msglen,
            "token: looks like a card number; tally keeps payment provider tokens only and "
            "never stores card data");
        return TALLY_EINVAL;
    }
    *token = s;
    return 0;
}

json_t *
tally__payment_record_new(const char *name, const char *ns, const char *token, int role,
                          json_t *contact, int64_t now_s)
{
    char created[TALLY_TIME_RFC3339_LEN];
    tally__time_format_rfc3339(now_s, created, sizeof created);
    json_t *c = json_object();
    if (!c)
        return NULL;
    /* keep only the fields of contact.GlobalSpecType */
    for (size_t i = 0;
         json_is_object(contact) && i < sizeof contact_fields / sizeof contact_fields[0]; i++) {
        json_t *v = json_object_get(contact, contact_fields[i]);
        if (json_is_string(v) && json_string_value(v)[0])
            json_object_set(c, contact_fields[i], v);
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s}", "name", name, "namespace", ns, "token",
                     token, "role", tally__payment_role_name(role), "contact", c, "created",
                     created);
}

int
tally__payment_record_parse(const char *text, size_t len, json_t **rec, int *role)
{
    json_t *r = json_loadb(text, len, 0, NULL);
    const char *name = json_string_value(json_object_get(r, "name"));
    const char *rn = json_string_value(json_object_get(r, "role"));
    if (!json_is_object(r) || !name || !name[0] || tally__payment_role_parse(rn, role) != 0 ||
        *role == TALLY_PAYMENT_ROLE_UNKNOWN) {
        json_decref(r);
        return TALLY_ECORRUPT;
    }
    *rec = r;
    return 0;
}

/* ---- persistence ----------------------------------------------------------------- */

static int
load_one(void *ctx, const char *ns, const char *name, const void *value, size_t len)
{
    (void)ns;
    tally__payment_list_t *l = ctx;
    json_t *rec;
    int role;
    int rc = tally__payment_record_parse(value, len, &rec, &role);
    if (rc != 0)
        return rc;
    /* the key is the truth for the name; the record repeats it */
    if ((rc = tally__payment_list_add(l, name, role, rec)) != 0)
        json_decref(rec);
    return rc;
}

int
tally__payment_load(tally__store_t *s, const char *ns, tally__payment_list_t *l)
{
    return tally__store_obj_list(s, TALLY_PAYMENT_KIND, ns, load_one, l);
}

/*
 * Write the changed methods of l (and optionally one extra op: the created
 * or deleted method) in one batch. Every rewritten method must still exist.
 */
static int
commit(tally__store_t *s, const char *ns, tally__payment_list_t *l, const tally__obj_op_t *extra)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++)
        n += l->v[i].changed != 0;
    tally__obj_op_t *ops = calloc(n + 1, sizeof *ops);
    char **texts = calloc(n + 1, sizeof *texts);
    int rc = 0;
    size_t k = 0;
    if (!ops || !texts) {
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < l->n; i++) {
        tally__payment_entry_t *e = &l->v[i];
        if (!e->changed)
            continue;
        if (!e->rec ||
            json_object_set_new(e->rec, "role", json_string(tally__payment_role_name(e->role))) !=
                0 ||
            !(texts[k] = json_dumps(e->rec, JSON_COMPACT))) {
            rc = -ENOMEM;
            goto fail;
        }
        ops[k] = (tally__obj_op_t){.op = TALLY_OBJ_PUT,
                                   .kind = TALLY_PAYMENT_KIND,
                                   .ns = ns,
                                   .name = e->name,
                                   .value = texts[k],
                                   .len = strlen(texts[k]),
                                   .must_exist = 1};
        k++;
    }
    if (extra)
        ops[k++] = *extra;
    rc = k ? tally__store_obj_write(s, ops, k) : 0;
fail:
    for (size_t i = 0; texts && i <= n; i++)
        free(texts[i]);
    free(texts);
    free(ops);
    return rc;
}

int
tally__payment_create(tally__store_t *s, const char *ns, json_t *req, int64_t now_s, char *name_out,
                      char *msg, size_t msglen)
{
    const char *token = NULL;
    int requested, rc;
    tally__payment_list_t l = {0};
    json_t *rec = NULL;
    char *text = NULL;
    if ((rc = tally__payment_validate_create(req, ns, &token, &requested, msg, msglen)) != 0)
        return rc;
    if ((rc = tally__payment_load(s, ns, &l)) != 0)
        goto fail;
    int role = tally__payment_initial_role(&l, requested);
    /* the new method takes its role: any previous holder becomes normal */
    if (role != TALLY_PAYMENT_ROLE_NORMAL) {
        long h = tally__payment_list_holder(&l, role);
        if (h >= 0)
            assign(&l.v[h], TALLY_PAYMENT_ROLE_NORMAL);
    }
    char name[TALLY_PAYMENT_NAME_LEN];
    tally__uuid_random(name);
    rec = tally__payment_record_new(name, ns, token, role, json_object_get(req, "contact"), now_s);
    if (!rec || !(text = json_dumps(rec, JSON_COMPACT))) {
        rc = -ENOMEM;
        goto fail;
    }
    tally__obj_op_t op = {.op = TALLY_OBJ_PUT,
                          .kind = TALLY_PAYMENT_KIND,
                          .ns = ns,
                          .name = name,
                          .value = text,
                          .len = strlen(text),
                          .must_not_exist = 1};
    if ((rc = commit(s, ns, &l, &op)) != 0)
        goto fail;
    memcpy(name_out, name, sizeof name);
fail:
    free(text);
    json_decref(rec);
    tally__payment_list_fini(&l);
    return rc;
}

int
tally__payment_make(tally__store_t *s, const char *ns, const char *name, int role)
{
    if (role != TALLY_PAYMENT_ROLE_PRIMARY && role != TALLY_PAYMENT_ROLE_SECONDARY)
        return TALLY_EINVAL;
    tally__payment_list_t l = {0};
    int rc = tally__payment_load(s, ns, &l);
    if (rc != 0)
        goto fail;
    long i = tally__payment_list_find(&l, name);
    if (i < 0) {
        rc = TALLY_ENOTFOUND;
        goto fail;
    }
    if ((rc = tally__payment_set_role(&l, (size_t)i, role)) != 0)
        goto fail;
    rc = commit(s, ns, &l, NULL);
fail:
    tally__payment_list_fini(&l);
    return rc;
}

int
tally__payment_swap_roles(tally__store_t *s, const char *ns, const char *name)
{
    tally__payment_list_t l = {0};
    int rc = tally__payment_load(s, ns, &l);
    if (rc != 0)
        goto fail;
    long i = -1;
    if (name && name[0] && (i = tally__payment_list_find(&l, name)) < 0) {
        rc = TALLY_ENOTFOUND;
        goto fail;
    }
    if ((rc = tally__payment_swap(&l, i)) != 0)
        goto fail;
    rc = commit(s, ns, &l, NULL);
fail:
    tally__payment_list_fini(&l);
    return rc;
}

int
tally__payment_delete(tally__store_t *s, const char *ns, const char *name)
{
    tally__payment_list_t l = {0};
    int rc = tally__payment_load(s, ns, &l);
    if (rc != 0)
        goto fail;
    long i = tally__payment_list_find(&l, name);
    if (i < 0) {
        rc = TALLY_ENOTFOUND;
        goto fail;
    }
    if ((rc = tally__payment_check_delete(&l, (size_t)i)) != 0)
        goto fail;
    tally__obj_op_t op = {
        .op = TALLY_OBJ_DEL, .kind = TALLY_PAYMENT_KIND, .ns = ns, .name = name, .must_exist = 1};
    rc = commit(s, ns, &l, &op);
fail:
    tally__payment_list_fini(&l);
    return rc;
}
