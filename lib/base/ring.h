/* ring.h — a bounded lock-free single-producer single-consumer ring of pointers (ck_ring).
 *
 * Exactly one thread may push and exactly one other thread may pop. A push
 * publishes everything the producer wrote before it (to the pointed-to
 * object too) to the consumer that pops the pointer. Neither side blocks:
 * push fails when the ring is full, pop when it is empty; callers decide how
 * to wait (tallyd stops reading its socket — back-pressure — rather than
 * dropping).
 */
#ifndef TALLY_RING_H
#define TALLY_RING_H

#include <stdbool.h>
#include <stdint.h>

typedef struct tally__ring tally__ring_t;

/**
 * @brief Create a ring.
 * @param capacity a power of two >= 4; the ring holds capacity - 1 items.
 * @return 0, TALLY_EINVAL for a bad capacity, -ENOMEM.
 */
int tally__ring_create(uint32_t capacity, tally__ring_t **out);
void tally__ring_destroy(tally__ring_t *r);

/** @brief Push one pointer (producer thread). @return false when full. */
bool tally__ring_push(tally__ring_t *r, void *item);

/** @brief Pop one pointer (consumer thread). @return false when empty. */
bool tally__ring_pop(tally__ring_t *r, void **item);

/** @brief Items in the ring now; exact only for the producer or consumer. */
uint32_t tally__ring_size(const tally__ring_t *r);

/** @brief How many items the ring can hold. */
uint32_t tally__ring_capacity(const tally__ring_t *r);

#endif
