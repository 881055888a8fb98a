/*
** test_faults.c: fault injection through the OS layer's hook table. For each
** kind of fault (the Nth write failing with EIO, ENOSPC or a short write; the
** Nth fsync failing; the Nth allocation failing) and N = 1, 2, ... until the
** workload runs clean: every call returns a clean code, a store that saw an
** I/O error refuses further writes, nothing leaks, and a reopen without
** faults shows every transaction that reported success, and the one that
** failed either whole or not at all. The workload ends with a compaction.
**
** Power loss: the same loop, where at the Nth write or fsync the machine
** "loses power": the store's files are replaced by what a disk could hold
** then. Of each file, what an fsync covered is kept; each 512-byte sector
** written since is kept or lost (zeros) in any combination, and the size
** may fall back to the synced one. Directory operations count as durable
** (sync=full fsyncs the directory after each). Every transaction whose
** commit returned must be there after the reopen.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

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
static void *fMapAnon(size_t n) { return hit(F_ALLOC) ? NULL : testMapAnon(n); }

static HkvEnv faultEnv;
static const char *zStoreForPl; /* the store the power loss images */

/* ---- power loss ---- */

#define MAXFILE 256
typedef struct PlFile {
  char zName[32];   /* "" = free */
  uint8_t *aSynced; /* content at its last fsync (NULL: never synced) */
  size_t nSynced;
} PlFile;
static PlFile aPl[MAXFILE];
static char azFdName[1024][32]; /* file name by descriptor */
static long plAt;               /* lose power at this write/fsync (1-based) */
static long plCalls;            /* writes and fsyncs so far */
static int plVariant;           /* how unsynced sectors fare */
static int bPowerOff; /* after the loss: every write and fsync fails */
static struct {       /* the disk as the power loss left it */
  char zName[64];
  uint8_t *a;
  size_t n;
} aImg[MAXFILE];
static int nImg;

static PlFile *plFind(const char *zName, int bCreate) {
  PlFile *pFree = 0;
  for (int i = 0; i < MAXFILE; i++) {
    if (!strcmp(aPl[i].zName, zName)) return &aPl[i];
    if (!aPl[i].zName[0] && !pFree) pFree = &aPl[i];
  }
  if (!bCreate || !pFree) return 0;
  snprintf(pFree->zName, sizeof(pFree->zName), "%s", zName);
  return pFree;
}

/* The whole content of the file fd names (which may be open write-only). */
static uint8_t *readAll(int fd, size_t *pn) {
  struct stat st;
  *pn = 0;
  if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) return 0;
  char zProc[64];
  snprintf(zProc, sizeof(zProc), "/proc/self/fd/%d", fd);
  int fdR = open(zProc, O_RDONLY);
  ck_assert_int_ge(fdR, 0);
  uint8_t *a = malloc((size_t)st.st_size + 1);
  ck_assert_ptr_nonnull(a);
  ssize_t r = pread(fdR, a, (size_t)st.st_size, 0);
  close(fdR);
  ck_assert(r == (ssize_t)st.st_size);
  *pn = (size_t)r;
  return a;
}

static unsigned plRand(void) {
  static unsigned x = 12345;
  x = x * 1103515245u + 12345u;
  return x >> 16;
}

/* What the disk holds for a file with content c (n bytes) whose last fsync
** covered d (nD bytes). */
static uint8_t *lossImage(const uint8_t *c, size_t n, const uint8_t *d,
                          size_t nD, size_t *pnOut) {
  size_t nOut = n;
  if (plVariant == 0 || (plVariant == 2 && plRand() % 2)) nOut = nD;
  uint8_t *a = calloc(nOut + 1, 1);
  ck_assert_ptr_nonnull(a);
  for (size_t i = 0, k = 0; i < nOut; i += 512, k++) {
    size_t m = nOut - i < 512 ? nOut - i : 512;
    int bSame = i + m <= nD && i + m <= n && !memcmp(c + i, d + i, m);
    int bKeep = bSame || (plVariant == 1 ? (k % 2 == 1) : plRand() % 2);
    if (bKeep && i < n) {
      memcpy(a + i, c + i, m <= n - i ? m : n - i);
    } else if (i < nD) {
      memcpy(a + i, d + i, m <= nD - i ? m : nD - i);
    }
  }
  *pnOut = nOut;
  return a;
}

static void powerLoss(void) {
  DIR *pDir = opendir(zStoreForPl);
  ck_assert_ptr_nonnull(pDir);
  struct dirent *pEnt;
  nImg = 0;
  while ((pEnt = readdir(pDir)) != 0 && nImg < MAXFILE) {
    if (pEnt->d_name[0] == '.') continue;
    char zPath[600];
    if (strlen(pEnt->d_name) > 200) continue;
    snprintf(zPath, sizeof(zPath), "%s/%.200s", zStoreForPl, pEnt->d_name);
    int fd = open(zPath, O_RDONLY);
    if (fd < 0) continue;
    size_t n;
    uint8_t *c = readAll(fd, &n);
    close(fd);
    if (!c) continue;
    PlFile *f = plFind(pEnt->d_name, 0);
    if (strlen(pEnt->d_name) >= sizeof(aImg[nImg].zName)) continue;
    memcpy(aImg[nImg].zName, pEnt->d_name, strlen(pEnt->d_name) + 1);
    aImg[nImg].a =
        lossImage(c, n, f ? f->aSynced : 0, f ? f->nSynced : 0, &aImg[nImg].n);
    nImg++;
    free(c);
  }
  closedir(pDir);
  bPowerOff = 1;
}

/* Counts a write or fsync; at the chosen one the power goes. */
static int plTick(void) {
  if (bPowerOff) return 1;
  if (plAt && ++plCalls == plAt) {
    powerLoss();
    return 1;
  }
  return 0;
}

static int plOpen(int dirFd, const char *zPath, int flags, int mode) {
  int fd = hkvPosixEnv.xOpen(dirFd, zPath, flags, mode);
  if (fd >= 0 && fd < 1024) {
    const char *z = strrchr(zPath, '/');
    snprintf(azFdName[fd], sizeof(azFdName[fd]), "%s", z ? z + 1 : zPath);
  }
  return fd;
}
static int plClose(int fd) {
  if (fd >= 0 && fd < 1024) azFdName[fd][0] = 0;
  return hkvPosixEnv.xClose(fd);
}
static long plWrite(int fd, const void *p, size_t n, uint64_t off) {
  if (plTick()) return -EIO;
  return hkvPosixEnv.xWrite(fd, p, n, off);
}
static int plSync(int fd) {
  if (plTick()) return -EIO;
  int r = hkvPosixEnv.xSync(fd);
  if (r == 0 && fd < 1024 && azFdName[fd][0]) {
    size_t n;
    uint8_t *a = readAll(fd, &n);
    if (a) { /* a regular file: what it holds is now durable */
      PlFile *f = plFind(azFdName[fd], 1);
      ck_assert_ptr_nonnull(f);
      free(f->aSynced);
      f->aSynced = a;
      f->nSynced = n;
    }
  }
  return r;
}
static int plTruncate(int fd, uint64_t n) {
  if (bPowerOff) return -EIO;
  return hkvPosixEnv.xTruncate(fd, n);
}
static int plUnlink(int dirFd, const char *zPath) {
  if (bPowerOff) return -EIO;
  PlFile *f = plFind(zPath, 0);
  if (f) {
    free(f->aSynced);
    memset(f, 0, sizeof(*f));
  }
  return hkvPosixEnv.xUnlink(dirFd, zPath);
}
static int plRename(int dirFd, const char *zFrom, const char *zTo) {
  if (bPowerOff) return -EIO;
  int r = hkvPosixEnv.xRename(dirFd, zFrom, zTo);
  if (r == 0) {
    PlFile *t = plFind(zTo, 0);
    if (t) {
      free(t->aSynced);
      memset(t, 0, sizeof(*t));
    }
    PlFile *f = plFind(zFrom, 0);
    if (f) snprintf(f->zName, sizeof(f->zName), "%s", zTo);
    for (int i = 0; i < 1024; i++) {
      if (!strcmp(azFdName[i], zFrom)) {
        snprintf(azFdName[i], sizeof(azFdName[i]), "%s", zTo);
      }
    }
  }
  return r;
}

static void installPowerLoss(long nAt, int iVariant) {
  for (int i = 0; i < MAXFILE; i++) {
    free(aPl[i].aSynced);
    free(aImg[i].a);
  }
  memset(aPl, 0, sizeof(aPl));
  memset(aImg, 0, sizeof(aImg));
  memset(azFdName, 0, sizeof(azFdName));
  nImg = 0;
  plAt = nAt;
  plCalls = 0;
  plVariant = iVariant;
  bPowerOff = 0;
  faultEnv = hkvPosixEnv;
  faultEnv.xOpen = plOpen;
  faultEnv.xClose = plClose;
  faultEnv.xWrite = plWrite;
  faultEnv.xSync = plSync;
  faultEnv.xTruncate = plTruncate;
  faultEnv.xUnlink = plUnlink;
  faultEnv.xRename = plRename;
  hkvEnvInstall(&faultEnv);
}

/* Replaces the store's files with the power loss's image. */
static void restoreImage(void) {
  DIR *pDir = opendir(zStoreForPl);
  ck_assert_ptr_nonnull(pDir);
  struct dirent *pEnt;
  while ((pEnt = readdir(pDir)) != 0) {
    if (pEnt->d_name[0] == '.') continue;
    char zPath[600];
    snprintf(zPath, sizeof(zPath), "%s/%.200s", zStoreForPl, pEnt->d_name);
    unlink(zPath);
  }
  closedir(pDir);
  for (int i = 0; i < nImg; i++) {
    char zPath[600];
    snprintf(zPath, sizeof(zPath), "%.300s/%.64s", zStoreForPl, aImg[i].zName);
    int fd = open(zPath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert(write(fd, aImg[i].a, aImg[i].n) == (ssize_t)aImg[i].n);
    close(fd);
  }
}

static void installFaults(int eKind, long n) {
  faultEnv = hkvPosixEnv;
  faultEnv.xWrite = fWrite;
  faultEnv.xSync = fSync;
  faultEnv.xMalloc = fMalloc;
  faultEnv.xCalloc = fCalloc;
  faultEnv.xRealloc = fRealloc;
  faultEnv.xFree = fFree;
  faultEnv.xMapAnon = fMapAnon;
  faultEnv.xUnmapAnon = testUnmapAnon;
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
  return rc == HKV_IOERR || rc == HKV_FULL || rc == HKV_FAILED ||
         rc == HKV_NOMEM || rc == HKV_CANTOPEN;
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

/* Opens a fresh store (sync=full, 4 KiB segments) through the installed
** env and runs the workload on it; a failed open must be an I/O code. */
static void runWorkload(const char *zWhat, long n, int *aOk, int *aTried) {
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
}

static void faultLoop(int eKind, const char *zWhat) {
  for (long n = 1; n < 100000; n++) {
    testDirTeardown();
    zStore = testDirSetup();
    int aOk[NTXN] = {0}, aTried[NTXN] = {0};
    nLive = 0;
    *testMappedBytes() = 0;
    installFaults(eKind, n);
    runWorkload(zWhat, n, aOk, aTried);
    ck_assert_msg(nLive == 0, "%s N=%ld: %ld allocations leaked", zWhat, n,
                  nLive);
    ck_assert_msg(*testMappedBytes() == 0, "%s N=%ld: %ld bytes left mapped",
                  zWhat, n, *testMappedBytes());
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

/* The power goes at the Nth write or fsync, for every N, three ways: every
** unsynced write lost; every other unsynced sector lost (damage followed by
** valid records); a random mix with a random size. */
static void powerLossLoop(int iVariant) {
  static const char *azName[] = {"power loss, unsynced writes lost",
                                 "power loss, every other sector lost",
                                 "power loss, random sectors lost"};
  const char *zWhat = azName[iVariant];
  for (long n = 1; n < 100000; n++) {
    testDirTeardown();
    zStore = testDirSetup();
    zStoreForPl = zStore;
    int aOk[NTXN] = {0}, aTried[NTXN] = {0};
    installPowerLoss(n, iVariant);
    runWorkload(zWhat, n, aOk, aTried);
    int bDone = !bPowerOff;
    hkvEnvInstall(NULL);
    if (bDone) {
      for (int t = 0; t < NTXN; t++) ck_assert(aOk[t]);
      fprintf(stderr, "%s: clean after %ld runs\n", zWhat, n);
      return;
    }
    restoreImage();
    if (nImg == 0) continue; /* the power went before the store existed */
    verify(aOk, aTried, zWhat, n);
  }
  ck_abort_msg("%s: the workload never ran clean", zWhat);
}

START_TEST(power_loss_unsynced_lost) { powerLossLoop(0); }
END_TEST
START_TEST(power_loss_every_other_sector) { powerLossLoop(1); }
END_TEST
START_TEST(power_loss_random_sectors) { powerLossLoop(2); }
END_TEST

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
  tcase_add_test(tc, power_loss_unsynced_lost);
  tcase_add_test(tc, power_loss_every_other_sector);
  tcase_add_test(tc, power_loss_random_sectors);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
