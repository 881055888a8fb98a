/*
** testutil.h: helpers shared by the Check suites: a fresh temporary
** directory per test, its removal, assertions that print code names, and
** waits that fail instead of giving up silently (a flag, and the overlap
** of readers with a writer).
*/
#ifndef HKV_TESTUTIL_H
#define HKV_TESTUTIL_H

#include <check.h>
#include <ftw.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hashkv.h"

/* Asserts that expression x returns code `want`, printing both names. */
#define ck_rc(x, want)                                            \
  do {                                                            \
    int rc_ = (x);                                                \
    ck_assert_msg(rc_ == (want), "%s returned %s, wanted %s", #x, \
                  hkv_codename(rc_), hkv_codename(want));         \
  } while (0)

static char zTestDir[256];

static int rmOne(const char *zPath, const struct stat *pSt, int flag,
                 struct FTW *pFtw) {
  (void)pSt;
  (void)flag;
  (void)pFtw;
  return remove(zPath);
}

static inline void rmTree(const char *zDir) {
  nftw(zDir, rmOne, 16, FTW_DEPTH | FTW_PHYS);
}

/* Creates a fresh directory for the test; returns "<tmp>/store". */
static inline const char *testDirSetup(void) {
  static char zStore[300];
  const char *zTmp = getenv("TMPDIR");
  snprintf(zTestDir, sizeof(zTestDir), "%s/hkvtest.XXXXXX",
           zTmp ? zTmp : "/tmp");
  ck_assert_ptr_nonnull(mkdtemp(zTestDir));
  snprintf(zStore, sizeof(zStore), "%s/store", zTestDir);
  return zStore;
}

static inline void testDirTeardown(void) {
  if (zTestDir[0]) rmTree(zTestDir);
  zTestDir[0] = 0;
}

/* Sleeps about a millisecond: the step of the waits below. */
static inline void testNap(void) {
  struct timespec ts = {0, 1000000L};
  nanosleep(&ts, 0);
}

/* Waits until *p >= v (a flag another thread or process raises), for at
** most nSec seconds. Returns 1 when it got there, 0 on timeout: the caller
** fails the test (or, in a child process, exits with a code that says
** which wait it was), so a wait never gives up silently. */
static inline int testWaitFlag(volatile int *p, int v, int nSec) {
  for (long n = 0; *p < v; n++) {
    if (n >= nSec * 1000L) return 0;
    testNap();
  }
  return 1;
}

/*
** Readers overlapping a writer, shown without timing. Part way through its
** work the writer calls testOverlapWait: it asks, then waits until each of
** the readers has finished a read that it began after the asking. Such a
** read saw every commit the writer made before it asked and none of those
** it makes after, so a test that has the writer ask between its first and
** its last commit can require that every reader saw a state in between.
** A reader brackets each read: g = testReadStart(p) before it, and
** testReadDone(p, iReader, g) once it succeeded. Works between processes
** when the struct is in shared memory (the atomics are lock-free).
*/
#define TEST_MAX_READERS 8
typedef struct TestOverlap {
  _Atomic long iAsk;                    /* requests the writer made */
  _Atomic long aDone[TEST_MAX_READERS]; /* per reader: the request its
                                        ** last finished read began after */
} TestOverlap;

static inline long testReadStart(TestOverlap *p) {
  return atomic_load(&p->iAsk);
}
static inline void testReadDone(TestOverlap *p, int iReader, long g) {
  atomic_store(&p->aDone[iReader], g);
}
/* Asks and waits (at most nSec seconds) for nReader readers, numbered
** 0..nReader-1. Returns 1 once all answered, 0 on timeout. */
static inline int testOverlapWait(TestOverlap *p, int nReader, int nSec) {
  long g = atomic_fetch_add(&p->iAsk, 1) + 1;
  for (long n = 0;; n++) {
    int i = 0;
    while (i < nReader && atomic_load(&p->aDone[i]) >= g) i++;
    if (i == nReader) return 1;
    if (n >= nSec * 1000L) return 0;
    testNap();
  }
}

/* Runs suite s and returns a process exit status. */
static inline int runSuite(Suite *s) {
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int nFail = srunner_ntests_failed(sr);
  srunner_free(sr);
  return nFail ? EXIT_FAILURE : EXIT_SUCCESS;
}

#ifdef HKVINT_H
/* Suites that see the OS layer (hkvInt.h included first) count the
** anonymous memory the engine maps, to see it all given back: install
** testMapAnon / testUnmapAnon in an HkvEnv; *testMappedBytes() is the
** balance. */
static inline long *testMappedBytes(void) {
  static long n;
  return &n;
}
static inline void *testMapAnon(size_t n) {
  void *p = hkvPosixEnv.xMapAnon(n);
  if (p) *testMappedBytes() += (long)n;
  return p;
}
static inline void testUnmapAnon(void *p, size_t n) {
  *testMappedBytes() -= (long)n;
  hkvPosixEnv.xUnmapAnon(p, n);
}
#endif

#endif
