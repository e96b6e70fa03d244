/* dedup.c — the per-producer sliding window that makes resent batches count once. */
#include <string.h>

#include "dedup.h"

/* Move the window's start forward by n sequence numbers. */
static void
shift(tally__dedup_t *d, uint64_t n)
{
    if (n >= TALLY_DEDUP_WINDOW) {
        memset(d->bits, 0, sizeof d->bits);
        return;
    }
    unsigned words = (unsigned)(n / 64), bits = (unsigned)(n % 64);
    for (unsigned i = 0; i < TALLY__DEDUP_WORDS; i++) {
        uint64_t lo = i + words < TALLY__DEDUP_WORDS ? d->bits[i + words] : 0;
        uint64_t hi = i + words + 1 < TALLY__DEDUP_WORDS ? d->bits[i + words + 1] : 0;
        d->bits[i] = bits ? (lo >> bits) | (hi << (64 - bits)) : lo;
    }
}

/* Advance the floor over every counted sequence that now touches it. */
static void
settle(tally__dedup_t *d)
{
    uint64_t n = 0;
    while (n < TALLY_DEDUP_WINDOW && (d->bits[n / 64] >> (n % 64)) & 1)
        n++;
    if (n) {
        shift(d, n);
        d->floor += n;
    }
}

int
tally__dedup_seen(const tally__dedup_t *d, uint64_t seq)
{
    if (seq <= d->floor)
        return 1;
    uint64_t off = seq - d->floor - 1;
    if (off >= TALLY_DEDUP_WINDOW)
        return 0;
    return (int)((d->bits[off / 64] >> (off % 64)) & 1);
}

int
tally__dedup_accept(tally__dedup_t *d, uint64_t seq, uint64_t base)
{
    if (base > 0 && base - 1 > d->floor) {
        shift(d, base - 1 - d->floor);
        d->floor = base - 1;
        settle(d);
        if (d->max_seq < d->floor)
            d->max_seq = d->floor;
    }
    if (tally__dedup_seen(d, seq))
        return TALLY_DEDUP_DUP;
    uint64_t off = seq - d->floor - 1;
    if (off >= TALLY_DEDUP_WINDOW)
        return TALLY_DEDUP_AHEAD;
    if (seq > d->max_seq)
        d->max_seq = seq;
    if (off == 0) {
        d->floor++;
        shift(d, 1);
        settle(d);
    } else {
        d->bits[off / 64] |= 1ull << (off % 64);
    }
    return TALLY_DEDUP_NEW;
}
