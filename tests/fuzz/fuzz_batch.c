/* fuzz_batch.c — libFuzzer harness: the ingest batch decoder (msgpack batch v1 and v2, the peek
 * before a MAC check, the MAC check itself), the ack decoders and the alert decoder. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "alert.h"
#include "codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static tally__decoder_t dec;
    static int init;
    if (!init) {
        if (tally__decoder_init(&dec, 4096) != 0)
            abort();
        init = 1;
    }
    /* an exact-size copy: reads past the end are ASan reports */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    tally__wire_batch_t b;
    int reason = -1;
    if (tally__decode_batch(&dec, buf, size, &b, &reason) == 0) {
        /* touch everything the decoder handed out: it must lie inside buf */
        volatile size_t sink = b.producer.len + b.seq + b.base;
        if (b.producer.len)
            sink += (unsigned char)b.producer.p[b.producer.len - 1];
        for (uint32_t i = 0; i < b.nevents; i++) {
            const tally__wire_event_t *e = &b.events[i];
            if (e->ns.len)
                sink += (unsigned char)e->ns.p[e->ns.len - 1];
            if (e->metric.len)
                sink += (unsigned char)e->metric.p[e->metric.len - 1];
            for (uint32_t j = 0; j < e->nlabels; j++) {
                const tally__wire_label_t *l = &b.labels[e->label_off + j];
                if (l->key.len)
                    sink += (unsigned char)l->key.p[l->key.len - 1];
                if (l->value.len)
                    sink += (unsigned char)l->value.p[l->value.len - 1];
            }
        }
        (void)sink;
    } else {
        /* every failure names a reason with a name and a text */
        if (!tally__reject_name(reason) || !tally__reject_text(reason))
            abort();
    }
    /* the daemon's order for v2: peek, check the tag, decode without it.
     * The fuzzer cannot forge a tag, so the decode after a check that
     * failed runs too: it must hold on any bytes as well. */
    static const uint8_t key[TALLY__CRED_KEY_LEN] = {1, 2, 3};
    uint32_t version;
    tally__str_t cred;
    if (tally__peek_batch(buf, size, &version, &cred, &reason) == 0) {
        if (version != 1 && version != 2)
            abort();
        if (cred.len && (cred.p < (const char *)buf || cred.p + cred.len > (const char *)buf + size))
            abort();
        if (version == 2 && size >= TALLY__MAC_LEN) {
            (void)tally__mac_check(key, buf, size);
            tally__decode_batch(&dec, buf, size - TALLY__MAC_LEN, &b, &reason);
        }
    }
    /* the same bytes as an ack (the other message the wire carries) */
    tally__wire_ack_t ack;
    tally__decode_ack(buf, size, &ack);
    char topic[TALLY__ACK_TOPIC_LEN + 1];
    tally__ack_topic(key, "p", 1, topic);
    tally__decode_ack_v2(buf, size, key, topic, &ack);
    /* and as an alert (SUB sockets take anyone's frames): what decodes lies
     * inside buf, and re-encodes to a frame that decodes to the same alert */
    tally__wire_alert_t al, al2;
    if (tally__decode_alert(buf, size, &al) == 0) {
        if (al.ns.p < (const char *)buf || al.ns.p + al.ns.len > (const char *)buf + size ||
            al.key.p < (const char *)buf || al.key.p + al.key.len > (const char *)buf + size)
            abort();
        char k[TALLY_ALERT_KEY_MAX + 1];
        memcpy(k, al.key.p, al.key.len);
        k[al.key.len] = '\0';
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        /* a key with a NUL inside is shorter as a C string: skip those */
        if (strlen(k) == al.key.len) {
            if (tally__encode_alert(&sb, al.ns.p, al.ns.len, k, al.limit, al.usage, al.level,
                                    al.ts_ms) != 0 ||
                tally__decode_alert(sb.data, sb.size, &al2) != 0 || al2.limit != al.limit ||
                al2.usage != al.usage || al2.level != al.level || al2.ts_ms != al.ts_ms)
                abort();
        }
        msgpack_sbuffer_destroy(&sb);
    }
    free(buf);
    return 0;
}
