/* payment.h — payment methods: provider tokens with a role, card-number refusal, and their storage.
 *
 * A payment method is an API object of kind "payment_method" in the store,
 * keyed by (namespace, generated name), whose value is the JSON record
 *   {"name", "namespace", "token", "role", "contact", "created"}.
 * tally keeps a payment provider's token only: a token that looks like a
 * card number (13 to 19 digits passing the Luhn check, spaces and dashes
 * ignored) is refused, so card data is never stored.
 *
 * Invariant of a namespace's methods: at most one PRIMARY and at most one
 * SECONDARY; every other method is NORMAL (UNKNOWN is never stored). The
 * role rules are pure functions over a tally__payment_list_t; the
 * persistence helpers load the list, apply a rule and write every method
 * whose role changed plus the created / deleted one in ONE
 * tally__store_obj_write() batch, so a role move is all-or-nothing.
 *
 * Nothing here logs a token or any other field of a payment method.
 *
 * Threads: the persistence helpers read then write (read-modify-write);
 * callers serialize them (tallyd runs them on the loop thread). A concurrent
 * delete of a method being updated is caught by must_exist (TALLY_ENOTFOUND).
 */
#ifndef TALLY_PAYMENT_H
#define TALLY_PAYMENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "store.h"

/** The store kind of payment methods. */
#define TALLY_PAYMENT_KIND "payment_method"
/** Longest token accepted, in bytes. */
#define TALLY_PAYMENT_TOKEN_MAX 512
/** Size of a generated name: a v4 UUID and its NUL. */
#define TALLY_PAYMENT_NAME_LEN 37

/** Roles, in the order of the reference's PaymentMethodRole enum. */
enum {
    TALLY_PAYMENT_ROLE_UNKNOWN = 0,
    TALLY_PAYMENT_ROLE_PRIMARY = 1,
    TALLY_PAYMENT_ROLE_SECONDARY = 2,
    TALLY_PAYMENT_ROLE_NORMAL = 3,
};

/** @brief "PAYMENT_METHOD_ROLE_PRIMARY" etc.; static storage; "" for an invalid role. */
const char *tally__payment_role_name(int role);

/**
 * @brief Parse a role name of the PaymentMethodRole enum.
 * @return 0 with *role set, or TALLY_EINVAL for any other text.
 */
int tally__payment_role_parse(const char *s, int *role);

/**
 * @brief Whether s looks like a card number: after dropping spaces and
 *        dashes, 13 to 19 decimal digits passing the Luhn check, and nothing
 *        else. NULL is not a card.
 * @return 1 or 0.
 */
int tally__payment_looks_like_card(const char *s);

/* ---- role rules (pure) ------------------------------------------------------ */

/** One method as the role rules see it. */
typedef struct tally__payment_entry {
    char *name;  /**< owned (malloc) */
    int role;    /**< TALLY_PAYMENT_ROLE_PRIMARY / SECONDARY / NORMAL */
    int changed; /**< set by the rules when role differs from what was loaded */
    json_t *rec; /**< the stored record (owned reference), NULL in pure use */
} tally__payment_entry_t;

/** The methods of one namespace; zero-initialize, release with _list_fini(). */
typedef struct tally__payment_list {
    tally__payment_entry_t *v;
    size_t n, cap;
} tally__payment_list_t;

/**
 * @brief Append a method (name copied; rec's reference is taken on success).
 * @return 0, -ENOMEM.
 */
int tally__payment_list_add(tally__payment_list_t *l, const char *name, int role, json_t *rec);

/** @brief Free the entries and their records; the list is zeroed. */
void tally__payment_list_fini(tally__payment_list_t *l);

/** @brief Index of the method named name, or -1. */
long tally__payment_list_find(const tally__payment_list_t *l, const char *name);

/** @brief Index of the holder of role (PRIMARY or SECONDARY), or -1. */
long tally__payment_list_holder(const tally__payment_list_t *l, int role);

/**
 * @brief The role a new method gets when created with `requested`: PRIMARY
 *        and SECONDARY as asked, NORMAL as asked; UNKNOWN gives PRIMARY when
 *        no method holds the primary role, else NORMAL.
 */
int tally__payment_initial_role(const tally__payment_list_t *l, int requested);

/**
 * @brief Give method i role (PRIMARY, SECONDARY or NORMAL); the previous
 *        holder of a PRIMARY / SECONDARY role becomes NORMAL. Marks changed
 *        entries. No change when i holds role already.
 * @return 0, TALLY_EINVAL (bad index or role).
 */
int tally__payment_set_role(tally__payment_list_t *l, size_t i, int role);

/**
 * @brief swap-primary: method `target` (index, or -1 for the current
 *        secondary) becomes PRIMARY and the former primary becomes
 *        SECONDARY; a former secondary that is not the target becomes
 *        NORMAL. With target -1 this exchanges primary and secondary.
 *        No change when target is already primary.
 * @return 0, TALLY_EBUSY (target -1 and no secondary: nothing to swap),
 *         TALLY_EINVAL (bad index).
 */
int tally__payment_swap(tally__payment_list_t *l, long target);

/**
 * @brief Whether method i may be deleted: not while it is PRIMARY and other
 *        methods exist (they would be left without a primary).
 * @return 0, TALLY_EBUSY, TALLY_EINVAL (bad index).
 */
int tally__payment_check_delete(const tally__payment_list_t *l, size_t i);

/* ---- records (JSON) --------------------------------------------------------- */

/**
 * @brief Validate a CreatePaymentMethodRequest body (borrowed).
 * @param path_ns the namespace of the path; a non-empty body "namespace"
 *        must equal it.
 * @param[out] token borrowed from req (valid while req lives).
 * @param[out] role the requested role (UNKNOWN when absent or empty).
 * @param[out] msg the reason on failure, naming the field; never quotes the token.
 * @return 0 or TALLY_EINVAL.
 */
int tally__payment_validate_create(json_t *req, const char *path_ns, const char **token, int *role,
                                   char *msg, size_t msglen);

/**
 * @brief Validate a contact object (contact.GlobalSpecType): every field a
 *        string of at most 256 bytes, contact_type MAILING, BILLING or
 *        PAYMENT. Absent or null is fine. Plan transitions use it too.
 * @param field the field's name in messages ("contact", "payload.billing_address").
 * @return 0 or TALLY_EINVAL with msg naming the field.
 */
int tally__payment_check_contact(json_t *c, const char *field, char *msg, size_t msglen);

/**
 * @brief The stored record of a new method (new reference, caller decrefs).
 * @param contact the request's contact object or NULL (deep-copied).
 * @return the record, or NULL when out of memory.
 */
json_t *tally__payment_record_new(const char *name, const char *ns, const char *token, int role,
                                  json_t *contact, int64_t now_s);

/**
 * @brief Parse a stored record.
 * @param[out] rec the record (new reference); role its role.
 * @return 0, TALLY_ECORRUPT (not JSON, or no valid name / role).
 */
int tally__payment_record_parse(const char *text, size_t len, json_t **rec, int *role);

/* ---- persistence ------------------------------------------------------------- */

/**
 * @brief Load the methods of namespace ns into l (appended, records kept).
 * @return 0, TALLY_ECORRUPT, TALLY_ESTORE, -ENOMEM.
 */
int tally__payment_load(tally__store_t *s, const char *ns, tally__payment_list_t *l);

/**
 * @brief Create a method from a validated-or-not CreatePaymentMethodRequest,
 *        writing it and any role holder it displaces in one batch.
 * @param[out] name_out the generated name (TALLY_PAYMENT_NAME_LEN bytes).
 * @param[out] msg reason for TALLY_EINVAL.
 * @return 0, TALLY_EINVAL, TALLY_ENOTFOUND (a displaced method vanished),
 *         TALLY_EMAPFULL, TALLY_ESTORE, TALLY_ECORRUPT, -ENOMEM.
 */
int tally__payment_create(tally__store_t *s, const char *ns, json_t *req, int64_t now_s,
                          char *name_out, char *msg, size_t msglen);

/**
 * @brief Give method `name` of ns the PRIMARY / SECONDARY role (one batch).
 * @return 0, TALLY_ENOTFOUND, TALLY_EINVAL (role), store errors.
 */
int tally__payment_make(tally__store_t *s, const char *ns, const char *name, int role);

/**
 * @brief swap-primary in ns: `name` (NULL or "" for the current secondary)
 *        becomes PRIMARY, the former primary SECONDARY (one batch).
 * @return 0, TALLY_ENOTFOUND, TALLY_EBUSY (nothing to swap), store errors.
 */
int tally__payment_swap_roles(tally__store_t *s, const char *ns, const char *name);

/**
 * @brief Delete method `name` of ns.
 * @return 0, TALLY_ENOTFOUND, TALLY_EBUSY (the primary while others exist),
 *         store errors.
 */
int tally__payment_delete(tally__store_t *s, const char *ns, const char *name);

#endif
