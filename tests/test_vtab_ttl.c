/*
** test_vtab_ttl.c: the expires_at column (issue 19) against its reference, a
** native table n(key PRIMARY KEY NOT NULL, value, expires_at) WITHOUT ROWID
** whose expired rows the test deletes by hand before every statement, under
** a clock the test sets (the engine's HkvEnv seam). Seeded random statement
** sequences (inserts with every conflict clause, REPLACE, UPDATE of the
** value, of expires_at (re-arm, persist, a past time) and of the key, scans
** that filter on expires_at, deletes, transactions and savepoints, the clock
** moving, reconnects) run on both; each statement's code, message and
** changes() must agree, then both tables row for row and random queries.
*/
#include <sqlite3.h>

#include "hkvInt.h"
#include "testutil.h"

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

static char zDbPath[400];
static int64_t iNowMs; /* the test's clock */
static HkvEnv clockEnv;
static int64_t testNow(int bExact) {
  (void)bExact; return iNowMs; }

static void setup(void) {
  testDirSetup();
  snprintf(zDbPath, sizeof(zDbPath), "%s/ttl.db", zTestDir);
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
  iNowMs = 1700000000000;
  clockEnv = hkvPosixEnv;
  clockEnv.xNow = testNow;
  hkvEnvInstall(&clockEnv);
}
static void teardown(void) {
  hkvEnvInstall(NULL);
  testDirTeardown();
}

static void execOk(sqlite3 *db, const char *zSql) {
  char *zErr = 0;
  int rc = sqlite3_exec(db, zSql, 0, 0, &zErr);
  if (rc) ck_abort_msg("%s: %s", zSql, zErr ? zErr : "?");
}

static sqlite3 *openDb(void) {
  sqlite3 *db = 0;
  ck_assert_int_eq(sqlite3_open(zDbPath, &db), SQLITE_OK);
  execOk(db, "PRAGMA synchronous=OFF");
  return db;
}


/* The first column of the first row of zSql, as text ("" if none). */
static void queryText(sqlite3 *db, const char *zSql, char *zOut, size_t n) {
  sqlite3_stmt *p = 0;
  zOut[0] = 0;
  int rc = sqlite3_prepare_v2(db, zSql, -1, &p, 0);
  if (rc == SQLITE_OK && (rc = sqlite3_step(p)) == SQLITE_ROW) {
    const unsigned char *z = sqlite3_column_text(p, 0);
    snprintf(zOut, n, "%s", z ? (const char *)z : "NULL");
  } else if (rc != SQLITE_DONE) {
    snprintf(zOut, n, "error %d: %s", rc, sqlite3_errmsg(db));
  }
  sqlite3_finalize(p);
}

/* A time as a SQL literal in seconds: an integer, or with 3 decimals. */
static void timeLit(char *z, size_t n, int64_t iMs, int bReal) {
  if (bReal) {
    snprintf(z, n, "%lld.%03lld", (long long)(iMs / 1000),
             (long long)(iMs % 1000));
  } else {
    snprintf(z, n, "%lld", (long long)(iMs / 1000));
  }
}

static unsigned rngState;
static unsigned rnd(unsigned n) {
  rngState = rngState * 1103515245u + 12345u;
  return (rngState >> 8) % n;
}

static void randKey(char *z, size_t n) {
  if (rnd(2)) {
    snprintf(z, n, "%u", rnd(6));
  } else {
    snprintf(z, n, "'%c'", 'a' + rnd(6));
  }
}
static void randVal(char *z, size_t n) {
  switch (rnd(3)) {
    case 0:
      snprintf(z, n, "%u", rnd(1000));
      break;
    case 1:
      snprintf(z, n, "'v%u'", rnd(1000));
      break;
    default:
      snprintf(z, n, "NULL");
  }
}
/* An expiry: never, a few seconds ahead (INTEGER or to the millisecond),
** now exactly (already expired: not after now), or past; with bAhead, never
** or ahead only. (A row written already expired is gone at once in kv; the
** native table keeps it until the next purge, so a second row of the same
** statement would see it there: multi-row statements take bAhead.) */
static void randExp(char *z, size_t n, int bAhead) {
  switch (rnd(bAhead ? 4 : 6)) {
    case 0:
      snprintf(z, n, "NULL");
      break;
    case 1:
      timeLit(z, n, iNowMs + 1000 * (1 + rnd(8)), 0);
      break;
    case 2:
    case 3:
      timeLit(z, n, iNowMs + 1 + rnd(8000), 1);
      break;
    case 4:
      timeLit(z, n, iNowMs, 1);
      break;
    default:
      timeLit(z, n, iNowMs - 1000 * rnd(5) - 1000, 0);
  }
}

/* The native table's expired rows go, as the clock says. */
static void purge(sqlite3 *db) {
  char zNow[40], zSql[120];
  timeLit(zNow, sizeof(zNow), iNowMs, 1);
  snprintf(zSql, sizeof(zSql), "DELETE FROM n WHERE expires_at <= %s", zNow);
  execOk(db, zSql);
}

/* zTmpl with '@' as zTab. */
static void expand(char *zOut, size_t nOut, const char *zTmpl,
                   const char *zTab) {
  size_t j = 0;
  for (const char *p = zTmpl; *p && j + 8 < nOut; p++) {
    if (*p == '@') {
      j += (size_t)snprintf(zOut + j, nOut - j, "%s", zTab);
    } else {
      zOut[j++] = *p;
    }
  }
  zOut[j] = 0;
}

/* Runs zTmpl on table zTab: its code, message ("kv." and "n." made "T.")
** and changes(). */
static int runOn(sqlite3 *db, const char *zTmpl, const char *zTab, char *zErr,
                 size_t nErr, int *pnChange) {
  char zSql[600];
  expand(zSql, sizeof(zSql), zTmpl, zTab);
  sqlite3_exec(db, zSql, 0, 0, 0);
  int rc = sqlite3_extended_errcode(db);
  if (rc == SQLITE_DONE || rc == SQLITE_ROW) rc = SQLITE_OK;
  char zPre[8];
  snprintf(zPre, sizeof(zPre), "%s.", zTab);
  const char *zMsg = rc ? sqlite3_errmsg(db) : "";
  const char *zAt = strstr(zMsg, zPre);
  if (zAt) {
    snprintf(zErr, nErr, "%.*sT.%s", (int)(zAt - zMsg), zMsg,
             zAt + strlen(zPre));
  } else {
    snprintf(zErr, nErr, "%s", zMsg);
  }
  *pnChange = sqlite3_changes(db);
  return rc;
}

/* Both tables' rows, expiries in milliseconds, compared. */
static const char *const zDump =
    "SELECT group_concat(r, ' ') FROM (SELECT quote(key) || '=' || "
    "quote(value) || '~' || ifnull(CAST(round(expires_at * 1000) AS "
    "INTEGER), 'never') AS r FROM @ ORDER BY key)";

static void sameQuery(sqlite3 *db, const char *zTmpl, unsigned seed, int step,
                      const char *zWhat) {
  char zA[600], zB[600], zRa[4000], zRb[4000];
  expand(zA, sizeof(zA), zTmpl, "kv");
  expand(zB, sizeof(zB), zTmpl, "n");
  queryText(db, zA, zRa, sizeof(zRa));
  queryText(db, zB, zRb, sizeof(zRb));
  if (strcmp(zRa, zRb)) {
    ck_abort_msg("seed %u step %d (%s): %s\nkv: %s\nn:  %s", seed, step, zWhat,
                 zA, zRa, zRb);
  }
}

static const char *const zCreate =
    "CREATE VIRTUAL TABLE IF NOT EXISTS kv USING hashkv(sync=off);"
    "CREATE TABLE IF NOT EXISTS n(key PRIMARY KEY NOT NULL, value, "
    "expires_at) WITHOUT ROWID;";

START_TEST(differential_expiry_against_native_table) {
  static const char *aConf[] = {"", "OR IGNORE ", "OR REPLACE ", "OR ABORT ",
                                "OR FAIL "};
  for (unsigned seed = 1; seed <= 4; seed++) {
    rngState = seed;
    char zRm[1000];
    snprintf(zRm, sizeof(zRm), "rm -rf %s %s-hashkv", zDbPath, zDbPath);
    ck_assert_int_eq(system(zRm), 0);
    sqlite3 *db = openDb();
    execOk(db, zCreate);
    int nSave = 0;
    for (int step = 0; step < 1200; step++) {
      char zSql[600], k1[16], k2[16], v1[16], v2[16], e1[40], e2[40];
      randKey(k1, sizeof(k1));
      randKey(k2, sizeof(k2));
      randVal(v1, sizeof(v1));
      randVal(v2, sizeof(v2));
      randExp(e1, sizeof(e1), 0);
      randExp(e2, sizeof(e2), 1);
      const char *zC = aConf[rnd(5)];
      int op = (int)rnd(100);
      zSql[0] = 0;
      if (op < 14) {
        snprintf(zSql, sizeof(zSql),
                 "INSERT %sINTO @(key, value, expires_at) VALUES(%s, %s, %s)",
                 zC, k1, v1, e1);
      } else if (op < 20) {
        snprintf(zSql, sizeof(zSql),
                 "INSERT %sINTO @(key, value) VALUES(%s, %s)", zC, k1, v1);
      } else if (op < 25) {
        snprintf(zSql, sizeof(zSql),
                 "INSERT %sINTO @(key, value, expires_at) VALUES(%s, %s, %s), "
                 "(%s, %s, %s)",
                 zC, k1, v1, e2, k2, v2, e2);
      } else if (op < 30) {
        snprintf(zSql, sizeof(zSql), "REPLACE INTO @(key, value) VALUES(%s, %s)",
                 k1, v1);
      } else if (op < 38) {
        snprintf(zSql, sizeof(zSql), "UPDATE %s@ SET value = %s WHERE key = %s",
                 zC, v1, k1);
      } else if (op < 48) {
        snprintf(zSql, sizeof(zSql),
                 "UPDATE @ SET expires_at = %s WHERE key = %s", e1, k1);
      } else if (op < 55) {
        snprintf(zSql, sizeof(zSql), "UPDATE %s@ SET key = %s WHERE key = %s",
                 zC, k1, k2);
      } else if (op < 59) {
        snprintf(zSql, sizeof(zSql),
                 "UPDATE @ SET value = %s, expires_at = %s WHERE key IN (%s, "
                 "%s)",
                 v1, e1, k1, k2);
      } else if (op < 64) {
        snprintf(zSql, sizeof(zSql), "DELETE FROM @ WHERE key = %s", k1);
      } else if (op < 66) {
        snprintf(zSql, sizeof(zSql),
                 "DELETE FROM @ WHERE expires_at IS NOT NULL AND expires_at < "
                 "%s",
                 e1);
      } else if (op < 68) {
        snprintf(zSql, sizeof(zSql),
                 "UPDATE @ SET expires_at = expires_at + 1 WHERE expires_at IS "
                 "NOT NULL");
      } else if (op < 70) {
        snprintf(zSql, sizeof(zSql),
                 "UPDATE @ SET value = value || 'x' WHERE key > %s", k1);
      } else if (op < 74 && sqlite3_get_autocommit(db)) {
        execOk(db, "BEGIN");
        nSave = 0;
      } else if (op < 77 && !sqlite3_get_autocommit(db)) {
        execOk(db, rnd(3) ? "COMMIT" : "ROLLBACK");
        nSave = 0;
      } else if (op < 80) {
        char z[40];
        snprintf(z, sizeof(z), "SAVEPOINT s%d", nSave++);
        execOk(db, z);
      } else if (op < 83 && nSave > 0) {
        char z[40];
        int lv = (int)rnd((unsigned)nSave);
        snprintf(z, sizeof(z), "ROLLBACK TO s%d", lv);
        execOk(db, z);
        nSave = lv + 1;
      } else if (op < 85 && nSave > 0) {
        char z[40];
        int lv = (int)rnd((unsigned)nSave);
        snprintf(z, sizeof(z), "RELEASE s%d", lv);
        execOk(db, z);
        nSave = lv;
      } else if (op < 87 && sqlite3_get_autocommit(db)) {
        sqlite3_close(db); /* expiries persist */
        db = openDb();
      } else if (op < 88 && sqlite3_get_autocommit(db)) {
        execOk(db, "INSERT INTO kv(kv) VALUES('compact')");
      } else {
        iNowMs += rnd(2500); /* the clock moves, in a transaction too */
      }
      if (sqlite3_get_autocommit(db)) nSave = 0;
      if (zSql[0]) {
        purge(db);
        char zE1[300], zE2[300];
        int nC1, nC2;
        int rc1 = runOn(db, zSql, "kv", zE1, sizeof(zE1), &nC1);
        int rc2 = runOn(db, zSql, "n", zE2, sizeof(zE2), &nC2);
        if (rc1 != rc2 || strcmp(zE1, zE2) || nC1 != nC2) {
          ck_abort_msg("seed %u step %d: %s\nkv: %d %s changes %d\n"
                       "n:  %d %s changes %d",
                       seed, step, zSql, rc1, zE1, nC1, rc2, zE2, nC2);
        }
      }
      purge(db);
      sameQuery(db, zDump, seed, step, zSql[0] ? zSql : "after");
      if (rnd(3) == 0) {
        char zQ[300];
        switch (rnd(6)) {
          case 0:
            snprintf(zQ, sizeof(zQ), "SELECT count(*) FROM @");
            break;
          case 4: /* a filtered scan, sorted by the module (ORDER BY) */
            snprintf(zQ, sizeof(zQ),
                     "SELECT group_concat(quote(key) || ' ' || "
                     "quote(round(expires_at * 1000))) FROM (SELECT key, "
                     "expires_at FROM @ WHERE key >= %s ORDER BY key DESC)",
                     k1);
            break;
          case 5: /* a filtered scan in log order: order-free results */
            snprintf(zQ, sizeof(zQ),
                     "SELECT count(*), quote(sum(round(expires_at * 1000))) "
                     "FROM @ WHERE key < %s",
                     k1);
            break;
          case 1:
            snprintf(zQ, sizeof(zQ),
                     "SELECT quote(value) || ' ' || quote(round(expires_at * "
                     "1000)) FROM @ WHERE key = %s",
                     k1);
            break;
          case 2:
            snprintf(zQ, sizeof(zQ),
                     "SELECT group_concat(quote(key)) FROM (SELECT key FROM @ "
                     "WHERE key IN (%s, %s) ORDER BY key)",
                     k1, k2);
            break;
          default:
            snprintf(zQ, sizeof(zQ),
                     "SELECT group_concat(quote(key)) FROM (SELECT key FROM @ "
                     "WHERE expires_at IS NULL ORDER BY key)");
        }
        sameQuery(db, zQ, seed, step, "query");
      }
    }
    if (!sqlite3_get_autocommit(db)) execOk(db, "COMMIT");
    execOk(db, "INSERT INTO kv(kv) VALUES('integrity-check')");
    sqlite3_close(db);
    db = openDb();
    purge(db);
    sameQuery(db, zDump, seed, -1, "reopened");
    sqlite3_close(db);
  }
}
END_TEST

/* The column's contract where a golden file cannot set the clock: the
** schema, SELECT * without it, an INSERT without it, seconds kept to the
** millisecond (a whole second reads back INTEGER), TEXT and BLOB refused
** naming the column with nothing written, and hashkv_stats' counters. */
START_TEST(expires_at_column_contract) {
  sqlite3 *db = openDb();
  execOk(db, "CREATE VIRTUAL TABLE kv USING hashkv");
  char z[400];
  queryText(db,
            "SELECT group_concat(name || ':' || hidden) FROM "
            "pragma_table_xinfo('kv')",
            z, sizeof(z));
  ck_assert_str_eq(z, "key:0,value:0,expires_at:1,kv:1");
  execOk(db,
         "INSERT INTO kv(key, value, expires_at) VALUES('a', 1, "
         "1700000010.25), ('b', 2, 1700000020), ('c', 3, NULL);"
         "INSERT INTO kv VALUES('d', 4)");
  queryText(db,
            "SELECT group_concat(key || '=' || value) FROM (SELECT * FROM kv "
            "ORDER BY key)",
            z, sizeof(z));
  ck_assert_str_eq(z, "a=1,b=2,c=3,d=4");
  sqlite3_stmt *pAll = 0;
  ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT * FROM kv", -1, &pAll, 0),
                   SQLITE_OK);
  ck_assert_int_eq(sqlite3_column_count(pAll), 2); /* key, value */
  sqlite3_finalize(pAll);
  queryText(db,
            "SELECT group_concat(key || ':' || typeof(expires_at) || ':' || "
            "ifnull(expires_at, '-')) FROM (SELECT * , expires_at FROM kv "
            "ORDER BY key)",
            z, sizeof(z));
  ck_assert_str_eq(z, "a:real:1700000010.25,b:integer:1700000020,c:null:-,"
                      "d:null:-");
  /* Bad types: an error naming the column; the row is unchanged. */
  int rc = sqlite3_exec(db, "UPDATE kv SET expires_at = 'soon' WHERE key='a'",
                        0, 0, 0);
  ck_assert_int_eq(rc, SQLITE_MISMATCH);
  ck_assert_str_eq(sqlite3_errmsg(db),
                   "kv.expires_at must be INTEGER or REAL seconds since "
                   "1970, or NULL");
  rc = sqlite3_exec(
      db, "INSERT INTO kv(key, value, expires_at) VALUES('e', 5, x'00')", 0, 0,
      0);
  ck_assert_int_eq(rc, SQLITE_MISMATCH);
  queryText(db, "SELECT expires_at FROM kv WHERE key = 'a'", z, sizeof(z));
  ck_assert_str_eq(z, "1700000010.25");
  queryText(db, "SELECT count(*) FROM kv WHERE key = 'e'", z, sizeof(z));
  ck_assert_str_eq(z, "0");
  queryText(db,
            "SELECT group_concat(name || '=' || value) FROM "
            "hashkv_stats('kv') WHERE name LIKE 'expir%'",
            z, sizeof(z));
  ck_assert_str_eq(z, "expiring_keys=2,expired_keys=0");
  /* The clock passes 'a': gone everywhere. */
  iNowMs = 1700000010250;
  queryText(db,
            "SELECT group_concat(key) FROM (SELECT key FROM kv ORDER BY key)",
            z, sizeof(z));
  ck_assert_str_eq(z, "b,c,d");
  queryText(db, "SELECT count(*) FROM kv WHERE key = 'a'", z, sizeof(z));
  ck_assert_str_eq(z, "0");
  execOk(db, "INSERT INTO kv VALUES('a', 'again')"); /* no UNIQUE error */
  sqlite3_close(db);
}
END_TEST

int main(void) {
  Suite *s = suite_create("vtab_ttl");
  TCase *tc = tcase_create("vtab_ttl");
  tcase_add_checked_fixture(tc, setup, teardown);
  tcase_set_timeout(tc, 300);
  tcase_add_test(tc, expires_at_column_contract);
  tcase_add_test(tc, differential_expiry_against_native_table);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
