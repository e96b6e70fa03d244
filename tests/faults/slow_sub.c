/* slow_sub.c — a nanomsg SUB that connects to PUB endpoints and never receives (fault suite's slow consumer). */
#define _GNU_SOURCE
#include <nanomsg/nn.h>
#include <nanomsg/pubsub.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * usage: slow_sub [--rcvbuf BYTES] [--read-every-ms MS] ENDPOINT...
 * Subscribes to every topic on each ENDPOINT and then, by default, never
 * calls nn_recv(): its receive buffer fills and stays full, the worst
 * subscriber a PUB socket can have. --read-every-ms reads one message per
 * period instead (a slow, not dead, reader). Runs until SIGTERM/SIGKILL;
 * prints the messages it read on exit.
 */
static volatile sig_atomic_t stop;

static void
on_term(int sig)
{
    (void)sig;
    stop = 1;
}

int
main(int argc, char **argv)
{
    int rcvbuf = 0, every_ms = 0, i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        if (i + 1 >= argc)
            goto usage;
        if (strcmp(argv[i], "--rcvbuf") == 0)
            rcvbuf = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--read-every-ms") == 0)
            every_ms = atoi(argv[i + 1]);
        else
            goto usage;
    }
    if (i >= argc)
        goto usage;
    int s = nn_socket(AF_SP, NN_SUB);
    if (s < 0 || nn_setsockopt(s, NN_SUB, NN_SUB_SUBSCRIBE, "", 0) < 0) {
        fprintf(stderr, "slow_sub: %s\n", nn_strerror(nn_errno()));
        return 1;
    }
    if (rcvbuf > 0 && nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVBUF, &rcvbuf, sizeof rcvbuf) < 0) {
        fprintf(stderr, "slow_sub: NN_RCVBUF: %s\n", nn_strerror(nn_errno()));
        return 1;
    }
    for (; i < argc; i++)
        if (nn_connect(s, argv[i]) < 0) {
            fprintf(stderr, "slow_sub: connect %s: %s\n", argv[i], nn_strerror(nn_errno()));
            return 1;
        }
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    unsigned long got = 0;
    while (!stop) {
        if (every_ms > 0) {
            char *msg = NULL;
            if (nn_recv(s, &msg, NN_MSG, NN_DONTWAIT) >= 0) {
                got++;
                nn_freemsg(msg);
            }
            usleep((useconds_t)every_ms * 1000);
        } else {
            pause();
        }
    }
    printf("slow_sub: read %lu messages\n", got);
    nn_close(s);
    return 0;
usage:
    fprintf(stderr, "usage: slow_sub [--rcvbuf BYTES] [--read-every-ms MS] ENDPOINT...\n");
    return 2;
}
