/*
** hashkv_bench.c: build/hashkv-bench. The seed's workload on every system a
** user would weigh, in one process, interleaved and repeated, medians out.
**
** Systems
**   engine  the hashkv C API (sync=normal)
**   vtab    the hashkv virtual table through prepared statements
**           (sync='normal'), linked statically
**   native  CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID,
**           WAL, synchronous=NORMAL, the same statements
**   lmdb    LMDB's C API (MDB_NOSYNC), when liblmdb-dev was found
**   floor   the keys in a bare in-memory open-addressing table: no files,
**           the limit any RAM index approaches
**
** Ops (ns per op, one line per system, op and N)
**   put           key-%d -> value-%d for i < N, transactions of 1,000
**   get           key-(i % N), the seed's order, for at least --seconds
**   get_random    the same keys in a fixed-seed random permutation
**   get_txn, get_random_txn   (vtab, native) inside one read transaction
** and, with the default run, extras: put rates by sync mode, bulk INSERT
** through SQL (prepared, and INSERT ... SELECT), open time, index and disk
*bytes per key, gets with reader
** threads beside a writer.
**
**   hashkv-bench [--json] [--json-out FILE] [--n N] [--system S] [--reps R]
*[--seconds S]
**                [--no-extras] [--extra NAME] [--dir DIR]
** --extra runs one group of extras only: sync, sql, open, readers,
** compaction, procs, ttl, queries.
**
** ttl: gets of keys that expire beside keys that do not (1,000,000 each,
** random order), and a cache in steady state on the real clock: single
** puts at 100,000 a second of keys that expire 1 s after they are written,
** for 20 s (20 TTL periods), sampling disk and index against the live data;
** then the same writes kept bounded by hand (each put deletes the key put
** 1 s before) for what reclaim by expiry costs beside it.
** queries: issue 21's table (scans, filters, ranges,
** kv against native at 1,000,000 rows).
*/
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <ftw.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#ifdef HKV_HAVE_LMDB
#include <lmdb.h>
#endif

#include "hashkv.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

/* ---- options, timing, output ---- */

static int bJson = 0;
static const char *zJsonOut = 0; /* --json-out FILE: JSON too */
static int nReps = 3;
static double fSeconds = 1.0;
static const char *zOnlySystem = 0;
static long nOnlyN = 0;
static int bExtras = 1;
static int bRunMain = 1;           /* --extra NAME clears it */
static const char *zOnlyExtra = 0; /* --extra NAME */

static int extraWanted(const char *z) {
  return !zOnlyExtra || !strcmp(zOnlyExtra, z);
}
static char zBase[512];

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void progress(const char *zFmt, ...) {
  va_list ap;
  va_start(ap, zFmt);
  fprintf(stderr, "[bench] ");
  vfprintf(stderr, zFmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
}

static void die(const char *zFmt, ...) {
  va_list ap;
  va_start(ap, zFmt);
  fprintf(stderr, "hashkv-bench: ");
  vfprintf(stderr, zFmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(1);
}

/* Results: (system, op, n) -> samples. */
#define MAXRES 512
typedef struct Result {
  char zSys[16];
  char zOp[48];
  long n;
  double a[16];
  int nA;
} Result;
static Result aRes[MAXRES];
static int nRes;

static void record(const char *zSys, const char *zOp, long n, double ns) {
  Result *r = 0;
  for (int i = 0; i < nRes; i++) {
    if (!strcmp(aRes[i].zSys, zSys) && !strcmp(aRes[i].zOp, zOp) &&
        aRes[i].n == n) {
      r = &aRes[i];
    }
  }
  if (!r) {
    if (nRes == MAXRES) die("too many results");
    r = &aRes[nRes++];
    snprintf(r->zSys, sizeof(r->zSys), "%s", zSys);
    snprintf(r->zOp, sizeof(r->zOp), "%s", zOp);
    r->n = n;
  }
  if (r->nA < 16) r->a[r->nA++] = ns;
}

static int cmpDouble(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(Result *r) {
  qsort(r->a, (size_t)r->nA, sizeof(double), cmpDouble);
  return r->nA % 2 ? r->a[r->nA / 2]
                   : (r->a[r->nA / 2 - 1] + r->a[r->nA / 2]) / 2;
}

static double lookup(const char *zSys, const char *zOp, long n) {
  for (int i = 0; i < nRes; i++) {
    if (!strcmp(aRes[i].zSys, zSys) && !strcmp(aRes[i].zOp, zOp) &&
        aRes[i].n == n && aRes[i].nA) {
      return median(&aRes[i]);
    }
  }
  return NAN;
}

static int rmOne(const char *zPath, const struct stat *pSt, int flag,
                 struct FTW *pFtw) {
  (void)pSt;
  (void)flag;
  (void)pFtw;
  return remove(zPath);
}

static void rmTree(const char *z) { nftw(z, rmOne, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- the workload's keys ---- */

static long nKeys;
static char (*aKey)[16];
static int *aKeyLen;
static char (*aVal)[20];
static int *aValLen;
static uint32_t *aPerm;

/* A pseudo-random sequence (xorshift64; *pS must not be 0). */
static uint64_t xorshift64(uint64_t *pS) {
  uint64_t s = *pS;
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return *pS = s;
}

static void makeKeys(long n) {
  free(aKey);
  free(aKeyLen);
  free(aVal);
  free(aValLen);
  free(aPerm);
  nKeys = n;
  aKey = malloc((size_t)n * sizeof(*aKey));
  aKeyLen = malloc((size_t)n * sizeof(int));
  aVal = malloc((size_t)n * sizeof(*aVal));
  aValLen = malloc((size_t)n * sizeof(int));
  aPerm = malloc((size_t)n * sizeof(uint32_t));
  if (!aKey || !aKeyLen || !aVal || !aValLen || !aPerm) die("out of memory");
  for (long i = 0; i < n; i++) {
    aKeyLen[i] = snprintf(aKey[i], sizeof(aKey[i]), "key-%ld", i);
    aValLen[i] = snprintf(aVal[i], sizeof(aVal[i]), "value-%ld", i);
    aPerm[i] = (uint32_t)i;
  }
  uint64_t s = 0x9E3779B97F4A7C15ull; /* fixed seed: same order every run */
  for (long i = n - 1; i > 0; i--) {
    long j = (long)(xorshift64(&s) % (uint64_t)(i + 1));
    uint32_t t = aPerm[i];
    aPerm[i] = aPerm[j];
    aPerm[j] = t;
  }
}

/* ---- systems ---- */

typedef struct Sys Sys;
struct Sys {
  const char *zName;
  int bSql;             /* supports the *_txn ops */
  void (*xOpen)(Sys *); /* fresh, empty */
  void (*xClose)(Sys *);
  void (*xBegin)(Sys *); /* write transaction */
  void (*xCommit)(Sys *);
  void (*xPut)(Sys *, long i);
  long (*xGet)(Sys *, long i); /* value length, or -1 */
  void (*xReadBegin)(Sys *);   /* optional: one read transaction */
  void (*xReadEnd)(Sys *);
  /* state */
  char zDir[600];
  hkv_db *pStore;
  sqlite3 *db;
  sqlite3_stmt *pIns, *pSel;
  void *pExtra;
};

static void sysDir(Sys *s) {
  snprintf(s->zDir, sizeof(s->zDir), "%s/%s", zBase, s->zName);
  rmTree(s->zDir);
  mkdir(s->zDir, 0755);
}

/* engine */
static void engineOpen(Sys *s) {
  sysDir(s);
  char z[700];
  snprintf(z, sizeof(z), "%s/store", s->zDir);
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_NORMAL;
  if (hkv_open(z, &o, &s->pStore)) die("open: %s", hkv_errmsg(s->pStore));
}
static void engineClose(Sys *s) {
  hkv_close(s->pStore);
  s->pStore = 0;
}
static void engineBegin(Sys *s) { hkv_begin(s->pStore); }
static void engineCommit(Sys *s) {
  if (hkv_commit(s->pStore)) die("commit: %s", hkv_errmsg(s->pStore));
}
static void enginePut(Sys *s, long i) {
  if (hkv_put(s->pStore, aKey[i], (size_t)aKeyLen[i], aVal[i],
              (size_t)aValLen[i])) {
    die("put: %s", hkv_errmsg(s->pStore));
  }
}
static long engineGet(Sys *s, long i) {
  const void *p;
  size_t n;
  if (hkv_get(s->pStore, aKey[i], (size_t)aKeyLen[i], &p, &n)) return -1;
  return (long)n + ((const char *)p)[n - 1];
}

/* vtab and native: the same prepared statements */
static void sqlExec(sqlite3 *db, const char *z) {
  char *zErr = 0;
  if (sqlite3_exec(db, z, 0, 0, &zErr)) die("%s: %s", z, zErr);
}
static void sqlOpen(Sys *s, const char *zCreate, const char *zTab) {
  sysDir(s);
  char z[700];
  snprintf(z, sizeof(z), "%s/bench.db", s->zDir);
  if (sqlite3_open(z, &s->db)) die("sqlite3_open");
  sqlExec(s->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;");
  sqlExec(s->db, zCreate);
  snprintf(z, sizeof(z), "INSERT INTO %s(key, value) VALUES(?, ?)", zTab);
  if (sqlite3_prepare_v2(s->db, z, -1, &s->pIns, 0)) die("prepare");
  snprintf(z, sizeof(z), "SELECT value FROM %s WHERE key = ?", zTab);
  if (sqlite3_prepare_v2(s->db, z, -1, &s->pSel, 0)) die("prepare");
}
static void vtabOpen(Sys *s) {
  sqlOpen(s, "CREATE VIRTUAL TABLE kv USING hashkv(sync='normal')", "kv");
}
static void nativeOpen(Sys *s) {
  sqlOpen(s, "CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID",
          "n");
}
static void sqlClose(Sys *s) {
  sqlite3_finalize(s->pIns);
  sqlite3_finalize(s->pSel);
  sqlite3_close(s->db);
  s->db = 0;
}
static void sqlBegin(Sys *s) { sqlExec(s->db, "BEGIN"); }
static void sqlCommit(Sys *s) { sqlExec(s->db, "COMMIT"); }
static void sqlPut(Sys *s, long i) {
  sqlite3_bind_text(s->pIns, 1, aKey[i], aKeyLen[i], SQLITE_STATIC);
  sqlite3_bind_text(s->pIns, 2, aVal[i], aValLen[i], SQLITE_STATIC);
  if (sqlite3_step(s->pIns) != SQLITE_DONE)
    die("insert: %s", sqlite3_errmsg(s->db));
  sqlite3_reset(s->pIns);
}
static long sqlGet(Sys *s, long i) {
  long n = -1;
  sqlite3_bind_text(s->pSel, 1, aKey[i], aKeyLen[i], SQLITE_STATIC);
  if (sqlite3_step(s->pSel) == SQLITE_ROW) {
    const unsigned char *z = sqlite3_column_text(s->pSel, 0);
    n = sqlite3_column_bytes(s->pSel, 0);
    n += z[n - 1];
  }
  sqlite3_reset(s->pSel);
  return n;
}
static void sqlReadBegin(Sys *s) { sqlExec(s->db, "BEGIN"); }
static void sqlReadEnd(Sys *s) { sqlExec(s->db, "COMMIT"); }

#ifdef HKV_HAVE_LMDB
typedef struct Lmdb {
  MDB_env *env;
  MDB_dbi dbi;
  MDB_txn *txn;
} Lmdb;
static void lmdbOpen(Sys *s) {
  sysDir(s);
  Lmdb *l = calloc(1, sizeof(*l));
  s->pExtra = l;
  if (mdb_env_create(&l->env)) die("mdb_env_create");
  mdb_env_set_mapsize(l->env, (size_t)8 << 30);
  if (mdb_env_open(l->env, s->zDir, MDB_NOSYNC | MDB_NOMETASYNC, 0644)) {
    die("mdb_env_open");
  }
  MDB_txn *t;
  mdb_txn_begin(l->env, 0, 0, &t);
  mdb_dbi_open(t, 0, 0, &l->dbi);
  mdb_txn_commit(t);
}
static void lmdbClose(Sys *s) {
  Lmdb *l = s->pExtra;
  mdb_env_close(l->env);
  free(l);
  s->pExtra = 0;
}
static void lmdbBegin(Sys *s) {
  Lmdb *l = s->pExtra;
  if (mdb_txn_begin(l->env, 0, 0, &l->txn)) die("mdb_txn_begin");
}
static void lmdbCommit(Sys *s) {
  Lmdb *l = s->pExtra;
  if (mdb_txn_commit(l->txn)) die("mdb_txn_commit");
  l->txn = 0;
}
static void lmdbPut(Sys *s, long i) {
  Lmdb *l = s->pExtra;
  MDB_val k = {(size_t)aKeyLen[i], aKey[i]}, v = {(size_t)aValLen[i], aVal[i]};
  if (mdb_put(l->txn, l->dbi, &k, &v, 0)) die("mdb_put");
}
static void lmdbReadBegin(Sys *s) {
  Lmdb *l = s->pExtra;
  if (mdb_txn_begin(l->env, 0, MDB_RDONLY, &l->txn)) die("mdb_txn_begin");
}
static void lmdbReadEnd(Sys *s) {
  Lmdb *l = s->pExtra;
  mdb_txn_abort(l->txn);
  l->txn = 0;
}
static long lmdbGet(Sys *s, long i) {
  Lmdb *l = s->pExtra;
  MDB_val k = {(size_t)aKeyLen[i], aKey[i]}, v;
  if (mdb_get(l->txn, l->dbi, &k, &v)) return -1;
  return (long)v.mv_size + ((const char *)v.mv_data)[v.mv_size - 1];
}
#endif

/* floor: open addressing, keys and values copied into the heap */
typedef struct FloorSlot {
  uint64_t h;
  char *zKey;
  char *zVal;
  uint32_t nKey, nVal;
} FloorSlot;
typedef struct Floor {
  FloorSlot *a;
  uint64_t mask, n;
} Floor;
static void floorOpen(Sys *s) {
  Floor *f = calloc(1, sizeof(*f));
  f->mask = 15;
  f->a = calloc(16, sizeof(FloorSlot));
  s->pExtra = f;
}
static void floorClose(Sys *s) {
  Floor *f = s->pExtra;
  for (uint64_t i = 0; i <= f->mask; i++) {
    free(f->a[i].zKey);
    free(f->a[i].zVal);
  }
  free(f->a);
  free(f);
  s->pExtra = 0;
}
static void floorNop(Sys *s) { (void)s; }
static void floorInsert(Floor *f, FloorSlot *p) {
  uint64_t i = p->h & f->mask;
  while (f->a[i].zKey) i = (i + 1) & f->mask;
  f->a[i] = *p;
}
static void floorPut(Sys *s, long i) {
  Floor *f = s->pExtra;
  if ((f->n + 1) * 4 > (f->mask + 1) * 3) {
    Floor g = {calloc((f->mask + 1) * 2, sizeof(FloorSlot)), f->mask * 2 + 1,
               f->n};
    for (uint64_t j = 0; j <= f->mask; j++) {
      if (f->a[j].zKey) floorInsert(&g, &f->a[j]);
    }
    free(f->a);
    *f = g;
  }
  FloorSlot slot = {XXH3_64bits(aKey[i], (size_t)aKeyLen[i]), 0, 0,
                    (uint32_t)aKeyLen[i], (uint32_t)aValLen[i]};
  slot.zKey = malloc((size_t)aKeyLen[i]);
  slot.zVal = malloc((size_t)aValLen[i]);
  memcpy(slot.zKey, aKey[i], (size_t)aKeyLen[i]);
  memcpy(slot.zVal, aVal[i], (size_t)aValLen[i]);
  floorInsert(f, &slot);
  f->n++;
}
static long floorGet(Sys *s, long i) {
  Floor *f = s->pExtra;
  uint64_t h = XXH3_64bits(aKey[i], (size_t)aKeyLen[i]);
  for (uint64_t j = h & f->mask; f->a[j].zKey; j = (j + 1) & f->mask) {
    FloorSlot *p = &f->a[j];
    if (p->h == h && p->nKey == (uint32_t)aKeyLen[i] &&
        !memcmp(p->zKey, aKey[i], p->nKey)) {
      return (long)p->nVal + p->zVal[p->nVal - 1];
    }
  }
  return -1;
}

static Sys aSys[] = {
    {"engine", 0, engineOpen, engineClose, engineBegin, engineCommit, enginePut,
     engineGet, 0, 0, "", 0, 0, 0, 0, 0},
    {"vtab", 1, vtabOpen, sqlClose, sqlBegin, sqlCommit, sqlPut, sqlGet,
     sqlReadBegin, sqlReadEnd, "", 0, 0, 0, 0, 0},
    {"native", 1, nativeOpen, sqlClose, sqlBegin, sqlCommit, sqlPut, sqlGet,
     sqlReadBegin, sqlReadEnd, "", 0, 0, 0, 0, 0},
#ifdef HKV_HAVE_LMDB
    {"lmdb", 0, lmdbOpen, lmdbClose, lmdbBegin, lmdbCommit, lmdbPut, lmdbGet,
     lmdbReadBegin, lmdbReadEnd, "", 0, 0, 0, 0, 0},
#endif
    {"floor", 0, floorOpen, floorClose, floorNop, floorNop, floorPut, floorGet,
     0, 0, "", 0, 0, 0, 0, 0},
};
#define NSYS ((int)(sizeof(aSys) / sizeof(aSys[0])))

static int sysWanted(const Sys *s) {
  return !zOnlySystem || !strcmp(zOnlySystem, s->zName);
}

/* ---- the measurements ---- */

static volatile long nSink;

static double loadAll(Sys *s, long n) {
  double t0 = now();
  for (long i = 0; i < n; i += 1000) {
    s->xBegin(s);
    long iEnd = i + 1000 < n ? i + 1000 : n;
    for (long j = i; j < iEnd; j++) s->xPut(s, j);
    s->xCommit(s);
  }
  return (now() - t0) * 1e9 / (double)n;
}

/* ns per get over fSeconds of gets: i runs on
** through the keys, key-(i % N), or the permutation's i % N-th key. */
static double getLoop(Sys *s, long n, int bRandom) {
  long nDone = 0, nMiss = 0, sum = 0;
  double t0 = now(), t;
  do {
    for (int k = 0; k < 4096; k++, nDone++) {
      long i = nDone % n;
      long r = s->xGet(s, bRandom ? (long)aPerm[i] : i);
      if (r < 0) nMiss++;
      sum += r;
    }
    t = now() - t0;
  } while (t < fSeconds);
  if (nMiss) die("%s: %ld gets missed", s->zName, nMiss);
  nSink += sum;
  return t * 1e9 / (double)nDone;
}

static void runSize(long n) {
  makeKeys(n);
  for (int rep = 0; rep < nReps; rep++) {
    for (int k = 0; k < NSYS; k++) {
      Sys *s = &aSys[k];
      if (!sysWanted(s)) continue;
      if (rep > 0) s->xClose(s);
      s->xOpen(s);
      progress("n=%ld rep %d/%d: load %s", n, rep + 1, nReps, s->zName);
      record(s->zName, "put", n, loadAll(s, n));
    }
    for (int bRandom = 0; bRandom < 2; bRandom++) {
      for (int k = 0; k < NSYS; k++) {
        Sys *s = &aSys[k];
        if (!sysWanted(s)) continue;
        const char *zOp = bRandom ? "get_random" : "get";
        progress("n=%ld rep %d/%d: %s %s", n, rep + 1, nReps, zOp, s->zName);
        if (!s->bSql && s->xReadBegin) s->xReadBegin(s);
        record(s->zName, zOp, n, getLoop(s, n, bRandom));
        if (!s->bSql && s->xReadEnd) s->xReadEnd(s);
        if (s->bSql) {
          char zTxn[40];
          snprintf(zTxn, sizeof(zTxn), "%s_txn", zOp);
          s->xReadBegin(s);
          record(s->zName, zTxn, n, getLoop(s, n, bRandom));
          s->xReadEnd(s);
        }
      }
    }
  }
  for (int k = 0; k < NSYS; k++) {
    if (sysWanted(&aSys[k])) aSys[k].xClose(&aSys[k]);
  }
}

/* ---- extras ---- */

static hkv_db *openStore(const char *zName, int sync) {
  char z[700];
  snprintf(z, sizeof(z), "%s/%s", zBase, zName);
  hkv_options o;
  hkv_options_init(&o);
  o.sync = sync;
  hkv_db *db = 0;
  if (hkv_open(z, &o, &db)) die("open %s: %s", z, hkv_errmsg(db));
  return db;
}

static void extraSyncModes(void) {
  static const char *azSync[] = {"off", "normal", "full"};
  makeKeys(1000000);
  for (int sync = 0; sync < 3; sync++) {
    for (int bTxn = 0; bTxn < 2; bTxn++) {
      long n = bTxn ? 1000000 : (sync == 2 ? 500 : 200000);
      for (int rep = 0; rep < nReps; rep++) {
        char zName[64];
        snprintf(zName, sizeof(zName), "sync-%d-%d", sync, bTxn);
        char zPath[700];
        snprintf(zPath, sizeof(zPath), "%s/%s", zBase, zName);
        rmTree(zPath);
        hkv_db *db = openStore(zName, sync);
        progress("puts sync=%s %s rep %d", azSync[sync],
                 bTxn ? "txn of 1000" : "single", rep + 1);
        double t0 = now();
        for (long i = 0; i < n; i += (bTxn ? 1000 : 1)) {
          if (bTxn) hkv_begin(db);
          long iEnd = bTxn ? (i + 1000 < n ? i + 1000 : n) : i + 1;
          for (long j = i; j < iEnd; j++) {
            if (hkv_put(db, aKey[j], (size_t)aKeyLen[j], aVal[j],
                        (size_t)aValLen[j])) {
              die("put: %s", hkv_errmsg(db));
            }
          }
          if (bTxn && hkv_commit(db)) die("commit: %s", hkv_errmsg(db));
        }
        double ns = (now() - t0) * 1e9 / (double)n;
        char zOp[64];
        snprintf(zOp, sizeof(zOp), "put_sync_%s_%s", azSync[sync],
                 bTxn ? "txn1000" : "single");
        record("engine", zOp, n, ns);
        hkv_close(db);
        rmTree(zPath);
      }
    }
  }
}

/* A bulk load through SQL, two ways, 1,000,000 rows in one transaction:
** the prepared INSERT of the table above, bound and stepped once per row
** (bulk_insert_prepared: the statements the issue's ratio is about), and
** one INSERT ... SELECT from a recursive CTE that makes the rows inside
** SQLite (bulk_insert_select: the CTE's own cost is in both columns). */
static void extraBulkSql(void) {
  long n = 1000000;
  makeKeys(n);
  for (int rep = 0; rep < nReps; rep++) {
    for (int bSelect = 0; bSelect <= 1; bSelect++) {
      for (int k = 1; k <= 2; k++) {
        Sys *s = &aSys[k]; /* vtab, native */
        s->xOpen(s);
        progress("bulk INSERT (%s) through SQL: %s rep %d",
                 bSelect ? "SELECT" : "prepared", s->zName, rep + 1);
        char z[300];
        snprintf(z, sizeof(z),
                 "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 "
                 "FROM c WHERE i < %ld) INSERT INTO %s SELECT 'key-' || i, "
                 "'value-' || i FROM c",
                 n - 1, k == 1 ? "kv" : "n");
        double t0 = now();
        sqlExec(s->db, "BEGIN");
        if (bSelect) {
          sqlExec(s->db, z);
        } else {
          for (long i = 0; i < n; i++) sqlPut(s, i);
        }
        sqlExec(s->db, "COMMIT");
        record(s->zName,
               bSelect ? "bulk_insert_select" : "bulk_insert_prepared", n,
               (now() - t0) * 1e9 / (double)n);
        s->xClose(s);
      }
    }
  }
}

/* A new store zName (sync=off) holding key-i -> value-i for i < n, written
** in transactions of 1,000; its path goes to zPath (700 bytes). */
static hkv_db *freshLoaded(const char *zName, long n, char *zPath) {
  snprintf(zPath, 700, "%s/%s", zBase, zName);
  rmTree(zPath);
  hkv_db *db = openStore(zName, HKV_SYNC_OFF);
  for (long i = 0; i < n; i += 1000) {
    hkv_begin(db);
    for (long j = i; j < i + 1000 && j < n; j++) {
      if (hkv_put(db, aKey[j], (size_t)aKeyLen[j], aVal[j],
                  (size_t)aValLen[j])) {
        die("put: %s", hkv_errmsg(db));
      }
    }
    if (hkv_commit(db)) die("commit: %s", hkv_errmsg(db));
  }
  return db;
}

/*
** Queries beyond key = ? (issue 21), through SQL on the hashkv table and
** the native one side by side: 1,000,000 rows 'user:%07d' -> 'v' || (i %
** 1000), loaded by one INSERT ... SELECT each. Each query runs on kv, then
** on native, within each repetition; one that takes under 50 ms is repeated
** until 50 ms have passed and timed per run. Figures in ms.
*/
typedef struct Query {
  const char *zOp;  /* result name (_ms: the figure is in ms) */
  const char *zSql; /* "@" stands for the table */
} Query;

/* zTpl with each "@" replaced by zTab, into z (nz bytes). */
static void querySql(char *z, size_t nz, const char *zTpl, const char *zTab) {
  size_t i = 0;
  for (; *zTpl && i + 1 < nz; zTpl++) {
    if (*zTpl != '@') {
      z[i++] = *zTpl;
      continue;
    }
    for (const char *t = zTab; *t && i + 1 < nz; t++) z[i++] = *t;
  }
  z[i] = 0;
}
static const Query aQuery[] = {
    {"q_sum_length_value_ms", "SELECT sum(length(value)) FROM @"},
    {"q_count_value_eq_ms", "SELECT count(*) FROM @ WHERE value = 'v77'"},
    {"q_count_ms", "SELECT count(*) FROM @"},
    {"q_count_key_like_ms",
     "SELECT count(*) FROM @ WHERE key LIKE 'user:05000%'"},
    {"q_count_key_glob_ms",
     "SELECT count(*) FROM @ WHERE key GLOB 'user:05000*'"},
    {"q_count_key_range_ms",
     "SELECT count(*) FROM @ WHERE key >= 'user:0500000' AND key < "
     "'user:0500100'"},
    {"q_sum_value_range_ms",
     "SELECT sum(length(value)) FROM @ WHERE key BETWEEN 'user:0500000' AND "
     "'user:0500099'"},
    {"q_max_key_ms", "SELECT max(key) FROM @"},
    {"q_order_key_limit_ms", "SELECT key FROM @ ORDER BY key LIMIT 10"},
    {"q_range_order_limit_ms",
     "SELECT key, value FROM @ WHERE key >= 'user:0500000' AND key < "
     "'user:0500100' ORDER BY key LIMIT 10"},
    {"q_point_key_eq_ms", "SELECT value FROM @ WHERE key = 'user:0500000'"},
};
#define NQUERY ((int)(sizeof(aQuery) / sizeof(aQuery[0])))

/* ms per run of zSql on db. */
static double timeQuery(sqlite3 *db, const char *zSql) {
  sqlite3_stmt *pStmt = 0;
  if (sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0)) {
    die("%s: %s", zSql, sqlite3_errmsg(db));
  }
  long nRun = 0;
  double t0 = now(), t;
  do {
    int rc;
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
      nSink += sqlite3_column_int(pStmt, 0);
    }
    if (rc != SQLITE_DONE) die("%s: %s", zSql, sqlite3_errmsg(db));
    sqlite3_reset(pStmt);
    nRun++;
    t = now() - t0;
  } while (t < 0.05);
  sqlite3_finalize(pStmt);
  return t * 1e3 / (double)nRun;
}

static void extraQueries(void) {
  long n = 1000000;
  Sys *aS[2] = {&aSys[1], &aSys[2]}; /* vtab, native */
  const char *azTab[2] = {"kv", "n"};
  for (int k = 0; k < 2; k++) {
    aS[k]->xOpen(aS[k]);
    progress("queries: loading %ld rows into %s", n, aS[k]->zName);
    char z[300];
    snprintf(z, sizeof(z),
             "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c "
             "WHERE i < %ld) INSERT INTO %s SELECT printf('user:%%07d', i), "
             "'v' || (i %% 1000) FROM c",
             n - 1, azTab[k]);
    sqlExec(aS[k]->db, z);
  }
  for (int rep = 0; rep < nReps; rep++) {
    progress("queries rep %d", rep + 1);
    for (int q = 0; q < NQUERY; q++) {
      for (int k = 0; k < 2; k++) {
        char z[300];
        querySql(z, sizeof(z), aQuery[q].zSql, azTab[k]);
        record(aS[k]->zName, aQuery[q].zOp, n, timeQuery(aS[k]->db, z));
      }
    }
  }
  for (int k = 0; k < 2; k++) aS[k]->xClose(aS[k]);
  if (bJson) return;
  printf(
      "\n| query (1,000,000 rows) | kv ms | native ms | kv/native |\n"
      "|---|---|---|---|\n");
  for (int q = 0; q < NQUERY; q++) {
    double a = lookup("vtab", aQuery[q].zOp, n);
    double b = lookup("native", aQuery[q].zOp, n);
    char z[300];
    querySql(z, sizeof(z), aQuery[q].zSql, "t");
    printf("| `%s` | %.3f | %.3f | %.2f |\n", z, a, b, a / b);
  }
}

static void extraOpenAndSpace(void) {
  long n = 1000000;
  makeKeys(n);
  char zPath[700];
  hkv_db *db = freshLoaded("open", n, zPath);
  hkv_stats st;
  hkv_stats_get(db, &st);
  record("engine", "index_bytes_per_key", n,
         (double)st.index_bytes / (double)st.live_keys);
  record("engine", "disk_bytes_per_key", n,
         (double)st.total_bytes / (double)st.live_keys);
  hkv_close(db);
  for (int rep = 0; rep < nReps; rep++) {
    progress("open of a 1,000,000-key store rep %d", rep + 1);
    double t0 = now();
    db = openStore("open", HKV_SYNC_OFF);
    record("engine", "open_no_hints_ms", n, (now() - t0) * 1e3);
    hkv_close(db);
  }
  rmTree(zPath);
}

/* The next key index of a random sequence. */
static long nextRandomKey(uint64_t *pS) {
  return (long)(xorshift64(pS) % (uint64_t)nKeys);
}

/* 1,000 gets of random keys, every one of which must be there. */
static long get1000(hkv_db *db, uint64_t *pS) {
  for (int k = 0; k < 1000; k++) {
    long i = nextRandomKey(pS);
    const void *pV;
    size_t nV;
    if (hkv_get(db, aKey[i], (size_t)aKeyLen[i], &pV, &nV)) {
      die("get: %s", hkv_errmsg(db));
    }
  }
  return 1000;
}

/* Reader threads doing random gets while one thread writes. */
typedef struct Crowd {
  const char *zPath;
  volatile int bStop;
  long nGets;
} Crowd;

static void *crowdReader(void *p) {
  Crowd *c = p;
  hkv_db *db = 0;
  if (hkv_open(c->zPath, 0, &db)) die("open");
  long nDone = 0;
  uint64_t s = (uint64_t)(uintptr_t)&nDone | 1;
  while (!c->bStop) nDone += get1000(db, &s);
  __sync_fetch_and_add(&c->nGets, nDone);
  hkv_close(db);
  return 0;
}

static void extraReaders(void) {
  long n = 1000000;
  makeKeys(n);
  char zPath[700];
  hkv_db *w = freshLoaded("crowd", n, zPath);
  static const int anThreads[] = {1, 2, 4};
  for (int t = 0; t < 3; t++) {
    for (int rep = 0; rep < nReps; rep++) {
      progress("%d reader thread(s) beside a writer, rep %d", anThreads[t],
               rep + 1);
      Crowd c = {zPath, 0, 0};
      pthread_t aT[4];
      for (int k = 0; k < anThreads[t]; k++) {
        pthread_create(&aT[k], 0, crowdReader, &c);
      }
      double t0 = now();
      long nPut = 0;
      while (now() - t0 < fSeconds) {
        hkv_begin(w);
        for (int k = 0; k < 100; k++, nPut++) {
          long i = nPut % n;
          hkv_put(w, aKey[i], (size_t)aKeyLen[i], aVal[i], (size_t)aValLen[i]);
        }
        hkv_commit(w);
      }
      c.bStop = 1;
      for (int k = 0; k < anThreads[t]; k++) pthread_join(aT[k], 0);
      double el = now() - t0;
      char zOp[64];
      snprintf(zOp, sizeof(zOp), "get_random_%d_readers_1_writer",
               anThreads[t]);
      record("engine", zOp, n, el * 1e9 / (double)c.nGets);
    }
  }
  hkv_close(w);
  rmTree(zPath);
}

/* ---- several processes ----
** (a) Random gets in one process, alone and then beside another process
** that writes transactions of 100 puts in a loop (every commit makes the
** reader catch up). (b) A point SELECT through SQL in a process whose view
** is current, alone and then with a second process holding the same table
** open (idle): the cost of the cross-process check. Alternated, medians. */
static long randomGets(hkv_db *db, double fSec, uint64_t *pSeed) {
  long nDone = 0;
  double t0 = now();
  uint64_t s = *pSeed;
  while (now() - t0 < fSec) nDone += get1000(db, &s);
  *pSeed = s;
  return nDone;
}

/* Forks a process that opens zPath and, if bWrite, writes transactions of
** 100 puts until *pStop; else just holds the store open. */
static pid_t helperProcess(const char *zPath, int bWrite, volatile int *pStop,
                           volatile int *pReady) {
  pid_t pid = fork();
  if (pid < 0) die("fork");
  if (pid > 0) {
    while (!*pReady) usleep(1000);
    return pid;
  }
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_NORMAL;
  hkv_db *db = 0;
  if (hkv_open(zPath, &o, &db)) _exit(1);
  const void *pV;
  size_t nV;
  hkv_get(db, aKey[0], (size_t)aKeyLen[0], &pV, &nV);
  *pReady = 1;
  long nPut = 0;
  while (!*pStop) {
    if (!bWrite) {
      usleep(1000);
      continue;
    }
    hkv_begin(db);
    for (int k = 0; k < 100; k++, nPut++) {
      long i = (nPut * 7919) % nKeys;
      hkv_put(db, aKey[i], (size_t)aKeyLen[i], aVal[i], (size_t)aValLen[i]);
    }
    if (hkv_commit(db)) _exit(2);
  }
  pReady[1] = (int)(nPut / 1000); /* thousands of puts, for the report */
  hkv_close(db);
  _exit(0);
}

static void extraProcesses(void) {
  long n = 1000000;
  makeKeys(n);
  char zPath[700];
  hkv_db *w = freshLoaded("procs", n, zPath);
  hkv_close(w);
  volatile int *aFlag =
      mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (aFlag == MAP_FAILED) die("mmap");
  hkv_db *r = 0;
  if (hkv_open(zPath, 0, &r)) die("open: %s", hkv_errmsg(r));
  uint64_t seed = 88172645463325252ull;
  randomGets(r, 0.3, &seed); /* warm */
  for (int rep = 0; rep < nReps; rep++) {
    progress("gets in a process alone / beside a writer process, rep %d",
             rep + 1);
    long nAlone = randomGets(r, fSeconds, &seed);
    record("engine", "get_random_process_alone", n, fSeconds * 1e9 / nAlone);
    aFlag[0] = 0;
    aFlag[1] = 0;
    pid_t pid = helperProcess(zPath, 1, &aFlag[0], &aFlag[1]);
    long nBeside = randomGets(r, fSeconds, &seed);
    aFlag[0] = 1;
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) die("writer process failed");
    record("engine", "get_random_beside_writer_process", n,
           fSeconds * 1e9 / nBeside);
    record("engine", "writer_process_puts_per_s", n,
           (double)aFlag[2] * 1000.0 / fSeconds);
  }
  hkv_close(r);

  /* (b) through SQL */
  char zDb[800];
  snprintf(zDb, sizeof(zDb), "%s/procs.db", zBase);
  unlink(zDb);
  sqlite3 *db = 0;
  if (sqlite3_open(zDb, &db)) die("sqlite3_open");
  sqlExec(db, "PRAGMA journal_mode=WAL");
  char zSql[1200];
  snprintf(zSql, sizeof(zSql),
           "CREATE VIRTUAL TABLE kv USING hashkv(path='%s-sql', sync='off');"
           "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c "
           "WHERE i < %ld) INSERT INTO kv SELECT 'key-' || i, 'value-' || i "
           "FROM c",
           zPath, n - 1);
  sqlExec(db, zSql);
  sqlite3_stmt *pSel = 0;
  if (sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?", -1, &pSel,
                         0)) {
    die("prepare");
  }
  char zStore[800];
  snprintf(zStore, sizeof(zStore), "%s-sql", zPath);
  for (int rep = 0; rep < 2 * nReps; rep++) {
    int bShared = rep % 2;
    progress("point SELECT, store %s, rep %d",
             bShared ? "open in a second process" : "in one process",
             rep / 2 + 1);
    pid_t pid = 0;
    aFlag[0] = 0;
    aFlag[1] = 0;
    if (bShared) pid = helperProcess(zStore, 0, &aFlag[0], &aFlag[1]);
    long nDone = 0;
    uint64_t s = seed;
    double t0 = now();
    while (now() - t0 < fSeconds) {
      for (int k = 0; k < 1000; k++) {
        long i = nextRandomKey(&s);
        sqlite3_bind_text(pSel, 1, aKey[i], aKeyLen[i], SQLITE_STATIC);
        if (sqlite3_step(pSel) != SQLITE_ROW) die("select: no row");
        sqlite3_reset(pSel);
        nDone++;
      }
    }
    double el = now() - t0;
    seed = s;
    if (bShared) {
      aFlag[0] = 1;
      waitpid(pid, 0, 0);
    }
    record("vtab",
           bShared ? "select_point_random_2_processes"
                   : "select_point_random_1_process",
           n, el * 1e9 / (double)nDone);
  }
  sqlite3_finalize(pSel);
  sqlite3_close(db);
  munmap((void *)aFlag, 4096);
  rmTree(zPath);
  rmTree(zStore);
  unlink(zDb);
}

/* Compaction: space after churn, rewrite rate, open with hints, and put
** latency while automatic compaction runs. */
static int cmpDoubleAsc(const void *a, const void *b) {
  return cmpDouble(a, b);
}

static void loadRounds(hkv_db *db, long n, int nRounds) {
  char v[32];
  for (int r = 0; r < nRounds; r++) {
    for (long i = 0; i < n; i += 1000) {
      hkv_begin(db);
      for (long j = i; j < i + 1000 && j < n; j++) {
        int nV = snprintf(v, sizeof(v), "value-%ld-%d", j, r);
        if (hkv_put(db, aKey[j], (size_t)aKeyLen[j], v, (size_t)nV)) {
          die("put: %s", hkv_errmsg(db));
        }
      }
      if (hkv_commit(db)) die("commit: %s", hkv_errmsg(db));
    }
  }
}

static uint64_t dirBytes(const char *zDir) {
  DIR *d = opendir(zDir);
  uint64_t n = 0;
  struct dirent *pEnt;
  while (d && (pEnt = readdir(d)) != 0) {
    char z[1024];
    struct stat st;
    snprintf(z, sizeof(z), "%s/%s", zDir, pEnt->d_name);
    if (stat(z, &st) == 0 && S_ISREG(st.st_mode)) n += (uint64_t)st.st_size;
  }
  if (d) closedir(d);
  return n;
}

/* ---- keys that expire ---- */

static int64_t wallMs(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Random gets over n keys of store db, ns per get (median of nReps). */
static double timeGets(hkv_db *db, long n) {
  long nOps = 0, sum = 0;
  double t0 = now(), t;
  do {
    for (long j = 0; j < n; j++) {
      long i = aPerm[j];
      const void *p;
      size_t nV;
      if (hkv_get(db, aKey[i], (size_t)aKeyLen[i], &p, &nV)) die("get");
      sum += ((const char *)p)[0];
    }
    nOps += n;
    t = now() - t0;
  } while (t < fSeconds);
  if (sum == 42) progress("(unlikely)");
  return t * 1e9 / (double)nOps;
}

/* The cache: single puts at nRate a second for nSec seconds of keys
** expiring nTtl ms after they are written (bManual: without expiry, each
** put deleting the key put nTtl ms before). Records the largest disk and
** index over the second half against the live data, and ns a put. */
static void cacheRun(int bManual, long nRate, int nSec, int64_t nTtl) {
  char zPath[700];
  const char *zName = bManual ? "cache-manual" : "cache-ttl";
  snprintf(zPath, sizeof(zPath), "%s/%s", zBase, zName);
  rmTree(zPath);
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.segment_size = 4u << 20;
  o.auto_compact = 0.5;
  o.auto_compact_min = o.segment_size;
  hkv_db *db = 0;
  if (hkv_open(zPath, &o, &db)) die("open %s: %s", zPath, hkv_errmsg(db));
  long nMax = nRate * nSec + 1;
  int64_t *aAt = malloc((size_t)nMax * sizeof(int64_t));
  if (!aAt) die("out of memory");
  char zKey[32], zVal[100];
  memset(zVal, 'c', sizeof(zVal));
  const uint64_t nRec = 20 + 8 + 16 + sizeof(zVal); /* one record's bytes */
  double rDisk = 0, rIndex = 0, tPut = 0;
  long nPut = 0, iOld = 0, nPutHalf = -1;
  int64_t tStart = wallMs();
  double tNextSample = 0.1;
  for (;;) {
    int64_t tNow = wallMs();
    double tEl = (double)(tNow - tStart) / 1000.0;
    if (tEl >= nSec) break;
    long nDue = (long)(tEl * (double)nRate);
    if (nPut >= nDue) {
      struct timespec ts = {0, 200000}; /* 0.2 ms */
      nanosleep(&ts, 0);
      continue;
    }
    double t0 = now();
    for (; nPut < nDue && nPut < nMax; nPut++) {
      snprintf(zKey, sizeof(zKey), "cache-%010ld", nPut);
      int rc;
      if (bManual) {
        rc = hkv_put(db, zKey, 16, zVal, sizeof(zVal));
        while (!rc && iOld < nPut && aAt[iOld] + nTtl <= tNow) {
          char zOld[32];
          snprintf(zOld, sizeof(zOld), "cache-%010ld", iOld++);
          rc = hkv_delete(db, zOld, 16);
        }
      } else {
        rc = hkv_put_expiring(db, zKey, 16, zVal, sizeof(zVal), tNow + nTtl);
      }
      if (rc) die("cache put: %s", hkv_errmsg(db));
      aAt[nPut] = tNow;
    }
    if (tEl >= nSec / 2.0) {
      tPut += now() - t0; /* the second half: steady state */
    } else {
      nPutHalf = nPut;
    }
    if (tEl >= tNextSample) {
      tNextSample += 0.1;
      /* Live: the keys written in the last TTL. */
      long nLive = 0;
      for (long j = nPut - 1; j >= 0 && aAt[j] + nTtl > tNow; j--) nLive++;
      hkv_stats st;
      hkv_stats_get(db, &st);
      if (tEl >= nSec / 2.0 && nLive > 0) {
        double rD = (double)st.total_bytes /
                    (double)(nLive * nRec + o.segment_size);
        /* The index of a table holding just the live keys is at most
        ** 21.3 bytes a key (75% .. 37.5% full). */
        double rI = (double)st.index_bytes / ((double)nLive * 64.0 / 3.0);
        if (rD > rDisk) rDisk = rD;
        if (rI > rIndex) rIndex = rI;
      }
    }
  }
  hkv_stats st;
  hkv_stats_get(db, &st);
  record("engine", bManual ? "cache_manual_put_ns" : "cache_ttl_put_ns", nRate,
         tPut * 1e9 / (double)(nPut - nPutHalf));
  if (!bManual) {
    record("engine", "cache_disk_x_live_plus_segment", nRate, rDisk);
    record("engine", "cache_index_x_live_index", nRate, rIndex);
    record("engine", "cache_expired_keys", nRate, (double)st.expired_keys);
    record("engine", "cache_compactions", nRate, (double)st.compactions);
  } else {
    record("engine", "cache_manual_disk_x_live_plus_segment", nRate, rDisk);
  }
  free(aAt);
  hkv_close(db);
  rmTree(zPath);
}

static void extraTtl(void) {
  long n = 1000000;
  makeKeys(n);
  progress("ttl: loading 1,000,000 keys twice (plain, expiring in 2100)");
  hkv_db *aDb[2];
  char zName[2][16] = {"ttl-plain", "ttl-exp"};
  for (int k = 0; k < 2; k++) {
    char zPath[700];
    snprintf(zPath, sizeof(zPath), "%s/%s", zBase, zName[k]);
    rmTree(zPath);
    aDb[k] = openStore(zName[k], HKV_SYNC_OFF);
    for (long i = 0; i < n; i += 1000) {
      hkv_begin(aDb[k]);
      for (long j = i; j < i + 1000 && j < n; j++) {
        int rc = k ? hkv_put_expiring(aDb[k], aKey[j], (size_t)aKeyLen[j],
                                      aVal[j], (size_t)aValLen[j],
                                      4102444800000)
                   : hkv_put(aDb[k], aKey[j], (size_t)aKeyLen[j], aVal[j],
                             (size_t)aValLen[j]);
        if (rc) die("load: %s", hkv_errmsg(aDb[k]));
      }
      if (hkv_commit(aDb[k])) die("commit");
    }
  }
  for (int rep = 0; rep < nReps; rep++) {
    for (int k = 0; k < 2; k++) {
      record("engine", k ? "get_random_expiring" : "get_random_plain", n,
             timeGets(aDb[k], n));
    }
  }
  for (int k = 0; k < 2; k++) hkv_close(aDb[k]);
  progress("ttl: a cache, 100,000 puts/s expiring after 1 s, for 20 s");
  cacheRun(0, 100000, 20, 1000);
  progress("ttl: the same, bounded by deletes, for 20 s");
  cacheRun(1, 100000, 20, 1000);
}

static void extraCompaction(void) {
  char zPath[700];
  hkv_stats st;
  for (int rep = 0; rep < nReps; rep++) {
    /* 100,000 keys overwritten five times, half deleted, compacted. */
    long n = 100000;
    makeKeys(n);
    snprintf(zPath, sizeof(zPath), "%s/churn", zBase);
    rmTree(zPath);
    progress("compaction: 100,000 keys x 5 rounds, half deleted, rep %d",
             rep + 1);
    hkv_db *db = openStore("churn", HKV_SYNC_NORMAL);
    loadRounds(db, n, 6);
    for (long i = 0; i < n; i += 2) hkv_delete(db, aKey[i], (size_t)aKeyLen[i]);
    if (hkv_compact(db)) die("compact: %s", hkv_errmsg(db));
    hkv_stats_get(db, &st);
    /* Every file in the directory (segments, hints, manifest) over the
    ** bytes of the live records. */
    record("engine", "space_after_compaction_x_live", n,
           (double)dirBytes(zPath) / (double)st.live_bytes);
    hkv_close(db);
    db = openStore("churn", HKV_SYNC_NORMAL);
    long nFound = 0;
    for (long i = 0; i < n; i++) {
      const void *p;
      size_t nV;
      nFound += hkv_get(db, aKey[i], (size_t)aKeyLen[i], &p, &nV) == HKV_OK;
    }
    if (nFound != n / 2) die("after compaction %ld of %ld keys", nFound, n / 2);
    hkv_close(db);
    rmTree(zPath);

    /* 1,000,000 keys, each written twice: rewrite rate and open time. */
    n = 1000000;
    makeKeys(n);
    snprintf(zPath, sizeof(zPath), "%s/big", zBase);
    rmTree(zPath);
    progress("compaction: 1,000,000 keys written twice, rep %d", rep + 1);
    db = openStore("big", HKV_SYNC_NORMAL);
    loadRounds(db, n, 2);
    /* The load's own data goes to disk first (sync=normal never fsyncs it),
    ** so the time is the compaction's: sealing, reading, writing and
    ** fsyncing its output, and the switch. */
    sync();
    double t0 = now();
    if (hkv_compact(db)) die("compact: %s", hkv_errmsg(db));
    double t = now() - t0;
    hkv_stats_get(db, &st);
    record("engine", "compaction_MB_per_s", n, (double)st.live_bytes / t / 1e6);
    hkv_close(db);
    t0 = now();
    db = openStore("big", HKV_SYNC_NORMAL);
    record("engine", "open_with_hints_ms", n, (now() - t0) * 1e3);
    hkv_close(db);
    rmTree(zPath);
  }

  /* Single puts (sync=normal) while automatic compaction runs: a store whose
  ** sealed data is half dead, reopened with auto_compact on; every put from
  ** the first until the compaction finishes is timed. */
  long n = 1000000;
  makeKeys(n);
  snprintf(zPath, sizeof(zPath), "%s/auto", zBase);
  rmTree(zPath);
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_NORMAL;
  o.auto_compact = 0;
  o.segment_size = 16u << 20;
  hkv_db *db = 0;
  progress("put latency while compaction runs");
  if (hkv_open(zPath, &o, &db)) die("open: %s", hkv_errmsg(db));
  loadRounds(db, n, 2);
  hkv_close(db);
  o.auto_compact = 0.3;
  o.auto_compact_min = 0;
  if (hkv_open(zPath, &o, &db)) die("open: %s", hkv_errmsg(db));
  long nMax = 2000000, nPut = 0;
  double *aLat = malloc((size_t)nMax * sizeof(double));
  char v[32];
  hkv_stats st2;
  memset(&st2, 0, sizeof(st2));
  while (nPut < nMax && st2.compactions == 0) {
    long k = (long)aPerm[nPut % n];
    int nV = snprintf(v, sizeof(v), "again-%ld", k);
    double t0 = now();
    if (hkv_put(db, aKey[k], (size_t)aKeyLen[k], v, (size_t)nV)) {
      die("put: %s", hkv_errmsg(db));
    }
    aLat[nPut++] = (now() - t0) * 1e9;
    hkv_stats_get(db, &st2);
  }
  if (st2.compactions == 0) die("no compaction ran during the latency test");
  qsort(aLat, (size_t)nPut, sizeof(double), cmpDoubleAsc);
  record("engine", "put_p50_during_compaction", nPut, aLat[nPut / 2]);
  record("engine", "put_p99_during_compaction", nPut, aLat[nPut * 99 / 100]);
  record("engine", "put_max_during_compaction", nPut, aLat[nPut - 1]);
  free(aLat);
  hkv_close(db);
  rmTree(zPath);
}

/* ---- output ---- */

static void printFigure(double v) {
  if (isnan(v)) {
    printf(" | -");
  } else if (v < 10) {
    printf(" | %.3f", v);
  } else if (v >= 100) {
    printf(" | %.0f", v);
  } else {
    printf(" | %.1f", v);
  }
}

static void printRatio(double a, double b) {
  if (isnan(a) || isnan(b) || b == 0) {
    printf(" | -");
  } else {
    printf(" | %.2f", a / b);
  }
}

static void printTables(const long *aN, int nN) {
  static const char *azOp[] = {"put", "get", "get_random", "get_txn",
                               "get_random_txn"};
  if (!bRunMain) nN = 0;
  if (nN) {
    printf("| op | N |");
    for (int k = 0; k < NSYS; k++) printf(" %s ns |", aSys[k].zName);
    printf(" engine/native | vtab/native | engine/floor | lmdb/floor |\n");
    printf("|---|---|");
    for (int k = 0; k < NSYS + 4; k++) printf("---|");
    printf("\n");
  }
  for (int o = 0; o < 5; o++) {
    for (int i = 0; i < nN; i++) {
      long n = aN[i];
      printf("| %s | %ld", azOp[o], n);
      for (int k = 0; k < NSYS; k++)
        printFigure(lookup(aSys[k].zName, azOp[o], n));
      printRatio(lookup("engine", azOp[o], n), lookup("native", azOp[o], n));
      printRatio(lookup("vtab", azOp[o], n), lookup("native", azOp[o], n));
      printRatio(lookup("engine", azOp[o], n), lookup("floor", azOp[o], n));
      printRatio(lookup("lmdb", azOp[o], n), lookup("floor", azOp[o], n));
      printf(" |\n");
    }
  }
  int bHead = 0;
  for (int i = 0; i < nRes; i++) {
    Result *r = &aRes[i];
    int bMain = 0;
    for (int o = 0; o < 5; o++) bMain |= !strcmp(r->zOp, azOp[o]);
    if (bMain) continue;
    if (!bHead) {
      printf("\n| figure | system | N | median |\n|---|---|---|---|\n");
      bHead = 1;
    }
    printf("| %s | %s | %ld", r->zOp, r->zSys, r->n);
    printFigure(median(r));
    printf(" |\n");
  }
  printf(
      "\nns per op unless named otherwise; medians of %d runs; "
      "%.1f s of gets per run.\n",
      nReps, fSeconds);
}

static void printJson(FILE *out) {
  for (int i = 0; i < nRes; i++) {
    Result *r = &aRes[i];
    fprintf(out,
            "{\"system\": \"%s\", \"op\": \"%s\", \"n\": %ld, "
            "\"ns_per_op\": %.3f}\n",
            r->zSys, r->zOp, r->n, median(r));
  }
}

int main(int argc, char **argv) {
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--json")) {
      bJson = 1;
    } else if (!strcmp(argv[i], "--json-out") && i + 1 < argc) {
      zJsonOut = argv[++i];
    } else if (!strcmp(argv[i], "--n") && i + 1 < argc) {
      nOnlyN = atol(argv[++i]);
    } else if (!strcmp(argv[i], "--system") && i + 1 < argc) {
      zOnlySystem = argv[++i];
    } else if (!strcmp(argv[i], "--reps") && i + 1 < argc) {
      nReps = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
      fSeconds = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--no-extras")) {
      bExtras = 0;
    } else if (!strcmp(argv[i], "--extra") && i + 1 < argc) {
      zOnlyExtra = argv[++i];
      bRunMain = 0;
    } else if (!strcmp(argv[i], "--dir") && i + 1 < argc) {
      snprintf(zBase, sizeof(zBase), "%s", argv[++i]);
    } else {
      fprintf(stderr,
              "usage: %s [--json] [--json-out FILE] [--n N] [--system "
              "engine|vtab|native|lmdb|"
              "floor] [--reps R] [--seconds S] [--no-extras]\n  [--extra "
              "sync|sql|open|readers|compaction|procs|ttl|queries] [--dir "
              "DIR]\n",
              argv[0]);
      return 2;
    }
  }
  if (nReps < 1 || nReps > 16) die("--reps must be 1..16");
  if (zOnlySystem) {
    int bKnown = 0;
    for (int k = 0; k < NSYS; k++)
      bKnown |= !strcmp(aSys[k].zName, zOnlySystem);
    if (!bKnown) die("unknown or unavailable system '%s'", zOnlySystem);
  }
  if (!zBase[0]) {
    const char *zTmp = getenv("TMPDIR");
    snprintf(zBase, sizeof(zBase), "%s/hashkv-bench.XXXXXX",
             zTmp ? zTmp : "/tmp");
    if (!mkdtemp(zBase)) die("mkdtemp: %s", strerror(errno));
  } else {
    mkdir(zBase, 0755);
  }
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);

  long aN[] = {10000, 100000, 1000000};
  int nN = 3;
  if (nOnlyN) {
    aN[0] = nOnlyN;
    nN = 1;
  }
  for (int i = 0; bRunMain && i < nN; i++) runSize(aN[i]);
  if (bExtras && !zOnlySystem && !nOnlyN) {
    if (extraWanted("sync")) extraSyncModes();
    if (extraWanted("sql")) extraBulkSql();
    if (extraWanted("open")) extraOpenAndSpace();
    if (extraWanted("readers")) extraReaders();
    if (extraWanted("compaction")) extraCompaction();
    if (extraWanted("procs")) extraProcesses();
    if (extraWanted("ttl")) extraTtl();
    if (extraWanted("queries")) extraQueries();
  }
  if (bJson) {
    printJson(stdout);
  } else {
    printTables(aN, nN);
  }
  if (zJsonOut) {
    FILE *f = fopen(zJsonOut, "w");
    if (!f) die("cannot write %s", zJsonOut);
    printJson(f);
    fclose(f);
  }
  rmTree(zBase);
  return 0;
}
