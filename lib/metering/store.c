/* store.c — LMDB behind tally__store: environment, named databases, flush commits, snapshot scans.
 */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <lmdb.h>

#include "evset.h"
#include "log.h"
#include "store.h"
#include "timeutil.h"

/* 6: rollup keys are (series id, period); series strings live once in "series" */
#define STORE_FORMAT 6

/* Rollup keys are (period, series id), 12 bytes (rollup.h): a flush
 * rewrites the current hour and month of its series, and those records sit
 * together on few pages, whatever history the store holds. */
#define IDKEY_LEN TALLY_ROLLUP_KEY_LEN

/* Bytes of the random store id in "meta" and DIR/tally.id. */
#define STORE_ID_LEN 16

/* DIR/tally.id, the store's identity outside data.mdb (see "the store's
 * identity" below). */
typedef struct marker {
    int present; /* the file exists and parses */
    uint8_t id[STORE_ID_LEN];
    uint64_t gen, txnid;
    int data; /* the store has held records */
} marker_t;

/* Puts asked of a tally__store_src_t at a time. */
#define CHUNK 256

/* A commit learns the ids of series it resolved from their strings; they
 * are handed to the caller only when the commit succeeds. */
typedef struct learned {
    uint32_t *dst;
    uint32_t sid1;
} learned_t;

struct tally__store {
    MDB_env *env;
    MDB_dbi hourly, monthly, series, producers, meta, objects;
    /* the HTTP door's exactly-once set: an append-only log of the
     * identities each flush committed, record number -> (identity,
     * first-seen ms) x n; and the same in memory for lookups */
    MDB_dbi evlog;
    int has_ev; /* it exists (a read-only open of an older store may lack it) */
    uint64_t ev_next_rec;  /* the next record's number */
    tally__evset_t evset;  /* writer: the committing thread, under evlock */
    pthread_rwlock_t evlock;
    /* producer id -> unix seconds of its latest batch, so idle producers
     * can be dropped across restarts (beside "producers", whose records an
     * older tallyd reads, so their size stays) */
    MDB_dbi prodseen;
    int has_prodseen;
    uint32_t next_sid; /* ids are dense: the next one is the "series" count */
    learned_t *learn;
    size_t nlearn, cap_learn;
    /* a commit's puts, one chunk at a time (tally__store_src_t) */
    tally__store_put_t *chunk_puts;
    tally__rollup_t *chunk_deltas;
    int readonly;
    int writemap; /* MDB_WRITEMAP over a map reserved on disk */
    int lockfd;   /* DIR/tally.lock held with flock(LOCK_EX) by a writable open; -1 */
    /* int64 overflows of stored records' sums in merges (rollup.h's rule):
     * of the open commit, then of committed ones until taken; with the
     * latest overflowing series as text */
    uint64_t ovf_txn, ovf_done;
    char ovf_txn_text[TALLY_SERIES_TEXT_MAX], ovf_done_text[TALLY_SERIES_TEXT_MAX];
    /* shared: any transaction; exclusive: mdb_env_set_mapsize */
    pthread_rwlock_t lock;
    /* identity (writable opens): DIR/tally.id is rewritten at open, at the
     * first commit that gives the store data, and at close */
    char *dir;
    uint8_t id[STORE_ID_LEN];
    uint64_t gen;
    int marked_data; /* atomic: tally.id says data=1 */
    int id_fresh;    /* the id is new: written by identity_bump() */
    pthread_mutex_t mark_mu;
    tally__ratelimit_t rl_marker;
    /* 1 while tally__store_grow() waits for or holds the exclusive lock:
     * chunked readers (tally__store_rd_begin) hold off, so that the
     * reader-preferring rwlock cannot starve a growth (atomic) */
    int grow_waiting;
};

static void
put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t
get_be64(const void *vp)
{
    const uint8_t *p = vp;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* The one place LMDB's codes become ours. */
static int
map_err(int rc)
{
    switch (rc) {
    case MDB_SUCCESS:
        return 0;
    case MDB_MAP_FULL:
        return TALLY_EMAPFULL;
    case MDB_NOTFOUND:
        return TALLY_ENOTFOUND;
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_CORRUPTED:
        return TALLY_ECORRUPT;
    default:
        if (rc > 0 && rc < 4096)
            return -rc; /* errno from the OS: ENOSPC, EACCES, ... */
        return TALLY_ESTORE;
    }
}

static int
mkdir_p(const char *dir)
{
    char tmp[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp)
        return -ENAMETOOLONG;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
                return -errno;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int series_id(tally__store_t *s, MDB_txn *txn, uint32_t *next, const char *series,
                     uint32_t len, uint32_t *sid);

/* Format 5 keyed rollups by the series string: rewrite one rollup
 * database to (series id, period) keys through a scratch database, naming
 * series in string order. Runs inside the open's write txn: all or nothing. */
static int
upgrade_rollups(tally__store_t *s, MDB_txn *txn, MDB_dbi dbi, uint32_t *next, size_t *moved)
{
    MDB_dbi tmp;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    unsigned char key[IDKEY_LEN];
    int rc = mdb_dbi_open(txn, "upgrade.tmp", MDB_CREATE, &tmp);
    if (rc)
        return rc;
    if ((rc = mdb_cursor_open(txn, dbi, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const unsigned char *b = k.mv_data;
        if (k.mv_size < 9 + 4 || k.mv_size - 9 > TALLY_SERIES_KEY_MAX || b[k.mv_size - 9] != 0) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t u = 0;
        for (size_t i = 0; i < 8; i++)
            u = u << 8 | b[k.mv_size - 8 + i];
        uint32_t sid;
        if ((rc = series_id(s, txn, next, k.mv_data, (uint32_t)(k.mv_size - 9), &sid)) != 0)
            break;
        tally__rollup_key(key, sid, (int64_t)(u ^ (1ull << 63)));
        MDB_val nk = {IDKEY_LEN, key};
        if ((rc = mdb_put(txn, tmp, &nk, &v, 0)) != 0)
            break;
        (*moved)++;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_drop(txn, dbi, 0)) != 0 || (rc = mdb_cursor_open(txn, tmp, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        if ((rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND)) != 0)
            break;
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    return mdb_drop(txn, tmp, 1);
}

/* Allocate the data file's blocks up to size: with MDB_WRITEMAP, a write
 * to a page the disk has no block for is SIGBUS when the disk is full.
 * Bytes below keep are LMDB's (or reserved already). A failed call gives
 * back what it took: ext4 and xfs keep the blocks of a failed fallocate,
 * which would leave the disk full for everyone else. */
static int
reserve(tally__store_t *s, uint64_t size, uint64_t keep)
{
    int fd, rc = 0;
    struct rlimit rl;
    struct stat st;
    /* past RLIMIT_FSIZE the kernel would also send SIGXFSZ */
    if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && size > rl.rlim_cur)
        return -EFBIG;
    if (mdb_env_get_fd(s->env, &fd) != 0 || fstat(fd, &st) != 0)
        return TALLY_ESTORE;
    while (fallocate(fd, 0, 0, (off_t)size) != 0) {
        if (errno != EINTR) {
            rc = -errno;
            break;
        }
    }
    if (rc != 0 && size > keep) {
        (void)fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)keep,
                        (off_t)(size - keep));
        struct stat now;
        if (fstat(fd, &now) == 0 && now.st_size > st.st_size)
            (void)ftruncate(fd, st.st_size);
    }
    return rc;
}

/* Whether a block fallocate reserved stays writable on dir's filesystem:
 * on copy-on-write ones (btrfs, ZFS) an overwrite needs a new block, so a
 * reservation does not rule out SIGBUS on a full disk. */
static int
reservation_holds(const char *dir)
{
    struct statfs st;
    if (statfs(dir, &st) != 0)
        return 0;
    switch ((unsigned long)st.f_type) {
    case EXT4_SUPER_MAGIC: /* also ext2 and ext3 */
    case XFS_SUPER_MAGIC:
    case TMPFS_MAGIC:
        return 1;
    default:
        return 0;
    }
}

/* mdb_env_set_mapsize, reserving the disk first when writing through the map. */
static int
resize(tally__store_t *s, uint64_t size)
{
    int rc;
    if (s->writemap) {
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        if ((rc = reserve(s, size, info.me_mapsize)) != 0)
            return rc;
    }
    return map_err(mdb_env_set_mapsize(s->env, size));
}

static int identity_precheck(const char *dir, unsigned oflags, marker_t *m);
static int identity_txn(tally__store_t *s, MDB_txn *txn, const char *dir, const marker_t *m);
static int identity_bump(tally__store_t *s);
static void identity_save(tally__store_t *s);
static void identity_mark_data(tally__store_t *s);
static int identity_rewrite(const char *dir);

/* LMDB aborts the process when it meets a page that cannot be (its
 * assertions trust the pages): say in our log what that means first. */
static void
lmdb_assert(MDB_env *env, const char *msg)
{
    const char *path = NULL;
    mdb_env_get_path(env, &path);
    tally__log_error("the store is damaged: LMDB met an impossible page and stops the process "
                     "(%s). Run tallyctl check on the store, then restore a backup dir=%s",
                     msg, path ? path : "?");
}

static int
env_open(tally__store_t *s, const char *dir, uint64_t map_size_bytes, unsigned flags)
{
    int rc;
    if ((rc = map_err(mdb_env_create(&s->env))) != 0)
        return rc;
    mdb_env_set_assert(s->env, lmdb_assert);
    mdb_env_set_maxdbs(s->env, 32);
    mdb_env_set_maxreaders(s->env, 256);
    if (map_size_bytes && (rc = map_err(mdb_env_set_mapsize(s->env, map_size_bytes))) != 0)
        return rc;
    if ((rc = mdb_env_open(s->env, dir, flags, 0640)) != 0) {
        if (!(flags & MDB_WRITEMAP)) /* the caller retries without it */
            tally__log_error("cannot open store dir=%s err=\"%s\"", dir, mdb_strerror(rc));
        return map_err(rc);
    }
    return 0;
}

int
tally__store_open(const char *dir, uint64_t map_size_bytes, int readonly, tally__store_t **out)
{
    return tally__store_open_ex(dir, map_size_bytes, readonly ? TALLY_STORE_RDONLY : 0, out);
}

int
tally__store_writemap(const tally__store_t *s)
{
    return s->writemap;
}

/* The HTTP door's exactly-once set (at the end of this file). */
static int ev_start(tally__store_t *s, const char *dir);
static int ev_set_reserve(tally__store_t *s, size_t n);
static int ev_log_append(tally__store_t *s, MDB_txn *txn, const tally__store_evkey_t *ev, size_t n,
                         uint64_t *recs);
static void ev_set_append(tally__store_t *s, const tally__store_evkey_t *ev, size_t n,
                          uint64_t recs);

int
tally__store_open_ex(const char *dir, uint64_t map_size_bytes, unsigned oflags,
                     tally__store_t **out)
{
    int rc;
    MDB_txn *txn = NULL;
    int readonly = (oflags & TALLY_STORE_RDONLY) != 0;
    marker_t mk = {0};
    tally__store_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->readonly = readonly;
    s->lockfd = -1;
    pthread_rwlock_init(&s->lock, NULL);
    pthread_mutex_init(&s->mark_mu, NULL);
    pthread_rwlock_init(&s->evlock, NULL);
    tally__evset_init(&s->evset);
    if (!readonly && (rc = mkdir_p(dir)) != 0) {
        tally__log_error("cannot create storage directory dir=%s err=\"%s\"", dir,
                         tally_strerror(rc));
        goto fail;
    }
    if (!readonly) {
        /* a few tries: tally__store_locked() probes by taking the lock for
         * an instant, and a daemon starting then should not fail */
        for (int i = 0; (rc = tally__store_lock(dir, &s->lockfd)) == TALLY_EBUSY && i < 10; i++)
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
        if (rc) {
            if (rc == TALLY_EBUSY)
                tally__log_error("store is in use by another process (tallyd or tallyctl restore/"
                                 "compact hold %s/tally.lock) dir=%s",
                                 dir, dir);
            goto fail;
        }
        /* under the lock: nothing replaces data.mdb while we look */
        if ((rc = identity_precheck(dir, oflags, &mk)) != 0)
            goto fail;
    }
    /* NOTLS: read transactions are not tied to threads (HTTP workers,
     * tools). Durability is LMDB's default: every commit is synced, because
     * an ack promises the events are on disk. */
    unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0);
    int writemap = !readonly && (oflags & TALLY_STORE_WRITEMAP);
    if (writemap && !reservation_holds(dir)) {
        tally__log_warn("the store's filesystem cannot promise that reserved blocks stay "
                        "writable (only ext2/3/4, xfs and tmpfs can); using LMDB's copy mode, "
                        "which holds a malloc'd copy of every page a flush writes dir=%s",
                        dir);
        writemap = 0;
    }
    rc = env_open(s, dir, map_size_bytes, flags | (writemap ? MDB_WRITEMAP : 0));
    if (rc && !writemap)
        goto fail;
    if (writemap) {
        /* LMDB has sized the file to the map (sparse: that succeeds on a
         * full disk) and written nothing through it yet: reserve it now,
         * before the first write txn */
        const char *why = "LMDB cannot open it to write through the map";
        MDB_envinfo info = {0};
        if (rc == 0) {
            MDB_stat st;
            mdb_env_info(s->env, &info);
            mdb_env_stat(s->env, &st);
            s->writemap = 1;
            why = "the disk cannot hold the whole map";
            rc = reserve(s, info.me_mapsize, ((uint64_t)info.me_last_pgno + 1) * st.ms_psize);
        }
        if (rc != 0) {
            tally__log_warn(
                "cannot write through the store's map (%s); using LMDB's copy mode, "
                "which holds a malloc'd copy of every page a flush writes dir=%s "
                "map_size_bytes=%llu err=\"%s\"",
                why, dir, (unsigned long long)(info.me_mapsize ? info.me_mapsize : map_size_bytes),
                tally_strerror(rc));
            s->writemap = 0;
            if (s->env)
                mdb_env_close(s->env);
            s->env = NULL;
            if ((rc = env_open(s, dir, map_size_bytes, flags)) != 0)
                goto fail;
        }
    }
    int sized_for_upgrade = 0;
again:
    if ((rc = map_err(mdb_txn_begin(s->env, NULL, readonly ? MDB_RDONLY : 0, &txn))) != 0)
        goto fail;
    unsigned dflags = readonly ? 0 : MDB_CREATE;
    if ((rc = map_err(mdb_dbi_open(txn, "hourly", dflags, &s->hourly))) != 0 ||
        (rc = map_err(mdb_dbi_open(txn, "monthly", dflags, &s->monthly))) != 0 ||
        (rc = map_err(mdb_dbi_open(txn, "producers", dflags, &s->producers))) != 0 ||
        (rc = map_err(mdb_dbi_open(txn, "meta", dflags, &s->meta))) != 0 ||
        (rc = map_err(mdb_dbi_open(txn, "objects", dflags, &s->objects))) != 0) {
        if (rc == TALLY_ENOTFOUND)
            rc = TALLY_ECORRUPT; /* read-only open of a store never written */
        goto fail;
    }
    MDB_val k = {7, "format"}, v;
    int grc = mdb_get(txn, s->meta, &k, &v);
    if (grc == MDB_SUCCESS) {
        uint32_t fmt;
        if (v.mv_size != sizeof fmt) {
            rc = TALLY_ECORRUPT;
            goto fail;
        }
        memcpy(&fmt, v.mv_data, sizeof fmt);
        if (fmt == 5 && !readonly && !sized_for_upgrade) {
            /* the upgrade holds the old tables, a scratch copy and the new
             * ones at once: make room for three times the data first (the
             * map can only be resized with no transaction open) */
            MDB_envinfo info;
            MDB_stat st;
            mdb_env_info(s->env, &info);
            mdb_env_stat(s->env, &st);
            uint64_t used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
            uint64_t need = 3 * used + (64u << 20);
            mdb_txn_abort(txn);
            txn = NULL;
            if (need > info.me_mapsize && (rc = resize(s, need)) != 0)
                goto fail;
            sized_for_upgrade = 1;
            goto again;
        }
        if (fmt == 5 && !readonly) {
            uint32_t next = 0;
            size_t moved = 0;
            if ((rc = mdb_dbi_open(txn, "series", MDB_CREATE, &s->series)) != 0 ||
                (rc = upgrade_rollups(s, txn, s->hourly, &next, &moved)) != 0 ||
                (rc = upgrade_rollups(s, txn, s->monthly, &next, &moved)) != 0) {
                tally__log_error("cannot upgrade store dir=%s from format 5 err=\"%s\"", dir,
                                 mdb_strerror(rc));
                rc = map_err(rc);
                goto fail;
            }
            fmt = STORE_FORMAT;
            v.mv_size = sizeof fmt;
            v.mv_data = &fmt;
            if ((rc = map_err(mdb_put(txn, s->meta, &k, &v, 0))) != 0)
                goto fail;
            tally__log_info(
                "store upgraded dir=%s from_format=5 to_format=%u series=%u records=%zu", dir,
                STORE_FORMAT, next, moved);
        } else if (fmt == 5) {
            tally__log_error("store dir=%s has format 5 (an older tallyd); start tallyd once to "
                             "upgrade it",
                             dir);
            rc = TALLY_ECORRUPT;
            goto fail;
        }
        if (fmt != STORE_FORMAT) {
            tally__log_error("store format mismatch dir=%s found=%u expected=%u", dir, fmt,
                             STORE_FORMAT);
            rc = TALLY_ECORRUPT;
            goto fail;
        }
    } else if (grc == MDB_NOTFOUND && !readonly) {
        uint32_t fmt = STORE_FORMAT;
        v.mv_size = sizeof fmt;
        v.mv_data = &fmt;
        if ((rc = map_err(mdb_put(txn, s->meta, &k, &v, 0))) != 0)
            goto fail;
    } else if (grc != MDB_NOTFOUND) {
        rc = map_err(grc);
        goto fail;
    }
    if ((rc = map_err(mdb_dbi_open(txn, "series", dflags, &s->series))) != 0) {
        if (rc == TALLY_ENOTFOUND)
            rc = TALLY_ECORRUPT;
        goto fail;
    }
    /* added without a format change: an older tallyd never opens it */
    if (mdb_dbi_open(txn, "evlog", dflags, &s->evlog) == 0)
        s->has_ev = 1;
    if (mdb_dbi_open(txn, "prodseen", dflags, &s->prodseen) == 0)
        s->has_prodseen = 1;
    MDB_stat ms;
    if ((rc = map_err(mdb_stat(txn, s->series, &ms))) != 0)
        goto fail;
    if (ms.ms_entries > TALLY_STORE_SERIES_MAX) {
        rc = TALLY_ECORRUPT;
        goto fail;
    }
    s->next_sid = (uint32_t)ms.ms_entries;
    if (!readonly && (rc = identity_txn(s, txn, dir, &mk)) != 0)
        goto fail;
    if ((rc = map_err(mdb_txn_commit(txn))) != 0) {
        txn = NULL;
        goto fail;
    }
    if (!readonly) {
        txn = NULL;
        if (identity_bump(s) == 0) {
            if (!(s->dir = strdup(dir))) {
                rc = -ENOMEM;
                goto fail;
            }
            identity_save(s);
        }
    }
    txn = NULL;
    if (!readonly && s->has_ev && (rc = ev_start(s, dir)) != 0)
        goto fail;
    *out = s;
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (s->env)
        mdb_env_close(s->env);
    tally__store_unlock(s->lockfd);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->mark_mu);
    free(s->dir);
    pthread_rwlock_destroy(&s->evlock);
    tally__evset_fini(&s->evset);
    free(s);
    return rc;
}

void
tally__store_close(tally__store_t *s)
{
    if (!s)
        return;
    if (s->dir)
        identity_save(s); /* the last transaction id: a copy older than it is refused */
    mdb_env_close(s->env);
    tally__store_unlock(s->lockfd); /* after the environment: its last commit is on disk */
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->mark_mu);
    free(s->dir);
    pthread_rwlock_destroy(&s->evlock);
    tally__evset_fini(&s->evset);
    free(s->learn);
    free(s->chunk_puts);
    free(s->chunk_deltas);
    free(s);
}

/* The id of a series inside a write txn, given one when it is new. */
static int
series_id(tally__store_t *s, MDB_txn *txn, uint32_t *next, const char *series, uint32_t len,
          uint32_t *sid)
{
    MDB_val k = {len, (void *)series}, v;
    int rc = mdb_get(txn, s->series, &k, &v);
    if (rc == MDB_SUCCESS) {
        if (v.mv_size != sizeof *sid)
            return MDB_CORRUPTED;
        memcpy(sid, v.mv_data, sizeof *sid);
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        return rc;
    if (*next >= TALLY_STORE_SERIES_MAX)
        return MDB_MAP_FULL; /* ids are spent: as good as a full store */
    uint32_t id = *next;
    v.mv_size = sizeof id;
    v.mv_data = &id;
    if ((rc = mdb_put(txn, s->series, &k, &v, MDB_NOOVERWRITE)) != 0)
        return rc;
    (*next)++;
    *sid = id;
    return 0;
}

static void
learn(tally__store_t *s, uint32_t *dst, uint32_t sid1)
{
    if (s->nlearn == s->cap_learn) {
        size_t ncap = s->cap_learn ? s->cap_learn * 2 : 256;
        learned_t *nl = realloc(s->learn, ncap * sizeof *nl);
        if (!nl)
            return; /* only an optimisation: the caller asks again next time */
        s->learn = nl;
        s->cap_learn = ncap;
    }
    s->learn[s->nlearn++] = (learned_t){dst, sid1};
}

/* Merge the puts of one kind from src into dbi. Hourly (diffs != NULL):
 * each record's last_sum is its last, and the change of it is added to
 * diffs[month] for the monthly put of that series. Monthly (adds != NULL):
 * adds[i] joins put i's last_sum. */
static int
merge_puts(tally__store_t *s, MDB_txn *txn, MDB_dbi dbi, uint32_t *next,
           const tally__store_src_t *src, int which, double *diffs, size_t ndiffs,
           const double *adds, size_t nadds)
{
    MDB_cursor *cur = NULL;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    unsigned char key[IDKEY_LEN], last[IDKEY_LEN];
    /* Keys past the database's last one (a new period: time comes first)
     * are appended: LMDB then fills pages instead of splitting them in
     * half, and skips the lookup. */
    MDB_val lk, lv;
    int have_last = 0;
    rc = mdb_cursor_get(cur, &lk, &lv, MDB_LAST);
    if (rc == MDB_SUCCESS && lk.mv_size == IDKEY_LEN) {
        memcpy(last, lk.mv_data, IDKEY_LEN);
        have_last = 1;
    } else if (rc == MDB_SUCCESS) {
        rc = MDB_CORRUPTED;
    }
    if (rc == MDB_NOTFOUND)
        rc = MDB_SUCCESS; /* empty: every key appends */
    size_t i = 0;         /* index of the put among all of this kind */
    int on_record = 0;    /* the cursor is on the record of the last put */
    MDB_val nk;
    for (int first = 1; rc == MDB_SUCCESS; first = 0) {
        size_t got = src->fill(src->ctx, which, first, s->chunk_puts, s->chunk_deltas, CHUNK);
        if (got == 0)
            break;
        for (size_t j = 0; j < got && rc == MDB_SUCCESS; j++, i++) {
            const tally__store_put_t *put = &s->chunk_puts[j];
            uint32_t sid;
            if (put->sid1) {
                sid = put->sid1 - 1;
                if (sid >= *next) {
                    rc = EINVAL; /* an id this store never gave out */
                    break;
                }
            } else {
                if (put->series_len > TALLY_SERIES_KEY_MAX || put->series_len == 0) {
                    rc = EINVAL;
                    break;
                }
                if ((rc = series_id(s, txn, next, put->series, put->series_len, &sid)) != 0)
                    break;
                if (put->learn)
                    learn(s, put->learn, sid + 1);
            }
            tally__rollup_key(key, sid, put->period_s);
            MDB_val k = {IDKEY_LEN, key}, v;
            tally__rollup_t r, d = *put->delta;
            double old_last = 0;
            if (adds && i < nadds)
                d.last_sum += adds[i];
            size_t vsize = diffs ? TALLY_ROLLUP_HOURLY_SIZE : sizeof r;
            int append = !have_last || memcmp(key, last, IDKEY_LEN) > 0;
            if (append) {
                rc = MDB_NOTFOUND;
            } else if (on_record && (rc = mdb_cursor_get(cur, &nk, &v, MDB_NEXT)) == 0 &&
                       nk.mv_size == IDKEY_LEN && memcmp(nk.mv_data, key, IDKEY_LEN) == 0) {
                /* the record after the last one: a steady flush rewrites a
                 * run of consecutive records, found without a search */
            } else {
                rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
            }
            on_record = 0;
            if (rc == MDB_SUCCESS && v.mv_size == vsize) {
                memcpy(&r, v.mv_data, vsize);
                if (diffs)
                    r.last_sum = r.last;
                old_last = r.last;
                if (tally__rollup_merge(&r, &d)) {
                    s->ovf_txn++;
                    if (put->series)
                        tally__series_text(put->series, put->series_len, s->ovf_txn_text,
                                           sizeof s->ovf_txn_text);
                    else
                        snprintf(s->ovf_txn_text, sizeof s->ovf_txn_text, "(series id %u)", sid);
                }
                if (diffs)
                    r.last_sum = r.last;
                v.mv_size = vsize;
                v.mv_data = &r;
                rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
                on_record = rc == MDB_SUCCESS;
            } else if (rc == MDB_NOTFOUND) {
                r = d;
                if (diffs)
                    r.last_sum = r.last;
                v.mv_size = vsize;
                v.mv_data = &r;
                rc = mdb_cursor_put(cur, &k, &v, append ? MDB_APPEND : 0);
                on_record = rc == MDB_SUCCESS; /* LMDB leaves the cursor on it */
                if (rc == MDB_SUCCESS && append) {
                    memcpy(last, key, IDKEY_LEN);
                    have_last = 1;
                }
            } else if (rc == MDB_SUCCESS) {
                rc = MDB_CORRUPTED;
            }
            if (rc == MDB_SUCCESS && diffs && put->month_plus1 && put->month_plus1 <= ndiffs)
                diffs[put->month_plus1 - 1] += r.last - old_last;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

/* A tally__store_src_t over two arrays. */
typedef struct array_src {
    const tally__store_put_t *p[2];
    size_t n[2], pos[2];
} array_src_t;

static size_t
array_fill(void *ctx, int which, int first, tally__store_put_t *puts, tally__rollup_t *deltas,
           size_t cap)
{
    array_src_t *a = ctx;
    (void)deltas;
    if (first)
        a->pos[which] = 0;
    size_t k = a->n[which] - a->pos[which];
    if (k > cap)
        k = cap;
    if (k == 0)
        return 0;
    memcpy(puts, a->p[which] + a->pos[which], k * sizeof *puts);
    a->pos[which] += k;
    return k;
}

int
tally__store_commit(tally__store_t *s, const tally__store_put_t *hourly, size_t nh,
                    const tally__store_put_t *monthly, size_t nm,
                    const tally__store_producer_t *producers, size_t np)
{
    array_src_t a = {{hourly, monthly}, {nh, nm}, {0, 0}};
    tally__store_src_t src = {array_fill, &a, nh, nm};
    return tally__store_commit_src(s, &src, producers, np);
}

int
tally__store_commit_src(tally__store_t *s, const tally__store_src_t *src,
                        const tally__store_producer_t *producers, size_t np)
{
    MDB_txn *txn = NULL;
    int rc;
    size_t nm = src->nm;
    if (!s->chunk_puts) {
        s->chunk_puts = malloc(CHUNK * sizeof *s->chunk_puts);
        s->chunk_deltas = malloc(CHUNK * sizeof *s->chunk_deltas);
        if (!s->chunk_puts || !s->chunk_deltas) {
            free(s->chunk_puts);
            free(s->chunk_deltas);
            s->chunk_puts = NULL;
            s->chunk_deltas = NULL;
            return map_err(ENOMEM);
        }
    }
    pthread_rwlock_rdlock(&s->lock);
    if (src->nev && (rc = ev_set_reserve(s, src->nev)) != 0)
        goto out;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto out;
    double *diffs = nm ? calloc(nm, sizeof *diffs) : NULL;
    if (nm && !diffs) {
        rc = ENOMEM;
        mdb_txn_abort(txn);
        goto out;
    }
    uint32_t next = s->next_sid;
    s->nlearn = 0;
    s->ovf_txn = 0;
    rc = merge_puts(s, txn, s->hourly, &next, src, TALLY_STORE_HOURLY,
                    diffs ? diffs : (double[1]){0}, nm, NULL, 0);
    if (rc == 0)
        rc = merge_puts(s, txn, s->monthly, &next, src, TALLY_STORE_MONTHLY, NULL, 0, diffs, nm);
    free(diffs);
    if (rc)
        goto abort;
    for (size_t i = 0; i < np; i++) {
        MDB_val k = {producers[i].id_len, (void *)producers[i].id};
        MDB_val v = {sizeof producers[i].state, (void *)&producers[i].state};
        if (producers[i].del) {
            if ((rc = mdb_del(txn, s->producers, &k, NULL)) == MDB_NOTFOUND)
                rc = 0;
            if (rc == 0 && s->has_prodseen &&
                (rc = mdb_del(txn, s->prodseen, &k, NULL)) == MDB_NOTFOUND)
                rc = 0;
            if (rc)
                goto abort;
            continue;
        }
        if ((rc = mdb_put(txn, s->producers, &k, &v, 0)) != 0)
            goto abort;
        if (producers[i].last_seen_s && s->has_prodseen) {
            uint8_t t[8];
            put_be64(t, (uint64_t)producers[i].last_seen_s);
            MDB_val tv = {sizeof t, t};
            if ((rc = mdb_put(txn, s->prodseen, &k, &tv, 0)) != 0)
                goto abort;
        }
    }
    uint64_t ev_recs = 0;
    if (src->nev && (rc = ev_log_append(s, txn, src->ev, src->nev, &ev_recs)) != 0)
        goto abort;
    if ((rc = mdb_txn_commit(txn)) == 0) {
        identity_mark_data(s);
        if (src->nev)
            ev_set_append(s, src->ev, src->nev, ev_recs);
        s->next_sid = next;
        for (size_t i = 0; i < s->nlearn; i++)
            *s->learn[i].dst = s->learn[i].sid1;
        if (s->ovf_txn) {
            s->ovf_done += s->ovf_txn;
            memcpy(s->ovf_done_text, s->ovf_txn_text, sizeof s->ovf_done_text);
        }
    }
    goto out;
abort:
    mdb_txn_abort(txn);
out:
    if (s->cap_learn > 4096) {
        /* a flush that named many series: do not keep its list */
        free(s->learn);
        s->learn = NULL;
        s->cap_learn = 0;
    }
    s->nlearn = 0;
    pthread_rwlock_unlock(&s->lock);
    return map_err(rc);
}

uint64_t
tally__store_take_overflows(tally__store_t *s, char *series, size_t cap)
{
    uint64_t n = s->ovf_done;
    if (series && cap)
        snprintf(series, cap, "%s", n ? s->ovf_done_text : "");
    s->ovf_done = 0;
    return n;
}

int
tally__store_grow(tally__store_t *s, uint64_t new_size)
{
    __atomic_store_n(&s->grow_waiting, 1, __ATOMIC_RELEASE);
    pthread_rwlock_wrlock(&s->lock);
    int rc = resize(s, new_size);
    pthread_rwlock_unlock(&s->lock);
    __atomic_store_n(&s->grow_waiting, 0, __ATOMIC_RELEASE);
    return rc;
}

/* Growing a map reserved on disk: leave this much of the disk free (or an
 * eighth of a smaller disk), and grow by at least this much. */
#define GROW_DISK_MARGIN (16ull << 20)
#define GROW_MIN_STEP (1ull << 20)
/* Below this much free space, LMDB's EIO is a short write on a full disk. */
#define SHORT_WRITE_FREE (4ull << 20)

/* One doubling of a full map (see tally__store_commit_grow): 0 grown, 1
 * cannot (at map_max, or the store refused), or -ENOSPC/-EDQUOT/-EFBIG. */
static int
grow_full_map(tally__store_t *s, uint64_t max, uint64_t *nsize_out)
{
    uint64_t size, used, avail, total;
    tally__store_map_info(s, &size, &used);
    if (max <= size)
        return 1;
    uint64_t nsize = size * 2 > max ? max : size * 2;
    if (tally__store_writemap(s) && tally__store_disk_bytes(s, &avail, &total) == 0) {
        uint64_t margin = total / 8 < GROW_DISK_MARGIN ? total / 8 : GROW_DISK_MARGIN;
        uint64_t room = avail > margin ? (avail - margin) & ~(GROW_MIN_STEP - 1) : 0;
        if (nsize - size > room && room < GROW_MIN_STEP)
            return -ENOSPC;
        if (nsize - size > room)
            nsize = size + room;
    }
    int rc = tally__store_grow(s, nsize);
    if (rc == -ENOSPC || rc == -EDQUOT || rc == -EFBIG)
        return rc;
    if (rc != 0)
        return 1;
    *nsize_out = nsize;
    return 0;
}

int
tally__store_commit_grow(tally__store_t *s, const tally__store_src_t *src,
                         const tally__store_producer_t *producers, size_t np, uint64_t map_max,
                         tally__store_grow_note_t *note)
{
    int rc = 0;
    memset(note, 0, sizeof *note);
    /* a doubling per try: 8 take a map from its smallest to far past any disk */
    for (int attempt = 0; attempt < 8; attempt++) {
        rc = tally__store_commit_src(s, src, producers, np);
        if (rc != TALLY_EMAPFULL)
            break;
        int grc = grow_full_map(s, map_max, &note->map_size);
        if (grc < 0)
            rc = grc; /* the disk cannot hold a larger map: say so */
        if (grc != 0)
            break;
        note->grows++;
        tally__log_info("storage map grown map_size_bytes=%llu",
                        (unsigned long long)note->map_size);
    }
    if (rc == -EIO && tally__store_free_bytes(s) < SHORT_WRITE_FREE) {
        rc = -ENOSPC;
        note->short_write = 1;
    }
    return rc;
}

int
tally__store_disk_bytes(tally__store_t *s, uint64_t *avail, uint64_t *total)
{
    const char *path = NULL;
    struct statvfs st;
    if (mdb_env_get_path(s->env, &path) != 0 || !path || statvfs(path, &st) != 0)
        return -1;
    *avail = (uint64_t)st.f_bavail * st.f_frsize;
    *total = (uint64_t)st.f_blocks * st.f_frsize;
    return 0;
}

uint64_t
tally__store_free_bytes(tally__store_t *s)
{
    uint64_t avail, total;
    return tally__store_disk_bytes(s, &avail, &total) == 0 ? avail : UINT64_MAX;
}

void
tally__store_map_info(tally__store_t *s, uint64_t *map_size, uint64_t *used)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    if (map_size)
        *map_size = info.me_mapsize;
    if (used)
        *used = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

/* A read snapshot with a cursor on dbi; pair with read_end(). Holds the
 * shared lock so a map resize waits for it. */
static int
read_begin(tally__store_t *s, MDB_dbi dbi, MDB_txn **txn, MDB_cursor **cur)
{
    int rc;
    pthread_rwlock_rdlock(&s->lock);
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn)) != 0) {
        pthread_rwlock_unlock(&s->lock);
        return map_err(rc);
    }
    if ((rc = mdb_cursor_open(*txn, dbi, cur)) != 0) {
        mdb_txn_abort(*txn);
        pthread_rwlock_unlock(&s->lock);
        return map_err(rc);
    }
    return 0;
}

/* End a read: ret is the visit's result; rc the last cursor code (a
 * cursor error other than "no more" becomes the result). */
static int
read_end(tally__store_t *s, MDB_txn *txn, MDB_cursor *cur, int rc, int ret)
{
    if (ret == 0 && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        ret = map_err(rc);
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

/* One series of a scan's scope: its id and its key string (in the map). */
typedef struct scope_series {
    uint32_t sid, len;
    const char *s;
} scope_series_t;

static int
cmp_scope_sid(const void *a, const void *b)
{
    uint32_t x = ((const scope_series_t *)a)->sid, y = ((const scope_series_t *)b)->sid;
    return x < y ? -1 : x > y;
}

/* The first index in v[lo, n) whose id is >= sid. */
static size_t
scope_lower_bound(const scope_series_t *v, size_t lo, size_t n, uint32_t sid)
{
    size_t hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].sid < sid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int
tally__store_scan(tally__store_t *s, int which, const char *ns, size_t ns_len, int64_t from_s,
                  int64_t to_s, tally__store_scan_cb cb, void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *scur = NULL, *cur = NULL;
    int rc, ret = 0;
    char seek[TALLY_MAX_NS_LEN + 1];
    unsigned char key[IDKEY_LEN];
    scope_series_t *v = NULL;
    size_t n = 0, cap = 0;
    if (from_s >= to_s)
        return 0; /* nothing can start in an empty range */
    if (ns && ns_len > TALLY_MAX_NS_LEN)
        return 0; /* no such namespace can have been written */
    if ((rc = read_begin(s, s->series, &txn, &scur)) != 0)
        return rc;
    MDB_stat ms;
    if ((rc = mdb_stat(txn, s->series, &ms)) != 0 ||
        (rc = mdb_cursor_open(txn, which == TALLY_STORE_MONTHLY ? s->monthly : s->hourly, &cur))) {
        ret = map_err(rc);
        goto done;
    }
    /* the scope's series: a namespace's (a prefix of the series keys) sorted
     * by id, or all of them indexed by id (ids are dense below the count) */
    MDB_val sk, sv, k, val;
    if (ns) {
        memcpy(seek, ns, ns_len);
        seek[ns_len] = '\0';
        sk.mv_size = ns_len + 1;
        sk.mv_data = seek;
        rc = mdb_cursor_get(scur, &sk, &sv, MDB_SET_RANGE);
    } else {
        cap = ms.ms_entries;
        if (cap && !(v = calloc(cap, sizeof *v))) {
            ret = -ENOMEM;
            goto done;
        }
        rc = mdb_cursor_get(scur, &sk, &sv, MDB_FIRST);
    }
    for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(scur, &sk, &sv, MDB_NEXT)) {
        if (ns && (sk.mv_size <= ns_len || memcmp(sk.mv_data, ns, ns_len) != 0 ||
                   ((const char *)sk.mv_data)[ns_len] != '\0'))
            break; /* past the namespace */
        uint32_t sid;
        if (sv.mv_size != sizeof sid) {
            ret = TALLY_ECORRUPT;
            goto done;
        }
        memcpy(&sid, sv.mv_data, sizeof sid);
        if (!ns && sid >= cap) {
            ret = TALLY_ECORRUPT; /* ids are dense: one past the count is damage */
            goto done;
        }
        if (ns && n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            scope_series_t *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                ret = -ENOMEM;
                goto done;
            }
            v = nv;
            cap = ncap;
        }
        v[ns ? n : sid] = (scope_series_t){sid, (uint32_t)sk.mv_size, sk.mv_data};
        n++;
    }
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        ret = map_err(rc);
        goto done;
    }
    if (n == 0)
        goto done;
    if (ns)
        qsort(v, n, sizeof *v, cmp_scope_sid);
    size_t vsize =
        which == TALLY_STORE_MONTHLY ? sizeof(tally__rollup_t) : TALLY_ROLLUP_HOURLY_SIZE;
    /* Walk the periods in order. A whole-store scan reads every record of
     * the range; a namespace's joins each period's records with its ids,
     * seeking over the other namespaces' runs. */
    tally__rollup_key(key, ns ? v[0].sid : 0, from_s);
    k.mv_size = IDKEY_LEN;
    k.mv_data = key;
    rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
    int64_t period = INT64_MIN;
    size_t j = 0;
    while (rc == MDB_SUCCESS) {
        uint32_t ksid;
        int64_t kp;
        if (tally__rollup_key_parse(k.mv_data, k.mv_size, &ksid, &kp) != 0) {
            ret = TALLY_ECORRUPT;
            break;
        }
        if (kp >= to_s)
            break;
        const scope_series_t *hit = NULL;
        if (!ns) {
            if (ksid >= n || !v[ksid].s) {
                ret = TALLY_ECORRUPT; /* a record of a series never named */
                break;
            }
            hit = &v[ksid];
        } else {
            if (kp != period) {
                period = kp;
                j = 0;
            }
            if (j < n && v[j].sid < ksid) /* j is n after the last of ours matched */
                j = scope_lower_bound(v, j, n, ksid);
            if (j == n) {
                /* none of ours is left in this period: on to the next one */
                if (kp == INT64_MAX)
                    break;
                tally__rollup_key(key, v[0].sid, kp + 1);
            } else if (v[j].sid != ksid) {
                tally__rollup_key(key, v[j].sid, kp); /* skip others' records */
            } else {
                hit = &v[j++];
            }
            if (!hit) {
                k.mv_size = IDKEY_LEN;
                k.mv_data = key;
                rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
                continue;
            }
        }
        if (val.mv_size != vsize) {
            ret = TALLY_ECORRUPT;
            break;
        }
        tally__rollup_t r;
        memcpy(&r, val.mv_data, vsize);
        if (which != TALLY_STORE_MONTHLY)
            r.last_sum = r.last;
        if ((ret = cb(ctx, hit->s, hit->len, kp, &r)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
    }
    if (ret == 0 && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        ret = map_err(rc);
done:
    free(v);
    if (cur)
        mdb_cursor_close(cur);
    return read_end(s, txn, scur, MDB_SUCCESS, ret);
}

int
tally__store_producers_ex(tally__store_t *s, tally__store_producer_ex_cb cb, void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    int rc, ret = 0;
    if ((rc = read_begin(s, s->producers, &txn, &cur)) != 0)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
        tally__dedup_t d;
        int64_t seen = 0;
        MDB_val tv;
        if (v.mv_size != sizeof d) {
            ret = TALLY_ECORRUPT;
            break;
        }
        memcpy(&d, v.mv_data, sizeof d);
        if (s->has_prodseen && mdb_get(txn, s->prodseen, &k, &tv) == 0 && tv.mv_size == 8)
            seen = (int64_t)get_be64(tv.mv_data);
        if ((ret = cb(ctx, k.mv_data, k.mv_size, &d, seen)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    return read_end(s, txn, cur, rc, ret);
}

/* tally__store_producers() through the _ex walk: the callback without the time */
struct producers_plain {
    tally__store_producer_cb cb;
    void *ctx;
};

static int
producers_plain_cb(void *ctx, const char *id, size_t id_len, const tally__dedup_t *state,
                   int64_t last_seen_s)
{
    struct producers_plain *pp = ctx;
    (void)last_seen_s;
    return pp->cb(pp->ctx, id, id_len, state);
}

int
tally__store_producers(tally__store_t *s, tally__store_producer_cb cb, void *ctx)
{
    struct producers_plain pp = {cb, ctx};
    return tally__store_producers_ex(s, producers_plain_cb, &pp);
}

int
tally__store_backup(tally__store_t *s, const char *dir)
{
    if (!s || !dir)
        return TALLY_EINVAL;
    int rc = mkdir_p(dir);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&s->lock);
    rc = mdb_env_copy2(s->env, dir, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&s->lock);
    return map_err(rc);
}

/* ---- API objects ----------------------------------------------------------- */

static int
obj_key(char *buf, const char *kind, const char *ns, const char *name, size_t *len)
{
    size_t kl = strlen(kind), nl = ns ? strlen(ns) : 0, ml = name ? strlen(name) : 0;
    if (kl == 0 || kl + nl + ml + 2 > TALLY_OBJ_KEY_MAX)
        return TALLY_EINVAL;
    memcpy(buf, kind, kl);
    buf[kl] = '\0';
    memcpy(buf + kl + 1, ns ? ns : "", nl);
    buf[kl + 1 + nl] = '\0';
    memcpy(buf + kl + 2 + nl, name ? name : "", ml);
    *len = kl + nl + ml + 2;
    return 0;
}

int
tally__store_obj_write(tally__store_t *s, const tally__obj_op_t *ops, size_t n)
{
    MDB_txn *txn = NULL;
    int rc;
    char key[TALLY_OBJ_KEY_MAX];
    pthread_rwlock_rdlock(&s->lock);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        pthread_rwlock_unlock(&s->lock);
        return map_err(rc);
    }
    int ret = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        size_t klen;
        if ((ret = obj_key(key, ops[i].kind, ops[i].ns, ops[i].name, &klen)) != 0)
            break;
        MDB_val k = {klen, key}, v;
        if (ops[i].must_exist || ops[i].must_not_exist) {
            rc = mdb_get(txn, s->objects, &k, &v);
            if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
                ret = map_err(rc);
                break;
            }
            if (ops[i].must_exist && rc == MDB_NOTFOUND)
                ret = TALLY_ENOTFOUND;
            else if (ops[i].must_not_exist && rc == MDB_SUCCESS)
                ret = TALLY_EEXISTS;
            if (ret)
                break;
        }
        if (ops[i].op == TALLY_OBJ_PUT) {
            v.mv_size = ops[i].len;
            v.mv_data = (void *)ops[i].value;
            rc = mdb_put(txn, s->objects, &k, &v, 0);
        } else {
            rc = mdb_del(txn, s->objects, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = ops[i].must_exist ? MDB_NOTFOUND : MDB_SUCCESS;
        }
        if (rc)
            ret = map_err(rc);
    }
    if (ret) {
        mdb_txn_abort(txn);
    } else if ((ret = map_err(mdb_txn_commit(txn))) == 0) {
        identity_mark_data(s);
    }
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

int
tally__store_obj_get(tally__store_t *s, const char *kind, const char *ns, const char *name,
                     char **value, size_t *len)
{
    MDB_txn *txn = NULL;
    char key[TALLY_OBJ_KEY_MAX];
    size_t klen;
    int rc = obj_key(key, kind, ns, name, &klen);
    if (rc)
        return rc;
    pthread_rwlock_rdlock(&s->lock);
    if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0) {
        pthread_rwlock_unlock(&s->lock);
        return map_err(rc);
    }
    MDB_val k = {klen, key}, v;
    rc = mdb_get(txn, s->objects, &k, &v);
    int ret = map_err(rc);
    if (rc == MDB_SUCCESS) {
        char *copy = malloc(v.mv_size + 1);
        if (!copy) {
            ret = -ENOMEM;
        } else {
            memcpy(copy, v.mv_data, v.mv_size);
            copy[v.mv_size] = '\0';
            *value = copy;
            if (len)
                *len = v.mv_size;
        }
    }
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->lock);
    return ret;
}

int
tally__store_obj_list(tally__store_t *s, const char *kind, const char *ns, tally__store_obj_cb cb,
                      void *ctx)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    char prefix[TALLY_OBJ_KEY_MAX];
    size_t plen;
    int rc;
    /* prefix: kind\0 or kind\0ns\0 */
    if ((rc = obj_key(prefix, kind, ns, NULL, &plen)) != 0)
        return rc;
    if (!ns)
        plen = strlen(kind) + 1;
    if ((rc = read_begin(s, s->objects, &txn, &cur)) != 0)
        return rc;
    MDB_val k = {plen, prefix}, v;
    int ret = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    while (rc == MDB_SUCCESS) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        const char *kp = k.mv_data;
        const char *nsp = kp + strlen(kind) + 1;
        const char *z = memchr(nsp, 0, k.mv_size - (size_t)(nsp - kp));
        if (!z) {
            ret = TALLY_ECORRUPT;
            break;
        }
        char nsbuf[128], namebuf[TALLY_OBJ_KEY_MAX];
        size_t nsl = (size_t)(z - nsp), nl = k.mv_size - (size_t)(z + 1 - kp);
        if (nsl >= sizeof nsbuf || nl >= sizeof namebuf) {
            ret = TALLY_ECORRUPT;
            break;
        }
        memcpy(nsbuf, nsp, nsl);
        nsbuf[nsl] = '\0';
        memcpy(namebuf, z + 1, nl);
        namebuf[nl] = '\0';
        if ((ret = cb(ctx, nsbuf, namebuf, v.mv_data, v.mv_size)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    return read_end(s, txn, cur, rc, ret);
}

/* ---- retention ------------------------------------------------------------- */

/* Records deleted per write transaction: small enough that a flush waiting
 * for LMDB's writer lock waits a few milliseconds at most. */
#define PRUNE_BATCH 256

int
tally__store_prune_hourly(tally__store_t *s, int64_t before_s, size_t max_records, size_t *deleted)
{
    /* keys are time first: what goes is a prefix of the database, deleted
     * from the front in batches so no transaction grows large */
    int ret = 0, end = 0;
    *deleted = 0;
    if (s->readonly)
        return TALLY_EINVAL;
    while (!end && ret == 0 && *deleted < max_records) {
        size_t budget = max_records - *deleted, n = 0;
        if (budget > PRUNE_BATCH)
            budget = PRUNE_BATCH;
        MDB_txn *txn = NULL;
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        pthread_rwlock_rdlock(&s->lock);
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc) {
            pthread_rwlock_unlock(&s->lock);
            return map_err(rc);
        }
        if ((rc = mdb_cursor_open(txn, s->hourly, &cur)) != 0) {
            mdb_txn_abort(txn);
            pthread_rwlock_unlock(&s->lock);
            return map_err(rc);
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == MDB_SUCCESS && n < budget) {
            uint32_t sid;
            int64_t period;
            if (tally__rollup_key_parse(k.mv_data, k.mv_size, &sid, &period) != 0) {
                ret = TALLY_ECORRUPT;
                break;
            }
            if (period >= before_s) {
                end = 1;
                break;
            }
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            n++;
            /* after a delete the cursor already sits on the successor;
             * MDB_NEXT returns it without stepping over it */
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            end = 1;
        else if (ret == 0 && rc != MDB_SUCCESS)
            ret = map_err(rc);
        if (ret == 0 && n > 0) {
            ret = map_err(mdb_txn_commit(txn));
            if (ret == 0)
                *deleted += n;
        } else {
            mdb_txn_abort(txn);
        }
        pthread_rwlock_unlock(&s->lock);
    }
    return ret;
}

/* ---- the store lock and offline operations -------------------------------- */

static int
join_path(char *buf, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(buf, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

int
tally__store_lock(const char *dir, int *fd)
{
    char path[4096];
    int rc;
    *fd = -1;
    if ((rc = mkdir_p(dir)) != 0 || (rc = join_path(path, sizeof path, dir, "tally.lock")) != 0)
        return rc;
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (f < 0)
        return -errno;
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(f);
        return e == EWOULDBLOCK ? TALLY_EBUSY : -e;
    }
    *fd = f;
    return 0;
}

void
tally__store_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing the last descriptor of the open file releases the flock */
}

int
tally__store_locked(const char *dir)
{
    char path[4096];
    int rc = join_path(path, sizeof path, dir, "tally.lock");
    if (rc)
        return rc;
    /* read-only and never created: probing changes nothing on disk */
    int f = open(path, O_RDONLY | O_CLOEXEC);
    if (f < 0)
        return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
    rc = 0;
    if (flock(f, LOCK_EX | LOCK_NB) != 0)
        rc = errno == EWOULDBLOCK ? 1 : -errno;
    close(f);
    return rc;
}

static int
fsync_path(const char *path, int dir)
{
    int f = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDWR) | O_CLOEXEC);
    if (f < 0)
        return -errno;
    int rc = fsync(f) != 0 ? -errno : 0;
    close(f);
    return rc;
}

/* Copy a file to a new one (O_EXCL), synced. */
static int
copy_file(const char *from, const char *to)
{
    int rc = 0, in = -1, out = -1;
    char *buf = malloc(1 << 20);
    if (!buf)
        return -ENOMEM;
    if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0 ||
        (out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
        rc = -errno;
        goto out;
    }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = -errno;
            goto out;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0) {
                rc = -errno;
                goto out;
            }
            off += w;
        }
    }
    if (fsync(out) != 0)
        rc = -errno;
out:
    if (out >= 0 && close(out) != 0 && rc == 0)
        rc = -errno;
    if (in >= 0)
        close(in);
    if (rc && out >= 0)
        unlink(to);
    free(buf);
    return rc;
}

/* Records (rollups, producers, objects) in the store in dir; 0 when there is
 * no data.mdb. */
static int
count_records(const char *dir, uint64_t *n)
{
    char path[4096];
    struct stat st;
    int rc;
    *n = 0;
    if ((rc = join_path(path, sizeof path, dir, "data.mdb")) != 0)
        return rc;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? 0 : -errno;
    if (st.st_size == 0)
        return 0; /* emptied: nothing an LMDB reader could open */
    tally__store_t *s = NULL;
    if ((rc = tally__store_open(dir, 0, 1, &s)) != 0 || !s)
        return rc ? rc : TALLY_ESTORE;
    MDB_txn *txn = NULL;
    if ((rc = map_err(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn))) == 0) {
        MDB_dbi dbis[] = {s->hourly, s->monthly, s->series, s->producers, s->objects};
        for (size_t i = 0; i < sizeof dbis / sizeof dbis[0] && rc == 0; i++) {
            MDB_stat ms;
            if ((rc = map_err(mdb_stat(txn, dbis[i], &ms))) == 0)
                *n += ms.ms_entries;
        }
        mdb_txn_abort(txn);
    }
    tally__store_close(s);
    return rc;
}

/* Remove a temporary directory of ours: the files LMDB may have left, then
 * the directory. */
static void
remove_tmpdir(const char *tmp)
{
    char path[4096];
    if (join_path(path, sizeof path, tmp, "data.mdb") == 0)
        unlink(path);
    if (join_path(path, sizeof path, tmp, "lock.mdb") == 0)
        unlink(path);
    if (join_path(path, sizeof path, tmp, "tally.lock") == 0)
        unlink(path);
    if (join_path(path, sizeof path, tmp, "tally.id") == 0)
        unlink(path);
    rmdir(tmp);
}

/* The format a tally store in dir says it has; 0 when it says nothing. */
static uint32_t
store_format(const char *dir)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    uint32_t fmt = 0;
    if (mdb_env_create(&env) != 0)
        return 0;
    mdb_env_set_maxdbs(env, 32);
    MDB_val k = {7, "format"}, v;
    if (mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0640) == 0 &&
        mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0 &&
        mdb_dbi_open(txn, "meta", 0, &meta) == 0 && mdb_get(txn, meta, &k, &v) == 0 &&
        v.mv_size == sizeof fmt)
        memcpy(&fmt, v.mv_data, sizeof fmt);
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return fmt;
}

/* Check that the store in tmp opens as a tally store of this format (or
 * of the one before, which it upgrades), then rename its data.mdb over
 * dir's and sync dir. */
static int
validate_and_swap(const char *tmp, const char *dir)
{
    char from[4096], to[4096];
    tally__store_t *t = NULL;
    int rc;
    if ((rc = join_path(from, sizeof from, tmp, "data.mdb")) != 0 ||
        (rc = join_path(to, sizeof to, dir, "data.mdb")) != 0)
        return rc;
    if (store_format(tmp) == 5)
        rc = tally__store_open(tmp, 0, 0, &t); /* a backup from an older tallyd: upgrade our copy */
    else
        rc = tally__store_open(tmp, 0, 1, &t);
    if (rc)
        return rc;
    tally__store_close(t);
    if (rename(from, to) != 0)
        return -errno;
    return fsync_path(dir, 1);
}

int
tally__store_restore(const char *from_dir, const char *dir, int force)
{
    char src[4096], tmp[4096], dst[4096];
    struct stat a, b;
    int rc, lfd = -1, made_tmp = 0;
    uint64_t n = 0;
    if ((rc = join_path(src, sizeof src, from_dir, "data.mdb")) != 0 ||
        (rc = join_path(tmp, sizeof tmp, dir, ".restore-XXXXXX")) != 0)
        return rc;
    if (stat(src, &a) != 0)
        return -errno;
    if ((rc = tally__store_lock(dir, &lfd)) != 0)
        return rc;
    if (stat(dir, &b) == 0 && stat(from_dir, &a) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        rc = TALLY_EINVAL; /* restoring a store onto itself */
        goto out;
    }
    rc = count_records(dir, &n);
    if (rc == TALLY_ECORRUPT) {
        n = 1; /* something that is not a store of ours: data all the same */
        rc = 0;
    }
    if (rc)
        goto out;
    if (n && !force) {
        rc = TALLY_EEXISTS;
        goto out;
    }
    /* inside dir: the same filesystem as dir/data.mdb, so rename(2) is atomic */
    if (!mkdtemp(tmp)) {
        rc = -errno;
        goto out;
    }
    made_tmp = 1;
    if ((rc = join_path(dst, sizeof dst, tmp, "data.mdb")) != 0 || (rc = copy_file(src, dst)) != 0)
        goto out;
    if ((rc = validate_and_swap(tmp, dir)) == 0)
        rc = identity_rewrite(dir); /* the marker names the restored store */
out:
    if (made_tmp)
        remove_tmpdir(tmp);
    tally__store_unlock(lfd);
    return rc;
}

int
tally__store_compact(const char *dir, const char *out_dir, uint64_t *before, uint64_t *after)
{
    char path[4096], tmp[4096], copy[4096];
    struct stat st;
    int rc, lfd = -1, made_tmp = 0;
    tally__store_t *s = NULL;
    if ((rc = join_path(path, sizeof path, dir, "data.mdb")) != 0 ||
        (rc = join_path(tmp, sizeof tmp, dir, ".compact-XXXXXX")) != 0)
        return rc;
    if (stat(path, &st) != 0)
        return -errno;
    if (before)
        *before = (uint64_t)st.st_size;
    if ((rc = tally__store_lock(dir, &lfd)) != 0)
        return rc;
    if (!out_dir) {
        if (!mkdtemp(tmp)) {
            rc = -errno;
            goto out;
        }
        made_tmp = 1;
    }
    const char *target = out_dir ? out_dir : tmp;
    if ((rc = tally__store_open(dir, 0, 1, &s)) != 0 || (rc = tally__store_backup(s, target)) != 0)
        goto out;
    tally__store_close(s);
    s = NULL;
    if ((rc = join_path(copy, sizeof copy, target, "data.mdb")) != 0 ||
        (rc = fsync_path(copy, 0)) != 0)
        goto out;
    if (after)
        *after = stat(copy, &st) == 0 ? (uint64_t)st.st_size : 0;
    if (!out_dir && (rc = validate_and_swap(tmp, dir)) == 0)
        rc = identity_rewrite(dir); /* a compacted copy starts LMDB's txn ids over */
out:
    tally__store_close(s);
    if (made_tmp)
        remove_tmpdir(tmp);
    tally__store_unlock(lfd);
    return rc;
}

/* ---- the HTTP door's exactly-once set ---------------------------------------
 *
 * Table "evlog" is an append-only log: each flush that commits HTTP events
 * appends, in its own transaction, records numbered in sequence (8-byte
 * big-endian keys, so every put is an append to the last page), each
 * holding up to EVREC_MAX entries of (16-byte identity, first-seen unix ms
 * as 8 bytes big-endian). Records stay small enough to sit inline in a
 * page: no overflow pages to find room for. Pruning deletes records from
 * the front, and trims the first when the set is over its count.
 *
 * Lookups never read the log: s->evset holds the same entries in the same
 * order in memory (evset.h), loaded from the log at open and appended to
 * after each commit. A store of an older tallyd kept the set in two
 * B-trees, "evseen" (identity -> ms) and "evtime" ((ms, identity) -> ""),
 * two random-key inserts per event; the first writable open moves them
 * into the log (ev_migrate). */

#define EVREC_ENTRY (TALLY_STORE_EVKEY_LEN + 8)
/* LMDB keeps a node inline up to about half a 4 KiB page: 8-byte node
 * header, 8-byte key and 84 x 24 = 2016 bytes of entries fit */
#define EVREC_MAX 84

static void
ev_entry_put(uint8_t *p, const tally__store_evkey_t *e)
{
    memcpy(p, e->key, TALLY_STORE_EVKEY_LEN);
    put_be64(p + TALLY_STORE_EVKEY_LEN, (uint64_t)e->seen_ms);
}

static int64_t
ev_entry_time(const uint8_t *p)
{
    return (int64_t)get_be64(p + TALLY_STORE_EVKEY_LEN);
}

/* Append n identities to the log as records from s->ev_next_rec on;
 * *recs says how many (the number moves on only once the txn commits). */
static int
ev_log_append(tally__store_t *s, MDB_txn *txn, const tally__store_evkey_t *ev, size_t n,
              uint64_t *recs)
{
    *recs = 0;
    if (!s->has_ev)
        return EINVAL;
    for (size_t i = 0; i < n; i += EVREC_MAX) {
        size_t m = n - i < EVREC_MAX ? n - i : EVREC_MAX;
        uint8_t kb[8];
        put_be64(kb, s->ev_next_rec + *recs);
        MDB_val k = {sizeof kb, kb}, v = {m * EVREC_ENTRY, NULL};
        int rc = mdb_put(txn, s->evlog, &k, &v, MDB_APPEND | MDB_RESERVE);
        if (rc)
            return rc;
        for (size_t j = 0; j < m; j++)
            ev_entry_put((uint8_t *)v.mv_data + j * EVREC_ENTRY, &ev[i + j]);
        (*recs)++;
    }
    return 0;
}

/* Room for n more identities in memory before the commit, so that the
 * appends after it cannot fail: a committed identity is always held. */
static int
ev_set_reserve(tally__store_t *s, size_t n)
{
    pthread_rwlock_wrlock(&s->evlock);
    int rc = tally__evset_reserve(&s->evset, n);
    pthread_rwlock_unlock(&s->evlock);
    return rc ? ENOMEM : 0;
}

/* After the commit: the identities join the set, in the log's order. */
static void
ev_set_append(tally__store_t *s, const tally__store_evkey_t *ev, size_t n, uint64_t recs)
{
    pthread_rwlock_wrlock(&s->evlock);
    for (size_t i = 0; i < n; i++) {
        int rc = tally__evset_append(&s->evset, ev[i].key, ev[i].seen_ms);
        (void)rc; /* tally__evset_reserve() made room */
    }
    s->ev_next_rec += recs;
    pthread_rwlock_unlock(&s->evlock);
}

/* Move an older tallyd's "evseen" and "evtime" into the log, in time order,
 * in one transaction, and drop them. An identity renewed after its window
 * left a stale evtime entry behind: only the entry whose time evseen holds
 * is moved. */
static int
ev_migrate_txn(tally__store_t *s, MDB_txn *txn, size_t *moved)
{
    MDB_dbi seen, tm;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint8_t buf[EVREC_MAX * EVREC_ENTRY];
    size_t m = 0;
    *moved = 0;
    int rc = mdb_dbi_open(txn, "evtime", 0, &tm);
    if (rc == MDB_NOTFOUND)
        return 0;
    int has_seen = (rc = mdb_dbi_open(txn, "evseen", 0, &seen)) == 0;
    if (rc && rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_cursor_open(txn, tm, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8 + TALLY_STORE_EVKEY_LEN) {
            rc = MDB_CORRUPTED;
            break;
        }
        const uint8_t *tk = k.mv_data;
        if (has_seen) {
            MDB_val ek = {TALLY_STORE_EVKEY_LEN, (void *)(tk + 8)}, ev;
            int g = mdb_get(txn, seen, &ek, &ev);
            if (g == MDB_NOTFOUND || (g == 0 && (ev.mv_size != 8 || memcmp(ev.mv_data, tk, 8) != 0)))
                continue; /* stale: its identity holds a newer time */
            if (g) {
                rc = g;
                break;
            }
        }
        memcpy(buf + m * EVREC_ENTRY, tk + 8, TALLY_STORE_EVKEY_LEN);
        memcpy(buf + m * EVREC_ENTRY + TALLY_STORE_EVKEY_LEN, tk, 8);
        if (++m == EVREC_MAX) {
            uint8_t kb[8];
            put_be64(kb, s->ev_next_rec++);
            MDB_val rk = {sizeof kb, kb}, rv = {m * EVREC_ENTRY, buf};
            if ((rc = mdb_put(txn, s->evlog, &rk, &rv, MDB_APPEND)) != 0)
                break;
            *moved += m;
            m = 0;
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    if (m) {
        uint8_t kb[8];
        put_be64(kb, s->ev_next_rec++);
        MDB_val rk = {sizeof kb, kb}, rv = {m * EVREC_ENTRY, buf};
        if ((rc = mdb_put(txn, s->evlog, &rk, &rv, MDB_APPEND)) != 0)
            return rc;
        *moved += m;
    }
    if ((rc = mdb_drop(txn, tm, 1)) != 0 || (has_seen && (rc = mdb_drop(txn, seen, 1)) != 0))
        return rc;
    return 0;
}

/* The number after the log's last record. */
static int
ev_last_rec(tally__store_t *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->evlog, &cur);
    if (rc)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        s->ev_next_rec = 0;
        return 0;
    }
    if (rc == 0 && k.mv_size != 8)
        rc = MDB_CORRUPTED;
    if (rc == 0)
        s->ev_next_rec = get_be64(k.mv_data) + 1;
    return rc;
}

static int
ev_migrate(tally__store_t *s, const char *dir)
{
    for (int attempt = 0;; attempt++) {
        MDB_txn *txn;
        size_t moved = 0;
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc == 0 && (rc = ev_last_rec(s, txn)) == 0 &&
            (rc = ev_migrate_txn(s, txn, &moved)) == 0) {
            if (moved == 0) {
                mdb_txn_abort(txn); /* nothing to move: write nothing */
                return 0;
            }
            rc = mdb_txn_commit(txn);
            txn = NULL;
        }
        if (txn)
            mdb_txn_abort(txn);
        if (rc == 0) {
            tally__log_info("store: HTTP event identities moved from evseen/evtime to the "
                            "append-only evlog dir=%s identities=%zu",
                            dir, moved);
            return 0;
        }
        if (rc == MDB_MAP_FULL && attempt == 0) {
            /* the log needs room before the old tables' pages are freed */
            MDB_envinfo info;
            mdb_env_info(s->env, &info);
            if ((rc = resize(s, info.me_mapsize + (info.me_mapsize >> 1))) == 0)
                continue;
            return rc;
        }
        tally__log_error("cannot move HTTP event identities to evlog dir=%s err=\"%s\"", dir,
                         mdb_strerror(rc));
        return map_err(rc);
    }
}

/* Rebuild the set in memory from the log. */
static int
ev_load(tally__store_t *s)
{
    MDB_txn *txn;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && (rc = mdb_cursor_open(txn, s->evlog, &cur)) != 0)
        mdb_txn_abort(txn);
    if (rc)
        return map_err(rc);
    /* size the set once: growing it step by step rehashes it each time */
    size_t total = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        total += v.mv_size / EVREC_ENTRY;
    if (rc == MDB_NOTFOUND && total && tally__evset_reserve(&s->evset, total) != 0)
        rc = ENOMEM;
    for (rc = rc == MDB_NOTFOUND ? mdb_cursor_get(cur, &k, &v, MDB_FIRST) : rc; rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t m = v.mv_size / EVREC_ENTRY;
        if (k.mv_size != 8 || m == 0 || v.mv_size % EVREC_ENTRY) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (tally__evset_reserve(&s->evset, m) != 0) {
            rc = ENOMEM;
            break;
        }
        for (size_t j = 0; j < m; j++) {
            const uint8_t *e = (const uint8_t *)v.mv_data + j * EVREC_ENTRY;
            (void)tally__evset_append(&s->evset, e, ev_entry_time(e));
        }
        s->ev_next_rec = get_be64(k.mv_data) + 1;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc != MDB_NOTFOUND) {
        tally__evset_fini(&s->evset);
        return map_err(rc);
    }
    return 0;
}

static int
ev_start(tally__store_t *s, const char *dir)
{
    int rc = ev_migrate(s, dir);
    if (rc == 0 && (rc = ev_load(s)) != 0)
        tally__log_error("cannot load HTTP event identities dir=%s err=\"%s\"", dir,
                         tally_strerror(rc));
    return rc;
}

int
tally__store_events_seen(tally__store_t *s, const tally__store_evkey_t *keys, size_t n,
                         int64_t since_ms, uint8_t *seen, uint64_t *count)
{
    memset(seen, 0, n);
    if (count)
        *count = 0;
    if (!s->has_ev)
        return 0;
    pthread_rwlock_rdlock(&s->evlock);
    for (size_t i = 0; i < n; i++) {
        int64_t t;
        seen[i] = tally__evset_get(&s->evset, keys[i].key, &t) && t >= since_ms;
    }
    if (count)
        *count = s->evset.live;
    pthread_rwlock_unlock(&s->evlock);
    return 0;
}

uint64_t
tally__store_events_count(tally__store_t *s)
{
    pthread_rwlock_rdlock(&s->evlock);
    uint64_t n = s->evset.live;
    pthread_rwlock_unlock(&s->evlock);
    return n;
}

int
tally__store_prune_events(tally__store_t *s, int64_t before_ms, size_t max, size_t *deleted)
{
    return tally__store_prune_events_ex(s, before_ms, UINT64_MAX, max, deleted, NULL);
}

int
tally__store_prune_events_ex(tally__store_t *s, int64_t before_ms, uint64_t keep_at_most,
                             size_t max, size_t *deleted, int64_t *oldest_ms)
{
    int ret = 0, end = 0;
    *deleted = 0;
    if (oldest_ms)
        *oldest_ms = 0;
    if (s->readonly)
        return TALLY_EINVAL;
    if (!s->has_ev)
        return 0;
    /* the log is in commit order, and so is the set: what goes is a prefix
     * of both, a whole record when its newest entry is older than the cut,
     * and single entries while the set holds more than keep_at_most */
    while (!end && ret == 0 && *deleted < max) {
        MDB_txn *txn = NULL;
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        size_t recs = 0, pos = 0; /* records changed; entries of the set that go */
        pthread_rwlock_rdlock(&s->lock);
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc == 0 && (rc = mdb_cursor_open(txn, s->evlog, &cur)) != 0)
            mdb_txn_abort(txn);
        if (rc) {
            pthread_rwlock_unlock(&s->lock);
            return map_err(rc);
        }
        pthread_rwlock_rdlock(&s->evlock);
        const tally__evset_t *set = &s->evset;
        uint64_t live = set->live;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == MDB_SUCCESS && recs < PRUNE_BATCH && *deleted + pos < max) {
            size_t m = v.mv_size / EVREC_ENTRY, drop = 0;
            const uint8_t *e = v.mv_data;
            /* the set mirrors the log: a record it does not start with
             * means they parted, and nothing is deleted */
            if (k.mv_size != 8 || m == 0 || v.mv_size % EVREC_ENTRY || pos + m > set->n ||
                memcmp(e, tally__evset_at(set, pos)->key, TALLY_STORE_EVKEY_LEN) != 0) {
                ret = TALLY_ECORRUPT;
                break;
            }
            int64_t newest = INT64_MIN;
            for (size_t j = 0; j < m; j++)
                if (ev_entry_time(e + j * EVREC_ENTRY) > newest)
                    newest = ev_entry_time(e + j * EVREC_ENTRY);
            while (drop < m && live > keep_at_most)
                live -= (uint64_t)tally__evset_is_live(set, pos + drop++);
            if (newest < before_ms)
                while (drop < m)
                    live -= (uint64_t)tally__evset_is_live(set, pos + drop++);
            if (drop == 0) {
                if (oldest_ms)
                    *oldest_ms = ev_entry_time(e);
                end = 1;
                break;
            }
            recs++;
            pos += drop;
            if (drop < m) {
                /* the count is met inside this record: keep its tail */
                uint8_t kb[8], tail[EVREC_MAX * EVREC_ENTRY];
                memcpy(kb, k.mv_data, sizeof kb);
                memcpy(tail, e + drop * EVREC_ENTRY, (m - drop) * EVREC_ENTRY);
                MDB_val tk = {sizeof kb, kb}, tv = {(m - drop) * EVREC_ENTRY, tail};
                if (oldest_ms)
                    *oldest_ms = ev_entry_time(tail);
                rc = mdb_cursor_put(cur, &tk, &tv, MDB_CURRENT);
                end = 1;
                break;
            }
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        pthread_rwlock_unlock(&s->evlock);
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            end = 1;
        else if (ret == 0 && rc != MDB_SUCCESS)
            ret = map_err(rc);
        if (ret == 0 && recs > 0) {
            if ((rc = mdb_txn_commit(txn)) != 0) {
                ret = map_err(rc);
            } else {
                pthread_rwlock_wrlock(&s->evlock);
                tally__evset_pop(&s->evset, pos);
                pthread_rwlock_unlock(&s->evlock);
                *deleted += pos;
            }
        } else {
            mdb_txn_abort(txn);
        }
        pthread_rwlock_unlock(&s->lock);
        if (recs == 0)
            end = 1;
    }
    return ret;
}

/* ---- the store's identity: DIR/tally.id ------------------------------------
 * LMDB starts a new, empty environment over a missing or empty data.mdb, so
 * without a record outside the data file a deleted or truncated store would
 * come back empty without a word. data.mdb's "meta" database holds a random
 * store id and a generation (bumped by every writable open); DIR/tally.id
 * repeats them with LMDB's last transaction id and whether the store has
 * held records. A writable open refuses a data.mdb that is missing or empty
 * while tally.id says the store held data, that is another store's, or that
 * is older than the one last opened here (a stale copy put in place by
 * hand). tallyctl restore and compact, which replace data.mdb on purpose,
 * rewrite tally.id. See docs/operations.md, "Store integrity". */

#define MARKER_NAME "tally.id"

static void
hex_id(const uint8_t id[STORE_ID_LEN], char out[2 * STORE_ID_LEN + 1])
{
    static const char hx[] = "0123456789abcdef";
    for (int i = 0; i < STORE_ID_LEN; i++) {
        out[2 * i] = hx[id[i] >> 4];
        out[2 * i + 1] = hx[id[i] & 15];
    }
    out[2 * STORE_ID_LEN] = '\0';
}

static int
unhex_id(const char *s, uint8_t id[STORE_ID_LEN])
{
    for (int i = 0; i < 2 * STORE_ID_LEN; i++) {
        char c = s[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            id[i / 2] = (uint8_t)(v << 4);
        else
            id[i / 2] |= (uint8_t)v;
    }
    return s[2 * STORE_ID_LEN] == '\0' ? 0 : -1;
}

/* Read DIR/tally.id: 0 with m->present 0 when there is none; TALLY_ECORRUPT
 * when it is there but not a marker of ours. */
static int
marker_read(const char *dir, marker_t *m)
{
    char path[4096], line[256];
    int rc, have_id = 0, have_gen = 0;
    memset(m, 0, sizeof *m);
    if ((rc = join_path(path, sizeof path, dir, MARKER_NAME)) != 0)
        return rc;
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        unsigned long long v;
        if (strncmp(line, "store_id=", 9) == 0) {
            have_id = unhex_id(line + 9, m->id) == 0;
        } else if (sscanf(line, "generation=%llu", &v) == 1) {
            m->gen = v;
            have_gen = 1;
        } else if (sscanf(line, "txnid=%llu", &v) == 1) {
            m->txnid = v;
        } else if (sscanf(line, "data=%llu", &v) == 1) {
            m->data = v != 0;
        }
    }
    fclose(f);
    if (!have_id || !have_gen)
        return TALLY_ECORRUPT;
    m->present = 1;
    return 0;
}

/* Write DIR/tally.id in one step (temporary file, fsync, rename, fsync dir). */
static int
marker_write(const char *dir, const marker_t *m)
{
    char path[4096], tmp[4096], hex[2 * STORE_ID_LEN + 1], when[32];
    int rc;
    if ((rc = join_path(path, sizeof path, dir, MARKER_NAME)) != 0 ||
        (rc = join_path(tmp, sizeof tmp, dir, MARKER_NAME ".tmp")) != 0)
        return rc;
    hex_id(m->id, hex);
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    FILE *f = fopen(tmp, "we");
    if (!f)
        return -errno;
    fprintf(f,
            "# tally.id: the identity of the store in this directory (docs/operations.md,\n"
            "# \"Store integrity\"). tallyd refuses to start when data.mdb is missing, empty,\n"
            "# another store's or older than this says. Delete this file (or start tallyd\n"
            "# once with --accept-empty-store) only to accept that on purpose.\n"
            "store_id=%s\ngeneration=%llu\ntxnid=%llu\ndata=%d\nwritten=%s\n",
            hex, (unsigned long long)m->gen, (unsigned long long)m->txnid, m->data ? 1 : 0,
            when);
    rc = fflush(f) != 0 || fsync(fileno(f)) != 0 ? -errno : 0;
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rc;
    }
    return fsync_path(dir, 1);
}

/* Before LMDB opens dir: a marker that says the store held data and a
 * data.mdb that is missing or empty (LMDB would start a new store over it). */
static int
identity_precheck(const char *dir, unsigned oflags, marker_t *m)
{
    char path[4096];
    struct stat st;
    int rc = marker_read(dir, m);
    if (rc == TALLY_ECORRUPT) {
        tally__log_error("store marker %s/" MARKER_NAME " is unreadable (no store_id or "
                         "generation); refusing to open the store. Check the directory; delete "
                         "the file to accept data.mdb as it is dir=%s",
                         dir, dir);
        return rc;
    }
    if (rc)
        return rc;
    if (!m->present || !m->data)
        return 0;
    if ((rc = join_path(path, sizeof path, dir, "data.mdb")) != 0)
        return rc;
    const char *what = NULL;
    if (stat(path, &st) != 0)
        what = errno == ENOENT ? "missing" : "unreadable";
    else if (st.st_size == 0)
        what = "empty (0 bytes)";
    if (!what)
        return 0;
    char hex[2 * STORE_ID_LEN + 1];
    hex_id(m->id, hex);
    if (oflags & TALLY_STORE_ACCEPT_EMPTY) {
        tally__log_warn("store data.mdb is %s although %s/" MARKER_NAME " says store %s held "
                        "data; starting a new, empty store as asked (--accept-empty-store) dir=%s",
                        what, dir, hex, dir);
        m->present = 0;
        return 0;
    }
    tally__log_error("store data.mdb is %s, but %s/" MARKER_NAME " says this directory held "
                     "store %s with data (generation %llu); refusing to start with an empty "
                     "store. Restore a backup (tallyctl restore), or start once with tallyd "
                     "--accept-empty-store (or delete " MARKER_NAME ") to begin a new, empty "
                     "store dir=%s",
                     what, dir, hex, (unsigned long long)m->gen, dir);
    return TALLY_ECORRUPT;
}

/* Inside the writable open's transaction: read (or give) the store its id,
 * compare it and the generation with the marker, bump the generation. */
static int
identity_txn(tally__store_t *s, MDB_txn *txn, const char *dir, const marker_t *m)
{
    MDB_val k = {8, "store_id"}, v;
    char hex[2 * STORE_ID_LEN + 1], mhex[2 * STORE_ID_LEN + 1];
    int rc = mdb_get(txn, s->meta, &k, &v), fresh = 0;
    hex_id(m->id, mhex);
    if (rc == MDB_SUCCESS && v.mv_size == STORE_ID_LEN) {
        memcpy(s->id, v.mv_data, STORE_ID_LEN);
    } else if (rc == MDB_NOTFOUND) {
        if (m->present && m->data) {
            tally__log_error("store data.mdb has no store id, but %s/" MARKER_NAME " says this "
                             "directory held store %s with data: data.mdb is not that store. "
                             "Restore a backup (tallyctl restore), or delete " MARKER_NAME
                             " to accept this data.mdb dir=%s",
                             dir, mhex, dir);
            return TALLY_ECORRUPT;
        }
        if (getrandom(s->id, STORE_ID_LEN, 0) != STORE_ID_LEN)
            return -errno;
        fresh = 1;
    } else {
        return rc ? map_err(rc) : TALLY_ECORRUPT;
    }
    MDB_val gk = {10, "generation"}, gv;
    uint64_t gen = 0;
    rc = mdb_get(txn, s->meta, &gk, &gv);
    if (rc == MDB_SUCCESS && gv.mv_size == 8)
        gen = get_be64(gv.mv_data);
    else if (rc != MDB_NOTFOUND)
        return rc ? map_err(rc) : TALLY_ECORRUPT;
    uint64_t txnid = mdb_txn_id(txn) - 1; /* the last committed */
    hex_id(s->id, hex);
    if (m->present && memcmp(m->id, s->id, STORE_ID_LEN) != 0 && m->data) {
        tally__log_error("store data.mdb is store %s, but %s/" MARKER_NAME " says this "
                         "directory held store %s: another store's data.mdb was put here. "
                         "Use tallyctl restore to replace a store, or delete " MARKER_NAME
                         " to accept this data.mdb dir=%s",
                         hex, dir, mhex, dir);
        return TALLY_ECORRUPT;
    }
    if (m->present && !fresh && memcmp(m->id, s->id, STORE_ID_LEN) == 0 &&
        (gen < m->gen || (gen == m->gen && txnid < m->txnid))) {
        tally__log_error("store data.mdb is older than the store last opened here "
                         "(generation %llu txn %llu; %s/" MARKER_NAME " says generation %llu "
                         "txn %llu): an old copy was put in place. Use tallyctl restore to go "
                         "back to a backup, or delete " MARKER_NAME " to accept it dir=%s",
                         (unsigned long long)gen, (unsigned long long)txnid, dir,
                         (unsigned long long)m->gen, (unsigned long long)m->txnid, dir);
        return TALLY_ECORRUPT;
    }
    s->gen = gen;
    s->id_fresh = fresh;
    /* does it hold anything? */
    MDB_dbi dbis[] = {s->hourly, s->monthly, s->series, s->producers, s->objects};
    uint64_t n = 0;
    for (size_t i = 0; i < sizeof dbis / sizeof dbis[0]; i++) {
        MDB_stat ms;
        if (mdb_stat(txn, dbis[i], &ms) == 0)
            n += ms.ms_entries;
    }
    s->marked_data = n > 0 || (m->present && m->data && !memcmp(m->id, s->id, STORE_ID_LEN));
    if (!m->present)
        tally__log_info("store marker written: %s/" MARKER_NAME " store_id=%s records=%llu",
                        dir, hex, (unsigned long long)n);
    return 0;
}

/* After the open: store a new id and the next generation in their own
 * transaction, which a map with no page to spare may refuse (a store
 * reopened with a map smaller than its data gets a map exactly that size;
 * tallyd grows it at its first flush): the open goes on without them, and
 * without a marker when the id could not be stored. */
static int
identity_bump(tally__store_t *s)
{
    MDB_txn *txn = NULL;
    uint8_t g[8];
    MDB_val k = {8, "store_id"}, v = {STORE_ID_LEN, s->id};
    MDB_val gk = {10, "generation"}, gv = {sizeof g, g};
    put_be64(g, s->gen + 1);
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc == 0 && s->id_fresh)
        rc = mdb_put(txn, s->meta, &k, &v, 0);
    if (rc == 0)
        rc = mdb_put(txn, s->meta, &gk, &gv, 0);
    if (rc == 0) {
        rc = mdb_txn_commit(txn);
    } else if (txn) {
        mdb_txn_abort(txn);
    }
    if (rc == 0) {
        s->gen++;
        s->id_fresh = 0;
        return 0;
    }
    const char *path = NULL;
    mdb_env_get_path(s->env, &path);
    tally__log_warn("cannot record the store's %s in data.mdb%s err=\"%s\" dir=%s",
                    s->id_fresh ? "id" : "generation",
                    s->id_fresh ? "; no marker until the next start" : "", mdb_strerror(rc),
                    path ? path : "?");
    return s->id_fresh ? map_err(rc) : 0;
}

/* Write the marker from the open store's state (writer side). */
static void
identity_save(tally__store_t *s)
{
    MDB_envinfo info;
    mdb_env_info(s->env, &info);
    marker_t m = {.present = 1, .gen = s->gen, .txnid = info.me_last_txnid,
                  .data = __atomic_load_n(&s->marked_data, __ATOMIC_ACQUIRE)};
    memcpy(m.id, s->id, STORE_ID_LEN);
    int rc = marker_write(s->dir, &m);
    if (rc) {
        uint32_t supp;
        if (tally__ratelimit_ok(&s->rl_marker, 1, 60000, &supp))
            tally__log_warn("cannot write the store marker %s/" MARKER_NAME "; a deleted "
                            "data.mdb would not be noticed err=\"%s\" suppressed=%u",
                            s->dir, tally_strerror(rc), supp);
    }
}

/* After a commit: the first one that gave the store data writes it down. */
static void
identity_mark_data(tally__store_t *s)
{
    if (!s->dir || __atomic_load_n(&s->marked_data, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&s->mark_mu);
    if (!s->marked_data) {
        __atomic_store_n(&s->marked_data, 1, __ATOMIC_RELEASE);
        identity_save(s);
    }
    pthread_mutex_unlock(&s->mark_mu);
}

/* After tallyctl restore or compact replaced DIR/data.mdb: the marker
 * describes the new data.mdb (removed when it has no id: an older tallyd's
 * backup, which the next writable open names). The store lock is held. */
static int
identity_rewrite(const char *dir)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi meta;
    marker_t m = {.present = 1};
    int rc, has_id = 0;
    char path[4096];
    if ((rc = mdb_env_create(&env)) != 0)
        return map_err(rc);
    mdb_env_set_maxdbs(env, 32);
    if ((rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0640)) == 0 &&
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0 &&
        (rc = mdb_dbi_open(txn, "meta", 0, &meta)) == 0) {
        MDB_val k = {8, "store_id"}, gk = {10, "generation"}, v;
        if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == STORE_ID_LEN) {
            memcpy(m.id, v.mv_data, STORE_ID_LEN);
            has_id = 1;
        }
        if (mdb_get(txn, meta, &gk, &v) == 0 && v.mv_size == 8)
            m.gen = get_be64(v.mv_data);
        m.txnid = mdb_txn_id(txn);
        static const char *const names[] = {"hourly", "monthly", "series", "producers",
                                            "objects"};
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            MDB_dbi d;
            MDB_stat ms;
            if (mdb_dbi_open(txn, names[i], 0, &d) == 0 && mdb_stat(txn, d, &ms) == 0 &&
                ms.ms_entries)
                m.data = 1;
        }
    }
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    if (rc)
        return map_err(rc);
    if (has_id)
        return marker_write(dir, &m);
    if ((rc = join_path(path, sizeof path, dir, MARKER_NAME)) != 0)
        return rc;
    return unlink(path) != 0 && errno != ENOENT ? -errno : fsync_path(dir, 1);
}

/* ---- offline check ------------------------------------------------------------
 * Two passes over one read snapshot. The first reads data.mdb's pages itself
 * (LMDB 0.9's on-disk layout below) and walks every tree from the meta page:
 * each page must name itself in its header, lie below the last page, belong
 * to one tree only, hold its nodes inside it in key order, and each tree's
 * counts must match its root record. LMDB trusts its pages (it has no
 * checksums), so a page of random bytes could send its cursor outside the
 * map; only a store whose structure is sound gets the second pass, LMDB
 * cursors over every record of every database, checking the formats this
 * version writes. */

#define L_PAGEHDR 16
#define L_NODEHDR 8
#define L_P_BRANCH 0x01
#define L_P_LEAF 0x02
#define L_P_OVERFLOW 0x04
#define L_P_LEAF2 0x20
#define L_F_BIGDATA 0x01
#define L_F_SUBDATA 0x02
#define L_F_DUPDATA 0x04
#define L_DB_INTEGERKEY 0x08
#define L_DB_REVERSEKEY 0x02
#define L_MAGIC 0xBEEFC0DEu
#define L_INVALID UINT64_MAX
#define L_DB_SIZE 48
#define CHECK_SHOW_MAX 40 /* problems printed; more are only counted */

typedef struct ldb {
    uint32_t pad;
    uint16_t flags, depth;
    uint64_t branch, leaf, overflow, entries, root;
} ldb_t;

typedef struct ckdb {
    char name[64];
    ldb_t db;
} ckdb_t;

typedef struct chk {
    FILE *out;
    int fd;
    uint32_t psize;
    uint64_t last_pg;
    uint8_t *seen; /* one bit a page */
    unsigned problems, notes;
    const char *where; /* the database being walked */
    uint64_t *freepg;
    size_t nfree, capfree;
    ckdb_t *dbs;
    size_t ndbs, capdbs;
    /* the walk of one tree */
    uint64_t t_branch, t_leaf, t_overflow, t_entries;
    unsigned t_depth;
    int main_db, free_db, intkey, unordered;
} chk_t;

__attribute__((format(printf, 2, 3))) static void
ck_problem(chk_t *ck, const char *fmt, ...)
{
    va_list ap;
    if (ck->problems++ >= CHECK_SHOW_MAX)
        return;
    fprintf(ck->out, "DAMAGE  %s: ", ck->where ? ck->where : "store");
    va_start(ap, fmt);
    vfprintf(ck->out, fmt, ap);
    va_end(ap);
    fputc('\n', ck->out);
}

__attribute__((format(printf, 2, 3))) static void
ck_note(chk_t *ck, const char *fmt, ...)
{
    va_list ap;
    ck->notes++;
    fprintf(ck->out, "note    %s: ", ck->where ? ck->where : "store");
    va_start(ap, fmt);
    vfprintf(ck->out, fmt, ap);
    va_end(ap);
    fputc('\n', ck->out);
}

static uint16_t
rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static uint32_t
rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t
rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void
ldb_decode(const uint8_t *p, ldb_t *d)
{
    d->pad = rd32(p);
    d->flags = rd16(p + 4);
    d->depth = rd16(p + 6);
    d->branch = rd64(p + 8);
    d->leaf = rd64(p + 16);
    d->overflow = rd64(p + 24);
    d->entries = rd64(p + 32);
    d->root = rd64(p + 40);
}

static int
ck_read(chk_t *ck, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(ck->fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

/* Mark page pgno as used; 0 when it was free to take. */
static int
ck_claim(chk_t *ck, uint64_t pgno, const char *what)
{
    if (pgno < 2 || pgno > ck->last_pg) {
        ck_problem(ck, "%s refers to page %llu, outside the store (pages 2..%llu)", what,
                   (unsigned long long)pgno, (unsigned long long)ck->last_pg);
        return -1;
    }
    if (ck->seen[pgno / 8] & (1u << (pgno % 8))) {
        ck_problem(ck, "page %llu is reached twice (%s)", (unsigned long long)pgno, what);
        return -1;
    }
    ck->seen[pgno / 8] |= (uint8_t)(1u << (pgno % 8));
    return 0;
}

/* LMDB's default order: bytes, then length. */
static int
ck_keycmp(const chk_t *ck, const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
    if (ck->intkey && al == bl && (al == 8 || al == 4))
        return al == 8 ? (rd64(a) > rd64(b)) - (rd64(a) < rd64(b))
                       : (rd32(a) > rd32(b)) - (rd32(a) < rd32(b));
    int c = memcmp(a, b, al < bl ? al : bl);
    return c ? c : (al > bl) - (al < bl);
}

static void ck_leaf_record(chk_t *ck, const uint8_t *key, size_t klen, const uint8_t *data,
                           size_t dlen, unsigned nflags);

static void
ck_page(chk_t *ck, uint64_t pgno, unsigned depth)
{
    char what[96];
    uint8_t *pg = NULL, *big = NULL;
    if (depth > 64) {
        ck_problem(ck, "tree deeper than 64 levels at page %llu", (unsigned long long)pgno);
        return;
    }
    if (!(pg = malloc(ck->psize))) {
        ck_problem(ck, "out of memory");
        return;
    }
    if (ck_read(ck, pg, ck->psize, pgno * ck->psize) != 0) {
        ck_problem(ck, "page %llu cannot be read (file shorter than the store says?)",
                   (unsigned long long)pgno);
        goto out;
    }
    uint64_t named = rd64(pg);
    uint16_t flags = rd16(pg + 10), lower = rd16(pg + 12), upper = rd16(pg + 14);
    if (named != pgno) {
        ck_problem(ck, "page %llu is overwritten: its header names page %llu (flags 0x%x)",
                   (unsigned long long)pgno, (unsigned long long)named, flags);
        goto out;
    }
    int branch = (flags & (L_P_BRANCH | L_P_LEAF | L_P_OVERFLOW)) == L_P_BRANCH;
    int leaf = (flags & (L_P_BRANCH | L_P_LEAF | L_P_OVERFLOW)) == L_P_LEAF;
    if (!branch && !leaf) {
        ck_problem(ck, "page %llu is neither a branch nor a leaf page (flags 0x%x)",
                   (unsigned long long)pgno, flags);
        goto out;
    }
    if (flags & L_P_LEAF2) {
        ck->t_leaf++;
        ck_note(ck, "page %llu holds fixed-size duplicates: not checked further",
                (unsigned long long)pgno);
        goto out;
    }
    if (lower < L_PAGEHDR || lower > upper || upper > ck->psize || (lower - L_PAGEHDR) % 2) {
        ck_problem(ck, "page %llu has impossible bounds (lower %u, upper %u)",
                   (unsigned long long)pgno, lower, upper);
        goto out;
    }
    unsigned n = (unsigned)(lower - L_PAGEHDR) / 2;
    if (n == 0) {
        ck_problem(ck, "page %llu holds no node", (unsigned long long)pgno);
        goto out;
    }
    if (branch) {
        ck->t_branch++;
    } else {
        ck->t_leaf++;
        if (ck->t_depth == 0)
            ck->t_depth = depth;
        else if (ck->t_depth != depth)
            ck_problem(ck, "leaf page %llu at depth %u, other leaves at %u",
                       (unsigned long long)pgno, depth, ck->t_depth);
    }
    const uint8_t *prev = NULL;
    size_t prevlen = 0;
    for (unsigned i = 0; i < n; i++) {
        unsigned off = rd16(pg + L_PAGEHDR + 2 * i);
        if (off < upper || off + L_NODEHDR > ck->psize || (off & 1)) {
            ck_problem(ck, "page %llu: node %u at offset %u lies outside its page",
                       (unsigned long long)pgno, i, off);
            goto out;
        }
        const uint8_t *node = pg + off;
        unsigned lo = rd16(node), hi = rd16(node + 2), nflags = rd16(node + 4);
        unsigned ksize = rd16(node + 6);
        if (off + L_NODEHDR + ksize > ck->psize) {
            ck_problem(ck, "page %llu: node %u's key runs past its page",
                       (unsigned long long)pgno, i);
            goto out;
        }
        const uint8_t *key = node + L_NODEHDR;
        if (!(branch && i == 0)) { /* a branch page's first key is implicit */
            if (prev && !ck->unordered && ck_keycmp(ck, prev, prevlen, key, ksize) >= 0) {
                ck_problem(ck, "page %llu: keys out of order at node %u",
                           (unsigned long long)pgno, i);
                goto out;
            }
            prev = key;
            prevlen = ksize;
        }
        if (branch) {
            uint64_t child = (uint64_t)lo | (uint64_t)hi << 16 | (uint64_t)nflags << 32;
            snprintf(what, sizeof what, "branch page %llu", (unsigned long long)pgno);
            if (ck_claim(ck, child, what) == 0)
                ck_page(ck, child, depth + 1);
            continue;
        }
        size_t dsize = (size_t)lo | (size_t)hi << 16;
        const uint8_t *data = key + ksize;
        if (nflags & L_F_BIGDATA) {
            if (off + L_NODEHDR + ksize + 8 > ck->psize) {
                ck_problem(ck, "page %llu: node %u runs past its page", (unsigned long long)pgno,
                           i);
                goto out;
            }
            uint64_t opg = rd64(data), npages = (L_PAGEHDR - 1 + dsize) / ck->psize + 1;
            uint8_t hdr[L_PAGEHDR];
            snprintf(what, sizeof what, "leaf page %llu's large value", (unsigned long long)pgno);
            if (opg + npages - 1 > ck->last_pg || opg + npages < opg) {
                ck_problem(ck, "%s: %llu overflow pages from page %llu pass the store's end",
                           what, (unsigned long long)npages, (unsigned long long)opg);
                goto out;
            }
            int bad = 0;
            for (uint64_t j = 0; j < npages && !bad; j++)
                bad = ck_claim(ck, opg + j, what) != 0;
            if (bad)
                goto out;
            ck->t_overflow += npages;
            if (ck_read(ck, hdr, sizeof hdr, opg * ck->psize) != 0 || rd64(hdr) != opg ||
                !(rd16(hdr + 10) & L_P_OVERFLOW) || rd32(hdr + 12) != npages) {
                ck_problem(ck, "%s: overflow page %llu is overwritten", what,
                           (unsigned long long)opg);
                goto out;
            }
            if ((ck->free_db || ck->main_db) && !(big = malloc(dsize ? dsize : 1))) {
                ck_problem(ck, "out of memory");
                goto out;
            }
            if (big && ck_read(ck, big, dsize, opg * ck->psize + L_PAGEHDR) != 0) {
                ck_problem(ck, "%s cannot be read", what);
                goto out;
            }
            data = big;
        } else if (off + L_NODEHDR + ksize + dsize > ck->psize) {
            ck_problem(ck, "page %llu: node %u's value runs past its page",
                       (unsigned long long)pgno, i);
            goto out;
        }
        ck->t_entries++;
        if (data)
            ck_leaf_record(ck, key, ksize, data, dsize, nflags);
        free(big);
        big = NULL;
    }
out:
    free(big);
    free(pg);
}

/* A record of the free list (page numbers to reuse) or of the main
 * database (the named databases). */
static void
ck_leaf_record(chk_t *ck, const uint8_t *key, size_t klen, const uint8_t *data, size_t dlen,
               unsigned nflags)
{
    if (ck->free_db) {
        uint64_t n = dlen >= 8 ? rd64(data) : 0;
        if (dlen < 8 || dlen % 8 || n != dlen / 8 - 1) {
            ck_problem(ck, "a free-list record is malformed (%zu bytes)", dlen);
            return;
        }
        if (ck->nfree + n > ck->capfree) {
            size_t ncap = (ck->nfree + n) * 2;
            uint64_t *nf = realloc(ck->freepg, ncap * sizeof *nf);
            if (!nf) {
                ck_problem(ck, "out of memory");
                return;
            }
            ck->freepg = nf;
            ck->capfree = ncap;
        }
        for (uint64_t i = 0; i < n; i++)
            ck->freepg[ck->nfree++] = rd64(data + 8 * (i + 1));
        return;
    }
    if (!ck->main_db)
        return;
    if (!(nflags & L_F_SUBDATA) || dlen != L_DB_SIZE) {
        ck_note(ck, "a record that is not a database (%.*s)", (int)(klen < 40 ? klen : 40),
                (const char *)key);
        return;
    }
    if (nflags & L_F_DUPDATA)
        return;
    if (ck->ndbs == ck->capdbs) {
        size_t ncap = ck->capdbs ? ck->capdbs * 2 : 16;
        ckdb_t *nd = realloc(ck->dbs, ncap * sizeof *nd);
        if (!nd) {
            ck_problem(ck, "out of memory");
            return;
        }
        ck->dbs = nd;
        ck->capdbs = ncap;
    }
    ckdb_t *d = &ck->dbs[ck->ndbs++];
    snprintf(d->name, sizeof d->name, "%.*s", (int)(klen < 63 ? klen : 63), (const char *)key);
    ldb_decode(data, &d->db);
}

/* Walk one tree and compare what it holds with its root record. */
static void
ck_tree(chk_t *ck, const char *name, const ldb_t *db, int main_db, int free_db)
{
    ck->where = name;
    ck->t_branch = ck->t_leaf = ck->t_overflow = ck->t_entries = 0;
    ck->t_depth = 0;
    ck->main_db = main_db;
    ck->free_db = free_db;
    ck->intkey = free_db || (db->flags & L_DB_INTEGERKEY);
    ck->unordered = (db->flags & L_DB_REVERSEKEY) != 0;
    unsigned before = ck->problems;
    if (db->root == L_INVALID) {
        if (db->entries || db->branch || db->leaf || db->overflow)
            ck_problem(ck, "empty tree whose record counts %llu entries",
                       (unsigned long long)db->entries);
    } else if (ck_claim(ck, db->root, "its root record") == 0) {
        ck_page(ck, db->root, 1);
        if (ck->problems == before &&
            (ck->t_entries != db->entries || ck->t_branch != db->branch ||
             ck->t_leaf != db->leaf || ck->t_overflow != db->overflow ||
             ck->t_depth != db->depth))
            ck_problem(ck,
                       "the tree holds %llu records in %llu+%llu+%llu pages at depth %u; "
                       "its record says %llu in %llu+%llu+%llu at depth %u",
                       (unsigned long long)ck->t_entries, (unsigned long long)ck->t_branch,
                       (unsigned long long)ck->t_leaf, (unsigned long long)ck->t_overflow,
                       ck->t_depth, (unsigned long long)db->entries,
                       (unsigned long long)db->branch, (unsigned long long)db->leaf,
                       (unsigned long long)db->overflow, db->depth);
    }
    uint64_t pages = db->branch + db->leaf + db->overflow;
    if (!main_db && !free_db && ck->problems == before)
        fprintf(ck->out, "ok      %s: %llu records, %llu pages, depth %u\n", name,
                (unsigned long long)db->entries, (unsigned long long)pages, db->depth);
    ck->where = NULL;
}

/* ---- the second pass: every record's format ---- */

typedef struct ckfmt {
    chk_t *ck;
    MDB_txn *txn;
    uint64_t nseries;
    uint8_t *sids; /* one bit per series id named */
} ckfmt_t;

static int
ck_get_dbi(ckfmt_t *f, const char *name, MDB_dbi *dbi)
{
    return mdb_dbi_open(f->txn, name, 0, dbi);
}

/* Visit every record of name with check(); counts and reports bad ones. */
static void
ck_records(ckfmt_t *f, const char *name,
           const char *(*check)(ckfmt_t *f, const MDB_val *k, const MDB_val *v))
{
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k, v;
    chk_t *ck = f->ck;
    ck->where = name;
    if (ck_get_dbi(f, name, &dbi) != 0) {
        ck->where = NULL;
        return; /* absent: reported by the caller when it must be there */
    }
    int rc = mdb_cursor_open(f->txn, dbi, &cur);
    uint64_t n = 0, bad = 0;
    for (rc = rc ? rc : mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == MDB_SUCCESS;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        n++;
        const char *why = check(f, &k, &v);
        if (why && bad++ < 5)
            ck_problem(ck, "record %llu (key of %zu bytes): %s", (unsigned long long)n, k.mv_size,
                       why);
        else if (why)
            ck->problems++;
    }
    if (rc != MDB_NOTFOUND)
        ck_problem(ck, "reading stopped after %llu records: %s", (unsigned long long)n,
                   mdb_strerror(rc));
    else
        mdb_cursor_close(cur);
    if (bad > 5)
        ck_problem(ck, "%llu records of %llu are malformed in all", (unsigned long long)bad,
                   (unsigned long long)n);
    ck->where = NULL;
}

static const char *
fmt_series(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    tally__series_t sr;
    uint32_t sid;
    if (k->mv_size == 0 || k->mv_size > TALLY_SERIES_KEY_MAX ||
        tally__series_parse(k->mv_data, k->mv_size, &sr) != 0)
        return "the series key does not decode";
    if (v->mv_size != sizeof sid)
        return "the series id is not 4 bytes";
    memcpy(&sid, v->mv_data, sizeof sid);
    if (sid >= f->nseries)
        return "series id past the number of series (ids are dense)";
    if (f->sids[sid / 8] & (1u << (sid % 8)))
        return "two series share one id";
    f->sids[sid / 8] |= (uint8_t)(1u << (sid % 8));
    return NULL;
}

static const char *
fmt_rollup(ckfmt_t *f, const MDB_val *k, const MDB_val *v, int monthly)
{
    uint32_t sid;
    int64_t p;
    if (tally__rollup_key_parse(k->mv_data, k->mv_size, &sid, &p) != 0)
        return "the rollup key does not decode";
    if (sid >= f->nseries || !(f->sids[sid / 8] & (1u << (sid % 8))))
        return "a rollup of a series the store never named";
    if (monthly ? tally__time_month_start(p) != p : tally__time_hour_start(p) != p)
        return monthly ? "period is not the start of a month" : "period is not the start of an hour";
    if (v->mv_size != (monthly ? sizeof(tally__rollup_t) : TALLY_ROLLUP_HOURLY_SIZE))
        return "the rollup value has the wrong size";
    return NULL;
}

static const char *
fmt_hourly(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    return fmt_rollup(f, k, v, 0);
}

static const char *
fmt_monthly(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    return fmt_rollup(f, k, v, 1);
}

static const char *
fmt_producer(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    (void)f;
    if (k->mv_size == 0)
        return "empty producer id";
    if (v->mv_size != sizeof(tally__dedup_t))
        return "the producer state has the wrong size";
    tally__dedup_t d;
    memcpy(&d, v->mv_data, sizeof d);
    if (d.floor > d.max_seq)
        return "the producer's floor is above its highest sequence";
    return NULL;
}

static const char *
fmt_prodseen(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    (void)f;
    return k->mv_size == 0 || v->mv_size != 8 ? "not (producer id -> 8-byte time)" : NULL;
}

static const char *
fmt_object(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    (void)f;
    const char *p = k->mv_data, *z1 = memchr(p, 0, k->mv_size);
    const char *z2 = z1 ? memchr(z1 + 1, 0, k->mv_size - (size_t)(z1 + 1 - p)) : NULL;
    if (!z1 || z1 == p || !z2)
        return "the object key is not kind\\0namespace\\0name";
    json_error_t err;
    json_t *j = json_loadb(v->mv_data, v->mv_size, JSON_DECODE_ANY, &err);
    if (!j)
        return "the object is not JSON";
    json_decref(j);
    return NULL;
}

static const char *
fmt_evseen(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    (void)f;
    return k->mv_size != TALLY_STORE_EVKEY_LEN || v->mv_size != 8
               ? "not (16-byte event identity -> 8-byte time)"
               : NULL;
}

static const char *
fmt_evtime(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    (void)f;
    return k->mv_size != 8 + TALLY_STORE_EVKEY_LEN || v->mv_size != 0
               ? "not (time, event identity) with an empty value"
               : NULL;
}

/* The HTTP door's log (ev_log_append): 8-byte record numbers, whole
 * (identity, time) entries, at most EVREC_MAX of them. */
static const char *
fmt_evlog(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    (void)f;
    if (k->mv_size != 8)
        return "the record number is not 8 bytes";
    if (v->mv_size == 0 || v->mv_size % EVREC_ENTRY != 0 || v->mv_size / EVREC_ENTRY > EVREC_MAX)
        return "not a whole number (1 to 84) of (16-byte identity, 8-byte time) entries";
    return NULL;
}

static const char *
fmt_meta(ckfmt_t *f, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size == 7 && memcmp(k->mv_data, "format", 7) == 0) { /* with its NUL */
        uint32_t fmt;
        if (v->mv_size != sizeof fmt)
            return "the format record is not 4 bytes";
        memcpy(&fmt, v->mv_data, sizeof fmt);
        return fmt == STORE_FORMAT ? NULL : "a store format this version does not read";
    }
    if (k->mv_size == 8 && memcmp(k->mv_data, "store_id", 8) == 0)
        return v->mv_size == STORE_ID_LEN ? NULL : "the store id is not 16 bytes";
    if (k->mv_size == 10 && memcmp(k->mv_data, "generation", 10) == 0)
        return v->mv_size == 8 ? NULL : "the generation is not 8 bytes";
    ck_note(f->ck, "a record this version does not know (%.*s, %zu bytes)",
            (int)(k->mv_size < 40 ? k->mv_size : 40), (const char *)k->mv_data, v->mv_size);
    return NULL;
}

static const ckdb_t *
ck_find(const chk_t *ck, const char *name)
{
    for (size_t i = 0; i < ck->ndbs; i++)
        if (strcmp(ck->dbs[i].name, name) == 0)
            return &ck->dbs[i];
    return NULL;
}

static void
ck_formats(chk_t *ck, MDB_txn *txn, int64_t *records)
{
    static const char *const required[] = {"hourly", "monthly", "producers", "meta", "objects",
                                           "series"};
    static const char *const known[] = {"hourly", "monthly", "producers", "meta", "objects",
                                        "series", "evseen", "evtime", "evlog", "prodseen"};
    ckfmt_t f = {.ck = ck, .txn = txn};
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!ck_find(ck, required[i])) {
            ck->where = required[i];
            ck_problem(ck, "the database is missing");
            ck->where = NULL;
        }
    for (size_t i = 0; i < ck->ndbs; i++) {
        int k = 0;
        for (size_t j = 0; j < sizeof known / sizeof known[0] && !k; j++)
            k = strcmp(ck->dbs[i].name, known[j]) == 0;
        *records += (int64_t)ck->dbs[i].db.entries;
        if (!k) {
            ck->where = ck->dbs[i].name;
            ck_note(ck, "a database this version does not know: its pages were checked, not "
                        "its records");
            ck->where = NULL;
        }
    }
    const ckdb_t *sd = ck_find(ck, "series");
    f.nseries = sd ? sd->db.entries : 0;
    if (!(f.sids = calloc(f.nseries / 8 + 1, 1))) {
        ck_problem(ck, "out of memory");
        return;
    }
    ck_records(&f, "meta", fmt_meta);
    ck_records(&f, "series", fmt_series);
    ck_records(&f, "hourly", fmt_hourly);
    ck_records(&f, "monthly", fmt_monthly);
    ck_records(&f, "producers", fmt_producer);
    ck_records(&f, "prodseen", fmt_prodseen);
    ck_records(&f, "objects", fmt_object);
    ck_records(&f, "evseen", fmt_evseen);
    ck_records(&f, "evtime", fmt_evtime);
    ck_records(&f, "evlog", fmt_evlog);
    free(f.sids);
}

/* The meta page of a snapshot: page 0 or 1, whichever carries txnid (or
 * the newer sound one when txnid is 0). */
static int
ck_meta(chk_t *ck, uint64_t txnid, ldb_t *freedb, ldb_t *maindb, uint64_t *got_txnid)
{
    uint8_t m[2][160];
    int ok[2] = {0, 0}, pick = -1;
    uint32_t psize = 0;
    if (ck_read(ck, m[0], sizeof m[0], 0) == 0 && rd32(m[0] + 16) == L_MAGIC)
        psize = rd32(m[0] + 40); /* mm_psize lives in the free DB record's pad */
    if (psize < 512 || psize > 65536 || (psize & (psize - 1))) {
        ck_problem(ck, "meta page 0 is damaged (no LMDB magic or page size)");
        psize = 4096;
    } else {
        ok[0] = 1;
    }
    ck->psize = psize;
    if (ck_read(ck, m[1], sizeof m[1], psize) == 0 && rd32(m[1] + 16) == L_MAGIC &&
        rd32(m[1] + 40) == psize)
        ok[1] = 1;
    else
        ck_problem(ck, "meta page 1 is damaged");
    for (int i = 0; i < 2; i++)
        if (ok[i] && (txnid ? rd64(m[i] + 144) == txnid
                            : pick < 0 || rd64(m[i] + 144) > rd64(m[pick] + 144)))
            pick = i;
    if (pick < 0)
        return -1;
    ldb_decode(m[pick] + 40, freedb);
    ldb_decode(m[pick] + 88, maindb);
    ck->last_pg = rd64(m[pick] + 136);
    *got_txnid = rd64(m[pick] + 144);
    return 0;
}

int
tally__store_check(const char *dir, FILE *report)
{
    char path[4096], hex[2 * STORE_ID_LEN + 1];
    struct stat st;
    marker_t mk;
    chk_t ck = {.out = report, .fd = -1};
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    int rc, mrc;
    int64_t records = 0;
    uint64_t txnid = 0, snap = 0;
    ldb_t freedb, maindb;
    if ((rc = join_path(path, sizeof path, dir, "data.mdb")) != 0)
        return rc;
    fprintf(report, "checking the store in %s\n", dir);
    mrc = marker_read(dir, &mk);
    if (mrc == TALLY_ECORRUPT)
        ck_problem(&ck, MARKER_NAME " is unreadable (no store_id or generation)");
    if (stat(path, &st) != 0 || st.st_size == 0) {
        int missing = stat(path, &st) != 0;
        if (mk.present && mk.data) {
            hex_id(mk.id, hex);
            ck_problem(&ck, "data.mdb is %s, but " MARKER_NAME " says this directory held "
                            "store %s with data (tallyd refuses to start)",
                       missing ? "missing" : "empty (0 bytes)", hex);
            fprintf(report, "result: DAMAGED (%u problem%s)\n", ck.problems,
                    ck.problems == 1 ? "" : "s");
            return TALLY_ECORRUPT;
        }
        fprintf(report, "result: no store here (data.mdb is %s)\n", missing ? "missing" : "empty");
        return -ENOENT;
    }
    if ((ck.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        rc = -errno;
        fprintf(report, "result: cannot read %s: %s\n", path, strerror(-rc));
        return rc;
    }
    /* A read transaction pins its snapshot's pages while a tallyd writes:
     * the walk below reads the tree of that snapshot. */
    if ((rc = mdb_env_create(&env)) == 0) {
        mdb_env_set_maxdbs(env, 64);
        rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS, 0640);
        if (rc == 0)
            rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    }
    if (rc) {
        ck_problem(&ck, "LMDB cannot open data.mdb: %s", mdb_strerror(rc));
        if (txn)
            mdb_txn_abort(txn);
        txn = NULL;
    } else {
        txnid = mdb_txn_id(txn);
    }
    if (ck_meta(&ck, txnid, &freedb, &maindb, &snap) != 0) {
        ck_problem(&ck, "no sound meta page: the store cannot be read");
        goto done;
    }
    /* by division: a damaged meta page's last page must not overflow */
    uint64_t in_file = (uint64_t)st.st_size / ck.psize, in_use = ck.last_pg + 1;
    if (ck.last_pg < 1 || ck.last_pg >= in_file) {
        ck_problem(&ck, "the meta page says %llu pages, the file holds %llu",
                   (unsigned long long)in_use, (unsigned long long)in_file);
        goto done;
    }
    fprintf(report, "data.mdb: file %.2f MiB, page size %u, %llu pages in use, transaction %llu\n",
            (double)st.st_size / (1024.0 * 1024.0), ck.psize, (unsigned long long)in_use,
            (unsigned long long)snap);
    if (!(ck.seen = calloc(ck.last_pg / 8 + 1, 1))) {
        rc = -ENOMEM;
        goto done;
    }
    ck_tree(&ck, "free list", &freedb, 0, 1);
    ck_tree(&ck, "main database", &maindb, 1, 0);
    for (size_t i = 0; i < ck.ndbs; i++)
        ck_tree(&ck, ck.dbs[i].name, &ck.dbs[i].db, 0, 0);
    uint64_t leaked = 0;
    for (size_t i = 0; i < ck.nfree; i++)
        (void)ck_claim(&ck, ck.freepg[i], "the free list");
    for (uint64_t p = 2; p <= ck.last_pg; p++)
        leaked += !(ck.seen[p / 8] & (1u << (p % 8)));
    fprintf(report, "pages: %llu in databases, %zu free\n",
            (unsigned long long)(ck.last_pg + 1 - 2 - leaked - ck.nfree), ck.nfree);
    if (leaked)
        ck_note(&ck, "%llu pages are neither in use nor free (lost to the store, harmless)",
                (unsigned long long)leaked);
    if (ck.problems) {
        fprintf(report, "records not read: LMDB would follow the damaged pages\n");
    } else if (txn) {
        ck_formats(&ck, txn, &records);
    }
    /* data.mdb against the marker */
    if (txn && !ck.problems) {
        MDB_dbi meta;
        MDB_val k = {8, "store_id"}, gk = {10, "generation"}, v;
        uint8_t id[STORE_ID_LEN];
        int has_id = 0;
        uint64_t gen = 0;
        if (mdb_dbi_open(txn, "meta", 0, &meta) == 0) {
            if (mdb_get(txn, meta, &k, &v) == 0 && v.mv_size == STORE_ID_LEN) {
                memcpy(id, v.mv_data, STORE_ID_LEN);
                has_id = 1;
            }
            if (mdb_get(txn, meta, &gk, &v) == 0 && v.mv_size == 8)
                gen = get_be64(v.mv_data);
        }
        ck.where = MARKER_NAME;
        if (has_id)
            hex_id(id, hex);
        if (!mk.present) {
            ck_note(&ck, "no marker: tallyd writes one at its next start (store %s)",
                    has_id ? hex : "without an id yet");
        } else if (!has_id || memcmp(id, mk.id, STORE_ID_LEN) != 0) {
            char mhex[2 * STORE_ID_LEN + 1];
            hex_id(mk.id, mhex);
            if (mk.data)
                ck_problem(&ck, "data.mdb is store %s, the marker names store %s "
                                "(tallyd refuses to start)",
                           has_id ? hex : "(no id)", mhex);
            else
                ck_note(&ck, "data.mdb is store %s, the marker (of a store that never held "
                             "data) names %s",
                        has_id ? hex : "(no id)", mhex);
        } else if (gen < mk.gen || (gen == mk.gen && snap < mk.txnid)) {
            ck_problem(&ck, "data.mdb (generation %llu, transaction %llu) is older than the "
                            "marker says (generation %llu, transaction %llu): an old copy "
                            "(tallyd refuses to start)",
                       (unsigned long long)gen, (unsigned long long)snap,
                       (unsigned long long)mk.gen, (unsigned long long)mk.txnid);
        } else {
            fprintf(report, "ok      " MARKER_NAME ": store %s, generation %llu\n", hex,
                    (unsigned long long)gen);
        }
        ck.where = NULL;
    }
done:
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env);
    if (ck.fd >= 0)
        close(ck.fd);
    free(ck.seen);
    free(ck.freepg);
    free(ck.dbs);
    if (rc && !ck.problems) {
        fprintf(report, "result: cannot check: %s\n", tally_strerror(rc > 0 ? map_err(rc) : rc));
        return rc > 0 ? map_err(rc) : rc;
    }
    if (ck.problems) {
        fprintf(report, "result: DAMAGED (%u problem%s%s)\n", ck.problems,
                ck.problems == 1 ? "" : "s",
                ck.problems > CHECK_SHOW_MAX ? "; the first ones shown" : "");
        return TALLY_ECORRUPT;
    }
    fprintf(report, "result: ok (%lld records, %u note%s)\n", (long long)records, ck.notes,
            ck.notes == 1 ? "" : "s");
    return 0;
}

/* ==== chunked reads (tally__store_rd_*) =========================================
 * A long report reads in many short read transactions instead of one: each
 * chunk begins its own snapshot, so no transaction lives for seconds (LMDB
 * cannot reuse pages a reader still sees, and a map growth waits for every
 * reader to end). */

struct tally__store_rd {
    tally__store_t *s;
    MDB_txn *txn;
};

int
tally__store_rd_begin(tally__store_t *s, tally__store_rd_t **out)
{
    *out = NULL;
    /* glibc's default rwlock prefers readers: a stream of overlapping
     * chunks could keep a growth waiting for ever. Chunked readers let a
     * waiting growth go first. */
    while (__atomic_load_n(&s->grow_waiting, __ATOMIC_ACQUIRE)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    tally__store_rd_t *rd = calloc(1, sizeof *rd);
    if (!rd)
        return -ENOMEM;
    rd->s = s;
    pthread_rwlock_rdlock(&s->lock);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &rd->txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&s->lock);
        free(rd);
        return map_err(rc);
    }
    *out = rd;
    return 0;
}

void
tally__store_rd_end(tally__store_rd_t *rd)
{
    if (!rd)
        return;
    mdb_txn_abort(rd->txn);
    pthread_rwlock_unlock(&rd->s->lock);
    free(rd);
}

int
tally__store_rd_series(tally__store_rd_t *rd, const char *prefix, size_t plen, const char *after,
                       size_t alen, size_t max, tally__store_series_cb cb, void *ctx, int *more)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, ret = 0;
    size_t n = 0;
    *more = 0;
    if ((rc = mdb_cursor_open(rd->txn, rd->s->series, &cur)) != 0)
        return map_err(rc);
    if (after) {
        k.mv_size = alen;
        k.mv_data = (void *)after;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        /* strictly after: skip the key itself */
        if (rc == MDB_SUCCESS && k.mv_size == alen && memcmp(k.mv_data, after, alen) == 0)
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    } else if (plen) {
        k.mv_size = plen;
        k.mv_data = (void *)prefix;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == MDB_SUCCESS; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        if (n == max) {
            *more = 1;
            break;
        }
        uint32_t sid;
        if (v.mv_size != sizeof sid) {
            ret = TALLY_ECORRUPT;
            break;
        }
        memcpy(&sid, v.mv_data, sizeof sid);
        n++;
        if ((ret = cb(ctx, k.mv_data, k.mv_size, sid)) != 0)
            break;
    }
    if (ret == 0 && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        ret = map_err(rc);
    mdb_cursor_close(cur);
    return ret;
}

int
tally__store_rd_records(tally__store_rd_t *rd, int which, const uint32_t *sids, size_t n,
                        int64_t from_s, int64_t to_s, tally__store_record_cb cb, void *ctx)
{
    MDB_cursor *cur;
    MDB_val k, val;
    unsigned char key[IDKEY_LEN];
    int rc, ret = 0;
    if (n == 0 || from_s >= to_s)
        return 0;
    if ((rc = mdb_cursor_open(rd->txn, which == TALLY_STORE_MONTHLY ? rd->s->monthly : rd->s->hourly,
                              &cur)) != 0)
        return map_err(rc);
    size_t vsize =
        which == TALLY_STORE_MONTHLY ? sizeof(tally__rollup_t) : TALLY_ROLLUP_HOURLY_SIZE;
    /* The join of tally__store_scan(): walk the periods in order, and in
     * each the records of our ids, seeking over the others'. */
    tally__rollup_key(key, sids[0], from_s);
    k.mv_size = IDKEY_LEN;
    k.mv_data = key;
    rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
    int64_t period = INT64_MIN;
    size_t j = 0;
    while (rc == MDB_SUCCESS) {
        uint32_t ksid;
        int64_t kp;
        if (tally__rollup_key_parse(k.mv_data, k.mv_size, &ksid, &kp) != 0) {
            ret = TALLY_ECORRUPT;
            break;
        }
        if (kp >= to_s)
            break;
        if (kp != period) {
            period = kp;
            j = 0;
        }
        if (j < n && sids[j] < ksid) {
            /* galloping would not pay: chunks are small; binary search */
            size_t lo = j, hi = n;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (sids[mid] < ksid)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            j = lo;
        }
        if (j == n || sids[j] != ksid) {
            if (j == n) {
                if (kp == INT64_MAX)
                    break;
                tally__rollup_key(key, sids[0], kp + 1);
            } else {
                tally__rollup_key(key, sids[j], kp);
            }
            k.mv_size = IDKEY_LEN;
            k.mv_data = key;
            rc = mdb_cursor_get(cur, &k, &val, MDB_SET_RANGE);
            continue;
        }
        if (val.mv_size != vsize) {
            ret = TALLY_ECORRUPT;
            break;
        }
        tally__rollup_t r;
        memcpy(&r, val.mv_data, vsize);
        if (which != TALLY_STORE_MONTHLY)
            r.last_sum = r.last;
        if ((ret = cb(ctx, j, kp, &r)) != 0)
            break;
        j++;
        rc = mdb_cursor_get(cur, &k, &val, MDB_NEXT);
    }
    if (ret == 0 && rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        ret = map_err(rc);
    mdb_cursor_close(cur);
    return ret;
}
