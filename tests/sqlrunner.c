/*
** sqlrunner.c: runs an SQL script against SQLite with hashkv linked in
** statically (so it works under the sanitizers, unlike a .load into the
** system sqlite3) and compares the output with an expected file.
**
**   sqlrunner SCRIPT [EXPECTED]
**
** Runs in a fresh temporary directory holding "test.db". Output: one line
** per row, columns joined by '|', NULL as empty; a failing statement prints
** "Error: <message> (<extended code>)" and the script goes on.
** Directives, on lines of their own:
**   .reopen      close every connection and reopen connection 0
**   .conn N      switch to connection N (0..3), opening it on first use
**   .echo TEXT   print TEXT
** With EXPECTED, exits 1 and prints both texts when they differ; without,
** prints the output.
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <ftw.h>

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

#define NCONN 4
static sqlite3 *aDb[NCONN];

typedef struct Out {
  char *z;
  size_t n, nAlloc;
} Out;

static void outAppend(Out *o, const char *z, size_t n) {
  if (o->n + n + 1 > o->nAlloc) {
    o->nAlloc = (o->n + n + 1) * 2;
    o->z = realloc(o->z, o->nAlloc);
    if (!o->z) exit(2);
  }
  memcpy(o->z + o->n, z, n);
  o->n += n;
  o->z[o->n] = 0;
}

static void outStr(Out *o, const char *z) { outAppend(o, z, strlen(z)); }

static sqlite3 *conn(int i) {
  if (!aDb[i]) {
    if (sqlite3_open("test.db", &aDb[i]) != SQLITE_OK) {
      fprintf(stderr, "cannot open test.db\n");
      exit(2);
    }
  }
  return aDb[i];
}

/* "Error: <message> (<extended code>)" */
static void outError(sqlite3 *db, Out *o) {
  char zBuf[64];
  outStr(o, "Error: ");
  outStr(o, sqlite3_errmsg(db));
  snprintf(zBuf, sizeof(zBuf), " (%d)\n", sqlite3_extended_errcode(db));
  outStr(o, zBuf);
}

static void runSql(sqlite3 *db, const char *zSql, Out *o) {
  while (zSql && *zSql) {
    sqlite3_stmt *pStmt = 0;
    const char *zTail = 0;
    int rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, &zTail);
    if (rc != SQLITE_OK) {
      outError(db, o);
      return;
    }
    zSql = zTail;
    if (!pStmt) continue;
    while ((rc = sqlite3_step(pStmt)) == SQLITE_ROW) {
      int n = sqlite3_column_count(pStmt);
      for (int i = 0; i < n; i++) {
        const char *z = (const char *)sqlite3_column_text(pStmt, i);
        if (i) outStr(o, "|");
        if (z) outStr(o, z);
      }
      outStr(o, "\n");
    }
    if (rc != SQLITE_DONE) outError(db, o);
    sqlite3_finalize(pStmt);
  }
}

static char *readAll(const char *zPath) {
  FILE *f = fopen(zPath, "rb");
  if (!f) return 0;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *z = malloc((size_t)n + 1);
  if (!z || fread(z, 1, (size_t)n, f) != (size_t)n) exit(2);
  z[n] = 0;
  fclose(f);
  return z;
}

static int rmOne(const char *zPath, const struct stat *pSt, int flag,
                 struct FTW *pFtw) {
  (void)pSt;
  (void)flag;
  (void)pFtw;
  return remove(zPath);
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [EXPECTED]\n", argv[0]);
    return 2;
  }
  char *zScript = readAll(argv[1]);
  char *zWant = argc > 2 ? readAll(argv[2]) : 0;
  if (!zScript || (argc > 2 && !zWant)) {
    fprintf(stderr, "cannot read %s\n", zScript ? argv[2] : argv[1]);
    return 2;
  }
  char zDir[] = "/tmp/hkvsql.XXXXXX";
  if (!mkdtemp(zDir) || chdir(zDir) != 0) return 2;
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);

  Out o = {0, 0, 0}, stmt = {0, 0, 0};
  int iConn = 0;
  char *zLine = zScript;
  while (zLine && *zLine) {
    char *zEnd = strchr(zLine, '\n');
    size_t n = zEnd ? (size_t)(zEnd - zLine) : strlen(zLine);
    if (stmt.n == 0 && zLine[0] == '.') {
      char zCmd[256];
      snprintf(zCmd, sizeof(zCmd), "%.*s", (int)n, zLine);
      if (!strcmp(zCmd, ".reopen")) {
        for (int i = 0; i < NCONN; i++) {
          if (aDb[i]) sqlite3_close(aDb[i]);
          aDb[i] = 0;
        }
        iConn = 0;
      } else if (!strncmp(zCmd, ".conn ", 6)) {
        iConn = atoi(zCmd + 6);
        if (iConn < 0 || iConn >= NCONN) return 2;
      } else if (!strncmp(zCmd, ".echo ", 6)) {
        outStr(&o, zCmd + 6);
        outStr(&o, "\n");
      } else {
        fprintf(stderr, "unknown directive %s\n", zCmd);
        return 2;
      }
    } else {
      outAppend(&stmt, zLine, n);
      outStr(&stmt, "\n");
      if (sqlite3_complete(stmt.z)) {
        runSql(conn(iConn), stmt.z, &o);
        stmt.n = 0;
        stmt.z[0] = 0;
      }
    }
    zLine = zEnd ? zEnd + 1 : 0;
  }
  for (int i = 0; i < NCONN; i++) {
    if (aDb[i]) sqlite3_close(aDb[i]);
  }
  if (chdir("/") == 0) nftw(zDir, rmOne, 16, FTW_DEPTH | FTW_PHYS);
  int rc = 0;
  if (zWant) {
    if (strcmp(zWant, o.z ? o.z : "") != 0) {
      printf("--- expected (%s)\n%s--- got\n%s", argv[2], zWant,
             o.z ? o.z : "");
      rc = 1;
    }
  } else {
    fputs(o.z ? o.z : "", stdout);
  }
  free(zScript);
  free(zWant);
  free(o.z);
  free(stmt.z);
  return rc;
}
