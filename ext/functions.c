/*
** functions.c: the commands (INSERT INTO kv(kv) VALUES(...)), and the
** SQL functions hashkv_stats, hashkv_check, hashkv_version, hashkv_reclaim.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

/* ---- commands: INSERT INTO kv(kv) VALUES('<command>') ---- */

int hkvRunCommand(HkvVtab *p, sqlite3_value *pCmd) {
  const char *z = (const char *)sqlite3_value_text(pCmd);
  if (!z) return SQLITE_NOMEM;
  int rc;
  if (!strcmp(z, "integrity-check")) {
    rc = hkv_integrity_check(p->pStore);
  } else if (!strcmp(z, "compact")) {
    rc = hkv_compact(p->pStore);
  } else if (!strcmp(z, "clear")) {
    rc = hkv_clear(p->pStore);
  } else {
    return hkvVtabErr(
        p, SQLITE_ERROR,
        "hashkv: unknown command '%s' (compact, integrity-check, clear)", z);
  }
  return rc ? hkvStoreErr(p, rc) : SQLITE_OK;
}

/* ---- hashkv_stats('table') and hashkv_check('table') ----
**
** Eponymous table-valued functions over one hashkv table:
**   SELECT * FROM hashkv_stats('kv')   the engine's counters, (name, value)
**   SELECT * FROM hashkv_check('kv')   'ok', or the problem found, as
**                                      PRAGMA integrity_check reports
** Declared schemas
**   CREATE TABLE x(name TEXT, value INTEGER, tbl HIDDEN)
**   CREATE TABLE x(integrity_check TEXT, tbl HIDDEN)
** Plans: idxNum 1 when tbl = ? is usable (argv[0] the name); without it
** the plan is refused (SQLITE_CONSTRAINT), so a join puts the table that
** supplies the name first.
**
** The argument is "table" or "schema.table". A bare name resolves as SQLite
** resolves table names: temp, main, then the attached databases in the
** order they were attached. The function opens the table itself if this
** connection has not yet (by preparing a statement that reads it, which
** calls xConnect), and reads through the table's own store handle, so it
** sees what the table sees. Both only read: they work on a read-only
** connection, and on a store that refuses writes after an I/O error.
** Registered DIRECTONLY, as hashkv is: opening a table from a view or
** trigger of a schema handed to the application is what that prevents.
*/

#define HKV_FN_STATS 0
#define HKV_FN_CHECK 1

#define HKV_STATS_NAME 0
#define HKV_STATS_VALUE 1
#define HKV_STATS_TABLE 2
#define HKV_CHECK_RESULT 0
#define HKV_CHECK_TABLE 1

typedef struct HkvFn {
  sqlite3_vtab base;
  HkvConn *pConn;
  sqlite3 *db;
  int eFn; /* HKV_FN_STATS or HKV_FN_CHECK */
} HkvFn;

typedef struct HkvFnCursor {
  sqlite3_vtab_cursor base;
  hkv_stats st;   /* stats: the counters */
  char *zProblem; /* check: what was found, NULL for "ok" */
  int i, nRow;    /* current row, rows */
} HkvFnCursor;

/* The counters, from the one list in hashkv.h. */
static const char *const aStatName[] = {
#define HKV_STAT_NAME(name, doc) #name,
    HKV_STATS_MAP(HKV_STAT_NAME)
#undef HKV_STAT_NAME
};
#define HKV_NSTAT ((int)(sizeof(aStatName) / sizeof(aStatName[0])))

static sqlite3_uint64 statValue(const hkv_stats *s, int i) {
  const uint64_t a[] = {
#define HKV_STAT_VALUE(name, doc) s->name,
      HKV_STATS_MAP(HKV_STAT_VALUE)
#undef HKV_STAT_VALUE
  };
  return a[i];
}

static const char *fnName(const HkvFn *pFn) {
  return pFn->eFn == HKV_FN_STATS ? "hashkv_stats" : "hashkv_check";
}

static int fnInit(sqlite3 *db, void *pAux, sqlite3_vtab **ppVtab, int eFn) {
  int rc = sqlite3_declare_vtab(
      db, eFn == HKV_FN_STATS
              ? "CREATE TABLE x(name TEXT, value INTEGER, tbl HIDDEN)"
              : "CREATE TABLE x(integrity_check TEXT, tbl HIDDEN)");
  if (rc) return rc;
  HkvFn *p = sqlite3_malloc(sizeof(*p));
  if (!p) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->pConn = pAux;
  p->db = db;
  p->eFn = eFn;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  *ppVtab = &p->base;
  return SQLITE_OK;
}

/* Both functions are one module registered under two names: argv[0] is
** the name it was used by. */
static int fnConnect(sqlite3 *db, void *pAux, int argc, const char *const *argv,
                     sqlite3_vtab **ppVtab, char **pzErr) {
  (void)argc;
  (void)pzErr;
  int eFn =
      sqlite3_stricmp(argv[0], "hashkv_check") ? HKV_FN_STATS : HKV_FN_CHECK;
  return fnInit(db, pAux, ppVtab, eFn);
}

static int fnDisconnect(sqlite3_vtab *pVtab) {
  sqlite3_free(pVtab->zErrMsg);
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

static int fnBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo) {
  HkvFn *p = (HkvFn *)pVtab;
  int iTable = p->eFn == HKV_FN_STATS ? HKV_STATS_TABLE : HKV_CHECK_TABLE;
  for (int i = 0; i < pInfo->nConstraint; i++) {
    const struct sqlite3_index_constraint *pC = &pInfo->aConstraint[i];
    if (pC->iColumn == iTable && pC->op == SQLITE_INDEX_CONSTRAINT_EQ) {
      if (!pC->usable) return SQLITE_CONSTRAINT;
      pInfo->aConstraintUsage[i].argvIndex = 1;
      pInfo->aConstraintUsage[i].omit = 1;
      pInfo->idxNum = 1;
      pInfo->estimatedCost = 10;
      pInfo->estimatedRows = p->eFn == HKV_FN_STATS ? HKV_NSTAT : 1;
      return SQLITE_OK;
    }
  }
  pInfo->idxNum = 0;
  pInfo->estimatedCost = 1e9;
  return SQLITE_OK;
}

static int fnOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur) {
  (void)pVtab;
  HkvFnCursor *c = sqlite3_malloc(sizeof(*c));
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  *ppCur = &c->base;
  return SQLITE_OK;
}

static int fnClose(sqlite3_vtab_cursor *cur) {
  sqlite3_free(((HkvFnCursor *)cur)->zProblem);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Sets the function's error message, "<function>: <text>"; returns rc. */
static int fnErr(HkvFn *pFn, int rc, const char *zText) {
  sqlite3_free(pFn->base.zErrMsg);
  pFn->base.zErrMsg = sqlite3_mprintf("%s: %s", fnName(pFn), zText);
  return zText ? rc : SQLITE_NOMEM;
}

/*
** The hashkv table that zArg names ("table" or "schema.table", resolved as
** SQLite resolves table names: see above), opened if need be, in *pp; or an
** error code and, in *pzMsg (sqlite3_malloc'd), what was not found.
*/
int hkvFindTable(HkvConn *c, sqlite3 *db, const char *zArg, HkvVtab **pp,
                 char **pzMsg) {
  const char *zDb = 0, *zName = zArg, *z;
  *pp = 0;
  *pzMsg = 0;
  const char *zDot = strchr(zArg, '.');
  for (int i = 0; zDot && (z = sqlite3_db_name(db, i)) != 0; i++) {
    if ((ptrdiff_t)strlen(z) == zDot - zArg &&
        !sqlite3_strnicmp(z, zArg, (int)(zDot - zArg))) {
      zDb = z;
      zName = zDot + 1;
      break;
    }
  }
  /* A schema that cannot be read (locked, damaged) is that error, not
  ** "no such table". */
  int r = 0;
  if (zDb) {
    r = hkvSchemaHas(db, zDb, zName, 1);
    if (r != 1) zDb = 0;
  } else {
    /* temp (1), main (0), then the attached ones (2, 3, ...) */
    for (int j = 0; r >= 0; j++) {
      int i = j < 2 ? j ^ 1 : j;
      z = sqlite3_db_name(db, i);
      if (!z && i >= 2) break;
      r = z ? hkvSchemaHas(db, z, zName, 1) : 0;
      if (r == 1) {
        zDb = z;
        break;
      }
    }
  }
  if (r < 0) {
    int rcSchema = sqlite3_errcode(db);
    *pzMsg = sqlite3_mprintf("cannot read the schema: %s", sqlite3_errmsg(db));
    if (!*pzMsg) return SQLITE_NOMEM;
    return rcSchema != SQLITE_OK && rcSchema != SQLITE_ROW &&
                   rcSchema != SQLITE_DONE
               ? rcSchema
               : SQLITE_ERROR;
  }
  int rc = SQLITE_OK;
  if (!zDb) {
    *pzMsg = sqlite3_mprintf("no such table: %s", zArg);
    return *pzMsg ? SQLITE_ERROR : SQLITE_NOMEM;
  }
  /* Preparing a read of the table connects it. */
  sqlite3_stmt *pStmt = 0;
  char *zSql =
      sqlite3_mprintf("SELECT 0 FROM \"%w\".\"%w\" WHERE 0", zDb, zName);
  if (!zSql) return SQLITE_NOMEM;
  rc = sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0);
  sqlite3_free(zSql);
  if (rc) *pzMsg = sqlite3_mprintf("%s", sqlite3_errmsg(db));
  sqlite3_finalize(pStmt);
  for (HkvVtab *q = c->pVtabs; !rc && q; q = q->pNextVtab) {
    if ((q->pStore || q->zMissing) && !sqlite3_stricmp(q->zSchema, zDb) &&
        !sqlite3_stricmp(q->zName, zName)) {
      *pp = q; /* the newest instance: the list is newest first */
      return SQLITE_OK;
    }
  }
  if (!rc) {
    *pzMsg = sqlite3_mprintf("%s.%s is not a hashkv table", zDb, zName);
    rc = SQLITE_ERROR;
  }
  return *pzMsg ? rc : SQLITE_NOMEM;
}

/* The table the function's argument names, or its error set on pFn. */
static int fnTable(HkvFn *pFn, sqlite3_value *pArg, HkvVtab **pp) {
  const char *zArg = (const char *)sqlite3_value_text(pArg);
  *pp = 0;
  if (!zArg) {
    if (sqlite3_value_type(pArg) != SQLITE_NULL) return SQLITE_NOMEM;
    char *zMsg = sqlite3_mprintf("name a hashkv table: %s('kv')", fnName(pFn));
    int rc = fnErr(pFn, SQLITE_ERROR, zMsg);
    sqlite3_free(zMsg);
    return rc;
  }
  char *zMsg = 0;
  int rc = hkvFindTable(pFn->pConn, pFn->db, zArg, pp, &zMsg);
  if (rc && zMsg) rc = fnErr(pFn, rc, zMsg);
  sqlite3_free(zMsg);
  return rc;
}

static int fnFilter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr,
                    int argc, sqlite3_value **argv) {
  HkvFnCursor *c = (HkvFnCursor *)cur;
  HkvFn *pFn = (HkvFn *)cur->pVtab;
  HkvVtab *p;
  (void)idxStr;
  c->i = c->nRow = 0;
  sqlite3_free(c->zProblem);
  c->zProblem = 0;
  if (idxNum != 1 || argc < 1) {
    char *zMsg = sqlite3_mprintf("name a hashkv table: %s('kv')", fnName(pFn));
    int rc = fnErr(pFn, SQLITE_ERROR, zMsg);
    sqlite3_free(zMsg);
    return rc;
  }
  int rc = fnTable(pFn, argv[0], &p);
  if (rc) return rc;
  if (!p->pStore) return fnErr(pFn, SQLITE_CANTOPEN, p->zMissing);
  if (pFn->eFn == HKV_FN_STATS) {
    int hrc = hkv_stats_get(p->pStore, &c->st);
    if (hrc) return hkvSqliteCode(hrc);
    c->nRow = HKV_NSTAT;
    return SQLITE_OK;
  }
  int hrc = hkv_integrity_check(p->pStore);
  if (hrc == HKV_CORRUPT) {
    const char *zMsg = hkv_errmsg(p->pStore);
    if (!strcmp(zMsg, hkv_strerror(HKV_OK))) zMsg = hkv_strerror(hrc);
    c->zProblem = sqlite3_mprintf("%s", zMsg);
    if (!c->zProblem) return SQLITE_NOMEM;
  } else if (hrc) {
    return fnErr(pFn, hkvSqliteCode(hrc), hkv_errmsg(p->pStore));
  }
  c->nRow = 1;
  return SQLITE_OK;
}

static int fnNext(sqlite3_vtab_cursor *cur) {
  ((HkvFnCursor *)cur)->i++;
  return SQLITE_OK;
}

static int fnEof(sqlite3_vtab_cursor *cur) {
  HkvFnCursor *c = (HkvFnCursor *)cur;
  return c->i >= c->nRow;
}

static int fnColumn(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  HkvFnCursor *c = (HkvFnCursor *)cur;
  if (((HkvFn *)cur->pVtab)->eFn == HKV_FN_CHECK) {
    if (i == HKV_CHECK_RESULT) {
      if (c->zProblem) {
        sqlite3_result_text(ctx, c->zProblem, -1, SQLITE_TRANSIENT);
      } else {
        sqlite3_result_text(ctx, "ok", -1, SQLITE_STATIC);
      }
    }
  } else if (i == HKV_STATS_NAME) {
    sqlite3_result_text(ctx, aStatName[c->i], -1, SQLITE_STATIC);
  } else if (i == HKV_STATS_VALUE) {
    sqlite3_result_int64(ctx, (sqlite3_int64)statValue(&c->st, c->i));
  }
  return SQLITE_OK;
}

static int fnRowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid) {
  *pRowid = ((HkvFnCursor *)cur)->i;
  return SQLITE_OK;
}

sqlite3_module hkvFnModule = {
    /* iVersion      */ 0,
    /* xCreate       */ 0, /* eponymous only */
    /* xConnect      */ fnConnect,
    /* xBestIndex    */ fnBestIndex,
    /* xDisconnect   */ fnDisconnect,
    /* xDestroy      */ 0,
    /* xOpen         */ fnOpen,
    /* xClose        */ fnClose,
    /* xFilter       */ fnFilter,
    /* xNext         */ fnNext,
    /* xEof          */ fnEof,
    /* xColumn       */ fnColumn,
    /* xRowid        */ fnRowid,
    /* xUpdate       */ 0,
    /* xBegin        */ 0,
    /* xSync         */ 0,
    /* xCommit       */ 0,
    /* xRollback     */ 0,
    /* xFindFunction */ 0,
    /* xRename       */ 0,
    /* xSavepoint    */ 0,
    /* xRelease      */ 0,
    /* xRollbackTo   */ 0,
    /* xShadowName   */ 0,
#if SQLITE_VERSION_NUMBER >= 3044000
    /* xIntegrity    */ 0,
#endif
};

void hkvVersionFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3_result_text(ctx, HKV_VERSION_STRING, -1, SQLITE_STATIC);
}

/* SELECT hashkv_reclaim(): deletes now the stores of every schema that
** are dropped (hkvReclaimSchema) and returns how many went. Outside a
** transaction only: inside one, the schema it would read is not committed. */
void hkvReclaimFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  (void)argv;
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  if (!hkvViewIsCommitted(db, 1)) {
    sqlite3_result_error(
        ctx,
        "hashkv_reclaim: not inside a transaction or beside another "
        "running statement",
        -1);
    return;
  }
  int n = 0;
  const char *zDb;
  for (int i = 0; (zDb = sqlite3_db_name(db, i)) != 0; i++) {
    n += hkvReclaimSchema(sqlite3_user_data(ctx), db, zDb);
  }
  sqlite3_result_int(ctx, n);
}
