/*
** test_procs.c: several processes on one store. Real processes (fork), each
** with its own engine: visibility of each other's commits, one writer at a
** time with BUSY for the second, a model check of what readers see while
** writers race, a writer SIGKILLed in the middle of a transaction, read-only
** opens beside a writer, segment rotation and compaction seen from another
** process. Where readers race writers, the writers wait part way for a read
** of each (testOverlapWait), so the readers must have seen a state in
** between; a wait that times out fails the test.
*/
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>

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

int main(void) {
  Suite *s = suite_create("procs");
  TCase *tc = tcase_create("procs");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, commits_seen_across_processes);
  tcase_add_test(tc, model_writers_and_readers);
  tcase_add_test(tc, model_with_rotation);
  tcase_add_test(tc, writer_killed_mid_transaction);
  tcase_add_test(tc, readonly_beside_writer);
  tcase_add_test(tc, compaction_seen_by_other_process);
  tcase_add_test(tc, destroy_refused_while_shared);
  tcase_add_test(tc, reader_threads_beside_writer_process);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
