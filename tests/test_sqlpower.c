/*
** test_sqlpower.c: power loss under the SQL layer. The module, linked
** statically, runs on the simulated disk of simdisk.h, installed through
** the engine's HkvEnv seam as in test_faults. SQLite's own database file is
** not simulated: it holds only the schema here, and is SQLite's business.
**
** A connection commits transactions to a table with 4 KiB segments and
** automatic compaction (so commits rotate segments, write hints and
** compact), each inserting, overwriting (INSERT OR REPLACE and UPDATE) and
** deleting rows and setting a counter. After each acknowledged COMMIT the
** power goes (every unsynced sector and directory change lost, every other
** sector lost, or a random mix, in turn), or every fourth time it goes at an
** event inside the COMMIT; then the connection is closed, the disk's picture
** put in place, and a new connection must see the model: with sync=full,
** every acknowledged COMMIT (xSync, that is hkv_prepare, made it durable),
** the one the power interrupted whole or absent, nothing else. The same run
** with sync=normal must lose an acknowledged COMMIT: this check tells the
** two modes apart, which a SIGKILL (test_crash) cannot, since the page cache
** outlives the process.
*/
#include <sqlite3.h>

#include "simdisk.h"
#include "testutil.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

static char zDb[400];
static char zKv[420]; /* the table's store: its path option */

static void setup(void) {
  testDirSetup();
  snprintf(zDb, sizeof(zDb), "%s/power.db", zTestDir);
  snprintf(zKv, sizeof(zKv), "%s-kv.hkv", zDb);
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
}
static void teardown(void) {
  hkvEnvInstall(NULL);
  simDiskFree();
  testDirTeardown();
}

#define NSMALL 13
#define NBIG 3
#define BIGLEN 600

/* What the table holds: small keys 'k0'.. with integers, 'big0'.. with
** BIGLEN-digit texts of a commit number, and 'counter'. */
typedef struct Model {
  int abSmall[NSMALL]; /* present */
  long aSmall[NSMALL];
  long aBig[NBIG]; /* 0: absent */
  long nCounter;   /* 0: absent */
} Model;

/* Transaction j, as SQL and as its effect on m. */
static void txnSql(char *z, size_t n, long j) {
  snprintf(z, n,
           "BEGIN;"
           "INSERT OR REPLACE INTO kv VALUES('k%ld', %ld);"
           "DELETE FROM kv WHERE key = 'k%ld';"
           "INSERT OR REPLACE INTO kv VALUES('big%ld', printf('%%0%dd', %ld));"
           "UPDATE kv SET value = value + 1 WHERE key = 'k%ld';"
           "INSERT OR REPLACE INTO kv VALUES('counter', %ld);"
           "COMMIT;",
           j % NSMALL, j, (j * 5 + 3) % NSMALL, j % NBIG, BIGLEN, j,
           (j * 3 + 1) % NSMALL, j);
}
static void txnApply(Model *m, long j) {
  m->abSmall[j % NSMALL] = 1;
  m->aSmall[j % NSMALL] = j;
  m->abSmall[(j * 5 + 3) % NSMALL] = 0;
  m->aBig[j % NBIG] = j;
  if (m->abSmall[(j * 3 + 1) % NSMALL]) m->aSmall[(j * 3 + 1) % NSMALL]++;
  m->nCounter = j;
}

/* 1 if the table holds exactly m, else 0 with the difference in zWhy. */
static int tableIs(sqlite3 *db, const Model *m, char *zWhy, size_t nWhy) {
  sqlite3_stmt *p = 0;
  if (sqlite3_prepare_v2(db, "SELECT key, value FROM kv", -1, &p, 0) !=
      SQLITE_OK) {
    snprintf(zWhy, nWhy, "%s", sqlite3_errmsg(db));
    return 0;
  }
  int nWant = m->nCounter != 0, nRows = 0, bOk = 1, rc;
  for (int i = 0; i < NSMALL; i++) nWant += m->abSmall[i];
  for (int i = 0; i < NBIG; i++) nWant += m->aBig[i] != 0;
  while (bOk && (rc = sqlite3_step(p)) == SQLITE_ROW) {
    const char *zKey = (const char *)sqlite3_column_text(p, 0);
    long v = (long)sqlite3_column_int64(p, 1);
    int i = -1;
    char zBig[BIGLEN + 1];
    nRows++;
    if (sscanf(zKey, "k%d", &i) == 1 && i >= 0 && i < NSMALL) {
      bOk = m->abSmall[i] && m->aSmall[i] == v;
    } else if (sscanf(zKey, "big%d", &i) == 1 && i >= 0 && i < NBIG) {
      snprintf(zBig, sizeof(zBig), "%0*ld", BIGLEN, m->aBig[i]);
      bOk =
          m->aBig[i] && !strcmp((const char *)sqlite3_column_text(p, 1), zBig);
    } else {
      bOk = !strcmp(zKey, "counter") && v == m->nCounter;
    }
    if (!bOk) {
      snprintf(zWhy, nWhy, "row %s = %.20s is wrong", zKey,
               (const char *)sqlite3_column_text(p, 1));
    }
  }
  if (bOk && rc != SQLITE_DONE) {
    snprintf(zWhy, nWhy, "scan: %s", sqlite3_errmsg(db));
    bOk = 0;
  }
  sqlite3_finalize(p);
  if (bOk && nRows != nWant) {
    snprintf(zWhy, nWhy, "%d rows, wanted %d (counter %ld)", nRows, nWant,
             m->nCounter);
    bOk = 0;
  }
  return bOk;
}

static long statOf(sqlite3 *db, const char *zName) {
  sqlite3_stmt *p = 0;
  long v = -1;
  ck_assert_int_eq(
      sqlite3_prepare_v2(
          db, "SELECT value FROM hashkv_stats('kv') WHERE name = ?", -1, &p, 0),
      SQLITE_OK);
  sqlite3_bind_text(p, 1, zName, -1, SQLITE_STATIC);
  if (sqlite3_step(p) == SQLITE_ROW) v = (long)sqlite3_column_int64(p, 0);
  sqlite3_finalize(p);
  return v;
}

/* Commits nCommit transactions, a power cut after or inside each, and
** checks after each. Returns the number of the first COMMIT that was
** acknowledged and lost, 0 if none (checking stops at the first). */
static long powerLoop(const char *zSync, long nCommit) {
  sqlite3 *db = 0;
  char zSql[600];
  simDiskInstall(zKv);
  ck_assert_int_eq(sqlite3_open(zDb, &db), SQLITE_OK);
  snprintf(zSql, sizeof(zSql),
           "CREATE VIRTUAL TABLE kv USING hashkv(path='power.db-kv.hkv', "
           "sync=%s, segment_size=4096, "
           "auto_compact=0.3, auto_compact_min=0)",
           zSync);
  ck_assert_int_eq(sqlite3_exec(db, zSql, 0, 0, 0), SQLITE_OK);
  Model ok, tried;
  memset(&ok, 0, sizeof(ok));
  long nCompactions = 0, nInside = 0, nAckedInside = 0;
  for (long j = 1; j <= nCommit; j++) {
    int iHow = (int)((j - 1) % 3);
    int bInside = j % 4 == 0;
    /* Inside the COMMIT: at its 1st to 8th event (its flush, fsync, a
    ** rotation, hints and compaction after it). */
    simDiskCutAt(bInside ? 1 + (j / 4) % 8 : 0, iHow, (unsigned)j);
    tried = ok;
    txnApply(&tried, j);
    txnSql(zSql, sizeof(zSql), j);
    int rc = sqlite3_exec(db, zSql, 0, 0, 0);
    if (rc == SQLITE_OK) {
      ok = tried;
      if (!simDiskIsOff()) nCompactions += statOf(db, "compactions");
    } else {
      ck_assert_msg(bInside && simDiskIsOff(), "commit %ld: %s", j,
                    sqlite3_errmsg(db));
      sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
    }
    nInside += bInside;
    nAckedInside += bInside && rc == SQLITE_OK && simDiskIsOff();
    if (!simDiskIsOff()) simDiskCutNow(iHow);
    ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
    ck_assert_int_ge(simDiskSettle(), 0);

    simDiskInstall(zKv);
    ck_assert_int_eq(sqlite3_open(zDb, &db), SQLITE_OK);
    char zWhy[200] = "", zWhy2[200] = "";
    int bOk = tableIs(db, &ok, zWhy, sizeof(zWhy));
    if (!bOk && rc != SQLITE_OK)
      bOk = tableIs(db, &tried, zWhy2, sizeof(zWhy2));
    if (!bOk) {
      fprintf(stderr, "sync=%s: commit %ld (%s): %s%s%s\n", zSync, j,
              rc == SQLITE_OK ? "acknowledged" : "failed", zWhy,
              zWhy2[0] ? "; nor without it: " : "", zWhy2);
      sqlite3_close(db);
      return j;
    }
    /* The next transaction starts from what the store holds. */
    if (rc != SQLITE_OK && tableIs(db, &tried, zWhy, sizeof(zWhy))) ok = tried;
  }
  sqlite3_close(db);
  fprintf(stderr,
          "sync=%s: %ld commits, each followed by a power cut (%ld inside the "
          "COMMIT, %ld of them after it was durable); %ld compactions\n",
          zSync, nCommit, nInside, nAckedInside, nCompactions);
  ck_assert_int_gt(nCompactions, 0);
  return 0;
}

START_TEST(sync_full_commits_survive_power_loss) {
  long j = powerLoop("full", 48);
  ck_assert_msg(j == 0, "sync=full: acknowledged commit %ld lost", j);
}
END_TEST

/* The check is not blind: with sync=normal a COMMIT returns before any
** fsync, and the power cut takes it. */
START_TEST(sync_normal_commits_do_not) {
  long j = powerLoop("normal", 12);
  ck_assert_msg(j > 0, "sync=normal: no acknowledged commit lost");
}
END_TEST

int main(void) {
  Suite *s = suite_create("sqlpower");
  TCase *tc = tcase_create("sqlpower");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, sync_full_commits_survive_power_loss);
  tcase_add_test(tc, sync_normal_commits_do_not);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
