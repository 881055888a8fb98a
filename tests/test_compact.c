/*
** test_compact.c: compaction and hint files. Every key survives, deleted keys
** stay deleted, space comes back, readers and scans keep working, automatic
** compaction runs by itself, hints are used and a bad one is survivable, a
** record damaged under a hint-only open is found when read, a crash at
** every step of a compaction leaves a store that opens with the same
** contents, and the counters (hkv_stats) say what the tests did.
*/
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "hkvInt.h"
#include "testutil.h"

static const char *zStore;
/* Bytes of the records churn() appended to the log (a PUT or DEL is a
** header, its key and its value; a COMMIT a bare header: log.c), and the
** transactions it committed. */
static uint64_t nLogBytes, nCommits;
static void setup(void) {
  zStore = testDirSetup();
  nLogBytes = nCommits = 0; /* CK_FORK=no runs every test in one process */
}
static void teardown(void) {
  hkvTestCrashHook = 0;
  testDirTeardown();
}

#define NKEY 2000
static int aModel[NKEY]; /* -1 deleted, else version */

static hkv_db *openSmall(double rAuto) {
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 16384;
  o.sync = HKV_SYNC_NORMAL;
  o.auto_compact = rAuto;
  o.auto_compact_min = 0;
  hkv_db *db = 0;
  int rc = hkv_open(zStore, &o, &db);
  ck_assert_msg(rc == HKV_OK, "open: %s %s", hkv_codename(rc), hkv_errmsg(db));
  return db;
}

static void val(char *z, int i, int v) { snprintf(z, 64, "value-%d-%d", i, v); }

/* Overwrites every key nRounds times, then deletes every other one. */
static void churn(hkv_db *db, int nRounds) {
  char k[32], v[64];
  for (int r = 0; r < nRounds; r++) {
    ck_rc(hkv_begin(db), HKV_OK);
    for (int i = 0; i < NKEY; i++) {
      snprintf(k, sizeof(k), "key-%d", i);
      val(v, i, r);
      ck_rc(hkv_put(db, k, strlen(k), v, strlen(v)), HKV_OK);
      aModel[i] = r;
      nLogBytes += HKV_REC_HDR + strlen(k) + strlen(v);
    }
    ck_rc(hkv_commit(db), HKV_OK);
    nLogBytes += HKV_REC_HDR;
    nCommits++;
  }
  for (int i = 0; i < NKEY; i += 2) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(hkv_delete(db, k, strlen(k)), HKV_OK); /* one self-commit record */
    aModel[i] = -1;
    nLogBytes += HKV_REC_HDR + strlen(k);
    nCommits++;
  }
}

/* Live keys of the model, and the bytes of their records. */
static uint64_t modelKeys(void) {
  uint64_t n = 0;
  for (int i = 0; i < NKEY; i++) n += aModel[i] >= 0;
  return n;
}
static uint64_t modelLiveBytes(void) {
  char k[32], v[64];
  uint64_t n = 0;
  for (int i = 0; i < NKEY; i++) {
    if (aModel[i] < 0) continue;
    snprintf(k, sizeof(k), "key-%d", i);
    val(v, i, aModel[i]);
    n += HKV_REC_HDR + strlen(k) + strlen(v);
  }
  return n;
}

static void checkModel(hkv_db *db, const char *zWhen) {
  char k[32], v[64];
  for (int i = 0; i < NKEY; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    const void *p;
    size_t n;
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (aModel[i] < 0) {
      ck_assert_msg(rc == HKV_NOTFOUND, "%s: %s came back (%s)", zWhen, k,
                    hkv_codename(rc));
    } else {
      val(v, i, aModel[i]);
      ck_assert_msg(rc == HKV_OK && n == strlen(v) && !memcmp(p, v, n),
                    "%s: %s: %s", zWhen, k, hkv_codename(rc));
    }
  }
}

static int countFiles(const char *zExt);

/* The counters every handle on the store reports agree with the model and
** with what the test wrote: live keys and their bytes, the files there are,
** and the dead bytes as the rest of them (every byte of a segment is a
** header, a live record or a dead one). */
static void checkStats(hkv_db *db, const hkv_stats *p, const char *zWhen) {
  ck_assert_msg(p->live_keys == modelKeys(), "%s: live_keys %llu, model %llu",
                zWhen, (unsigned long long)p->live_keys,
                (unsigned long long)modelKeys());
  ck_assert_msg(p->live_bytes == modelLiveBytes(),
                "%s: live_bytes %llu, model %llu", zWhen,
                (unsigned long long)p->live_bytes,
                (unsigned long long)modelLiveBytes());
  ck_assert_uint_eq(p->segments,
                    (uint64_t)(countFiles(".hkd") + countFiles(".hkc")));
  ck_assert_uint_eq(p->dead_bytes,
                    p->total_bytes - p->segments * HKV_SEG_HDR - p->live_bytes);
  ck_assert_uint_ge(p->index_bytes, p->live_keys * sizeof(uint64_t));
  ck_assert_uint_eq(p->recovered_cut_bytes, 0);
  ck_assert_uint_eq(p->recovered_cut_offset, 0);
  hkv_stats again;
  ck_rc(hkv_stats_get(db, &again), HKV_OK); /* reading them changes nothing */
  ck_assert(memcmp(&again, p, sizeof(again)) == 0);
}

START_TEST(compaction_keeps_every_key_and_frees_space) {
  hkv_db *db = openSmall(0);
  churn(db, 5);
  hkv_stats a, b;
  ck_rc(hkv_stats_get(db, &a), HKV_OK);
  checkStats(db, &a, "before compaction");
  /* Nothing compacted yet: every byte written is still in the files. */
  ck_assert_uint_eq(a.total_bytes, nLogBytes + a.segments * HKV_SEG_HDR);
  ck_assert_uint_eq(a.dead_bytes, nLogBytes - a.live_bytes);
  ck_assert_uint_eq(a.commits, nCommits);
  ck_assert_uint_eq(a.compactions, 0);
  ck_assert_uint_eq(a.reclaimed_bytes, 0);
  ck_assert_uint_eq(a.retired_segments, 0);
  ck_rc(hkv_compact(db), HKV_OK);
  ck_rc(hkv_stats_get(db, &b), HKV_OK);
  checkModel(db, "after compaction");
  checkStats(db, &b, "after compaction");
  ck_assert_uint_eq(b.compactions, 1);
  ck_assert_uint_eq(b.commits, nCommits); /* a compaction is no commit */
  ck_assert_uint_eq(b.dead_bytes, 0);
  ck_assert_uint_eq(b.retired_segments, 0); /* no reader holds the old ones */
  /* Every old segment went, the outputs and an empty active segment
  ** came: the difference is what was reclaimed. */
  ck_assert_uint_eq(b.reclaimed_bytes,
                    a.total_bytes - (b.total_bytes - HKV_SEG_HDR));
  ck_assert_uint_lt(b.total_bytes, a.total_bytes / 4);
  ck_assert_uint_le(b.total_bytes, b.live_bytes * 13 / 10 + 2 * 16384);
  int rcI = hkv_integrity_check(db);
  ck_assert_msg(rcI == HKV_OK, "integrity: %s", hkv_errmsg(db));
  hkv_close(db);
  db = openSmall(0);
  checkModel(db, "after reopen");
  ck_rc(hkv_integrity_check(db), HKV_OK);
  /* The counters of a new open start again; the files are the same. */
  ck_rc(hkv_stats_get(db, &a), HKV_OK);
  checkStats(db, &a, "after reopen");
  ck_assert_uint_eq(a.total_bytes, b.total_bytes);
  ck_assert_uint_eq(a.dead_bytes, 0);
  ck_assert_uint_eq(a.commits, 0);
  ck_assert_uint_eq(a.compactions, 0);
  ck_assert_uint_eq(a.reclaimed_bytes, 0);
  /* Keep going: writes, a second compaction, reopen. */
  churn(db, 1);
  ck_rc(hkv_compact(db), HKV_OK);
  checkModel(db, "after the second compaction");
  hkv_close(db);
  db = openSmall(0);
  checkModel(db, "after the second reopen");
  hkv_close(db);
}
END_TEST

START_TEST(tombstones_do_not_resurrect_keys) {
  hkv_db *db = openSmall(0);
  char v[3000];
  memset(v, 'x', sizeof(v));
  ck_rc(hkv_put(db, "doomed", 6, "old", 3), HKV_OK);
  for (int i = 0; i < 20; i++) { /* push "doomed" into a sealed segment */
    char k[16];
    snprintf(k, sizeof(k), "fill-%d", i);
    ck_rc(hkv_put(db, k, strlen(k), v, sizeof(v)), HKV_OK);
  }
  ck_rc(hkv_delete(db, "doomed", 6), HKV_OK); /* tombstone in a later one */
  ck_rc(hkv_compact(db), HKV_OK);
  const void *p;
  size_t n;
  ck_rc(hkv_get(db, "doomed", 6, &p, &n), HKV_NOTFOUND);
  hkv_close(db);
  db = openSmall(0);
  ck_rc(hkv_get(db, "doomed", 6, &p, &n), HKV_NOTFOUND);
  /* Delete after a compaction: the put lives in compacted data now. */
  ck_rc(hkv_delete(db, "fill-3", 6), HKV_OK);
  hkv_close(db);
  db = openSmall(0);
  ck_rc(hkv_get(db, "fill-3", 6, &p, &n), HKV_NOTFOUND);
  ck_rc(hkv_get(db, "fill-4", 6, &p, &n), HKV_OK);
  ck_rc(hkv_compact(db), HKV_OK);
  hkv_close(db);
  db = openSmall(0);
  ck_rc(hkv_get(db, "fill-3", 6, &p, &n), HKV_NOTFOUND);
  ck_rc(hkv_get(db, "fill-4", 6, &p, &n), HKV_OK);
  hkv_close(db);
}
END_TEST

START_TEST(readers_and_scans_during_compaction) {
  hkv_db *w = openSmall(0);
  hkv_db *r = openSmall(0);
  churn(w, 3);
  hkv_iter *it;
  ck_rc(hkv_iter_open(r, &it), HKV_OK);
  const void *pPinned;
  size_t nPinned;
  ck_rc(hkv_get(r, "key-1", 5, &pPinned, &nPinned), HKV_OK);
  ck_rc(hkv_compact(w), HKV_OK);
  /* The pointer r got before compaction is still readable (no call on r
  ** since), and the scan begun before returns every row once. */
  char v[64];
  val(v, 1, aModel[1]);
  ck_assert(nPinned == strlen(v) && !memcmp(pPinned, v, nPinned));
  hkv_stats st;
  ck_rc(hkv_stats_get(w, &st), HKV_OK);
  ck_assert_uint_gt(st.retired_segments, 0);
  const void *pK, *pV;
  size_t nK, nV;
  int nRows = 0, rc;
  static char aSeen[NKEY];
  memset(aSeen, 0, sizeof(aSeen));
  while ((rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) {
    char k[32];
    memcpy(k, pK, nK);
    k[nK] = 0;
    int i = atoi(k + 4);
    ck_assert(!aSeen[i]);
    aSeen[i] = 1;
    val(v, i, aModel[i]);
    ck_assert(nV == strlen(v) && !memcmp(pV, v, nV));
    nRows++;
  }
  ck_rc(rc, HKV_DONE);
  ck_assert_int_eq(nRows, NKEY / 2);
  hkv_iter_close(it);
  checkModel(r, "reader after compaction");
  /* Every handle has moved on: the retired segments are let go. */
  checkModel(w, "writer after compaction");
  ck_rc(hkv_stats_get(w, &st), HKV_OK);
  ck_assert_uint_eq(st.retired_segments, 0);
  /* A second compaction while r, idle since its last get, may still hold
  ** a pointer into what it retires: kept until r moves on or closes. */
  ck_rc(hkv_compact(w), HKV_OK);
  ck_rc(hkv_stats_get(w, &st), HKV_OK);
  ck_assert_uint_gt(st.retired_segments, 0);
  ck_assert_uint_eq(st.compactions, 2);
  ck_assert_uint_eq(st.live_keys, NKEY / 2);
  hkv_close(r);
  ck_rc(hkv_stats_get(w, &st), HKV_OK);
  ck_assert_uint_eq(st.retired_segments, 0);
  ck_rc(hkv_put(w, "x", 1, "y", 1), HKV_OK);
  ck_rc(hkv_stats_get(w, &st), HKV_OK);
  ck_assert_uint_eq(st.retired_segments, 0);
  ck_assert_uint_eq(st.live_keys, NKEY / 2 + 1);
  hkv_close(w);
}
END_TEST

START_TEST(automatic_compaction) {
  hkv_db *db = openSmall(0.3);
  churn(db, 8);
  churn(db, 8);
  hkv_stats st;
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_gt(st.compactions, 0);
  checkStats(db, &st, "with automatic compaction");
  ck_assert_uint_eq(st.commits, nCommits);
  /* What is no longer in the files was reclaimed, and most of it is. */
  ck_assert_uint_ge(st.reclaimed_bytes, nLogBytes - st.total_bytes);
  ck_assert_uint_lt(st.total_bytes, nLogBytes / 8);
  checkModel(db, "with automatic compaction");
  hkv_close(db);
  db = openSmall(0.3);
  checkModel(db, "reopened");
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

static void forEachFile(const char *zExt, void (*x)(const char *)) {
  DIR *d = opendir(zStore);
  struct dirent *pEnt;
  while ((pEnt = readdir(d)) != 0) {
    size_t l = strlen(pEnt->d_name);
    if (l > 4 && !strcmp(pEnt->d_name + l - 4, zExt)) {
      char z[600];
      snprintf(z, sizeof(z), "%s/%s", zStore, pEnt->d_name);
      x(z);
    }
  }
  closedir(d);
}

static void removeFile(const char *z) { ck_assert_int_eq(unlink(z), 0); }
static void damageFile(const char *z) {
  FILE *f = fopen(z, "r+b");
  fseek(f, 20, SEEK_SET);
  fputc(0x5A, f);
  fclose(f);
}

START_TEST(hint_files_and_their_loss) {
  hkv_db *db = openSmall(0);
  churn(db, 2);
  ck_rc(hkv_compact(db), HKV_OK);
  hkv_close(db);
  ck_assert_int_gt(countFiles(".hkh"), 0);
  ck_assert_int_eq(countFiles(".hkh"), countFiles(".hkc"));
  db = openSmall(0);
  checkModel(db, "opened from hints");
  hkv_close(db);
  forEachFile(".hkh", damageFile);
  db = openSmall(0);
  checkModel(db, "damaged hints");
  hkv_close(db);
  forEachFile(".hkh", removeFile);
  db = openSmall(0);
  checkModel(db, "no hints");
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
}
END_TEST

START_TEST(segment_hints_replay_transactions) {
  /* Sealed segments get hints a step at a time after commits; a reopen
  ** replays them instead of the segments, transactions and all. */
  hkv_db *db = openSmall(0);
  char k[32], v[400];
  memset(v, 'h', sizeof(v));
  for (int i = 0; i < NKEY; i++) aModel[i] = -1;
  ck_rc(hkv_begin(db), HKV_OK); /* a transaction across many segments */
  for (int i = 0; i < 300; i++) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(hkv_put(db, k, strlen(k), v, 100 + (size_t)i), HKV_OK);
    if (i == 150) ck_rc(hkv_savepoint(db, 0), HKV_OK);
  }
  ck_rc(hkv_rollback_to(db, 0), HKV_OK); /* keeps 0..150 */
  ck_rc(hkv_commit(db), HKV_OK);
  ck_rc(hkv_begin(db), HKV_OK); /* a revoked commit */
  ck_rc(hkv_put(db, "key-1", 5, "revoked", 7), HKV_OK);
  ck_rc(hkv_prepare(db), HKV_OK);
  ck_rc(hkv_rollback(db), HKV_OK);
  for (int i = 0; i < 100; i += 3) {
    snprintf(k, sizeof(k), "key-%d", i);
    ck_rc(hkv_delete(db, k, strlen(k)), HKV_OK);
  }
  for (int i = 0; i < 200; i++) { /* commits that drive the hint steps */
    ck_rc(hkv_put(db, "tick", 4, v, 300), HKV_OK);
  }
  hkv_close(db);
  ck_assert_int_gt(countFiles(".hkh"), 5);
  for (int pass = 0; pass < 3; pass++) {
    if (pass == 1) forEachFile(".hkh", damageFile);
    if (pass == 2) forEachFile(".hkh", removeFile);
    db = openSmall(0);
    for (int i = 0; i < 300; i++) {
      snprintf(k, sizeof(k), "key-%d", i);
      const void *p;
      size_t n;
      int rc = hkv_get(db, k, strlen(k), &p, &n);
      int bWant = i <= 150 && !(i < 100 && i % 3 == 0);
      ck_assert_msg(rc == (bWant ? HKV_OK : HKV_NOTFOUND), "pass %d %s: %s",
                    pass, k, hkv_codename(rc));
      if (bWant) ck_assert_uint_eq(n, 100 + (size_t)i);
    }
    ck_rc(hkv_integrity_check(db), HKV_OK);
    hkv_close(db);
  }
}
END_TEST

/* ---- a crash at every step ---- */

static int nCrashAt, nCrashSeen;
static void crashHook(const char *zWhere) {
  (void)zWhere;
  if (++nCrashSeen == nCrashAt) _exit(9);
}

START_TEST(crash_at_every_step_of_a_compaction) {
  hkv_db *db = openSmall(0);
  churn(db, 3);
  hkv_close(db);
  int bDone = 0;
  for (nCrashAt = 1; !bDone && nCrashAt < 10000; nCrashAt++) {
    pid_t pid = fork();
    if (pid == 0) {
      nCrashSeen = 0;
      hkvTestCrashHook = crashHook;
      hkv_db *c = openSmall(0);
      if (hkv_compact(c) != HKV_OK) _exit(3);
      hkv_close(c);
      _exit(7); /* ran to the end without reaching the crash point */
    }
    int status;
    waitpid(pid, &status, 0);
    ck_assert(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    ck_assert_msg(code == 9 || code == 7, "child exited %d at step %d", code,
                  nCrashAt);
    bDone = code == 7;
    db = openSmall(0);
    char zWhen[64];
    snprintf(zWhen, sizeof(zWhen), "crash at step %d", nCrashAt);
    checkModel(db, zWhen);
    ck_rc(hkv_integrity_check(db), HKV_OK);
    hkv_close(db);
    /* Nothing of an interrupted compaction is left behind. */
    if (code == 9) {
      struct stat st;
      char z[600];
      snprintf(z, sizeof(z), "%s/MANIFEST.tmp", zStore);
      ck_assert_int_ne(stat(z, &st), 0);
    }
  }
  ck_assert(bDone);
  ck_assert_int_gt(nCrashAt, 5);
}
END_TEST

/* Flips a byte of the value of key zKey's first record in segment 1. */
static void damageFirstRecordOf(const char *zKey) {
  char z[600];
  snprintf(z, sizeof(z), "%s/00000001.hkd", zStore);
  FILE *f = fopen(z, "r+b");
  ck_assert_ptr_nonnull(f);
  static char a[1 << 16];
  size_t n = fread(a, 1, sizeof(a), f);
  char *p = memmem(a, n, zKey, strlen(zKey));
  ck_assert_ptr_nonnull(p);
  long iOff = (long)(p - a) + (long)strlen(zKey) + 2; /* inside the value */
  fseek(f, iOff, SEEK_SET);
  int ch = fgetc(f);
  fseek(f, iOff, SEEK_SET);
  fputc(ch ^ 1, f);
  fclose(f);
}

/* A live record damaged while the store was closed, then opened from the
** hints, which read no record: the first read of it finds the damage.
** hkv_get returns CORRUPT naming the file (each time), every other key
** reads, a scan stops with CORRUPT, and integrity-check finds it too. */
START_TEST(damaged_record_read_after_hint_open) {
  hkv_db *db = openSmall(0);
  churn(db, 1); /* odd keys live, even keys deleted */
  hkv_close(db);
  struct stat st;
  char z[600];
  snprintf(z, sizeof(z), "%s/00000001.hkh", zStore);
  ck_assert_int_eq(stat(z, &st), 0); /* segment 1 opens from its hint */
  damageFirstRecordOf("key-1");
  db = openSmall(0);
  const void *p;
  size_t n;
  for (int i = 0; i < 2; i++) {
    ck_rc(hkv_get(db, "key-1", 5, &p, &n), HKV_CORRUPT);
    ck_assert_msg(strstr(hkv_errmsg(db), "00000001.hkd"), "%s", hkv_errmsg(db));
  }
  aModel[1] = -2; /* checked above */
  char k[32], v[64];
  for (int i = 0; i < NKEY; i++) {
    if (aModel[i] == -2) continue;
    snprintf(k, sizeof(k), "key-%d", i);
    int rc = hkv_get(db, k, strlen(k), &p, &n);
    if (aModel[i] < 0) {
      ck_assert_msg(rc == HKV_NOTFOUND, "%s: %s", k, hkv_codename(rc));
    } else {
      val(v, i, aModel[i]);
      ck_assert_msg(rc == HKV_OK && n == strlen(v) && !memcmp(p, v, n),
                    "%s: %s", k, hkv_codename(rc));
    }
  }
  hkv_iter *it;
  ck_rc(hkv_iter_open(db, &it), HKV_OK);
  const void *pK, *pV;
  size_t nK, nV;
  int rc, nRows = 0;
  while ((rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) nRows++;
  ck_rc(rc, HKV_CORRUPT);
  ck_assert_int_lt(nRows, NKEY / 2);
  hkv_iter_close(it);
  ck_rc(hkv_integrity_check(db), HKV_CORRUPT);
  hkv_close(db);
}
END_TEST

/* A damaged live record: compaction checks every record it copies, stops,
** and switches nothing. */
START_TEST(bad_record_stops_compaction) {
  hkv_db *db = openSmall(0);
  churn(db, 1); /* odd keys live, even keys deleted */
  hkv_close(db);
  damageFirstRecordOf("key-1");
  hkv_options o;
  hkv_options_init(&o);
  o.segment_size = 16384;
  /* Opened from its hint, the damaged segment is found by compaction,
  ** and nothing is switched. */
  ck_rc(hkv_open(zStore, &o, &db), HKV_OK);
  hkv_stats st0, st;
  ck_rc(hkv_stats_get(db, &st0), HKV_OK);
  ck_rc(hkv_compact(db), HKV_CORRUPT);
  ck_assert(strstr(hkv_errmsg(db), "00000001.hkd") != NULL);
  ck_rc(hkv_stats_get(db, &st), HKV_OK);
  ck_assert_uint_eq(st.compactions, 0);
  ck_assert_uint_eq(st.reclaimed_bytes, 0);
  ck_assert_uint_eq(st.live_keys, NKEY / 2);
  ck_assert_uint_eq(st.live_bytes, st0.live_bytes);
  ck_assert_uint_eq(
      st.dead_bytes,
      st0.dead_bytes); /* (the active segment
                        ** was sealed first: a new, empty one may have come) */
  ck_assert_uint_eq(st.retired_segments, 0);
  hkv_close(db);
  /* Without the hint, the open finds it. */
  char z[600];
  snprintf(z, sizeof(z), "%s/00000001.hkh", zStore);
  unlink(z);
  ck_rc(hkv_open(zStore, &o, &db), HKV_CORRUPT);
  hkv_close(db);
}
END_TEST

/* A damaged dead record (of a deleted key): compaction drops it unread,
** as it drops every dead record, and every live key is intact. */
START_TEST(damaged_dead_record_is_dropped) {
  hkv_db *db = openSmall(0);
  churn(db, 1);
  hkv_close(db);
  damageFirstRecordOf("key-0");
  db = openSmall(0);
  ck_rc(hkv_compact(db), HKV_OK);
  checkModel(db, "after compaction");
  ck_rc(hkv_integrity_check(db), HKV_OK);
  hkv_close(db);
  db = openSmall(0);
  checkModel(db, "after reopen");
  hkv_close(db);
}
END_TEST

int main(void) {
  Suite *s = suite_create("compact");
  TCase *tc = tcase_create("compact");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, compaction_keeps_every_key_and_frees_space);
  tcase_add_test(tc, tombstones_do_not_resurrect_keys);
  tcase_add_test(tc, readers_and_scans_during_compaction);
  tcase_add_test(tc, automatic_compaction);
  tcase_add_test(tc, hint_files_and_their_loss);
  tcase_add_test(tc, segment_hints_replay_transactions);
  tcase_add_test(tc, crash_at_every_step_of_a_compaction);
  tcase_add_test(tc, damaged_record_read_after_hint_open);
  tcase_add_test(tc, bad_record_stops_compaction);
  tcase_add_test(tc, damaged_dead_record_is_dropped);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
