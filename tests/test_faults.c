/*
** test_faults.c: fault injection and power loss through the OS layer's hook
** table, on the simulated disk of simdisk.h.
**
** The workload is a fixed script checked against a model (aStep below):
** transactions that put new keys, overwrite and delete keys of earlier ones
** and their own (a key put twice, a key deleted and put again), each with a
** savepoint rolled back (a put of a key that must never appear, a delete
** and an overwrite, all undone); single puts and deletes; a compaction; then
** single writes and a transaction whose deletes and overwrites hit keys the
** compaction rewrote. sync=full and 4 KiB segments, so it rotates.
**
** Faults: for each kind (the Nth write failing with EIO, ENOSPC, or a short
** write followed by a full disk; the Nth fsync failing; the Nth allocation
** failing) and N = 1, 2, ... until the workload runs clean: every call
** returns a clean code, a store that saw an I/O error refuses further
** writes, nothing leaks, and a reopen shows the model: every step that
** reported success, and the one that failed whole or not at all. A failed
** fsync loses what it was to make durable (simdisk.h), so an engine that
** carried on after one would show a commit it reported missing. Every
** injected fault must reach the caller, or be one the engine documents
** absorbing: a failed write of a sealed segment's hint (the hint is dropped;
** checked), or a failed allocation for which it has a fallback (a hint, the
** list of live keys of hkv_compact); the run must then be whole.
**
** Power loss: the same loop, where the power goes at the Nth event (write,
** fsync, file creation, truncation, rename, unlink), three ways (simdisk.h):
** every unsynced sector and directory change lost; every other sector lost
** and the directory changes kept; a random mix. Every step whose call
** returned must be there after the reopen, the one in flight whole or
** absent. Then the power goes at every event of a compaction (hkv_compact,
** and automatic compaction after a commit), after which the next open must
** leave no file of it that is not in use, and every key right. And a store
** created with sync=full must keep its first commit through a power cut.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "hkvInt.h"
#include "simdisk.h"
#include "testutil.h"

/* ---- injected faults, on top of the simulated disk ---- */

enum { F_NONE, F_WRITE_EIO, F_WRITE_ENOSPC, F_WRITE_SHORT, F_SYNC, F_ALLOC };

#define MAXFAULT 64
static int eFault;                 /* which calls count */
static long nFailAt;               /* fail the Nth counted call; 0: never */
static long nCalls;                /* counted calls so far */
static long nLive;                 /* allocations not yet freed */
static int bDiskFull;              /* after a short write: every write fails */
static int nFault;                 /* faults injected in this run */
static char azFault[MAXFAULT][32]; /* the file each hit; "" for memory */

static int hit(int eKind) { return eFault == eKind && ++nCalls == nFailAt; }

static void injected(int fd) {
  if (nFault < MAXFAULT) {
    snprintf(azFault[nFault], sizeof(azFault[0]), "%s",
             fd < 0 ? "" : simDiskFdName(fd));
  }
  nFault++;
}

static long fWrite(int fd, const void *p, size_t n, uint64_t off) {
  if (hit(F_WRITE_EIO) || hit(F_WRITE_ENOSPC)) {
    injected(fd);
    return eFault == F_WRITE_EIO ? -EIO : -ENOSPC;
  }
  if (bDiskFull) {
    injected(fd);
    return -ENOSPC;
  }
  if (hit(F_WRITE_SHORT)) {
    /* Half of it lands, then the disk is full: the torn half must be cut. */
    injected(fd);
    bDiskFull = 1;
    if (n < 2) return -ENOSPC;
    return simDiskEnv()->xWrite(fd, p, n / 2, off);
  }
  return simDiskEnv()->xWrite(fd, p, n, off);
}
static int fSync(int fd) {
  if (hit(F_SYNC)) {
    injected(fd);
    simDiskSyncFailed(fd);
    return -EIO;
  }
  return simDiskEnv()->xSync(fd);
}
static void *fMalloc(size_t n) {
  if (hit(F_ALLOC)) {
    injected(-1);
    return NULL;
  }
  void *p = malloc(n);
  if (p) nLive++;
  return p;
}
static void *fCalloc(size_t a, size_t b) {
  if (hit(F_ALLOC)) {
    injected(-1);
    return NULL;
  }
  void *p = calloc(a, b);
  if (p) nLive++;
  return p;
}
static void *fRealloc(void *p, size_t n) {
  if (hit(F_ALLOC)) {
    injected(-1);
    return NULL;
  }
  void *q = realloc(p, n);
  if (q && !p) nLive++;
  return q;
}
static void fFree(void *p) {
  if (p) nLive--;
  free(p);
}
static void *fMapAnon(size_t n) {
  if (hit(F_ALLOC)) {
    injected(-1);
    return NULL;
  }
  return testMapAnon(n);
}

static HkvEnv faultEnv;

/* Installs the simulated disk for the store, with faults of kind eKind on
** top: the nth counted call fails. */
static void installFaults(const char *zDir, int eKind, long n) {
  simDiskInstall(zDir);
  faultEnv = *simDiskEnv();
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
  nFault = 0;
  bDiskFull = 0;
  hkvEnvInstall(&faultEnv);
}

static const char *zStore;
static void setup(void) { zStore = testDirSetup(); }
static void teardown(void) {
  hkvEnvInstall(NULL);
  simDiskModelParent(0);
  simDiskFree();
  testDirTeardown();
}

static void freshStore(void) {
  testDirTeardown();
  zStore = testDirSetup();
}

static int isIoCode(int rc) {
  return rc == HKV_IOERR || rc == HKV_FULL || rc == HKV_FAILED ||
         rc == HKV_NOMEM || rc == HKV_CANTOPEN;
}

/* ---- the workload and its model ---- */

/* Each step: "T ..." a transaction, "S x" a single write, "C" hkv_compact.
** Tokens: pK put key K (a new value each time), dK delete key K, s mark
** savepoint 0, r roll back to it, u put the key "undone" (only ever inside
** a savepoint that is rolled back). */
static const char *const aStep[] = {
    "T p0 p1 p2 p3 p4 s u d0 p1 r p5 p6 p7 p8 p9",
    "T p10 p11 p12 p13 p0 p1 p2 d3 d4 p5 p5 d6 p6 s d7 p8 u r p14",
    "T d10 p15 p16 p17 p18 p1 p3 d8 s u p9 d2 r p11",
    "T p4 p10 p12 d13 p19 p0 p16 d17",
    "S p0",
    "S d1",
    "S p6",
    "S d16",
    "S p13",
    "C",
    "S d0",
    "S p2",
    "T p3 d4 p12 s d5 r p17",
};
#define NSTEP ((int)(sizeof(aStep) / sizeof(aStep[0])))
#define NKEY 20

typedef struct Model {
  int aVer[NKEY]; /* the version each key holds; 0: absent */
} Model;

/* The outcome of a run: what the store must hold after it. */
typedef struct Run {
  Model ok;      /* after every step that reported success */
  Model tried;   /* ... and the one that failed, had it been applied */
  int iFailed;   /* the step that failed; -1: none */
  int bSawError; /* some call returned an error */
} Run;

static void runInit(Run *r) {
  memset(r, 0, sizeof(*r));
  r->iFailed = -1;
}

static void keyOf(char *z, int iKey) { snprintf(z, 16, "k%02d", iKey); }
static size_t valLen(int iKey, int iVer) {
  return 100 + (size_t)((iKey * 7 + iVer * 3) % 12) * 50;
}
/* Every put writes a value of its own: an old one coming back shows. */
static void valOf(uint8_t *a, int iKey, int iVer) {
  memset(a, 'a' + (iKey + iVer) % 26, valLen(iKey, iVer));
  snprintf((char *)a, 16, "%d.%d.", iKey, iVer);
}

/* The next token of *pz: its letter in *pc and key in *piKey; 0 at the end. */
static int nextTok(const char **pz, char *pc, int *piKey) {
  const char *z = *pz;
  while (*z == ' ') z++;
  if (!*z) return 0;
  *pc = *z++;
  *piKey = 0;
  while (*z >= '0' && *z <= '9') *piKey = *piKey * 10 + (*z++ - '0');
  *pz = z;
  return 1;
}

/* Applies step iStep to the model m. */
static void applyStep(int iStep, Model *m) {
  const char *z = aStep[iStep] + 1;
  Model save = *m;
  char c;
  int iKey;
  for (int iTok = 1; nextTok(&z, &c, &iKey); iTok++) {
    if (c == 'p') m->aVer[iKey] = iStep * 64 + iTok;
    if (c == 'd') m->aVer[iKey] = 0;
    if (c == 's') save = *m;
    if (c == 'r') *m = save;
  }
}

/* Runs step iStep on the store; returns the first code that is not OK. */
static int runStep(hkv_db *db, int iStep) {
  const char *z = aStep[iStep];
  if (z[0] == 'C') return hkv_compact(db);
  int rc = z[0] == 'T' ? hkv_begin(db) : HKV_OK;
  char c, k[16];
  int iKey;
  uint8_t v[700];
  z++;
  for (int iTok = 1; rc == HKV_OK && nextTok(&z, &c, &iKey); iTok++) {
    keyOf(k, iKey);
    int iVer = iStep * 64 + iTok;
    valOf(v, iKey, iVer);
    if (c == 'p') rc = hkv_put(db, k, strlen(k), v, valLen(iKey, iVer));
    if (c == 'd') rc = hkv_delete(db, k, strlen(k));
    if (c == 's') rc = hkv_savepoint(db, 0);
    if (c == 'r') rc = hkv_rollback_to(db, 0);
    if (c == 'u') rc = hkv_put(db, "undone", 6, v, 10);
  }
  if (rc == HKV_OK && aStep[iStep][0] == 'T') rc = hkv_commit(db);
  return rc;
}

static void workload(hkv_db *db, Run *r) {
  for (int s = 0; s < NSTEP; s++) {
    Model m = r->ok;
    applyStep(s, &m);
    r->tried = m;
    int rc = runStep(db, s);
    if (rc != HKV_OK) {
      r->iFailed = s;
      r->bSawError = 1;
      ck_assert_msg(isIoCode(rc), "step %d: %s (%s)", s, hkv_codename(rc),
                    hkv_errmsg(db));
      char zMsg[200];
      snprintf(zMsg, sizeof(zMsg), "%s", hkv_errmsg(db));
      if (hkv_in_transaction(db)) hkv_rollback(db);
      if (rc != HKV_NOMEM) {
        /* After a failed write or fsync the store refuses writes until
        ** reopened. With the power off, whatever failed, nothing gets in. */
        int rc2 = hkv_put(db, "after", 5, "x", 1);
        ck_assert_msg(rc2 == HKV_FAILED || (simDiskIsOff() && rc2 == HKV_IOERR),
                      "step %d: write after %s (%s): %s", s, hkv_codename(rc),
                      zMsg, hkv_codename(rc2));
      }
      return;
    }
    r->ok = m;
  }
}

/* 1 if the store holds exactly what m says, else 0 with the difference in
** zWhy. */
static int storeIs(hkv_db *db, const Model *m, char *zWhy, size_t nWhy) {
  int nWant = 0;
  for (int i = 0; i < NKEY; i++) {
    char k[16];
    uint8_t v[700];
    keyOf(k, i);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    ck_assert_msg(rc == HKV_OK || rc == HKV_NOTFOUND, "get %s: %s", k,
                  hkv_codename(rc));
    if (m->aVer[i] == 0) {
      if (rc == HKV_OK) {
        snprintf(zWhy, nWhy, "%s is there (%.12s...), should be deleted", k,
                 (const char *)p);
        return 0;
      }
      continue;
    }
    nWant++;
    valOf(v, i, m->aVer[i]);
    if (rc != HKV_OK) {
      snprintf(zWhy, nWhy, "%s is missing (wanted version %d)", k, m->aVer[i]);
      return 0;
    }
    if (n != valLen(i, m->aVer[i]) || memcmp(p, v, n)) {
      snprintf(zWhy, nWhy, "%s holds %.12s..., wanted version %d", k,
               (const char *)p, m->aVer[i]);
      return 0;
    }
  }
  hkv_iter *pIter = 0;
  ck_rc(hkv_iter_open(db, &pIter), HKV_OK);
  const void *pK, *pV;
  size_t nK, nV;
  int nHave = 0, rc;
  while ((rc = hkv_iter_next(pIter, &pK, &nK, &pV, &nV)) == HKV_OK) nHave++;
  ck_rc(rc, HKV_DONE);
  hkv_iter_close(pIter);
  if (nHave != nWant) {
    snprintf(zWhy, nWhy, "%d keys, wanted %d", nHave, nWant);
    return 0;
  }
  return 1;
}

/* Reopens the store (no faults) and checks it against the run's outcome. */
static void verify(const Run *r, const char *zWhat, long n) {
  hkv_db *db = 0;
  int rc = hkv_open(zStore, NULL, &db);
  ck_assert_msg(rc == HKV_OK, "%s N=%ld: reopen: %s %s", zWhat, n,
                hkv_codename(rc), hkv_errmsg(db));
  char zWhy[200], zWhy2[200] = "";
  int bOk = storeIs(db, &r->ok, zWhy, sizeof(zWhy));
  if (!bOk && r->iFailed >= 0) {
    bOk = storeIs(db, &r->tried, zWhy2, sizeof(zWhy2));
  }
  ck_assert_msg(bOk, "%s N=%ld: %s %d: %s%s%s", zWhat, n,
                r->iFailed < 0 ? "every step returned, up to" : "step failed:",
                r->iFailed < 0 ? NSTEP - 1 : r->iFailed, zWhy,
                zWhy2[0] ? "; nor with it applied: " : "", zWhy2);
  const void *p;
  size_t nV;
  ck_rc(hkv_get(db, "undone", 6, &p, &nV), HKV_NOTFOUND);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}

/* Opens a fresh store (sync=full, 4 KiB segments) through the installed
** env and runs the workload on it; a failed open must be an I/O code. */
static void runWorkload(const char *zWhat, long n, Run *r) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  if (rc == HKV_OK) {
    workload(db, r);
  } else {
    r->bSawError = 1;
    ck_assert_msg(isIoCode(rc), "%s N=%ld: open: %s", zWhat, n,
                  hkv_codename(rc));
  }
  hkv_close(db);
}

/* When no call returned an error, every fault injected must be one the
** engine documents absorbing: a write of a sealed segment's hint (the hint
** is then dropped), or an allocation it has a fallback for (the run is then
** whole: verify checks it). A failed fsync is never absorbed. */
static int faultsAbsorbed(const Run *r, const char *zWhat, long n) {
  if (nFault == 0 || r->bSawError) return 0;
  for (int i = 0; i < nFault && i < MAXFAULT; i++) {
    const char *z = azFault[i];
    size_t nZ = strlen(z);
    if (eFault == F_ALLOC) continue;
    ck_assert_msg(eFault != F_SYNC && nZ > 4 && !strcmp(z + nZ - 4, ".hkh"),
                  "%s N=%ld: a fault on '%s' reached no caller", zWhat, n, z);
    char zPath[600];
    struct stat st;
    snprintf(zPath, sizeof(zPath), "%s/%s", zStore, z);
    ck_assert_msg(stat(zPath, &st) != 0,
                  "%s N=%ld: hint %s kept after its write failed", zWhat, n, z);
  }
  return 1;
}

static void faultLoop(int eKind, const char *zWhat) {
  int nAbsorbed = 0;
  for (long n = 1; n < 100000; n++) {
    freshStore();
    Run r;
    runInit(&r);
    nLive = 0;
    *testMappedBytes() = 0;
    installFaults(zStore, eKind, n);
    runWorkload(zWhat, n, &r);
    ck_assert_msg(nLive == 0, "%s N=%ld: %ld allocations leaked", zWhat, n,
                  nLive);
    ck_assert_msg(*testMappedBytes() == 0, "%s N=%ld: %ld bytes left mapped",
                  zWhat, n, *testMappedBytes());
    nAbsorbed += faultsAbsorbed(&r, zWhat, n);
    int bDone = nFault == 0;
    simDiskSettle();
    verify(&r, zWhat, n);
    if (bDone) {
      /* The workload ran clean: every step must have succeeded. */
      ck_assert_int_eq(r.iFailed, -1);
      fprintf(stderr, "%s: clean after %ld runs (%d absorbed)\n", zWhat, n,
              nAbsorbed);
      return;
    }
  }
  ck_abort_msg("%s: the workload never ran clean", zWhat);
}

static const char *const azHow[] = {"unsynced changes lost",
                                    "every other sector lost",
                                    "random sectors and changes lost"};

/* The power goes at the Nth event, for every N. */
static void powerLossLoop(int iHow) {
  char zWhat[80];
  snprintf(zWhat, sizeof(zWhat), "power loss, %s", azHow[iHow]);
  for (long n = 1; n < 100000; n++) {
    freshStore();
    Run r;
    runInit(&r);
    simDiskInstall(zStore);
    simDiskCutAt(n, iHow, (unsigned)(n * 7919 + iHow));
    runWorkload(zWhat, n, &r);
    int bOff = simDiskIsOff();
    int nFile = simDiskSettle();
    if (!bOff) {
      ck_assert_int_eq(r.iFailed, -1);
      fprintf(stderr, "%s: clean after %ld runs\n", zWhat, n);
      return;
    }
    ck_assert_int_ge(nFile, 0);
    verify(&r, zWhat, n);
  }
  ck_abort_msg("%s: the workload never ran clean", zWhat);
}

START_TEST(power_loss_unsynced_lost) { powerLossLoop(SIM_LOSE_ALL); }
END_TEST
START_TEST(power_loss_every_other_sector) { powerLossLoop(SIM_LOSE_ALTERNATE); }
END_TEST
START_TEST(power_loss_random_sectors) { powerLossLoop(SIM_LOSE_RANDOM); }
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

/* ---- a power cut at every event of a compaction ---- */

#define NCKEY 16
#define CVAL_MAX 512     /* bytes of the longest value */
static int aCVer[NCKEY]; /* the store's model after compactStore: 0 absent */

/* The store the compaction runs on, kept in memory between runs. */
static struct {
  char zName[32];
  uint8_t *a;
  size_t n;
} aSaved[64];
static int nSaved;

static void cKeyOf(char *z, int i) { snprintf(z, 16, "c%02d", i); }
static size_t cValLen(int i, int iVer) {
  return 250 + (size_t)((i * 5 + iVer) % 4) * 80;
}
static void cValOf(uint8_t *a, int i, int iVer) {
  memset(a, 'A' + (i + iVer) % 26, cValLen(i, iVer));
  snprintf((char *)a, 16, "%d.%d.", i, iVer);
}

static hkv_db *openCompactStore(double rAuto, const char *zWhat, long n) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.auto_compact = rAuto;
  o.auto_compact_min = 0;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_OK, "%s N=%ld: open: %s %s", zWhat, n,
                hkv_codename(rc), hkv_errmsg(db));
  return db;
}

/* Builds, with no simulation, a store of three or more sealed segments with
** their hints, many dead records (overwrites, deletes, a delete of a key
** put again), and saves its files. */
static void compactStore(void) {
  memset(aCVer, 0, sizeof(aCVer));
  hkv_db *db = openCompactStore(0, "building the store", 0);
  char k[16];
  uint8_t v[CVAL_MAX];
  for (int iRound = 1; iRound <= 4; iRound++) {
    ck_rc(hkv_begin(db), HKV_OK);
    for (int i = 0; i < NCKEY; i++) {
      if (iRound > 1 && (i + iRound) % 5 == 0) {
        if (aCVer[i]) {
          cKeyOf(k, i);
          ck_rc(hkv_delete(db, k, strlen(k)), HKV_OK);
          aCVer[i] = 0;
        }
        continue;
      }
      cKeyOf(k, i);
      cValOf(v, i, iRound);
      ck_rc(hkv_put(db, k, strlen(k), v, cValLen(i, iRound)), HKV_OK);
      aCVer[i] = iRound;
    }
    ck_rc(hkv_commit(db), HKV_OK);
  }
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_ge(st.segments, 4);
  hkv_close(db);
  DIR *pDir = opendir(zStore);
  ck_assert_ptr_nonnull(pDir);
  struct dirent *pEnt;
  nSaved = 0;
  while ((pEnt = readdir(pDir)) != 0) {
    if (pEnt->d_name[0] == '.') continue;
    char zPath[600];
    snprintf(zPath, sizeof(zPath), "%s/%.80s", zStore, pEnt->d_name);
    int fd = open(zPath, O_RDONLY);
    ck_assert_int_ge(fd, 0);
    struct stat sb;
    ck_assert_int_eq(fstat(fd, &sb), 0);
    ck_assert_int_lt(nSaved, 64);
    snprintf(aSaved[nSaved].zName, sizeof(aSaved[0].zName), "%.31s",
             pEnt->d_name);
    aSaved[nSaved].n = (size_t)sb.st_size;
    aSaved[nSaved].a = malloc(aSaved[nSaved].n + 1);
    ck_assert_ptr_nonnull(aSaved[nSaved].a);
    ck_assert(read(fd, aSaved[nSaved].a, aSaved[nSaved].n) ==
              (ssize_t)aSaved[nSaved].n);
    close(fd);
    nSaved++;
  }
  closedir(pDir);
}

static void restoreSaved(void) {
  freshStore();
  ck_assert_int_eq(mkdir(zStore, 0755), 0);
  for (int i = 0; i < nSaved; i++) {
    char zPath[600];
    snprintf(zPath, sizeof(zPath), "%.300s/%.31s", zStore, aSaved[i].zName);
    int fd = open(zPath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ck_assert(write(fd, aSaved[i].a, aSaved[i].n) == (ssize_t)aSaved[i].n);
    close(fd);
  }
}

static void freeSaved(void) {
  for (int i = 0; i < nSaved; i++) free(aSaved[i].a);
  nSaved = 0;
}

/* 1 if the store holds exactly aVer (c00.. keys), else 0 with zWhy. */
static int cStoreIs(hkv_db *db, const int *aVer, char *zWhy, size_t nWhy) {
  for (int i = 0; i < NCKEY; i++) {
    char k[16];
    uint8_t v[CVAL_MAX];
    cKeyOf(k, i);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (aVer[i] == 0) {
      if (rc != HKV_NOTFOUND) {
        snprintf(zWhy, nWhy, "%s: %s, should be deleted", k, hkv_codename(rc));
        return 0;
      }
      continue;
    }
    cValOf(v, i, aVer[i]);
    if (rc != HKV_OK || n != cValLen(i, aVer[i]) || memcmp(p, v, n)) {
      snprintf(zWhy, nWhy, "%s: %s, wanted version %d", k, hkv_codename(rc),
               aVer[i]);
      return 0;
    }
  }
  return 1;
}

static int manifestLists(const uint8_t *a, size_t n, uint32_t iId, int iKind) {
  uint32_t nList = n >= 24 ? hkvGet32(a + 12) : 0;
  for (uint32_t k = 0; k < nList && 24 + 12 * (size_t)k + 12 <= n; k++) {
    const uint8_t *e = a + 24 + 12 * k;
    if (hkvGet32(e) == iId && (int)hkvGet32(e + 8) == iKind) return 1;
  }
  return 0;
}

/* After an open: every segment file is one the open uses (nSeg of them),
** every hint has its segment, and nothing else of a compaction is left. */
static void checkNoLeftovers(uint64_t nSeg, const char *zWhat, long n) {
  char zPath[600];
  snprintf(zPath, sizeof(zPath), "%s/MANIFEST", zStore);
  uint8_t aMan[4096];
  size_t nMan = 0;
  int fd = open(zPath, O_RDONLY);
  if (fd >= 0) {
    ssize_t r = read(fd, aMan, sizeof(aMan));
    ck_assert(r >= 0);
    nMan = (size_t)r;
    close(fd);
  }
  uint32_t iMark = nMan >= 24 ? hkvGet32(aMan + 16) : 0;
  DIR *pDir = opendir(zStore);
  ck_assert_ptr_nonnull(pDir);
  struct dirent *pEnt;
  uint64_t nHave = 0;
  while ((pEnt = readdir(pDir)) != 0) {
    const char *z = pEnt->d_name;
    if (!strcmp(z, ".") || !strcmp(z, "..") || !strcmp(z, "LOCK") ||
        !strcmp(z, "SHM") || !strcmp(z, "MANIFEST")) {
      continue;
    }
    unsigned iId = 0;
    char zExt[8] = "";
    int bNamed = strlen(z) == 12 && sscanf(z, "%8x.%3s", &iId, zExt) == 2;
    ck_assert_msg(bNamed, "%s N=%ld: left over: %s", zWhat, n, z);
    if (!strcmp(zExt, "hkd")) {
      ck_assert_msg(iId > iMark || manifestLists(aMan, nMan, iId, 1),
                    "%s N=%ld: %s survived its compaction", zWhat, n, z);
      nHave++;
    } else if (!strcmp(zExt, "hkc")) {
      ck_assert_msg(manifestLists(aMan, nMan, iId, 2),
                    "%s N=%ld: %s is in no manifest", zWhat, n, z);
      nHave++;
    } else {
      ck_assert_msg(!strcmp(zExt, "hkh"), "%s N=%ld: left over: %s", zWhat, n,
                    z);
      char zSeg[600];
      struct stat st;
      snprintf(zSeg, sizeof(zSeg), "%s/%08x.hkd", zStore, iId);
      int bSeg = stat(zSeg, &st) == 0;
      snprintf(zSeg, sizeof(zSeg), "%s/%08x.hkc", zStore, iId);
      bSeg |= stat(zSeg, &st) == 0 && manifestLists(aMan, nMan, iId, 2);
      ck_assert_msg(bSeg, "%s N=%ld: hint %s has no segment", zWhat, n, z);
    }
  }
  closedir(pDir);
  ck_assert_msg(nHave == nSeg,
                "%s N=%ld: %llu segment files, the open uses %llu", zWhat, n,
                (unsigned long long)nHave, (unsigned long long)nSeg);
}

/* The power goes at the Nth event of a compaction, for every N: hkv_compact
** (bAuto 0), or an automatic compaction run by a commit (bAuto 1). */
static void compactPowerLoop(int bAuto, int iHow) {
  char zWhat[120];
  snprintf(zWhat, sizeof(zWhat), "%s, power loss, %s",
           bAuto ? "automatic compaction" : "hkv_compact", azHow[iHow]);
  /* The commit deletes a live key and puts a deleted one back. */
  int iDel = 0, iPut = 0;
  while (aCVer[iDel] == 0) iDel++;
  while (aCVer[iPut] != 0) iPut++;
  int aAfter[NCKEY];
  memcpy(aAfter, aCVer, sizeof(aAfter));
  aAfter[iDel] = 0;
  aAfter[iPut] = 9;
  for (long n = 1; n < 10000; n++) {
    restoreSaved();
    simDiskInstall(zStore);
    hkv_db *db = openCompactStore(bAuto ? 0.05 : 0, zWhat, n);
    simDiskCutAt(n, iHow, (unsigned)(n * 104729 + iHow));
    int rc;
    if (bAuto) {
      char k[16];
      uint8_t v[CVAL_MAX];
      rc = hkv_begin(db);
      cKeyOf(k, iDel);
      if (rc == HKV_OK) rc = hkv_delete(db, k, strlen(k));
      cKeyOf(k, iPut);
      cValOf(v, iPut, 9);
      if (rc == HKV_OK) rc = hkv_put(db, k, strlen(k), v, cValLen(iPut, 9));
      if (rc == HKV_OK) rc = hkv_commit(db);
    } else {
      rc = hkv_compact(db);
    }
    ck_assert_msg(rc == HKV_OK || isIoCode(rc), "%s N=%ld: %s", zWhat, n,
                  hkv_codename(rc));
    int bOff = simDiskIsOff();
    if (!bOff) {
      /* The run the cuts were taken from compacted. */
      hkv_stats st;
      ck_rc(hkv_stats_get(db, &st), HKV_OK);
      ck_assert_uint_eq(st.compactions, 1);
      ck_rc(rc, HKV_OK);
    }
    hkv_close(db);
    ck_assert_int_ge(simDiskSettle(), 0);

    db = openCompactStore(0, zWhat, n);
    char zWhy[200] = "", zWhy2[200] = "";
    int bOk;
    if (!bAuto) {
      bOk = cStoreIs(db, aCVer, zWhy, sizeof(zWhy));
    } else if (rc == HKV_OK) {
      bOk = cStoreIs(db, aAfter, zWhy, sizeof(zWhy));
    } else {
      bOk = cStoreIs(db, aCVer, zWhy, sizeof(zWhy)) ||
            cStoreIs(db, aAfter, zWhy2, sizeof(zWhy2));
    }
    ck_assert_msg(bOk, "%s N=%ld: %s %s", zWhat, n, zWhy, zWhy2);
    ck_rc(hkv_integrity_check(db), HKV_OK);
    hkv_stats st;
    ck_rc(hkv_stats_get(db, &st), HKV_OK);
    hkv_close(db);
    checkNoLeftovers(st.segments, zWhat, n);
    if (!bOff) {
      fprintf(stderr, "%s: clean after %ld runs\n", zWhat, n);
      ck_assert_int_gt(n, 20);
      return;
    }
  }
  ck_abort_msg("%s: never ran clean", zWhat);
}

START_TEST(power_loss_at_every_step_of_a_compaction) {
  compactStore();
  for (int iHow = 0; iHow < 3; iHow++) {
    compactPowerLoop(0, iHow);
    compactPowerLoop(1, iHow);
  }
  freeSaved();
}
END_TEST

/* A new store's directory is itself an entry of its parent: with sync=full,
** the first commit must not vanish with it. */
START_TEST(power_loss_keeps_a_new_store) {
  simDiskModelParent(1);
  simDiskInstall(zStore);
  hkv_db *db = 0;
  ck_rc(hkv_open(zStore, NULL, &db), HKV_OK);
  ck_rc(hkv_put(db, "k", 1, "v", 1), HKV_OK);
  simDiskCutNow(SIM_LOSE_ALL);
  hkv_close(db);
  int nFile = simDiskSettle();
  ck_assert_msg(nFile >= 0,
                "the store's directory was lost: no fsync of its parent made "
                "its entry durable");
  hkv_options o;
  hkv_options_init(&o);
  o.flags = HKV_OPEN_NOCREATE;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  const void *p;
  size_t n;
  ck_rc(hkv_get(db, "k", 1, &p, &n), HKV_OK);
  hkv_close(db);
}
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
  tcase_add_test(tc, power_loss_at_every_step_of_a_compaction);
  tcase_add_test(tc, power_loss_keeps_a_new_store);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
