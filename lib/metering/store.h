/* store.h — the LMDB store: hourly and monthly rollups, producer high-water marks, one write txn
 * per flush.
 *
 * Only this module sees LMDB; its codes become TALLY_E* here. The store is
 * one LMDB environment (a directory) with named databases: "series"
 * (series key from rollup.h -> dense 32-bit series id, never reused),
 * "hourly" and "monthly" ((series id, period start) -> tally__rollup_t),
 * "producers" (producer id -> tally__dedup_t), "objects" (API objects),
 * "evlog" (the HTTP door's committed event identities, an append-only log
 * that the store also holds in memory: see tally__store_events_seen()) and
 * "meta" (format version). Callers see series keys only; ids are the
 * store's, exposed so that a flush can be sorted in key order and skip the
 * string lookup of series it has seen before.
 *
 * Threads: one thread commits (the aggregator); any thread may read. A
 * read holds a shared lock for its transaction's life so that growing the
 * map (which LMDB allows only with no transaction open in the process) can
 * wait for readers to finish. Read transactions are MVCC snapshots: a
 * reader sees whole flushes or none.
 */
#ifndef TALLY_STORE_H
#define TALLY_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "dedup.h"
#include "rollup.h"

typedef struct tally__store tally__store_t;

enum { TALLY_STORE_HOURLY = 0, TALLY_STORE_MONTHLY = 1 };

/** Most series one store can name (ids are 32-bit; kept clear of the top). */
#define TALLY_STORE_SERIES_MAX 0x7fffffffu

/**
 * @brief Open (creating when writable and missing) the store in dir.
 * @param map_size_bytes LMDB map size; grown later with tally__store_grow().
 * @param readonly 1 for tools that only read (tallyctl dump).
 * @return 0, TALLY_ECORRUPT (another format), TALLY_ESTORE, or -errno.
 */
int tally__store_open(const char *dir, uint64_t map_size_bytes, int readonly, tally__store_t **out);

enum {
    TALLY_STORE_RDONLY = 1, /**< as readonly above */
    /** Write through the map (MDB_WRITEMAP) when the whole map can be
     *  reserved on disk first (fallocate), else fall back to LMDB's copy
     *  mode with a warning. LMDB's copy mode mallocs a copy of every page a
     *  transaction touches and keeps as many buffers as its largest
     *  transaction needed; writing through the map needs none. Reserving
     *  first is what makes it safe: a write to an unallocated page of a
     *  shared map on a full disk is SIGBUS, not an error. The reservation
     *  grows with the map (tally__store_grow), so a full disk is then seen
     *  as a map that cannot grow. For the one long-lived writer (tallyd);
     *  it reserves map_size_bytes of disk up front. */
    TALLY_STORE_WRITEMAP = 2,
    /** Start a new, empty store although DIR/tally.id says the store held
     *  data and data.mdb is missing or empty (tallyd --accept-empty-store).
     *  Without it such an open fails with TALLY_ECORRUPT: see the store's
     *  identity below. */
    TALLY_STORE_ACCEPT_EMPTY = 4,
};

/* ---- the store's identity ---------------------------------------------------
 * LMDB starts a new, empty environment over a missing or empty data.mdb. So
 * that a deleted or truncated store is not silently replaced by an empty
 * one, every writable open keeps DIR/tally.id, a small text file beside
 * data.mdb: the store's random id (also in data.mdb's "meta" database), its
 * generation (bumped by every writable open, also in "meta"), LMDB's last
 * transaction id, and whether the store has held records (written at the
 * first commit that gives it some). A writable open fails with
 * TALLY_ECORRUPT, and logs why and what to do, when tally.id says the store
 * held data and data.mdb is missing, empty or has no id; when data.mdb is
 * another store's; or when it is older than tally.id says (an old copy put
 * in place). Deleting tally.id accepts whatever data.mdb holds at the next
 * open; TALLY_STORE_ACCEPT_EMPTY accepts a missing or empty one.
 * tally__store_restore() and tally__store_compact() rewrite tally.id for
 * the data.mdb they put in place. A store without tally.id (written by an
 * older tallyd) gets one at its next writable open. */

/** @brief tally__store_open() with TALLY_STORE_* flags. */
int tally__store_open_ex(const char *dir, uint64_t map_size_bytes, unsigned flags,
                         tally__store_t **out);

/** @brief 1 when the store writes through its map (TALLY_STORE_WRITEMAP took effect). */
int tally__store_writemap(const tally__store_t *s);

void tally__store_close(tally__store_t *s);

/** One rollup update for (series, period): merged into what the store holds. */
typedef struct tally__store_put {
    const char
        *series; /**< series key (rollup.h), borrowed for the call; read only when sid1 is 0,
                      or, when not NULL, to name an int64 overflow (tally__store_take_overflows) */
    uint32_t series_len;
    int64_t period_s; /**< hour or month start */
    const tally__rollup_t *delta;
    /** hourly puts: 1 + index of the monthly put of the same series and
     *  month in the same commit, 0 for none. The commit moves the change of
     *  the hour's `last` into that month's `last_sum`. */
    uint32_t month_plus1;
    /** 1 + the store's id of the series when the caller knows it (then
     *  `series` is not read); 0: the commit looks the series up, naming it
     *  when it is new. */
    uint32_t sid1;
    /** With sid1 0: where to store 1 + the series' id once the commit has
     *  succeeded, so the next flush passes it; NULL for none. */
    uint32_t *learn;
} tally__store_put_t;

/**
 * A flush's updates, handed to the commit piece by piece so that no one
 * holds a second copy of every update: the aggregator's cells are the only
 * copy. The commit asks for the hourly puts, then the monthly ones, each in
 * key order (see tally__store_commit), and may start over (a commit retried
 * after the map grew).
 */
typedef struct tally__store_src {
    /**
     * @brief Write the next puts of `which` (TALLY_STORE_HOURLY or _MONTHLY).
     * @param first 1: start that kind over from its first put.
     * @param puts,deltas room for cap puts and cap records; a put's delta
     *        may point into deltas (or anywhere valid until the next call).
     * @return puts written, at most cap; 0 when that kind is done.
     */
    size_t (*fill)(void *ctx, int which, int first, tally__store_put_t *puts,
                   tally__rollup_t *deltas, size_t cap);
    void *ctx;
    size_t nh, nm; /**< how many hourly and monthly puts fill() yields */
    /** HTTP events to remember as seen, appended to "evlog" in the same
     *  transaction, in this order (tally__store_events_seen()); may be NULL
     *  with nev 0. An identity given twice is held once, at its later entry. */
    const struct tally__store_evkey *ev;
    size_t nev;
} tally__store_src_t;

/** Length of an event identity: BLAKE2b-128 of (credential, source, id). */
#define TALLY_STORE_EVKEY_LEN 16

/** One HTTP event's identity and when it was first accepted. */
typedef struct tally__store_evkey {
    uint8_t key[TALLY_STORE_EVKEY_LEN];
    int64_t seen_ms; /**< unix ms when accepted; pruned after the dedup window */
} tally__store_evkey_t;

/**
 * @brief Which of n event identities were committed at or after since_ms.
 * @param[out] seen n bytes: 1 when remembered (and not older than since_ms).
 * @param[out] count how many distinct identities the store remembers (under
 *        the same lock); may be NULL.
 * @return 0.
 * @note Any thread. Reads the in-memory set only (lib/evset.h), never
 *       LMDB: a writable open loads it from "evlog" (moving an older
 *       store's "evseen"/"evtime" there first), and a commit adds its
 *       identities once it is durable, before tally__store_commit_src()
 *       returns. A read-only open holds no set: nothing is seen.
 */
int tally__store_events_seen(tally__store_t *s, const tally__store_evkey_t *keys, size_t n,
                             int64_t since_ms, uint8_t *seen, uint64_t *count);

/** @brief How many distinct event identities the store remembers (O(1)). */
uint64_t tally__store_events_count(tally__store_t *s);

/**
 * @brief Forget event identities first seen before before_ms, oldest first,
 *        in small transactions, from the log and the set alike. Goes by
 *        whole log records (one flush's identities, up to 84 a record): a
 *        record goes when its newest entry is older than before_ms. Stops
 *        once about max went (a record may take it past). Writer thread.
 * @param[out] deleted how many log entries went (an identity renewed after
 *        its window has a stale older entry, which counts here too).
 */
int tally__store_prune_events(tally__store_t *s, int64_t before_ms, size_t max, size_t *deleted);

/**
 * @brief tally__store_prune_events() that also forgets the oldest
 *        identities while the set holds more than keep_at_most (one by
 *        one: the first record kept is trimmed).
 * @param[out] oldest_ms the first-seen time of the oldest identity kept,
 *        when the pass reached one (else 0); may be NULL.
 */
int tally__store_prune_events_ex(tally__store_t *s, int64_t before_ms, uint64_t keep_at_most,
                                 size_t max, size_t *deleted, int64_t *oldest_ms);

/** One producer's new dedup state. */
typedef struct tally__store_producer {
    const char *id;
    size_t id_len;
    tally__dedup_t state;
    int del;             /**< 1: delete the producer's record instead (state unused) */
    int64_t last_seen_s; /**< unix seconds of its latest batch; 0: not recorded */
} tally__store_producer_t;

/**
 * @brief Merge hourly and monthly deltas and write producer states in one
 *        durable write transaction: all of it is committed, or none.
 * @note Puts sorted by (series id, period), with series of unknown id
 *       last, make this an order of magnitude faster (LIMITS.md): every
 *       record of a page is then merged while the page is dirty once.
 * @return 0, TALLY_EMAPFULL (nothing written; grow or wait), TALLY_ESTORE.
 */
int tally__store_commit(tally__store_t *s, const tally__store_put_t *hourly, size_t nh,
                        const tally__store_put_t *monthly, size_t nm,
                        const tally__store_producer_t *producers, size_t np);

/** @brief tally__store_commit() of the puts a source yields. Same order, same results. */
int tally__store_commit_src(tally__store_t *s, const tally__store_src_t *src,
                            const tally__store_producer_t *producers, size_t np);

/**
 * @brief Take the count of int64 overflows in committed merges since the
 *        last take, and reset it: a put's delta whose integer sum, added to
 *        the stored record's, passed int64 (rollup.h's overflow rule; the
 *        record goes on in double precision, flagged
 *        TALLY_ROLLUP_INT_OVERFLOW). One per overflowing merge, hourly and
 *        monthly records alike; merges of a commit that failed are not
 *        counted (the retry counts them).
 * @param series when not NULL (and cap > 0): receives the latest
 *        overflowing series as tally__series_text() ("(series id N)" when
 *        its put carried no key), "" when none.
 * @return the count, 0 when nothing overflowed.
 * @note The committing thread only.
 */
uint64_t tally__store_take_overflows(tally__store_t *s, char *series, size_t cap);

/**
 * @brief Grow the map to new_size bytes; waits for readers.
 * @return 0, TALLY_ESTORE, or (writing through the map) -errno when the
 *         disk cannot reserve the larger map: -ENOSPC for a full disk.
 *         The map is then unchanged.
 */
int tally__store_grow(tally__store_t *s, uint64_t new_size);

/**
 * @brief Free bytes on the filesystem holding the store (statvfs), or
 *        UINT64_MAX when it cannot be told.
 * @note LMDB reports a full disk as EIO from a short write: callers use
 *       this to tell "the disk is full" from other I/O errors.
 */
uint64_t tally__store_free_bytes(tally__store_t *s);

/** What tally__store_commit_grow() did on the way. */
typedef struct tally__store_grow_note {
    unsigned grows;    /**< times the map was grown */
    uint64_t map_size; /**< the map size after the last growth */
    int short_write;   /**< 1: LMDB's EIO was a short write on a full disk, returned as -ENOSPC */
} tally__store_grow_note_t;

/**
 * @brief tally__store_commit_src(), growing the map while it is full: the
 *        store's one policy for a full map and a full disk.
 *
 * A full map doubles, up to map_max, never asking for more than the disk has
 * free less a margin (16 MiB, or an eighth of a small disk): the map is
 * reserved on disk, so a growth that cannot be backed would take that space
 * from the rest of the system at every retry. LMDB reports a short write on a
 * full disk as EIO; with less than 4 MiB free it is returned as -ENOSPC.
 * Each growth is logged ("storage map grown map_size_bytes=N").
 * @return 0; TALLY_EMAPFULL at map_max (or when growing failed); -ENOSPC,
 *         -EDQUOT or -EFBIG when the disk cannot hold more; any error of
 *         tally__store_commit_src(). Nothing is committed on failure.
 */
int tally__store_commit_grow(tally__store_t *s, const tally__store_src_t *src,
                             const tally__store_producer_t *producers, size_t np,
                             uint64_t map_max, tally__store_grow_note_t *note);

/**
 * @brief Free and total bytes of the filesystem holding the store (statvfs).
 * @return 0, or -1 when they cannot be told.
 */
int tally__store_disk_bytes(tally__store_t *s, uint64_t *avail, uint64_t *total);

/** @brief Current map size and bytes in use (last page * page size). */
void tally__store_map_info(tally__store_t *s, uint64_t *map_size, uint64_t *used);

/** Called per rollup record; return non-zero to stop the scan with that value. */
typedef int (*tally__store_scan_cb)(void *ctx, const char *series, size_t series_len,
                                    int64_t period_s, const tally__rollup_t *r);

/**
 * @brief Visit the rollups of one namespace (or all, ns NULL) whose period
 *        starts in [from_s, to_s), within one read snapshot, in period
 *        order (and by series id within a period): one series' periods are
 *        NOT adjacent, so callers that fold per series keep a map.
 * @return 0, the callback's non-zero value, -ENOMEM, TALLY_ECORRUPT or
 *         TALLY_ESTORE.
 * @note series and r are valid during the callback only.
 */
int tally__store_scan(tally__store_t *s, int which, const char *ns, size_t ns_len, int64_t from_s,
                      int64_t to_s, tally__store_scan_cb cb, void *ctx);

/* ---- chunked reads --------------------------------------------------------
 * For reports over many series: each chunk of work opens its own short read
 * snapshot (tally__store_rd_begin), lists a bounded run of series keys
 * (tally__store_rd_series) and joins their records
 * (tally__store_rd_records), then ends it; the next chunk resumes after the
 * last key seen. No transaction lives long, so flushes keep reusing pages
 * and a map growth waits for one chunk at most (chunked readers also hold
 * off while a growth is waiting: the rwlock alone prefers readers). The
 * price: chunks may see different snapshots (a flush committed between two
 * chunks shows in the later one only). */

typedef struct tally__store_rd tally__store_rd_t;

/**
 * @brief Begin a read snapshot (takes the shared lock; waits first while a
 *        map growth is waiting). Pair with tally__store_rd_end() soon.
 * @return 0, -ENOMEM, TALLY_ESTORE.
 */
int tally__store_rd_begin(tally__store_t *s, tally__store_rd_t **out);

/** @brief End a snapshot from tally__store_rd_begin(). NULL is ignored. */
void tally__store_rd_end(tally__store_rd_t *rd);

/** Called per series key; non-zero stops with that value. key valid during the call. */
typedef int (*tally__store_series_cb)(void *ctx, const char *key, size_t len, uint32_t sid);

/**
 * @brief Visit, in key order, the series keys that start with prefix
 *        (plen 0: all) and come strictly after `after` (NULL: from the
 *        first), at most max of them.
 * @param[out] more 1 when it stopped at max with another key left.
 * @return 0, the callback's non-zero value, TALLY_ECORRUPT, TALLY_ESTORE.
 */
int tally__store_rd_series(tally__store_rd_t *rd, const char *prefix, size_t plen,
                           const char *after, size_t alen, size_t max, tally__store_series_cb cb,
                           void *ctx, int *more);

/** Called per record of tally__store_rd_records(): idx is the index of its id in sids. */
typedef int (*tally__store_record_cb)(void *ctx, size_t idx, int64_t period_s,
                                      const tally__rollup_t *r);

/**
 * @brief Visit the records (of `which`) of the series ids sids[0..n),
 *        sorted ascending without duplicates, whose period starts in
 *        [from_s, to_s), in period order.
 * @return 0, the callback's non-zero value, TALLY_ECORRUPT, TALLY_ESTORE.
 */
int tally__store_rd_records(tally__store_rd_t *rd, int which, const uint32_t *sids, size_t n,
                            int64_t from_s, int64_t to_s, tally__store_record_cb cb, void *ctx);

/** Called per producer. */
typedef int (*tally__store_producer_cb)(void *ctx, const char *id, size_t id_len,
                                        const tally__dedup_t *state);

/** Called per producer, with when it was last heard from (0: not recorded,
 *  as in stores written before tally recorded it). */
typedef int (*tally__store_producer_ex_cb)(void *ctx, const char *id, size_t id_len,
                                           const tally__dedup_t *state, int64_t last_seen_s);

/** @brief tally__store_producers() with last-seen times. */
int tally__store_producers_ex(tally__store_t *s, tally__store_producer_ex_cb cb, void *ctx);

/** @brief Visit every producer's committed state. */
int tally__store_producers(tally__store_t *s, tally__store_producer_cb cb, void *ctx);

/* ---- API objects ----------------------------------------------------------
 * Configuration and billing objects (quotas, plan transitions, subscriptions,
 * payment methods, invoices) live in the "objects" database as opaque values
 * (JSON text) under the key  kind 0x00 namespace 0x00 name. Writes go in
 * batches of operations committed in one transaction, so a multi-object
 * change (a plan transition) is all-or-nothing. Object writes and flushes
 * serialize on LMDB's writer lock; neither blocks readers. */

#define TALLY_OBJ_KEY_MAX 400

enum { TALLY_OBJ_PUT = 1, TALLY_OBJ_DEL = 2 };

typedef struct tally__obj_op {
    int op;           /**< TALLY_OBJ_PUT or TALLY_OBJ_DEL */
    const char *kind; /**< e.g. "quota", "transition" */
    const char *ns;   /**< namespace ("system" for tenant-wide) */
    const char *name;
    const void *value; /**< PUT: the bytes to store */
    size_t len;
    int must_exist;     /**< fail with TALLY_ENOTFOUND unless it exists */
    int must_not_exist; /**< fail with TALLY_EEXISTS if it exists */
} tally__obj_op_t;

/**
 * @brief Apply ops in one durable transaction: all or none.
 * @return 0, TALLY_ENOTFOUND / TALLY_EEXISTS (from the must_* checks; nothing
 *         written), TALLY_EINVAL (key too long), TALLY_EMAPFULL, TALLY_ESTORE.
 */
int tally__store_obj_write(tally__store_t *s, const tally__obj_op_t *ops, size_t n);

/**
 * @brief Read one object.
 * @param[out] value malloc'd copy (NUL-terminated, caller frees), len its length.
 * @return 0, TALLY_ENOTFOUND, TALLY_ESTORE.
 */
int tally__store_obj_get(tally__store_t *s, const char *kind, const char *ns, const char *name,
                         char **value, size_t *len);

/** Called per object of a listing; non-zero stops with that value. Valid during the call. */
typedef int (*tally__store_obj_cb)(void *ctx, const char *ns, const char *name, const void *value,
                                   size_t len);

/**
 * @brief Visit the objects of a kind, of one namespace (or every one, ns NULL),
 *        in (namespace, name) order, in one read snapshot.
 */
int tally__store_obj_list(tally__store_t *s, const char *kind, const char *ns,
                          tally__store_obj_cb cb, void *ctx);

/** @brief Copy the environment to dir (compacting), consistent while writers run. */
int tally__store_backup(tally__store_t *s, const char *dir);

/* ---- retention ----------------------------------------------------------- */

/**
 * @brief Delete hourly rollups whose period starts before before_s, at most
 *        max_records of them, in batches of a few hundred records, each
 *        batch its own durable write transaction (so a flush waiting for
 *        LMDB's writer lock waits for one batch, not the whole prune).
 *        Monthly rollups, producers and objects are never touched.
 * @param[out] deleted records deleted (also on failure: the batches that
 *        committed before it). *deleted < max_records means nothing older
 *        than before_s is left.
 * @return 0, TALLY_EMAPFULL (the batch that failed wrote nothing),
 *         TALLY_ECORRUPT, TALLY_ESTORE, TALLY_EINVAL (read-only store).
 * @note Writer-side: call it from the thread that commits (tallyd's
 *       aggregator); readers keep their snapshots.
 */
int tally__store_prune_hourly(tally__store_t *s, int64_t before_s, size_t max_records,
                              size_t *deleted);

/* ---- the store lock and offline operations ---------------------------------
 * A writable open takes an advisory lock, flock(LOCK_EX | LOCK_NB) on
 * DIR/tally.lock, and holds it until tally__store_close(). LMDB itself lets
 * several processes write one environment; this lock says "a tallyd owns
 * this store", so a second tallyd and the offline commands that replace
 * data.mdb (restore, compact) refuse instead of racing it. flock locks die
 * with the process, so a crashed tallyd leaves no stale lock. Read-only
 * opens (dump, backup) take no lock. */

/**
 * @brief Is the store in dir owned by a live writer (a tallyd)?
 * @return 1 when DIR/tally.lock is locked by any open file description
 *         (another process, or a writable open in this one), 0 when it is
 *         not or does not exist, -errno when it cannot be checked.
 * @note Only tells the present: use tally__store_lock() to act on it.
 */
int tally__store_locked(const char *dir);

/**
 * @brief Take the store lock of dir (creating dir and DIR/tally.lock when
 *        missing) for an offline operation.
 * @param[out] fd the lock's descriptor; pass it to tally__store_unlock().
 * @return 0, TALLY_EBUSY (a tallyd holds it), or -errno.
 */
int tally__store_lock(const char *dir, int *fd);

/** @brief Release a lock from tally__store_lock(). A negative fd is ignored. */
void tally__store_unlock(int fd);

/**
 * @brief Replace the store in dir with the backup in from_dir (its data.mdb),
 *        offline. Holds the store lock throughout; copies the backup into a
 *        temporary directory inside dir (so the same filesystem), checks that
 *        the copy opens as a tally store of this format, then rename(2)s it
 *        over DIR/data.mdb: a crash leaves the old store or the new one.
 * @param force replace a store that holds records.
 * @return 0; TALLY_EBUSY (a tallyd runs on dir); TALLY_EEXISTS (dir holds
 *         records and !force); -ENOENT (no from_dir/data.mdb);
 *         TALLY_ECORRUPT (the backup is not a tally store of this format);
 *         TALLY_EINVAL (from_dir is dir); -errno.
 */
int tally__store_restore(const char *from_dir, const char *dir, int force);

/**
 * @brief Compact the store in dir offline: write a compacted copy (LMDB's
 *        copy with MDB_CP_COMPACT) and, with out_dir NULL, rename(2) it over
 *        DIR/data.mdb; otherwise leave dir alone and write out_dir/data.mdb.
 * @param[out] before, after sizes of data.mdb before and of the copy (may be NULL).
 * @return 0; TALLY_EBUSY (a tallyd runs on dir); -ENOENT (no store in dir);
 *         -EEXIST (out_dir already holds a data.mdb); TALLY_ECORRUPT; -errno.
 */
int tally__store_compact(const char *dir, const char *out_dir, uint64_t *before, uint64_t *after);

/**
 * @brief Verify the store in dir offline, read-only, and write a report to
 *        report: every page of data.mdb (read from the file, not through
 *        LMDB: each page names itself, lies inside the store, belongs to
 *        one tree, holds its nodes inside it in key order; every tree's
 *        counts match its root record; free and used pages do not overlap),
 *        then, when the structure is sound, every record of every database
 *        through LMDB cursors (series keys decode and ids are dense and
 *        unique, rollup keys decode and name known series at hour or month
 *        starts, rollup, producer, identity and meta values have their
 *        sizes, objects are JSON), and finally data.mdb against tally.id.
 *        Safe while a tallyd runs: it reads one snapshot. Lines start with
 *        "DAMAGE", "note" or "ok"; the last is "result: ...".
 * @return 0 when the store is sound (notes allowed), TALLY_ECORRUPT when
 *         damage was found, -ENOENT when there is no store in dir (and no
 *         marker saying there was one), or another negative code when it
 *         could not be checked.
 * @note LMDB keeps no checksums: a change inside a record that keeps its
 *       format (a flipped bit in a sum) cannot be seen by any check.
 */
int tally__store_check(const char *dir, FILE *report);

#endif
