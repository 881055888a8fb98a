/*
** test_crash.c: processes killed at random instants. A child commits
** transactions through SQL and reports each one on a pipe once COMMIT has
** returned; the parent SIGKILLs it after a random delay, reopens the store
** and checks that every reported commit is there, that the one in flight is
** wholly there or wholly absent, and that nothing else changed.
**
** Transaction j: inserts ('t<j>-a', j) and ('t<j>-b', j), deletes 't<j-5>-a',
** and sets 'counter' to j. So a store whose counter is c holds exactly:
** counter = c, t<i>-b = i for 1 <= i <= c, t<i>-a = i for c-5 < i <= c.
**
** Quick by default (HKV_CRASH_KILLS=200); set HKV_CRASH_KILLS=5000 for the
** long run. Each run prints its seed (the kill delays); HKV_CRASH_SEED=n
** runs with seed n, for the same delays (where the kills land still depends
** on the machine's timing).
**
** A SIGKILL leaves the page cache intact, so this test cannot tell
** sync=full from sync=normal; test_sqlpower cuts the power under SQL.
*/
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <time.h>

#include "testutil.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

static char zDb[400];
static unsigned iCrashSeed; /* this run's, for the failure messages */

static void setup(void) {
  testDirSetup();
  snprintf(zDb, sizeof(zDb), "%s/crash.db", zTestDir);
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
}
static void teardown(void) { testDirTeardown(); }

static sqlite3_int64 counterOf(sqlite3 *db) {
  sqlite3_stmt *p = 0;
  sqlite3_int64 c = 0;
  if (sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = 'counter'", -1,
                         &p, 0) == SQLITE_OK &&
      sqlite3_step(p) == SQLITE_ROW) {
    c = sqlite3_column_int64(p, 0);
  }
  int rc = sqlite3_finalize(p);
  ck_assert_msg(rc == SQLITE_OK, "reading the counter: %s", sqlite3_errmsg(db));
  return c;
}

static void childMain(int fdOut, const char *zSync) {
  sqlite3 *db = 0;
  if (sqlite3_open(zDb, &db) != SQLITE_OK) _exit(2);
  sqlite3_int64 j = counterOf(db);
  /* Open: the parent's clock starts now, so a slow start (a loaded machine,
  ** a sanitizer) does not eat the time the kill leaves for commits. */
  if (write(fdOut, &j, sizeof(j)) != sizeof(j)) _exit(4);
  char zSql[400];
  for (;;) {
    j++;
    snprintf(zSql, sizeof(zSql),
             "BEGIN;"
             "INSERT INTO kv VALUES('t%lld-a', %lld), ('t%lld-b', %lld);"
             "DELETE FROM kv WHERE key = 't%lld-a';"
             "INSERT OR REPLACE INTO kv VALUES('counter', %lld);"
             "COMMIT;",
             (long long)j, (long long)j, (long long)j, (long long)j,
             (long long)(j - 5), (long long)j);
    if (sqlite3_exec(db, zSql, 0, 0, 0) != SQLITE_OK) _exit(3);
    if (write(fdOut, &j, sizeof(j)) != sizeof(j)) _exit(4);
  }
  (void)zSync;
}

/* Checks the store against the rule above; returns the counter. */
static sqlite3_int64 checkStore(sqlite3_int64 nReported, int iKill) {
  sqlite3 *db = 0;
  ck_assert_int_eq(sqlite3_open(zDb, &db), SQLITE_OK);
  sqlite3_int64 c = counterOf(db);
  ck_assert_msg(c == nReported || c == nReported + 1,
                "seed %u, kill %d: counter %lld, reported %lld", iCrashSeed,
                iKill, (long long)c, (long long)nReported);
  sqlite3_stmt *p = 0;
  ck_assert_int_eq(
      sqlite3_prepare_v2(db, "SELECT key, value FROM kv", -1, &p, 0),
      SQLITE_OK);
  sqlite3_int64 nRows = 0;
  while (sqlite3_step(p) == SQLITE_ROW) {
    const char *zKey = (const char *)sqlite3_column_text(p, 0);
    sqlite3_int64 v = sqlite3_column_int64(p, 1);
    nRows++;
    if (!strcmp(zKey, "counter")) continue;
    long long i = 0;
    char cSide = 0;
    ck_assert_msg(sscanf(zKey, "t%lld-%c", &i, &cSide) == 2, "odd key %s",
                  zKey);
    ck_assert_msg(v == i && i >= 1 && i <= c,
                  "seed %u, kill %d: %s = %lld (c=%lld)", iCrashSeed, iKill,
                  zKey, (long long)v, (long long)c);
    if (cSide == 'a') {
      ck_assert_msg(i > c - 5, "seed %u, kill %d: %s should be deleted",
                    iCrashSeed, iKill, zKey);
    }
  }
  sqlite3_finalize(p);
  sqlite3_int64 nWant = c == 0 ? 0 : 1 + c + (c < 5 ? c : 5);
  ck_assert_msg(nRows == nWant, "seed %u, kill %d: %lld rows, wanted %lld",
                iCrashSeed, iKill, (long long)nRows, (long long)nWant);
  sqlite3_close(db);
  return c;
}

static void killLoop(const char *zSync) {
  const char *zN = getenv("HKV_CRASH_KILLS");
  int nKills = zN ? atoi(zN) : 200;
  sqlite3 *db = 0;
  char zSql[200];
  ck_assert_int_eq(sqlite3_open(zDb, &db), SQLITE_OK);
  snprintf(zSql, sizeof(zSql),
           "CREATE VIRTUAL TABLE kv USING hashkv(sync=%s, segment_size=65536)",
           zSync);
  ck_assert_int_eq(sqlite3_exec(db, zSql, 0, 0, 0), SQLITE_OK);
  sqlite3_close(db);
  const char *zSeed = getenv("HKV_CRASH_SEED");
  unsigned iSeed = zSeed ? (unsigned)strtoul(zSeed, 0, 10) : (unsigned)time(0);
  fprintf(stderr, "sync=%s: seed %u (HKV_CRASH_SEED=%u replays it)\n", zSync,
          iSeed, iSeed);
  srand(iSeed);
  iCrashSeed = iSeed;
  sqlite3_int64 nReported = 0;
  for (int k = 0; k < nKills; k++) {
    int aPipe[2];
    ck_assert_int_eq(pipe(aPipe), 0);
    pid_t pid = fork();
    if (pid == 0) {
      close(aPipe[0]);
      childMain(aPipe[1], zSync);
    }
    close(aPipe[1]);
    sqlite3_int64 j;
    if (read(aPipe[0], &j, sizeof(j)) == sizeof(j)) nReported = j;
    usleep((useconds_t)(1000 + rand() % 15000));
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    ck_assert_msg(WIFSIGNALED(status), "child exited with %d",
                  WEXITSTATUS(status));
    while (read(aPipe[0], &j, sizeof(j)) == sizeof(j)) nReported = j;
    close(aPipe[0]);
    sqlite3_int64 c = checkStore(nReported, k);
    nReported = c; /* the in-flight one, if it landed, counts from now */
  }
  fprintf(stderr, "sync=%s: %d kills, %lld transactions committed\n", zSync,
          nKills, (long long)nReported);
  ck_assert_int_gt(nReported, nKills / 4);
}

START_TEST(killed_while_committing_sync_normal) { killLoop("normal"); }
END_TEST
START_TEST(killed_while_committing_sync_full) { killLoop("full"); }
END_TEST

int main(void) {
  Suite *s = suite_create("crash");
  TCase *tc = tcase_create("crash");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 3600);
  tcase_add_test(tc, killed_while_committing_sync_normal);
  tcase_add_test(tc, killed_while_committing_sync_full);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
