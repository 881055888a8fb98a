/*
** testutil.h: helpers shared by the Check suites: a fresh temporary
** directory per test, its removal, and assertions that print code names.
*/
#ifndef HKV_TESTUTIL_H
#define HKV_TESTUTIL_H

#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
