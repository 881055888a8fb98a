/*
** test_faults.c: fault injection through the OS layer's hook table. For each
** kind of fault (the Nth write failing with EIO, ENOSPC or a short write; the
** Nth fsync failing; the Nth allocation failing) and N = 1, 2, ... until the
** workload runs clean: every call returns a clean code, a store that saw an
** I/O error refuses further writes, nothing leaks, and a reopen without
** faults shows every transaction that reported success, and the one that
** failed either whole or not at all. The workload ends with a compaction.
*/
#include <errno.h>
#include <fcntl.h>

#include "hkvInt.h"
#include "testutil.h"

enum { F_NONE, F_WRITE_EIO, F_WRITE_ENOSPC, F_WRITE_SHORT, F_SYNC, F_ALLOC };

static int eFault;    /* which calls count */
static long nFailAt;  /* fail the Nth counted call; 0: never */
static long nCalls;   /* counted calls so far */
static int bFired;    /* a fault was injected */
static long nLive;    /* allocations not yet freed */
static int bDiskFull; /* after a short write: every write fails */

static int hit(int eKind) {
  if (eFault != eKind) return 0;
  if (++nCalls != nFailAt) return 0;
  bFired = 1;
  return 1;
}

static long fWrite(int fd, const void *p, size_t n, uint64_t off) {
  if (hit(F_WRITE_EIO) || hit(F_WRITE_ENOSPC)) {
    return eFault == F_WRITE_EIO ? -EIO : -ENOSPC;
  }
  if (bDiskFull) return -ENOSPC;
  if (hit(F_WRITE_SHORT) && n > 1) {
    /* Half of it lands, then the disk is full: the torn half must be cut. */
    bDiskFull = 1;
    return hkvPosixEnv.xWrite(fd, p, n / 2, off);
  }
  return hkvPosixEnv.xWrite(fd, p, n, off);
}
static int fSync(int fd) { return hit(F_SYNC) ? -EIO : hkvPosixEnv.xSync(fd); }
static void *fMalloc(size_t n) {
  if (hit(F_ALLOC)) return NULL;
  void *p = malloc(n);
  if (p) nLive++;
  return p;
}
static void *fCalloc(size_t a, size_t b) {
  if (hit(F_ALLOC)) return NULL;
  void *p = calloc(a, b);
  if (p) nLive++;
  return p;
}
static void *fRealloc(void *p, size_t n) {
  if (hit(F_ALLOC)) return NULL;
  void *q = realloc(p, n);
  if (q && !p) nLive++;
  return q;
}
static void fFree(void *p) {
  if (p) nLive--;
  free(p);
}

static HkvEnv faultEnv;

static void installFaults(int eKind, long n) {
  faultEnv = hkvPosixEnv;
  faultEnv.xWrite = fWrite;
  faultEnv.xSync = fSync;
  faultEnv.xMalloc = fMalloc;
  faultEnv.xCalloc = fCalloc;
  faultEnv.xRealloc = fRealloc;
  faultEnv.xFree = fFree;
  eFault = eKind;
  nFailAt = n;
  nCalls = 0;
  bFired = 0;
  bDiskFull = 0;
  hkvEnvInstall(&faultEnv);
}

static const char *zStore;
static void setup(void) { zStore = testDirSetup(); }
static void teardown(void) {
  hkvEnvInstall(NULL);
  testDirTeardown();
}

#define NTXN 4
#define NPER 12

static void keyOf(char *z, int t, int i) { snprintf(z, 32, "t%d-k%d", t, i); }

static int isIoCode(int rc) {
  return rc == HKV_IOERR || rc == HKV_FAILED || rc == HKV_NOMEM ||
         rc == HKV_CANTOPEN;
}

/* The workload: NTXN transactions of NPER puts (values big enough to rotate
** 4 KiB segments), a delete and a savepoint rolled back in each; then single
** puts. aOk[t] = 1 when transaction t reported success; aTried[t] = 1 when it
** was attempted (so it may or may not be there). */
static void workload(hkv_db *db, int *aOk, int *aTried) {
  char k[32], v[700];
  memset(v, 'v', sizeof(v));
  for (int t = 0; t < NTXN; t++) {
    aTried[t] = 1;
    int rc = hkv_begin(db);
    ck_assert_msg(rc == HKV_OK, "begin: %s", hkv_codename(rc));
    for (int i = 0; i < NPER && rc == HKV_OK; i++) {
      keyOf(k, t, i);
      rc = hkv_put(db, k, strlen(k), v, 100 + (size_t)(i * 50));
      if (rc == HKV_OK && i == 5) {
        rc = hkv_savepoint(db, 0);
        if (rc == HKV_OK) rc = hkv_put(db, "undone", 6, v, 10);
        if (rc == HKV_OK) rc = hkv_rollback_to(db, 0);
      }
    }
    if (rc == HKV_OK) rc = hkv_commit(db);
    if (rc != HKV_OK) {
      ck_assert_msg(isIoCode(rc), "txn %d: %s (%s)", t, hkv_codename(rc),
                    hkv_errmsg(db));
      if (hkv_in_transaction(db)) hkv_rollback(db);
      if (rc != HKV_NOMEM) {
        /* After an I/O error the store refuses writes until reopened. */
        int rc2 = hkv_put(db, "after", 5, "x", 1);
        ck_assert_msg(rc2 == HKV_FAILED, "write after %s: %s", hkv_codename(rc),
                      hkv_codename(rc2));
      }
      return;
    }
    aOk[t] = 1;
  }
  /* Compaction meets the same faults. */
  int rc = hkv_compact(db);
  ck_assert_msg(rc == HKV_OK || isIoCode(rc), "compact: %s (%s)",
                hkv_codename(rc), hkv_errmsg(db));
  if (rc != HKV_OK && rc != HKV_NOMEM) {
    ck_rc(hkv_put(db, "after", 5, "x", 1), HKV_FAILED);
  }
}

static void verify(int *aOk, int *aTried, const char *zWhat, long n) {
  hkv_db *db = 0;
  int rc = hkv_open(zStore, NULL, &db);
  ck_assert_msg(rc == HKV_OK, "%s N=%ld: reopen: %s %s", zWhat, n,
                hkv_codename(rc), hkv_errmsg(db));
  for (int t = 0; t < NTXN; t++) {
    int nHave = 0;
    for (int i = 0; i < NPER; i++) {
      char k[32];
      keyOf(k, t, i);
      const void *p;
      size_t nV;
      int r = hkv_get(db, k, strlen(k), &p, &nV);
      ck_assert_msg(r == HKV_OK || r == HKV_NOTFOUND, "%s", hkv_codename(r));
      if (r == HKV_OK) {
        ck_assert_uint_eq(nV, 100 + (size_t)(i * 50));
        nHave++;
      }
    }
    if (aOk[t]) {
      ck_assert_msg(nHave == NPER, "%s N=%ld: committed txn %d has %d/%d",
                    zWhat, n, t, nHave, NPER);
    } else if (aTried[t]) {
      ck_assert_msg(nHave == 0 || nHave == NPER,
                    "%s N=%ld: failed txn %d is partly there (%d/%d)", zWhat, n,
                    t, nHave, NPER);
    } else {
      ck_assert_int_eq(nHave, 0);
    }
  }
  const void *p;
  size_t nV;
  ck_rc(hkv_get(db, "undone", 6, &p, &nV), HKV_NOTFOUND);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}

static void faultLoop(int eKind, const char *zWhat) {
  for (long n = 1; n < 100000; n++) {
    testDirTeardown();
    zStore = testDirSetup();
    int aOk[NTXN] = {0}, aTried[NTXN] = {0};
    nLive = 0;
    installFaults(eKind, n);
    hkv_options o;
    hkv_options_init(&o);
    o.segment_size = 4096;
    hkv_db *db = 0;
    int rc = hkv_open(zStore, &o, &db);
    if (rc == HKV_OK) {
      workload(db, aOk, aTried);
    } else {
      ck_assert_msg(isIoCode(rc), "%s N=%ld: open: %s", zWhat, n,
                    hkv_codename(rc));
    }
    hkv_close(db);
    ck_assert_msg(nLive == 0, "%s N=%ld: %ld allocations leaked", zWhat, n,
                  nLive);
    int bDone = !bFired;
    hkvEnvInstall(NULL);
    verify(aOk, aTried, zWhat, n);
    if (bDone) {
      /* The workload ran clean: every transaction must have committed. */
      for (int t = 0; t < NTXN; t++) ck_assert(aOk[t]);
      fprintf(stderr, "%s: clean after %ld runs\n", zWhat, n);
      return;
    }
  }
  ck_abort_msg("%s: the workload never ran clean", zWhat);
}

START_TEST(write_fails_with_eio) { faultLoop(F_WRITE_EIO, "write EIO"); }
END_TEST
START_TEST(write_fails_with_enospc) {
  faultLoop(F_WRITE_ENOSPC, "write ENOSPC");
}
END_TEST
START_TEST(write_is_short) { faultLoop(F_WRITE_SHORT, "short write"); }
END_TEST
START_TEST(fsync_fails) { faultLoop(F_SYNC, "fsync"); }
END_TEST
START_TEST(allocation_fails) { faultLoop(F_ALLOC, "malloc"); }
END_TEST

int main(void) {
  Suite *s = suite_create("faults");
  TCase *tc = tcase_create("faults");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, write_fails_with_eio);
  tcase_add_test(tc, write_fails_with_enospc);
  tcase_add_test(tc, write_is_short);
  tcase_add_test(tc, fsync_fails);
  tcase_add_test(tc, allocation_fails);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
