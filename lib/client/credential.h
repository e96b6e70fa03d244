/* credential.h — emitter credentials: the `NAME:SECRET` string, its MAC key, and the MACs of
 * protocol v2 batches and acks.
 *
 * An emitter credential is a name ([A-Za-z0-9_.-], 1..64 bytes) and a secret
 * of 32 random bytes, written as unpadded URL-safe base64 (43 characters):
 * the client string is `NAME:SECRET`. Nobody stores the secret. Both sides
 * derive from it a 32-byte MAC key,
 *
 *     K = BLAKE2b-256(key = secret, message = "tally emitter mac key v2"),
 *
 * and the tokens file holds only K (`mac:HEX`). A reader of the tokens file
 * can therefore forge batches for that credential (a MAC is symmetric: the
 * verifier holds what the signer holds), but cannot present the secret to
 * the HTTP door, which checks `NAME:SECRET` by deriving K again.
 *
 * MACs are keyed BLAKE2b-256 (RFC 7693, libsodium's crypto_generichash with
 * a key): keyed BLAKE2b is a PRF by construction, so one pass over the
 * message suffices (HMAC hashes twice), and every language's standard
 * library has BLAKE2b. tally__mac() computes the very same bytes as
 * crypto_generichash, but compresses the key block once per key and thread
 * instead of once per message (credential.c says why). Tags are compared
 * with crypto_verify_32 (constant time).
 *
 * Everything here is computation on caller buffers (and a per-thread cache
 * of one keyed state); thread-safe once sodium_init() has run
 * (tally__cred_init()).
 */
#ifndef TALLY_CREDENTIAL_H
#define TALLY_CREDENTIAL_H

#include <stddef.h>
#include <stdint.h>

#define TALLY__CRED_MAX_NAME 64  /**< credential name bytes */
#define TALLY__CRED_SECRET_LEN 32 /**< raw secret bytes */
#define TALLY__CRED_SECRET_B64 43 /**< its unpadded base64url form */
#define TALLY__CRED_KEY_LEN 32    /**< MAC key bytes */
#define TALLY__MAC_LEN 32         /**< tag bytes appended to v2 messages */
#define TALLY__ACK_TOPIC_LEN 32   /**< hex characters of a v2 ack topic */

/** A parsed client credential: its name and MAC key (the secret is not kept). */
typedef struct tally__cred {
    char name[TALLY__CRED_MAX_NAME + 1];
    size_t name_len;
    uint8_t key[TALLY__CRED_KEY_LEN];
} tally__cred_t;

/** @brief sodium_init(); idempotent. @return 0 or -EIO. */
int tally__cred_init(void);

/** @brief Whether s[0..len) is a valid credential name. */
int tally__cred_valid_name(const char *s, size_t len);

/**
 * @brief Parse `NAME:SECRET` into a name and the derived MAC key.
 * @param s the string, NUL-terminated; leading/trailing blanks and one
 *        trailing newline are ignored (it usually comes from a file).
 * @param len its length in bytes (strlen(s)).
 * @return 0, or TALLY_EINVAL when the name or the secret is malformed.
 *         *out is wiped on failure.
 */
int tally__cred_parse(const char *s, size_t len, tally__cred_t *out);

/** @brief K from a raw secret (see the file comment). */
void tally__cred_derive(const uint8_t secret[TALLY__CRED_SECRET_LEN],
                        uint8_t key[TALLY__CRED_KEY_LEN]);

/**
 * @brief Make a new credential: random secret, its string, its key.
 * @param name a valid credential name.
 * @param[out] str `NAME:SECRET`, NUL-terminated; cap must hold
 *        name + 1 + 43 + 1 bytes.
 * @param[out] key the MAC key to write in the tokens file.
 * @return 0 or TALLY_EINVAL (bad name, buffer too small).
 */
int tally__cred_generate(const char *name, char *str, size_t cap,
                         uint8_t key[TALLY__CRED_KEY_LEN]);

/**
 * @brief tag = keyed BLAKE2b-256 of msg[0..len).
 * @note Keeps the state after the key block of the last key used in
 *       thread-local storage, so signing or checking many messages under one
 *       key costs only their own blocks.
 */
void tally__mac(const uint8_t key[TALLY__CRED_KEY_LEN], const void *msg, size_t len,
                uint8_t tag[TALLY__MAC_LEN]);

/**
 * @brief Check that the last TALLY__MAC_LEN bytes of msg are the tag of
 *        the bytes before them, in constant time.
 * @return 1 when they are, 0 otherwise (also when len < TALLY__MAC_LEN).
 */
int tally__mac_check(const uint8_t key[TALLY__CRED_KEY_LEN], const void *msg, size_t len);

/**
 * @brief The ack topic of a v2 producer: 32 lower-case hex digits of
 *        BLAKE2b-128(key, "ack" 0x00 producer), then a NUL. Subscribers
 *        without the key cannot tell which producer an ack is for.
 */
void tally__ack_topic(const uint8_t key[TALLY__CRED_KEY_LEN], const char *producer,
                      size_t producer_len, char topic[TALLY__ACK_TOPIC_LEN + 1]);

#endif
