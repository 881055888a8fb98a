/*
** dropped_txn.c: hashkv_txn, the eponymous table that carries the store
** transaction of a table dropped in an open transaction.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

/* ---- the transaction of a dropped table ----
**
** SQLite calls nothing of a table after its xDestroy, not even xRollbackTo
** or xCommit; yet a ROLLBACK TO a savepoint before the DROP brings the
** table back, and the writes it made earlier in the transaction must then
** be there, and commit with the rest, as a native table's would. So
** xDestroy hands the store's open transaction to "hashkv_txn", an
** eponymous table of the module that xDestroy writes to (INSERT INTO
** hashkv_txn VALUES(NULL)): the write makes SQLite count it in the
** transaction, and its xSavepoint, xRollbackTo, xRelease, xSync, xCommit
** and xRollback act on every store handed to it, by the rules of the
** table's own methods. A table that comes back shares the handle
** (hkvStoreOpen) and joins the transaction. When the transaction ends the
** carrier lets the stores go. If the DROP commits, so do the store's
** writes, harmlessly: the store is dropped, and reclaimed.
*/
typedef struct HkvCarrier {
  sqlite3_vtab base;
  HkvConn *pConn;
  sqlite3 *db;
  hkv_db **apStore; /* each holds one reference (hkvStoreOpen) */
  int nStore, nAlloc;
} HkvCarrier;

static int carrierConnect(sqlite3 *db, void *pAux, int argc,
                          const char *const *argv, sqlite3_vtab **ppVtab,
                          char **pzErr) {
  (void)argc;
  (void)argv;
  (void)pzErr;
  int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(x)");
  if (rc) return rc;
  HkvCarrier *p = sqlite3_malloc(sizeof(*p));
  if (!p) return SQLITE_NOMEM;
  memset(p, 0, sizeof(*p));
  p->pConn = pAux;
  p->db = db;
  sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  *ppVtab = &p->base;
  return SQLITE_OK;
}

/* Lets every store go (the transaction is over). */
static void carrierEnd(HkvCarrier *p, int (*xEnd)(hkv_db *)) {
  for (int i = 0; i < p->nStore; i++) {
    if (hkv_in_transaction(p->apStore[i])) xEnd(p->apStore[i]);
    hkvStoreRelease(p->pConn, p->apStore[i]);
  }
  p->nStore = 0;
}

static int carrierDisconnect(sqlite3_vtab *pVtab) {
  HkvCarrier *p = (HkvCarrier *)pVtab;
  carrierEnd(p, hkv_rollback);
  sqlite3_free(p->apStore);
  sqlite3_free(p->base.zErrMsg);
  sqlite3_free(p);
  return SQLITE_OK;
}

static int carrierBestIndex(sqlite3_vtab *pVtab, sqlite3_index_info *pInfo) {
  (void)pVtab;
  pInfo->estimatedCost = 1;
  pInfo->estimatedRows = 1;
  return SQLITE_OK;
}

static int carrierOpen(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCur) {
  (void)pVtab;
  sqlite3_vtab_cursor *pCur = sqlite3_malloc(sizeof(*pCur));
  if (!pCur) return SQLITE_NOMEM;
  memset(pCur, 0, sizeof(*pCur));
  *ppCur = pCur;
  return SQLITE_OK;
}

static int carrierClose(sqlite3_vtab_cursor *pCur) {
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int carrierFilter(sqlite3_vtab_cursor *pCur, int idxNum,
                         const char *idxStr, int argc, sqlite3_value **argv) {
  (void)pCur, (void)idxNum, (void)idxStr, (void)argc, (void)argv;
  return SQLITE_OK;
}

static int carrierNext(sqlite3_vtab_cursor *pCur) {
  (void)pCur;
  return SQLITE_OK;
}

static int carrierEof(sqlite3_vtab_cursor *pCur) {
  (void)pCur;
  return 1; /* no rows */
}

static int carrierColumn(sqlite3_vtab_cursor *pCur, sqlite3_context *ctx,
                         int i) {
  (void)pCur, (void)ctx, (void)i;
  return SQLITE_OK;
}

static int carrierRowid(sqlite3_vtab_cursor *pCur, sqlite3_int64 *pRowid) {
  (void)pCur;
  *pRowid = 0;
  return SQLITE_OK;
}

/* The INSERT of xDestroy: takes the store handed over (HkvConn.pHandOff). */
static int carrierUpdate(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                         sqlite3_int64 *pRowid) {
  HkvCarrier *p = (HkvCarrier *)pVtab;
  hkv_db *pStore = p->pConn->pHandOff;
  (void)argv;
  (void)pRowid;
  if (argc == 1 || !pStore) {
    sqlite3_free(p->base.zErrMsg);
    p->base.zErrMsg = sqlite3_mprintf("hashkv_txn is internal to hashkv");
    return SQLITE_ERROR;
  }
  for (int i = 0; i < p->nStore; i++) {
    if (p->apStore[i] == pStore) { /* carried already: one reference */
      p->pConn->pHandOff = 0;
      hkvStoreRelease(p->pConn, pStore);
      return SQLITE_OK;
    }
  }
  if (p->nStore == p->nAlloc) {
    int nNew = p->nAlloc ? 2 * p->nAlloc : 4;
    hkv_db **a =
        sqlite3_realloc64(p->apStore, sizeof(*a) * (sqlite3_uint64)nNew);
    if (!a) return SQLITE_NOMEM;
    p->apStore = a;
    p->nAlloc = nNew;
  }
  p->apStore[p->nStore++] = pStore;
  p->pConn->pHandOff = 0;
  return SQLITE_OK;
}

static int carrierBegin(sqlite3_vtab *pVtab) {
  (void)pVtab;
  return SQLITE_OK;
}

static int carrierSync(sqlite3_vtab *pVtab) {
  HkvCarrier *p = (HkvCarrier *)pVtab;
  for (int i = 0; i < p->nStore; i++) {
    hkv_db *pStore = p->apStore[i];
    if (!hkv_in_transaction(pStore)) continue;
    if (hkv_txn_dirty(pStore)) {
      int rc = hkvLockForCommit(p->db);
      if (rc) return rc;
    }
    int hrc = hkv_prepare(pStore);
    if (hrc) {
      sqlite3_free(p->base.zErrMsg);
      p->base.zErrMsg = sqlite3_mprintf("hashkv: %s", hkv_errmsg(pStore));
      return hkvSqliteCode(hrc);
    }
  }
  return SQLITE_OK;
}

static int carrierCommit(sqlite3_vtab *pVtab) {
  carrierEnd((HkvCarrier *)pVtab, hkv_commit);
  return SQLITE_OK;
}

static int carrierRollback(sqlite3_vtab *pVtab) {
  carrierEnd((HkvCarrier *)pVtab, hkv_rollback);
  return SQLITE_OK;
}

/* As hkvSavepoint, hkvRollbackTo and hkvRelease, for each store. */
static int carrierSavepoint(sqlite3_vtab *pVtab, int iSavepoint) {
  HkvCarrier *p = (HkvCarrier *)pVtab;
  for (int i = 0; i < p->nStore; i++) {
    hkv_db *pStore = p->apStore[i];
    if (hkv_in_transaction(pStore) &&
        iSavepoint >= hkv_savepoint_levels(pStore)) {
      int rc = hkv_savepoint(pStore, iSavepoint);
      if (rc) return hkvSqliteCode(rc);
    }
  }
  return SQLITE_OK;
}

static int carrierRollbackTo(sqlite3_vtab *pVtab, int iSavepoint) {
  HkvCarrier *p = (HkvCarrier *)pVtab;
  for (int i = 0; i < p->nStore; i++) {
    hkv_db *pStore = p->apStore[i];
    if (!hkv_in_transaction(pStore)) continue;
    int iLevel = iSavepoint >= hkv_savepoint_levels(pStore) ? -1 : iSavepoint;
    int rc = hkv_rollback_to(pStore, iLevel);
    if (rc) return hkvSqliteCode(rc);
  }
  return SQLITE_OK;
}

static int carrierRelease(sqlite3_vtab *pVtab, int iSavepoint) {
  HkvCarrier *p = (HkvCarrier *)pVtab;
  for (int i = 0; i < p->nStore; i++) {
    hkv_db *pStore = p->apStore[i];
    if (hkv_in_transaction(pStore) &&
        iSavepoint < hkv_savepoint_levels(pStore)) {
      int rc = hkv_release(pStore, iSavepoint);
      if (rc) return hkvSqliteCode(rc);
    }
  }
  return SQLITE_OK;
}

sqlite3_module hkvCarrierModule = {
    /* iVersion      */ 2,
    /* xCreate       */ 0, /* eponymous only */
    /* xConnect      */ carrierConnect,
    /* xBestIndex    */ carrierBestIndex,
    /* xDisconnect   */ carrierDisconnect,
    /* xDestroy      */ 0,
    /* xOpen         */ carrierOpen,
    /* xClose        */ carrierClose,
    /* xFilter       */ carrierFilter,
    /* xNext         */ carrierNext,
    /* xEof          */ carrierEof,
    /* xColumn       */ carrierColumn,
    /* xRowid        */ carrierRowid,
    /* xUpdate       */ carrierUpdate,
    /* xBegin        */ carrierBegin,
    /* xSync         */ carrierSync,
    /* xCommit       */ carrierCommit,
    /* xRollback     */ carrierRollback,
    /* xFindFunction */ 0,
    /* xRename       */ 0,
    /* xSavepoint    */ carrierSavepoint,
    /* xRelease      */ carrierRelease,
    /* xRollbackTo   */ carrierRollbackTo,
    /* xShadowName   */ 0,
#if SQLITE_VERSION_NUMBER >= 3044000
    /* xIntegrity    */ 0,
#endif
};

/* xDestroy's hand-over of p's open transaction to hashkv_txn. */
int hkvCarryTransaction(HkvVtab *p) {
  p->pConn->pHandOff = p->pStore;
  int rc =
      hkvExecFree(p->db, sqlite3_mprintf("INSERT INTO hashkv_txn VALUES(NULL)"),
                  &p->base.zErrMsg);
  if (p->pConn->pHandOff) { /* not taken: p keeps it */
    p->pConn->pHandOff = 0;
    return rc ? rc : SQLITE_ERROR;
  }
  p->pStore = 0; /* the carrier's reference now */
  return SQLITE_OK;
}
