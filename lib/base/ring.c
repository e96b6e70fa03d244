/* ring.c — the ck_ring SPSC ring behind tally__ring, with ThreadSanitizer annotations.
 *
 * ck publishes the slot with its own fences, which ThreadSanitizer does not
 * model; under TSan we add an explicit release (before the push) and acquire
 * (after the pop) on the item, so the payload hand-off is checked for real.
 * Races reported inside ck's own index updates are suppressed by
 * tests/tsan.supp, and only those.
 */
#include <errno.h>
#include <stdlib.h>

#include <ck_ring.h>

#include "ring.h"
#include "tally/tally.h"

#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define TSAN_RELEASE(p) __tsan_release(p)
#define TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define TSAN_RELEASE(p) ((void)(p))
#define TSAN_ACQUIRE(p) ((void)(p))
#endif

struct tally__ring {
    ck_ring_t ring;
    ck_ring_buffer_t *buf;
};

int
tally__ring_create(uint32_t capacity, tally__ring_t **out)
{
    if (capacity < 4 || (capacity & (capacity - 1)) != 0)
        return TALLY_EINVAL;
    tally__ring_t *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->buf = calloc(capacity, sizeof *r->buf);
    if (!r->buf) {
        free(r);
        return -ENOMEM;
    }
    ck_ring_init(&r->ring, capacity);
    *out = r;
    return 0;
}

void
tally__ring_destroy(tally__ring_t *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

bool
tally__ring_push(tally__ring_t *r, void *item)
{
    TSAN_RELEASE(item);
    return ck_ring_enqueue_spsc(&r->ring, r->buf, item);
}

bool
tally__ring_pop(tally__ring_t *r, void **item)
{
    void *p;
    if (!ck_ring_dequeue_spsc(&r->ring, r->buf, &p))
        return false;
    TSAN_ACQUIRE(p);
    *item = p;
    return true;
}

uint32_t
tally__ring_size(const tally__ring_t *r)
{
    return ck_ring_size(&r->ring);
}

uint32_t
tally__ring_capacity(const tally__ring_t *r)
{
    return ck_ring_capacity(&r->ring) - 1; /* ck keeps one slot empty */
}
