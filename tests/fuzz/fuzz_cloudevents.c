/* fuzz_cloudevents.c — libFuzzer harness: the CloudEvents ingest decoder; byte 0 picks the media
 * type, catalog and event limit, the rest is the body. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "catalog.h"
#include "cloudevents.h"
#include "codec.h"
#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW 1700000000000LL

static const char *const media[] = {
    "application/cloudevents+json",
    "application/cloudevents-batch+json",
    "application/json",
    "Application/JSON; charset=utf-8",
};

/* A catalog where one metric takes its value from another data member. */
static const tally__catalog_t *
catalog(void)
{
    static tally__catalog_t *cat;
    if (!cat) {
        static const char text[] = "[llm_tokens]\nvalue_field = tokens\n"
                                   "[http_requests]\nunit = requests\n";
        const char *path = fuzz_write_file("metrics.ini", (const uint8_t *)text, sizeof text - 1);
        char err[256];
        if (tally__catalog_load(path, &cat, err, sizeof err) != 0) {
            fprintf(stderr, "fuzz_cloudevents: %s\n", err);
            abort();
        }
    }
    return cat;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    const char *ct = media[sel & 3];
    const tally__catalog_t *cat = (sel & 4) ? catalog() : NULL;
    uint32_t max_events = (sel & 8) ? 3 : 0;
    /* the body in a heap block of exactly its size: ASan sees any overread */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body)
        return 0;
    memcpy(body, data + 1, len);

    tally__ce_batch_t b;
    tally__ce_error_t e;
    int rc = tally__ce_decode(ct, body, len, NOW, cat, max_events, &b, &e);
    free(body); /* nothing of the batch may point into it */
    if (rc == 0) {
        uint32_t max = max_events ? max_events : TALLY_MAX_BATCH_EVENTS;
        if (b.n < 1 || b.n > max || !b.events || e.status != 0)
            abort();
        for (size_t i = 0; i < b.n; i++) {
            const tally__ce_event_t *ce = &b.events[i];
            if (tally__event_validate(&ce->ev, NULL) != 0)
                abort(); /* the HTTP door accepts nothing the wire would refuse */
            if (strcmp(ce->ev.ns, "system") == 0 || ce->ev.ts_ms <= 0)
                abort();
            size_t sl = strlen(ce->source), il = strlen(ce->id);
            if (sl < 1 || sl > TALLY__CE_MAX_SOURCE_LEN || il < 1 || il > TALLY__CE_MAX_ID_LEN)
                abort();
            uint8_t key[TALLY__CE_DEDUP_KEY_LEN];
            if (tally__ce_dedup_key("fuzz", ce->source, ce->id, key) != 0)
                abort();
        }
        tally__ce_batch_fini(&b);
    } else {
        if (b.n != 0 || b.events || b.mem)
            abort(); /* a refused request leaves nothing behind */
        if (!memchr(e.message, '\0', sizeof e.message))
            abort();
        for (const char *p = e.message; *p; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
                abort(); /* messages are printable ASCII */
        int ok = (e.status == 400 || e.status == 415 || e.status == 422) ? rc == TALLY_EINVAL
                 : e.status == 413                                       ? rc == TALLY_ETOOBIG
                 : e.status == 500                                       ? rc == -ENOMEM
                                                                         : 0;
        if (!ok || !e.code || e.index < -1)
            abort();
    }
    return 0;
}
