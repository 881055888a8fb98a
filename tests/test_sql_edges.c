/*
** test_sql_edges.c: the SQL module where a script cannot reach: read-only
** connections, a store that refuses writes after an I/O error, damage
** found by hashkv_check(), a process dying after a COMMIT that got
** SQLITE_BUSY, and (run as "test_sql_edges rofs", its own ctest entry) a
** store on a read-only file system, or one the process may not write.
**
** The rofs test mounts a tmpfs and changes user, which needs root (CI runs
** as root); where it cannot, it says so and exits 77, which ctest reports
** as skipped.
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

/* ---- helpers ---- */

static sqlite3 *openDb(const char *zFile, int flags) {
  sqlite3 *db = 0;
  int rc = sqlite3_open_v2(zFile, &db, flags, 0);
  ck_assert_msg(rc == SQLITE_OK, "open %s: %s", zFile, sqlite3_errmsg(db));
  sqlite3_busy_timeout(db, 0);
  return db;
}

/* Runs zSql; returns the extended code. */
static int exec(sqlite3 *db, const char *zSql) {
  sqlite3_exec(db, zSql, 0, 0, 0);
  return sqlite3_extended_errcode(db);
}

static void execOk(sqlite3 *db, const char *zSql) {
  int rc = sqlite3_exec(db, zSql, 0, 0, 0);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", zSql, sqlite3_errmsg(db));
}

/* The rows of zSql as "a|b\n" lines, or "Error: <message>". Static. */
static const char *rows(sqlite3 *db, const char *zSql) {
  static char zOut[4096];
  size_t n = 0;
  sqlite3_stmt *pStmt = 0;
  zOut[0] = 0;
  int rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  while (rc == SQLITE_OK && (rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
    for (int i = 0; i < sqlite3_column_count(pStmt); i++) {
      const char *z = (const char *)sqlite3_column_text(pStmt, i);
      n += (size_t)snprintf(zOut + n, sizeof(zOut) - n, "%s%s", i ? "|" : "",
                            z ? z : "");
      if (n >= sizeof(zOut)) n = sizeof(zOut) - 1;
    }
    n += (size_t)snprintf(zOut + n, sizeof(zOut) - n, "\n");
    if (n >= sizeof(zOut)) n = sizeof(zOut) - 1;
    rc = SQLITE_OK;
  }
  if (rc != SQLITE_DONE) {
    snprintf(zOut, sizeof(zOut), "Error: %s", sqlite3_errmsg(db));
  }
  sqlite3_finalize(pStmt);
  return zOut;
}

#define ck_rows(db, zSql, zWant)                                         \
  do {                                                                   \
    const char *zGot_ = rows(db, zSql);                                  \
    ck_assert_msg(!strcmp(zGot_, zWant), "%s\n got: %s\nwant: %s", zSql, \
                  zGot_, zWant);                                         \
  } while (0)

static char zDbFile[320];

static void setup(void) {
  testDirSetup();
  snprintf(zDbFile, sizeof(zDbFile), "%s/test.db", zTestDir);
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
}

static void teardown(void) {
  hkvEnvInstall(NULL);
  testDirTeardown();
}

#define RW (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)

/* ---- hashkv_check() where the INSERT command cannot run ---- */

START_TEST(check_on_readonly_connection) {
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv;"
         "INSERT INTO kv VALUES(1, 'a'), (2, 'b');");
  sqlite3_close(db);
  db = openDb(zDbFile, SQLITE_OPEN_READONLY);
  /* Both functions work as the connection's first statement. */
  ck_rows(db, "SELECT * FROM hashkv_check('kv')", "ok\n");
  ck_rows(db,
          "SELECT value FROM hashkv_stats('main.kv') "
          "WHERE name = 'live_keys'",
          "2\n");
  ck_assert_int_eq(exec(db, "INSERT INTO kv(kv) VALUES('integrity-check')"),
                   SQLITE_READONLY);
  ck_rows(db, "SELECT * FROM hashkv_check('kv')", "ok\n");
  sqlite3_close(db);
}
END_TEST

/* hashkv_backup reads only: a read-only connection backs a table up. */
START_TEST(backup_on_readonly_connection) {
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv;"
         "INSERT INTO kv VALUES(1, 'a'), (2, x'00');");
  sqlite3_close(db);
  db = openDb(zDbFile, SQLITE_OPEN_READONLY);
  ck_rows(db, "SELECT hashkv_backup('kv', 'copy') LIKE '%/copy'", "1\n");
  ck_assert_int_eq(exec(db, "INSERT INTO kv VALUES(3, 'c')"), SQLITE_READONLY);
  sqlite3_close(db);
  db = openDb(zDbFile, RW);
  execOk(db, "CREATE VIRTUAL TABLE c USING hashkv(path='copy')");
  ck_rows(db, "SELECT key, quote(value) FROM c ORDER BY key",
          "1|'a'\n2|X'00'\n");
  ck_rows(db, "SELECT * FROM hashkv_check('c')", "ok\n");
  sqlite3_close(db);
}
END_TEST

/* ---- hashkv_backup_database beside a writer ----
** A writer process commits as fast as it can transactions i = 1, 2, ...
** each inserting i into a native table n and into two hashkv tables (one
** at the default location, one at a path). Each copy must hold exactly the
** first m transactions in all three tables, with m at least the commits
** acknowledged before the backup began and at most one more than those
** acknowledged when it ended; and the copy's tables must read their own
** stores (deleting from the copy leaves the original whole). */

typedef struct DbShared {
  _Atomic long nAcked;
  _Atomic int bStop;
  _Atomic int iFailed; /* the writer's error code, 0 */
} DbShared;

/* bPause: a writer that begins its next transaction the instant the last
** one ends starves every other writer (SQLite's busy handler polls; there
** is no lock queue), the backup's lock among them (seen in both journal
** modes, under ASan): it then pauses 0.2 ms between transactions. */
static void dbWriter(DbShared *sh, int bPause) {
  sqlite3 *db = 0;
  if (sqlite3_open(zDbFile, &db) != SQLITE_OK) {
    atomic_store(&sh->iFailed, -1);
    return;
  }
  sqlite3_busy_timeout(db, 20000);
  pid_t parent = getppid();
  for (long i = 1; !atomic_load(&sh->bStop) && getppid() == parent; i++) {
    char *zSql = sqlite3_mprintf(
        "BEGIN IMMEDIATE; INSERT INTO n VALUES(%ld); INSERT INTO kv "
        "VALUES(%ld, %ld); INSERT INTO kw VALUES(%ld, 'w'); COMMIT;",
        i, i, i, i);
    int rc = sqlite3_exec(db, zSql, 0, 0, 0);
    sqlite3_free(zSql);
    if (rc) {
      atomic_store(&sh->iFailed, sqlite3_extended_errcode(db));
      break;
    }
    atomic_store(&sh->nAcked, i);
    if (bPause) usleep(200);
  }
  sqlite3_close(db);
}

static long oneLong(sqlite3 *db, const char *zSql) {
  const char *z = rows(db, zSql);
  ck_assert_msg(strncmp(z, "Error", 5) != 0, "%s: %s", zSql, z);
  return atol(z);
}

static void backupDatabaseBesideWriter(const char *zMode) {
  sqlite3 *db = openDb(zDbFile, RW);
  char zSetup[300];
  snprintf(zSetup, sizeof(zSetup),
           "PRAGMA journal_mode=%s; CREATE TABLE n(i INTEGER PRIMARY KEY);"
           "CREATE VIRTUAL TABLE kv USING hashkv(sync=off);"
           "CREATE VIRTUAL TABLE kw USING hashkv(path='kwstore', sync=off)",
           zMode);
  execOk(db, zSetup);
  sqlite3_busy_timeout(db, 20000);
  DbShared *sh = mmap(0, sizeof(DbShared), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert_ptr_ne(sh, MAP_FAILED);
  memset(sh, 0, sizeof(*sh));
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    dbWriter(sh, 1);
    _exit(0);
  }
  for (int b = 0; b < 5; b++) {
    long nWant = atomic_load(&sh->nAcked) + 20;
    for (int n = 0; atomic_load(&sh->nAcked) < nWant && n < 60000; n++) {
      testNap();
    }
    ck_assert_int_eq(atomic_load(&sh->iFailed), 0);
    char zCopy[64], zSql[200], zPath[400];
    snprintf(zCopy, sizeof(zCopy), "copy%d.db", b);
    snprintf(zSql, sizeof(zSql), "SELECT hashkv_backup_database('%s')", zCopy);
    long a0 = atomic_load(&sh->nAcked);
    const char *zGot = rows(db, zSql);
    long a1 = atomic_load(&sh->nAcked);
    ck_assert_msg(strncmp(zGot, "Error", 5) != 0, "%s", zGot);
    snprintf(zPath, sizeof(zPath), "%s/%s", zTestDir, zCopy);
    sqlite3 *c = openDb(zPath, RW);
    long m = oneLong(c, "SELECT count(*) FROM n");
    ck_assert_msg(m >= a0 && m <= a1 + 1, "copy holds %ld; %ld..%ld acked", m,
                  a0, a1);
    ck_assert_int_eq(oneLong(c, "SELECT max(i) FROM n"), m);
    ck_assert_int_eq(oneLong(c, "SELECT count(*) FROM kv"), m);
    ck_assert_int_eq(oneLong(c, "SELECT max(key) FROM kv"), m);
    ck_assert_int_eq(oneLong(c, "SELECT count(*) FROM kw"), m);
    ck_assert_int_eq(oneLong(c, "SELECT max(key) FROM kw"), m);
    ck_rows(c, "SELECT * FROM hashkv_check('kv')", "ok\n");
    ck_rows(c, "SELECT * FROM hashkv_check('kw')", "ok\n");
    ck_rows(c, "SELECT kind FROM kw_hashkv", "id\n");
    execOk(c, "DELETE FROM kv; DELETE FROM kw");
    sqlite3_close(c);
    ck_assert_int_ge(oneLong(db, "SELECT count(*) FROM kw"), m);
    ck_assert_int_ge(oneLong(db, "SELECT count(*) FROM kv"), m);
  }
  atomic_store(&sh->bStop, 1);
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_int_eq(atomic_load(&sh->iFailed), 0);
  /* Refusals: an existing file, inside a transaction, a bad schema. */
  ck_rows(db, "SELECT hashkv_backup_database('copy0.db')",
          "Error: hashkv_backup_database: copy0.db: exists already");
  execOk(db, "BEGIN");
  ck_rows(db, "SELECT count(*) FROM n WHERE 0", "0\n");
  ck_rows(db, "SELECT hashkv_backup_database('other.db')",
          "Error: hashkv_backup_database: not inside a transaction");
  execOk(db, "COMMIT");
  ck_rows(db, "SELECT hashkv_backup_database('other.db', 'nosuch')",
          "Error: hashkv_backup_database: no such database: nosuch");
  sqlite3_close(db);
  munmap(sh, sizeof(DbShared));
}

/* A file that takes the copy's name while the backup waits for the lock is
** neither written nor removed: the copy is built under a name of its own
** and given copy.db only if that name is still free. */
/* A schema that cannot be read for a lock is SQLITE_BUSY, in about the
** busy_timeout, not "no such table". */
START_TEST(backup_of_a_locked_database_is_busy) {
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db, "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 2)");
  sqlite3 *pLock = openDb(zDbFile, RW);
  execOk(pLock, "BEGIN EXCLUSIVE; CREATE TABLE n(i)");
  sqlite3_busy_timeout(db, 100);
  int rc = exec(db, "SELECT hashkv_backup('kv', 'lx')");
  ck_assert_msg(rc == SQLITE_BUSY, "%d: %s", rc, sqlite3_errmsg(db));
  ck_assert_msg(strstr(sqlite3_errmsg(db), "locked") != NULL, "%s",
                sqlite3_errmsg(db));
  execOk(pLock, "ROLLBACK");
  ck_rows(db, "SELECT hashkv_backup('kv', 'lx') LIKE '%lx'", "1\n");
  sqlite3_close(pLock);
  sqlite3_close(db);
}
END_TEST

START_TEST(backup_database_never_replaces_a_file) {
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db, "PRAGMA journal_mode=WAL; CREATE VIRTUAL TABLE kv USING hashkv;"
             "INSERT INTO kv VALUES(1, 'one'), (2, 'two')");
  sqlite3_close(db); /* no connection crosses the fork */
  char zLate[400];
  snprintf(zLate, sizeof(zLate), "%s/late.db", zTestDir);
  int aGo[2];
  ck_assert_int_eq(pipe(aGo), 0);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char c1;
    if (read(aGo[0], &c1, 1) != 1) _exit(4); /* the lock is held */
    sqlite3 *c = 0;
    if (sqlite3_open(zDbFile, &c) != SQLITE_OK) _exit(3);
    sqlite3_busy_timeout(c, 20000);
    int rc = sqlite3_exec(c, "SELECT hashkv_backup_database('late.db')", 0, 0,
                          0);
    int bExists = rc != SQLITE_OK && strstr(sqlite3_errmsg(c), "exists");
    if (rc && !bExists) fprintf(stderr, "backup: %s\n", sqlite3_errmsg(c));
    _exit(rc == SQLITE_OK ? 1 : bExists ? 0 : 2);
  }
  /* A writer holds the database (WAL: the waiting backup's reads do not
  ** hold up its COMMIT) while the copy's name is taken. */
  sqlite3 *pLock = openDb(zDbFile, RW);
  execOk(pLock, "BEGIN IMMEDIATE; CREATE TABLE n(i)");
  ck_assert_int_eq(write(aGo[1], "g", 1), 1);
  close(aGo[0]);
  close(aGo[1]);
  usleep(300000); /* the backup waits for pLock's write lock */
  static const char zPrecious[] = "the user's own file";
  int fd = open(zLate, O_WRONLY | O_CREAT | O_EXCL, 0644);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, zPrecious, sizeof(zPrecious)),
                   (int)sizeof(zPrecious));
  close(fd);
  execOk(pLock, "COMMIT");
  int st;
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "the backup: exit %d (0: refused as existing)",
                WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  char aGot[64] = {0};
  fd = open(zLate, O_RDONLY);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(read(fd, aGot, sizeof(aGot)), (int)sizeof(zPrecious));
  close(fd);
  ck_assert_str_eq(aGot, zPrecious);
  /* Nothing of the failed copy is left: no partial file, no store folder. */
  db = openDb(zDbFile, RW);
  ck_rows(db, "SELECT count(*) FROM kv", "2\n");
  char zCmd[600];
  snprintf(zCmd, sizeof(zCmd), "ls %s | grep -c '^late\\.db.' ", zTestDir);
  FILE *f = popen(zCmd, "r");
  ck_assert_ptr_nonnull(f);
  char zN[16] = {0};
  ck_assert_ptr_nonnull(fgets(zN, sizeof(zN), f));
  pclose(f);
  ck_assert_msg(atoi(zN) == 0, "files left beside late.db: %s", zN);
  sqlite3_close(pLock);
  sqlite3_close(db);
}
END_TEST

START_TEST(backup_database_rollback_journal) {
  backupDatabaseBesideWriter("delete");
}
END_TEST

START_TEST(backup_database_wal) { backupDatabaseBesideWriter("wal"); }
END_TEST

/* fsync fails with EIO while bSyncFails is set. */
static int bSyncFails;
static HkvEnv failEnv;
static int failSync(int fd) {
  return bSyncFails ? -EIO : hkvPosixEnv.xSync(fd);
}

START_TEST(check_after_io_error) {
  failEnv = hkvPosixEnv;
  failEnv.xSync = failSync;
  hkvEnvInstall(&failEnv);
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(sync=full);"
         "INSERT INTO kv VALUES(1, 'a'), (2, 'b');");
  bSyncFails = 1;
  ck_assert_int_eq(exec(db, "INSERT INTO kv VALUES(3, 'c')") & 0xff,
                   SQLITE_IOERR);
  bSyncFails = 0;
  /* The store refuses writes until reopened, the INSERT command too. */
  ck_assert_int_eq(exec(db, "INSERT INTO kv VALUES(4, 'd')") & 0xff,
                   SQLITE_IOERR);
  ck_assert_int_eq(
      exec(db, "INSERT INTO kv(kv) VALUES('integrity-check')") & 0xff,
      SQLITE_IOERR);
  ck_rows(db, "SELECT * FROM hashkv_check('kv')", "ok\n");
  ck_rows(db, "SELECT key FROM kv ORDER BY key", "1\n2\n");
  sqlite3_close(db);
}
END_TEST

START_TEST(check_reports_damage) {
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(path='kv.hkv');"
         "INSERT INTO kv VALUES(1, 'a value long enough to hit');");
  ck_rows(db, "SELECT * FROM hashkv_check('kv')", "ok\n");
  /* Flip a byte of the value in the open store's segment. */
  char zSeg[400];
  snprintf(zSeg, sizeof(zSeg), "%s/kv.hkv/00000001.hkd", zTestDir);
  int fd = open(zSeg, O_RDWR);
  ck_assert_int_ge(fd, 0);
  struct stat st;
  ck_assert_int_eq(fstat(fd, &st), 0);
  char aBuf[4096];
  ssize_t n = pread(fd, aBuf, sizeof(aBuf), 0);
  ck_assert_int_gt(n, 32);
  char *pHit = memmem(aBuf, (size_t)n, "long enough", 11);
  ck_assert_ptr_nonnull(pHit);
  char c = (char)(*pHit ^ 0x20);
  ck_assert_int_eq(pwrite(fd, &c, 1, pHit - aBuf), 1);
  close(fd);
  const char *zGot = rows(db, "SELECT * FROM hashkv_check('kv')");
  ck_assert_msg(strstr(zGot, "00000001.hkd") && strcmp(zGot, "ok\n") != 0,
                "hashkv_check gave: %s", zGot);
  ck_assert_int_eq(exec(db, "INSERT INTO kv(kv) VALUES('integrity-check')"),
                   SQLITE_CORRUPT_VTAB);
  sqlite3_close(db);
}
END_TEST

/* ---- a COMMIT that got SQLITE_BUSY leaves nothing durable ---- */

/* A child process writes kv and a native table in one transaction while a
** second connection reads, so COMMIT returns SQLITE_BUSY; then it dies
** without closing anything. Neither table may show the transaction. */
START_TEST(busy_commit_then_crash) {
  sqlite3 *db = openDb(zDbFile, RW);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(sync=normal);"
         "CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;");
  sqlite3_close(db);
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    sqlite3 *pReader = 0, *pWriter = 0;
    int rc = sqlite3_open(zDbFile, &pReader);
    if (rc == SQLITE_OK) rc = sqlite3_open(zDbFile, &pWriter);
    if (rc == SQLITE_OK) {
      rc = sqlite3_exec(pReader, "BEGIN; SELECT count(*) FROM n", 0, 0, 0);
    }
    if (rc == SQLITE_OK) {
      rc = sqlite3_exec(pWriter,
                        "BEGIN; INSERT INTO n VALUES(1, 'a');"
                        "INSERT INTO kv VALUES(1, 'a');",
                        0, 0, 0);
    }
    if (rc == SQLITE_OK) rc = sqlite3_exec(pWriter, "COMMIT", 0, 0, 0) + 100;
    /* Also a write after it, accepted. */
    if (rc == SQLITE_BUSY + 100) {
      rc =
          sqlite3_exec(pWriter, "INSERT INTO kv VALUES(2, 'b')", 0, 0, 0) + 200;
    }
    _exit(rc);
  }
  int status = 0;
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  db = openDb(zDbFile, RW);
  ck_rows(db, "SELECT count(*) FROM n", "0\n");
  ck_rows(db, "SELECT count(*) FROM kv", "0\n");
  ck_rows(db, "SELECT * FROM hashkv_check('kv')", "ok\n");
  sqlite3_close(db);
  ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 200,
                "child: %d (100 + the COMMIT's code, or 200 + a write's)",
                WEXITSTATUS(status));
}
END_TEST

/* ---- a store on a read-only file system ---- */

#define ROFS_PASS 0
#define ROFS_FAIL 1
#define ROFS_SKIP 77

static int nRofsFail;
#define rofs_check(x, ...)                                \
  do {                                                    \
    if (!(x)) {                                           \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #x); \
      printf(__VA_ARGS__);                                \
      printf("\n");                                       \
      nRofsFail++;                                        \
    }                                                     \
  } while (0)

/* The store lives on a tmpfs mounted for the test, the database file beside
** it on a writable one. With the tmpfs read-only, a writable connection
** reads the table, and writes fail with SQLITE_READONLY, saying why. */
static int rofsBody(const char *zMnt) {
  char zDb[400], zSql[600];
  snprintf(zDb, sizeof(zDb), "%s/test.db", zTestDir);
  sqlite3 *db = 0;
  sqlite3_open(zDb, &db);
  snprintf(zSql, sizeof(zSql),
           "CREATE VIRTUAL TABLE kv USING hashkv(path='%s/kv.hkv');"
           "INSERT INTO kv VALUES(1, 'a'), (2, 'b');",
           zMnt);
  int rc = sqlite3_exec(db, zSql, 0, 0, 0);
  rofs_check(rc == SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  if (mount(0, zMnt, 0, MS_REMOUNT | MS_RDONLY, 0) != 0) {
    printf("FAIL: cannot remount %s read-only: %s\n", zMnt, strerror(errno));
    return ROFS_FAIL;
  }
  sqlite3_open(zDb, &db);
  rofs_check(sqlite3_db_readonly(db, "main") == 0, "database is writable");
  const char *zGot = rows(db, "SELECT key, value FROM kv ORDER BY key");
  rofs_check(!strcmp(zGot, "1|a\n2|b\n"), "SELECT gave: %s", zGot);
  rc = sqlite3_exec(db, "INSERT INTO kv VALUES(3, 'c')", 0, 0, 0);
  rofs_check(rc == SQLITE_READONLY, "INSERT gave %d: %s", rc,
             sqlite3_errmsg(db));
  rofs_check(strstr(sqlite3_errmsg(db),
                    "kv.hkv is open read-only: it lies "
                    "on a read-only file system") != 0,
             "message: %s", sqlite3_errmsg(db));
  rc = sqlite3_exec(db, "INSERT INTO kv(kv) VALUES('compact')", 0, 0, 0);
  rofs_check(rc == SQLITE_READONLY, "compact gave %d: %s", rc,
             sqlite3_errmsg(db));
  snprintf(zSql, sizeof(zSql),
           "CREATE VIRTUAL TABLE kv2 USING hashkv(path='%s/kv2.hkv')", zMnt);
  rc = sqlite3_exec(db, zSql, 0, 0, 0);
  rofs_check(rc == SQLITE_CANTOPEN, "CREATE there gave %d: %s", rc,
             sqlite3_errmsg(db));
  zGot = rows(db, "SELECT * FROM hashkv_check('kv')");
  rofs_check(!strcmp(zGot, "ok\n"), "hashkv_check gave: %s", zGot);
  /* A native table in the same database still takes writes. */
  rc = sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)", 0, 0, 0);
  rofs_check(rc == SQLITE_OK, "native write: %s", sqlite3_errmsg(db));
  zGot = rows(db, "SELECT count(*) FROM kv");
  rofs_check(!strcmp(zGot, "2\n"), "count gave: %s", zGot);
  /* DROP takes the table out of the schema; a store a path names is never
  ** deleted (README), read-only or not, so its files stay as they were. */
  rc = sqlite3_exec(db, "DROP TABLE kv", 0, 0, 0);
  rofs_check(rc == SQLITE_OK, "DROP gave %d: %s", rc, sqlite3_errmsg(db));
  zGot = rows(db, "SELECT count(*) FROM sqlite_schema WHERE name LIKE 'kv%'");
  rofs_check(!strcmp(zGot, "0\n"), "schema after DROP: %s", zGot);
  snprintf(zSql, sizeof(zSql), "%s/kv.hkv/00000001.hkd", zMnt);
  struct stat st;
  rofs_check(stat(zSql, &st) == 0 && st.st_size > 0, "store files gone");
  sqlite3_close(db);
  return nRofsFail ? ROFS_FAIL : ROFS_PASS;
}

/* The same for a store this process may not write: the database file
** writable by everyone, the store only by root, read by a child process
** that has become nobody (uid 65534). */
static int accessBody(void) {
  char zDb[400];
  snprintf(zDb, sizeof(zDb), "%s/perm.db", zTestDir);
  sqlite3 *db = 0;
  sqlite3_open(zDb, &db);
  int rc = sqlite3_exec(db,
                        "CREATE VIRTUAL TABLE kv USING hashkv;"
                        "INSERT INTO kv VALUES(1, 'a');",
                        0, 0, 0);
  rofs_check(rc == SQLITE_OK, "%s", sqlite3_errmsg(db));
  sqlite3_close(db);
  if (chmod(zTestDir, 0777) != 0 || chmod(zDb, 0666) != 0) {
    printf("FAIL: chmod: %s\n", strerror(errno));
    return ROFS_FAIL;
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(ROFS_SKIP);
    nRofsFail = 0;
    sqlite3_open(zDb, &db);
    const char *zGot = rows(db, "SELECT key, value FROM kv");
    rofs_check(!strcmp(zGot, "1|a\n"), "SELECT gave: %s", zGot);
    rc = sqlite3_exec(db, "INSERT INTO kv VALUES(2, 'b')", 0, 0, 0);
    rofs_check(rc == SQLITE_READONLY &&
                   strstr(sqlite3_errmsg(db), "this process may not write"),
               "INSERT gave %d: %s", rc, sqlite3_errmsg(db));
    sqlite3_close(db);
    fflush(stdout);
    _exit(nRofsFail ? ROFS_FAIL : ROFS_PASS);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) {
    return ROFS_FAIL;
  }
  if (WEXITSTATUS(status) == ROFS_SKIP) {
    printf("SKIPPED part: cannot become uid 65534\n");
  }
  return WEXITSTATUS(status);
}

static int runRofs(void) {
  char zTmpl[] = "/tmp/hkvrofs.XXXXXX";
  if (!mkdtemp(zTmpl)) return ROFS_FAIL;
  snprintf(zTestDir, sizeof(zTestDir), "%s", zTmpl);
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
  char zMnt[300];
  snprintf(zMnt, sizeof(zMnt), "%s/mnt", zTestDir);
  int rc = ROFS_SKIP;
  if (mkdir(zMnt, 0700) != 0) {
    rc = ROFS_FAIL;
  } else if (mount("tmpfs", zMnt, "tmpfs", 0, "size=4m") != 0) {
    printf(
        "SKIPPED: cannot mount a tmpfs at %s (%s; needs root): the "
        "read-only file system test did not run\n",
        zMnt, strerror(errno));
  } else {
    rc = rofsBody(zMnt);
    if (umount2(zMnt, MNT_DETACH) != 0) {
      printf("FAIL: cannot unmount %s: %s\n", zMnt, strerror(errno));
      rc = ROFS_FAIL;
    }
    if (rc == ROFS_PASS) rc = accessBody();
  }
  rmTree(zTestDir);
  if (rc == ROFS_PASS) {
    printf("read-only file system and write-protected store: passed\n");
  }
  return rc;
}

static Suite *sqlEdgesSuite(void) {
  Suite *s = suite_create("sql_edges");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_add_test(tc, check_on_readonly_connection);
  tcase_add_test(tc, backup_on_readonly_connection);
  tcase_add_test(tc, backup_database_rollback_journal);
  tcase_add_test(tc, backup_database_wal);
  tcase_add_test(tc, backup_database_never_replaces_a_file);
  tcase_add_test(tc, backup_of_a_locked_database_is_busy);
  tcase_add_test(tc, check_after_io_error);
  tcase_add_test(tc, check_reports_damage);
  tcase_add_test(tc, busy_commit_then_crash);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "rofs")) return runRofs();
  return runSuite(sqlEdgesSuite());
}
