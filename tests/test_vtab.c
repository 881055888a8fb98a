/*
** test_vtab.c: the hashkv module through the SQLite C API, linked
** statically (-DSQLITE_CORE, sqlite3_auto_extension). Scans while writing,
** a commit that SQLite revokes after xSync, xConnect of a missing store,
** temporary stores, threads, and a differential test that runs long random
** statement sequences on kv and on a native table side by side.
*/
#include <dirent.h>
#include <pthread.h>
#include <sqlite3.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "hashkv.h"
#include "testutil.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

static char zDbPath[400];

static void setup(void) {
  testDirSetup();
  snprintf(zDbPath, sizeof(zDbPath), "%s/test.db", zTestDir);
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
}
static void teardown(void) { testDirTeardown(); }

static sqlite3 *openDb(void) {
  sqlite3 *db = 0;
  ck_assert_int_eq(sqlite3_open(zDbPath, &db), SQLITE_OK);
  sqlite3_busy_timeout(db, 0);
  return db;
}

static void execOk(sqlite3 *db, const char *zSql) {
  char *zErr = 0;
  int rc = sqlite3_exec(db, zSql, 0, 0, &zErr);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", zSql, zErr ? zErr : "?");
}

static sqlite3_int64 queryInt(sqlite3 *db, const char *zSql) {
  sqlite3_stmt *p = 0;
  ck_assert_int_eq(sqlite3_prepare_v2(db, zSql, -1, &p, 0), SQLITE_OK);
  int rc = sqlite3_step(p);
  ck_assert_msg(rc == SQLITE_ROW, "%s: %s", zSql, sqlite3_errmsg(db));
  sqlite3_int64 v = sqlite3_column_int64(p, 0);
  sqlite3_finalize(p);
  return v;
}

START_TEST(scan_while_writing_same_connection) {
  sqlite3 *db = openDb();
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(sync=off);"
         "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
         "WHERE i < 2000) INSERT INTO kv SELECT i, i FROM c;");
  sqlite3_stmt *pSel = 0, *pUpd = 0, *pIns = 0, *pDel = 0;
  ck_assert_int_eq(
      sqlite3_prepare_v2(db, "SELECT key, value FROM kv", -1, &pSel, 0),
      SQLITE_OK);
  sqlite3_prepare_v2(db, "UPDATE kv SET value = value + 1000000 WHERE key = ?",
                     -1, &pUpd, 0);
  sqlite3_prepare_v2(db, "INSERT INTO kv VALUES(?, 0)", -1, &pIns, 0);
  sqlite3_prepare_v2(db, "DELETE FROM kv WHERE key = ?", -1, &pDel, 0);
  static char aSeen[2001];
  memset(aSeen, 0, sizeof(aSeen));
  int nRows = 0;
  execOk(db, "BEGIN");
  while (sqlite3_step(pSel) == SQLITE_ROW) {
    sqlite3_int64 k = sqlite3_column_int64(pSel, 0);
    ck_assert(k >= 1 && k <= 2000);
    ck_assert_msg(!aSeen[k], "key %lld returned twice", (long long)k);
    aSeen[k] = 1;
    nRows++;
    /* Rewrite this row, add two new ones, delete one not yet seen. */
    sqlite3_bind_int64(pUpd, 1, k);
    ck_assert_int_eq(sqlite3_step(pUpd), SQLITE_DONE);
    sqlite3_reset(pUpd);
    for (int j = 0; j < 2; j++) {
      sqlite3_bind_int64(pIns, 1, 100000 + k * 2 + j);
      ck_assert_int_eq(sqlite3_step(pIns), SQLITE_DONE);
      sqlite3_reset(pIns);
    }
  }
  ck_assert_int_eq(sqlite3_finalize(pSel), SQLITE_OK);
  execOk(db, "COMMIT");
  ck_assert_int_eq(nRows, 2000);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 6000);
  ck_assert_int_eq(
      queryInt(db, "SELECT count(*) FROM kv WHERE value > 1000000"), 2000);
  sqlite3_finalize(pUpd);
  sqlite3_finalize(pIns);
  sqlite3_finalize(pDel);
  sqlite3_close(db);
}
END_TEST

static int failCommit(void *p) {
  (void)p;
  return 1; /* turn the COMMIT into a ROLLBACK, after xSync has run */
}

START_TEST(commit_revoked_after_xsync) {
  sqlite3 *db = openDb();
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(sync=full);"
         "CREATE TABLE t(x); INSERT INTO kv VALUES('kept', 1);");
  sqlite3_commit_hook(db, failCommit, 0);
  execOk(db,
         "BEGIN; INSERT INTO kv VALUES('revoked', 1);"
         "UPDATE kv SET value = 2 WHERE key = 'kept';"
         "INSERT INTO t VALUES(1);");
  ck_assert_int_eq(sqlite3_exec(db, "COMMIT", 0, 0, 0), SQLITE_CONSTRAINT);
  ck_assert_int_eq(sqlite3_extended_errcode(db), SQLITE_CONSTRAINT_COMMITHOOK);
  sqlite3_commit_hook(db, 0, 0);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
  ck_assert_int_eq(queryInt(db, "SELECT value FROM kv WHERE key = 'kept'"), 1);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM t"), 0);
  sqlite3_close(db);
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
  ck_assert_int_eq(queryInt(db, "SELECT value FROM kv WHERE key = 'kept'"), 1);
  execOk(db, "INSERT INTO kv VALUES('after', 1)");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 2);
  sqlite3_close(db);
}
END_TEST

START_TEST(connect_never_creates_a_store) {
  sqlite3 *db = openDb();
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(path='elsewhere.hkv');"
         "INSERT INTO kv VALUES(1, 1);");
  sqlite3_close(db);
  char zStore[500];
  snprintf(zStore, sizeof(zStore), "%s/elsewhere.hkv", zTestDir);
  rmTree(zStore);
  db = openDb();
  char *zErr = 0;
  int rc = sqlite3_exec(db, "SELECT * FROM kv", 0, 0, &zErr);
  ck_assert_int_ne(rc, SQLITE_OK);
  ck_assert_msg(strstr(zErr, "hashkv") && strstr(zErr, "elsewhere.hkv"), "%s",
                zErr);
  sqlite3_free(zErr);
  struct stat st;
  ck_assert_int_ne(stat(zStore, &st), 0); /* nothing was created */
  sqlite3_close(db);
}
END_TEST

/* Entries of directory zDir (0 if it does not exist). */
static int countIn(const char *zDir) {
  DIR *d = opendir(zDir);
  if (!d) return 0;
  int n = 0;
  struct dirent *pEnt;
  while ((pEnt = readdir(d)) != 0) {
    if (pEnt->d_name[0] != '.') n++;
  }
  closedir(d);
  return n;
}

/* Stores in the default folder beside test.db (test.db-hashkv/). */
static int countStores(void) {
  char z[500];
  snprintf(z, sizeof(z), "%s-hashkv", zDbPath);
  return countIn(z);
}

static int exists(const char *zPath) {
  struct stat st;
  return stat(zPath, &st) == 0;
}

/* The directory of table zTable's store at the default location beside
** database file zFile, read from its link (zTable_hashkv). */
static void storeDir(sqlite3 *db, const char *zFile, const char *zSchema,
                     const char *zTable, char *zOut, size_t nOut) {
  char zSql[300];
  snprintf(zSql, sizeof(zSql), "SELECT kind, dir FROM \"%s\".\"%s_hashkv\"",
           zSchema, zTable);
  sqlite3_stmt *p = 0;
  ck_assert_int_eq(sqlite3_prepare_v2(db, zSql, -1, &p, 0), SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(p), SQLITE_ROW);
  ck_assert_str_eq((const char *)sqlite3_column_text(p, 0), "id");
  snprintf(zOut, nOut, "%s-hashkv/%s", zFile, sqlite3_column_text(p, 1));
  sqlite3_finalize(p);
  ck_assert_msg(exists(zOut), "%s", zOut);
}

START_TEST(relative_path_follows_the_database) {
  sqlite3 *db = openDb();
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(path='rel.hkv');"
         "CREATE VIRTUAL TABLE dflt USING hashkv;"
         "INSERT INTO kv VALUES(1, 1); INSERT INTO dflt VALUES(1, 1);");
  sqlite3_close(db);
  char z[600];
  struct stat st;
  snprintf(z, sizeof(z), "%s/rel.hkv/00000001.hkd", zTestDir);
  ck_assert_int_eq(stat(z, &st), 0);
  db = openDb();
  storeDir(db, zDbPath, "main", "dflt", z, sizeof(z));
  sqlite3_close(db);
  strcat(z, "/00000001.hkd");
  ck_assert_int_eq(stat(z, &st), 0);
  /* From another working directory, the same stores. */
  ck_assert_int_eq(chdir("/"), 0);
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM dflt"), 1);
  sqlite3_close(db);
}
END_TEST

START_TEST(temporary_store_goes_with_the_connection) {
  char zTmp[500];
  snprintf(zTmp, sizeof(zTmp), "%s/tmp", zTestDir);
  mkdir(zTmp, 0700);
  setenv("TMPDIR", zTmp, 1);
  sqlite3 *db = 0;
  ck_assert_int_eq(sqlite3_open(":memory:", &db), SQLITE_OK);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv;"
         "INSERT INTO kv VALUES(1, 'one');"
         "CREATE TEMP TABLE t(x);");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
  /* kv, its link kv_hashkv, t, and the two schema tables */
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM pragma_table_list"), 5);
  sqlite3_close(db);
  unsetenv("TMPDIR");
  ck_assert_int_eq(rmdir(zTmp), 0); /* empty: the store is gone */
}
END_TEST

/* Two keys hold a total that transfers never change; readers in other
** connections and threads must always see the total. */
typedef struct Bank {
  _Atomic int bStop;
  int nBad, nReads, nBusy;
} Bank;

static void *bankReader(void *p) {
  Bank *b = p;
  sqlite3 *db = openDb();
  while (!b->bStop) {
    sqlite3_stmt *s = 0;
    if (sqlite3_prepare_v2(db, "SELECT sum(value) FROM kv", -1, &s, 0)) break;
    if (sqlite3_step(s) == SQLITE_ROW) {
      if (sqlite3_column_int64(s, 0) != 1000) __sync_fetch_and_add(&b->nBad, 1);
      __sync_fetch_and_add(&b->nReads, 1);
    }
    sqlite3_finalize(s);
  }
  sqlite3_close(db);
  return 0;
}

static void *bankWriter(void *p) {
  Bank *b = p;
  sqlite3 *db = openDb();
  for (int i = 0; i < 300; i++) {
    int rc =
        sqlite3_exec(db,
                     "BEGIN; UPDATE kv SET value = value - 1 WHERE key = 'a';"
                     "UPDATE kv SET value = value + 1 WHERE key = 'b';"
                     "COMMIT;",
                     0, 0, 0);
    if (rc != SQLITE_OK) {
      if ((rc & 0xFF) == SQLITE_BUSY) __sync_fetch_and_add(&b->nBusy, 1);
      sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
    }
  }
  sqlite3_close(db);
  return 0;
}

/* Entries of the test directory whose names start with zPrefix. */
static int countEntries(const char *zPrefix) {
  DIR *d = opendir(zTestDir);
  ck_assert_ptr_nonnull(d);
  int n = 0;
  struct dirent *pEnt;
  while ((pEnt = readdir(d)) != 0) {
    if (!strncmp(pEnt->d_name, zPrefix, strlen(zPrefix))) n++;
  }
  closedir(d);
  return n;
}

/* DROP TABLE changes no file: the link goes in the DROP's transaction, and
** the store is deleted once the DROP has committed and nobody has it open,
** by whichever connection looks next (its first table, a CREATE, or
** hashkv_reclaim()). */
START_TEST(drop_deletes_when_committed) {
  sqlite3 *db = openDb();
  char zKv[600], zA[600], zB[600], zC[600];
  execOk(db,
         "CREATE VIRTUAL TABLE keep USING hashkv;"
         "CREATE VIRTUAL TABLE kv USING hashkv;"
         "INSERT INTO kv VALUES(1, 'one'), (2, 'two');");
  storeDir(db, zDbPath, "main", "kv", zKv, sizeof(zKv));
  execOk(db, "BEGIN; DROP TABLE kv;");
  ck_assert(exists(zKv));
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM sqlite_schema WHERE "
                                "name IN ('kv', 'kv_hashkv')"), 0);
  execOk(db, "ROLLBACK");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 2);

  /* Dropped in autocommit: the files stay until someone reclaims them. */
  execOk(db, "DROP TABLE kv");
  ck_assert(exists(zKv));
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
  ck_assert(!exists(zKv));
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);

  /* Committed inside a transaction: gone at the next CREATE. */
  execOk(db,
         "CREATE VIRTUAL TABLE a USING hashkv; INSERT INTO a VALUES(1, 1);");
  storeDir(db, zDbPath, "main", "a", zA, sizeof(zA));
  execOk(db,
         "BEGIN; DROP TABLE a; COMMIT;"
         "CREATE VIRTUAL TABLE b USING hashkv; INSERT INTO b VALUES(1, 1);");
  ck_assert(!exists(zA));

  /* Another connection holding the store: the DROP goes ahead, the files
  ** stay while it has them open. */
  storeDir(db, zDbPath, "main", "b", zB, sizeof(zB));
  sqlite3 *db2 = openDb();
  ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM b"), 1);
  execOk(db, "DROP TABLE b");
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
  ck_assert(exists(zB));
  sqlite3_close(db2);
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
  ck_assert(!exists(zB));

  /* Dropped, then the connection closes: the next connection's first table
  ** reclaims it. */
  execOk(db, "CREATE VIRTUAL TABLE c USING hashkv; INSERT INTO c VALUES(1, 1);");
  storeDir(db, zDbPath, "main", "c", zC, sizeof(zC));
  execOk(db, "DROP TABLE c");
  ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
  ck_assert(exists(zC));
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM keep"), 0);
  ck_assert(!exists(zC));
  ck_assert_int_eq(countStores(), 1); /* keep's */

  /* An attached database: its stores beside it. */
  char zSql[600], zO[600], zOFile[500];
  snprintf(zOFile, sizeof(zOFile), "%s/o.db", zTestDir);
  snprintf(zSql, sizeof(zSql),
           "ATTACH '%s' AS o;"
           "CREATE VIRTUAL TABLE o.kv USING hashkv; INSERT INTO o.kv VALUES(1, 1);",
           zOFile);
  execOk(db, zSql);
  storeDir(db, zOFile, "o", "kv", zO, sizeof(zO));
  execOk(db, "DROP TABLE o.kv");
  ck_assert(exists(zO));
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
  ck_assert(!exists(zO));
  sqlite3_close(db);
}
END_TEST

/* A CREATE VIRTUAL TABLE that rolls back leaves an empty store that no
** link names: reclaimed like a dropped one. A new table never meets an old
** store, even after the database file was deleted; a path the user gave
** stays. */
START_TEST(rolled_back_create_leaves_nothing) {
  sqlite3 *db = openDb();
  execOk(db,
         "BEGIN; CREATE VIRTUAL TABLE kv USING hashkv;"
         "INSERT INTO kv VALUES(1, 'one'); ROLLBACK;");
  ck_assert_int_eq(countStores(), 1); /* not reclaimed yet */
  execOk(db, "CREATE VIRTUAL TABLE other USING hashkv");
  ck_assert_int_eq(countStores(), 1); /* other's */

  /* Undone by ROLLBACK TO in a transaction that commits: SQLite keeps
  ** the undone table's instance (and so the store open) until the
  ** connection closes; the next connection reclaims it. */
  execOk(db,
         "BEGIN; SAVEPOINT s; CREATE VIRTUAL TABLE k2 USING hashkv;"
         "INSERT INTO k2 VALUES(1, 1); ROLLBACK TO s; RELEASE s; COMMIT;");
  ck_assert_int_eq(countStores(), 2);
  ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
  ck_assert_int_eq(countStores(), 1);

  /* Created again after the rollback: a new, empty store. */
  execOk(db,
         "BEGIN; CREATE VIRTUAL TABLE k4 USING hashkv;"
         "INSERT INTO k4 VALUES(1, 1); COMMIT;"
         "BEGIN; DROP TABLE k4; CREATE VIRTUAL TABLE k4 USING hashkv;");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM k4"), 0);
  execOk(db, "INSERT INTO k4 VALUES(2, 2); COMMIT;");
  ck_assert_int_eq(queryInt(db, "SELECT key FROM k4"), 2);
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1); /* old k4 */

  /* A path the user gave is theirs: the directory stays. */
  execOk(db,
         "BEGIN; CREATE VIRTUAL TABLE k5 USING hashkv(path='mine.hkv');"
         "ROLLBACK;");
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
  ck_assert_int_eq(countEntries("mine.hkv"), 1);
  ck_assert_int_eq(sqlite3_close(db), SQLITE_OK);

  /* The database deleted to start over: a new table starts empty, and the
  ** old store (rows, and no record that it was dropped) is left alone. */
  ck_assert_int_eq(unlink(zDbPath), 0);
  int nOld = countStores();
  db = openDb();
  execOk(db, "CREATE VIRTUAL TABLE k4 USING hashkv");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM k4"), 0);
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
  /* other's store held no row and went; the old k4, with its row, stays */
  ck_assert_int_eq(nOld, 2);
  ck_assert_int_eq(countStores(), 2);
  sqlite3_close(db);
}
END_TEST

/* RENAME moves no file: the store stays where it is, the link follows the
** name inside the ALTER's transaction, and another connection reading
** meanwhile sees its snapshot, as with a native table. */
START_TEST(rename_never_moves_the_store) {
  sqlite3 *db = openDb();
  char zDir[600], zDir2[600];
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);"
         "CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
         "INSERT INTO n VALUES(1, 1);");
  storeDir(db, zDbPath, "main", "kv", zDir, sizeof(zDir));
  execOk(db, "BEGIN; ALTER TABLE kv RENAME TO kv2; ALTER TABLE n RENAME TO n2;");
  sqlite3 *db2 = openDb();
  ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM n"), 1);
  ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM kv"), 1);
  execOk(db, "ROLLBACK");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
  storeDir(db, zDbPath, "main", "kv", zDir2, sizeof(zDir2));
  ck_assert_str_eq(zDir, zDir2);

  /* Committed, and in savepoints with writes before and after. */
  execOk(db,
         "BEGIN; INSERT INTO kv VALUES(2, 2); SAVEPOINT s;"
         "ALTER TABLE kv RENAME TO kv3; INSERT INTO kv3 VALUES(3, 3);"
         "ROLLBACK TO s; INSERT INTO kv VALUES(4, 4);"
         "ALTER TABLE kv RENAME TO kv4; INSERT INTO kv4 VALUES(5, 5); COMMIT;");
  ck_assert_int_eq(queryInt(db, "SELECT group_concat(key, '') FROM "
                                "(SELECT key FROM kv4 ORDER BY key)"), 1245);
  storeDir(db, zDbPath, "main", "kv4", zDir2, sizeof(zDir2));
  ck_assert_str_eq(zDir, zDir2);
  ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM kv4"), 4);
  ck_assert_int_eq(countStores(), 1);
  sqlite3_close(db2);
  sqlite3_close(db);
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv4"), 4);
  sqlite3_close(db);
}
END_TEST

/* While a DROP is uncommitted another connection reads the table, and a
** WAL reader keeps reading its snapshot after the DROP commits; the store
** goes only once that reader is done. */
START_TEST(drop_seen_by_another_connection) {
  for (int bWal = 0; bWal < 2; bWal++) {
    sqlite3 *db = openDb();
    char zDir[600];
    if (bWal) execOk(db, "PRAGMA journal_mode=WAL");
    execOk(db,
           "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);");
    storeDir(db, zDbPath, "main", "kv", zDir, sizeof(zDir));
    execOk(db, "BEGIN; DROP TABLE kv;");
    sqlite3 *db2 = openDb();
    ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM kv"), 1);
    execOk(db, "ROLLBACK");
    ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM kv"), 1);
    ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
    if (bWal) {
      execOk(db2, "BEGIN");
      ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM kv"), 1);
      execOk(db, "DROP TABLE kv");
      ck_assert_int_eq(queryInt(db2, "SELECT count(*) FROM kv"), 1);
      ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
      execOk(db2, "COMMIT");
    } else {
      execOk(db, "DROP TABLE kv");
    }
    sqlite3_close(db2);
    ck_assert(exists(zDir));
    ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
    ck_assert(!exists(zDir));
    sqlite3_close(db);
    rmTree(zTestDir);
    ck_assert_int_eq(mkdir(zTestDir, 0700), 0);
  }
}
END_TEST

/* A process killed inside a DROP's (or RENAME's, or CREATE's) transaction:
** the database rolls back and the table is whole; killed after the DROP
** committed: the next connection reclaims the store. */
START_TEST(killed_inside_ddl) {
  sqlite3 *db = openDb();
  char zDir[600];
  execOk(db,
         "CREATE VIRTUAL TABLE keep USING hashkv;"
         "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);");
  storeDir(db, zDbPath, "main", "kv", zDir, sizeof(zDir));
  sqlite3_close(db);
  const char *azSql[] = {
      "BEGIN; DROP TABLE kv;",
      "BEGIN; INSERT INTO keep VALUES(1, 1); ALTER TABLE kv RENAME TO k2;"
      "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(2, 2);",
      "BEGIN; CREATE VIRTUAL TABLE k3 USING hashkv; INSERT INTO k3 VALUES(1, 1);",
      "DROP TABLE kv;",
  };
  for (int i = 0; i < 4; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      sqlite3 *c = 0;
      if (sqlite3_open(zDbPath, &c) != SQLITE_OK) _exit(2);
      if (sqlite3_exec(c, azSql[i], 0, 0, 0) != SQLITE_OK) _exit(3);
      kill(getpid(), SIGKILL);
      _exit(4);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    db = openDb();
    if (i < 3) {
      ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
      ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM keep"), 0);
      ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM sqlite_schema"), 4);
      ck_assert(exists(zDir));
    } else {
      ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM keep"), 0);
      ck_assert(!exists(zDir));
    }
    ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
    ck_assert_int_eq(countStores(), i < 3 ? 2 : 1);
    sqlite3_close(db);
  }
}
END_TEST

/* A copy of the database (VACUUM INTO, .backup) has links but not the
** stores: its tables fail naming the missing directory, and DROP removes
** them from its schema, leaving the original's store alone. */
START_TEST(drop_of_a_missing_store) {
  sqlite3 *db = openDb();
  char zSql[600], zCopy[500];
  snprintf(zCopy, sizeof(zCopy), "%s/copy.db", zTestDir);
  snprintf(zSql, sizeof(zSql),
           "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);"
           "VACUUM INTO '%s'",
           zCopy);
  execOk(db, zSql);
  sqlite3 *c = 0;
  ck_assert_int_eq(sqlite3_open(zCopy, &c), SQLITE_OK);
  char *zErr = 0;
  ck_assert_int_ne(sqlite3_exec(c, "SELECT * FROM kv", 0, 0, &zErr), SQLITE_OK);
  ck_assert_msg(zErr && strstr(zErr, "copy.db-hashkv/"), "%s", zErr);
  sqlite3_free(zErr);
  ck_assert_int_ne(sqlite3_exec(c, "INSERT INTO kv VALUES(2, 2)", 0, 0, 0),
                   SQLITE_OK);
  execOk(c, "DROP TABLE kv");
  ck_assert_int_eq(queryInt(c, "SELECT count(*) FROM sqlite_schema WHERE "
                               "name LIKE 'kv%'"), 0);
  sqlite3_close(c);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1);
  sqlite3_close(db);
}
END_TEST

/* Stores the user names: two tables (in one database or two) on one path
** keep it while either is there; DROP never renames or deletes a
** directory the user gave, nor the files of theirs in it. */
START_TEST(path_stores_are_the_users) {
  char zMine[500], zNote[600], zSql[600];
  snprintf(zMine, sizeof(zMine), "%s/mydata", zTestDir);
  snprintf(zNote, sizeof(zNote), "%s/notes.txt", zMine);
  ck_assert_int_eq(mkdir(zMine, 0700), 0);
  FILE *f = fopen(zNote, "w");
  ck_assert_ptr_nonnull(f);
  fputs("mine\n", f);
  fclose(f);
  sqlite3 *db = openDb();
  execOk(db,
         "CREATE VIRTUAL TABLE a USING hashkv(path='shared.hkv');"
         "CREATE VIRTUAL TABLE b USING hashkv(path='shared.hkv');"
         "INSERT INTO a VALUES(1, 1);"
         "CREATE VIRTUAL TABLE m USING hashkv(path='mydata');"
         "INSERT INTO m VALUES(1, 1);");
  sqlite3 *o = 0;
  snprintf(zSql, sizeof(zSql), "%s/other.db", zTestDir);
  ck_assert_int_eq(sqlite3_open(zSql, &o), SQLITE_OK);
  execOk(o, "CREATE VIRTUAL TABLE c USING hashkv(path='shared.hkv')");
  ck_assert_int_eq(queryInt(o, "SELECT count(*) FROM c"), 1);
  execOk(db, "DROP TABLE a; DROP TABLE m;");
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM b"), 1);
  execOk(o, "DROP TABLE c");
  ck_assert_int_eq(queryInt(o, "SELECT hashkv_reclaim()"), 0);
  sqlite3_close(o);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM b"), 1);
  execOk(db, "DROP TABLE b");
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
  sqlite3_close(db);
  ck_assert(exists(zNote));
  ck_assert_int_eq(countEntries("mydata"), 1); /* nothing set aside */
  ck_assert_int_eq(countEntries("shared.hkv"), 1);
}
END_TEST

/* The link is a shadow table: under SQLITE_DBCONFIG_DEFENSIVE ordinary SQL
** cannot change or drop it, while CREATE, RENAME and DROP of the table
** still work. */
START_TEST(link_is_protected_in_defensive_mode) {
  sqlite3 *db = openDb();
  ck_assert_int_eq(sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, 0),
                   SQLITE_OK);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);"
         "ALTER TABLE kv RENAME TO kv2;");
  ck_assert_int_ne(
      sqlite3_exec(db, "UPDATE kv2_hashkv SET dir = 'x'", 0, 0, 0), SQLITE_OK);
  ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM kv2_hashkv", 0, 0, 0),
                   SQLITE_OK);
  ck_assert_int_ne(sqlite3_exec(db, "DROP TABLE kv2_hashkv", 0, 0, 0),
                   SQLITE_OK);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv2"), 1);
  execOk(db, "DROP TABLE kv2");
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
  sqlite3_close(db);
}
END_TEST

/* A table made by 0.1.0 (store at <db>-<table>.hkv, no link) is read where
** it is; its first RENAME writes a link that keeps the store there, and a
** DROP deletes it once committed. */
START_TEST(stores_of_0_1_0_keep_working) {
  sqlite3 *db = openDb();
  char zDir[600], zOld[600];
  execOk(db,
         "CREATE VIRTUAL TABLE keep USING hashkv;"
         "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);");
  storeDir(db, zDbPath, "main", "kv", zDir, sizeof(zDir));
  execOk(db, "DROP TABLE kv_hashkv"); /* as 0.1.0 wrote it */
  sqlite3_close(db);
  snprintf(zOld, sizeof(zOld), "%s-kv.hkv", zDbPath);
  ck_assert_int_eq(rename(zDir, zOld), 0);
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT value FROM kv WHERE key = 1"), 1);
  execOk(db, "INSERT INTO kv VALUES(2, 2)");
  execOk(db, "BEGIN; ALTER TABLE kv RENAME TO k2; ROLLBACK;");
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 2);
  execOk(db, "ALTER TABLE kv RENAME TO k2");
  sqlite3_close(db);
  ck_assert(exists(zOld));
  db = openDb();
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM k2"), 2);
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 0);
  execOk(db, "DROP TABLE k2");
  ck_assert(exists(zOld));
  ck_assert_int_eq(queryInt(db, "SELECT hashkv_reclaim()"), 1);
  ck_assert(!exists(zOld));
  sqlite3_close(db);
}
END_TEST

/* A temporary store left by a process that died (no close ran) is removed
** by the next temporary CREATE; one another connection has open stays. */
START_TEST(temporary_store_of_a_dead_process) {
  char zTmp[500];
  snprintf(zTmp, sizeof(zTmp), "%s/tmp", zTestDir);
  mkdir(zTmp, 0700);
  setenv("TMPDIR", zTmp, 1);
  pid_t pid = fork();
  if (pid == 0) {
    sqlite3 *c = 0;
    if (sqlite3_open(":memory:", &c) != SQLITE_OK) _exit(2);
    if (sqlite3_exec(c,
                     "CREATE VIRTUAL TABLE kv USING hashkv;"
                     "INSERT INTO kv VALUES(1, 1);",
                     0, 0, 0) != SQLITE_OK) {
      _exit(3);
    }
    kill(getpid(), SIGKILL);
    _exit(4);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ck_assert(WIFSIGNALED(status));
  ck_assert_int_eq(countIn(zTmp), 1);
  sqlite3 *a = 0, *b = 0;
  ck_assert_int_eq(sqlite3_open(":memory:", &a), SQLITE_OK);
  execOk(a, "CREATE VIRTUAL TABLE kv USING hashkv; INSERT INTO kv VALUES(1, 1);");
  ck_assert_int_eq(countIn(zTmp), 1); /* the dead one's went */
  ck_assert_int_eq(sqlite3_open(":memory:", &b), SQLITE_OK);
  execOk(b, "CREATE TEMP TABLE x(y); CREATE VIRTUAL TABLE temp.kv USING hashkv;");
  ck_assert_int_eq(countIn(zTmp), 2);
  ck_assert_int_eq(queryInt(a, "SELECT count(*) FROM kv"), 1);
  /* A dropped temporary table's store goes at the next CREATE. */
  execOk(b, "DROP TABLE temp.kv; CREATE VIRTUAL TABLE temp.k2 USING hashkv;");
  ck_assert_int_eq(countIn(zTmp), 2);
  sqlite3_close(a);
  sqlite3_close(b);
  unsetenv("TMPDIR");
  ck_assert_int_eq(countIn(zTmp), 0);
}
END_TEST

START_TEST(connections_in_threads) {
  sqlite3 *db = openDb();
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(sync=off);"
         "INSERT INTO kv VALUES('a', 500), ('b', 500);");
  Bank b = {0, 0, 0, 0};
  pthread_t aR[2], aW[2];
  for (int i = 0; i < 2; i++) pthread_create(&aR[i], 0, bankReader, &b);
  for (int i = 0; i < 2; i++) pthread_create(&aW[i], 0, bankWriter, &b);
  for (int i = 0; i < 2; i++) pthread_join(aW[i], 0);
  b.bStop = 1;
  for (int i = 0; i < 2; i++) pthread_join(aR[i], 0);
  ck_assert_int_eq(b.nBad, 0);
  ck_assert_int_gt(b.nReads, 0);
  ck_assert_int_eq(queryInt(db, "SELECT sum(value) FROM kv"), 1000);
  /* A second writer is refused with SQLITE_BUSY while one is open. */
  sqlite3 *db2 = openDb();
  execOk(db, "BEGIN; UPDATE kv SET value = 0 WHERE key = 'a'");
  ck_assert_int_eq(
      sqlite3_exec(db2, "UPDATE kv SET value = 1 WHERE key = 'b'", 0, 0, 0) &
          0xFF,
      SQLITE_BUSY);
  ck_assert_int_eq(
      queryInt(db2, "SELECT value FROM kv WHERE key = 'a'"),
      queryInt(db2, "SELECT 1000 - value FROM kv WHERE key = 'b'"));
  execOk(db, "ROLLBACK");
  sqlite3_close(db2);
  sqlite3_close(db);
}
END_TEST

/* ---- the differential test ---- */

static unsigned rngState;
static unsigned rnd(unsigned n) {
  rngState = rngState * 1103515245u + 12345u;
  return (rngState >> 8) % n;
}

static void randKey(char *z, size_t n) {
  int i = (int)rnd(12);
  switch (rnd(6)) {
    case 0:
      snprintf(z, n, "%d", i);
      break;
    case 1:
      snprintf(z, n, "%d.0", i);
      break;
    case 2:
      snprintf(z, n, "%d.5", i);
      break;
    case 3:
      snprintf(z, n, "'%d'", i);
      break;
    case 4:
      snprintf(z, n, "x'%02x'", 0x30 + i);
      break;
    default:
      snprintf(z, n, rnd(20) ? "'k%d'" : "NULL", i);
      break;
  }
}

static void randVal(char *z, size_t n) {
  switch (rnd(4)) {
    case 0:
      snprintf(z, n, "%u", rnd(1000));
      break;
    case 1:
      snprintf(z, n, "'v%u'", rnd(1000));
      break;
    case 2:
      snprintf(z, n, "NULL");
      break;
    default:
      snprintf(z, n, "%u.25", rnd(100));
      break;
  }
}

/* Normalises "<zTab>.key" in zErr to "<cTo>.key". */
static void normaliseCol(char *zErr, const char *zTab, char cTo) {
  const char *zBare = strrchr(zTab, '.') ? strrchr(zTab, '.') + 1 : zTab;
  char zCol[40];
  snprintf(zCol, sizeof(zCol), "%s.key", zBare);
  char *z = strstr(zErr, zCol);
  if (z) {
    size_t nTab = strlen(zBare);
    memmove(z + 1, z + nTab, strlen(z + nTab) + 1);
    z[0] = cTo;
  }
}

/* Runs zTmpl with every '@' replaced by zTab and every '#' by zTab2;
** returns rc; zErr gets the message with the tables' names normalised. */
static int runOn(sqlite3 *db, const char *zTmpl, const char *zTab,
                 const char *zTab2, char *zErr, size_t nErr, int *pnChange) {
  char zSql[1024];
  size_t j = 0;
  for (const char *p = zTmpl; *p && j < sizeof(zSql) - 8; p++) {
    if (*p == '@' || *p == '#') {
      j += (size_t)snprintf(zSql + j, sizeof(zSql) - j, "%s",
                            *p == '@' ? zTab : zTab2);
    } else {
      zSql[j++] = *p;
    }
  }
  zSql[j] = 0;
  int rc = sqlite3_exec(db, zSql, 0, 0, 0);
  rc = sqlite3_extended_errcode(db);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) rc = SQLITE_OK;
  snprintf(zErr, nErr, "%s", rc ? sqlite3_errmsg(db) : "");
  normaliseCol(zErr, zTab, 'T'); /* "kv.key" and "n.key" become "T.key" */
  normaliseCol(zErr, zTab2, 'U');
  *pnChange = sqlite3_changes(db);
  return rc;
}

static char *dump(sqlite3 *db, const char *zTab) {
  char zSql[200];
  snprintf(zSql, sizeof(zSql),
           "SELECT group_concat(quote(key) || '=' || quote(value), ' ') FROM "
           "(SELECT * FROM %s ORDER BY key)",
           zTab);
  sqlite3_stmt *p = 0;
  int rc = sqlite3_prepare_v2(db, zSql, -1, &p, 0);
  ck_assert_msg(rc == SQLITE_OK, "%s: %s", zSql, sqlite3_errmsg(db));
  ck_assert_int_eq(sqlite3_step(p), SQLITE_ROW);
  const char *z = (const char *)sqlite3_column_text(p, 0);
  char *zCopy = strdup(z ? z : "");
  sqlite3_finalize(p);
  return zCopy;
}

/* HKV_DIFF_TRACE set: the differential test prints each step. */
static int bTrace;

/* The differential test's tables live in schema zPfx ("" is main, or
** "aux."): '$' in its SQL stands for that prefix. */
static const char *zPfx = "";
static void expandPfx(char *zOut, size_t nOut, const char *zIn) {
  size_t j = 0;
  for (const char *p = zIn; *p && j + 8 < nOut; p++) {
    if (*p == '$') {
      j += (size_t)snprintf(zOut + j, nOut - j, "%s", zPfx);
    } else {
      zOut[j++] = *p;
    }
  }
  zOut[j] = 0;
}
static void stepExec(sqlite3 *db, const char *zSql) {
  char z[1024];
  expandPfx(z, sizeof(z), zSql);
  if (bTrace) fprintf(stderr, "   %s\n", z);
  execOk(db, z);
}
/* zName in the test's schema, in z. */
static const char *qualified(char *z, size_t n, const char *zName) {
  snprintf(z, n, "%s%s", zPfx, zName);
  return z;
}

/* The name table zA has in db's schema: the differential test renames kv
** to kvr and n to nr and back, and a rollback can undo that. */
static const char *nameNow(sqlite3 *db, const char *zA, const char *zB) {
  char zSql[200];
  snprintf(zSql, sizeof(zSql),
           "SELECT count(*) FROM %ssqlite_schema WHERE name = '%s'", zPfx, zB);
  return queryInt(db, zSql) ? zB : zA;
}

/* 1 if db's schema has table zA or zB. */
static int tableNow(sqlite3 *db, const char *zA, const char *zB) {
  char zSql[200];
  snprintf(zSql, sizeof(zSql),
           "SELECT count(*) FROM %ssqlite_schema WHERE name IN ('%s', '%s')",
           zPfx, zA, zB);
  return queryInt(db, zSql) != 0;
}

static void compareTables(sqlite3 *db, int iStep, const char *zWhat) {
  int bKv = tableNow(db, "kv", "kvr");
  ck_assert_msg(bKv == tableNow(db, "n", "nr"), "step %d (%s): kv %s, n not",
                iStep, zWhat, bKv ? "exists" : "is gone");
  if (!bKv) return;
  char z1[40], z2[40];
  char *a = dump(db, qualified(z1, sizeof(z1), nameNow(db, "kv", "kvr")));
  char *b = dump(db, qualified(z2, sizeof(z2), nameNow(db, "n", "nr")));
  ck_assert_msg(strcmp(a, b) == 0, "step %d (%s): kv=[%s] n=[%s]", iStep, zWhat,
                a, b);
  free(a);
  free(b);
  /* the second pair, never renamed or dropped (gone only with an in-memory
  ** database) */
  if (tableNow(db, "kw", "kw") != tableNow(db, "m", "m")) {
    ck_abort_msg("step %d (%s): kw and m differ in existence", iStep, zWhat);
  }
  if (!tableNow(db, "kw", "kw")) return;
  a = dump(db, qualified(z1, sizeof(z1), "kw"));
  b = dump(db, qualified(z2, sizeof(z2), "m"));
  ck_assert_msg(strcmp(a, b) == 0, "step %d (%s): kw=[%s] m=[%s]", iStep,
                zWhat, a, b);
  free(a);
  free(b);
}

/* Another process writing the store (through another database file, so
** SQLite's own file lock is not involved): SQLITE_BUSY at once without a
** busy_timeout; with one, the write waits for the other's COMMIT. A SELECT
** never waits, and sees the other's commit once it is made. */
START_TEST(busy_timeout_across_processes) {
  sqlite3 *db = openDb();
  execOk(db, "PRAGMA journal_mode=WAL");
  execOk(db, "CREATE VIRTUAL TABLE kv USING hashkv(path='kv.hkv', sync='normal')");
  execOk(db, "INSERT INTO kv VALUES('a', 1)");
  sqlite3_close(db); /* SQLite connections must not cross a fork */
  volatile int *aFlag =
      mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert(aFlag != MAP_FAILED);
  aFlag[0] = aFlag[1] = 0;
  pid_t pid = fork();
  if (pid == 0) {
    /* Another database file whose table names the same store: only the
    ** store's lock stands between the two processes. */
    char zOther[500];
    snprintf(zOther, sizeof(zOther), "%s/other.db", zTestDir);
    sqlite3 *c = 0;
    if (sqlite3_open(zOther, &c) != SQLITE_OK) _exit(2);
    if (sqlite3_exec(
            c,
            "CREATE VIRTUAL TABLE kv USING hashkv(path='kv.hkv');"
            "BEGIN; INSERT INTO kv VALUES('b', 2);",
            0, 0, 0) != SQLITE_OK) {
      _exit(4);
    }
    aFlag[0] = 1; /* holds the write lock */
    for (int i = 0; i < 20000 && !aFlag[1]; i++) usleep(1000);
    usleep(200 * 1000); /* the parent is waiting in its busy_timeout */
    int rc = sqlite3_exec(c, "COMMIT", 0, 0, 0);
    sqlite3_close(c);
    _exit(rc == SQLITE_OK ? 0 : 3);
  }
  db = openDb();
  for (int i = 0; i < 20000 && !aFlag[0]; i++) usleep(1000);
  char *zErr = 0;
  int rc = sqlite3_exec(db, "INSERT INTO kv VALUES('c', 3)", 0, 0, &zErr);
  ck_assert_int_eq(rc, SQLITE_BUSY);
  ck_assert_msg(zErr && strstr(zErr, "another process"), "%s",
                zErr ? zErr : "");
  sqlite3_free(zErr);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 1); /* no 'b' */
  sqlite3_busy_timeout(db, 10000);
  aFlag[1] = 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  execOk(db, "INSERT INTO kv VALUES('c', 3)");
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
              (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
  ck_assert_msg(ms >= 100, "the INSERT did not wait (%.1f ms)", ms);
  int status = 0;
  waitpid(pid, &status, 0);
  ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv"), 3);
  ck_assert_int_eq(queryInt(db, "SELECT value FROM kv WHERE key = 'b'"), 2);
  munmap((void *)aFlag, 4096);
  sqlite3_close(db);
}
END_TEST

/* Text keys and values reach the store as the same UTF-8 bytes however
** they come: bound with a length and no terminator, bound as UTF-16, with
** a NUL inside, or from a database whose encoding is UTF-16; and TEXT comes
** back whole (sqlite3_column_text terminated, column_bytes exact). */
static void expectText(sqlite3 *db, const char *zSql, const void *pKey,
                       int nKey, int b16, const char *zWant, int nWant) {
  sqlite3_stmt *p = 0;
  ck_assert_int_eq(sqlite3_prepare_v2(db, zSql, -1, &p, 0), SQLITE_OK);
  if (b16) {
    sqlite3_bind_text16(p, 1, pKey, nKey, SQLITE_STATIC);
  } else {
    sqlite3_bind_text(p, 1, pKey, nKey, SQLITE_STATIC);
  }
  int rc = sqlite3_step(p);
  ck_assert_msg(rc == SQLITE_ROW, "%s: %d %s", zSql, rc, sqlite3_errmsg(db));
  ck_assert_int_eq(sqlite3_column_type(p, 0), SQLITE_TEXT);
  const char *z = (const char *)sqlite3_column_text(p, 0);
  ck_assert_int_eq(sqlite3_column_bytes(p, 0), nWant);
  ck_assert(memcmp(z, zWant, (size_t)nWant) == 0);
  ck_assert_int_eq(z[nWant], 0);
  sqlite3_finalize(p);
}

START_TEST(text_in_every_encoding) {
  sqlite3 *db = openDb();
  execOk(db, "CREATE VIRTUAL TABLE kv USING hashkv(path='text.hkv')");
  /* "h\xc3\xa9llo" is 6 bytes; the buffer goes on with no terminator. */
  static const char aKey[] = "h\xc3\xa9llo!!!!";
  sqlite3_stmt *p = 0;
  ck_assert_int_eq(
      sqlite3_prepare_v2(db, "INSERT INTO kv VALUES(?, ?)", -1, &p, 0),
      SQLITE_OK);
  sqlite3_bind_text(p, 1, aKey, 6, SQLITE_STATIC);
  sqlite3_bind_text(p, 2, "w\xc3\xb6rld??", 6, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(p), SQLITE_DONE);
  sqlite3_reset(p);
  sqlite3_bind_text(p, 1, "nul\0inside", 10, SQLITE_STATIC);
  sqlite3_bind_text(p, 2, "a\0b", 3, SQLITE_STATIC);
  ck_assert_int_eq(sqlite3_step(p), SQLITE_DONE);
  sqlite3_finalize(p);
  const char *zSel = "SELECT value FROM kv WHERE key = ?";
  expectText(db, zSel, aKey, 6, 0, "w\xc3\xb6rld", 6);
  expectText(db, zSel, "h\xc3\xa9llo", -1, 0, "w\xc3\xb6rld", 6);
  static const unsigned short aKey16[] = {'h', 0xE9, 'l', 'l', 'o'};
  expectText(db, zSel, aKey16, (int)sizeof(aKey16), 1, "w\xc3\xb6rld", 6);
  expectText(db, zSel, "nul\0inside", 10, 0, "a\0b", 3);
  ck_assert_int_eq(queryInt(db, "SELECT count(*) FROM kv WHERE key = 'nul'"),
                   0);

  /* The same store from a UTF-16 database. */
  char zDb16[600];
  snprintf(zDb16, sizeof(zDb16), "%s/utf16.db", zTestDir);
  sqlite3 *db16 = 0;
  ck_assert_int_eq(sqlite3_open(zDb16, &db16), SQLITE_OK);
  execOk(db16, "PRAGMA encoding = 'UTF-16le'");
  char zCreate[700];
  snprintf(zCreate, sizeof(zCreate),
           "CREATE VIRTUAL TABLE kv USING hashkv(path='%s/text.hkv')",
           zTestDir);
  execOk(db16, zCreate);
  ck_assert_int_eq(queryInt(db16,
                            "SELECT count(*) FROM pragma_encoding "
                            "WHERE encoding = 'UTF-16le'"),
                   1);
  expectText(db16, zSel, "h\xc3\xa9llo", 6, 0, "w\xc3\xb6rld", 6);
  expectText(db16, zSel, aKey16, (int)sizeof(aKey16), 1, "w\xc3\xb6rld", 6);
  execOk(db16, "INSERT INTO kv VALUES('\xc3\xa9t\xc3\xa9', 'summer')");
  expectText(db, zSel, "\xc3\xa9t\xc3\xa9", -1, 0, "summer", 6);
  sqlite3_close(db16);
  sqlite3_close(db);
}
END_TEST

/* Text and blob results reach SQLite in buffers of the module's that SQLite
** gives back when done (resultFree). Values SQLite keeps past their row
** (aggregates, a row held while other statements read, sqlite3_value_dup,
** a correlated subquery) must stay intact while later rows reuse buffers;
** sizes on both sides of the pooled size, empty ones, NULs inside and a
** UTF-16 database (SQLite converts, and frees the original) included. Each
** query is checked against the same rows in a native table. */
static void sameAnswer(sqlite3 *db, const char *zSql) {
  /* zSql names the table TBL. */
  char zKv[600], zN[600];
  const char *zAt = strstr(zSql, "TBL");
  ck_assert_ptr_nonnull(zAt);
  snprintf(zKv, sizeof(zKv), "%.*skv%s", (int)(zAt - zSql), zSql, zAt + 3);
  snprintf(zN, sizeof(zN), "%.*sn%s", (int)(zAt - zSql), zSql, zAt + 3);
  sqlite3_stmt *a = 0, *b = 0;
  ck_assert_msg(sqlite3_prepare_v2(db, zKv, -1, &a, 0) == SQLITE_OK, "%s: %s",
                zKv, sqlite3_errmsg(db));
  ck_assert_int_eq(sqlite3_prepare_v2(db, zN, -1, &b, 0), SQLITE_OK);
  int nRow = 0;
  for (;;) {
    int ra = sqlite3_step(a), rb = sqlite3_step(b);
    ck_assert_msg(ra == rb, "%s: %d against %d", zKv, ra, rb);
    if (ra != SQLITE_ROW) break;
    for (int i = 0; i < sqlite3_column_count(a); i++) {
      int ta = sqlite3_column_type(a, i);
      ck_assert_msg(ta == sqlite3_column_type(b, i),
                    "%s: row %d column %d: type %d against %d", zKv, nRow, i,
                    ta, sqlite3_column_type(b, i));
      const void *pa = ta == SQLITE_TEXT
                           ? (const void *)sqlite3_column_text(a, i)
                           : sqlite3_column_blob(a, i);
      const void *pb = ta == SQLITE_TEXT
                           ? (const void *)sqlite3_column_text(b, i)
                           : sqlite3_column_blob(b, i);
      int na = sqlite3_column_bytes(a, i);
      ck_assert_msg(na == sqlite3_column_bytes(b, i) &&
                        (na == 0 || !memcmp(pa, pb, (size_t)na)),
                    "%s: row %d column %d differs", zKv, nRow, i);
    }
    nRow++;
  }
  ck_assert_int_gt(nRow, 0);
  sqlite3_finalize(a);
  sqlite3_finalize(b);
}

static void resultsKeptBySqlite(const char *zEncoding) {
  sqlite3 *db = openDb();
  char z[200];
  snprintf(z, sizeof(z), "PRAGMA encoding = '%s'", zEncoding);
  execOk(db, z);
  execOk(db,
         "CREATE VIRTUAL TABLE kv USING hashkv(sync=off);"
         "CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
         "CREATE TABLE t(k);"
         "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c "
         "WHERE i < 300) INSERT INTO n SELECT 'k' || i, CASE i % 6 "
         "WHEN 0 THEN printf('%.*c', i * 2, 'x') || i "
         "WHEN 1 THEN randomblob(i) "
         "WHEN 2 THEN 'v' || i || char(0) || 'tail' "
         "WHEN 3 THEN '' WHEN 4 THEN x'' ELSE 'value-' || i END FROM c;"
         "INSERT INTO kv SELECT * FROM n;"
         "INSERT INTO t SELECT key FROM n WHERE substr(key, 2) % 3 = 0;");
  sameAnswer(db,
             "SELECT max(value), min(value), count(DISTINCT value) FROM TBL "
             "WHERE key IN ('k1','k2','k3','k5','k6','k7','k11','k12')");
  sameAnswer(db,
             "SELECT group_concat(hex(value), '.') FROM "
             "(SELECT key, value FROM TBL WHERE key IN "
             "(SELECT key FROM n) ORDER BY key)");
  sameAnswer(db, "SELECT k, (SELECT value FROM TBL WHERE key = t.k) FROM t");
  sameAnswer(db, "SELECT max(value) FROM TBL GROUP BY length(value) % 7");
  sameAnswer(db,
             "SELECT a.value, b.value FROM TBL a JOIN n b ON a.key = b.key "
             "WHERE a.key LIKE 'k1%' ORDER BY a.key");

  /* A row held while other statements run through many rows; a dup'd
  ** value outlives its statement. */
  sqlite3_stmt *pHeld = 0, *pOther = 0;
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key='k5'",
                                      -1, &pHeld, 0),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_step(pHeld), SQLITE_ROW);
  const unsigned char *zHeld = sqlite3_column_text(pHeld, 0);
  char zCopy[64];
  snprintf(zCopy, sizeof(zCopy), "%s", (const char *)zHeld);
  ck_assert_str_eq(zCopy, "value-5");
  sqlite3_value *pDup = sqlite3_value_dup(sqlite3_column_value(pHeld, 0));
  ck_assert_ptr_nonnull(pDup);
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?",
                                      -1, &pOther, 0),
                   SQLITE_OK);
  for (int i = 1; i <= 300; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    sqlite3_bind_text(pOther, 1, k, -1, SQLITE_TRANSIENT);
    ck_assert_int_eq(sqlite3_step(pOther), SQLITE_ROW);
    sqlite3_reset(pOther);
  }
  ck_assert_str_eq((const char *)zHeld, "value-5"); /* still the held row's */
  sqlite3_finalize(pHeld);
  sqlite3_finalize(pOther);
  ck_assert_str_eq((const char *)sqlite3_value_text(pDup), "value-5");
  sqlite3_value_free(pDup);
  sqlite3_close(db);
}

START_TEST(results_kept_by_sqlite) {
  resultsKeptBySqlite("UTF-8");
  /* A second database file, in UTF-16. */
  snprintf(zDbPath, sizeof(zDbPath), "%s/utf16.db", zTestDir);
  resultsKeptBySqlite("UTF-16le");
}
END_TEST

/* The second pair of tables: never renamed or dropped, written alone or
** by statements that read the first pair ('#' in the test's SQL). */
static const char *const zPair2 =
    "CREATE VIRTUAL TABLE $kw USING hashkv(sync=off);"
    "CREATE TABLE $m(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID";

/* Opens the differential test's database, with the attached one when its
** tables live there. */
static sqlite3 *diffOpen(const char *zDb) {
  sqlite3 *db = 0;
  ck_assert_int_eq(sqlite3_open(zDb, &db), SQLITE_OK);
  if (zPfx[0]) {
    char zSql[700];
    snprintf(zSql, sizeof(zSql), "ATTACH '%s-aux' AS aux", zDb);
    execOk(db, zSql);
  }
  return db;
}

START_TEST(differential_against_native_table) {
  static const char *aConf[] = {"", "OR IGNORE ", "OR REPLACE ", "OR ABORT ",
                                "OR FAIL "};
  /* HKV_DIFF_SEEDS=N runs seeds 1..N (a longer soak by hand). */
  const char *zSeeds = getenv("HKV_DIFF_SEEDS");
  bTrace = getenv("HKV_DIFF_TRACE") != 0;
  unsigned nSeed = zSeeds && atoi(zSeeds) > 0 ? (unsigned)atoi(zSeeds) : 6;
  for (unsigned seed = 1; seed <= nSeed; seed++) {
    rngState = seed;
    char zDb[500];
    /* Every third seed on an in-memory database: temporary stores (a
    ** reconnect starts from nothing; the second connection has its own). */
    /* And every third other one in an attached database. */
    int bMem = seed % 3 == 0;
    zPfx = seed % 3 == 1 ? "aux." : "";
    if (bMem) {
      snprintf(zDb, sizeof(zDb), ":memory:");
    } else {
      snprintf(zDb, sizeof(zDb), "%s/diff%u.db", zTestDir, seed);
    }
    sqlite3 *db = diffOpen(zDb), *db2;
    /* WAL, or rollback-journal mode for every other pair of seeds */
    stepExec(db, seed % 4 < 2 ? "PRAGMA $journal_mode=WAL"
                              : "PRAGMA $journal_mode=DELETE");
    stepExec(db,
             "CREATE VIRTUAL TABLE $kv USING hashkv(sync=off);"
             "CREATE TABLE $n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;");
    stepExec(db, zPair2);
    db2 = diffOpen(zDb);
    int bTxn = 0, nSave = 0;
    for (int step = 0; step < 1500; step++) {
      char zSql[800], k1[32], k2[32], k3[32], v1[32], v2[32], v3[32];
      randKey(k1, sizeof(k1));
      randKey(k2, sizeof(k2));
      randKey(k3, sizeof(k3));
      randVal(v1, sizeof(v1));
      randVal(v2, sizeof(v2));
      randVal(v3, sizeof(v3));
      const char *zC = aConf[rnd(5)];
      int op = (int)rnd(100);
      zSql[0] = 0;
      if (op < 25) {
        snprintf(zSql, sizeof(zSql), "INSERT %sINTO @ VALUES(%s, %s)", zC, k1,
                 v1);
      } else if (op < 35) {
        snprintf(zSql, sizeof(zSql),
                 "INSERT %sINTO @ VALUES(%s, %s), (%s, %s), (%s, %s)", zC, k1,
                 v1, k2, v2, k3, v3);
      } else if (op < 40) {
        snprintf(zSql, sizeof(zSql), "REPLACE INTO @ VALUES(%s, %s)", k1, v1);
      } else if (op < 48) {
        snprintf(zSql, sizeof(zSql), "UPDATE %s@ SET value = %s WHERE key = %s",
                 zC, v1, k1);
      } else if (op < 56) {
        snprintf(zSql, sizeof(zSql), "UPDATE %s@ SET key = %s WHERE key = %s",
                 zC, k1, k2);
      } else if (op < 60) {
        snprintf(zSql, sizeof(zSql),
                 "UPDATE @ SET value = %s WHERE key > %s AND key < %s", v1, k1,
                 k2);
      } else if (op < 68) {
        snprintf(zSql, sizeof(zSql), "DELETE FROM @ WHERE key = %s", k1);
      } else if (op < 71) {
        snprintf(zSql, sizeof(zSql), "DELETE FROM @ WHERE key IN (%s, %s)", k1,
                 k2);
      } else if (op < 73) {
        snprintf(zSql, sizeof(zSql), "DELETE FROM @ WHERE value = %s", v1);
      } else if (op < 77 && !bTxn) {
        stepExec(db, "BEGIN");
        bTxn = 1;
        nSave = 0;
      } else if (op < 80 && bTxn) {
        int bCommit = rnd(3) != 0;
        stepExec(db, bCommit ? "COMMIT" : "ROLLBACK");
        bTxn = 0;
        if (!bCommit && sqlite3_get_autocommit(db) && rnd(2) == 0) {
          /* A fresh second connection looks first: a DROP or RENAME this
          ** transaction made, now rolled back, is for it to mend. */
          sqlite3_close(db2);
          db2 = diffOpen(zDb);
          compareTables(db2, step, "second connection after ROLLBACK");
        }
      } else if (op < 84) {
        char z[40];
        snprintf(z, sizeof(z), "SAVEPOINT s%d", nSave++);
        stepExec(db, z);
        bTxn = 1;
      } else if (op < 87 && nSave > 0) {
        char z[40];
        int lv = (int)rnd((unsigned)nSave);
        snprintf(z, sizeof(z), "ROLLBACK TO s%d", lv);
        stepExec(db, z);
        nSave = lv + 1;
      } else if (op < 89 && nSave > 0) {
        char z[40];
        int lv = (int)rnd((unsigned)nSave);
        snprintf(z, sizeof(z), "RELEASE s%d", lv);
        stepExec(db, z);
        nSave = lv;
        if (nSave == 0 && sqlite3_get_autocommit(db)) bTxn = 0;
      } else if (op < 91 && sqlite3_get_autocommit(db)) {
        sqlite3_close(db);
        sqlite3_close(db2);
        db = diffOpen(zDb);
        db2 = diffOpen(zDb);
        if (bMem) stepExec(db, zPair2); /* an in-memory database starts empty */
        bTxn = 0;
        nSave = 0;
      } else if (op < 95) {
        /* The second connection sees the committed state of both, also
        ** while a DROP or RENAME is open. */
        compareTables(db2, step, "second connection");
      } else if (op < 96 && !tableNow(db, "kv", "kvr")) {
        /* Dropped: created again, in the transaction that dropped it too. */
        stepExec(db,
                 "CREATE VIRTUAL TABLE $kv USING hashkv(sync=off);"
                 "CREATE TABLE $n(key PRIMARY KEY NOT NULL, value) WITHOUT "
                 "ROWID");
      } else if (op < 96 && rnd(8) == 0) {
        /* Dropped, both tables, written in the open transaction or not,
        ** while the second connection has the store open; a rollback or
        ** ROLLBACK TO may bring them back with every row. */
        int bKvr = strcmp(nameNow(db, "kv", "kvr"), "kv") != 0;
        stepExec(db, bKvr ? "DROP TABLE $kvr" : "DROP TABLE $kv");
        stepExec(db, bKvr ? "DROP TABLE $nr" : "DROP TABLE $n");
      } else if (op < 96) {
        /* Renamed, both tables, inside or outside a transaction; a rollback
        ** or ROLLBACK TO may undo it, and kv's store must follow. */
        int bBack = strcmp(nameNow(db, "kv", "kvr"), "kv") != 0;
        stepExec(db, bBack ? "ALTER TABLE $kvr RENAME TO kv;"
                           "ALTER TABLE $nr RENAME TO n"
                         : "ALTER TABLE $kv RENAME TO kvr;"
                           "ALTER TABLE $n RENAME TO nr");
      } else if (op < 98) {
        /* A schema change: a ROLLBACK TO that undoes it, or a rollback,
        ** makes SQLite connect kv again while the transaction is open. */
        char z[60];
        snprintf(z, sizeof(z),
                 rnd(2) ? "CREATE TABLE IF NOT EXISTS sc%u(x)"
                        : "DROP TABLE IF EXISTS sc%u",
                 rnd(3));
        stepExec(db, z);
      } else if (op < 99 && tableNow(db, "kv", "kvr")) {
        /* The 'clear' command is a DELETE of every row, in the open
        ** transaction too. */
        int bKvr = strcmp(nameNow(db, "kv", "kvr"), "kv") != 0;
        stepExec(db, bKvr ? "INSERT INTO $kvr(kvr) VALUES('clear');"
                            "DELETE FROM $nr"
                          : "INSERT INTO $kv(kv) VALUES('clear');"
                            "DELETE FROM $n");
      } else if (op < 100 && tableNow(db, "kv", "kvr") &&
                 sqlite3_get_autocommit(db)) {
        /* Compaction changes no row. */
        int bKvr = strcmp(nameNow(db, "kv", "kvr"), "kv") != 0;
        stepExec(db, bKvr ? "INSERT INTO $kvr(kvr) VALUES('compact')"
                          : "INSERT INTO $kv(kv) VALUES('compact')");
      }
      if (zSql[0] && rnd(3) == 0) {
        /* on the second pair of tables instead */
        for (char *z = zSql; *z; z++) {
          if (*z == '@') *z = '#';
        }
      } else if (zSql[0] && rnd(8) == 0) {
        /* one statement that reads one table and writes the other */
        switch (rnd(3)) {
          case 0: /* (OR FAIL keeps the rows before the failing one, and
                  ** which those are depends on the order of the scan) */
            snprintf(zSql, sizeof(zSql),
                     "INSERT %sINTO # SELECT key, value FROM @ WHERE key > %s",
                     strcmp(zC, "OR FAIL ") ? zC : "", k1);
            break;
          case 1:
            snprintf(zSql, sizeof(zSql),
                     "DELETE FROM @ WHERE key IN (SELECT key FROM # WHERE "
                     "value = %s OR key = %s)",
                     v1, k1);
            break;
          default:
            snprintf(zSql, sizeof(zSql),
                     "UPDATE %s# SET value = (SELECT value FROM @ WHERE "
                     "@.key = #.key) WHERE key > %s",
                     zC, k1);
            break;
        }
      }
      if (sqlite3_get_autocommit(db)) {
        bTxn = 0;
        nSave = 0;
      }
      if (zSql[0] && tableNow(db, "kv", "kvr")) {
        /* Outside a transaction, now and then the second connection
        ** writes: two handles on one engine. */
        sqlite3 *dbW =
            sqlite3_get_autocommit(db) && !bMem && rnd(4) == 0 ? db2 : db;
        if (bTrace) {
          fprintf(stderr, "%d: %s%s\n", step, zSql, dbW == db2 ? " (db2)" : "");
        }
        char zE1[300], zE2[300];
        int nC1, nC2;
        char zT1[40], zT2[40], zW1[40], zW2[40];
        int rc1 =
            runOn(dbW, zSql, qualified(zT1, sizeof(zT1), nameNow(dbW, "kv", "kvr")),
                  qualified(zW1, sizeof(zW1), "kw"), zE1, sizeof(zE1), &nC1);
        int rc2 =
            runOn(dbW, zSql, qualified(zT2, sizeof(zT2), nameNow(dbW, "n", "nr")),
                  qualified(zW2, sizeof(zW2), "m"), zE2, sizeof(zE2), &nC2);
        ck_assert_msg(rc1 == rc2 && !strcmp(zE1, zE2) && nC1 == nC2,
                      "seed %u step %d: %s\nkv: %d %s changes %d\nn:  %d %s "
                      "changes %d",
                      seed, step, zSql, rc1, zE1, nC1, rc2, zE2, nC2);
      }
      compareTables(db, step, zSql);
    }
    if (!sqlite3_get_autocommit(db)) stepExec(db, "COMMIT");
    if (!tableNow(db, "kv", "kvr")) {
      stepExec(db,
               "CREATE VIRTUAL TABLE $kv USING hashkv(sync=off);"
               "CREATE TABLE $n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID");
    }
    stepExec(db, strcmp(nameNow(db, "kv", "kvr"), "kv")
                   ? "INSERT INTO $kvr(kvr) VALUES('integrity-check')"
                   : "INSERT INTO $kv(kv) VALUES('integrity-check')");
    sqlite3_close(db2);
    sqlite3_close(db);
    db = diffOpen(zDb);
    compareTables(db, -1, "reopened");
    sqlite3_close(db);
  }
}
END_TEST

int main(void) {
  Suite *s = suite_create("vtab");
  TCase *tc = tcase_create("vtab");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, scan_while_writing_same_connection);
  tcase_add_test(tc, commit_revoked_after_xsync);
  tcase_add_test(tc, connect_never_creates_a_store);
  tcase_add_test(tc, relative_path_follows_the_database);
  tcase_add_test(tc, temporary_store_goes_with_the_connection);
  tcase_add_test(tc, drop_deletes_when_committed);
  tcase_add_test(tc, rolled_back_create_leaves_nothing);
  tcase_add_test(tc, rename_never_moves_the_store);
  tcase_add_test(tc, drop_seen_by_another_connection);
  tcase_add_test(tc, killed_inside_ddl);
  tcase_add_test(tc, drop_of_a_missing_store);
  tcase_add_test(tc, path_stores_are_the_users);
  tcase_add_test(tc, link_is_protected_in_defensive_mode);
  tcase_add_test(tc, stores_of_0_1_0_keep_working);
  tcase_add_test(tc, temporary_store_of_a_dead_process);
  tcase_add_test(tc, text_in_every_encoding);
  tcase_add_test(tc, results_kept_by_sqlite);
  tcase_add_test(tc, differential_against_native_table);
  tcase_add_test(tc, busy_timeout_across_processes);
  suite_add_tcase(s, tc);
  TCase *tt = tcase_create("threads");
  tcase_add_checked_fixture(tt, setup, teardown);
  tcase_set_timeout(tt, 300);
  tcase_add_test(tt, connections_in_threads);
  suite_add_tcase(s, tt);
  return runSuite(s);
}
