/*
** test_ttl.c: keys that expire (store/, issue 19). Every test runs under a
** clock it sets (the HkvEnv seam's xNow): the contract of each call, the
** expiry surviving a reopen, a kill, hints of both kinds and compaction, an
** expired key never showing an older record of itself, reclaim (compaction
** and its automatic trigger), processes that each judge by their own clock,
** and a seeded random model test against a trivial map with expiries.
*/
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "hkvInt.h"
#include "testutil.h"

static const char *zStore;
static int64_t iClock; /* the test's wall clock, Unix ms */
static HkvEnv clockEnv;

static int64_t testNow(int bExact) {
  (void)bExact; return iClock; }

static void setup(void) {
  zStore = testDirSetup();
  iClock = 1700000000000; /* Nov 2023 */
  clockEnv = hkvPosixEnv;
  clockEnv.xNow = testNow;
  hkvEnvInstall(&clockEnv);
}
static void teardown(void) {
  hkvEnvInstall(NULL);
  testDirTeardown();
}

static hkv_db *openSeg(uint64_t szSeg, double rAuto) {
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_NORMAL;
  if (szSeg) o.segment_size = szSeg;
  o.auto_compact = rAuto;
  o.auto_compact_min = 0;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_OK, "open: %s %s", hkv_codename(rc),
                db ? hkv_errmsg(db) : "");
  return db;
}
static hkv_db *openStore(void) { return openSeg(0, 0); }

/* Asserts key has value zWant (NULL: absent) and expiry iWant. */
static void expectKey(hkv_db *db, const char *zKey, const char *zWant,
                      int64_t iWant) {
  const void *p;
  size_t n;
  int64_t iExp = -1;
  int rc = hkv_get(db, zKey, strlen(zKey), &p, &n);
  int rc2 = hkv_get_expiry(db, zKey, strlen(zKey), &iExp);
  if (!zWant) {
    ck_assert_msg(rc == HKV_NOTFOUND && rc2 == HKV_NOTFOUND,
                  "%s: wanted absent, got %s/%s", zKey, hkv_codename(rc),
                  hkv_codename(rc2));
    ck_assert_int_eq(iExp, 0);
    return;
  }
  ck_assert_msg(rc == HKV_OK && rc2 == HKV_OK, "%s: %s/%s (%s)", zKey,
                hkv_codename(rc), hkv_codename(rc2), hkv_errmsg(db));
  ck_assert_uint_eq(n, strlen(zWant));
  ck_assert(memcmp(p, zWant, n) == 0);
  ck_assert_msg(iExp == iWant, "%s: expiry %lld, wanted %lld", zKey,
                (long long)iExp, (long long)iWant);
}

static int putExp(hkv_db *db, const char *zKey, const char *zVal,
                  int64_t iExp) {
  return hkv_put_expiring(db, zKey, strlen(zKey), zVal, strlen(zVal), iExp);
}

/* ck_rc, with db's message on failure. */
#define ck_rc_db(db, x, want)                                          \
  do {                                                                 \
    int rc_ = (x);                                                     \
    ck_assert_msg(rc_ == (want), "%s returned %s (%s), wanted %s", #x, \
                  hkv_codename(rc_), hkv_errmsg(db), hkv_codename(want)); \
  } while (0)

static hkv_stats stats(hkv_db *db) {
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  return st;
}

START_TEST(expiry_contract) {
  hkv_db *db = openStore();
  int64_t t0 = iClock;
  ck_rc(putExp(db, "a", "1", t0 + 1000), HKV_OK);
  ck_rc(putExp(db, "b", "2", 0), HKV_OK); /* 0: never */
  expectKey(db, "a", "1", t0 + 1000);
  expectKey(db, "b", "2", 0);
  ck_assert_uint_eq(stats(db).expiring_keys, 1);
  /* The last millisecond before the expiry sees it; the expiry does not. */
  iClock = t0 + 999;
  expectKey(db, "a", "1", t0 + 1000);
  iClock = t0 + 1000;
  expectKey(db, "a", NULL, 0);
  /* Expired is absent for every call. */
  ck_rc(hkv_delete(db, "a", 1), HKV_NOTFOUND);
  ck_rc(hkv_expire(db, "a", 1, t0 + 5000), HKV_NOTFOUND);
  ck_rc(hkv_insert(db, "a", 1, "3", 1), HKV_OK);
  expectKey(db, "a", "3", 0);
  /* hkv_expire keeps the value: set, re-arm, clear. */
  ck_rc(hkv_expire(db, "a", 1, t0 + 3000), HKV_OK);
  expectKey(db, "a", "3", t0 + 3000);
  ck_rc(hkv_expire(db, "a", 1, t0 + 4000), HKV_OK);
  expectKey(db, "a", "3", t0 + 4000);
  ck_rc(hkv_expire(db, "a", 1, 0), HKV_OK);
  expectKey(db, "a", "3", 0);
  ck_assert_uint_eq(stats(db).expiring_keys, 0);
  /* hkv_put clears an expiry. */
  ck_rc(putExp(db, "c", "x", t0 + 2000), HKV_OK);
  ck_rc(hkv_put(db, "c", 1, "y", 1), HKV_OK);
  iClock = t0 + 2500;
  expectKey(db, "c", "y", 0);
  /* A past expiry deletes: put, expire; OK either way for a put. */
  ck_rc(putExp(db, "c", "z", iClock), HKV_OK);
  expectKey(db, "c", NULL, 0);
  ck_rc(putExp(db, "c", "z", iClock - 1), HKV_OK);
  ck_rc(putExp(db, "c", "z", -5), HKV_OK);
  expectKey(db, "c", NULL, 0);
  ck_rc(hkv_expire(db, "b", 1, 1), HKV_OK);
  expectKey(db, "b", NULL, 0);
  ck_rc(hkv_expire(db, "b", 1, 1), HKV_NOTFOUND);
  /* Insert: EXISTS for a live key, whatever the expiry; a past one on an
  ** absent key writes nothing. */
  ck_rc(hkv_insert_expiring(db, "a", 1, "q", 1, iClock + 10), HKV_EXISTS);
  ck_rc(hkv_insert_expiring(db, "d", 1, "q", 1, iClock - 10), HKV_OK);
  expectKey(db, "d", NULL, 0);
  ck_rc(hkv_insert_expiring(db, "d", 1, "q", 1, iClock + 10), HKV_OK);
  expectKey(db, "d", "q", iClock + 10);
  /* Misuse. */
  int64_t iExp;
  ck_rc(hkv_get_expiry(db, "d", 1, NULL), HKV_MISUSE);
  ck_rc(hkv_get_expiry(db, "", 0, &iExp), HKV_MISUSE);
  ck_rc(hkv_expire(NULL, "d", 1, 0), HKV_MISUSE);
  ck_rc(hkv_expire(db, "", 0, 0), HKV_MISUSE);
  ck_rc_db(db, hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

START_TEST(expiry_in_transactions) {
  hkv_db *db = openStore();
  hkv_db *r = openStore();
  int64_t t0 = iClock;
  ck_rc(putExp(db, "k", "old", t0 + 100), HKV_OK);
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_expire(db, "k", 1, t0 + 900), HKV_OK);
  expectKey(db, "k", "old", t0 + 900); /* the writer sees its own */
  expectKey(r, "k", "old", t0 + 100);  /* others the committed */
  ck_rc(hkv_savepoint(db, 0), HKV_OK);
  ck_rc(putExp(db, "k", "new", 0), HKV_OK);
  ck_rc(putExp(db, "n", "fresh", t0 + 50), HKV_OK);
  expectKey(db, "k", "new", 0);
  ck_rc(hkv_rollback_to(db, 0), HKV_OK);
  expectKey(db, "k", "old", t0 + 900);
  expectKey(db, "n", NULL, 0);
  ck_rc(hkv_commit(db), HKV_OK);
  expectKey(r, "k", "old", t0 + 900);
  /* Rolled back: the expiry before it is back. */
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_expire(db, "k", 1, 0), HKV_OK);
  ck_rc(hkv_rollback(db), HKV_OK);
  expectKey(r, "k", "old", t0 + 900);
  /* The value re-armed comes from the writer's own buffered record. */
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putExp(db, "b", "buffered", t0 + 10), HKV_OK);
  ck_rc(hkv_expire(db, "b", 1, t0 + 20), HKV_OK);
  expectKey(db, "b", "buffered", t0 + 20);
  ck_rc(hkv_commit(db), HKV_OK);
  expectKey(r, "b", "buffered", t0 + 20);
  ck_assert_uint_eq(stats(r).expiring_keys, 2);
  iClock = t0 + 1000;
  expectKey(r, "k", NULL, 0);
  expectKey(r, "b", NULL, 0);
  hkv_close(r);
  hkv_close(db);
}
END_TEST

START_TEST(iteration_skips_expired) {
  hkv_db *db = openStore();
  int64_t t0 = iClock;
  char k[16];
  for (int i = 0; i < 100; i++) {
    snprintf(k, sizeof(k), "k%03d", i);
    ck_rc(putExp(db, k, k, i % 2 ? t0 + 10 * i : 0), HKV_OK);
  }
  iClock = t0 + 500; /* odd i below 50 have expired */
  hkv_iter *it;
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  int64_t iExp;
  ck_rc(hkv_iter_expiry(it, &iExp), HKV_MISUSE);
  const void *pK, *pV;
  size_t nK, nV;
  int n = 0;
  while (hkv_iter_next(it, &pK, &nK, &pV, &nV) == HKV_OK) {
    int i = atoi((const char *)pK + 1);
    ck_rc(hkv_iter_expiry(it, &iExp), HKV_OK);
    ck_assert(!(i % 2) || i > 50);
    ck_assert_int_eq(iExp, i % 2 ? t0 + 10 * i : 0);
    n++;
  }
  ck_assert_int_eq(n, 50 + 25);
  hkv_iter_close(it);
  hkv_close(db);
}
END_TEST

/* Key "k" holds an older record without expiry under a newer one that
** expires: once expired, no open may show the older one. */
START_TEST(reopen_keeps_expiry_and_never_resurrects) {
  hkv_db *db = openStore();
  int64_t t0 = iClock;
  ck_rc(hkv_put(db, "k", 1, "older", 5), HKV_OK);
  ck_rc(putExp(db, "k", "newer", t0 + 100), HKV_OK);
  ck_rc(putExp(db, "l", "long", t0 + 100000), HKV_OK);
  hkv_close(db);
  db = openStore();
  expectKey(db, "k", "newer", t0 + 100);
  expectKey(db, "l", "long", t0 + 100000);
  ck_assert_uint_eq(stats(db).expiring_keys, 2);
  hkv_close(db);
  iClock = t0 + 100;
  db = openStore();
  expectKey(db, "k", NULL, 0);
  expectKey(db, "l", "long", t0 + 100000);
  hkv_stats st = stats(db);
  ck_assert_uint_eq(st.live_keys, 1); /* the expired key is not indexed */
  ck_assert_uint_eq(st.expiring_keys, 1);
  ck_assert_uint_ge(st.expired_keys, 1);
  ck_rc_db(db, hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

START_TEST(kill_keeps_expiry) {
  int64_t t0 = iClock;
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    hkv_options o;
    hkv_options_init(&o);
    o.sync = HKV_SYNC_FULL;
    hkv_db *db = 0;
    if (hkv_open(zStore, &o, &db)) _exit(2);
    if (hkv_put(db, "k", 1, "older", 5)) _exit(3);
    if (putExp(db, "k", "newer", t0 + 100)) _exit(4);
    if (putExp(db, "l", "long", t0 + 100000)) _exit(5);
    if (hkv_begin(db) || putExp(db, "l", "void", t0 + 1)) _exit(6);
    if (hkv_prepare(db)) _exit(7);
    raise(SIGKILL); /* prepared, never published: the commit is durable */
    _exit(8);
  }
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  hkv_db *db = openStore();
  expectKey(db, "k", "newer", t0 + 100);
  expectKey(db, "l", "void", t0 + 1);
  hkv_close(db);
  iClock = t0 + 100;
  db = openStore();
  expectKey(db, "k", NULL, 0);
  expectKey(db, "l", NULL, 0);
  hkv_close(db);
}
END_TEST

static int countFiles(const char *zExt) {
  DIR *d = opendir(zStore);
  int n = 0;
  struct dirent *pEnt;
  while ((pEnt = readdir(d)) != 0) {
    size_t l = strlen(pEnt->d_name);
    if (l > 4 && !strcmp(pEnt->d_name + l - 4, zExt)) n++;
  }
  closedir(d);
  return n;
}

/* Flips the last value byte of the first record of segment 1, which holds
** key "filler": an open that reads the segment fails, one from its hint
** does not (hints are not checksummed at open), which shows the hint was
** what the open used. */
static void damageFiller(void) {
  char z[600];
  snprintf(z, sizeof(z), "%s/00000001.hkd", zStore);
  int fd = open(z, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t c;
  off_t iOff = HKV_SEG_HDR + HKV_REC_HDR + 6 + 7;
  ck_assert_int_eq(pread(fd, &c, 1, iOff), 1);
  c ^= 0x5A;
  ck_assert_int_eq(pwrite(fd, &c, 1, iOff), 1);
  close(fd);
}

/* Writes key "k" without expiry, then keys e0..e199 expiring at t0 + 100
** (even) or t0 + 100000 (odd), then "k" again expiring at t0 + 100, over
** small segments, so the sealed ones get hints. */
static void writeSealed(hkv_db *db, int64_t t0) {
  char k[16], v[64];
  ck_rc(hkv_put(db, "filler", 6, "01234567", 8), HKV_OK);
  ck_rc(hkv_put(db, "k", 1, "older", 5), HKV_OK);
  for (int i = 0; i < 200; i++) {
    snprintf(k, sizeof(k), "e%d", i);
    snprintf(v, sizeof(v), "value-%d-padding-padding-padding", i);
    ck_rc(putExp(db, k, v, i % 2 ? t0 + 100000 : t0 + 100), HKV_OK);
  }
  ck_rc(putExp(db, "k", "newer", t0 + 100), HKV_OK);
  for (int i = 0; i < 100; i++) ck_rc(hkv_put(db, "z", 1, "zz", 2), HKV_OK);
}

static void checkSealed(hkv_db *db, int64_t t0, int bExpired) {
  char k[16], v[64];
  for (int i = 0; i < 200; i++) {
    snprintf(k, sizeof(k), "e%d", i);
    snprintf(v, sizeof(v), "value-%d-padding-padding-padding", i);
    int bGone = bExpired && i % 2 == 0;
    expectKey(db, k, bGone ? NULL : v, i % 2 ? t0 + 100000 : t0 + 100);
  }
  expectKey(db, "k", bExpired ? NULL : "newer", t0 + 100);
  hkv_stats st = stats(db);
  /* The index itself knows the expiries: from the hints. */
  ck_assert_uint_eq(st.expiring_keys, (bExpired ? 100 : 201));
  ck_assert_uint_eq(st.live_keys, (bExpired ? 102 : 203));
}

START_TEST(sealed_hints_keep_expiry) {
  int64_t t0 = iClock;
  hkv_db *db = openSeg(4096, 0);
  writeSealed(db, t0);
  hkv_close(db);
  ck_assert_int_gt(countFiles(".hkh"), 2);
  damageFiller();
  db = openSeg(4096, 0);
  checkSealed(db, t0, 0);
  hkv_close(db);
  iClock = t0 + 100;
  db = openSeg(4096, 0);
  checkSealed(db, t0, 1);
  hkv_close(db);
}
END_TEST

START_TEST(compaction_drops_expired_and_keeps_expiry) {
  int64_t t0 = iClock;
  hkv_db *db = openSeg(4096, 0);
  writeSealed(db, t0);
  ck_rc(hkv_compact(db), HKV_OK); /* before expiry: everything is copied */
  checkSealed(db, t0, 0);
  hkv_close(db);
  ck_assert_int_gt(countFiles(".hkc"), 0);
  /* Opened from the outputs' hints once the keys expired: they stay out of
  ** the index (their records are still there: set the clock back and they
  ** are back, as nothing was compacted since). */
  iClock = t0 + 100;
  db = openSeg(4096, 0);
  checkSealed(db, t0, 1);
  ck_assert_uint_eq(stats(db).expired_keys, 101);
  hkv_close(db);
  iClock = t0;
  db = openSeg(4096, 0); /* from the outputs' hints */
  checkSealed(db, t0, 0);
  hkv_stats st0 = stats(db);
  iClock = t0 + 100;
  ck_rc(hkv_compact(db), HKV_OK);
  checkSealed(db, t0, 1);
  hkv_stats st1 = stats(db);
  ck_assert_uint_eq(st1.expired_keys, 101);
  ck_assert_uint_lt(st1.total_bytes, st0.total_bytes);
  ck_rc_db(db, hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
  /* Gone for good: set the clock back, and neither the expired records nor
  ** the older "k" (a tombstone-less drop) come back. */
  iClock = t0;
  db = openSeg(4096, 0);
  expectKey(db, "k", NULL, 0);
  expectKey(db, "e0", NULL, 0);
  expectKey(db, "e1", "value-1-padding-padding-padding", t0 + 100000);
  hkv_close(db);
}
END_TEST

/* The step-wise (automatic) compaction path drops expired records as
** hkv_compact does, and the auto_compact trigger counts them as dead: a
** store of keys that have all expired compacts itself with no delete. */
START_TEST(auto_compact_reclaims_expired) {
  int64_t t0 = iClock;
  hkv_db *db = openSeg(4096, 0.5);
  char k[32], v[64];
  for (int i = 0; i < 400; i++) {
    snprintf(k, sizeof(k), "cache-%d", i);
    snprintf(v, sizeof(v), "value-%d-padding-padding-padding", i);
    ck_rc(putExp(db, k, v, t0 + 1000), HKV_OK);
  }
  hkv_stats st0 = stats(db);
  ck_assert_uint_eq(st0.compactions, 0); /* nothing dead yet */
  ck_assert_uint_eq(st0.expiring_keys, 400);
  iClock = t0 + 1000;
  for (int i = 0; i < 200; i++) {
    snprintf(k, sizeof(k), "other-%d", i);
    ck_rc(hkv_put(db, k, strlen(k), "x", 1), HKV_OK);
  }
  hkv_stats st1 = stats(db);
  ck_assert_uint_ge(st1.compactions, 1);
  ck_assert_uint_ge(st1.expired_keys, 300);
  ck_assert_uint_lt(st1.total_bytes, st0.total_bytes);
  ck_assert_uint_eq(st1.live_keys + st1.expired_keys, 600);
  ck_rc_db(db, hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

/* Two processes, two clocks: each judges by its own (the rule is the same
** everywhere: gone once the reader's clock reaches the expiry). */
START_TEST(processes_each_use_their_clock) {
  int64_t t0 = iClock;
  hkv_db *db = openStore();
  ck_rc(putExp(db, "s", "session", t0 + 500), HKV_OK);
  int aUp[2], aDown[2];
  ck_assert_int_eq(pipe(aUp), 0);
  ck_assert_int_eq(pipe(aDown), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(aUp[0]);
    close(aDown[1]);
    hkv_db *c = 0;
    hkv_options o;
    hkv_options_init(&o);
    if (hkv_open(zStore, &o, &c)) _exit(2);
    const void *p;
    size_t n;
    iClock = t0 + 499;
    if (hkv_get(c, "s", 1, &p, &n) != HKV_OK) _exit(3);
    iClock = t0 + 500;
    if (hkv_get(c, "s", 1, &p, &n) != HKV_NOTFOUND) _exit(4);
    /* The parent re-arms; this clock still rules. */
    char b;
    if (write(aUp[1], "r", 1) != 1 || read(aDown[0], &b, 1) != 1) _exit(5);
    int64_t iExp;
    if (hkv_get_expiry(c, "s", 1, &iExp) != HKV_OK || iExp != t0 + 900)
      _exit(6);
    iClock = t0 + 900;
    if (hkv_get(c, "s", 1, &p, &n) != HKV_NOTFOUND) _exit(7);
    hkv_close(c);
    _exit(0);
  }
  close(aUp[1]); /* a child that fails ends the reads below */
  close(aDown[0]);
  char b;
  ck_assert_int_eq(read(aUp[0], &b, 1), 1);
  /* This process's clock is still t0: the key is there to re-arm. */
  ck_rc(hkv_expire(db, "s", 1, t0 + 900), HKV_OK);
  ck_assert_int_eq(write(aDown[1], "g", 1), 1);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  expectKey(db, "s", "session", t0 + 900);
  hkv_close(db);
}
END_TEST

/* Fault loops: the Nth allocation or write fails, for N = 1, 2, ... until
** the call succeeds, during hkv_put_expiring of a new key, hkv_expire of a
** key whose record is still in the write buffer (it is flushed first) and
** of a committed one. Each failure is a clean code; after NOMEM nothing
** changed and the handle goes on; after an I/O error (the store refuses
** writes) a reopen shows the state before the call, or, for an autocommit
** call whose record was already written, after it. */
static int nFailAt; /* fail the call when it reaches 0; <0: never */
static int failNow(void) { return nFailAt >= 0 && nFailAt-- == 0; }
static void *faultMalloc(size_t n) { return failNow() ? 0 : malloc(n); }
static void *faultCalloc(size_t a, size_t b) {
  return failNow() ? 0 : calloc(a, b);
}
static void *faultRealloc(void *p, size_t n) {
  return failNow() ? 0 : realloc(p, n);
}
static long faultWrite(int fd, const void *p, size_t n, uint64_t off) {
  return failNow() ? -EIO : hkvPosixEnv.xWrite(fd, p, n, off);
}

START_TEST(fault_loops) {
  int64_t t0 = iClock;
  for (int iOp = 0; iOp < 3; iOp++) {
    int bDone = 0;
    for (int n = 0; !bDone && n < 200; n++) {
      testDirTeardown();
      zStore = testDirSetup();
      nFailAt = -1;
      hkv_db *db = openStore();
      ck_rc(putExp(db, "k", "v0", t0 + 500), HKV_OK);
      if (iOp == 1) {
        ck_rc(hkv_begin(db), HKV_OK);
        ck_rc(putExp(db, "k", "v1", t0 + 600), HKV_OK); /* buffered */
      }
      clockEnv.xMalloc = faultMalloc;
      clockEnv.xCalloc = faultCalloc;
      clockEnv.xRealloc = faultRealloc;
      clockEnv.xWrite = faultWrite;
      nFailAt = n;
      int rc = iOp == 0 ? putExp(db, "new", "n", t0 + 700)
                        : hkv_expire(db, "k", 1, t0 + 900);
      if (rc == HKV_OK && iOp == 1) rc = hkv_commit(db);
      bDone = nFailAt > 0; /* finished before its Nth call */
      nFailAt = -1;
      clockEnv = hkvPosixEnv;
      clockEnv.xNow = testNow;
      ck_assert(!bDone || rc == HKV_OK);
      ck_assert_msg(rc == HKV_OK || rc == HKV_NOMEM || rc == HKV_IOERR ||
                        rc == HKV_FAILED,
                    "op %d fail at %d: %s", iOp, n, hkv_codename(rc));
      if (rc == HKV_NOMEM && iOp != 1) {
        expectKey(db, "k", "v0", t0 + 500); /* unchanged, and usable */
        expectKey(db, "new", NULL, 0);
        ck_rc(putExp(db, "other", "o", t0 + 50), HKV_OK);
      }
      if (iOp == 1 && rc != HKV_OK) hkv_rollback(db);
      hkv_close(db);
      db = openStore();
      int64_t iExp = 0;
      ck_rc(hkv_get_expiry(db, "k", 1, &iExp), HKV_OK);
      if (iOp == 0) {
        expectKey(db, "k", "v0", t0 + 500);
        expectKey(db, "new", rc == HKV_OK ? "n" : NULL, t0 + 700);
      } else if (rc == HKV_OK) {
        expectKey(db, "k", iOp == 1 ? "v1" : "v0", t0 + 900);
      } else {
        /* Rolled back (op 1) or never written (op 2): as before. */
        expectKey(db, "k", "v0", iOp == 1 ? t0 + 500 : iExp);
        ck_assert(iExp == t0 + 500 || iExp == t0 + 900);
      }
      ck_rc(hkv_integrity_check(db), HKV_OK);
      hkv_close(db);
    }
    ck_assert_msg(bDone, "op %d never succeeded", iOp);
  }
  hkvEnvInstall(&clockEnv);
}
END_TEST

/* A seeded random model: puts with and without expiry, re-arms, deletes,
** transactions rolled back, the clock moving, compaction and reopens; every
** key of the model is compared after each round, and a scan must list
** exactly the model's live keys. */
#define NKEY 64
typedef struct Model {
  int bHas;
  char zVal[24];
  int64_t iExp;
} Model;

static int modelLive(const Model *m, int64_t iNow) {
  return m->bHas && !hkvExpired(m->iExp, iNow);
}

START_TEST(random_model) {
  static Model aM[NKEY], aSave[NKEY];
  memset(aM, 0, sizeof(aM));
  unsigned seed = 19;
  hkv_db *db = openSeg(4096, 0.3);
  char k[16];
  for (int round = 0; round < 60; round++) {
    int bTxn = round % 4 == 1, bRoll = round % 8 == 1;
    if (bTxn) {
      memcpy(aSave, aM, sizeof(aM));
      ck_rc(hkv_begin(db), HKV_OK);
    }
    for (int op = 0; op < 40; op++) {
      int i = rand_r(&seed) % NKEY;
      Model *m = &aM[i];
      snprintf(k, sizeof(k), "key%d", i);
      int r = rand_r(&seed) % 10;
      int64_t iExp = rand_r(&seed) % 3 == 0
                         ? 0
                         : iClock - 50 + (int64_t)(rand_r(&seed) % 2000);
      int bLive = modelLive(m, iClock);
      if (r < 5) {
        char v[24];
        snprintf(v, sizeof(v), "v%d.%d", round, op);
        ck_rc(putExp(db, k, v, iExp), HKV_OK);
        m->bHas = !hkvExpired(iExp, iClock);
        snprintf(m->zVal, sizeof(m->zVal), "%s", v);
        m->iExp = iExp;
      } else if (r < 8) {
        ck_rc(hkv_expire(db, k, strlen(k), iExp), bLive ? HKV_OK
                                                        : HKV_NOTFOUND);
        if (bLive) {
          m->bHas = !hkvExpired(iExp, iClock);
          m->iExp = iExp;
        }
      } else {
        ck_rc_db(db, hkv_delete(db, k, strlen(k)),
                 bLive ? HKV_OK : HKV_NOTFOUND);
        m->bHas = 0;
      }
    }
    if (bTxn && bRoll) {
      ck_rc(hkv_rollback(db), HKV_OK);
      memcpy(aM, aSave, sizeof(aM));
    } else if (bTxn) {
      ck_rc(hkv_commit(db), HKV_OK);
    }
    iClock += rand_r(&seed) % 400;
    if (round % 10 == 9) ck_rc(hkv_compact(db), HKV_OK);
    if (round % 7 == 6) {
      hkv_close(db);
      db = openSeg(4096, 0.3);
    }
    int nLive = 0;
    for (int i = 0; i < NKEY; i++) {
      snprintf(k, sizeof(k), "key%d", i);
      if (modelLive(&aM[i], iClock)) {
        expectKey(db, k, aM[i].zVal, aM[i].iExp);
        nLive++;
      } else {
        expectKey(db, k, NULL, 0);
      }
    }
    hkv_iter *it;
    ck_rc(hkv_iter_open(db, &it), HKV_OK);
    const void *pK, *pV;
    size_t nK, nV;
    int n = 0;
    while (hkv_iter_next(it, &pK, &nK, &pV, &nV) == HKV_OK) {
      int i = atoi((const char *)pK + 3);
      ck_assert(modelLive(&aM[i], iClock));
      n++;
    }
    hkv_iter_close(it);
    ck_assert_int_eq(n, nLive);
    ck_rc_db(db, hkv_integrity_check(db), HKV_OK);
  }
  hkv_close(db);
}
END_TEST

int main(void) {
  Suite *s = suite_create("ttl");
  TCase *tc = tcase_create("ttl");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, expiry_contract);
  tcase_add_test(tc, expiry_in_transactions);
  tcase_add_test(tc, iteration_skips_expired);
  tcase_add_test(tc, reopen_keeps_expiry_and_never_resurrects);
  tcase_add_test(tc, kill_keeps_expiry);
  tcase_add_test(tc, sealed_hints_keep_expiry);
  tcase_add_test(tc, compaction_drops_expired_and_keeps_expiry);
  tcase_add_test(tc, auto_compact_reclaims_expired);
  tcase_add_test(tc, processes_each_use_their_clock);
  tcase_add_test(tc, fault_loops);
  tcase_add_test(tc, random_model);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
