/* cells.h — the aggregator's table of (series, hour) rollup cells between two flushes.
 *
 * Owned by one thread (the aggregator). Events add into cells keyed by
 * integer series id and hour; tally__cells_prepare() yields the cells as
 * hourly and monthly store updates in LMDB key order: by period,
 * then by the store's id of each series, learnt from the commit that first
 * wrote it, so that steady-state flushes sort only integers (a counting
 * sort). In a period, series the store has not named yet go last, and the
 * commit names them. A table learns the ids of one store: use it with
 * that store only.
 * After a successful commit, tally__cells_reset() empties the table; after
 * a failed one the cells stay and are committed later.
 */
#ifndef TALLY_CELLS_H
#define TALLY_CELLS_H

#include <stddef.h>
#include <stdint.h>

#include "rollup.h"
#include "store.h"
#include "strtab.h"

typedef struct tally__cells tally__cells_t;

/** @brief Create an empty table reading series keys from `series`. */
int tally__cells_create(const tally__strtab_t *series, tally__cells_t **out);
void tally__cells_destroy(tally__cells_t *a);

/**
 * @brief Add one event to the cell of (series id, hour start).
 * @return 0 or -ENOMEM (nothing added).
 */
int tally__cells_add(tally__cells_t *a, uint32_t series, int64_t hour_s, int is_float, int64_t ival,
                     double fval, int64_t ts_ms);

/** @brief Cells waiting for a flush. */
size_t tally__cells_cells(const tally__cells_t *a);

/**
 * @brief Build the flush: a source of the hourly and monthly updates in
 *        key order, read straight from the cells (no copy of them is
 *        made). Pass it to tally__store_commit_src(); it stays valid, and
 *        may be committed again after a failed commit, until the next add,
 *        prepare, reset or destroy.
 * @return 0 or -ENOMEM.
 */
int tally__cells_prepare(tally__cells_t *a, tally__store_src_t *src);

/** @brief Forget every cell (after their commit). Keeps capacity. */
void tally__cells_reset(tally__cells_t *a);

/**
 * @brief Take the count of int64 overflows (rollup.h's overflow rule: the
 *        value went on in double precision and the record is flagged
 *        TALLY_ROLLUP_INT_OVERFLOW) since the last take, and reset it.
 *        Counted once per overflowing addition: an event added to a cell
 *        whose integer sum it takes past int64 counts at once; the monthly
 *        delta of a flush that spans hours, when folding the hours of one
 *        series passes int64, counts when tally__cells_reset() follows its
 *        commit (a retried commit does not count twice). Overflows of the
 *        stored records themselves are the store's
 *        (tally__store_take_overflows()).
 * @param series when not NULL (and cap > 0): receives the latest
 *        overflowing series as tally__series_text(), "" when none.
 * @return the count, 0 when nothing overflowed.
 * @note Owner thread only; cheap enough to call after every add.
 */
uint64_t tally__cells_take_overflows(tally__cells_t *a, char *series, size_t cap);

/** @brief Heap bytes held, for /metrics and benchmarks. */
size_t tally__cells_bytes(const tally__cells_t *a);

#endif
