/*
** hashkv_vtab.c: the SQLite virtual table "hashkv" over the engine in store/.
**
** Usage
**   .load ./build/hashkv
**   CREATE VIRTUAL TABLE kv USING hashkv(path='kv.hkv', sync=normal);
**   INSERT INTO kv VALUES('k', 'v');
**   SELECT value FROM kv WHERE key = 'k';
**   INSERT INTO kv(key, value, expires_at) VALUES('s', 'v', unixepoch() + 60);
**   INSERT INTO kv(kv) VALUES('compact');           -- commands
**   SELECT * FROM hashkv_stats('kv');                -- engine statistics
**   SELECT * FROM hashkv_check('main.kv');           -- 'ok' or a problem
**   SELECT hashkv_version();
**
** Declared schema (the last hidden column is named after the table)
**   CREATE TABLE x(key PRIMARY KEY NOT NULL, value, expires_at HIDDEN,
**                  "<table>" HIDDEN) WITHOUT ROWID
** It behaves as the native table
**   CREATE TABLE n(key PRIMARY KEY NOT NULL, value, expires_at) WITHOUT ROWID
** would if its rows whose expires_at is not after now were deleted before
** every statement: the module enforces uniqueness and NOT NULL itself
** (SQLite does not for virtual tables), and keys compare as SQLite compares
** untyped values: 1 and 1.0 are one key; 1, '1' and x'31' are three.
** expires_at is Unix seconds (INTEGER, or REAL to the millisecond), NULL for
** never; the engine keeps it in the key's record and decides, on its clock
** (the HkvEnv seam, so tests set the time), what has expired. An UPDATE that
** leaves it out keeps it (nochange); INSERT OR REPLACE without it clears it;
** a time already past deletes the row.
**
** Options (option=value; the grammar is at the top of options.c)
**   path          store directory, the user's (never deleted); relative to
**                 the database file's folder. Default: a new directory
**                 "<database file>-hashkv/<id>" owned by the module; for an
**                 in-memory or temporary database, a temporary directory
**                 removed when the connection closes. The table finds it
**                 through its link, the shadow table "<table>_hashkv"
**                 (catalog.c).
**   sync          off | normal | full (default full)
**   segment_size  bytes at which a segment file is sealed
**   auto_compact  dead-bytes share of sealed data that starts compaction
**                 (default 0.5; 0 = only on command)
**   auto_compact_min  ... once sealed data is this many bytes (64 MiB)
**
** Plans (xBestIndex)
**   idxNum 1  key = ?          argv[0] the key; one hash lookup; UNIQUE
**   idxNum 2  key IN (...)     argv[0] the IN list, read all at once
**   idxNum 3  key > >= < <= BETWEEN, GLOB, LIKE
**                              a scan of the snapshot's keys in log order,
**                              the value read only for rows whose key
**                              passes; argv: the bounds and patterns in the
**                              order idxStr names them; sorted by key when
**                              ORDER BY key asks (scan.c)
**   idxNum 0  anything else    full scan of the snapshot in log order,
**                              reading only the columns SQLite uses;
**                              SQLite filters
** idxStr (plans 0 and 3) names the constraints, the columns read and the
** order, as EXPLAIN QUERY PLAN shows: "ge lt cols:key order:asc" (scan.c).
** Constraints of plan 3 are kept by SQLite too (omit = 0), the filter
** being a pre-filter that is exact but for rare rows (scan.c). Order is
** claimed only by plan 3. Comparisons with a collation other than BINARY
** are left to SQLite.
**
** Stored encoding: see typed.h.
**
** Transactions map one to one: xBegin/hkv_begin, xSync/hkv_prepare (all
** durable, fallible work, after taking the lock SQLite needs to commit:
** lockForCommit), xCommit/hkv_commit (publish only), xRollback,
** xSavepoint, xRelease, xRollbackTo.
*/
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

#ifndef SQLITE_CORE
SQLITE_EXTENSION_INIT1
#endif

/* ---- errors ---- */

int hkvSqliteCode(int rc) {
  switch (rc) {
    case HKV_OK:
      return SQLITE_OK;
    case HKV_NOMEM:
      return SQLITE_NOMEM;
    case HKV_IOERR:
    case HKV_FAILED:
      return SQLITE_IOERR;
    case HKV_FULL:
      return SQLITE_FULL;
    case HKV_CORRUPT:
      return SQLITE_CORRUPT_VTAB;
    case HKV_BUSY:
    case HKV_LOCKED:
      return SQLITE_BUSY;
    case HKV_TOOBIG:
      return SQLITE_TOOBIG;
    case HKV_READONLY:
      return SQLITE_READONLY;
    case HKV_CANTOPEN:
    case HKV_NOTSTORE:
      return SQLITE_CANTOPEN;
    case HKV_ABORTED:
      return SQLITE_INTERRUPT;
    default:
      return SQLITE_ERROR;
  }
}

/* Reports the store's last error on the vtab and returns the SQLite code. */
int hkvStoreErr(HkvVtab *p, int rc) {
  sqlite3_free(p->base.zErrMsg);
  p->base.zErrMsg = sqlite3_mprintf("hashkv: %s", hkv_errmsg(p->pStore));
  return hkvSqliteCode(rc);
}

/* The connection's busy_timeout in ms (PRAGMA busy_timeout). */
int hkvBusyTimeout(sqlite3 *db) {
  sqlite3_stmt *pStmt = 0;
  int ms = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA busy_timeout", -1, &pStmt, 0) ==
          SQLITE_OK &&
      sqlite3_step(pStmt) == SQLITE_ROW) {
    ms = sqlite3_column_int(pStmt, 0);
  }
  sqlite3_finalize(pStmt);
  return ms;
}

/*
** Calls xTry(pArg) until it returns something other than rcBusy, waiting
** between tries as SQLite would with the connection's busy_timeout, and
** returns its last code. (A handler set with sqlite3_busy_handler is not
** reachable from a virtual table; only the timeout applies.)
*/
static int retryBusy(sqlite3 *db, int rcBusy, int (*xTry)(void *), void *pArg) {
  int rc = xTry(pArg);
  if (rc == rcBusy) {
    int msLeft = hkvBusyTimeout(db), msStep = 1;
    while (rc == rcBusy && msLeft > 0) {
      int ms = msStep < msLeft ? msStep : msLeft;
      sqlite3_sleep(ms);
      msLeft -= ms;
      if (msStep < 25) msStep *= 2;
      rc = xTry(pArg);
    }
  }
  return rc;
}

static int tryWriteLock(void *pStore) { return hkv_write_lock(pStore); }

/*
** Takes the store's write lock before a write statement reads anything it
** depends on (the UNIQUE check), as a native table's write takes SQLite's.
** While another connection or process writes, waits as SQLite would with
** the connection's busy_timeout, then fails with SQLITE_BUSY.
*/
static int takeWrite(HkvVtab *p) {
  int hrc = retryBusy(p->db, HKV_BUSY, tryWriteLock, p->pStore);
  if (hrc == HKV_READONLY && p->eStoreRo) {
    sqlite3_free(p->base.zErrMsg);
    p->base.zErrMsg = sqlite3_mprintf(
        "hashkv: store %s is open read-only: %s", p->zDir,
        p->eStoreRo == HKV_RO_FS ? "it lies on a read-only file system"
                                 : "this process may not write it");
    return SQLITE_READONLY;
  }
  return hrc ? hkvStoreErr(p, hrc) : SQLITE_OK;
}

static int tryExclusive(void *pArg) {
  sqlite3_file *pFile = pArg;
  return pFile->pMethods->xLock(pFile, SQLITE_LOCK_EXCLUSIVE);
}

/*
** Takes, for xSync, the lock SQLite takes right after it to commit: an
** EXCLUSIVE lock on every database file the transaction writes, in
** rollback-journal mode. While a reader holds a file, SQLite's attempt
** would fail with SQLITE_BUSY after every xSync had run, and SQLite keeps
** the transaction open: a store prepared by then would hold a durable
** commit that nothing publishes while the application waits (a crash
** would keep it, for a transaction SQLite never committed), and could
** take no more writes. Taken here first, the BUSY comes from xSync, before
** the store prepares anything; the retried COMMIT calls xSync again.
** SQLite's own request then finds the lock held and is granted at once;
** its rollback or commit releases it as its own. Skipped where SQLite
** takes no lock to commit: nolock=1, temp and in-memory databases, and WAL
** mode. The pager's file comes from SQLITE_FCNTL_FILE_POINTER. A write
** transaction in rollback-journal mode holds RESERVED (or more) on it; in
** WAL mode nobody holds RESERVED, and a WAL in exclusive locking mode holds
** EXCLUSIVE already: so EXCLUSIVE is asked for exactly where
** xCheckReservedLock reports a lock, and it is then either the lock SQLite
** takes next or one already held. (PRAGMA journal_mode would tell the
** modes apart too, at 6,000 instructions per commit.)
*/
int hkvLockForCommit(sqlite3 *db) {
  const char *zDb;
  for (int i = 0; (zDb = sqlite3_db_name(db, i)) != 0; i++) {
    if (i == 1 || sqlite3_txn_state(db, zDb) != SQLITE_TXN_WRITE) continue;
    const char *zFile = sqlite3_db_filename(db, zDb);
    sqlite3_file *pFile = 0;
    int bReserved = 0;
    if (!zFile || !zFile[0] || sqlite3_uri_boolean(zFile, "nolock", 0) ||
        sqlite3_file_control(db, zDb, SQLITE_FCNTL_FILE_POINTER, &pFile) !=
            SQLITE_OK ||
        !pFile || !pFile->pMethods ||
        pFile->pMethods->xCheckReservedLock(pFile, &bReserved) != SQLITE_OK ||
        !bReserved) {
      continue;
    }
    int rc = retryBusy(db, SQLITE_BUSY, tryExclusive, pFile);
    if (rc) return rc;
  }
  return SQLITE_OK;
}

int hkvVtabErr(HkvVtab *p, int rc, const char *zFmt, const char *zArg) {
  sqlite3_free(p->base.zErrMsg);
  p->base.zErrMsg = sqlite3_mprintf(zFmt, zArg);
  return rc;
}

static void cursorFree(HkvCursor *pCur);

static void vtabFree(HkvVtab *p) {
  if (!p) return;
  if (p->pSpare) cursorFree(p->pSpare);
  hkvStoreRelease(p->pConn, p->pStore);
  sqlite3_free(p->zSchema);
  sqlite3_free(p->zName);
  sqlite3_free(p->zDir);
  sqlite3_free(p->zKind);
  sqlite3_free(p->zLink);
  sqlite3_free(p->zMissing);
  hkvBufFree(&p->key);
  hkvBufFree(&p->val);
  hkvBufFree(&p->old);
  sqlite3_free(p->base.zErrMsg);
  sqlite3_free(p);
}

static void vtabUnlink(HkvVtab *p) {
  HkvVtab **pp = &p->pConn->pVtabs;
  while (*pp && *pp != p) pp = &(*pp)->pNextVtab;
  if (*pp) *pp = p->pNextVtab;
}

/* 1 if the connection's text encoding is UTF-8 (0 when it cannot tell:
** the encoders then ask SQLite for UTF-8, which always works). */
static int isUtf8(sqlite3 *db) {
  sqlite3_stmt *pStmt = 0;
  int bUtf8 = 0;
  if (sqlite3_prepare_v2(db, "PRAGMA encoding", -1, &pStmt, 0) == SQLITE_OK &&
      sqlite3_step(pStmt) == SQLITE_ROW) {
    const unsigned char *z = sqlite3_column_text(pStmt, 0);
    bUtf8 = z && !sqlite3_stricmp((const char *)z, "UTF-8");
  }
  sqlite3_finalize(pStmt);
  return bUtf8;
}

/* Whether the store directory zDir can be written: 0 if so, HKV_RO_FS if
** it lies on a read-only file system, HKV_RO_ACCESS if it (or a file of
** the store) is write-protected. */
static int storeUnwritable(const char *zDir) {
  int rc = hkv_writable(zDir);
  return rc == HKV_READONLY ? HKV_RO_FS : rc == HKV_CANTOPEN ? HKV_RO_ACCESS : 0;
}

/*
** xCreate and xConnect. The table's link (catalog.c) says where
** its store is; xCreate makes the store and writes the link, xConnect
** reads it. xConnect creates nothing: a store that is not there leaves the
** table connected but unusable (every use fails naming the directory), so
** that DROP TABLE still removes it from the schema.
*/
static int hkvInit(sqlite3 *db, void *pAux, int argc, const char *const *argv,
                   sqlite3_vtab **ppVtab, char **pzErr, int bCreate) {
  HkvConn *c = pAux;
  HkvArgs a;
  memset(&a, 0, sizeof(a));
  HkvVtab *p = 0;
  const char *zSchema = argv[1], *zName = argv[2];
  int rc = hkvParseArgs(argc, argv, &a, pzErr);
  if (rc) goto done;
  p = sqlite3_malloc(sizeof(*p));
  if (!p) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  memset(p, 0, sizeof(*p));
  p->pConn = c;
  p->db = db;
  p->zSchema = sqlite3_mprintf("%s", zSchema);
  p->zName = sqlite3_mprintf("%s", zName);
  if (!p->zSchema || !p->zName) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  const char *zFile = sqlite3_db_filename(db, zSchema);
  int bFile = zFile && zFile[0];
  if (bCreate) {
    if (hkvViewIsCommitted(db, 1)) hkvReclaimSchema(c, db, zSchema);
    if (a.zPath) {
      p->zKind = sqlite3_mprintf("%s", HKV_KIND_PATH);
      p->zLink = sqlite3_mprintf("%s", a.zPath);
      p->zDir = p->zLink ? hkvResolvePath(db, zSchema, a.zPath) : 0;
    } else if (!bFile) {
      p->zKind = sqlite3_mprintf("%s", HKV_KIND_TEMP);
      rc = hkvNewTempDir(c, zSchema, &p->zLink, pzErr);
      if (rc) goto done;
      p->zDir = sqlite3_mprintf("%s", p->zLink);
    } else {
      p->zKind = sqlite3_mprintf("%s", HKV_KIND_ID);
      rc = hkvNewIdDir(zFile, &p->zLink, &p->zDir);
      if (rc == SQLITE_CANTOPEN) {
        *pzErr = sqlite3_mprintf(
            "hashkv: cannot create a store in %s" HKV_FOLDER, zFile);
      }
      if (rc) goto done;
      p->bOwnDir = 1;
    }
  } else {
    hkvReclaimOnce(c, db, zSchema);
    rc = hkvLinkRead(db, zSchema, zName, &p->zKind, &p->zLink);
    if (rc) {
      *pzErr = sqlite3_mprintf("hashkv: cannot read the link of %s: %s", zName,
                               sqlite3_errmsg(db));
      goto done;
    }
    p->bLinked = p->zKind != 0;
    if (!p->bLinked) { /* a table of 0.1.0 */
      p->zKind =
          sqlite3_mprintf("%s", a.zPath ? HKV_KIND_PATH : HKV_KIND_LEGACY);
      p->zLink = sqlite3_mprintf("%s", a.zPath ? a.zPath : zName);
      if (!a.zPath && !bFile) {
        *pzErr =
            sqlite3_mprintf("hashkv: the temporary store of %s is gone", zName);
        rc = SQLITE_CANTOPEN;
        goto done;
      }
    }
    if (p->zKind && p->zLink) {
      p->zDir = hkvLinkDir(db, zSchema, p->zKind, p->zLink);
    }
  }
  if (!p->zKind || !p->zLink || !p->zDir) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  p->bTemp = !strcmp(p->zKind, HKV_KIND_TEMP);
  if (!bCreate) a.opts.flags |= HKV_OPEN_NOCREATE;
  /* A read-only connection (SQLITE_OPEN_READONLY, "?mode=ro", or a database
  ** on a read-only file system) opens the store read-only too: it works
  ** beside a writer in another process, and on a read-only disk. So does
  ** a writable one whose store cannot be written (storeUnwritable), as
  ** SQLite opens a database file read-only that it cannot write. */
  if (!bCreate && (sqlite3_db_readonly(db, zSchema) == 1 ||
                   (!p->bTemp && (p->eStoreRo = storeUnwritable(p->zDir))))) {
    a.opts.flags |= HKV_OPEN_READONLY;
  }
  struct stat st;
  if (!bCreate && stat(p->zDir, &st) != 0) {
    p->zMissing =
        p->bTemp
            ? sqlite3_mprintf("hashkv: the temporary store of %s is gone",
                              zName)
            : sqlite3_mprintf("hashkv: cannot open store %s: it does not exist",
                              p->zDir);
    if (!p->zMissing) {
      rc = SQLITE_NOMEM;
      goto done;
    }
  } else {
    int hrc = hkvStoreOpen(c, p->zDir, &a.opts, &p->pStore);
    if (hrc) {
      *pzErr = sqlite3_mprintf("hashkv: %s", hkv_errmsg(p->pStore));
      hkv_close(p->pStore);
      p->pStore = 0;
      rc = hkvSqliteCode(hrc);
      goto done;
    }
  }
  if (bCreate) {
    rc = hkvLinkWrite(db, zSchema, zName, p->zKind, p->zLink, pzErr);
    if (rc) goto done;
    p->bLinked = 1;
  }
  char *zSql = sqlite3_mprintf(
      "CREATE TABLE x(key PRIMARY KEY NOT NULL, value, expires_at HIDDEN, "
      "\"%w\" HIDDEN) WITHOUT ROWID",
      zName);
  if (!zSql) {
    rc = SQLITE_NOMEM;
    goto done;
  }
  rc = sqlite3_declare_vtab(db, zSql);
  sqlite3_free(zSql);
  if (rc) goto done;
  p->bUtf8 = isUtf8(db);
  sqlite3_vtab_config(db, SQLITE_VTAB_CONSTRAINT_SUPPORT, 1);
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  p->pNextVtab = c->pVtabs;
  c->pVtabs = p;
done:
  sqlite3_free(a.zPath);
  if (rc) {
    if (p && p->bOwnDir) { /* the new, empty store goes with the CREATE */
      hkv_db *pStore = p->pStore;
      p->pStore = 0;
      hkvStoreRelease(c, pStore);
      hkvRemoveStore(p->zDir, 1);
    }
    vtabFree(p);
    p = 0;
  }
  *ppVtab = p ? &p->base : 0;
  return rc;
}

/*
** SQLite counts a table it has just created as part of the open
** transaction without calling xBegin: the rows a later statement of the
** same transaction writes come without it, and a ROLLBACK must take them
** back (it calls xRollback), so the store's transaction starts here. For a
** CREATE in autocommit mode SQLite ends it at once with xSync and xCommit.
*/
static int hkvCreate(sqlite3 *db, void *pAux, int argc, const char *const *argv,
                     sqlite3_vtab **ppVtab, char **pzErr) {
  int rc = hkvInit(db, pAux, argc, argv, ppVtab, pzErr, 1);
  if (rc == SQLITE_OK) {
    HkvVtab *p = (HkvVtab *)*ppVtab;
    int hrc = hkv_in_transaction(p->pStore) ? HKV_OK : hkv_begin(p->pStore);
    if (hrc) {
      *pzErr = sqlite3_mprintf("hashkv: %s", hkv_errmsg(p->pStore));
      rc = hkvSqliteCode(hrc);
      vtabUnlink(p);
      vtabFree(p);
      *ppVtab = 0;
    }
  }
  return rc;
}

static int hkvConnect(sqlite3 *db, void *pAux, int argc,
                      const char *const *argv, sqlite3_vtab **ppVtab,
                      char **pzErr) {
  return hkvInit(db, pAux, argc, argv, ppVtab, pzErr, 0);
}

static int hkvDisconnect(sqlite3_vtab *pVtab) {
  HkvVtab *p = (HkvVtab *)pVtab;
  vtabUnlink(p);
  vtabFree(p);
  return SQLITE_OK;
}

/* A table whose store was not there at xConnect: the error of every use. */
static int storeMissing(HkvVtab *p) {
  sqlite3_free(p->base.zErrMsg);
  p->base.zErrMsg = sqlite3_mprintf("%s", p->zMissing);
  return p->base.zErrMsg ? SQLITE_CANTOPEN : SQLITE_NOMEM;
}

/*
** DROP TABLE: the link goes, in the DROP's transaction, and a store the
** module owns is recorded as dropped; its files go once that is committed
** (hkvReclaimSchema). Nothing on disk changes here, so a rollback has nothing
** to undo, and other connections keep reading their snapshot meanwhile.
*/
int hkvCarryTransaction(HkvVtab *p);

static int hkvDestroy(sqlite3_vtab *pVtab) {
  HkvVtab *p = (HkvVtab *)pVtab;
  int bOwned =
      !strcmp(p->zKind, HKV_KIND_ID) || !strcmp(p->zKind, HKV_KIND_LEGACY);
  int rc = hkvExecFree(
      p->db,
      sqlite3_mprintf("DROP TABLE IF EXISTS \"%w\".\"%w_" HKV_SHADOW "\"",
                      p->zSchema, p->zName),
      &p->base.zErrMsg);
  if (rc == SQLITE_OK && bOwned) {
    rc = hkvExecFree(
        p->db,
        sqlite3_mprintf("CREATE TABLE IF NOT EXISTS \"%w\".hashkv_dropped("
                        "kind TEXT NOT NULL, dir TEXT NOT NULL, "
                        "PRIMARY KEY(kind, dir)) WITHOUT ROWID;"
                        "INSERT OR IGNORE INTO \"%w\".hashkv_dropped "
                        "VALUES(%Q, %Q)",
                        p->zSchema, p->zSchema, p->zKind, p->zLink),
        &p->base.zErrMsg);
  }
  /* Last: nothing can fail after the store's transaction is handed on. */
  if (rc == SQLITE_OK && hkv_in_transaction(p->pStore)) {
    rc = hkvCarryTransaction(p);
  }
  if (rc) return rc;
  vtabUnlink(p);
  vtabFree(p);
  return SQLITE_OK;
}

/* ---- planning ---- */

static int hkvBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo) {
  HkvVtab *p = (HkvVtab *)pVtab;
  if (!p->pStore) return storeMissing(p);
  int iEq = -1;
  for (int i = 0; i < pInfo->nConstraint; i++) {
    const struct sqlite3_index_constraint *pC = &pInfo->aConstraint[i];
    if (!pC->usable || pC->iColumn != HKV_COL_KEY) continue;
    if (pC->op != SQLITE_INDEX_CONSTRAINT_EQ) continue;
    const char *zColl = sqlite3_vtab_collation(pInfo, i);
    if (zColl && sqlite3_stricmp(zColl, "BINARY") != 0) continue;
    iEq = i;
    break;
  }
  if (iEq >= 0) {
    pInfo->aConstraintUsage[iEq].argvIndex = 1;
    pInfo->aConstraintUsage[iEq].omit = 1;
    if (sqlite3_vtab_in(pInfo, iEq, -1)) {
      sqlite3_vtab_in(pInfo, iEq, 1);
      pInfo->idxNum = HKV_PLAN_IN;
      pInfo->estimatedCost = 10.0;
      pInfo->estimatedRows = 10;
    } else {
      pInfo->idxNum = HKV_PLAN_EQ;
      pInfo->estimatedCost = 1.0;
      pInfo->estimatedRows = 1;
      pInfo->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
    }
    return SQLITE_OK;
  }
  hkv_stats st;
  memset(&st, 0, sizeof(st));
  hkv_stats_get(p->pStore, &st);
  sqlite3_int64 n = (sqlite3_int64)st.live_keys;
  return hkvScanPlan(p, pInfo, (double)(n > 10 ? n : 10));
}

/* ---- cursors ---- */

/* Cursors are recycled: a point SELECT opens and closes one per execution,
** and keeping the last one (with its buffers) saves the allocations. */
static int hkvOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur) {
  HkvVtab *p = (HkvVtab *)pVtab;
  if (!p->pStore) return storeMissing(p);
  HkvCursor *pCur = p->pSpare;
  if (pCur) {
    p->pSpare = 0;
  } else {
    pCur = sqlite3_malloc(sizeof(*pCur));
    if (!pCur) return SQLITE_NOMEM;
    memset(pCur, 0, sizeof(*pCur));
  }
  pCur->bEof = 1;
  *ppCur = &pCur->base;
  return SQLITE_OK;
}

/* Ends the current query; keeps the buffers. */
static void cursorReset(HkvCursor *pCur) {
  if (pCur->pIter) {
    hkv_iter_close(pCur->pIter);
    pCur->pIter = 0;
  }
  pCur->nIn = pCur->iIn = 0;
  pCur->bEof = 1;
  /* A sorted scan's copies are kept for the next only while small. */
  if (pCur->arena.nAlloc > HKV_KEEP_ARENA) {
    hkvBufFree(&pCur->arena);
    sqlite3_free(pCur->aRow);
    pCur->aRow = 0;
    pCur->nRowAlloc = 0;
  }
  pCur->nRow = pCur->iRowNext = 0;
}

static void cursorFree(HkvCursor *pCur) {
  cursorReset(pCur);
  for (int i = 0; i < pCur->nInAlloc; i++) hkvBufFree(&pCur->aIn[i]);
  sqlite3_free(pCur->aIn);
  for (int i = 0; i < HKV_MAX_TERMS; i++) hkvBufFree(&pCur->aTerm[i].bound);
  hkvBufFree(&pCur->arena);
  sqlite3_free(pCur->aRow);
  hkvBufFree(&pCur->key);
  hkvBufFree(&pCur->val);
  sqlite3_free(pCur);
}

static int hkvClose(sqlite3_vtab_cursor *cur) {
  HkvCursor *pCur = (HkvCursor *)cur;
  HkvVtab *p = (HkvVtab *)cur->pVtab;
  cursorReset(pCur);
  if (!p->pSpare) {
    p->pSpare = pCur;
  } else {
    cursorFree(pCur);
  }
  return SQLITE_OK;
}

/* Looks up the encoded key *k and makes it the current row if present (the
** key's buffer then moves into the cursor's row). */
static int cursorLookup(HkvCursor *pCur, HkvBuf *k, int *pbFound) {
  HkvVtab *p = (HkvVtab *)pCur->base.pVtab;
  const void *pV;
  size_t nV;
  *pbFound = 0;
  if (k->n > HKV_MAX_KEY) return SQLITE_OK; /* can't exist */
  int rc = hkv_get(p->pStore, k->a, (size_t)k->n, &pV, &nV);
  if (rc == HKV_NOTFOUND) return SQLITE_OK;
  if (rc) return hkvStoreErr(p, rc);
  if (hkvBufSet(&pCur->val, pV, nV)) return SQLITE_NOMEM;
  pCur->iExpire = -1; /* read when asked for (a second probe) */
  HkvBuf t = pCur->key;
  pCur->key = *k;
  *k = t;
  *pbFound = 1;
  return SQLITE_OK;
}

static int isScan(int ePlan) {
  return ePlan == HKV_PLAN_SCAN || ePlan == HKV_PLAN_FILTER;
}

static int cursorStep(HkvCursor *pCur) {
  pCur->iRow++;
  if (isScan(pCur->ePlan)) return hkvScanStep(pCur);
  while (pCur->iIn < pCur->nIn) {
    int bFound;
    int rc = cursorLookup(pCur, &pCur->aIn[pCur->iIn++], &bFound);
    if (rc || bFound) return rc;
  }
  pCur->bEof = 1;
  return SQLITE_OK;
}

static int hkvFilter(sqlite3_vtab_cursor *cur, int idxNum, const char *idxStr,
                     int argc, sqlite3_value **argv) {
  HkvCursor *pCur = (HkvCursor *)cur;
  HkvVtab *p = (HkvVtab *)cur->pVtab;
  cursorReset(pCur);
  pCur->bEof = 0;
  pCur->ePlan = idxNum;
  pCur->iRow = 0;
  if (isScan(idxNum)) {
    int bEmpty;
    int rc = hkvScanStart(pCur, idxStr, argc, argv, &bEmpty);
    if (rc || bEmpty) {
      pCur->bEof = 1;
      return rc;
    }
    int hrc = hkv_iter_open(p->pStore, &pCur->pIter);
    if (hrc) return hkvStoreErr(p, hrc);
    pCur->iRow++;
    return hkvScanFirst(pCur);
  }
  if (argc < 1) return SQLITE_ERROR;
  /* Collect the keys now: IN lists can only be read inside xFilter. */
  sqlite3_value *pVal = argv[0];
  int rc = SQLITE_OK;
  if (idxNum == HKV_PLAN_IN) rc = sqlite3_vtab_in_first(argv[0], &pVal);
  while (rc == SQLITE_OK && pVal) {
    if (pCur->nIn == pCur->nInAlloc) {
      int nNew = pCur->nInAlloc ? pCur->nInAlloc * 2 : 4;
      HkvBuf *aNew =
          sqlite3_realloc64(pCur->aIn, (sqlite3_uint64)nNew * sizeof(HkvBuf));
      if (!aNew) return SQLITE_NOMEM;
      memset(aNew + pCur->nInAlloc, 0,
             (size_t)(nNew - pCur->nInAlloc) * sizeof(HkvBuf));
      pCur->aIn = aNew;
      pCur->nInAlloc = nNew;
    }
    HkvBuf *b = &pCur->aIn[pCur->nIn];
    int eForm;
    int erc = hkvEncodeKey(b, pVal, p->bUtf8, &eForm);
    if (erc == SQLITE_OK) {
      pCur->nIn++;
    } else if (erc != SQLITE_EMPTY) {
      return erc; /* a NULL matches nothing; anything else is NOMEM */
    }
    if (idxNum != HKV_PLAN_IN) break;
    rc = sqlite3_vtab_in_next(argv[0], &pVal);
  }
  if (rc != SQLITE_OK && rc != SQLITE_DONE) return rc;
  pCur->iIn = 0;
  return cursorStep(pCur);
}

static int hkvNext(sqlite3_vtab_cursor *cur) {
  return cursorStep((HkvCursor *)cur);
}

static int hkvEof(sqlite3_vtab_cursor *cur) { return ((HkvCursor *)cur)->bEof; }

static int hkvColumn(sqlite3_vtab_cursor *cur, sqlite3_context *ctx, int i) {
  HkvCursor *pCur = (HkvCursor *)cur;
  HkvConn *pConn = ((HkvVtab *)cur->pVtab)->pConn;
  if (isScan(pCur->ePlan)) {
    /* Only the key is never skipped for nochange (see below). */
    if (i != HKV_COL_KEY && sqlite3_vtab_nochange(ctx)) return SQLITE_OK;
    if (i == HKV_COL_KEY || i == HKV_COL_VALUE) {
      hkvScanColumn(pCur, ctx, i);
    } else if (i == HKV_COL_EXPIRES) {
      /* The iterator is on the row (sorted plans kept it with the row). */
      int64_t iExp = 0;
      if (pCur->eOrder) {
        iExp = pCur->pRow->iExpire;
      } else {
        hkv_iter_expiry(pCur->pIter, &iExp);
      }
      hkvResultExpiry(ctx, iExp);
    } else {
      sqlite3_result_null(ctx);
    }
    return SQLITE_OK;
  }
  int eForm = pCur->val.n > 0 ? hkvValueKeyForm(pCur->val.a[0]) : HKV_KEY_ASIS;
  switch (i) {
    case HKV_COL_KEY:
      /* Never skipped for nochange: SQLite would pass NULL as the new key. */
      hkvResultEncoded(ctx, pConn, pCur->key.a, pCur->key.n, eForm);
      break;
    case HKV_COL_VALUE:
      if (sqlite3_vtab_nochange(ctx)) break; /* UPDATE not touching value */
      hkvResultEncoded(ctx, pConn, pCur->val.a, pCur->val.n, HKV_KEY_ASIS);
      break;
    case HKV_COL_EXPIRES:
      if (sqlite3_vtab_nochange(ctx)) break; /* xUpdate keeps it */
      if (pCur->iExpire < 0) {
        HkvVtab *p = (HkvVtab *)cur->pVtab;
        int64_t iExp = 0;
        int rc = hkv_get_expiry(p->pStore, pCur->key.a, (size_t)pCur->key.n,
                                &iExp);
        if (rc && rc != HKV_NOTFOUND) return hkvStoreErr(p, rc);
        pCur->iExpire = iExp;
      }
      hkvResultExpiry(ctx, pCur->iExpire);
      break;
    default:
      /* The command column: left "unchanged" for an UPDATE that does not
      ** name it, so hkvUpdate can refuse one that does, even SET kv = NULL. */
      if (sqlite3_vtab_nochange(ctx)) break;
      sqlite3_result_null(ctx);
  }
  return SQLITE_OK;
}

static int hkvRowid(sqlite3_vtab_cursor *cur, sqlite3_int64 *pRowid) {
  *pRowid = ((HkvCursor *)cur)->iRow; /* WITHOUT ROWID: not used by SQLite */
  return SQLITE_OK;
}

/* ---- writes ---- */

static int uniqueErr(HkvVtab *p) {
  hkvVtabErr(p, SQLITE_CONSTRAINT, "UNIQUE constraint failed: %s.key",
             p->zName);
  return SQLITE_CONSTRAINT_PRIMARYKEY;
}

static int keyExists(HkvVtab *p, const HkvBuf *k, int *pbExists) {
  const void *pV;
  size_t nV;
  int rc = hkv_get(p->pStore, k->a, (size_t)k->n, &pV, &nV);
  *pbExists = (rc == HKV_OK);
  if (rc == HKV_OK || rc == HKV_NOTFOUND) return SQLITE_OK;
  return hkvStoreErr(p, rc);
}

static int checkKeySize(HkvVtab *p, const HkvBuf *k) {
  if (k->n <= HKV_MAX_KEY) return SQLITE_OK;
  sqlite3_free(p->base.zErrMsg);
  p->base.zErrMsg = sqlite3_mprintf(
      "hashkv: key too large (%lld bytes encoded; the limit is %u)",
      (long long)k->n, HKV_MAX_KEY);
  return SQLITE_TOOBIG;
}

static int hkvUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                     sqlite3_int64 *pRowid) {
  HkvVtab *p = (HkvVtab *)pVtab;
  if (!p->pStore) return storeMissing(p);
  int eForm, rc;
  /* SQLite sets last_insert_rowid() to *pRowid after an INSERT; a table
  ** WITHOUT ROWID leaves it alone. */
  *pRowid = sqlite3_last_insert_rowid(p->db);
  p->bJoined = 0;
  if (hkv_in_transaction(p->pStore)) {
    rc = takeWrite(p);
    if (rc) return rc;
  }
  if (argc == 1) { /* DELETE */
    rc = hkvEncodeKey(&p->key, argv[0], p->bUtf8, &eForm);
    if (rc == SQLITE_EMPTY) return SQLITE_OK;
    if (rc) return rc;
    rc = checkKeySize(p, &p->key);
    if (rc) return rc;
    int hrc = hkv_delete(p->pStore, p->key.a, (size_t)p->key.n);
    return (hrc == HKV_OK || hrc == HKV_NOTFOUND) ? SQLITE_OK
                                                  : hkvStoreErr(p, hrc);
  }
  int bInsert = sqlite3_value_type(argv[0]) == SQLITE_NULL;
  sqlite3_value *pKey = argv[2 + HKV_COL_KEY];
  sqlite3_value *pVal = argv[2 + HKV_COL_VALUE];
  sqlite3_value *pExp = argv[2 + HKV_COL_EXPIRES];
  sqlite3_value *pCmd = argv[2 + HKV_COL_CMD];
  if (!bInsert && !sqlite3_value_nochange(pCmd) &&
      sqlite3_value_type(pCmd) == SQLITE_NULL) {
    sqlite3_free(p->base.zErrMsg);
    p->base.zErrMsg = sqlite3_mprintf(
        "hashkv: UPDATE cannot set column %s: it takes commands only, as "
        "INSERT INTO %s(%s) VALUES('compact')",
        p->zName, p->zName, p->zName);
    return SQLITE_ERROR;
  }
  if (sqlite3_value_type(pCmd) != SQLITE_NULL) {
    /* A command is a statement of its own: a row that also carries a key
    ** or a value, or an UPDATE, would have SQLite count a row that the
    ** command does not write. */
    int bRow = sqlite3_value_type(pKey) != SQLITE_NULL ||
               sqlite3_value_type(pVal) != SQLITE_NULL ||
               sqlite3_value_type(pExp) != SQLITE_NULL;
    if (bInsert && !bRow) return hkvRunCommand(p, pCmd);
    sqlite3_free(p->base.zErrMsg);
    p->base.zErrMsg = sqlite3_mprintf(
        bInsert ? "hashkv: a command in column %s takes no key or value: "
                  "INSERT INTO %s(%s) VALUES(%Q)"
                : "hashkv: UPDATE cannot set column %s: run a command as "
                  "INSERT INTO %s(%s) VALUES(%Q)",
        p->zName, p->zName, p->zName, sqlite3_value_text(pCmd));
    return SQLITE_ERROR;
  }
  rc = hkvEncodeKey(&p->key, pKey, p->bUtf8, &eForm);
  if (rc == SQLITE_EMPTY) {
    hkvVtabErr(p, SQLITE_CONSTRAINT, "NOT NULL constraint failed: %s.key",
               p->zName);
    return SQLITE_CONSTRAINT_NOTNULL;
  }
  if (rc) return rc;
  rc = checkKeySize(p, &p->key);
  if (rc) return rc;
  int bReplace = sqlite3_vtab_on_conflict(p->db) == SQLITE_REPLACE;
  /* The expiry: given (NULL: never), or for an UPDATE that leaves it out,
  ** the old row's (read below). */
  int bKeepExp = !bInsert && sqlite3_value_nochange(pExp);
  int64_t iExp = 0;
  if (!bKeepExp) {
    rc = hkvEncodeExpiry(p, pExp, &iExp);
    if (rc) return rc;
  }

  if (bInsert) {
    rc = hkvEncodeValue(&p->val, pVal, p->bUtf8, eForm);
    if (rc) return rc;
    /* A plain INSERT writes only if the key is absent: one probe. */
    int hrc = bReplace ? hkv_put_expiring(p->pStore, p->key.a,
                                          (size_t)p->key.n, p->val.a,
                                          (size_t)p->val.n, iExp)
                       : hkv_insert_expiring(p->pStore, p->key.a,
                                             (size_t)p->key.n, p->val.a,
                                             (size_t)p->val.n, iExp);
    if (hrc == HKV_EXISTS) return uniqueErr(p);
    return hrc ? hkvStoreErr(p, hrc) : SQLITE_OK;
  }

  /* UPDATE: argv[0] is the old key. */
  int eOldForm;
  rc = hkvEncodeKey(&p->old, argv[0], p->bUtf8, &eOldForm);
  if (rc) return rc == SQLITE_EMPTY ? SQLITE_OK : rc;
  if (bKeepExp) {
    int hrc = hkv_get_expiry(p->pStore, p->old.a, (size_t)p->old.n, &iExp);
    if (hrc) return hkvStoreErr(p, hrc);
  }
  if (sqlite3_value_nochange(pVal)) {
    const void *pV;
    size_t nV;
    int hrc = hkv_get(p->pStore, p->old.a, (size_t)p->old.n, &pV, &nV);
    if (hrc) return hkvStoreErr(p, hrc);
    if (hkvBufSet(&p->val, pV, nV)) return SQLITE_NOMEM;
    if (p->val.n < 1) return SQLITE_CORRUPT_VTAB;
    int tag = p->val.a[0] & 0x7F;
    if (p->val.a[0] & HKV_TAG_KEYREAL) tag |= HKV_TAG_LOWER;
    p->val.a[0] = (unsigned char)hkvValueTag(tag, eForm);
  } else {
    rc = hkvEncodeValue(&p->val, pVal, p->bUtf8, eForm);
    if (rc) return rc;
  }
  int bSameKey =
      p->old.n == p->key.n && !memcmp(p->old.a, p->key.a, (size_t)p->key.n);
  if (!bSameKey && !bReplace) {
    int bExists;
    rc = keyExists(p, &p->key, &bExists);
    if (rc) return rc;
    if (bExists) return uniqueErr(p);
  }
  int hrc = hkv_put_expiring(p->pStore, p->key.a, (size_t)p->key.n, p->val.a,
                             (size_t)p->val.n, iExp);
  if (hrc) return hkvStoreErr(p, hrc);
  if (!bSameKey) {
    hrc = hkv_delete(p->pStore, p->old.a, (size_t)p->old.n);
    if (hrc && hrc != HKV_NOTFOUND) return hkvStoreErr(p, hrc);
  }
  return SQLITE_OK;
}

/* ---- transactions ---- */

static int hkvBegin(sqlite3_vtab *pVtab) {
  HkvVtab *p = (HkvVtab *)pVtab;
  if (!p->pStore) return storeMissing(p);
  /* Another instance on this store (HkvOpen) began its transaction: this
  ** one joins it, and the xSavepoint SQLite sends next names levels the
  ** store knows already (hkvSavepoint). */
  p->bJoined = hkv_in_transaction(p->pStore);
  if (!p->bJoined) {
    int rc = hkv_begin(p->pStore);
    if (rc) return hkvStoreErr(p, rc);
  }
  /* SQLite calls xBegin when a statement that writes the table starts,
  ** before it reads: take the write lock now, as a native write statement
  ** does, so its reads (WHERE, value = value + 1, the UNIQUE check) see the
  ** newest data of every process and nobody commits in between. */
  return takeWrite(p);
}

/* The transaction methods below run only inside a hashkv transaction:
** SQLite also calls xSync and xCommit for CREATE VIRTUAL TABLE, without
** xBegin. xTxn maps the store's code to SQLite's. */
#define HKV_TXN_METHOD(zName, xCall)                      \
  static int zName(sqlite3_vtab *pVtab) {                 \
    HkvVtab *p = (HkvVtab *)pVtab;                        \
    p->bJoined = 0;                                       \
    if (!hkv_in_transaction(p->pStore)) return SQLITE_OK; \
    int rc = xCall(p->pStore);                            \
    return rc ? hkvStoreErr(p, rc) : SQLITE_OK;           \
  }

/* xSync does all the durable, fallible work: SQLite ignores what xCommit
** and xRollback return. xCommit only publishes. Before the store prepares,
** xSync takes the database's commit lock (hkvLockForCommit). */
static int hkvSync(sqlite3_vtab *pVtab) {
  HkvVtab *p = (HkvVtab *)pVtab;
  p->bJoined = 0;
  if (!hkv_in_transaction(p->pStore)) return SQLITE_OK;
  if (p->bOwnDir) {
    /* Created in this transaction. SQLite undoes a CREATE with ROLLBACK TO
    ** without telling the new table (it has no savepoint of its own), and
    ** still commits it: if no link names the store any more, the writes
    ** are undone here, so the store holds no row and is reclaimed. */
    if (!hkvStoreNamed(p->db, p->zSchema, p->zKind, p->zLink)) {
      hkv_rollback(p->pStore);
      return SQLITE_OK;
    }
    p->bOwnDir = 0; /* committed from now on like any table */
  }
  if (hkv_txn_dirty(p->pStore)) {
    int rc = hkvLockForCommit(p->db);
    if (rc) return rc;
  }
  int hrc = hkv_prepare(p->pStore);
  return hrc ? hkvStoreErr(p, hrc) : SQLITE_OK;
}
HKV_TXN_METHOD(hkvCommit, hkv_commit)
HKV_TXN_METHOD(hkvRollback, hkv_rollback)

/*
** Savepoints: SQLite's levels are the store's (hkv_savepoint). Every
** instance of every table on a store shares its handle, and SQLite calls
** each one in the transaction: a level the store has marked already stays
** where it is, and the call that comes with xBegin of an instance joining
** the store's transaction marks nothing (the levels it names were opened
** before, and are marked, or were opened before the store's transaction
** began). A level the store never marked is one of those: rolling back to
** it takes back the store's whole transaction, which stays open (a table
** created inside a savepoint, then written, then undone by ROLLBACK TO);
** releasing it changes nothing.
*/
static int hkvSavepoint(sqlite3_vtab *pVtab, int iSavepoint) {
  HkvVtab *p = (HkvVtab *)pVtab;
  int bJoined = p->bJoined;
  p->bJoined = 0;
  if (!hkv_in_transaction(p->pStore) || bJoined ||
      iSavepoint < hkv_savepoint_levels(p->pStore)) {
    return SQLITE_OK;
  }
  int rc = hkv_savepoint(p->pStore, iSavepoint);
  return rc ? hkvStoreErr(p, rc) : SQLITE_OK;
}

static int hkvRollbackTo(sqlite3_vtab *pVtab, int iSavepoint) {
  HkvVtab *p = (HkvVtab *)pVtab;
  p->bJoined = 0;
  if (!hkv_in_transaction(p->pStore)) return SQLITE_OK;
  if (iSavepoint >= hkv_savepoint_levels(p->pStore)) iSavepoint = -1;
  int rc = hkv_rollback_to(p->pStore, iSavepoint);
  return rc ? hkvStoreErr(p, rc) : SQLITE_OK;
}

static int hkvRelease(sqlite3_vtab *pVtab, int iSavepoint) {
  HkvVtab *p = (HkvVtab *)pVtab;
  p->bJoined = 0;
  if (!hkv_in_transaction(p->pStore) ||
      iSavepoint >= hkv_savepoint_levels(p->pStore)) {
    return SQLITE_OK;
  }
  int rc = hkv_release(p->pStore, iSavepoint);
  return rc ? hkvStoreErr(p, rc) : SQLITE_OK;
}

/* ---- rename ---- */

/* The store stays where it is; the link follows the name: the shadow table
** is renamed (a 0.1.0 table gets its link now, naming where its store has
** always been), inside the ALTER TABLE's transaction. */
static int hkvRename(sqlite3_vtab *pVtab, const char *zNew) {
  HkvVtab *p = (HkvVtab *)pVtab;
  int rc;
  if (p->bLinked) {
    rc = hkvExecFree(p->db,
                     sqlite3_mprintf("ALTER TABLE \"%w\".\"%w_" HKV_SHADOW
                                     "\" RENAME TO \"%w_" HKV_SHADOW "\"",
                                     p->zSchema, p->zName, zNew),
                     &p->base.zErrMsg);
  } else {
    rc = hkvLinkWrite(p->db, p->zSchema, zNew, p->zKind, p->zLink,
                      &p->base.zErrMsg);
  }
  if (rc) return rc;
  char *z = sqlite3_mprintf("%s", zNew);
  if (!z) return SQLITE_NOMEM;
  sqlite3_free(p->zName);
  p->zName = z;
  p->bLinked = 1;
  return SQLITE_OK;
}

/* "<table>_hashkv" is the table's link (the catalog): a shadow table. */
static int hkvShadowName(const char *zSuffix) {
  return sqlite3_stricmp(zSuffix, HKV_SHADOW) == 0;
}

static sqlite3_module hkvModule = {
    /* iVersion      */ 3,
    /* xCreate       */ hkvCreate,
    /* xConnect      */ hkvConnect,
    /* xBestIndex    */ hkvBestIndex,
    /* xDisconnect   */ hkvDisconnect,
    /* xDestroy      */ hkvDestroy,
    /* xOpen         */ hkvOpen,
    /* xClose        */ hkvClose,
    /* xFilter       */ hkvFilter,
    /* xNext         */ hkvNext,
    /* xEof          */ hkvEof,
    /* xColumn       */ hkvColumn,
    /* xRowid        */ hkvRowid,
    /* xUpdate       */ hkvUpdate,
    /* xBegin        */ hkvBegin,
    /* xSync         */ hkvSync,
    /* xCommit       */ hkvCommit,
    /* xRollback     */ hkvRollback,
    /* xFindFunction */ 0,
    /* xRename       */ hkvRename,
    /* xSavepoint    */ hkvSavepoint,
    /* xRelease      */ hkvRelease,
    /* xRollbackTo   */ hkvRollbackTo,
    /* xShadowName   */ hkvShadowName,
#if SQLITE_VERSION_NUMBER >= 3044000
    /* xIntegrity    */ 0,
#endif
};

/* ---- entry point ---- */

#ifdef _WIN32
__declspec(dllexport)
#endif
    int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg,
                            const sqlite3_api_routines *pApi);

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg,
                        const sqlite3_api_routines *pApi) {
#ifndef SQLITE_CORE
  SQLITE_EXTENSION_INIT2(pApi);
#else
  (void)pApi;
#endif
  (void)pzErrMsg;
  HkvConn *c = sqlite3_malloc(sizeof(*c));
  if (!c) return SQLITE_NOMEM;
  memset(c, 0, sizeof(*c));
  c->db = db;
  int rc = sqlite3_create_module_v2(db, "hashkv", &hkvModule, c, hkvConnFree);
  if (rc) return rc; /* hkvConnFree has run */
  rc = sqlite3_create_module_v2(db, "hashkv_stats", &hkvFnModule, c, 0);
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_module_v2(db, "hashkv_check", &hkvFnModule, c, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_module_v2(db, "hashkv_txn", &hkvCarrierModule, c, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function(
        db, "hashkv_version", 0,
        SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, 0,
        hkvVersionFunc, 0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function(db, "hashkv_reclaim", 0,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, c,
                                 hkvReclaimFunc, 0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = sqlite3_create_function(db, "hashkv_backup", 2,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, c,
                                 hkvBackupFunc, 0, 0);
  }
  for (int nArg = 1; rc == SQLITE_OK && nArg <= 2; nArg++) {
    rc = sqlite3_create_function(db, "hashkv_backup_database", nArg,
                                 SQLITE_UTF8 | SQLITE_DIRECTONLY, c,
                                 hkvBackupDbFunc, 0, 0);
  }
  return rc;
}
