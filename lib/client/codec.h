/* codec.h — strict, bounded msgpack encoding and decoding of tally wire messages.
 *
 * The decoder owns growable event/label arrays that are reused from one
 * message to the next, so decoding does not allocate in the steady state. Decoded strings point into the caller's input buffer:
 * they are valid until that buffer is freed or the next decode call,
 * whichever comes first.
 */
#ifndef TALLY_CODEC_H
#define TALLY_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "credential.h"
#include "tally/tally.h"
#include "tally_proto.h"

/** A length-delimited string pointing into the decoded buffer. */
typedef struct tally__str {
    const char *p;
    uint32_t len;
} tally__str_t;

typedef struct tally__wire_label {
    tally__str_t key;
    tally__str_t value;
} tally__wire_label_t;

typedef struct tally__wire_event {
    tally__str_t ns;
    tally__str_t metric;
    int is_float;
    int64_t ival;
    double fval;
    int64_t ts_ms;
    uint32_t label_off; /**< index of the first label in batch->labels */
    uint32_t nlabels;
} tally__wire_event_t;

/** A decoded batch_v1. Arrays are owned by the decoder. */
typedef struct tally__wire_batch {
    uint32_t version;
    tally__str_t cred; /**< v2: the emitter credential's name; v1: empty */
    tally__str_t producer;
    uint64_t seq;
    uint64_t base;
    uint32_t nevents;
    tally__wire_event_t *events;
    tally__wire_label_t *labels;
} tally__wire_batch_t;

/** A decoded ack_v1. */
typedef struct tally__wire_ack {
    tally__str_t producer;
    uint64_t hwm;
    uint64_t max_seq;
} tally__wire_ack_t;

typedef struct tally__decoder {
    uint32_t max_events;
    tally__wire_event_t *events;
    tally__wire_label_t *labels;
    uint32_t cap_events;
    uint32_t cap_labels;
} tally__decoder_t;

/** @brief Initialise a decoder accepting at most max_events per batch. */
int tally__decoder_init(tally__decoder_t *d, uint32_t max_events);
void tally__decoder_fini(tally__decoder_t *d);

/**
 * @brief Read only what must be known before a batch's MAC can be checked:
 *        the kind, the version and (version 2) the credential name.
 * @param[out] version 1 or 2.
 * @param[out] cred version 2: the credential name (points into buf); v1: empty.
 * @param[out] reason on failure, the TALLY_PROTO_REJECT_* that applies.
 * @return 0, TALLY_EVERSION, or TALLY_EPROTO (kind, missing, type, msgpack,
 *         too_long, bad_name).
 * @note Judges nothing else: call tally__mac_check() on the whole message,
 *       then tally__decode_batch() on it without its tag.
 */
int tally__peek_batch(const void *buf, size_t len, uint32_t *version, tally__str_t *cred,
                      int *reason);

/**
 * @brief Decode and validate one batch (its msgpack map only: a v2
 *        message's trailing tag must be cut off first).
 * @param[out] out valid until the next call or until buf is freed.
 * @param[out] reason on failure, the TALLY_PROTO_REJECT_* that applies.
 * @return 0, or TALLY_EPROTO (reason set), TALLY_EVERSION (reason version).
 */
int tally__decode_batch(tally__decoder_t *d, const void *buf, size_t len, tally__wire_batch_t *out,
                        int *reason);

/** @brief Name ("too_old") and description of a reject reason. */
const char *tally__reject_name(int reason);
const char *tally__reject_text(int reason);

/**
 * @brief Validate one event as the daemon will (names, bounds, value).
 * @param[out] reason set on failure.
 * @return 0 or TALLY_EINVAL.
 */
int tally__event_validate(const tally_event_t *ev, int *reason);

/** @brief Whether s[0..len) is a valid namespace: [a-z0-9-], 1..64 bytes. */
int tally__valid_ns(const char *s, size_t len);
/** @brief Whether s is a valid metric label: [A-Za-z0-9_.:-], 1..64 bytes. */
int tally__valid_metric(const char *s, size_t len);
/** @brief Whether s is a valid producer id: printable ASCII, no blanks, 1..64. */
int tally__valid_producer(const char *s, size_t len);

/** @brief Append one encoded event map to sb (the client's open batch). */
int tally__encode_event(msgpack_sbuffer *sb, const tally_event_t *ev, int64_t ts_ms);

/**
 * @brief Build a complete batch_v1: header + array of nevents encoded events.
 * @param events the concatenation of tally__encode_event() outputs.
 */
int tally__encode_batch(msgpack_sbuffer *out, const char *producer, uint64_t seq, uint64_t base,
                        uint32_t nevents, const void *events, size_t events_len);

/**
 * @brief Build a version 2 batch: the map with "a" = cred->name third, then
 *        the 32-byte tag under cred->key. cred NULL builds version 1.
 */
int tally__encode_batch_v2(msgpack_sbuffer *out, const tally__cred_t *cred, const char *producer,
                           uint64_t seq, uint64_t base, uint32_t nevents, const void *events,
                           size_t events_len);

/**
 * @brief Build a version 2 ack: topic (tally__ack_topic) + NUL + map
 *        {k, v = 2, h, c} + tag under key over everything before it.
 */
int tally__encode_ack_v2(msgpack_sbuffer *out, const uint8_t key[TALLY__CRED_KEY_LEN],
                         const char *producer, size_t producer_len, uint64_t hwm,
                         uint64_t max_seq);

/**
 * @brief Decode a version 2 ack meant for one producer.
 * @param topic the producer's topic with its NUL (tally__ack_topic()).
 * @return 0, or TALLY_EPROTO when the topic differs, the tag does not
 *         verify (checked before the map is read), or the map is not
 *         exactly {k = 2, v = 2, h, c}. out->producer is left empty.
 */
int tally__decode_ack_v2(const void *buf, size_t len, const uint8_t key[TALLY__CRED_KEY_LEN],
                         const char *topic, tally__wire_ack_t *out);

/** @brief Build an ack_v1 message: "producer\0" + msgpack map. */
int tally__encode_ack(msgpack_sbuffer *out, const char *producer, size_t producer_len, uint64_t hwm,
                      uint64_t max_seq);

/**
 * @brief Decode an ack message (with its topic prefix).
 * @return 0 or TALLY_EPROTO. out->producer points into buf.
 */
int tally__decode_ack(const void *buf, size_t len, tally__wire_ack_t *out);

#endif
