/*
** test_recovery.c: what a reopen makes of damaged files. The last record
** cut at every byte, a transaction cut anywhere, flipped bits (an error,
** never a wrong value), zero-filled tails, a torn segment creation, a
** process killed inside a transaction.
*/
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hkvInt.h"
#include "testutil.h"

static const char *zStore;
static char zSeg[400];

static void setup(void) {
  zStore = testDirSetup();
  snprintf(zSeg, sizeof(zSeg), "%s/00000001.hkd", zStore);
}
static void teardown(void) { testDirTeardown(); }

/* A cut made by hand stands for a crash that tore the tail before the
** commit was published: SHM, which would then not record it, goes too. */
static void writeCut(const char *zPath, const uint8_t *a, size_t n);

static hkv_db *openOk(void) {
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_NORMAL;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_OK, "open: %s: %s", hkv_codename(rc), hkv_errmsg(db));
  return db;
}

static uint8_t *readFile(const char *zPath, size_t *pn) {
  FILE *f = fopen(zPath, "rb");
  ck_assert_ptr_nonnull(f);
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *a = malloc((size_t)n + 1);
  ck_assert_uint_eq(fread(a, 1, (size_t)n, f), (size_t)n);
  fclose(f);
  *pn = (size_t)n;
  return a;
}

static void writeFile(const char *zPath, const uint8_t *a, size_t n) {
  FILE *f = fopen(zPath, "wb");
  ck_assert_ptr_nonnull(f);
  ck_assert_uint_eq(fwrite(a, 1, n, f), n);
  fclose(f);
}

static void writeCut(const char *zPath, const uint8_t *a, size_t n) {
  writeFile(zPath, a, n);
  char zShm[600];
  snprintf(zShm, sizeof(zShm), "%s/SHM", zStore);
  unlink(zShm);
}

static void putN(hkv_db *db, int iFrom, int iTo) {
  char k[32], v[64];
  for (int i = iFrom; i < iTo; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    snprintf(v, sizeof(v), "value-%d-%d", i, i * 7);
    ck_rc(hkv_put(db, k, strlen(k), v, strlen(v)), HKV_OK);
  }
}

static int hasKey(hkv_db *db, int i) {
  char k[32], v[64];
  snprintf(k, sizeof(k), "key-%d", i);
  snprintf(v, sizeof(v), "value-%d-%d", i, i * 7);
  const void *p;
  size_t n;
  int rc = hkv_get(db, k, strlen(k), &p, &n);
  if (rc == HKV_NOTFOUND) return 0;
  ck_assert_msg(rc == HKV_OK, "get %s: %s", k, hkv_codename(rc));
  ck_assert(n == strlen(v) && memcmp(p, v, n) == 0);
  return 1;
}

START_TEST(last_record_cut_at_every_byte) {
  hkv_db *db = openOk();
  putN(db, 0, 19);
  hkv_stats st;
  hkv_stats_get(db, &st);
  size_t nBefore = st.total_bytes;
  putN(db, 19, 20);
  hkv_close(db);
  size_t n;
  uint8_t *a = readFile(zSeg, &n);
  ck_assert_uint_gt(n, nBefore);
  for (size_t nCut = nBefore; nCut < n; nCut++) {
    writeCut(zSeg, a, nCut);
    db = openOk();
    if (nCut > nBefore) {
      ck_assert(strstr(hkv_errmsg(db), "recovery cut") != NULL);
    }
    for (int i = 0; i < 19; i++) ck_assert(hasKey(db, i));
    ck_assert(!hasKey(db, 19));
    hkv_stats_get(db, &st);
    ck_assert_uint_eq(st.recovered_cut_bytes, nCut - nBefore);
    if (nCut > nBefore) {
      ck_assert_uint_eq(st.recovered_cut_offset, nBefore);
    }
    /* The store goes on working after the cut. */
    putN(db, 19, 20);
    hkv_close(db);
    db = openOk();
    ck_assert(hasKey(db, 19));
    hkv_stats_get(db, &st);
    ck_assert_uint_eq(st.recovered_cut_bytes, 0);
    hkv_close(db);
  }
  free(a);
}
END_TEST

START_TEST(transaction_cut_anywhere_is_all_or_nothing) {
  hkv_db *db = openOk();
  putN(db, 0, 5);
  hkv_stats st;
  hkv_stats_get(db, &st);
  size_t nBefore = st.total_bytes;
  ck_rc(hkv_begin(db), HKV_OK);
  putN(db, 5, 10);
  ck_rc(hkv_delete(db, "key-0", 5), HKV_OK);
  ck_rc(hkv_savepoint(db, 0), HKV_OK);
  putN(db, 10, 12);
  ck_rc(hkv_rollback_to(db, 0), HKV_OK);
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_close(db);
  size_t n;
  uint8_t *a = readFile(zSeg, &n);
  for (size_t nCut = nBefore; nCut <= n; nCut++) {
    writeCut(zSeg, a, nCut);
    db = openOk();
    int bAll = (nCut == n);
    ck_assert_int_eq(hasKey(db, 0), !bAll);
    for (int i = 1; i < 5; i++) ck_assert(hasKey(db, i));
    for (int i = 5; i < 10; i++) ck_assert_int_eq(hasKey(db, i), bAll);
    for (int i = 10; i < 12; i++) ck_assert(!hasKey(db, i));
    hkv_close(db);
  }
  free(a);
}
END_TEST

START_TEST(flipped_bit_is_an_error) {
  hkv_db *db = openOk();
  putN(db, 0, 40);
  hkv_close(db);
  size_t n;
  uint8_t *a = readFile(zSeg, &n);
  /* Every byte of the middle third, one at a time: never a wrong value. */
  for (size_t i = n / 3; i < 2 * n / 3; i++) {
    a[i] ^= 0x10;
    writeFile(zSeg, a, n);
    a[i] ^= 0x10;
    hkv_db *d = 0;
    int rc = hkv_open(zStore, NULL, &d);
    ck_assert_msg(rc == HKV_CORRUPT, "byte %zu: %s", i, hkv_codename(rc));
    ck_assert(strstr(hkv_errmsg(d), "00000001.hkd") != NULL);
    ck_assert(strstr(hkv_errmsg(d), "offset") != NULL);
    hkv_close(d);
  }
  writeFile(zSeg, a, n);
  db = openOk();
  for (int i = 0; i < 40; i++) ck_assert(hasKey(db, i));
  hkv_close(db);
  /* The header too. */
  a[9] ^= 1;
  writeFile(zSeg, a, n);
  hkv_db *d = 0;
  ck_rc(hkv_open(zStore, NULL, &d), HKV_CORRUPT);
  hkv_close(d);
  free(a);
}
END_TEST

START_TEST(sealed_segment_damage_is_an_error) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.sync = HKV_SYNC_NORMAL;
  hkv_db *db = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  putN(db, 0, 400);
  hkv_close(db);
  size_t n;
  uint8_t *a = readFile(zSeg, &n); /* the first, sealed segment */
  a[n - 3] ^= 0x40;                /* its last record */
  writeFile(zSeg, a, n);
  /* With its hint the segment is not read at open, but reading the damaged
  ** record, or checking, says where the damage is. */
  char zHint[600];
  snprintf(zHint, sizeof(zHint), "%s/00000001.hkh", zStore);
  ck_assert_int_eq(access(zHint, F_OK), 0);
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  ck_rc(hkv_integrity_check(db), HKV_CORRUPT);
  ck_assert(strstr(hkv_errmsg(db), "00000001.hkd") != NULL);
  hkv_close(db);
  /* Without it, the open itself fails. */
  unlink(zHint);
  ck_rc(hkv_open(zStore, &o, &db), HKV_CORRUPT);
  ck_assert(strstr(hkv_errmsg(db), "00000001.hkd") != NULL);
  hkv_close(db);
  free(a);
}
END_TEST

START_TEST(damage_after_open_is_caught_by_get) {
  hkv_db *db = openOk();
  putN(db, 0, 3);
  size_t n;
  uint8_t *a = readFile(zSeg, &n);
  int fd = open(zSeg, O_WRONLY);
  uint8_t b = a[n - 2] ^ 0xFF; /* inside the value of key-2 */
  ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)(n - 2)), 1);
  close(fd);
  const void *p;
  size_t nV;
  ck_rc(hkv_get(db, "key-2", 5, &p, &nV), HKV_CORRUPT);
  ck_assert(strstr(hkv_errmsg(db), "offset") != NULL);
  ck_rc(hkv_integrity_check(db), HKV_CORRUPT);
  ck_assert(hasKey(db, 1));
  hkv_close(db);
  free(a);
}
END_TEST

START_TEST(zero_tail_and_torn_new_segment) {
  hkv_db *db = openOk();
  putN(db, 0, 10);
  hkv_close(db);
  size_t n;
  uint8_t *a = readFile(zSeg, &n);
  uint8_t *b = calloc(1, n + 4096);
  memcpy(b, a, n);
  writeFile(zSeg, b, n + 4096); /* a file system that left zeros */
  db = openOk();
  for (int i = 0; i < 10; i++) ck_assert(hasKey(db, i));
  hkv_stats st;
  hkv_stats_get(db, &st);
  ck_assert_uint_eq(st.recovered_cut_bytes, 4096);
  hkv_close(db);
  char zNext[400];
  snprintf(zNext, sizeof(zNext), "%s/00000002.hkd", zStore);
  writeFile(zNext, a, 0); /* a new segment created, header never written */
  db = openOk();
  hkv_stats_get(db, &st);
  ck_assert_uint_eq(st.segments, 1);
  putN(db, 10, 11);
  hkv_close(db);
  db = openOk();
  for (int i = 0; i < 11; i++) ck_assert(hasKey(db, i));
  hkv_close(db);
  writeFile(zNext, a, 10); /* a new segment whose header was cut short */
  db = openOk();
  hkv_stats_get(db, &st);
  ck_assert_uint_eq(st.recovered_cut_bytes, 10);
  ck_assert_uint_eq(st.segments, 1);
  putN(db, 11, 12);
  hkv_close(db);
  db = openOk();
  for (int i = 0; i < 12; i++) ck_assert(hasKey(db, i));
  hkv_close(db);
  free(a);
  free(b);
}
END_TEST

START_TEST(killed_inside_a_transaction) {
  hkv_db *db = openOk();
  putN(db, 0, 10);
  hkv_close(db);
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *c = 0;
    if (hkv_open(zStore, NULL, &c)) _exit(2);
    hkv_begin(c);
    static char aBig[300000];
    char k[32];
    for (int i = 0; i < 20; i++) { /* > 1 MiB: reaches the file */
      snprintf(k, sizeof(k), "big-%d", i);
      hkv_put(c, k, strlen(k), aBig, sizeof(aBig));
    }
    hkv_delete(c, "key-3", 5);
    _exit(0); /* no commit, no close */
  }
  int status;
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  db = openOk();
  for (int i = 0; i < 10; i++) ck_assert(hasKey(db, i));
  const void *p;
  size_t n;
  ck_rc(hkv_get(db, "big-0", 5, &p, &n), HKV_NOTFOUND);
  hkv_stats st;
  hkv_stats_get(db, &st);
  ck_assert_uint_gt(st.recovered_cut_bytes, 1000000);
  ck_assert_uint_eq(st.live_keys, 10);
  hkv_close(db);
}
END_TEST

/* ---- the store knows its file set ---- */

static hkv_db *openSmall(int *pRc) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.sync = HKV_SYNC_NORMAL;
  o.auto_compact = 0;
  hkv_db *db = 0;
  *pRc = hkv_open(zStore, &o, &db);
  return db;
}

/* The ids of the store's files with extension zExt, ascending; returns n. */
static int listIds(const char *zExt, unsigned *aId, int nMax) {
  char zCmd[600];
  snprintf(zCmd, sizeof(zCmd), "ls %s | grep '\\%s$' | sort", zStore, zExt);
  FILE *f = popen(zCmd, "r");
  ck_assert_ptr_nonnull(f);
  int n = 0;
  char zLine[64];
  while (n < nMax && fgets(zLine, sizeof(zLine), f)) {
    aId[n++] = (unsigned)strtoul(zLine, 0, 16);
  }
  pclose(f);
  return n;
}

static void storeFile(char *zBuf, unsigned iId, const char *zExt) {
  snprintf(zBuf, 600, "%s/%08x%s", zStore, iId, zExt);
}

/* Every key of [0, n) reads back. */
static void allKeys(hkv_db *db, int n) {
  for (int i = 0; i < n; i++) ck_assert(hasKey(db, i));
}

/* Opening fails with CORRUPT naming zWant, and removes nothing. */
static void openFailsNaming(const char *zWant) {
  unsigned aBefore[256], aAfter[256];
  int nBefore = listIds(".hkd", aBefore, 256) + listIds(".hkc", aBefore, 256);
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_assert_msg(rc == HKV_CORRUPT, "open: %s: %s", hkv_codename(rc),
                hkv_errmsg(db));
  ck_assert_msg(strstr(hkv_errmsg(db), zWant) != NULL, "message: %s",
                hkv_errmsg(db));
  hkv_close(db);
  int nAfter = listIds(".hkd", aAfter, 256) + listIds(".hkc", aAfter, 256);
  ck_assert_int_eq(nAfter, nBefore);
}

START_TEST(missing_middle_segment_is_an_error) {
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 400);
  hkv_close(db);
  unsigned aId[256];
  int n = listIds(".hkd", aId, 256);
  ck_assert_int_ge(n, 4);
  char zPath[600], zAway[700];
  storeFile(zPath, aId[n / 2], ".hkd");
  snprintf(zAway, sizeof(zAway), "%s.away", zPath);
  ck_assert_int_eq(rename(zPath, zAway), 0);
  char zName[16];
  snprintf(zName, sizeof(zName), "%08x.hkd", aId[n / 2]);
  openFailsNaming(zName);
  /* So is the oldest gone (its hint still there or not). */
  ck_assert_int_eq(rename(zAway, zPath), 0);
  storeFile(zPath, aId[0], ".hkd");
  snprintf(zAway, sizeof(zAway), "%s.away", zPath);
  ck_assert_int_eq(rename(zPath, zAway), 0);
  snprintf(zName, sizeof(zName), "%08x.hkd", aId[0]);
  openFailsNaming(zName);
  ck_assert_int_eq(rename(zAway, zPath), 0);
  db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  allKeys(db, 400);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

START_TEST(missing_newest_segment_is_an_error) {
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 400);
  hkv_close(db);
  unsigned aId[256];
  int n = listIds(".hkd", aId, 256);
  ck_assert_int_ge(n, 3);
  char zPath[600], zAway[700], zHint[600];
  /* The segment before the newest is sealed and has its hint. */
  storeFile(zHint, aId[n - 2], ".hkh");
  ck_assert_int_eq(access(zHint, F_OK), 0);
  storeFile(zPath, aId[n - 1], ".hkd");
  snprintf(zAway, sizeof(zAway), "%s.away", zPath);
  ck_assert_int_eq(rename(zPath, zAway), 0);
  openFailsNaming("missing");
  ck_assert_int_eq(rename(zAway, zPath), 0);
  db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  allKeys(db, 400);
  hkv_close(db);
}
END_TEST

START_TEST(lost_manifest_is_an_error) {
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 300);
  putN(db, 0, 150); /* overwrites: compaction has something to drop */
  ck_rc(hkv_compact(db), HKV_OK);
  putN(db, 300, 320);
  hkv_close(db);
  unsigned aHkc[256];
  int nHkc = listIds(".hkc", aHkc, 256);
  ck_assert_int_ge(nHkc, 1);
  char zMan[600], zAway[700];
  snprintf(zMan, sizeof(zMan), "%s/MANIFEST", zStore);
  snprintf(zAway, sizeof(zAway), "%s/MANIFEST.away", zStore);
  ck_assert_int_eq(rename(zMan, zAway), 0);
  openFailsNaming("MANIFEST");
  /* Read-only too: never a store with half its rows. */
  hkv_options o;
  hkv_options_init(&o);
  o.flags = HKV_OPEN_READONLY;
  db = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_CORRUPT);
  hkv_close(db);
  unsigned aAfter[256];
  ck_assert_int_eq(listIds(".hkc", aAfter, 256), nHkc);
  ck_assert_int_eq(rename(zAway, zMan), 0);
  db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  allKeys(db, 320);
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

/* An open after a crash that cut the newest segment away entirely (a
** transaction rotated into it and died) still opens, and later ones too. */
START_TEST(cut_newest_segment_then_reopen) {
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 100);
  hkv_close(db);
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *c = openSmall(&rc);
    if (rc) _exit(2);
    hkv_begin(c);
    static char aBig[3000];
    char k[32];
    for (int i = 0; i < 20; i++) { /* rotates several times */
      snprintf(k, sizeof(k), "big-%d", i);
      hkv_put(c, k, strlen(k), aBig, sizeof(aBig));
    }
    hkv_prepare(c); /* the records reach the files; no commit is kept */
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  for (int r = 0; r < 2; r++) {
    db = openSmall(&rc);
    ck_assert_msg(rc == HKV_OK, "open %d: %s: %s", r, hkv_codename(rc),
                  hkv_errmsg(db));
    allKeys(db, 100);
    putN(db, 100, 101 + r);
    hkv_close(db);
  }
}
END_TEST

static hkv_db *openFull(int *pRc) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.sync = HKV_SYNC_FULL;
  o.auto_compact = 0;
  hkv_db *db = 0;
  *pRc = hkv_open(zStore, &o, &db);
  return db;
}

/* In a child process: opens the store and counts keys [0, n) present.
** Exit status: that count, or 250 + the code's low bits if the open or a
** read failed (never a silent short answer). */
static int childCount(int n) {
  pid_t pid = fork();
  if (pid == 0) {
    hkv_db *c = 0;
    int rc = hkv_open(zStore, NULL, &c);
    if (rc) _exit(rc == HKV_CORRUPT ? 254 : 253);
    int nHave = 0;
    char k[32];
    for (int i = 0; i < n; i++) {
      snprintf(k, sizeof(k), "key-%d", i);
      const void *p;
      size_t nv;
      rc = hkv_get(c, k, strlen(k), &p, &nv);
      if (rc == HKV_CORRUPT) _exit(254);
      if (rc != HKV_OK && rc != HKV_NOTFOUND) _exit(253);
      nHave += rc == HKV_OK;
    }
    _exit(nHave);
  }
  int status;
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status));
  return WEXITSTATUS(status);
}

/* SHM's committed end overwritten while this process has the store open:
** another process's open is an error, never an empty table; this process's
** next write rebuilds SHM from the files, and then all is well. */
START_TEST(damaged_shm_is_an_error_then_rebuilt) {
  int rc;
  hkv_db *db = openFull(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 100);
  ck_assert_int_eq(childCount(100), 100);
  char zShm[600];
  snprintf(zShm, sizeof(zShm), "%s/SHM", zStore);
  int fd = open(zShm, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t aEnd[8] = {32, 0, 0, 0, 1, 0, 0, 0}; /* segment 1, offset 32 */
  ck_assert_int_eq(pwrite(fd, aEnd, 8, 8), 8);
  ck_assert_int_eq(childCount(100), 254);
  /* This process reads what it has, or says SHM is damaged. */
  const void *p;
  size_t nv;
  rc = hkv_get(db, "key-5", 5, &p, &nv);
  ck_assert_msg(rc == HKV_OK || rc == HKV_CORRUPT, "%s", hkv_codename(rc));
  if (rc) ck_assert(strstr(hkv_errmsg(db), "SHM") != NULL);
  putN(db, 100, 101);
  ck_assert_int_eq(childCount(101), 101);
  /* Garbage over all of it: the magic no longer matches, so the next open
  ** reads the files. */
  uint8_t aJunk[64];
  memset(aJunk, 0xA5, sizeof(aJunk));
  ck_assert_int_eq(pwrite(fd, aJunk, sizeof(aJunk), 0), (long)sizeof(aJunk));
  close(fd);
  ck_assert_int_eq(childCount(101), 101);
  hkv_close(db);
}
END_TEST

/* The newest segment cut at a record boundary, or lost with no hint to
** tell: SHM's durable end says a commit is missing. */
START_TEST(durable_end_missing_is_an_error) {
  int rc;
  hkv_db *db = openFull(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 10);
  hkv_close(db);
  size_t n;
  uint8_t *a = readFile(zSeg, &n);
  size_t nLast = HKV_REC_HDR + strlen("key-9") + strlen("value-9-63");
  writeFile(zSeg, a, n - nLast); /* the last commit, exactly */
  openFailsNaming("00000001.hkd");
  writeFile(zSeg, a, n);
  db = openFull(&rc);
  ck_rc(rc, HKV_OK);
  allKeys(db, 10);
  putN(db, 10, 200); /* into later segments */
  hkv_close(db);
  unsigned aId[256];
  int nId = listIds(".hkd", aId, 256);
  ck_assert_int_ge(nId, 2);
  char zPath[600], zAway[700], zHint[600];
  storeFile(zHint, aId[nId - 2], ".hkh");
  unlink(zHint); /* no hint to tell that the segment was sealed */
  storeFile(zPath, aId[nId - 1], ".hkd");
  snprintf(zAway, sizeof(zAway), "%s.away", zPath);
  ck_assert_int_eq(rename(zPath, zAway), 0);
  char zName[16];
  snprintf(zName, sizeof(zName), "%08x.hkd", aId[nId - 1]);
  openFailsNaming(zName);
  ck_assert_int_eq(rename(zAway, zPath), 0);
  db = openFull(&rc);
  ck_rc(rc, HKV_OK);
  allKeys(db, 200);
  hkv_close(db);
  free(a);
}
END_TEST

/* One transaction over several segments (sync=normal, so no fsync and no
** hints yet), its newest segment taken away: the open must not take the
** commit for a torn tail and cut the older segments away with it. */
START_TEST(lost_segment_of_a_long_transaction) {
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  putN(db, 0, 5);
  ck_rc(hkv_begin(db), HKV_OK);
  putN(db, 5, 500);
  ck_rc(hkv_commit(db), HKV_OK);
  hkv_close(db);
  unsigned aId[256];
  int n = listIds(".hkd", aId, 256);
  ck_assert_int_ge(n, 3);
  char zPath[600], zAway[700];
  storeFile(zPath, aId[n - 1], ".hkd");
  snprintf(zAway, sizeof(zAway), "%s.away", zPath);
  ck_assert_int_eq(rename(zPath, zAway), 0);
  char zName[16];
  snprintf(zName, sizeof(zName), "%08x.hkd", aId[n - 1]);
  openFailsNaming(zName);
  ck_assert_int_eq(rename(zAway, zPath), 0);
  db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  allKeys(db, 500);
  hkv_close(db);
}
END_TEST

/* A flipped bit in a key while the store is open: a lookup of that key is
** an error, not "no such key", and so is a write of it. */
START_TEST(damaged_key_is_an_error) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.sync = HKV_SYNC_NORMAL;
  hkv_db *db = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  putN(db, 0, 400);
  int fd = open(zSeg, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t b;
  off_t iOff = HKV_SEG_HDR + HKV_REC_HDR + 2; /* "key-0" becomes "kex-0" */
  ck_assert_int_eq(pread(fd, &b, 1, iOff), 1);
  b ^= 0x01;
  ck_assert_int_eq(pwrite(fd, &b, 1, iOff), 1);
  close(fd);
  const void *p;
  size_t nV;
  ck_rc(hkv_get(db, "key-0", 5, &p, &nV), HKV_CORRUPT);
  ck_rc(hkv_insert(db, "key-0", 5, "x", 1), HKV_CORRUPT);
  ck_assert(hasKey(db, 1));
  hkv_close(db);
}
END_TEST

/* The same damage made while the store is closed, its segment described by
** a hint that still holds the good key: the open reads the segment instead
** of trusting the hint, and fails naming the record, as it does without a
** hint; it no longer opens with the key missing. */
START_TEST(damaged_key_under_a_hint_is_an_error) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 4096;
  o.sync = HKV_SYNC_NORMAL;
  hkv_db *db = 0;
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  putN(db, 0, 400);
  hkv_close(db);
  char zHint[600];
  snprintf(zHint, sizeof(zHint), "%s/00000001.hkh", zStore);
  struct stat st;
  ck_assert_msg(stat(zHint, &st) == 0, "no hint for the first segment");
  int fd = open(zSeg, O_RDWR);
  ck_assert_int_ge(fd, 0);
  uint8_t b;
  off_t iOff = HKV_SEG_HDR + HKV_REC_HDR + 2; /* "key-0" becomes "kex-0" */
  ck_assert_int_eq(pread(fd, &b, 1, iOff), 1);
  b ^= 0x01;
  ck_assert_int_eq(pwrite(fd, &b, 1, iOff), 1);
  close(fd);
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_CORRUPT, "open: %s", hkv_codename(rc));
  ck_assert_msg(strstr(hkv_errmsg(db), "00000001.hkd: corrupt record at offset 32"),
                "message: %s", hkv_errmsg(db));
  hkv_close(db);
}
END_TEST

/* A compaction output's hint whose entry names another key under a good
** checksum (a hint written wrong, or damaged and re-sealed): the open reads
** the segment instead, and every key stays where it is. Trusted, the hint
** indexed the record under the other key and the real one read as absent. */
START_TEST(compaction_hint_naming_another_key_is_not_trusted) {
  int rc;
  hkv_db *db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  /* Few keys, so the index never grows during the open: a growth hashes
  ** every key again from its record and would mend the lie by chance. */
  char k[32], v[1500];
  memset(v, 'v', sizeof(v));
  for (int i = 0; i < 8; i++) { /* two records a segment; keys 0-1 twice */
    snprintf(k, sizeof(k), "key-%d", i < 6 ? i : i - 6);
    ck_rc(hkv_put(db, k, strlen(k), v, sizeof(v)), HKV_OK);
  }
  ck_rc(hkv_compact(db), HKV_OK);
  hkv_close(db);
  unsigned aHkc[256];
  int nHkc = listIds(".hkc", aHkc, 256);
  ck_assert_int_ge(nHkc, 1);
  char zHint[600];
  storeFile(zHint, aHkc[0], ".hkh");
  size_t n;
  uint8_t *a = readFile(zHint, &n);
  ck_assert_uint_gt(n, 24);
  ck_assert_int_eq(memcmp(a, "hkvhint2", 8), 0);
  /* The first entry: offset delta 0, key length, expiry 0 (one byte each
  ** here), then the key, "key-N": made "kex-N", the checksum made again. */
  ck_assert_int_eq(a[16], 0);
  ck_assert_int_eq(a[18], 0);
  ck_assert_int_eq(memcmp(a + 19, "key-", 4), 0);
  a[19 + 2] = 'x';
  char zOther[32];
  size_t nOther = a[17];
  ck_assert_uint_lt(nOther, sizeof(zOther));
  memcpy(zOther, a + 19, nOther);
  hkvPut32(a + n - 4, hkvCrc32c(0, a, n - 4));
  writeFile(zHint, a, n);
  free(a);
  db = openSmall(&rc);
  ck_rc(rc, HKV_OK);
  const void *p;
  size_t nV;
  for (int i = 0; i < 6; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    rc = hkv_get(db, k, strlen(k), &p, &nV);
    ck_assert_msg(rc == HKV_OK, "%s: %s", k, hkv_codename(rc));
    ck_assert_uint_eq(nV, sizeof(v));
  }
  ck_rc(hkv_get(db, zOther, nOther, &p, &nV), HKV_NOTFOUND);
  hkv_close(db);
}
END_TEST

int main(void) {
  Suite *s = suite_create("recovery");
  TCase *tc = tcase_create("recovery");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, last_record_cut_at_every_byte);
  tcase_add_test(tc, transaction_cut_anywhere_is_all_or_nothing);
  tcase_add_test(tc, flipped_bit_is_an_error);
  tcase_add_test(tc, sealed_segment_damage_is_an_error);
  tcase_add_test(tc, damage_after_open_is_caught_by_get);
  tcase_add_test(tc, zero_tail_and_torn_new_segment);
  tcase_add_test(tc, killed_inside_a_transaction);
  tcase_add_test(tc, missing_middle_segment_is_an_error);
  tcase_add_test(tc, missing_newest_segment_is_an_error);
  tcase_add_test(tc, lost_manifest_is_an_error);
  tcase_add_test(tc, cut_newest_segment_then_reopen);
  tcase_add_test(tc, damaged_shm_is_an_error_then_rebuilt);
  tcase_add_test(tc, durable_end_missing_is_an_error);
  tcase_add_test(tc, lost_segment_of_a_long_transaction);
  tcase_add_test(tc, damaged_key_is_an_error);
  tcase_add_test(tc, damaged_key_under_a_hint_is_an_error);
  tcase_add_test(tc, compaction_hint_naming_another_key_is_not_trusted);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
