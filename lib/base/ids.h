/* ids.h — the engine's one home for hashes, identifiers and text encodings.
 *
 * Hash tables hash with tally__hash_bytes() (stable FNV-1a, used where a value
 * may be compared across runs or in tests) or tally__hash_fast() (eight bytes
 * a step, for hot private indexes that are never stored). Identifiers the API
 * hands out are RFC 4122 UUIDs from here; hex and base64 go through
 * libsodium, whose decoders run in constant time, so a secret read from a
 * tokens file does not leak through timing.
 */
#ifndef TALLY_IDS_H
#define TALLY_IDS_H

#include <stddef.h>
#include <stdint.h>

/** Length of a UUID's text form with its NUL. */
#define TALLY_UUID_LEN 37

/** @brief 64-bit FNV-1a of a byte string: stable across runs and builds. */
uint64_t tally__hash_bytes(const void *s, size_t len);

/** @brief A fast 64-bit hash (8 bytes a step, splitmix64 finish) for private
 *         in-memory indexes; not stable across versions, never store it. */
uint64_t tally__hash_fast(const void *s, size_t len);

/** @brief A random version 4 UUID, lower-case text, into out[TALLY_UUID_LEN]. */
void tally__uuid_random(char *out);

/** @brief A UUID derived from seed (BLAKE2b of it, version 4 bits set): the
 *         same seed always gives the same id. */
void tally__uuid_derived(const void *seed, size_t n, char *out);

/**
 * @brief Decode exactly 2 * n hex digits into out (constant time, libsodium).
 * @return 0, or -1 when hex has another length or a character that is not a
 *         hex digit (out is then unspecified).
 */
int tally__hex_decode(const char *hex, void *out, size_t n);

/** @brief Lower-case hex of src into dst (cap >= 2 * n + 1), NUL-terminated. */
void tally__hex_encode(char *dst, size_t cap, const void *src, size_t n);

/**
 * @brief Standard base64 (RFC 4648, with padding) of src into dst.
 * @param cap at least 4 * ((n + 2) / 3) + 1.
 * @return the encoded length (dst is NUL-terminated), or 0 if cap is short.
 */
size_t tally__base64_encode(char *dst, size_t cap, const void *src, size_t n);

#endif
