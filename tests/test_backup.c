/*
** test_backup.c: hkv_backup. The copy opens as a store, passes the
** integrity check and holds what the source held (after compaction,
** rotations, deletes and transactions); sealed segments are linked and the
** active one copied; without links everything is copied; the rules on the
** destination; progress and stopping; every write and fsync of the backup
** failing in turn leaves nothing behind; and, with a writer committing as
** fast as it can (another process, then a thread of this one) while
** compaction runs, each backup holds exactly a prefix of the commits the
** writer reported: at least those reported before the backup began, at most
** those reported by its end, and nothing half.
*/
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hkvInt.h"
#include "testutil.h"

static const char *zStore;
static char zDest[400];
static void setup(void) {
  zStore = testDirSetup();
  snprintf(zDest, sizeof(zDest), "%s/copy", zTestDir);
}
static void teardown(void) {
  hkvEnvInstall(0);
  testDirTeardown();
}

static hkv_db *openAt(const char *zDir, uint64_t szSeg, double rAuto,
                      unsigned flags) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = szSeg;
  o.sync = HKV_SYNC_OFF;
  o.auto_compact = rAuto;
  o.auto_compact_min = 0;
  o.flags = flags;
  hkv_db *db = 0;
  int rc = hkv_open(zDir, &o, &db);
  ck_assert_msg(rc == HKV_OK, "open %s: %s %s", zDir, hkv_codename(rc),
                hkv_errmsg(db));
  return db;
}

#define NKEY 1500

/* Writes a store with compaction outputs, sealed segments with hints, a
** partly filled active segment, deletes and a rolled-back transaction.
** aModel[i]: the value's version of key i, -1 when deleted. */
static int aModel[NKEY];
static void fill(hkv_db *db) {
  char k[32], v[64];
  for (int r = 0; r < 3; r++) {
    ck_rc(hkv_begin(db), HKV_OK);
    for (int i = 0; i < NKEY; i++) {
      snprintf(k, sizeof(k), "key-%d", i);
      snprintf(v, sizeof(v), "value-%d-%d", i, r);
      ck_rc(hkv_put(db, k, strlen(k), v, strlen(v)), HKV_OK);
      aModel[i] = r;
    }
    ck_rc(hkv_commit(db), HKV_OK);
    if (r == 1) ck_rc(hkv_compact(db), HKV_OK);
  }
  for (int i = 0; i < NKEY; i += 3) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(hkv_delete(db, k, strlen(k)), HKV_OK);
    aModel[i] = -1;
  }
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_put(db, "key-1", 5, "gone", 4), HKV_OK);
  ck_rc(hkv_rollback(db), HKV_OK);
}

/* Opens zDir and checks it against aModel, and the integrity check. */
static void checkModel(const char *zDir) {
  hkv_db *db = openAt(zDir, 16384, 0, HKV_OPEN_NOCREATE);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  char k[32], v[64];
  for (int i = 0; i < NKEY; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (aModel[i] < 0) {
      ck_assert_msg(rc == HKV_NOTFOUND, "%s: %s", k, hkv_codename(rc));
    } else {
      snprintf(v, sizeof(v), "value-%d-%d", i, aModel[i]);
      ck_assert_msg(rc == HKV_OK, "%s: %s", k, hkv_codename(rc));
      ck_assert_msg(n == strlen(v) && !memcmp(p, v, n), "%s: wrong value", k);
    }
  }
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  int nLive = 0;
  for (int i = 0; i < NKEY; i++) nLive += aModel[i] >= 0;
  ck_assert_uint_eq(st.live_keys, (uint64_t)nLive);
  ck_rc(hkv_close(db), HKV_OK);
}

static int exists(const char *zPath) {
  struct stat st;
  return stat(zPath, &st) == 0;
}

/* Files of the copy that are the source's own inode, and all of them. */
static void countLinks(int *pnLinked, int *pnFiles) {
  *pnLinked = *pnFiles = 0;
  DIR *d = opendir(zDest);
  ck_assert_ptr_nonnull(d);
  struct dirent *pEnt;
  while ((pEnt = readdir(d)) != 0) {
    if (pEnt->d_name[0] == '.') continue;
    char zA[1024], zB[1024];
    struct stat a, b;
    snprintf(zA, sizeof(zA), "%s/%s", zDest, pEnt->d_name);
    snprintf(zB, sizeof(zB), "%s/%s", zStore, pEnt->d_name);
    ck_assert_int_eq(stat(zA, &a), 0);
    (*pnFiles)++;
    if (stat(zB, &b) == 0 && a.st_ino == b.st_ino) (*pnLinked)++;
  }
  closedir(d);
}

START_TEST(copy_opens_and_holds_the_data) {
  hkv_db *db = openAt(zStore, 16384, 0, 0);
  fill(db);
  ck_rc(hkv_backup(db, zDest, 0, 0), HKV_OK);
  ck_rc(hkv_close(db), HKV_OK);
  char zManifest[500];
  snprintf(zManifest, sizeof(zManifest), "%s/MANIFEST", zDest);
  ck_assert(exists(zManifest));
  int nLinked, nFiles;
  countLinks(&nLinked, &nFiles);
  ck_assert_int_gt(nLinked, 2);      /* sealed segments and outputs */
  ck_assert_int_lt(nLinked, nFiles); /* not the active one, MANIFEST, hints */
  checkModel(zDest);
  checkModel(zStore); /* the source is unchanged */
  /* The copy is a store of its own: writing it leaves the source alone. */
  hkv_db *c = openAt(zDest, 16384, 0, HKV_OPEN_NOCREATE);
  ck_rc(hkv_put(c, "key-2", 5, "changed", 7), HKV_OK);
  ck_rc(hkv_compact(c), HKV_OK);
  ck_rc(hkv_close(c), HKV_OK);
  checkModel(zStore);
}
END_TEST

static int noLink(int a, const char *b, int c, const char *d) {
  (void)a, (void)b, (void)c, (void)d;
  return -EXDEV;
}

START_TEST(copy_without_links) {
  hkv_db *db = openAt(zStore, 16384, 0, 0);
  fill(db);
  static HkvEnv env;
  env = hkvPosixEnv;
  env.xLink = noLink;
  hkvEnvInstall(&env);
  ck_rc(hkv_backup(db, zDest, 0, 0), HKV_OK);
  hkvEnvInstall(0);
  ck_rc(hkv_close(db), HKV_OK);
  int nLinked, nFiles;
  countLinks(&nLinked, &nFiles);
  ck_assert_int_eq(nLinked, 0);
  ck_assert_int_gt(nFiles, 4);
  checkModel(zDest);
}
END_TEST

START_TEST(destination_rules) {
  hkv_db *db = openAt(zStore, 16384, 0, 0);
  ck_rc(hkv_put(db, "a", 1, "1", 1), HKV_OK);
  ck_rc(hkv_backup(0, zDest, 0, 0), HKV_MISUSE);
  ck_rc(hkv_backup(db, 0, 0, 0), HKV_MISUSE);
  ck_rc(hkv_backup(db, "", 0, 0), HKV_MISUSE);
  /* The store itself, a non-empty directory, a file: refused, untouched. */
  ck_rc(hkv_backup(db, zStore, 0, 0), HKV_CANTOPEN);
  ck_assert_ptr_nonnull(strstr(hkv_errmsg(db), "not an empty directory"));
  char zFile[500];
  snprintf(zFile, sizeof(zFile), "%s/file", zTestDir);
  FILE *f = fopen(zFile, "w");
  ck_assert_ptr_nonnull(f);
  fputs("mine", f);
  fclose(f);
  ck_rc(hkv_backup(db, zFile, 0, 0), HKV_CANTOPEN);
  ck_assert(exists(zFile));
  /* An empty directory is taken, with a trailing slash too. */
  ck_assert_int_eq(mkdir(zDest, 0755), 0);
  char zSlash[500];
  snprintf(zSlash, sizeof(zSlash), "%s/", zDest);
  ck_rc(hkv_backup(db, zSlash, 0, 0), HKV_OK);
  ck_rc(hkv_backup(db, zDest, 0, 0), HKV_CANTOPEN); /* now it holds one */
  /* A partial directory left by a crash is reported and left alone. */
  char zOther[500], zPartial[520];
  snprintf(zOther, sizeof(zOther), "%s/other", zTestDir);
  snprintf(zPartial, sizeof(zPartial), "%s.partial", zOther);
  ck_assert_int_eq(mkdir(zPartial, 0755), 0);
  ck_rc(hkv_backup(db, zOther, 0, 0), HKV_CANTOPEN);
  ck_assert_ptr_nonnull(strstr(hkv_errmsg(db), "interrupted"));
  ck_assert(exists(zPartial));
  ck_assert(!exists(zOther));
  ck_rc(hkv_close(db), HKV_OK);
  hkv_db *c = openAt(zDest, 16384, 0, HKV_OPEN_NOCREATE);
  const void *p;
  size_t n;
  ck_rc(hkv_get(c, "a", 1, &p, &n), HKV_OK);
  ck_rc(hkv_close(c), HKV_OK);
}
END_TEST

typedef struct Prog {
  uint64_t nLast, nTotal;
  int nCalls, nStopAt;
} Prog;
static int onProgress(void *pArg, uint64_t nDone, uint64_t nTotal) {
  Prog *p = pArg;
  ck_assert_uint_ge(nDone, p->nLast);
  ck_assert_uint_le(nDone, nTotal);
  p->nLast = nDone;
  p->nTotal = nTotal;
  return ++p->nCalls == p->nStopAt;
}

START_TEST(progress_and_stopping) {
  hkv_db *db = openAt(zStore, 16384, 0, 0);
  fill(db);
  Prog pr = {0, 0, 0, 0};
  ck_rc(hkv_backup(db, zDest, onProgress, &pr), HKV_OK);
  ck_assert_int_gt(pr.nCalls, 3);
  ck_assert_uint_eq(pr.nLast, pr.nTotal);
  char zOther[500], zPartial[520];
  snprintf(zOther, sizeof(zOther), "%s/other", zTestDir);
  snprintf(zPartial, sizeof(zPartial), "%s.partial", zOther);
  for (int iStop = 1; iStop < pr.nCalls; iStop += 2) {
    Prog p2 = {0, 0, 0, iStop};
    ck_rc(hkv_backup(db, zOther, onProgress, &p2), HKV_ABORTED);
    ck_assert(!exists(zOther));
    ck_assert(!exists(zPartial));
  }
  ck_rc(hkv_close(db), HKV_OK);
}
END_TEST

/* Fails the Nth write or fsync of a file in the partial directory. */
static int nFailAt, nCount, iFailSync;
static HkvEnv faultEnv;
static long faultWrite(int fd, const void *p, size_t n, uint64_t off) {
  if (!iFailSync && ++nCount == nFailAt) return -ENOSPC;
  return hkvPosixEnv.xWrite(fd, p, n, off);
}
static int faultSync(int fd) {
  if (iFailSync && ++nCount == nFailAt) return -EIO;
  return hkvPosixEnv.xSync(fd);
}

START_TEST(every_failure_leaves_nothing) {
  hkv_db *db = openAt(zStore, 16384, 0, 0);
  fill(db);
  faultEnv = hkvPosixEnv;
  faultEnv.xWrite = faultWrite;
  faultEnv.xSync = faultSync;
  char zPartial[520];
  snprintf(zPartial, sizeof(zPartial), "%s.partial", zDest);
  for (iFailSync = 0; iFailSync < 2; iFailSync++) {
    int rc = HKV_OK;
    for (nFailAt = 1;; nFailAt++) {
      nCount = 0;
      hkvEnvInstall(&faultEnv);
      rc = hkv_backup(db, zDest, 0, 0);
      hkvEnvInstall(0);
      if (rc == HKV_OK) break;
      ck_assert_msg(rc == (iFailSync ? HKV_IOERR : HKV_FULL),
                    "failure %d: %s %s", nFailAt, hkv_codename(rc),
                    hkv_errmsg(db));
      ck_assert(!exists(zDest));
      ck_assert(!exists(zPartial));
    }
    ck_assert_int_gt(nFailAt, 3);
    checkModel(zDest);
    rmTree(zDest);
  }
  ck_rc(hkv_close(db), HKV_OK);
}
END_TEST

/* ---- a prefix of the writer's commits ----
** Transaction i (from 1) puts "t<i % NSLOT>" = i and "last" = i, and, when
** i is a multiple of 5, deletes "t<(i - 2) % NSLOT>": so the first m commits
** leave "last" = m and each slot as its last touch among them left it. The
** live set stays bounded, so compaction keeps the store small however long
** the writer runs. */
#define NSLOT 700

typedef struct Shared {
  _Atomic long nAcked; /* commits the writer has seen return */
  _Atomic int bStop;
  _Atomic int bFailed; /* the writer hit an error */
} Shared;

static void writerLoop(const char *zDir, Shared *sh) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 32768;
  o.sync = HKV_SYNC_OFF;
  o.auto_compact = 0.3;
  o.auto_compact_min = 0;
  hkv_db *db = 0;
  if (hkv_open(zDir, &o, &db) != HKV_OK) {
    atomic_store(&sh->bFailed, 1);
    hkv_close(db);
    return;
  }
  char k[32], v[32];
  pid_t parent = getppid();
  /* Stops too if the test (the parent, for a process) ended early. */
  for (long i = 1; !atomic_load(&sh->bStop) && getppid() == parent; i++) {
    int rc = hkv_begin(db);
    snprintf(k, sizeof(k), "t%ld", i % NSLOT);
    snprintf(v, sizeof(v), "%ld", i);
    if (!rc) rc = hkv_put(db, k, strlen(k), v, strlen(v));
    if (!rc) rc = hkv_put(db, "last", 4, v, strlen(v));
    if (!rc && i % 5 == 0) {
      snprintf(k, sizeof(k), "t%ld", (i - 2) % NSLOT);
      rc = hkv_delete(db, k, strlen(k));
    }
    if (!rc) rc = hkv_commit(db);
    if (rc) {
      atomic_store(&sh->bFailed, 1);
      break;
    }
    atomic_store(&sh->nAcked, i);
  }
  hkv_close(db);
}

static long readLong(hkv_db *db, const char *zKey) {
  const void *p;
  size_t n;
  int rc = hkv_get(db, zKey, strlen(zKey), &p, &n);
  if (rc == HKV_NOTFOUND) return -1;
  ck_assert_msg(rc == HKV_OK, "%s: %s", zKey, hkv_codename(rc));
  char z[32];
  ck_assert_uint_lt(n, sizeof(z));
  memcpy(z, p, n);
  z[n] = 0;
  return atol(z);
}

/* The copy in zDir holds exactly the first m commits, a0 <= m <= a1 + 1. */
static void checkPrefix(const char *zDir, long a0, long a1) {
  hkv_db *db = openAt(zDir, 32768, 0, HKV_OPEN_NOCREATE);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  long m = readLong(db, "last");
  /* The one commit in flight may be in: published, not yet returned. */
  ck_assert_msg(m >= a0 && m <= a1 + 1,
                "copy holds %ld commits; %ld..%ld acked", m, a0, a1);
  static long aSlot[NSLOT];
  for (int j = 0; j < NSLOT; j++) aSlot[j] = -1;
  for (long i = 1; i <= m; i++) {
    aSlot[i % NSLOT] = i;
    if (i % 5 == 0) aSlot[(i - 2) % NSLOT] = -1;
  }
  long nLive = 1;
  char k[32];
  for (int j = 0; j < NSLOT; j++) {
    snprintf(k, sizeof(k), "t%d", j);
    ck_assert_msg(readLong(db, k) == aSlot[j], "%s in a copy of %ld commits", k,
                  m);
    nLive += aSlot[j] > 0;
  }
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, (uint64_t)nLive);
  ck_rc(hkv_close(db), HKV_OK);
}

/* Takes nBackup backups of zStore beside the writer, each checked. */
static void backupsBesideWriter(Shared *sh, int nBackup) {
  hkv_db *db = openAt(zStore, 32768, 0, HKV_OPEN_READONLY);
  for (int b = 0; b < nBackup; b++) {
    long nWant = atomic_load(&sh->nAcked) + 200;
    for (int n = 0; atomic_load(&sh->nAcked) < nWant && n < 60000; n++) {
      testNap();
    }
    ck_assert(!atomic_load(&sh->bFailed));
    char zCopy[500];
    snprintf(zCopy, sizeof(zCopy), "%s/copy%d", zTestDir, b);
    long a0 = atomic_load(&sh->nAcked);
    int rc = hkv_backup(db, zCopy, 0, 0);
    long a1 = atomic_load(&sh->nAcked);
    ck_assert_msg(rc == HKV_OK, "backup: %s %s", hkv_codename(rc),
                  hkv_errmsg(db));
    checkPrefix(zCopy, a0, a1);
    rmTree(zCopy);
  }
  ck_rc(hkv_close(db), HKV_OK);
}

START_TEST(prefix_of_commits_writer_process) {
  Shared *sh = mmap(0, sizeof(Shared), PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(sh, MAP_FAILED);
  memset(sh, 0, sizeof(*sh));
  hkv_db *db = openAt(zStore, 32768, 0, 0); /* create it */
  ck_rc(hkv_close(db), HKV_OK);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    writerLoop(zStore, sh);
    _exit(0);
  }
  backupsBesideWriter(sh, 12);
  atomic_store(&sh->bStop, 1);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  ck_assert(!atomic_load(&sh->bFailed));
  /* The writer compacted meanwhile, so backups met a switch. */
  hkv_db *c = openAt(zStore, 32768, 0, HKV_OPEN_NOCREATE);
  char zManifest[500];
  snprintf(zManifest, sizeof(zManifest), "%s/MANIFEST", zStore);
  ck_assert(exists(zManifest));
  ck_rc(hkv_close(c), HKV_OK);
  munmap(sh, sizeof(Shared));
}
END_TEST

static void *writerThread(void *pArg) {
  writerLoop(zStore, pArg);
  return 0;
}

START_TEST(prefix_of_commits_writer_thread) {
  static Shared sh;
  memset(&sh, 0, sizeof(sh));
  /* Keeps the engine open; its first open sets automatic compaction. */
  hkv_db *db = openAt(zStore, 32768, 0.3, 0);
  pthread_t t;
  ck_assert_int_eq(pthread_create(&t, 0, writerThread, &sh), 0);
  /* The backups go through the writer's own engine (one per process). */
  backupsBesideWriter(&sh, 12);
  atomic_store(&sh.bStop, 1);
  pthread_join(t, 0);
  ck_assert(!atomic_load(&sh.bFailed));
  ck_rc(hkv_close(db), HKV_OK);
}
END_TEST

int main(void) {
  Suite *s = suite_create("backup");
  TCase *tc = tcase_create("backup");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, copy_opens_and_holds_the_data);
  tcase_add_test(tc, copy_without_links);
  tcase_add_test(tc, destination_rules);
  tcase_add_test(tc, progress_and_stopping);
  tcase_add_test(tc, every_failure_leaves_nothing);
  tcase_add_test(tc, prefix_of_commits_writer_process);
  tcase_add_test(tc, prefix_of_commits_writer_thread);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
