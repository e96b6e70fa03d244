/* tally_proto.h — the tally wire protocol, versions 1 and 2: one table of messages, keys and
 * reject reasons.
 *
 * The prose specification is proto/PROTOCOL.md; this header is its
 * machine-readable half. Every message is a msgpack map carrying "k" (the
 * message kind) and "v" (the protocol version). Acks and alerts travel on
 * PUB sockets and are preceded by a topic (producer id or namespace) and a
 * NUL byte, so SUB sockets can filter by prefix.
 *
 * Compatibility rule: a daemon accepts every version from 1 up to
 * TALLY_PROTO_VERSION; a message of a newer version is rejected with the
 * reason "version" and never half-read.
 */
#ifndef TALLY_PROTO_H
#define TALLY_PROTO_H

#define TALLY_PROTO_VERSION 2

/* Version 2 authenticates: a batch names its emitter credential in "a" (the
 * third key) and ends with a 32-byte keyed-BLAKE2b tag over every byte before
 * it; an ack's topic is a keyed hash of the producer id and the ack ends with
 * a tag too. Version 1 has neither and is taken only where
 * ingest.require_auth allows it. */
#define TALLY_PROTO_VERSION_V1 1
#define TALLY_PROTO_VERSION_V2 2

/* X(name, kind number, direction) — the one message table. */
#define TALLY_PROTO_MESSAGES(X)                                                                    \
    X(batch_v1, 1, "producer -> tallyd (PUSH/PULL)")                                               \
    X(ack_v1, 2, "tallyd -> producer (PUB/SUB, topic = producer id)")                              \
    X(alert_v1, 3, "tallyd -> subscribers (PUB/SUB, topic = namespace)")

enum tally_proto_kind {
#define TALLY__PROTO_KIND(name, num, dir) TALLY_PROTO_KIND_##name = (num),
    TALLY_PROTO_MESSAGES(TALLY__PROTO_KIND)
#undef TALLY__PROTO_KIND
};

/* Map keys. Single letters keep a 100-event batch near 5 KiB. */
#define TALLY_PROTO_KEY_KIND "k"    /* uint: enum tally_proto_kind */
#define TALLY_PROTO_KEY_VERSION "v" /* uint: protocol version */
/* batch_v1 */
#define TALLY_PROTO_KEY_CREDENTIAL "a" /* v2 str: emitter credential name, 1..64 bytes */
#define TALLY_PROTO_KEY_PRODUCER "p"   /* str: producer id, 1..64 bytes */
#define TALLY_PROTO_KEY_SEQ "s"      /* uint: batch sequence number, >= 1 */
#define TALLY_PROTO_KEY_BASE                                                                       \
    "b"                            /* uint: oldest sequence the producer                           \
                                      still holds unacked, 1..s */
#define TALLY_PROTO_KEY_EVENTS "e" /* array of event maps, 1..4096 */
/* event (inside "e") */
#define TALLY_PROTO_KEY_NS "n"     /* str: namespace */
#define TALLY_PROTO_KEY_METRIC "m" /* str: metric label */
#define TALLY_PROTO_KEY_VALUE "x"  /* int or float (finite) */
#define TALLY_PROTO_KEY_TIME "t"   /* int64 (> 0): unix milliseconds UTC */
#define TALLY_PROTO_KEY_LABELS "l" /* optional map str -> str, <= 8 */
/* ack_v1 */
#define TALLY_PROTO_KEY_HWM "h"    /* uint: every seq <= h is committed */
#define TALLY_PROTO_KEY_MAXSEQ "c" /* uint: highest committed seq */
/* alert_v1: also "n" (namespace, = topic), "m" (limit key) and "t"
   (int64: unix milliseconds UTC when tallyd noticed the crossing) */
#define TALLY_PROTO_KEY_LIMIT "q" /* float64: the limit crossed */
#define TALLY_PROTO_KEY_USAGE "u" /* float64: usage at the crossing */
#define TALLY_PROTO_KEY_LEVEL "w" /* str: "warning" or "exceeded" */

/* Why a message was rejected: X(name, description). Counted per reason
 * in /metrics as tally_ingest_rejected_total{reason="name"}. */
#define TALLY_PROTO_REJECTS(X)                                                                     \
    X(msgpack, "not valid msgpack")                                                                \
    X(trailing, "trailing bytes after the message")                                                \
    X(oversize, "message larger than ingest.max_message_bytes")                                    \
    X(type, "a field has the wrong type")                                                          \
    X(missing, "a required field is missing")                                                      \
    X(unknown_field, "a field the version does not define")                                        \
    X(duplicate_field, "a field or label given twice")                                             \
    X(kind, "not a batch")                                                                         \
    X(version, "unsupported protocol version")                                                     \
    X(no_events, "a batch without events")                                                         \
    X(too_many_events, "more events than ingest.max_batch_events")                                 \
    X(too_many_labels, "more labels than allowed")                                                 \
    X(too_long, "a string longer than its bound")                                                  \
    X(bad_name, "a name with characters outside its alphabet")                                     \
    X(bad_value, "a value that is not a finite number")                                            \
    X(bad_time, "a timestamp that is not positive")                                                \
    X(bad_seq, "sequence 0 or base above sequence")                                                \
    X(window, "sequence too far ahead of the producer's acked mark")                               \
    X(too_old, "event older than ingest.late_window_hours")                                        \
    X(future, "event further in the future than ingest.future_skew_s")                          \
    X(auth, "no credential by that name, or a MAC that does not verify")                           \
    X(unauthenticated, "a v1 batch on an endpoint that requires authentication")                   \
    X(scope, "a namespace outside the credential's namespaces")                                    \
    X(reserved, "the reserved namespace system")                                                   \
    X(producers, "more producers than ingest.max_producers_per_credential")

enum tally_proto_reject {
#define TALLY__PROTO_REJECT(name, text) TALLY_PROTO_REJECT_##name,
    TALLY_PROTO_REJECTS(TALLY__PROTO_REJECT)
#undef TALLY__PROTO_REJECT
        TALLY_PROTO_REJECT_COUNT
};

#endif
