/* store.c — LMDB behind tally__store: environment, named databases, flush commits, snapshot scans.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lmdb.h>

#include "log.h"
#include "store.h"

#define STORE_FORMAT 5

struct tally__store {
    MDB_env *env;
    MDB_dbi hourly, monthly, producers, meta, objects;
    int readonly;
    /* shared: any transaction; exclusive: mdb_env_set_mapsize */
    pthread_rwlock_t lock;
};

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

int
tally__store_open(const char *dir, uint64_t map_size_bytes, int readonly, tally__store_t **out)
{
    int rc;
    MDB_txn *txn = NULL;
    tally__store_t *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->readonly = readonly;
    pthread_rwlock_init(&s->lock, NULL);
    if (!readonly && (rc = mkdir_p(dir)) != 0) {
        tally__log_error("cannot create storage directory dir=%s err=\"%s\"", dir,
                         tally_strerror(rc));
        goto fail;
    }
    if ((rc = map_err(mdb_env_create(&s->env))) != 0)
        goto fail;
    mdb_env_set_maxdbs(s->env, 32);
    mdb_env_set_maxreaders(s->env, 256);
    if (map_size_bytes && (rc = map_err(mdb_env_set_mapsize(s->env, map_size_bytes))) != 0)
        goto fail;
    /* NOTLS: read transactions are not tied to threads (HTTP workers,
     * tools). Durability is LMDB's default: every commit is synced, because
     * an ack promises the events are on disk. */
    unsigned flags = MDB_NOTLS | (readonly ? MDB_RDONLY : 0);
    if ((rc = mdb_env_open(s->env, dir, flags, 0640)) != 0) {
        tally__log_error("cannot open store dir=%s err=\"%s\"", dir, mdb_strerror(rc));
        rc = map_err(rc);
        goto fail;
    }
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
    pthread_rwlock_destroy(&s->lock);
    free(s);
}

/* Merge puts into dbi. Hourly (diffs != NULL): each record's last_sum is
 * its last, and the change of it is added to diffs[month] for the monthly
 * put of that series. Monthly (adds != NULL): adds[i] joins put i's last_sum. */
static int
merge_puts(MDB_txn *txn, MDB_dbi dbi, const tally__store_put_t *puts, size_t n, double *diffs,
           size_t ndiffs, const double *adds)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc)
        return rc;
    char key[TALLY_ROLLUP_KEY_MAX];
    for (size_t i = 0; i < n; i++) {
        if (puts[i].series_len > TALLY_SERIES_KEY_MAX) {
            rc = EINVAL;
            break;
        }
        MDB_val k = {tally__rollup_key(key, puts[i].series, puts[i].series_len, puts[i].period_s),
                     key},
                v;
        tally__rollup_t r, d = *puts[i].delta;
        double old_last = 0;
        if (adds)
            d.last_sum += adds[i];
        size_t vsize = diffs ? TALLY_ROLLUP_HOURLY_SIZE : sizeof r;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_KEY);
        if (rc == MDB_SUCCESS && v.mv_size == vsize) {
            memcpy(&r, v.mv_data, vsize);
            if (diffs)
                r.last_sum = r.last;
            old_last = r.last;
            tally__rollup_merge(&r, &d);
            if (diffs)
                r.last_sum = r.last;
            v.mv_size = vsize;
            v.mv_data = &r;
            rc = mdb_cursor_put(cur, &k, &v, MDB_CURRENT);
        } else if (rc == MDB_NOTFOUND) {
            r = d;
            if (diffs)
                r.last_sum = r.last;
            v.mv_size = vsize;
            v.mv_data = &r;
            rc = mdb_cursor_put(cur, &k, &v, 0);
        } else if (rc == MDB_SUCCESS) {
            rc = MDB_CORRUPTED;
        }
        if (rc == MDB_SUCCESS && diffs && puts[i].month_plus1 && puts[i].month_plus1 <= ndiffs)
            diffs[puts[i].month_plus1 - 1] += r.last - old_last;
        if (rc)
            break;
    }
    mdb_cursor_close(cur);
    return rc;
}

int
tally__store_commit(tally__store_t *s, const tally__store_put_t *hourly, size_t nh,
                    const tally__store_put_t *monthly, size_t nm,
                    const tally__store_producer_t *producers, size_t np)
{
    MDB_txn *txn;
    int rc;
    pthread_rwlock_rdlock(&s->lock);
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto out;
    double *diffs = nm ? calloc(nm, sizeof *diffs) : NULL;
    if (nm && !diffs) {
        rc = ENOMEM;
        mdb_txn_abort(txn);
        goto out;
    }
    rc = merge_puts(txn, s->hourly, hourly, nh, diffs ? diffs : (double[1]){0}, nm, NULL);
    if (rc == 0)
        rc = merge_puts(txn, s->monthly, monthly, nm, NULL, 0, diffs);
    free(diffs);
    if (rc)
        goto abort;
    for (size_t i = 0; i < np; i++) {
        MDB_val k = {producers[i].id_len, (void *)producers[i].id};
        MDB_val v = {sizeof producers[i].state, (void *)&producers[i].state};
        if ((rc = mdb_put(txn, s->producers, &k, &v, 0)) != 0)
            goto abort;
    }
    rc = mdb_txn_commit(txn);
    goto out;
abort:
    mdb_txn_abort(txn);
out:
    pthread_rwlock_unlock(&s->lock);
    return map_err(rc);
}

int
tally__store_grow(tally__store_t *s, uint64_t new_size)
{
    pthread_rwlock_wrlock(&s->lock);
    int rc = mdb_env_set_mapsize(s->env, new_size);
    pthread_rwlock_unlock(&s->lock);
    return map_err(rc);
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

int
tally__store_scan(tally__store_t *s, int which, const char *ns, size_t ns_len, int64_t from_s,
                  int64_t to_s, tally__store_scan_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc, ret = 0;
    char seek[TALLY_ROLLUP_KEY_MAX + 1];
    if (from_s >= to_s)
        return 0; /* nothing can start in an empty range */
    if ((rc = read_begin(s, which == TALLY_STORE_MONTHLY ? s->monthly : s->hourly, &txn, &cur)))
        return rc;
    MDB_val k, v;
    if (ns) {
        memcpy(seek, ns, ns_len);
        seek[ns_len] = '\0';
        k.mv_size = ns_len + 1;
        k.mv_data = seek;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    while (rc == MDB_SUCCESS) {
        const char *series;
        size_t slen;
        int64_t period;
        if (ns && (k.mv_size <= ns_len || memcmp(k.mv_data, ns, ns_len) != 0 ||
                   ((const char *)k.mv_data)[ns_len] != '\0'))
            break; /* past the namespace */
        size_t vsize =
            which == TALLY_STORE_MONTHLY ? sizeof(tally__rollup_t) : TALLY_ROLLUP_HOURLY_SIZE;
        if (tally__rollup_key_parse(k.mv_data, k.mv_size, &series, &slen, &period) != 0 ||
            v.mv_size != vsize) {
            ret = TALLY_ECORRUPT;
            break;
        }
        if (period < from_s) {
            /* jump to this series at from_s */
            size_t n = tally__rollup_key(seek, series, slen, from_s);
            k.mv_size = n;
            k.mv_data = seek;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            continue;
        }
        if (period >= to_s) {
            /* series + 0x01 sorts after all of this series' keys and
             * before the next series (see rollup.h) */
            memcpy(seek, series, slen);
            seek[slen] = 0x01;
            k.mv_size = slen + 1;
            k.mv_data = seek;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            continue;
        }
        tally__rollup_t r;
        memcpy(&r, v.mv_data, vsize);
        if (which != TALLY_STORE_MONTHLY)
            r.last_sum = r.last;
        if ((ret = cb(ctx, series, slen, period, &r)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    return read_end(s, txn, cur, rc, ret);
}

int
tally__store_producers(tally__store_t *s, tally__store_producer_cb cb, void *ctx)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc, ret = 0;
    if ((rc = read_begin(s, s->producers, &txn, &cur)) != 0)
        return rc;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == MDB_SUCCESS) {
        tally__dedup_t d;
        if (v.mv_size != sizeof d) {
            ret = TALLY_ECORRUPT;
            break;
        }
        memcpy(&d, v.mv_data, sizeof d);
        if ((ret = cb(ctx, k.mv_data, k.mv_size, &d)) != 0)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    return read_end(s, txn, cur, rc, ret);
}

int
tally__store_backup(tally__store_t *s, const char *dir)
{
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
    if (kl + nl + ml + 2 > TALLY_OBJ_KEY_MAX || memchr(kind, 0, kl))
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
    MDB_txn *txn;
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
    MDB_txn *txn;
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
    MDB_txn *txn;
    MDB_cursor *cur;
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
