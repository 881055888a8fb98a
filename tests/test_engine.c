/*
** test_engine.c: the public API of store/: the seed's tests, binary keys,
** limits, transactions and savepoints, two-phase commit, visibility between
** handles, snapshot iteration, sharing, locking, threads (readers must be
** seen to overlap the writer) and a seeded random model test against a
** trivial in-test map, every get and every scanned key and value compared.
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/wait.h>

#include "hkvInt.h"
#include "testutil.h"

static const char *zStore;

static void setup(void) { zStore = testDirSetup(); }
static void teardown(void) { testDirTeardown(); }

static hkv_db *openStore(int sync) {
  hkv_options o;
  hkv_options_init(&o);
  o.sync = sync;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_OK, "open: %s %s", hkv_codename(rc),
                db ? hkv_errmsg(db) : "");
  return db;
}

/* Asserts key has value zWant (NULL: absent). */
static void expectStr(hkv_db *db, const char *zKey, const char *zWant) {
  const void *p;
  size_t n;
  int rc = hkv_get(db, zKey, strlen(zKey), &p, &n);
  if (!zWant) {
    ck_assert_msg(rc == HKV_NOTFOUND, "%s: wanted absent, got %s", zKey,
                  hkv_codename(rc));
    return;
  }
  ck_assert_msg(rc == HKV_OK, "%s: %s (%s)", zKey, hkv_codename(rc),
                hkv_errmsg(db));
  ck_assert_uint_eq(n, strlen(zWant));
  ck_assert(memcmp(p, zWant, n) == 0);
}

static int putStr(hkv_db *db, const char *zKey, const char *zVal) {
  return hkv_put(db, zKey, strlen(zKey), zVal, strlen(zVal));
}

/* The seed's three tests. */
START_TEST(seed_put_get_delete) {
  hkv_db *db = openStore(HKV_SYNC_FULL);
  ck_rc(putStr(db, "key1", "value1"), HKV_OK);
  expectStr(db, "key1", "value1");
  ck_rc(hkv_delete(db, "key1", 4), HKV_OK);
  expectStr(db, "key1", NULL);
  ck_rc(hkv_delete(db, "key1", 4), HKV_NOTFOUND);
  hkv_close(db);
}
END_TEST

/* hkv_insert writes only absent keys. */
START_TEST(insert_only_if_absent) {
  hkv_db *db = openStore(HKV_SYNC_NORMAL);
  ck_rc(hkv_insert(db, "k", 1, "v1", 2), HKV_OK);
  ck_rc(hkv_insert(db, "k", 1, "v2", 2), HKV_EXISTS);
  expectStr(db, "k", "v1");
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_insert(db, "t", 1, "a", 1), HKV_OK);
  ck_rc(hkv_insert(db, "t", 1, "b", 1), HKV_EXISTS); /* its own write */
  ck_rc(hkv_delete(db, "k", 1), HKV_OK);
  ck_rc(hkv_insert(db, "k", 1, "v3", 2), HKV_OK); /* deleted: absent */
  ck_rc(hkv_commit(db), HKV_OK);
  expectStr(db, "t", "a");
  expectStr(db, "k", "v3");
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, 2);
  hkv_close(db);
  db = openStore(HKV_SYNC_NORMAL);
  expectStr(db, "k", "v3");
  hkv_close(db);
}
END_TEST

START_TEST(seed_missing_key) {
  hkv_db *db = openStore(HKV_SYNC_FULL);
  expectStr(db, "nope", NULL);
  ck_assert_str_eq(hkv_errmsg(db), "key not found");
  hkv_close(db);
}
END_TEST

START_TEST(seed_overwrite) {
  hkv_db *db = openStore(HKV_SYNC_FULL);
  ck_rc(putStr(db, "k", "v1"), HKV_OK);
  ck_rc(putStr(db, "k", "v2"), HKV_OK);
  expectStr(db, "k", "v2");
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "k", "v2");
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, 1);
  ck_assert_uint_gt(st.dead_bytes, 0);
  hkv_close(db);
}
END_TEST

START_TEST(binary_keys_and_values) {
  hkv_db *db = openStore(HKV_SYNC_NORMAL);
  for (int b = 0; b < 256; b++) {
    uint8_t k = (uint8_t)b;
    uint8_t v[3] = {(uint8_t)b, 0, '\n'};
    ck_rc(hkv_put(db, &k, 1, v, 3), HKV_OK);
  }
  const char aOdd[] = "a\0b|c\nd";
  ck_rc(hkv_put(db, aOdd, sizeof(aOdd), aOdd, sizeof(aOdd)), HKV_OK);
  ck_rc(hkv_put(db, "empty", 5, "", 0), HKV_OK);
  for (int pass = 0; pass < 2; pass++) {
    for (int b = 0; b < 256; b++) {
      uint8_t k = (uint8_t)b;
      const uint8_t *p;
      size_t n;
      ck_rc(hkv_get(db, &k, 1, (const void **)&p, &n), HKV_OK);
      ck_assert_uint_eq(n, 3);
      ck_assert(p[0] == b && p[1] == 0 && p[2] == '\n');
    }
    const void *p;
    size_t n;
    ck_rc(hkv_get(db, aOdd, sizeof(aOdd), &p, &n), HKV_OK);
    ck_assert(n == sizeof(aOdd) && memcmp(p, aOdd, n) == 0);
    ck_rc(hkv_get(db, aOdd, sizeof(aOdd) - 1, &p, &n), HKV_NOTFOUND);
    ck_rc(hkv_get(db, "empty", 5, &p, &n), HKV_OK);
    ck_assert_uint_eq(n, 0);
    hkv_close(db);
    db = openStore(HKV_SYNC_NORMAL);
  }
  hkv_close(db);
}
END_TEST

START_TEST(limits_write_nothing) {
  hkv_db *db = openStore(HKV_SYNC_NORMAL);
  static char aKey[HKV_MAX_KEY + 1];
  memset(aKey, 'k', sizeof(aKey));
  hkv_stats a, b;
  ck_rc(hkv_stats_get(db, &a), HKV_OK);
  ck_rc(hkv_put(db, aKey, 0, "v", 1), HKV_MISUSE);
  ck_rc(hkv_put(db, aKey, HKV_MAX_KEY + 1, "v", 1), HKV_TOOBIG);
  ck_assert(strstr(hkv_errmsg(db), "65535") != NULL);
  ck_rc(hkv_put(db, "k", 1, aKey, (size_t)HKV_MAX_VALUE + 1), HKV_TOOBIG);
  ck_rc(hkv_put(db, NULL, 3, "v", 1), HKV_MISUSE);
  ck_rc(hkv_put(db, "k", 1, NULL, 5), HKV_MISUSE);
  ck_rc(hkv_stats_get(db, &b), HKV_OK);
  ck_assert_uint_eq(a.total_bytes, b.total_bytes);
  ck_rc(hkv_put(db, aKey, HKV_MAX_KEY, "v", 1), HKV_OK);
  const void *p;
  size_t n;
  ck_rc(hkv_get(db, aKey, HKV_MAX_KEY, &p, &n), HKV_OK);
  ck_rc(hkv_get(db, aKey, HKV_MAX_KEY + 1, &p, &n), HKV_TOOBIG);
  /* A value larger than the write buffer goes around it. */
  size_t nBig = 3u << 20;
  char *aBig = malloc(nBig);
  for (size_t i = 0; i < nBig; i++) aBig[i] = (char)(i * 31);
  ck_rc(hkv_put(db, "big", 3, aBig, nBig), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_NORMAL);
  ck_rc(hkv_get(db, "big", 3, &p, &n), HKV_OK);
  ck_assert(n == nBig && memcmp(p, aBig, n) == 0);
  free(aBig);
  hkv_close(db);
}
END_TEST

START_TEST(bad_options) {
  hkv_options o;
  hkv_options_init(&o);
  hkv_db *db = 0;
  o.sync = 7;
  ck_rc(hkv_open(zStore, &o, &db), HKV_MISUSE);
  ck_assert(strstr(hkv_errmsg(db), "sync") != NULL);
  hkv_close(db);
  hkv_options_init(&o);
  o.segment_size = 100;
  ck_rc(hkv_open(zStore, &o, &db), HKV_MISUSE);
  ck_assert(strstr(hkv_errmsg(db), "segment_size") != NULL);
  hkv_close(db);
  hkv_options_init(&o);
  o.flags = HKV_OPEN_NOCREATE;
  ck_rc(hkv_open(zStore, &o, &db), HKV_CANTOPEN);
  hkv_close(db);
  o.flags = HKV_OPEN_READONLY;
  ck_rc(hkv_open(zStore, &o, &db), HKV_CANTOPEN);
  hkv_close(db);
}
END_TEST

START_TEST(reopen_after_each_kind_of_write) {
  hkv_db *db = openStore(HKV_SYNC_FULL);
  ck_rc(putStr(db, "a", "1"), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "a", "1");
  ck_rc(putStr(db, "a", "2"), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "a", "2");
  ck_rc(hkv_delete(db, "a", 1), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "a", NULL);
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putStr(db, "b", "1"), HKV_OK);
  ck_rc(putStr(db, "c", "1"), HKV_OK);
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "b", "1");
  expectStr(db, "c", "1");
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putStr(db, "b", "rolled back"), HKV_OK);
  ck_rc(hkv_delete(db, "c", 1), HKV_OK);
  ck_rc(hkv_rollback(db), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "b", "1");
  expectStr(db, "c", "1");
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putStr(db, "d", "kept"), HKV_OK);
  ck_rc(hkv_savepoint(db, 0), HKV_OK);
  ck_rc(putStr(db, "e", "undone"), HKV_OK);
  ck_rc(putStr(db, "d", "undone"), HKV_OK);
  ck_rc(hkv_rollback_to(db, 0), HKV_OK);
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "d", "kept");
  expectStr(db, "e", NULL);
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, 3);
  ck_assert_uint_eq(st.recovered_cut_bytes, 0);
  hkv_close(db);
}
END_TEST

START_TEST(transaction_isolation) {
  hkv_db *w = openStore(HKV_SYNC_NORMAL);
  hkv_db *r = openStore(HKV_SYNC_NORMAL);
  ck_rc(putStr(w, "x", "old"), HKV_OK);
  ck_rc(putStr(w, "gone", "here"), HKV_OK);
  ck_rc(hkv_begin(w), HKV_OK);
  ck_rc(putStr(w, "x", "new"), HKV_OK);
  ck_rc(putStr(w, "fresh", "1"), HKV_OK);
  ck_rc(hkv_delete(w, "gone", 4), HKV_OK);
  ck_rc(putStr(w, "x", "newer"), HKV_OK);
  /* The writer sees its own writes; the reader the committed state. */
  expectStr(w, "x", "newer");
  expectStr(w, "fresh", "1");
  expectStr(w, "gone", NULL);
  expectStr(r, "x", "old");
  expectStr(r, "fresh", NULL);
  expectStr(r, "gone", "here");
  /* A second writer is refused at once. */
  ck_rc(putStr(r, "y", "1"), HKV_BUSY);
  ck_rc(hkv_begin(r), HKV_OK);
  ck_rc(putStr(r, "y", "1"), HKV_BUSY);
  ck_rc(hkv_rollback(r), HKV_OK);
  /* Prepared but not published: still invisible. */
  ck_rc(hkv_prepare(w), HKV_OK);
  ck_rc(hkv_prepare(w), HKV_OK);
  expectStr(r, "x", "old");
  ck_rc(hkv_commit(w), HKV_OK);
  expectStr(r, "x", "newer");
  expectStr(r, "fresh", "1");
  expectStr(r, "gone", NULL);
  ck_rc(putStr(r, "y", "1"), HKV_OK);
  hkv_close(r);
  hkv_close(w);
}
END_TEST

START_TEST(prepared_commit_revoked) {
  hkv_db *db = openStore(HKV_SYNC_FULL);
  ck_rc(putStr(db, "k", "before"), HKV_OK);
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putStr(db, "k", "revoked"), HKV_OK);
  ck_rc(putStr(db, "k2", "revoked"), HKV_OK);
  ck_rc(hkv_prepare(db), HKV_OK);
  ck_rc(hkv_rollback(db), HKV_OK);
  expectStr(db, "k", "before");
  expectStr(db, "k2", NULL);
  hkv_close(db);
  db = openStore(HKV_SYNC_FULL);
  expectStr(db, "k", "before");
  expectStr(db, "k2", NULL);
  hkv_close(db);
}
END_TEST

START_TEST(nested_savepoints) {
  hkv_db *db = openStore(HKV_SYNC_OFF);
  hkv_db *r = openStore(HKV_SYNC_OFF);
  ck_rc(hkv_savepoint(db, 0), HKV_MISUSE);
  ck_rc(putStr(db, "k", "0"), HKV_OK);
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_savepoint(db, 0), HKV_OK);
  ck_rc(putStr(db, "k", "1"), HKV_OK);
  ck_rc(hkv_savepoint(db, 1), HKV_OK);
  ck_rc(putStr(db, "k", "2"), HKV_OK);
  ck_rc(hkv_delete(db, "k", 1), HKV_OK);
  ck_rc(hkv_savepoint(db, 2), HKV_OK);
  ck_rc(putStr(db, "k", "3"), HKV_OK);
  ck_rc(putStr(db, "j", "3"), HKV_OK);
  expectStr(r, "k", "0");
  ck_rc(hkv_rollback_to(db, 2), HKV_OK);
  expectStr(db, "k", NULL);
  expectStr(db, "j", NULL);
  expectStr(r, "k", "0");
  ck_rc(hkv_rollback_to(db, 1), HKV_OK);
  expectStr(db, "k", "1");
  ck_rc(hkv_rollback_to(db, 2), HKV_MISUSE); /* gone with level 1's undo */
  ck_rc(putStr(db, "k", "4"), HKV_OK);
  ck_rc(hkv_release(db, 1), HKV_OK);
  ck_rc(hkv_rollback_to(db, 1), HKV_MISUSE);
  expectStr(db, "k", "4");
  ck_rc(hkv_rollback_to(db, 0), HKV_OK);
  expectStr(db, "k", "0");
  expectStr(r, "k", "0");
  ck_rc(putStr(db, "k", "5"), HKV_OK);
  ck_assert_int_eq(hkv_savepoint_levels(db), 1);
  ck_rc(hkv_commit(db), HKV_OK);
  ck_assert_int_eq(hkv_savepoint_levels(db), 0);
  expectStr(r, "k", "5");

  /* Levels skipped over were opened before the transaction: they start
  ** where it does, whatever it wrote before the first mark. */
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(putStr(db, "k", "6"), HKV_OK);
  ck_rc(hkv_savepoint(db, 2), HKV_OK);
  ck_assert_int_eq(hkv_savepoint_levels(db), 3);
  ck_rc(putStr(db, "k", "7"), HKV_OK);
  ck_rc(hkv_rollback_to(db, 2), HKV_OK);
  expectStr(db, "k", "6");
  ck_rc(hkv_rollback_to(db, 1), HKV_OK);
  expectStr(db, "k", "5");
  ck_assert_int_eq(hkv_savepoint_levels(db), 2);
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_close(db);
  hkv_close(r);
  db = openStore(HKV_SYNC_OFF);
  expectStr(db, "k", "5");
  expectStr(db, "j", NULL);
  hkv_close(db);
}
END_TEST

START_TEST(snapshot_iteration) {
  hkv_db *db = openStore(HKV_SYNC_OFF);
  char k[32], v[32];
  enum { N = 3000 };
  ck_rc(hkv_begin(db), HKV_OK);
  for (int i = 0; i < N; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    snprintf(v, sizeof(v), "value-%d", i);
    ck_rc(putStr(db, k, v), HKV_OK);
  }
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_iter *it;
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  static char aSeen[N];
  memset(aSeen, 0, sizeof(aSeen));
  const void *pK, *pV;
  size_t nK, nV;
  int nRows = 0, rc;
  ck_rc(hkv_begin(db), HKV_OK);
  while ((rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) {
    char zKey[32];
    ck_assert_uint_lt(nK, sizeof(zKey));
    memcpy(zKey, pK, nK);
    zKey[nK] = 0;
    int i = atoi(zKey + 4);
    ck_assert_int_eq(aSeen[i], 0);
    aSeen[i] = 1;
    nRows++;
    /* Rewrite every row and add new ones while scanning (forces growth). */
    ck_rc(putStr(db, zKey, "updated"), HKV_OK);
    snprintf(k, sizeof(k), "new-%d-a", i);
    ck_rc(putStr(db, k, "x"), HKV_OK);
    snprintf(k, sizeof(k), "new-%d-b", i);
    ck_rc(putStr(db, k, "x"), HKV_OK);
  }
  ck_rc(rc, HKV_DONE);
  ck_assert_int_eq(nRows, N);
  hkv_iter_close(it);
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, 3 * N);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

/* hkv_iter returns entries in log order: segment by segment, each in file
** order, so a key rewritten later comes later, whatever its hash. Keys
** only (hkv_iter_next_key) are not checked by checksum; hkv_iter_current
** checks them, and names no entry before the first move or after DONE.
** hkv_iter_skip moves without reading, but for the writer's own entries. */
START_TEST(iteration_in_log_order_keys_first) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096; /* many segments */
  o.sync = HKV_SYNC_OFF;
  hkv_db *db = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  enum { N = 300 };
  char k[32], v[64];
  for (int i = 0; i < N; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    snprintf(v, sizeof(v), "value-%d", i);
    ck_rc(putStr(db, k, v), HKV_OK);
  }
  /* Rewritten in reverse: these come last, highest first. */
  for (int i = N - 1; i >= 0; i -= 7) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(putStr(db, k, "again"), HKV_OK);
  }
  hkv_iter *it;
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  const void *pK, *pV, *pK2;
  size_t nK, nV, nK2;
  ck_rc(hkv_iter_current(it, &pK, &nK, &pV, &nV), HKV_MISUSE);
  int nRows = 0, rc, iPrev = -1, bRewrites = 0, iLastRewrite = N;
  while ((rc = hkv_iter_next_key(it, &pK, &nK)) == HKV_OK) {
    char zKey[32];
    ck_assert_uint_lt(nK, sizeof(zKey));
    memcpy(zKey, pK, nK);
    zKey[nK] = 0;
    int i = atoi(zKey + 4);
    ck_rc(hkv_iter_current(it, &pK2, &nK2, &pV, &nV), HKV_OK);
    ck_assert(nK2 == nK && memcmp(pK2, zKey, nK) == 0);
    if ((N - 1 - i) % 7 == 0) {
      ck_assert(nV == 5 && memcmp(pV, "again", 5) == 0);
      ck_assert_int_lt(i, iLastRewrite); /* highest first */
      iLastRewrite = i;
      bRewrites = 1;
    } else {
      ck_assert_msg(!bRewrites && i > iPrev, "key-%d after key-%d", i, iPrev);
      iPrev = i;
    }
    nRows++;
  }
  ck_rc(rc, HKV_DONE);
  ck_assert_int_eq(nRows, N);
  ck_rc(hkv_iter_current(it, &pK, &nK, &pV, &nV), HKV_MISUSE);
  hkv_iter_close(it);
  /* hkv_iter_skip counts without reading committed entries; in the
  ** writer's transaction it reads its own records, and skips its DELs. */
  ck_rc(hkv_begin(db), HKV_OK);
  ck_rc(hkv_delete(db, "key-1", 5), HKV_OK);
  ck_rc(hkv_delete(db, "key-2", 5), HKV_OK);
  ck_rc(putStr(db, "key-3", "changed"), HKV_OK);
  ck_rc(putStr(db, "fresh", "x"), HKV_OK);
  for (int bWriter = 1; bWriter >= 0; bWriter--) {
    if (!bWriter) ck_rc(hkv_commit(db), HKV_OK);
    ck_rc(hkv_iter_open(db, &it), HKV_OK);
    int nSkip = 0, bFresh = 0;
    while ((rc = hkv_iter_skip(it)) == HKV_OK) {
      ck_rc(hkv_iter_current(it, &pK, &nK, &pV, &nV), HKV_OK);
      ck_assert(
          !(nK == 5 && (!memcmp(pK, "key-1", 5) || !memcmp(pK, "key-2", 5))));
      bFresh |= nK == 5 && !memcmp(pK, "fresh", 5);
      nSkip++;
    }
    ck_rc(rc, HKV_DONE);
    ck_assert_int_eq(nSkip, N - 1);
    ck_assert(bFresh);
    hkv_iter_close(it);
  }
  /* A damaged value: the key alone still reads; the checked read is
  ** CORRUPT. The first record of the first segment is key-0's; the
  ** files are mapped shared, so the damage shows while open. */
  char zSeg[600];
  snprintf(zSeg, sizeof(zSeg), "%s/00000001.hkd", zStore);
  int fd = open(zSeg, O_RDWR);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(pwrite(fd, "X", 1, HKV_SEG_HDR + 20 + 5), 1);
  close(fd);
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  int bSeen = 0;
  while ((rc = hkv_iter_next_key(it, &pK, &nK)) == HKV_OK) {
    if (nK == 5 && !memcmp(pK, "key-0", 5)) {
      bSeen = 1;
      ck_rc(hkv_iter_current(it, &pK2, &nK2, &pV, &nV), HKV_CORRUPT);
    }
  }
  ck_rc(rc, HKV_DONE);
  ck_assert(bSeen);
  hkv_iter_close(it);
  hkv_close(db);
}
END_TEST

START_TEST(handles_share_one_engine) {
  hkv_db *a = openStore(HKV_SYNC_NORMAL);
  char zAlias[400];
  snprintf(zAlias, sizeof(zAlias), "%s/../store/.", zStore);
  hkv_db *b = 0;
  ck_rc(hkv_open(zAlias, NULL, &b), HKV_OK);
  ck_rc(putStr(a, "k", "v"), HKV_OK);
  expectStr(b, "k", "v");
  hkv_stats sa, sb;
  hkv_stats_get(a, &sa);
  hkv_stats_get(b, &sb);
  ck_assert_uint_eq(sa.total_bytes, sb.total_bytes);
  hkv_close(a);
  expectStr(b, "k", "v");
  hkv_close(b);
}
END_TEST

START_TEST(readonly_open) {
  hkv_db *db = openStore(HKV_SYNC_NORMAL);
  ck_rc(putStr(db, "k", "v"), HKV_OK);
  hkv_close(db);
  hkv_options o;
  hkv_options_init(&o);
  o.flags = HKV_OPEN_READONLY;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  expectStr(db, "k", "v");
  ck_rc(putStr(db, "k", "w"), HKV_READONLY);
  ck_rc(hkv_delete(db, "k", 1), HKV_READONLY);
  hkv_db *w = 0;
  ck_rc(hkv_open(zStore, NULL, &w), HKV_READONLY);
  hkv_close(w);
  hkv_close(db);
}
END_TEST

START_TEST(segments_rotate) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.sync = HKV_SYNC_NORMAL;
  hkv_db *db = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  char k[32], v[200];
  memset(v, 'v', sizeof(v));
  ck_rc(hkv_begin(db), HKV_OK);
  for (int i = 0; i < 500; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(hkv_put(db, k, strlen(k), v, 100 + i % 100), HKV_OK);
  }
  ck_rc(hkv_commit(db), HKV_OK);
  for (int i = 0; i < 500; i += 3) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(hkv_delete(db, k, strlen(k)), HKV_OK);
  }
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_gt(st.segments, 10);
  hkv_close(db);
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  for (int i = 0; i < 500; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (i % 3 == 0) {
      ck_rc(rc, HKV_NOTFOUND);
    } else {
      ck_rc(rc, HKV_OK);
      ck_assert_uint_eq(n, 100 + i % 100);
    }
  }
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, 500 - 167);
  hkv_close(db);
}
END_TEST

/* Readers in threads check that a transaction writing two keys is seen
** whole: both keys always carry the same value. Half way the writer waits
** for a read of each begun after that point (testOverlapWait), so each
** reader must have seen a value between the first commit and the last. */
enum { NREADER_BESIDE = 3, NTXN_BESIDE = 3000 };
typedef struct Shared {
  const char *zPath;
  _Atomic int bStop;
  int nBad;
  long nReads;
  _Atomic int nStarted; /* gives each reader its number */
  TestOverlap ov;
  _Atomic long aMid[NREADER_BESIDE]; /* reads with 0 < a < NTXN_BESIDE */
} Shared;

static void *readerMain(void *p) {
  Shared *s = p;
  int iReader = atomic_fetch_add(&s->nStarted, 1);
  hkv_db *db = 0;
  if (hkv_open(s->zPath, NULL, &db)) {
    __atomic_add_fetch(&s->nBad, 1, __ATOMIC_RELAXED);
    hkv_close(db);
    return NULL;
  }
  while (!s->bStop) {
    long g = testReadStart(&s->ov);
    const void *pa, *pb;
    size_t na, nb;
    char a[32] = "", b[32] = "";
    hkv_iter *it;
    if (hkv_iter_open(db, &it) == HKV_OK) {
      const void *pK, *pV;
      size_t nK, nV;
      while (hkv_iter_next(it, &pK, &nK, &pV, &nV) == HKV_OK) {
        if (nK == 1 && *(const char *)pK == 'a')
          memcpy(a, pV, nV < 31 ? nV : 31);
        if (nK == 1 && *(const char *)pK == 'b')
          memcpy(b, pV, nV < 31 ? nV : 31);
      }
      hkv_iter_close(it);
      if (strcmp(a, b) != 0) __atomic_add_fetch(&s->nBad, 1, __ATOMIC_RELAXED);
    }
    /* b is written after a in each transaction: read b first, then a
    ** can only be as new or newer. */
    if (hkv_get(db, "b", 1, &pb, &nb) == HKV_OK) {
      memcpy(b, pb, nb);
      b[nb] = 0;
      if (hkv_get(db, "a", 1, &pa, &na) == HKV_OK) {
        memcpy(a, pa, na);
        a[na] = 0;
        __atomic_add_fetch(&s->nReads, 1, __ATOMIC_RELAXED);
        if (atol(b) > atol(a))
          __atomic_add_fetch(&s->nBad, 1, __ATOMIC_RELAXED);
        if (atol(a) > 0 && atol(a) < NTXN_BESIDE) s->aMid[iReader]++;
        testReadDone(&s->ov, iReader, g);
      }
    }
  }
  hkv_close(db);
  return NULL;
}

START_TEST(readers_beside_one_writer) {
  hkv_db *w = openStore(HKV_SYNC_OFF);
  ck_rc(putStr(w, "a", "0"), HKV_OK);
  ck_rc(putStr(w, "b", "0"), HKV_OK);
  static Shared s; /* zeroed: the atomics too */
  memset(&s, 0, sizeof(s));
  s.zPath = zStore;
  pthread_t aT[NREADER_BESIDE];
  for (int i = 0; i < NREADER_BESIDE; i++) {
    pthread_create(&aT[i], 0, readerMain, &s);
  }
  char v[32], k[32];
  for (int i = 1; i <= NTXN_BESIDE; i++) {
    if (i == NTXN_BESIDE / 2) {
      /* Commits made, commits to come: every reader must read now. */
      ck_assert_msg(testOverlapWait(&s.ov, NREADER_BESIDE, 60),
                    "the readers never read");
    }
    snprintf(v, sizeof(v), "%d", i);
    ck_rc(hkv_begin(w), HKV_OK);
    ck_rc(putStr(w, "a", v), HKV_OK);
    snprintf(k, sizeof(k), "filler-%d", i); /* grows the index meanwhile */
    ck_rc(putStr(w, k, v), HKV_OK);
    ck_rc(putStr(w, "b", v), HKV_OK);
    if (i % 7 == 0) {
      ck_rc(hkv_rollback(w), HKV_OK);
    } else {
      ck_rc(hkv_commit(w), HKV_OK);
    }
  }
  s.bStop = 1;
  for (int i = 0; i < NREADER_BESIDE; i++) pthread_join(aT[i], 0);
  ck_assert_int_eq(s.nBad, 0);
  ck_assert_int_gt(s.nReads, 0);
  for (int i = 0; i < NREADER_BESIDE; i++) {
    ck_assert_msg(s.aMid[i] > 0, "reader %d saw no state while the writer ran",
                  i);
  }
  hkv_close(w);
}
END_TEST

/* Readers probe the index without its lock while it grows from 16 slots to
** 64K (each growth retires a table they may be reading), segments rotate,
** transactions roll back, keys are overwritten and deleted, and a
** compaction repoints every slot. A reader picks a key the writer has
** committed and must find it with a value of that key; a key never written
** must be absent. With bFast 0, membarrier "fails" and gets take the lock:
** the same checks. Half way through the first pass the writer waits for a
** read of each reader begun after that point (testOverlapWait), so each
** must have read while the index was still growing. */
enum { NREADER_GROW = 3, NKEY_GROW = 30000, TXN_GROW = 50 };
typedef struct Grow {
  const char *zPath;
  _Atomic long nCommitted; /* keys k0.. below this are committed */
  _Atomic int bDeleting;   /* keys k(5m) may be gone */
  _Atomic int bStop;
  _Atomic long nBad, nReads;
  _Atomic long nMissing, nVoid, nNever; /* kinds of nBad, for the message */
  int bFast;
  _Atomic int nStarted; /* gives each reader its number */
  TestOverlap ov;
  _Atomic long aDuring[NREADER_GROW]; /* reads made during the first pass */
} Grow;

static void *growReader(void *p) {
  Grow *g = p;
  int iReader = atomic_fetch_add(&g->nStarted, 1);
  hkv_db *db = 0;
  if (hkv_open(g->zPath, NULL, &db)) {
    g->nBad++;
    hkv_close(db);
    return NULL;
  }
  if (hkvEngineFastReads(db) != g->bFast) g->nBad++;
  uint64_t x = (uint64_t)(uintptr_t)&db | 1;
  while (!g->bStop) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    long iAsk = testReadStart(&g->ov);
    long m = atomic_load(&g->nCommitted);
    if (m == 0) continue;
    long j = (long)(x % (uint64_t)m);
    char k[32], want[40];
    snprintf(k, sizeof(k), "k%ld", j);
    const void *pV;
    size_t nV;
    int rc = hkv_get(db, k, strlen(k), &pV, &nV);
    snprintf(want, sizeof(want), "k%ld:", j);
    /* bDeleting goes up before the first delete: read after the get. */
    if (rc == HKV_NOTFOUND && j % 5 == 0 && atomic_load(&g->bDeleting)) {
      /* deleted */
    } else if (rc != HKV_OK || nV < strlen(want) ||
               memcmp(pV, want, strlen(want)) != 0 ||
               memmem(pV, nV, "-void", 5) != NULL) {
      g->nBad++; /* missing, another key's, or rolled back */
      if (rc == HKV_NOTFOUND) g->nMissing++;
      if (rc == HKV_OK && memmem(pV, nV, "-void", 5)) g->nVoid++;
    }
    snprintf(k, sizeof(k), "never-%ld", j);
    if (hkv_get(db, k, strlen(k), &pV, &nV) != HKV_NOTFOUND) {
      g->nBad++;
      g->nNever++;
    }
    g->nReads++;
    if (m < NKEY_GROW) g->aDuring[iReader]++;
    testReadDone(&g->ov, iReader, iAsk);
  }
  hkv_close(db);
  return NULL;
}

static int failBarrier(int op) {
  (void)op;
  return -ENOSYS;
}

static void readersWhileIndexGrows(int bFast) {
  HkvEnv env = hkvPosixEnv;
  env.xBarrier = failBarrier;
  if (!bFast) hkvEnvInstall(&env);
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.segment_size = 64 * 1024;
  hkv_db *w = 0;
  ck_rc(hkv_open(zStore, &o, &w), HKV_OK);
  ck_assert_int_eq(hkvEngineFastReads(w), bFast);
  static Grow g; /* zeroed: the atomics too */
  memset(&g, 0, sizeof(g));
  g.zPath = zStore;
  g.bFast = bFast;
  pthread_t aT[NREADER_GROW];
  for (int i = 0; i < NREADER_GROW; i++) {
    pthread_create(&aT[i], 0, growReader, &g);
  }
  enum { NKEY = NKEY_GROW, TXN = TXN_GROW };
  char k[32], v[40];
  for (int pass = 1; pass <= 2; pass++) {
    if (pass == 2) atomic_store(&g.bDeleting, 1);
    for (long i = 0; i < NKEY; i += TXN) {
      for (int bRoll = (i / TXN) % 10 == 3; bRoll >= 0; bRoll--) {
        ck_rc(hkv_begin(w), HKV_OK);
        for (long j = i; j < i + TXN; j++) {
          snprintf(k, sizeof(k), "k%ld", j);
          if (pass == 2 && j % 5 == 0) {
            ck_rc(hkv_delete(w, k, strlen(k)), HKV_OK);
          } else {
            snprintf(v, sizeof(v), "k%ld:%d%s", j, pass, bRoll ? "-void" : "");
            ck_rc(putStr(w, k, v), HKV_OK);
          }
        }
        ck_rc(bRoll ? hkv_rollback(w) : hkv_commit(w), HKV_OK);
      }
      if (pass == 1) atomic_store(&g.nCommitted, i + TXN);
      if (pass == 1 && i + TXN == NKEY / 2) {
        /* The index has grown part way: every reader must read now. */
        ck_assert_msg(testOverlapWait(&g.ov, NREADER_GROW, 60),
                      "the readers never read");
      }
      if (pass == 2 && i == NKEY / 2) ck_rc(hkv_compact(w), HKV_OK);
    }
  }
  for (long n = 0; atomic_load(&g.nReads) < 100; n++) { /* late starters */
    ck_assert_msg(n < 60000, "the readers made %ld reads in 60 s",
                  (long)atomic_load(&g.nReads));
    testNap();
  }
  atomic_store(&g.bStop, 1);
  for (int i = 0; i < NREADER_GROW; i++) pthread_join(aT[i], 0);
  ck_assert_msg(g.nBad == 0,
                "%ld bad reads of %ld: %ld missing, %ld rolled back, %ld "
                "never written yet found",
                (long)g.nBad, (long)g.nReads, (long)g.nMissing, (long)g.nVoid,
                (long)g.nNever);
  ck_assert_int_ge(g.nReads, 100);
  for (int i = 0; i < NREADER_GROW; i++) {
    ck_assert_msg(g.aDuring[i] > 0,
                  "reader %d made no read while the index grew", i);
  }
  hkv_stats st;
  ck_rc(hkv_stats_get(w, &st), HKV_OK);
  ck_assert_uint_eq(st.live_keys, NKEY - NKEY / 5);
  hkv_close(w);
  hkvEnvInstall(NULL);
}

START_TEST(readers_while_the_index_grows) { readersWhileIndexGrows(1); }
END_TEST

START_TEST(readers_while_the_index_grows_locked) { readersWhileIndexGrows(0); }
END_TEST

/* A record's length damaged after open (bit rot under a running store):
** the segment is mapped far past the end of its file, and a read that
** trusted the length would run off the file and die of SIGBUS. A get must
** report it as corruption, from a reader handle and from the writer's. */
START_TEST(length_damaged_after_open) {
  hkv_db *w = openStore(HKV_SYNC_NORMAL);
  ck_rc(putStr(w, "a", "apple"), HKV_OK);
  ck_rc(putStr(w, "b", "banana"), HKV_OK);
  hkv_db *r = openStore(HKV_SYNC_NORMAL);
  expectStr(r, "a", "apple");
  char zSeg[600];
  snprintf(zSeg, sizeof(zSeg), "%s/00000001.hkd", zStore);
  int fd = open(zSeg, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t aLen[4] = {0xA0, 0x86, 0x01, 0x00}; /* 100,000: past the file */
  ck_assert_int_eq(pwrite(fd, aLen, 4, HKV_SEG_HDR + 8), 4);
  close(fd);
  const void *p;
  size_t n;
  ck_rc(hkv_get(r, "a", 1, &p, &n), HKV_CORRUPT);
  ck_assert_msg(strstr(hkv_errmsg(r), "00000001.hkd"), "%s", hkv_errmsg(r));
  ck_rc(hkv_begin(w), HKV_OK);
  ck_rc(putStr(w, "c", "cherry"), HKV_OK); /* w is now the writer */
  ck_rc(hkv_get(w, "a", 1, &p, &n), HKV_CORRUPT);
  ck_rc(hkv_rollback(w), HKV_OK);
  expectStr(r, "b", "banana"); /* the rest still reads */
  hkv_close(r);
  hkv_close(w);
}
END_TEST

/* Gets while the index is half way through a growth: a key may live in
** the old table or the new one, and a reader looks first where the key's
** home slot says it most likely is. Keys moved early (updated), keys added
** after the growth began and deleted keys each send some lookups to the
** wrong table first; every answer must still be right, from a reader
** (lock-free probe) and from the writer (locked). */
START_TEST(gets_while_a_migration_is_pending) {
  hkv_db *w = openStore(HKV_SYNC_OFF);
  hkv_db *r = openStore(HKV_SYNC_OFF);
  char k[32], v[32];
  int n = 0;
  /* Fill until a growth of a table of 64K slots or more begins. */
  ck_rc(hkv_begin(w), HKV_OK);
  while (!(hkvEngineMigrating(w) && n > 40000)) {
    snprintf(k, sizeof(k), "key-%d", n);
    snprintf(v, sizeof(v), "v%d", n);
    ck_rc(putStr(w, k, v), HKV_OK);
    n++;
    ck_assert_int_lt(n, 200000);
  }
  ck_rc(hkv_commit(w), HKV_OK);
  /* Change some keys while old still holds most: update (moves the key to
  ** the new table), delete, add. */
  ck_rc(hkv_begin(w), HKV_OK);
  for (int i = 0; i < 60; i++) {
    snprintf(k, sizeof(k), "key-%d", i * 97);
    snprintf(v, sizeof(v), "u%d", i * 97);
    ck_rc(putStr(w, k, v), HKV_OK);
    snprintf(k, sizeof(k), "key-%d", i * 97 + 1);
    ck_rc(hkv_delete(w, k, strlen(k)), HKV_OK);
    snprintf(k, sizeof(k), "new-%d", i);
    snprintf(v, sizeof(v), "n%d", i);
    ck_rc(putStr(w, k, v), HKV_OK);
  }
  ck_rc(hkv_commit(w), HKV_OK);
  ck_assert_msg(hkvEngineMigrating(w), "the growth ended too soon");
  ck_assert(hkvEngineFastReads(r));
  hkv_db *aDb[2] = {r, w};
  for (int d = 0; d < 2; d++) {
    if (d == 1) { /* make w the writer: its gets take the locked path */
      ck_rc(hkv_begin(w), HKV_OK);
      ck_rc(putStr(w, "other", "x"), HKV_OK);
    }
    for (int i = 0; i < n; i++) {
      snprintf(k, sizeof(k), "key-%d", i);
      int bDel = i % 97 == 1 && i / 97 < 60;
      int bUpd = i % 97 == 0 && i / 97 < 60;
      snprintf(v, sizeof(v), "%c%d", bUpd ? 'u' : 'v', i);
      expectStr(aDb[d], k, bDel ? NULL : v);
    }
    for (int i = 0; i < 60; i++) {
      snprintf(k, sizeof(k), "new-%d", i);
      snprintf(v, sizeof(v), "n%d", i);
      expectStr(aDb[d], k, v);
      snprintf(k, sizeof(k), "never-%d", i);
      expectStr(aDb[d], k, NULL);
    }
  }
  ck_rc(hkv_rollback(w), HKV_OK);
  hkv_close(r);
  hkv_close(w);
}
END_TEST

/* ---- the random model test ---- */

#define MKEYS 64
typedef struct Model {
  int aVal[MKEYS]; /* -1 absent, else value number */
} Model;

static void modelCheck(hkv_db *db, const Model *m, int step) {
  int nLive = 0;
  for (int i = 0; i < MKEYS; i++) {
    char k[16], v[16];
    snprintf(k, sizeof(k), "k%d", i);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (m->aVal[i] < 0) {
      ck_assert_msg(rc == HKV_NOTFOUND, "step %d key %s: %s", step, k,
                    hkv_codename(rc));
    } else {
      nLive++;
      snprintf(v, sizeof(v), "v%d", m->aVal[i]);
      ck_assert_msg(rc == HKV_OK && n == strlen(v) && !memcmp(p, v, n),
                    "step %d key %s: %s", step, k, hkv_codename(rc));
    }
  }
  /* A scan returns each live key of the model once, with its value, and
  ** nothing else. */
  hkv_iter *it;
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  const void *pK, *pV;
  size_t nK, nV;
  int nIter = 0, rc;
  char aSeen[MKEYS] = {0};
  while ((rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) {
    char k[16], v[16];
    int i = -1, nUsed = 0;
    ck_assert_msg(nK > 1 && nK < sizeof(k), "step %d: a key of %zu bytes", step,
                  nK);
    memcpy(k, pK, nK);
    k[nK] = 0;
    ck_assert_msg(sscanf(k, "k%d%n", &i, &nUsed) == 1 && (size_t)nUsed == nK &&
                      i >= 0 && i < MKEYS,
                  "step %d: scan returned unknown key '%s'", step, k);
    ck_assert_msg(m->aVal[i] >= 0, "step %d: scan returned absent key %s", step,
                  k);
    ck_assert_msg(!aSeen[i], "step %d: scan returned %s twice", step, k);
    aSeen[i] = 1;
    snprintf(v, sizeof(v), "v%d", m->aVal[i]);
    ck_assert_msg(nV == strlen(v) && !memcmp(pV, v, nV),
                  "step %d: scan gave %s = '%.*s', model has '%s'", step, k,
                  (int)nV, (const char *)pV, v);
    nIter++;
  }
  ck_rc(rc, HKV_DONE);
  hkv_iter_close(it);
  ck_assert_int_eq(nIter, nLive);
}

START_TEST(random_model) {
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.segment_size = 8192;
  hkv_db *db = 0, *r = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  ck_rc(hkv_open(zStore, &o, &r), HKV_OK);
  Model committed, cur, aSave[4];
  int nSave = 0, bTxn = 0;
  for (int i = 0; i < MKEYS; i++) committed.aVal[i] = -1;
  cur = committed;
  srand(12345);
  for (int step = 0; step < 20000; step++) {
    int op = rand() % 100;
    int i = rand() % MKEYS;
    char k[16], v[16];
    snprintf(k, sizeof(k), "k%d", i);
    if (op < 40) {
      int val = step;
      snprintf(v, sizeof(v), "v%d", val);
      ck_rc(putStr(db, k, v), HKV_OK);
      cur.aVal[i] = val;
    } else if (op < 55) {
      ck_rc(hkv_delete(db, k, strlen(k)),
            cur.aVal[i] < 0 ? HKV_NOTFOUND : HKV_OK);
      cur.aVal[i] = -1;
    } else if (op < 62 && !bTxn) {
      ck_rc(hkv_begin(db), HKV_OK);
      bTxn = 1;
      nSave = 0;
    } else if (op < 68 && bTxn) {
      ck_rc(rand() % 2 ? hkv_commit(db) : (hkv_prepare(db) || hkv_commit(db)),
            HKV_OK);
      bTxn = 0;
    } else if (op < 72 && bTxn) {
      if (rand() % 2) ck_rc(hkv_prepare(db), HKV_OK);
      ck_rc(hkv_rollback(db), HKV_OK);
      cur = committed;
      bTxn = 0;
    } else if (op < 78 && bTxn && nSave < 4) {
      ck_rc(hkv_savepoint(db, nSave), HKV_OK);
      aSave[nSave++] = cur;
    } else if (op < 83 && bTxn && nSave > 0) {
      int lv = rand() % nSave;
      ck_rc(hkv_rollback_to(db, lv), HKV_OK);
      cur = aSave[lv];
      nSave = lv + 1;
    } else if (op < 86 && bTxn && nSave > 0) {
      int lv = rand() % nSave;
      ck_rc(hkv_release(db, lv), HKV_OK);
      nSave = lv;
    } else if (op < 88 && !bTxn) {
      hkv_close(db);
      hkv_close(r);
      ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
      ck_rc(hkv_open(zStore, &o, &r), HKV_OK);
    }
    if (!bTxn) committed = cur;
    if (step % 97 == 0) {
      modelCheck(db, &cur, step);
      modelCheck(r, &committed, step);
    }
  }
  if (bTxn) ck_rc(hkv_commit(db), HKV_OK);
  hkv_close(db);
  hkv_close(r);
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  modelCheck(db, &cur, -1);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

int main(void) {
  Suite *s = suite_create("engine");
  TCase *tc = tcase_create("engine");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, seed_put_get_delete);
  tcase_add_test(tc, seed_missing_key);
  tcase_add_test(tc, insert_only_if_absent);
  tcase_add_test(tc, seed_overwrite);
  tcase_add_test(tc, binary_keys_and_values);
  tcase_add_test(tc, limits_write_nothing);
  tcase_add_test(tc, bad_options);
  tcase_add_test(tc, reopen_after_each_kind_of_write);
  tcase_add_test(tc, transaction_isolation);
  tcase_add_test(tc, prepared_commit_revoked);
  tcase_add_test(tc, nested_savepoints);
  tcase_add_test(tc, snapshot_iteration);
  tcase_add_test(tc, iteration_in_log_order_keys_first);
  tcase_add_test(tc, handles_share_one_engine);
  tcase_add_test(tc, readonly_open);
  tcase_add_test(tc, segments_rotate);
  tcase_add_test(tc, length_damaged_after_open);
  tcase_add_test(tc, gets_while_a_migration_is_pending);
  tcase_add_test(tc, random_model);
  suite_add_tcase(s, tc);
  /* Threads get a case of their own, so valgrind can leave them out
  ** (CK_RUN_CASE=engine): they are ThreadSanitizer's. */
  TCase *tt = tcase_create("threads");
  tcase_add_checked_fixture(tt, setup, teardown);
  tcase_set_timeout(tt, 120);
  tcase_add_test(tt, readers_beside_one_writer);
  tcase_add_test(tt, readers_while_the_index_grows);
  tcase_add_test(tt, readers_while_the_index_grows_locked);
  suite_add_tcase(s, tt);
  return runSuite(s);
}
