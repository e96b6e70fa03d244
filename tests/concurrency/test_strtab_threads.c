/* test_strtab_threads.c — one thread interns strings while another reads them by id as they are
 * published (run under TSan). */
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "strtab.h"

#define N 200000

static tally__strtab_t *tab;
static uint32_t published; /* ids below this may be read */

static void *
writer(void *arg)
{
    (void)arg;
    char buf[64];
    for (uint32_t i = 0; i < N; i++) {
        int n = snprintf(buf, sizeof buf, "ns-%u", i);
        uint32_t id;
        CHECK(tally__strtab_intern(tab, buf, (uint32_t)n, &id) == 1, "new string %u", i);
        CHECK(id == i, "dense ids");
        __atomic_store_n(&published, i + 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

int
main(void)
{
    CHECK(tally__strtab_create(&tab) == 0, "create");
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    uint32_t seen = 0;
    while (seen < N) {
        uint32_t upto = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
        if (upto == seen) {
            sched_yield();
            continue;
        }
        for (; seen < upto; seen++) {
            char want[64];
            int n = snprintf(want, sizeof want, "ns-%u", seen);
            uint32_t len;
            const char *s = tally__strtab_get(tab, seen, &len);
            CHECK(s != NULL && len == (uint32_t)n && memcmp(s, want, (size_t)n) == 0, "string %u",
                  seen);
        }
    }
    pthread_join(t, NULL);
    tally__strtab_destroy(tab);
    printf("strtab: %d strings read while being written\n", N);
    return 0;
}
