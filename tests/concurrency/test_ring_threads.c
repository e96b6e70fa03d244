/* test_ring_threads.c — a producer and a consumer thread pass heap payloads through a small
 * ck_ring; order and contents must survive (run under TSan). */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>

#include "check.h"
#include "ring.h"

#define ITEMS 1000000

typedef struct item {
    uint64_t seq;
    uint64_t check;
} item_t;

static void *
producer(void *arg)
{
    tally__ring_t *r = arg;
    for (uint64_t i = 0; i < ITEMS; i++) {
        item_t *it = malloc(sizeof *it);
        CHECK(it != NULL, "malloc");
        it->seq = i;
        it->check = i * 2654435761u;
        while (!tally__ring_push(r, it))
            sched_yield();
    }
    return NULL;
}

int
main(void)
{
    tally__ring_t *r;
    CHECK(tally__ring_create(64, &r) == 0, "create");
    pthread_t t;
    pthread_create(&t, NULL, producer, r);
    for (uint64_t want = 0; want < ITEMS;) {
        void *p;
        if (!tally__ring_pop(r, &p)) {
            sched_yield();
            continue;
        }
        item_t *it = p;
        CHECK(it->seq == want, "got %llu want %llu", (unsigned long long)it->seq,
              (unsigned long long)want);
        CHECK(it->check == want * 2654435761u, "payload of %llu", (unsigned long long)want);
        free(it);
        want++;
    }
    pthread_join(t, NULL);
    void *p;
    CHECK(!tally__ring_pop(r, &p), "ring must be empty");
    tally__ring_destroy(r);
    printf("ring: %d items passed in order\n", ITEMS);
    return 0;
}
