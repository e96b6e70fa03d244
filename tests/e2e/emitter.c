/* emitter.c - a tiny producer built against the installed libtally (pkg-config tally) by test_install.sh. */
#include <stdio.h>
#include <stdlib.h>

#include <tally/tally.h>

/* usage: emitter ENDPOINT NS METRIC COUNT
 * Emits COUNT events of value 1, flushes, and prints "acked EVENTS BATCHES".
 * Exit status 0 only when every batch was acknowledged. Uses nothing but
 * tally.h, so it links against the shared library's exported API. */
int
main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: emitter ENDPOINT NS METRIC COUNT\n");
        return 2;
    }
    long count = strtol(argv[4], NULL, 10);
    tally_client_t *c = NULL;
    tally_client_stats_t st;
    /* the credential comes from the environment, as tallyctl emit takes it */
    tally_client_options_t o = {.credential = getenv("TALLY_KEY")};
    int rc = tally_client_create(argv[1], "install-emitter", &o, &c);
    if (rc != 0) {
        fprintf(stderr, "emitter: tally_client_create: %s\n", tally_strerror(rc));
        return 1;
    }
    for (long i = 0; i < count; i++) {
        while ((rc = tally_emit_int(c, argv[2], argv[3], 1)) == TALLY_EFULL)
            tally_flush(c, 1000);
        if (rc != 0) {
            fprintf(stderr, "emitter: tally_emit_int: %s\n", tally_strerror(rc));
            goto fail;
        }
    }
    if ((rc = tally_flush(c, 30000)) != 0) {
        fprintf(stderr, "emitter: tally_flush: %s\n", tally_strerror(rc));
        goto fail;
    }
    tally_client_stats(c, &st);
    printf("acked %llu %llu (libtally %s)\n", (unsigned long long)st.events,
           (unsigned long long)st.acked_batches, tally_version());
    tally_client_destroy(c);
    return 0;
fail:
    tally_client_destroy(c);
    return 1;
}
