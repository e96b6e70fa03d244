/* cloudevents.h — strict, bounded decoding of CloudEvents ingest requests (POST /api/v1/events)
 * into tally events.
 *
 * The HTTP door takes requests shaped as OpenMeter's ingest API takes them,
 * so an emitter written for OpenMeter works by changing its base URL and
 * token. This module is pure: no I/O, no clock, no globals; any thread may
 * call it. The HTTP layer bounds the body (http.max_body_bytes) before
 * calling; the decoder's memory is linear in the body length.
 *
 * Request shapes, by media type (matched case-insensitively; parameters
 * such as `; charset=utf-8` are ignored):
 *   application/cloudevents+json        one CloudEvent object
 *   application/cloudevents-batch+json  a JSON array of CloudEvent objects
 *   application/json                    either: an object is one event, an
 *                                       array a batch
 * Anything else, a missing Content-Type included, is refused with 415.
 *
 * One CloudEvent (JSON format, specversion 1.0). Optional attributes may be
 * null, which means absent (CloudEvents JSON format, §2.4):
 *   specversion      required, the string "1.0"
 *   id               required, non-empty string, at most TALLY__CE_MAX_ID_LEN bytes
 *   source           required, non-empty string, at most TALLY__CE_MAX_SOURCE_LEN bytes
 *   type             required: the metric label, [A-Za-z0-9_.:-]{1,64}
 *   subject          required: the namespace, [a-z0-9-]{1,64}; "system" is
 *                    reserved (it means "the whole tenant") and refused
 *   time             optional RFC 3339 (tally__time_parse_rfc3339: milliseconds
 *                    kept, further digits truncated); absent: the caller's now
 *   datacontenttype  optional; if given, the media type application/json
 *   dataschema       optional string; ignored
 *   data             the payload object (see below)
 * Other top-level members are CloudEvents extensions: allowed and ignored.
 *
 * The payload. The metric's value is data[F], where F is the metric's
 * value_field in the catalog (tally__catalog_value_field(); "value" for a
 * metric the catalog does not know). F is a literal top-level key of data.
 * The value is a JSON integer (an int64 event), a JSON real (a float event)
 * or a string holding a number, as OpenMeter's own examples send it:
 * `[+-]?digits` that fits int64 is an integer ("123", "-4"); any other
 * `[+-]?digits[.digits][(e|E)[+-]?digits]` (a digit on at least one side of
 * the point) whose value is finite is a float ("1.5", "1e3", ".5",
 * "99999999999999999999"); at most TALLY__CE_MAX_NUMSTR_LEN bytes; no
 * blanks, hex, "Inf" or "NaN". Every OTHER member of data whose value is a
 * JSON string becomes a label (key → value) under the wire protocol's rules
 * (proto/PROTOCOL.md §4: keys [A-Za-z0-9_.-/]{1,32}, values up to 64 bytes of
 * UTF-8 without control characters, at most 8 labels and 320 label bytes),
 * in the order of the body. Members of data that are not strings (numbers,
 * booleans, null, arrays, objects) are ignored: they are not labels.
 *
 * Status codes — the rule. A request is refused whole, never in part; the
 * first offending event in body order is the one reported, and within one
 * event every 400 check runs before any 422 check:
 *   415  the media type is not one of the three above.
 *   413  more events than max_events.
 *   400  the request is not a well-formed CloudEvents request: the body is
 *        empty, not JSON (syntax, a duplicate key, nesting deeper than
 *        TALLY__CE_MAX_DEPTH), the wrong top-level shape for its media type,
 *        an empty array, an element that is not an object, or an attribute
 *        that CloudEvents/OpenMeter define which is missing, of the wrong
 *        JSON type, empty, or malformed (specversion other than "1.0", time
 *        not RFC 3339, datacontenttype not application/json, data not an
 *        object).
 *   422  the request is well-formed CloudEvents but tally cannot meter it:
 *        tally's own alphabets and bounds (subject not a namespace or
 *        "system", type not a metric label, source or id too long, a label
 *        key or value or the label budget), the value (missing, not a
 *        number, not finite, a JSON number beyond int64 or double range
 *        anywhere in the body), or a time before 1970-01-01T00:00:00.001Z
 *        (the wire protocol's bad_time).
 * err->code is "EBADINPUT" for 400, 415 and 422, "ETOOLARGE" for 413 and
 * "EINTERNAL" (status 500) when memory runs out.
 */
#ifndef TALLY_CLOUDEVENTS_H
#define TALLY_CLOUDEVENTS_H

#include <stddef.h>
#include <stdint.h>

#include "catalog.h"
#include "tally/tally.h"

/** Bytes of a CloudEvent id; a longer one is refused (422). */
#define TALLY__CE_MAX_ID_LEN 256
/** Bytes of a CloudEvent source; a longer one is refused (422). */
#define TALLY__CE_MAX_SOURCE_LEN 256
/** JSON nesting of a body: the batch array, the event, data, and room to spare. */
#define TALLY__CE_MAX_DEPTH 32
/** Bytes of a numeric string value ("123.5"). */
#define TALLY__CE_MAX_NUMSTR_LEN 64
/** Bytes of a dedup key (BLAKE2b-128). */
#define TALLY__CE_DEDUP_KEY_LEN 16

/**
 * One decoded event. ev.ns, ev.metric, the labels and source/id point into
 * the batch's own memory: valid until tally__ce_batch_fini(). ev.ts_ms is
 * always set (> 0): the event's time or the now_ms given to the decoder.
 */
typedef struct tally__ce_event {
    tally_event_t ev;   /**< passes tally__event_validate() */
    const char *source; /**< the CloudEvent source, 1..TALLY__CE_MAX_SOURCE_LEN bytes */
    const char *id;     /**< the CloudEvent id, 1..TALLY__CE_MAX_ID_LEN bytes */
} tally__ce_event_t;

/**
 * A decoded request: events in body order. Caller's storage; the decoder
 * fills it, tally__ce_batch_fini() frees what it holds. A zeroed batch is
 * valid (n = 0) and may be finied.
 */
typedef struct tally__ce_batch {
    tally__ce_event_t *events; /**< n events; NULL when n = 0 */
    size_t n;                  /**< 1..max_events after a successful decode */
    void *mem;                 /**< one block: events, labels and strings */
} tally__ce_batch_t;

/** Why a request was refused; filled on every failure of tally__ce_decode(). */
typedef struct tally__ce_error {
    int status;        /**< HTTP status: 400, 413, 415, 422; 500 out of memory */
    const char *code;  /**< static: "EBADINPUT", "ETOOLARGE" or "EINTERNAL" */
    long index;        /**< 0-based index of the offending event, -1 for the request */
    char message[256]; /**< one line, printable ASCII; starts "event N: " when
                            index >= 0; quoted input is cut to 64 bytes */
} tally__ce_error_t;

/**
 * @brief Decode and validate a CloudEvents ingest request.
 * @param content_type the Content-Type header value; NULL → 415. Borrowed.
 * @param body the request body, len bytes (need not be NUL-terminated);
 *        borrowed for the call: nothing in *out points into it.
 * @param now_ms the time of events without a time, unix milliseconds (> 0).
 * @param catalog the metric catalog for value fields; NULL = every metric
 *        uses "value". Borrowed for the call.
 * @param max_events the most events accepted; 0 means TALLY_MAX_BATCH_EVENTS.
 * @param[out] out the events, all valid, on success; zeroed on failure.
 *        Owned by the caller until tally__ce_batch_fini(). Must not hold a
 *        batch that was not finied (it is overwritten).
 * @param[out] err on failure, the status, code, event index and message; on
 *        success status is 0. May be NULL.
 * @return 0; TALLY_EINVAL for a refused request (status 400, 415 or 422);
 *         TALLY_ETOOBIG for more than max_events (413); -ENOMEM (500).
 */
int tally__ce_decode(const char *content_type, const char *body, size_t len, int64_t now_ms,
                     const tally__catalog_t *catalog, uint32_t max_events, tally__ce_batch_t *out,
                     tally__ce_error_t *err);

/** @brief Free what a batch holds and zero it. NULL and zeroed batches are fine. */
void tally__ce_batch_fini(tally__ce_batch_t *b);

/**
 * @brief The exactly-once key of a CloudEvent as sent by one credential:
 *        BLAKE2b-128 (libsodium crypto_generichash, no key) of a version tag
 *        then cred, source and id, each preceded by its length as 8 bytes
 *        little-endian — so ("ab","c") and ("a","bc") never meet, and two
 *        credentials sending the same (source, id) get different keys.
 * @param cred the emitter credential name; source and id from the event.
 *        All NUL-terminated, borrowed for the call.
 * @param[out] out TALLY__CE_DEDUP_KEY_LEN bytes.
 * @return 0, or TALLY_EINVAL when an argument is NULL (out untouched).
 */
int tally__ce_dedup_key(const char *cred, const char *source, const char *id,
                        uint8_t out[TALLY__CE_DEDUP_KEY_LEN]);

/** What body a media type announces. */
typedef enum tally__ce_kind {
    TALLY__CE_REFUSED = 0, /**< not accepted: 415 */
    TALLY__CE_ONE = 1,     /**< application/cloudevents+json: one object */
    TALLY__CE_BATCH = 2,   /**< application/cloudevents-batch+json: an array */
    TALLY__CE_EITHER = 3,  /**< application/json: an object or an array */
} tally__ce_kind_t;

/**
 * @brief Classify a Content-Type header value: the media type before any
 *        ';' parameters, blanks trimmed, compared case-insensitively.
 * @param content_type the header value; NULL allowed (TALLY__CE_REFUSED).
 * @return the kind; TALLY__CE_REFUSED for anything not accepted.
 */
tally__ce_kind_t tally__ce_media_kind(const char *content_type);

#endif
