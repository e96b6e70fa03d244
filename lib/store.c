/* store.c — LMDB behind tally__store: environment, named databases, flush commits, snapshot scans.
 */
#define _GNU_SOURCE /* fallocate */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"

/* 6: rollup keys are (series id, period); series strings live once in "series" */
#define STORE_FORMAT 6

/* Rollup keys are (period, series id), 12 bytes (rollup.h): a flush
 * rewrites the current hour and month of its series, and those records sit
 * together on few pages, whatever history the store holds. */
#define IDKEY_LEN TALLY_ROLLUP_KEY_LEN

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
    /* the HTTP door's exactly-once set: identity -> first-seen ms, and
     * (first-seen ms big-endian, identity) -> nothing, for pruning in order */
    MDB_dbi evseen, evtime;
    int has_ev; /* both exist (a read-only open of an older store may lack them) */
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

static int
env_open(tally__store_t *s, const char *dir, uint64_t map_size_bytes, unsigned flags)
{
    int rc;
    if ((rc = map_err(mdb_env_create(&s->env))) != 0)
        return rc;
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

int
tally__store_open_ex(const char *dir, uint64_t map_size_bytes, unsigned oflags,
                     tally__store_t **out)
{
    int rc;
    MDB_txn *txn = NULL;
    int readonly = (oflags & TALLY_STORE_RDONLY) != 0;
    tally__store_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->readonly = readonly;
    s->lockfd = -1;
    pthread_rwlock_init(&s->lock, NULL);
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
    /* added without a format change: an older tallyd never opens them */
    if (mdb_dbi_open(txn, "evseen", dflags, &s->evseen) == 0 &&
        mdb_dbi_open(txn, "evtime", dflags, &s->evtime) == 0)
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
    if ((rc = map_err(mdb_txn_commit(txn))) != 0) {
        txn = NULL;
        goto fail;
    }
    *out = s;
    return 0;
fail:
    if (txn)
        mdb_txn_abort(txn);
    if (s->env)
        mdb_env_close(s->env);
    tally__store_unlock(s->lockfd);
    pthread_rwlock_destroy(&s->lock);
    free(s);
    return rc;
}

void
tally__store_close(tally__store_t *s)
{
    if (!s)
        return;
    mdb_env_close(s->env);
    tally__store_unlock(s->lockfd); /* after the environment: its last commit is on disk */
    pthread_rwlock_destroy(&s->lock);
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
    if (src->nev && !s->has_ev) {
        rc = EINVAL;
        goto abort;
    }
    for (size_t i = 0; i < src->nev; i++) {
        const tally__store_evkey_t *e = &src->ev[i];
        uint8_t tk[8 + TALLY_STORE_EVKEY_LEN];
        put_be64(tk, (uint64_t)e->seen_ms);
        memcpy(tk + 8, e->key, TALLY_STORE_EVKEY_LEN);
        MDB_val k = {TALLY_STORE_EVKEY_LEN, (void *)e->key}, v = {8, tk};
        MDB_val tkv = {sizeof tk, tk}, empty = {0, ""};
        /* An identity committed again was past its window (the ingest side
         * checks the rest): it starts a new window. Its old evtime entry
         * stays behind, and pruning skips it (its time no longer matches). */
        if ((rc = mdb_put(txn, s->evseen, &k, &v, 0)) != 0 ||
            (rc = mdb_put(txn, s->evtime, &tkv, &empty, 0)) != 0)
            goto abort;
    }
    if ((rc = mdb_txn_commit(txn)) == 0) {
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
    } else {
        ret = map_err(mdb_txn_commit(txn));
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
    rc = validate_and_swap(tmp, dir);
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
    if (!out_dir)
        rc = validate_and_swap(tmp, dir);
out:
    tally__store_close(s);
    if (made_tmp)
        remove_tmpdir(tmp);
    tally__store_unlock(lfd);
    return rc;
}

/* ---- the HTTP door's exactly-once set --------------------------------------- */

int
tally__store_events_seen(tally__store_t *s, const tally__store_evkey_t *keys, size_t n,
                         int64_t since_ms, uint8_t *seen, uint64_t *count)
{
    MDB_txn *txn = NULL;
    MDB_stat st;
    memset(seen, 0, n);
    if (count)
        *count = 0;
    if (!s->has_ev)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0 && count && (rc = mdb_stat(txn, s->evseen, &st)) == 0)
        *count = st.ms_entries;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        MDB_val k = {TALLY_STORE_EVKEY_LEN, (void *)keys[i].key}, v;
        int g = mdb_get(txn, s->evseen, &k, &v);
        if (g == MDB_NOTFOUND)
            continue;
        if (g != 0 || v.mv_size != 8) {
            rc = g ? g : MDB_CORRUPTED;
            break;
        }
        seen[i] = (int64_t)get_be64(v.mv_data) >= since_ms;
    }
    if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&s->lock);
    return map_err(rc);
}

uint64_t
tally__store_events_count(tally__store_t *s)
{
    MDB_txn *txn;
    MDB_stat st;
    uint64_t n = 0;
    if (!s->has_ev)
        return 0;
    pthread_rwlock_rdlock(&s->lock);
    if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) == 0) {
        if (mdb_stat(txn, s->evseen, &st) == 0)
            n = st.ms_entries;
        mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&s->lock);
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
    /* evtime is in time order: what goes is a prefix, deleted in batches */
    while (!end && ret == 0 && *deleted < max) {
        size_t budget = max - *deleted, n = 0;
        if (budget > PRUNE_BATCH)
            budget = PRUNE_BATCH;
        MDB_txn *txn = NULL;
        MDB_cursor *cur = NULL;
        MDB_val k, v;
        pthread_rwlock_rdlock(&s->lock);
        int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
        if (rc == 0 && (rc = mdb_cursor_open(txn, s->evtime, &cur)) != 0)
            mdb_txn_abort(txn);
        if (rc) {
            pthread_rwlock_unlock(&s->lock);
            return map_err(rc);
        }
        MDB_stat st;
        uint64_t count = mdb_stat(txn, s->evseen, &st) == 0 ? st.ms_entries : 0;
        size_t gone = 0; /* identities deleted (n also counts stale evtime entries) */
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == MDB_SUCCESS && n < budget) {
            if (k.mv_size != 8 + TALLY_STORE_EVKEY_LEN) {
                ret = TALLY_ECORRUPT;
                break;
            }
            /* older than the window, or more than the set may hold */
            if ((int64_t)get_be64(k.mv_data) >= before_ms && count - gone <= keep_at_most) {
                if (oldest_ms)
                    *oldest_ms = (int64_t)get_be64(k.mv_data);
                end = 1;
                break;
            }
            MDB_val ek = {TALLY_STORE_EVKEY_LEN, (uint8_t *)k.mv_data + 8}, ev;
            /* the identity goes only if this entry is its current time: a
             * stale entry of an identity that started a new window does not
             * take the new one with it */
            int d = mdb_get(txn, s->evseen, &ek, &ev);
            if (d == 0 && ev.mv_size == 8 && memcmp(ev.mv_data, k.mv_data, 8) == 0) {
                d = mdb_del(txn, s->evseen, &ek, NULL);
                gone += d == 0;
            }
            if ((d != 0 && d != MDB_NOTFOUND) || (rc = mdb_cursor_del(cur, 0)) != 0) {
                rc = d ? d : rc;
                break;
            }
            n++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            end = 1;
        else if (ret == 0 && rc != MDB_SUCCESS)
            ret = map_err(rc);
        if (ret == 0 && n > 0) {
            if ((rc = mdb_txn_commit(txn)) != 0)
                ret = map_err(rc);
            else
                *deleted += n;
        } else {
            mdb_txn_abort(txn);
        }
        pthread_rwlock_unlock(&s->lock);
        if (n == 0)
            end = 1;
    }
    return ret;
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
