/*
** test_fulldisk.c: a real full disk. Each test mounts a small tmpfs (CI runs
** as root), fills it until writes fail with ENOSPC, and checks what a user
** must be able to rely on: every call returns a clean code and the process
** goes on (no SIGBUS from reading records that were never written), reads
** keep working and never show the failed write, writes are refused until the
** store is reopened, and after space is freed a reopen shows every commit
** that was acknowledged, nothing else. Through the engine and through SQL.
**
** Where no file system can be mounted (not root, no CAP_SYS_ADMIN), the
** suite says so and exits 77, which ctest reports as skipped, not passed.
*/
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "testutil.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErr,
                        const sqlite3_api_routines *pApi);

static char zBase[256]; /* made by main(), removed at the end */
static char zMnt[300];  /* the tmpfs mount point */
static char zStore[340];
static char zFiller[340];

/* A fresh tmpfs of nKiB at zMnt. */
static int mountFresh(unsigned nKiB) {
  umount2(zMnt, MNT_DETACH);
  char zOpt[64];
  snprintf(zOpt, sizeof(zOpt), "size=%uk,mode=0755", nKiB);
  return mount("tmpfs", zMnt, "tmpfs", 0, zOpt);
}

static void setup(void) {
  ck_assert_msg(mountFresh(2048) == 0, "mount: %s", strerror(errno));
  snprintf(zStore, sizeof(zStore), "%s/store", zMnt);
  snprintf(zFiller, sizeof(zFiller), "%s/filler", zMnt);
}
static void teardown(void) { umount2(zMnt, MNT_DETACH); }

static uint64_t freeBytes(void) {
  struct statvfs v;
  ck_assert_int_eq(statvfs(zMnt, &v), 0);
  return (uint64_t)v.f_bavail * v.f_frsize;
}

/* Leaves about nLeave bytes free by writing a filler file. */
static void fillTo(uint64_t nLeave) {
  uint64_t nFree = freeBytes();
  int fd = open(zFiller, O_WRONLY | O_CREAT | O_APPEND, 0644);
  ck_assert_int_ge(fd, 0);
  static char aZero[4096];
  while (nFree > nLeave + sizeof(aZero)) {
    ssize_t w = write(fd, aZero, sizeof(aZero));
    if (w <= 0) break;
    nFree -= (uint64_t)w;
  }
  close(fd);
}

/* Fills the disk to the last byte. */
static void fillAll(void) {
  int fd = open(zFiller, O_WRONLY | O_CREAT | O_APPEND, 0644);
  ck_assert_int_ge(fd, 0);
  static char aZero[65536];
  for (size_t n = sizeof(aZero); n > 0; n /= 2) {
    while (write(fd, aZero, n) == (ssize_t)n) {
    }
  }
  close(fd);
}

static void freeSpace(void) { ck_assert_int_eq(unlink(zFiller), 0); }

/* ---- the engine ---- */

static hkv_db *openStore(void) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 256 << 10;
  o.auto_compact = 0;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_OK, "open: %s: %s", hkv_codename(rc), hkv_errmsg(db));
  return db;
}

static void keyOf(int i, char *z) { snprintf(z, 32, "key-%06d", i); }
static size_t valOf(int i, char *a, size_t n) {
  for (size_t j = 0; j < n; j++) a[j] = (char)('a' + (i + (int)j) % 26);
  return n;
}

/* Checks that keys [0, nOk) hold their values, [nOk, nOk + nGone) are
** absent, and a scan returns exactly nOk keys. */
static void checkKeys(hkv_db *db, int nOk, int nGone, size_t nVal) {
  char k[32], v[4096];
  for (int i = 0; i < nOk + nGone; i++) {
    keyOf(i, k);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (i < nOk) {
      ck_assert_msg(rc == HKV_OK, "get %s: %s: %s", k, hkv_codename(rc),
                    hkv_errmsg(db));
      valOf(i, v, nVal);
      ck_assert_uint_eq(n, nVal);
      ck_assert(memcmp(p, v, nVal) == 0);
    } else {
      ck_assert_msg(rc == HKV_NOTFOUND, "get %s: %s: %s", k, hkv_codename(rc),
                    hkv_errmsg(db));
    }
  }
  hkv_iter *it;
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  int nSeen = 0, rc;
  const void *pk, *pv;
  size_t nk, nv;
  while ((rc = hkv_iter_next(it, &pk, &nk, &pv, &nv)) == HKV_OK) nSeen++;
  ck_assert_msg(rc == HKV_DONE, "scan: %s: %s", hkv_codename(rc),
                hkv_errmsg(db));
  hkv_iter_close(it);
  ck_assert_int_eq(nSeen, nOk);
}

#define NVAL 2000

/* Autocommit puts until the disk is full: the failed put is absent, reads
** and scans work on this handle and a second one, writes are refused. */
START_TEST(autocommit_puts) {
  hkv_db *db = openStore();
  hkv_db *db2 = openStore();
  fillTo(300 << 10);
  char k[32], v[NVAL];
  int n = 0, rc = HKV_OK;
  for (; n < 100000; n++) {
    keyOf(n, k);
    rc = hkv_put(db, k, strlen(k), v, valOf(n, v, NVAL));
    if (rc) break;
  }
  ck_assert_msg(rc == HKV_FULL, "put %d: %s: %s", n, hkv_codename(rc),
                hkv_errmsg(db));
  ck_assert_msg(strstr(hkv_errmsg(db), "No space") != 0, "%s", hkv_errmsg(db));
  checkKeys(db, n, 1, NVAL);
  checkKeys(db2, n, 1, NVAL);
  keyOf(0, k);
  ck_rc(hkv_put(db, k, strlen(k), "x", 1), HKV_FAILED);
  ck_rc(hkv_delete(db2, k, strlen(k)), HKV_FAILED);
  hkv_close(db);
  hkv_close(db2);
  freeSpace();
  db = openStore();
  checkKeys(db, n, 1, NVAL);
  keyOf(n, k);
  ck_rc(hkv_put(db, k, strlen(k), v, valOf(n, v, NVAL)), HKV_OK);
  hkv_close(db);
}
END_TEST

/* A transaction that fills the disk: the failing put, then the rollback;
** the same with the commit's flush failing. Nothing of the transaction
** shows, everything committed before does. */
static void txnCase(int bFailAtCommit) {
  hkv_db *db = openStore();
  char k[32], v[NVAL];
  int nBase = 20;
  for (int i = 0; i < nBase; i++) {
    keyOf(i, k);
    ck_rc(hkv_put(db, k, strlen(k), v, valOf(i, v, NVAL)), HKV_OK);
  }
  fillTo(bFailAtCommit ? (50 << 10) : (300 << 10));
  ck_rc(hkv_begin(db), HKV_OK);
  int n = nBase, rc = HKV_OK;
  /* At commit: fewer bytes than the free space plus the 1 MiB write
  ** buffer, so the puts stay buffered and the commit's flush fails. */
  int nMax = bFailAtCommit ? nBase + 60 : 100000;
  for (; n < nMax; n++) {
    keyOf(n, k);
    rc = hkv_put(db, k, strlen(k), v, valOf(n, v, NVAL));
    if (rc) break;
  }
  if (bFailAtCommit) {
    ck_assert_msg(rc == HKV_OK, "put %d: %s: %s", n, hkv_codename(rc),
                  hkv_errmsg(db));
    /* The transaction's own keys read back before the commit. */
    keyOf(n - 1, k);
    const void *p;
    size_t nv;
    ck_rc(hkv_get(db, k, strlen(k), &p, &nv), HKV_OK);
    rc = hkv_commit(db);
    ck_assert_msg(rc == HKV_FULL, "commit: %s: %s", hkv_codename(rc),
                  hkv_errmsg(db));
  } else {
    ck_assert_msg(rc == HKV_FULL, "put %d: %s: %s", n, hkv_codename(rc),
                  hkv_errmsg(db));
  }
  /* Rolling back after the failure must not read the lost records. */
  hkv_rollback(db);
  checkKeys(db, nBase, n - nBase + 1, NVAL);
  hkv_close(db);
  freeSpace();
  db = openStore();
  checkKeys(db, nBase, n - nBase + 1, NVAL);
  hkv_close(db);
}

START_TEST(txn_fails_in_a_put) { txnCase(0); }
END_TEST

START_TEST(txn_fails_at_commit) { txnCase(1); }
END_TEST

/* A savepoint rolled back after the failure, then the whole transaction. */
START_TEST(rollback_to_after_failure) {
  hkv_db *db = openStore();
  char k[32], v[NVAL];
  for (int i = 0; i < 10; i++) {
    keyOf(i, k);
    ck_rc(hkv_put(db, k, strlen(k), v, valOf(i, v, NVAL)), HKV_OK);
  }
  fillTo(300 << 10);
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_savepoint(db, 1), HKV_OK);
  int n = 10, rc = HKV_OK;
  for (; n < 100000; n++) {
    keyOf(n, k);
    rc = hkv_put(db, k, strlen(k), v, valOf(n, v, NVAL));
    if (rc) break;
  }
  ck_rc(rc, HKV_FULL);
  rc = hkv_rollback_to(db, 1);
  ck_assert(rc == HKV_OK || rc == HKV_FAILED);
  hkv_rollback(db);
  checkKeys(db, 10, n - 10 + 1, NVAL);
  hkv_close(db);
  freeSpace();
  db = openStore();
  checkKeys(db, 10, n - 10 + 1, NVAL);
  hkv_close(db);
}
END_TEST

/* A compaction that runs out of space: a clean error, every key intact. */
START_TEST(compaction_fills_the_disk) {
  hkv_db *db = openStore();
  char k[32], v[NVAL];
  int nKeys = 150;
  for (int r = 0; r < 3; r++) {
    for (int i = 0; i < nKeys; i++) {
      keyOf(i, k);
      ck_rc(hkv_put(db, k, strlen(k), v, valOf(i, v, NVAL)), HKV_OK);
    }
  }
  fillTo(100 << 10);
  int rc = hkv_compact(db);
  ck_assert_msg(rc == HKV_FULL, "compact: %s: %s", hkv_codename(rc),
                hkv_errmsg(db));
  checkKeys(db, nKeys, 1, NVAL);
  hkv_close(db);
  freeSpace();
  db = openStore();
  checkKeys(db, nKeys, 1, NVAL);
  ck_rc(hkv_compact(db), HKV_OK);
  checkKeys(db, nKeys, 1, NVAL);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

/* Opening on a full disk: a new store, and an old one whose SHM was
** removed (both need SHM's 4 KiB): FULL, never SIGBUS from a mapping over
** a hole. */
START_TEST(open_on_a_full_disk) {
  hkv_db *db = openStore();
  char k[32], v[NVAL];
  for (int i = 0; i < 10; i++) {
    keyOf(i, k);
    ck_rc(hkv_put(db, k, strlen(k), v, valOf(i, v, NVAL)), HKV_OK);
  }
  hkv_close(db);
  char zShm[400];
  snprintf(zShm, sizeof(zShm), "%s/SHM", zStore);
  ck_assert_int_eq(unlink(zShm), 0);
  fillAll();
  hkv_options o;
  hkv_options_init(&o);
  db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_FULL, "open: %s: %s", hkv_codename(rc),
                hkv_errmsg(db));
  hkv_close(db);
  char zNew[400];
  snprintf(zNew, sizeof(zNew), "%s/new", zMnt);
  db = 0;
  rc = hkv_open(zNew, &o, &db);
  ck_assert_msg(rc == HKV_FULL, "new: %s: %s", hkv_codename(rc),
                hkv_errmsg(db));
  hkv_close(db);
  freeSpace();
  db = openStore();
  checkKeys(db, 10, 1, NVAL);
  hkv_close(db);
}
END_TEST

/* ---- through SQL ---- */

static sqlite3 *sqlOpen(void) {
  char zDb[400];
  snprintf(zDb, sizeof(zDb), "%s/app.db", zMnt);
  sqlite3 *db = 0;
  ck_assert_int_eq(sqlite3_open(zDb, &db), SQLITE_OK);
  ck_assert_int_eq(sqlite3_hashkv_init(db, 0, 0), SQLITE_OK);
  return db;
}

static int sqlExec(sqlite3 *db, const char *zSql) {
  return sqlite3_exec(db, zSql, 0, 0, 0);
}

static void sqlOk(sqlite3 *db, const char *zSql) {
  int rc = sqlExec(db, zSql);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", zSql, sqlite3_errmsg(db));
}

static long long sqlInt(sqlite3 *db, const char *zSql) {
  sqlite3_stmt *st;
  ck_assert_msg(sqlite3_prepare_v2(db, zSql, -1, &st, 0) == SQLITE_OK, "%s: %s",
                zSql, sqlite3_errmsg(db));
  int rc = sqlite3_step(st);
  ck_assert_msg(rc == SQLITE_ROW, "%s: %s", zSql, sqlite3_errmsg(db));
  long long v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}

/* A write that fails for want of space is SQLITE_FULL, as for a native
** table. */
static void assertFull(sqlite3 *db, int rc, const char *zWhat) {
  ck_assert_msg(rc == SQLITE_FULL, "%s: rc %d: %s", zWhat, rc,
                sqlite3_errmsg(db));
}

/* The committed state: n rows, keys 1..n, each value 'v<key>' and length. */
static void sqlCheck(sqlite3 *db, int n, long long nLen) {
  ck_assert_int_eq(sqlInt(db, "SELECT count(*) FROM kv"), n);
  ck_assert_int_eq(sqlInt(db, "SELECT sum(key) FROM kv"),
                   (long long)n * (n + 1) / 2);
  ck_assert_int_eq(sqlInt(db, "SELECT total(length(value)) FROM kv"), nLen);
  ck_assert_int_eq(sqlInt(db, "SELECT count(*) FROM kv WHERE key = 1"), 1);
}

static void sqlCase(int iCase) {
  sqlite3 *db = sqlOpen();
  sqlOk(db,
        "CREATE VIRTUAL TABLE kv USING hashkv(segment_size=262144,"
        " auto_compact=0)");
  sqlOk(db,
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c"
        " WHERE i < 300) INSERT INTO kv SELECT i, 'v' || i FROM c");
  long long nLen = sqlInt(db, "SELECT total(length(value)) FROM kv");
  fillTo(300 << 10);
  int rc;
  switch (iCase) {
    case 0: /* one statement that grows every row */
      rc = sqlExec(db, "UPDATE kv SET value = value || zeroblob(2000)");
      assertFull(db, rc, "UPDATE");
      break;
    case 1: /* many INSERTs in a transaction */
      sqlOk(db, "BEGIN");
      rc = SQLITE_OK;
      for (int i = 1000; i < 100000 && rc == SQLITE_OK; i++) {
        char z[128];
        snprintf(z, sizeof(z), "INSERT INTO kv VALUES(%d, zeroblob(2000))", i);
        rc = sqlExec(db, z);
      }
      assertFull(db, rc, "INSERT");
      sqlExec(db, "ROLLBACK");
      break;
    case 2: /* 20 INSERTs, then a COMMIT that cannot be written */
      sqlOk(db, "BEGIN");
      for (int i = 1000; i < 1020; i++) {
        char z[128];
        snprintf(z, sizeof(z), "INSERT INTO kv VALUES(%d, zeroblob(20000))", i);
        sqlOk(db, z);
      }
      rc = sqlExec(db, "COMMIT");
      assertFull(db, rc, "COMMIT");
      if (!sqlite3_get_autocommit(db)) sqlExec(db, "ROLLBACK");
      break;
    default: /* autocommit INSERTs until one fails */
      rc = SQLITE_OK;
      for (int i = 1000; i < 100000 && rc == SQLITE_OK; i++) {
        char z[128];
        snprintf(z, sizeof(z), "INSERT INTO kv VALUES(%d, zeroblob(2000))", i);
        rc = sqlExec(db, z);
        if (rc == SQLITE_OK) nLen += 2000;
      }
      assertFull(db, rc, "INSERT");
      /* What committed reads back; the failed row is simply absent. */
      sqlite3 *db2 = sqlOpen();
      long long nRows = sqlInt(db2, "SELECT count(*) FROM kv");
      ck_assert_int_ge(nRows, 300);
      ck_assert_int_eq(sqlInt(db2, "SELECT total(length(value)) FROM kv"),
                       nLen);
      sqlite3_close(db2);
      sqlite3_close(db);
      freeSpace();
      db = sqlOpen();
      ck_assert_int_eq(sqlInt(db, "SELECT count(*) FROM kv"), nRows);
      ck_assert_int_eq(sqlInt(db, "SELECT total(length(value)) FROM kv"), nLen);
      sqlite3_close(db);
      return;
  }
  /* The process is alive; reads work on this connection and a new one. */
  sqlCheck(db, 300, nLen);
  sqlite3 *db2 = sqlOpen();
  sqlCheck(db2, 300, nLen);
  sqlite3_close(db2);
  sqlite3_close(db);
  freeSpace();
  db = sqlOpen();
  sqlCheck(db, 300, nLen);
  sqlOk(db, "INSERT INTO kv VALUES(5000, 'after')");
  ck_assert_int_eq(sqlInt(db, "SELECT count(*) FROM kv"), 301);
  sqlite3_close(db);
}

START_TEST(sql_full_disk) { sqlCase(_i); }
END_TEST

int main(void) {
  const char *zTmp = getenv("TMPDIR");
  snprintf(zBase, sizeof(zBase), "%s/hkvfull.XXXXXX", zTmp ? zTmp : "/tmp");
  if (!mkdtemp(zBase)) {
    perror("mkdtemp");
    return EXIT_FAILURE;
  }
  snprintf(zMnt, sizeof(zMnt), "%s/mnt", zBase);
  if (mkdir(zMnt, 0755) != 0 || mountFresh(2048) != 0) {
    printf(
        "SKIPPED: cannot mount a tmpfs at %s (%s): the full-disk tests "
        "need root; they did not run\n",
        zMnt, strerror(errno));
    rmdir(zMnt);
    rmdir(zBase);
    return 77;
  }
  umount2(zMnt, MNT_DETACH);

  Suite *s = suite_create("fulldisk");
  TCase *tc = tcase_create("engine");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, autocommit_puts);
  tcase_add_test(tc, txn_fails_in_a_put);
  tcase_add_test(tc, txn_fails_at_commit);
  tcase_add_test(tc, rollback_to_after_failure);
  tcase_add_test(tc, compaction_fills_the_disk);
  tcase_add_test(tc, open_on_a_full_disk);
  suite_add_tcase(s, tc);
  tc = tcase_create("sql");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_loop_test(tc, sql_full_disk, 0, 4);
  suite_add_tcase(s, tc);
  int rc = runSuite(s);
  umount2(zMnt, MNT_DETACH);
  rmdir(zMnt);
  rmdir(zBase);
  return rc;
}
