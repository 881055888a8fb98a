/*
** test_procs.c: several processes on one store. Real processes (fork), each
** with its own engine: visibility of each other's commits, one writer at a
** time with BUSY for the second, a model check of what readers see while
** writers race, a writer SIGKILLed in the middle of a transaction, read-only
** opens beside a writer, segment rotation and compaction seen from another
** process. Where readers race writers, the writers wait part way for a read
** of each (testOverlapWait), so the readers must have seen a state in
** between; a wait that times out fails the test. Then compactors stopped
** and killed at named points of hkv_compact (the crash hook), and a storm
** of SIGKILLs among processes that write and compact.
*/
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

#include "hkvInt.h" /* hkvTestCrashHook */
#include "testutil.h"

static const char *zStore;

static void setup(void) { zStore = testDirSetup(); }
static void teardown(void) { testDirTeardown(); }

static hkv_db *openWith(unsigned flags, uint32_t szSeg, double rAuto) {
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_NORMAL;
  o.flags = flags;
  if (szSeg) o.segment_size = szSeg;
  o.auto_compact = rAuto;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  if (rc != HKV_OK) {
    fprintf(stderr, "open: %s %s\n", hkv_codename(rc),
            db ? hkv_errmsg(db) : "");
    hkv_close(db);
    return 0;
  }
  return db;
}

static hkv_db *openStore(void) {
  hkv_db *db = openWith(0, 0, 0);
  ck_assert_ptr_nonnull(db);
  return db;
}

static int putU64(hkv_db *db, const char *zKey, uint64_t v) {
  return hkv_put(db, zKey, strlen(zKey), &v, sizeof(v));
}

/* The value of zKey as a number; 0 when absent; UINT64_MAX on error. */
static uint64_t getU64(hkv_db *db, const char *zKey) {
  const void *p;
  size_t n;
  int rc = hkv_get(db, zKey, strlen(zKey), &p, &n);
  if (rc == HKV_NOTFOUND) return 0;
  if (rc != HKV_OK || n != 8) return UINT64_MAX;
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static int waitChild(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static void sleepMs(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, 0);
}

/* A pipe-free rendezvous: a shared anonymous page the processes poll. */
typedef struct Board {
  volatile int aFlag[8];
  volatile uint64_t aCount[8];
  TestOverlap ov;            /* readers answering a writer (testutil.h) */
  volatile uint64_t aMid[8]; /* per reader: snapshots strictly between the
                             ** first commit and the last */
} Board;

static Board *newBoard(void) {
  Board *b = mmap(0, sizeof(Board), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(b != MAP_FAILED);
  memset((void *)b, 0, sizeof(*b));
  return b;
}

/* Waits (at most 60 s) until flag i reaches v: 1, or 0 on timeout. The
** parent asserts it (waitFor); a child exits with a code of its own. */
static int waitFlag(Board *b, int i, int v) {
  return testWaitFlag(&b->aFlag[i], v, 60);
}
#define waitFor(b, i, v) \
  ck_assert_msg(waitFlag(b, i, v), "timed out waiting for flag %d = %d", i, v)

START_TEST(commits_seen_across_processes) {
  hkv_db *db = openStore();
  ck_rc(putU64(db, "k", 1), HKV_OK);
  Board *b = newBoard();
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *c = openWith(0, 0, 0);
    int ok = c && getU64(c, "k") == 1;
    ok = ok && putU64(c, "from-child", 7) == HKV_OK;
    if (!ok) fprintf(stderr, "child step 1: %s\n", c ? hkv_errmsg(c) : "");
    b->aFlag[0] = 1;
    if (!waitFlag(b, 1, 1)) _exit(11); /* the parent committed k = 2 */
    ok = ok && getU64(c, "k") == 2;
    if (!ok)
      fprintf(stderr, "child step 2: %llu\n",
              (unsigned long long)getU64(c, "k"));
    if (!waitFlag(b, 1, 2)) _exit(12); /* the parent holds a write txn */
    int rc = putU64(c, "k", 99);
    ok = ok && rc == HKV_BUSY && strstr(hkv_errmsg(c), "another process");
    if (!ok)
      fprintf(stderr, "child step 3: %s %s\n", hkv_codename(rc), hkv_errmsg(c));
    ok = ok && getU64(c, "k") == 2; /* its uncommitted 3 is invisible */
    b->aFlag[0] = 2;
    if (!waitFlag(b, 1, 3)) _exit(13); /* the parent committed */
    ok = ok && getU64(c, "k") == 3;
    ok = ok && putU64(c, "k", 4) == HKV_OK; /* the lock is free again */
    hkv_close(c);
    _exit(ok ? 0 : 1);
  }
  waitFor(b, 0, 1);
  ck_assert_uint_eq(getU64(db, "from-child"), 7);
  ck_rc(putU64(db, "k", 2), HKV_OK);
  b->aFlag[1] = 1;
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putU64(db, "k", 3), HKV_OK);
  b->aFlag[1] = 2;
  waitFor(b, 0, 2);
  ck_rc(hkv_commit(db), HKV_OK);
  b->aFlag[1] = 3;
  ck_assert_int_eq(waitChild(pid), 0);
  ck_assert_uint_eq(getU64(db, "k"), 4);
  hkv_close(db);
  /* A reopen by a lone process shows the same. */
  db = openStore();
  ck_assert_uint_eq(getU64(db, "k"), 4);
  ck_assert_uint_eq(getU64(db, "from-child"), 7);
  hkv_close(db);
}
END_TEST

/*
** The model: each writer transaction (after taking the write lock with its
** first put) reads counter "c", writes c+1 to "c", "a" and "b", and one key
** of its own. Readers take snapshots (iterators) and check a == b == c, and
** that c never goes down. At the end c equals the number of commits the
** writers reported, so no commit was lost or applied twice. Half way
** through, each writer waits until every reader has taken a snapshot begun
** after it got there (testOverlapWait), so each reader must have seen c
** strictly between 0 and the final count: readers did race the writers.
*/
enum { NWRITER = 3, NREADER = 2 };

/* One model transaction: zOwn first (it takes the write lock, so "c" is
** read fresh), then c+1 into "c", "a" and "b". BUSY comes back with the
** transaction rolled back. */
static int modelTxn(hkv_db *db, const char *zOwn, uint64_t v) {
  int rc = hkv_begin(db);
  if (rc == HKV_OK) rc = putU64(db, zOwn, v);
  if (rc == HKV_BUSY) {
    hkv_rollback(db);
    return rc;
  }
  uint64_t c = rc == HKV_OK ? getU64(db, "c") : 0;
  if (c == UINT64_MAX) rc = HKV_CORRUPT;
  if (rc == HKV_OK) rc = putU64(db, "c", c + 1);
  if (rc == HKV_OK) rc = putU64(db, "a", c + 1);
  if (rc == HKV_OK) rc = putU64(db, "b", c + 1);
  if (rc == HKV_OK) rc = hkv_commit(db);
  return rc;
}

/* One reader snapshot: a == b == c in an iterator's view, c not below
** *pcLast, and a get of "c" right after at least as new. Returns 0 and
** moves *pcLast on, or 1 (saying why on stderr). *pcSnap gets the
** snapshot's c. */
static int checkSnapshot(hkv_db *db, uint64_t *pcLast, uint64_t *pcSnap) {
  hkv_iter *it;
  int rc = hkv_iter_open(db, &it);
  if (rc != HKV_OK) {
    fprintf(stderr, "iter_open: %s %s\n", hkv_codename(rc), hkv_errmsg(db));
    return 1;
  }
  uint64_t va = 0, vb = 0, vc = 0;
  const void *pK, *pV;
  size_t nK, nV;
  while (hkv_iter_next(it, &pK, &nK, &pV, &nV) == HKV_OK) {
    if (nK != 1 || nV != 8) continue;
    uint64_t v;
    memcpy(&v, pV, 8);
    if (*(const char *)pK == 'a') va = v;
    if (*(const char *)pK == 'b') vb = v;
    if (*(const char *)pK == 'c') vc = v;
  }
  hkv_iter_close(it);
  uint64_t cGet = getU64(db, "c");
  if (va != vb || vb != vc || vc < *pcLast || cGet < vc || cGet == UINT64_MAX) {
    fprintf(
        stderr, "snapshot a=%llu b=%llu c=%llu, before c=%llu, get c=%llu\n",
        (unsigned long long)va, (unsigned long long)vb, (unsigned long long)vc,
        (unsigned long long)*pcLast, (unsigned long long)cGet);
    return 1;
  }
  *pcLast = cGet;
  *pcSnap = vc;
  return 0;
}

static int writerLoop(Board *b, int iWriter, int nTxn, uint32_t szSeg) {
  hkv_db *db = openWith(0, szSeg, 0);
  if (!db) return 2;
  uint64_t nDone = 0;
  int bAsked = 0;
  char zOwn[32];
  for (int t = 0; t < nTxn; t++) {
    if (!bAsked && nDone == (uint64_t)nTxn / 2) {
      /* Half the commits made, half to come: the readers must see this. */
      bAsked = 1;
      if (!testOverlapWait(&b->ov, NREADER, 60)) {
        fprintf(stderr, "writer %d: the readers never answered\n", iWriter);
        hkv_close(db);
        return 6;
      }
    }
    snprintf(zOwn, sizeof(zOwn), "w%d-%d", iWriter, t % 50);
    int rc = modelTxn(db, zOwn, (uint64_t)t);
    if (rc == HKV_BUSY) {
      t--;
      sleepMs(rand() % 2);
      continue;
    }
    if (rc != HKV_OK) {
      fprintf(stderr, "writer %d: %s %s\n", iWriter, hkv_codename(rc),
              hkv_errmsg(db));
      hkv_close(db);
      return 3;
    }
    b->aCount[iWriter] = ++nDone;
  }
  hkv_close(db);
  return 0;
}

/* Reader iReader: snapshots until the writers are done, counting those
** that saw c strictly between 0 and nTotal, the count at the end. */
static int readerLoop(Board *b, int iReader, uint64_t nTotal) {
  hkv_db *db = openWith(HKV_OPEN_READONLY, 0, 0);
  if (!db) return 2;
  uint64_t cLast = 0, cSnap;
  int nSnap = 0;
  while (!b->aFlag[0] || nSnap < 5) {
    long g = testReadStart(&b->ov);
    if (checkSnapshot(db, &cLast, &cSnap)) return 4;
    if (cSnap > 0 && cSnap < nTotal) b->aMid[iReader]++;
    testReadDone(&b->ov, iReader, g);
    nSnap++;
  }
  hkv_close(db);
  return 0;
}

static void runModel(int nTxn, uint32_t szSeg) {
  hkv_db *db = openWith(0, szSeg, 0);
  ck_assert_ptr_nonnull(db);
  ck_rc(putU64(db, "c", 0), HKV_OK);
  Board *b = newBoard();
  pid_t aW[NWRITER], aR[NREADER];
  for (int i = 0; i < NREADER; i++) {
    aR[i] = fork();
    if (aR[i] == 0) _exit(readerLoop(b, i, (uint64_t)NWRITER * nTxn));
  }
  for (int i = 0; i < NWRITER; i++) {
    aW[i] = fork();
    if (aW[i] == 0) {
      srand((unsigned)i + 1);
      _exit(writerLoop(b, i + 1, nTxn, szSeg));
    }
  }
  for (int i = 0; i < NWRITER; i++) {
    ck_assert_int_eq(waitChild(aW[i]), 0);
  }
  b->aFlag[0] = 1;
  for (int i = 0; i < NREADER; i++) {
    ck_assert_int_eq(waitChild(aR[i]), 0);
    ck_assert_msg(b->aMid[i] > 0,
                  "reader %d saw no state between the first "
                  "commit and the last",
                  i);
  }
  uint64_t nCommits = 0;
  for (int i = 1; i <= NWRITER; i++) nCommits += b->aCount[i];
  ck_assert_uint_eq(nCommits, (uint64_t)NWRITER * nTxn);
  ck_assert_uint_eq(getU64(db, "c"), nCommits);
  ck_assert_uint_eq(getU64(db, "a"), nCommits);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
  db = openStore();
  ck_assert_uint_eq(getU64(db, "c"), nCommits);
  hkv_close(db);
}

START_TEST(model_writers_and_readers) { runModel(2000, 0); }
END_TEST

/* Small segments: writers rotate often, readers catch up across files. */
START_TEST(model_with_rotation) { runModel(1000, 4096); }
END_TEST

/* A writer killed in the middle of a transaction: the next writer (another
** process) cuts its tail and goes on; nobody ever sees half of it. */
START_TEST(writer_killed_mid_transaction) {
  hkv_db *db = openStore();
  ck_rc(putU64(db, "c", 0), HKV_OK);
  ck_rc(putU64(db, "a", 0), HKV_OK);
  Board *b = newBoard();
  uint64_t nCutBefore = 0;
  for (int round = 0; round < 5; round++) {
    pid_t pid = fork();
    if (pid == 0) {
      hkv_db *c = openWith(0, 0, 0);
      if (!c) _exit(2);
      uint64_t v = getU64(c, "c");
      /* One committed transaction, then one that never ends. */
      hkv_begin(c);
      putU64(c, "c", v + 1);
      putU64(c, "a", v + 1);
      if (hkv_commit(c) != HKV_OK) _exit(3);
      hkv_begin(c);
      char zKey[32];
      static char aBig[4096];
      for (int i = 0; i < 2000; i++) {
        /* Big enough to overflow the write buffer into the file. */
        snprintf(zKey, sizeof(zKey), "junk%d", i);
        hkv_put(c, zKey, strlen(zKey), aBig, sizeof(aBig));
        if (i == 1000) b->aFlag[0] = round + 1;
      }
      putU64(c, "c", 999999);
      for (;;) pause(); /* killed here, its transaction open */
    }
    waitFor(b, 0, round + 1);
    /* The open transaction holds the write lock. */
    ck_rc(putU64(db, "x", 1), HKV_BUSY);
    ck_assert_uint_eq(getU64(db, "c"), (uint64_t)round + 1);
    kill(pid, SIGKILL);
    ck_assert_int_eq(waitChild(pid), 100 + SIGKILL);
    /* The lock died with it; this process cuts the tail and writes. */
    ck_rc(putU64(db, "x", (uint64_t)round), HKV_OK);
    ck_assert_uint_eq(getU64(db, "c"), (uint64_t)round + 1);
    ck_assert_uint_eq(getU64(db, "a"), (uint64_t)round + 1);
    ck_assert_uint_eq(getU64(db, "junk5"), 0);
    hkv_stats st;
    ck_rc(hkv_stats_get(db, &st), HKV_OK);
    ck_assert_uint_gt(st.recovered_cut_bytes, 0);
    /* The log is cut back to the end of the child's commit: the segment
    ** header, the first two puts, one 78-byte transaction (two puts and a
    ** COMMIT) of each child and one 29-byte put of "x" per round before
    ** this one. This process's "x" follows. The counter adds up each cut. */
    uint64_t iCommitEnd = 32 + 58 + 107 * (uint64_t)round + 78;
    ck_assert_uint_eq(st.recovered_cut_offset, iCommitEnd);
    ck_assert_uint_gt(st.recovered_cut_bytes, nCutBefore);
    nCutBefore = st.recovered_cut_bytes;
    ck_assert_uint_eq(st.total_bytes, iCommitEnd + 29);
    ck_assert_uint_eq(st.segments, 1);
    ck_assert_uint_eq(st.live_keys, 3); /* c, a, x */
    ck_assert_uint_eq(st.live_bytes, 3 * 29);
    ck_assert_uint_eq(st.dead_bytes, st.total_bytes - 32 - 3 * 29);
  }
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
  db = openStore();
  ck_assert_uint_eq(getU64(db, "c"), 5);
  ck_assert_uint_eq(getU64(db, "junk5"), 0);
  ck_assert_uint_eq(getU64(db, "x"), 4);
  hkv_close(db);
}
END_TEST

/* A read-only open beside a writer in another process sees its commits. */
START_TEST(readonly_beside_writer) {
  hkv_db *db = openStore();
  ck_rc(putU64(db, "k", 1), HKV_OK);
  Board *b = newBoard();
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *r = openWith(HKV_OPEN_READONLY, 0, 0);
    int ok = r && getU64(r, "k") == 1;
    ok = ok && putU64(r, "k", 5) == HKV_READONLY;
    b->aFlag[0] = 1;
    if (!waitFlag(b, 1, 1)) _exit(11);
    ok = ok && getU64(r, "k") == 2 && getU64(r, "k2") == 3;
    hkv_close(r);
    _exit(ok ? 0 : 1);
  }
  waitFor(b, 0, 1);
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putU64(db, "k", 2), HKV_OK);
  ck_rc(putU64(db, "k2", 3), HKV_OK);
  ck_rc(hkv_commit(db), HKV_OK);
  b->aFlag[1] = 1;
  ck_assert_int_eq(waitChild(pid), 0);
  hkv_close(db);
}
END_TEST

/* Compaction in one process: another that had the store open reloads the
** new file set at its next read, and a scan it opened before keeps going. */
START_TEST(compaction_seen_by_other_process) {
  hkv_db *db = openWith(0, 4096, 0);
  ck_assert_ptr_nonnull(db);
  char zKey[32];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 300; i++) {
      snprintf(zKey, sizeof(zKey), "key%d", i);
      ck_rc(putU64(db, zKey, (uint64_t)(round * 1000 + i)), HKV_OK);
    }
  }
  /* Bytes of the live records: a 20-byte header, the key, 8 bytes. */
  uint64_t nLive = 0;
  for (int i = 0; i < 300; i++) {
    snprintf(zKey, sizeof(zKey), "key%d", i);
    if (i % 3 == 0) {
      ck_rc(hkv_delete(db, zKey, strlen(zKey)), HKV_OK);
    } else {
      nLive += 20 + strlen(zKey) + 8;
    }
  }
  Board *b = newBoard();
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *c = openWith(0, 4096, 0);
    int ok = c != 0;
    hkv_iter *it = 0;
    ok = ok && hkv_iter_open(c, &it) == HKV_OK;
    b->aFlag[0] = 1;
    if (!waitFlag(b, 1, 1)) _exit(11); /* compacted */
    int nScan = 0;
    const void *pK, *pV;
    size_t nK, nV;
    while (ok && hkv_iter_next(it, &pK, &nK, &pV, &nV) == HKV_OK) nScan++;
    hkv_iter_close(it);
    ok = ok && nScan == 200;
    for (int i = 0; ok && i < 300; i++) {
      snprintf(zKey, sizeof(zKey), "key%d", i);
      uint64_t v = getU64(c, zKey);
      ok = i % 3 == 0 ? v == 0 : v == (uint64_t)(2000 + i);
      if (!ok)
        fprintf(stderr, "child: %s = %llu\n", zKey, (unsigned long long)v);
    }
    /* The new file set holds the 200 live records and nothing dead. */
    hkv_stats st;
    ok = ok && hkv_stats_get(c, &st) == HKV_OK && st.live_keys == 200 &&
         st.live_bytes == nLive && st.dead_bytes == 0;
    if (!ok)
      fprintf(stderr, "child: live_keys %llu live_bytes %llu dead_bytes %llu\n",
              (unsigned long long)st.live_keys,
              (unsigned long long)st.live_bytes,
              (unsigned long long)st.dead_bytes);
    ok = ok && putU64(c, "after", 1) == HKV_OK; /* writes to the new set */
    hkv_close(c);
    _exit(ok ? 0 : 1);
  }
  waitFor(b, 0, 1);
  ck_rc(hkv_compact(db), HKV_OK);
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.compactions, 1);
  ck_assert_uint_eq(st.live_keys, 200);
  ck_assert_uint_eq(st.live_bytes, nLive);
  ck_assert_uint_eq(st.dead_bytes, 0);
  ck_assert_uint_gt(st.reclaimed_bytes, 0);
  b->aFlag[1] = 1;
  ck_assert_int_eq(waitChild(pid), 0);
  ck_assert_uint_eq(getU64(db, "after"), 1);
  ck_assert_uint_eq(getU64(db, "key1"), 2001);
  hkv_close(db);
  db = openStore();
  ck_assert_uint_eq(getU64(db, "key2"), 2002);
  ck_assert_uint_eq(getU64(db, "key3"), 0);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

/* Reader threads of one process while another process writes and
** compacts: catch-up and reload run under the readers' feet (the
** ThreadSanitizer build runs this too). Each thread checks the model's
** invariant in its snapshots and that the counter never goes back; the
** writer waits half way for a snapshot of each (testOverlapWait), so each
** must have seen the counter strictly between 0 and its last value. */
enum { NTXN_BESIDE = 1500 };
typedef struct ThreadArg {
  hkv_db *db;
  _Atomic int *pStop;
  Board *b;
  int iReader;
  int bad;
  long nSnap;
  long nMid; /* snapshots with 0 < c < NTXN_BESIDE */
} ThreadArg;

static void *snapshotReader(void *pArg) {
  ThreadArg *a = pArg;
  uint64_t cLast = 0, cSnap;
  while (!atomic_load(a->pStop) || a->nSnap < 3) {
    long g = testReadStart(&a->b->ov);
    if (checkSnapshot(a->db, &cLast, &cSnap)) {
      a->bad = 1;
      break;
    }
    if (cSnap > 0 && cSnap < NTXN_BESIDE) a->nMid++;
    testReadDone(&a->b->ov, a->iReader, g);
    a->nSnap++;
  }
  return 0;
}

START_TEST(reader_threads_beside_writer_process) {
  hkv_db *db = openWith(0, 4096, 0);
  ck_assert_ptr_nonnull(db);
  ck_rc(putU64(db, "c", 0), HKV_OK);
  Board *b = newBoard();
  pid_t pid = fork(); /* before any thread starts */
  if (pid == 0) {
    hkv_db *w = openWith(0, 4096, 0);
    if (!w) _exit(2);
    for (int t = 0; t < NTXN_BESIDE; t++) {
      if (t == NTXN_BESIDE / 2 && !testOverlapWait(&b->ov, 2, 60)) _exit(6);
      if (modelTxn(w, "pad", (uint64_t)t)) _exit(4);
      if (t % 500 == 250 && hkv_compact(w)) _exit(5); /* others reload */
    }
    hkv_close(w);
    _exit(0);
  }
  _Atomic int bStop = 0;
  pthread_t aT[2];
  ThreadArg aArg[2];
  hkv_db *aDb[2];
  for (int i = 0; i < 2; i++) {
    aDb[i] = openWith(0, 4096, 0); /* handles share this process's engine */
    ck_assert_ptr_nonnull(aDb[i]);
    aArg[i].db = aDb[i];
    aArg[i].pStop = &bStop;
    aArg[i].b = b;
    aArg[i].iReader = i;
    aArg[i].bad = 0;
    aArg[i].nSnap = 0;
    aArg[i].nMid = 0;
    pthread_create(&aT[i], 0, snapshotReader, &aArg[i]);
  }
  ck_assert_int_eq(waitChild(pid), 0);
  atomic_store(&bStop, 1);
  for (int i = 0; i < 2; i++) {
    pthread_join(aT[i], 0);
    ck_assert_msg(!aArg[i].bad, "reader thread %d saw a broken snapshot", i);
    ck_assert_msg(aArg[i].nMid > 0,
                  "reader thread %d saw no state while the writer ran", i);
    hkv_close(aDb[i]);
  }
  ck_assert_uint_eq(getU64(db, "c"), NTXN_BESIDE);
  /* The engine this process shares sees the other's work: four live keys
  ** ("a", "b", "c" and "pad", 8-byte values, 20-byte headers). */
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, 4);
  ck_assert_uint_eq(st.live_bytes, 3 * (20 + 1 + 8) + (20 + 3 + 8));
  ck_assert_uint_eq(st.recovered_cut_bytes, 0);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

/* Destroying a store another process has open is refused; hkv_sole_handle
** tells beforehand, and takes nothing. */
/* Integrity checks beside a process that overwrites keys as fast as it can:
** a key rewritten since the check's snapshot is no damage. The check used
** to call such keys corrupt nearly every time. */
START_TEST(check_beside_overwriting_writer) {
  hkv_db *db = openStore();
  for (int i = 0; i < 200; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    ck_rc(putU64(db, k, 0), HKV_OK);
  }
  hkv_close(db);
  Board *b = newBoard();
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    hkv_db *w = openWith(0, 0, 0);
    if (!w) _exit(2);
    b->aFlag[0] = 1;
    for (uint64_t v = 1; !b->aFlag[1]; v++) {
      char k[16];
      snprintf(k, sizeof(k), "k%d", (int)(v % 200));
      if (putU64(w, k, v)) _exit(3);
      b->aCount[0] = v;
    }
    hkv_close(w);
    _exit(0);
  }
  waitFor(b, 0, 1);
  hkv_db *r = openWith(HKV_OPEN_READONLY, 0, 0);
  ck_assert_ptr_nonnull(r);
  /* At least 30 checks, and on until the writer has rewritten every key
  ** ten times meanwhile (it may get little of a loaded machine at first). */
  uint64_t n0 = b->aCount[0];
  int nChecks = 0;
  for (int i = 0; i < 200000 && (nChecks < 30 || b->aCount[0] < n0 + 2000);
       i++) {
    int rc = hkv_integrity_check(r);
    ck_assert_msg(rc == HKV_OK, "check %d: %s: %s", nChecks,
                  hkv_codename(rc), hkv_errmsg(r));
    nChecks++;
  }
  uint64_t n1 = b->aCount[0];
  b->aFlag[1] = 1;
  ck_assert_int_eq(waitChild(pid), 0);
  ck_assert_msg(n1 >= n0 + 2000, "the writer wrote %llu times during %d checks",
                (unsigned long long)(n1 - n0), nChecks);
  hkv_close(r);
  munmap((void *)b, sizeof(*b));
}
END_TEST

START_TEST(destroy_refused_while_shared) {
  hkv_db *db = openStore();
  ck_rc(putU64(db, "k", 1), HKV_OK);
  Board *b = newBoard();
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *c = openWith(0, 0, 0);
    int ok = c != 0;
    b->aFlag[0] = 1;
    if (!waitFlag(b, 1, 1)) _exit(11);
    hkv_close(c);
    _exit(ok ? 0 : 1);
  }
  waitFor(b, 0, 1);
  ck_rc(hkv_sole_handle(db), HKV_BUSY);
  ck_assert_ptr_nonnull(strstr(hkv_errmsg(db), "another process"));
  ck_rc(hkv_destroy(db), HKV_BUSY);
  ck_assert_uint_eq(getU64(db, "k"), 1);
  b->aFlag[1] = 1;
  ck_assert_int_eq(waitChild(pid), 0);
  /* The same in this process: a second handle, then only ours. */
  hkv_db *db2 = openWith(0, 0, 0);
  ck_rc(hkv_sole_handle(db), HKV_BUSY);
  ck_assert_ptr_nonnull(strstr(hkv_errmsg(db), "other handles"));
  hkv_close(db2);
  ck_rc(hkv_sole_handle(db), HKV_OK);
  ck_rc(hkv_sole_handle(db), HKV_OK); /* took nothing */
  ck_rc(hkv_destroy(db), HKV_OK);
  ck_assert_int_ne(access(zStore, F_OK), 0);
}
END_TEST

/* ---- compactors killed part way, and a storm of kills ---- */

/* The board and the point a child's crash hook stops at: there it raises
** flag 0 and waits to be killed, holding what it holds then. */
static Board *pHookBoard;
static const char *zHookAt;
static int nHookSkip; /* times the point is passed before stopping */
static void stopHook(const char *zWhere) {
  if (strcmp(zWhere, zHookAt) != 0 || nHookSkip-- > 0) return;
  pHookBoard->aFlag[0] = 1;
  for (;;) pause();
}

/* Forks a child that runs hkv_compact and stops at the nSkip+1-th crash
** point zAt; returns once it is there. */
static pid_t forkStoppedCompactor(Board *b, const char *zAt, int nSkip) {
  pid_t pid = fork();
  if (pid == 0) {
    pHookBoard = b;
    zHookAt = zAt;
    nHookSkip = nSkip;
    hkvTestCrashHook = stopHook;
    hkv_db *c = openWith(0, 4096, 0);
    if (!c) _exit(2);
    hkv_compact(c);
    _exit(3); /* never stopped */
  }
  waitFor(b, 0, 1);
  return pid;
}

static void killChild(pid_t pid) {
  kill(pid, SIGKILL);
  ck_assert_int_eq(waitChild(pid), 100 + SIGKILL);
}

/* Puts keyN = N + 1 for N in [i0, i1). */
static void putKeys(hkv_db *db, int i0, int i1) {
  char zKey[32];
  for (int i = i0; i < i1; i++) {
    snprintf(zKey, sizeof(zKey), "key%d", i);
    ck_rc(putU64(db, zKey, (uint64_t)i + 1), HKV_OK);
  }
}

/* 1 if every keyN (N < n) holds N + 1; else says which does not. */
static int keysHold(hkv_db *db, int n) {
  char zKey[32];
  for (int i = 0; i < n; i++) {
    snprintf(zKey, sizeof(zKey), "key%d", i);
    uint64_t v = getU64(db, zKey);
    if (v != (uint64_t)i + 1) {
      fprintf(stderr, "%s = %llu: %s\n", zKey, (unsigned long long)v,
              hkv_errmsg(db));
      return 0;
    }
  }
  return 1;
}

/* Reopened alone, the store holds keyN = N + 1 (N < n) and "p", "r" = 1,
** and checks clean. */
static void reopenAndCheck(int n, int bPR) {
  hkv_db *db = openWith(0, 4096, 0);
  ck_assert_ptr_nonnull(db);
  ck_assert(keysHold(db, n));
  if (bPR) {
    ck_assert_uint_eq(getU64(db, "p"), 1);
    ck_assert_uint_eq(getU64(db, "r"), 1);
  }
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}

/* hkv_compact seals the active segment and publishes the start of the new,
** empty one as the committed end. Killed before its switch, it leaves the
** "unpublished bytes" mark, so the writer that takes over reads to the end
** of the files and cuts what was never published: that must not include
** the empty segment. (It did: a process that had opened in between then
** committed into the unlinked file, a commit the reopen lost; this one's
** reads failed with "ends at offset ... before the committed end SHM
** publishes"; and once all closed, every open failed naming the segment.) */
START_TEST(takeover_keeps_published_empty_segment) {
  hkv_db *db = openWith(0, 4096, 0);
  ck_assert_ptr_nonnull(db);
  putKeys(db, 0, 300);
  Board *b = newBoard();
  pid_t pidC = forkStoppedCompactor(b, "compact-before-manifest", 0);
  /* A process opening now sees the store end in the new segment. */
  pid_t pidR = fork();
  if (pidR == 0) {
    hkv_db *r = openWith(0, 4096, 0);
    int ok = r != 0;
    b->aFlag[1] = 1;
    if (!waitFlag(b, 2, 1)) _exit(11);
    ok = ok && putU64(r, "r", 1) == HKV_OK && getU64(r, "p") == 1;
    b->aFlag[3] = 1;
    if (!waitFlag(b, 4, 1)) _exit(12);
    ok = ok && keysHold(r, 300);
    hkv_close(r);
    _exit(ok ? 0 : 1);
  }
  waitFor(b, 1, 1);
  killChild(pidC);
  ck_rc(putU64(db, "p", 1), HKV_OK); /* takes over: reads to the end, cuts */
  b->aFlag[2] = 1;
  waitFor(b, 3, 1);
  ck_assert_uint_eq(getU64(db, "r"), 1);
  ck_assert(keysHold(db, 300));
  b->aFlag[4] = 1;
  ck_assert_int_eq(waitChild(pidR), 0);
  hkv_close(db);
  reopenAndCheck(300, 1);
}
END_TEST

/* A compaction's switch (the manifest's rename, then the inputs unlinked)
** killed after some unlinks: every other process must learn of the switch.
** Here one whose view ended in the first input catches up afterwards; told
** nothing (the generation moved only after the unlinks), it stepped from
** that input to the next file still there, over the unlinked ones, and
** missed their records. */
START_TEST(compactor_killed_in_switch) {
  hkv_db *db = openWith(0, 4096, 0);
  ck_assert_ptr_nonnull(db);
  putKeys(db, 0, 10);
  Board *b = newBoard();
  pid_t pidR = fork();
  if (pidR == 0) {
    hkv_db *r = openWith(0, 4096, 0);
    int ok = r != 0 && keysHold(r, 10); /* its view: the first segment */
    b->aFlag[1] = 1;
    if (!waitFlag(b, 2, 1)) _exit(11);
    ok = ok && keysHold(r, 500);
    ok = ok && putU64(r, "r", 1) == HKV_OK;
    hkv_close(r);
    _exit(ok ? 0 : 1);
  }
  waitFor(b, 1, 1);
  putKeys(db, 10, 500); /* about five segments */
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_ge(st.segments, 4);
  /* Stopped after unlinking its third input. */
  pid_t pidC = forkStoppedCompactor(b, "compact-unlink", 2);
  killChild(pidC);
  b->aFlag[2] = 1;
  ck_assert_int_eq(waitChild(pidR), 0);
  ck_assert(keysHold(db, 500));
  ck_assert_uint_eq(getU64(db, "r"), 1);
  ck_rc(putU64(db, "p", 1), HKV_OK);
  hkv_close(db);
  reopenAndCheck(500, 1);
}
END_TEST

/*
** The storm: NSTORM processes loop open, 200 puts (each with a get),
** close, with small segments and automatic compaction, each also calling
** hkv_compact every 4 puts, while the parent SIGKILLs one at random every
** 2 to 22 ms and starts it again, for STORM_SECONDS. A kill is a process
** crash, never damage: no survivor may ever get CORRUPT or IOERR (or any
** code but OK, BUSY, NOTFOUND), and no acknowledged commit may be lost.
** Each process puts its own keys, "s<child>-<n % 50>" = n for a rising n
** kept on the board; aAck holds the last n whose put returned OK, so the
** store must hold at least that n (or a later one of the same key).
*/
enum { NSTORM = 4, STORM_SECONDS = 15 };

typedef struct Storm {
  volatile uint64_t aNext[NSTORM]; /* next n of each child */
  volatile uint64_t aAck[NSTORM];  /* last n acknowledged, 0: none */
  volatile int nBad;               /* codes that must never happen */
  char zBad[512];                  /* the first one's message */
} Storm;

static void stormBad(Storm *st, int iChild, const char *zOp, int rc,
                     hkv_db *db) {
  if (__sync_fetch_and_add(&st->nBad, 1) == 0) {
    snprintf(st->zBad, sizeof(st->zBad), "[%d] %s: %s: %s", iChild, zOp,
             hkv_codename(rc), db ? hkv_errmsg(db) : "");
  }
}

static void stormChild(Storm *st, int iChild) {
  srand((unsigned)getpid());
  for (;;) {
    hkv_options o;
    hkv_options_init(&o);
    o.sync = HKV_SYNC_OFF;
    o.segment_size = 16384;
    o.auto_compact = 0.3;
    o.auto_compact_min = 1;
    hkv_db *db = 0;
    int rc = hkv_open(zStore, &o, &db);
    if (rc != HKV_OK) {
      stormBad(st, iChild, "open", rc, db);
      hkv_close(db);
      sleepMs(1);
      continue;
    }
    for (int i = 0; i < 200; i++) {
      if (i % 4 == 0) {
        rc = hkv_compact(db);
        if (rc != HKV_OK && rc != HKV_BUSY)
          stormBad(st, iChild, "compact", rc, db);
      }
      char zKey[32];
      uint64_t n = st->aNext[iChild]++;
      snprintf(zKey, sizeof(zKey), "s%d-%d", iChild, (int)(n % 50));
      rc = putU64(db, zKey, n);
      if (rc == HKV_OK) {
        st->aAck[iChild] = n;
      } else if (rc != HKV_BUSY) {
        stormBad(st, iChild, "put", rc, db);
      }
      snprintf(zKey, sizeof(zKey), "s%d-%d", rand() % NSTORM, rand() % 50);
      const void *p;
      size_t nVal;
      rc = hkv_get(db, zKey, strlen(zKey), &p, &nVal);
      if (rc != HKV_OK && rc != HKV_NOTFOUND)
        stormBad(st, iChild, "get", rc, db);
    }
    hkv_close(db);
  }
}

static pid_t forkStormChild(Storm *st, int iChild) {
  pid_t pid = fork();
  if (pid == 0) {
    stormChild(st, iChild);
    _exit(0);
  }
  ck_assert_int_gt(pid, 0);
  return pid;
}

START_TEST(kill_storm_with_compaction) {
  Storm *st = mmap(0, sizeof(Storm), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(st != MAP_FAILED);
  memset((void *)st, 0, sizeof(*st));
  for (int i = 0; i < NSTORM; i++) st->aNext[i] = 1;
  pid_t aPid[NSTORM];
  for (int i = 0; i < NSTORM; i++) aPid[i] = forkStormChild(st, i);
  srand(1);
  time_t t0 = time(0);
  int nKill = 0;
  while (time(0) - t0 < STORM_SECONDS && st->nBad == 0) {
    sleepMs(2 + rand() % 21);
    int i = rand() % NSTORM;
    killChild(aPid[i]);
    nKill++;
    aPid[i] = forkStormChild(st, i);
  }
  for (int i = 0; i < NSTORM; i++) killChild(aPid[i]);
  ck_assert_msg(st->nBad == 0, "%d bad codes after %d kills; the first: %s",
                st->nBad, nKill, st->zBad);
  hkv_db *db = openWith(0, 16384, 0);
  ck_assert_ptr_nonnull(db);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  for (int i = 0; i < NSTORM; i++) {
    uint64_t n = st->aAck[i];
    if (n == 0) continue;
    char zKey[32];
    snprintf(zKey, sizeof(zKey), "s%d-%d", i, (int)(n % 50));
    uint64_t v = getU64(db, zKey);
    ck_assert_msg(v != UINT64_MAX && v >= n && v % 50 == n % 50,
                  "%s = %llu, but %llu was acknowledged", zKey,
                  (unsigned long long)v, (unsigned long long)n);
  }
  hkv_close(db);
  munmap(st, sizeof(Storm));
}
END_TEST

int main(void) {
  Suite *s = suite_create("procs");
  TCase *tc = tcase_create("procs");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, commits_seen_across_processes);
  tcase_add_test(tc, model_writers_and_readers);
  tcase_add_test(tc, check_beside_overwriting_writer);
  tcase_add_test(tc, model_with_rotation);
  tcase_add_test(tc, writer_killed_mid_transaction);
  tcase_add_test(tc, readonly_beside_writer);
  tcase_add_test(tc, compaction_seen_by_other_process);
  tcase_add_test(tc, destroy_refused_while_shared);
  tcase_add_test(tc, reader_threads_beside_writer_process);
  tcase_add_test(tc, takeover_keeps_published_empty_segment);
  tcase_add_test(tc, compactor_killed_in_switch);
  tcase_add_test(tc, kill_storm_with_compaction);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
