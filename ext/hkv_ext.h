/*
** hkv_ext.h: what the files of ext/ share, and nothing else. ext/ is a
** client of store/hashkv.h only.
**   hashkv_vtab.c  the module's callbacks (xCreate ... xShadowName), the
**                  errors they report, the entry point
**   codec.c        SQL values to and from the stored encoding (typed.c,
**                  shared with tools/hkv.c), and the result buffers
**   options.c      the CREATE arguments
**   catalog.c      where a table's store is: the link, reclaiming, temps
**   dropped_txn.c  hashkv_txn, which carries a dropped table's transaction
**   functions.c    commands, hashkv_stats, hashkv_check, hashkv_version,
**                  hashkv_reclaim
**   backup.c       hashkv_backup, hashkv_backup_database
*/
#ifndef HKV_EXT_H
#define HKV_EXT_H

#ifdef SQLITE_CORE
#include <sqlite3.h>
#else
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT3
#endif

#include <sys/types.h>

#include "hashkv.h"
#include "typed.h"

/* The catalog (catalog.c): kinds of link, names of files and tables. */
#define HKV_KIND_ID "id"
#define HKV_KIND_PATH "path"
#define HKV_KIND_TEMP "temp"
#define HKV_KIND_LEGACY "legacy"
#define HKV_SHADOW "hashkv"  /* "<table>_hashkv" */
#define HKV_FOLDER "-hashkv" /* <database file>-hashkv/ holds the ids */
#define HKV_TEMP_PREFIX "hashkv-temp-"

#define HKV_COL_KEY 0
#define HKV_COL_VALUE 1
#define HKV_COL_EXPIRES 2 /* hidden: expires_at */
#define HKV_COL_CMD 3     /* hidden, named after the table */

#define HKV_PLAN_SCAN 0 /* the snapshot, every row (scan.c) */
#define HKV_PLAN_EQ 1
#define HKV_PLAN_IN 2
#define HKV_PLAN_FILTER 3 /* the snapshot, rows filtered by key (scan.c) */

#define HKV_MAX_TERMS 8 /* key constraints a scan filters by, at most */
#define HKV_SCAN_KEY 1  /* HkvCursor.mCols, mHave: the key is read */
#define HKV_SCAN_VALUE 2
#define HKV_SCAN_TAG 4           /* mHave: iValTag is the value's tag byte */
#define HKV_KEEP_ARENA (1 << 20) /* bytes of sorted rows a cursor keeps */

/* Why a writable connection opened a store read-only (storeUnwritable). */
#define HKV_RO_FS 1     /* a read-only file system */
#define HKV_RO_ACCESS 2 /* it is write-protected (hkv_writable) */

/* A growable byte buffer. */
/* A growable buffer. The byte a[n] is always allocated, and a 0 whenever
** a value was set through hkvBufSet or the encoders, so that TEXT results can
** be handed to SQLite as nul-terminated (hkvResultEncoded). */
typedef struct HkvBuf {
  unsigned char *a;
  sqlite3_int64 n;
  sqlite3_int64 nAlloc;
} HkvBuf;

typedef struct HkvConn HkvConn;
typedef struct HkvVtab HkvVtab;
typedef struct HkvTemp HkvTemp;
typedef struct HkvResBuf HkvResBuf;
typedef struct HkvOpen HkvOpen;
typedef struct HkvSeen HkvSeen;

/* A temporary store this connection made (an in-memory or temp database's
** table): removed when no link names it any more, or at the close. */
struct HkvTemp {
  HkvTemp *pNext;
  char *zSchema;
  char *zDir;
};

/* A database file whose stores this connection has reclaimed once. */
struct HkvSeen {
  HkvSeen *pNext;
  char *zFile; /* allocated with the struct */
};

/*
** A store this connection has open: one handle, shared by every instance of
** every table on that store (found by device and inode). SQLite connects a
** table again inside a transaction (after ROLLBACK TO undoes a schema
** change, after ALTER TABLE RENAME, after CREATE VIRTUAL TABLE) and keeps
** the old instance in the transaction; sharing the handle, the new instance
** sees the transaction's writes and adds its own to it, as a native table
** would.
*/
struct HkvOpen {
  HkvOpen *pNext;
  dev_t dev;
  ino_t ino;
  hkv_db *pStore;
  int nRef;
};

/* A result buffer lent to SQLite (codec.c). */
struct HkvResBuf {
  HkvConn *pConn;
  HkvResBuf *pNext;
  /* followed by HKV_RES_SMALL + 1 bytes */
};

/* Per connection: registered as the modules' client data, freed (and the
** temporary stores with it) when the connection closes. */
struct HkvConn {
  sqlite3 *db;
  HkvVtab *pVtabs; /* open tables, for hashkv_stats() */
  HkvTemp *pTemps;
  HkvOpen *pOpen;      /* stores open, shared by their tables */
  HkvSeen *pSeen;      /* database files reclaimed once (hkvReclaimOnce) */
  hkv_db *pHandOff;    /* a dropped table's store, for hashkv_txn */
  HkvResBuf *pFreeRes; /* result buffers SQLite has given back */
  int nFreeRes;
  int nResOut;  /* result buffers SQLite holds */
  int bClosing; /* hkvConnFree ran while some were out: the last one frees c */
};

struct HkvVtab {
  sqlite3_vtab base;
  HkvConn *pConn;
  HkvVtab *pNextVtab;
  sqlite3 *db;
  hkv_db *pStore;
  char *zSchema;
  char *zName;
  char *zDir;  /* store directory */
  char *zKind; /* its link (the catalog): kind and dir */
  char *zLink;
  char *zMissing; /* the store was not there at xConnect: the error */
  int bLinked;    /* the link is written (a 0.1.0 table has none) */
  int bOwnDir;    /* xCreate made zDir, and no xSync has run since */
  int bTemp;      /* a temporary store */
  int bUtf8;      /* the database's text encoding is UTF-8 */
  int bJoined;    /* xBegin found the store's transaction open (hkvBegin) */
  int eStoreRo;   /* opened read-only because the store is not writable:
                   ** HKV_RO_FS or HKV_RO_ACCESS (storeUnwritable) */
  HkvBuf key;     /* scratch encodings for xUpdate */
  HkvBuf val;
  HkvBuf old;
  struct HkvCursor *pSpare; /* a closed cursor kept for reuse */
};

/* A key constraint a scan filters by (scan.c). */
typedef struct HkvKeyTerm {
  int op;       /* SQLITE_INDEX_CONSTRAINT_GT ... LIKE */
  int bNone;    /* filters nothing (no usable prefix; another like()) */
  int bFold;    /* LIKE: ASCII case folded (bound is lower case) */
  HkvBuf bound; /* the encoded bound, or the pattern's literal prefix */
} HkvKeyTerm;

/* A row of a sorted scan: copies in HkvCursor.arena, each followed by a
** 0 byte. */
typedef struct HkvRow {
  const unsigned char *pKey, *pVal;
  sqlite3_int64 nKey, nVal;
  sqlite3_int64 iOff; /* of the key in the arena */
  int64_t iExpire;    /* expires_at, Unix ms (0: never) */
} HkvRow;

typedef struct HkvCursor {
  sqlite3_vtab_cursor base;
  int ePlan;
  int bEof;
  hkv_iter *pIter;
  HkvBuf *aIn; /* EQ and IN plans: the encoded keys to look up */
  int nIn, iIn;
  int nInAlloc; /* buffers in aIn, kept across queries */
  HkvBuf key;   /* current row: copies */
  HkvBuf val;
  sqlite3_int64 iRow;
  int64_t iExpire; /* its expiry, Unix ms (0: never; -1: not read yet) */
  /* scans (scan.c) */
  int mCols;   /* HKV_SCAN_KEY | HKV_SCAN_VALUE: read for every row */
  int mHave;   /* of key, val and iValTag, loaded for the current row */
  int iValTag; /* the value's tag byte (how the key reads back), or -1 */
  int eOrder;  /* 1 rows sorted by key, -1 descending, 0 log order */
  HkvKeyTerm aTerm[HKV_MAX_TERMS];
  int nTerm;
  HkvBuf arena; /* sorted scans: the rows' copies */
  HkvRow *aRow;
  sqlite3_int64 nRow, nRowAlloc, iRowNext;
  const HkvRow *pRow; /* the current one */
} HkvCursor;

/* The CREATE arguments, parsed (options.c). */
typedef struct HkvArgs {
  char *zPath;
  hkv_options opts;
} HkvArgs;

/* hashkv_vtab.c: errors, as the module reports them */
int hkvSqliteCode(int rc);
int hkvStoreErr(HkvVtab *p, int rc);
/* The connection's busy_timeout, in ms. */
int hkvBusyTimeout(sqlite3 *db);
/* sqlite3_step for the module's own reads of the schema and its links:
** SQLITE_BUSY (another process committing the database file) is waited
** out as SQLite would with the connection's busy_timeout. */
int hkvStep(sqlite3 *db, sqlite3_stmt *pStmt);
/* 1 if schema zSchema has a table (with bViews, or a view) named zName, as
** SQLite looks names up (ignoring ASCII case); 0 if not; -1 on error. */
int hkvSchemaHas(sqlite3 *db, const char *zSchema, const char *zName,
                 int bViews);
int hkvLockForCommit(sqlite3 *db);
int hkvVtabErr(HkvVtab *p, int rc, const char *zFmt, const char *zArg);

/* codec.c: encodings (the layout is in hashkv_vtab.c) and results */
int hkvBufSet(HkvBuf *b, const void *p, size_t n);
int hkvBufAppend(HkvBuf *b, const void *p, size_t n);
void hkvBufFree(HkvBuf *b);
int hkvEncodeKey(HkvBuf *b, sqlite3_value *v, int bUtf8, int *peForm);
int hkvEncodeValue(HkvBuf *b, sqlite3_value *v, int bUtf8, int eForm);
void hkvResultEncoded(sqlite3_context *ctx, HkvConn *c, const unsigned char *p,
                      sqlite3_int64 n, int eKeyForm);
/* expires_at: SQL seconds <-> the engine's Unix ms (0: never). */
int hkvEncodeExpiry(HkvVtab *p, sqlite3_value *v, int64_t *piMs);
void hkvResultExpiry(sqlite3_context *ctx, int64_t iMs);

/* scan.c: full and filtered scans. hkvKeyCompare orders encoded keys as
** SQLite orders the values (BINARY, UTF-8). hkvScanPlan fills a scan plan
** in xBestIndex; hkvScanStart reads it in xFilter (*pbEmpty: no row can
** match), hkvScanFirst and hkvScanStep move, hkvScanColumn is xColumn. */
int hkvKeyCompare(const unsigned char *a, sqlite3_int64 na,
                  const unsigned char *b, sqlite3_int64 nb);
int hkvScanPlan(HkvVtab *p, sqlite3_index_info *pInfo, double nRows);
int hkvScanStart(HkvCursor *pCur, const char *idxStr, int argc,
                 sqlite3_value **argv, int *pbEmpty);
int hkvScanFirst(HkvCursor *pCur);
int hkvScanStep(HkvCursor *pCur);
void hkvScanColumn(HkvCursor *pCur, sqlite3_context *ctx, int i);

/* options.c: the CREATE arguments; *pzErr names the option at fault */
int hkvParseArgs(int argc, const char *const *argv, HkvArgs *pA, char **pzErr);

/* catalog.c: store handles shared in a connection, the link of a table,
** reclaiming, temporary stores, the connection's end */
int hkvStoreOpen(HkvConn *c, const char *zDir, const hkv_options *pOpts,
                 hkv_db **ppStore);
void hkvStoreRelease(HkvConn *c, hkv_db *pStore);
int hkvRemoveStore(const char *zDir, int bIfEmpty);
int hkvExecFree(sqlite3 *db, char *zSql, char **pzErr);
int hkvLinkRead(sqlite3 *db, const char *zSchema, const char *zName,
                char **pzKind, char **pzDir);
int hkvLinkWrite(sqlite3 *db, const char *zSchema, const char *zName,
                 const char *zKind, const char *zDir, char **pzErr);
char *hkvResolvePath(sqlite3 *db, const char *zSchema, const char *zPath);
char *hkvLinkDir(sqlite3 *db, const char *zSchema, const char *zKind,
                 const char *zDir);
int hkvNewIdDir(const char *zFile, char **pzId, char **pzDir);
int hkvStoreNamed(sqlite3 *db, const char *zSchema, const char *zKind,
                  const char *zLink);
int hkvViewIsCommitted(sqlite3 *db, int nBusy);
int hkvReclaimSchema(HkvConn *c, sqlite3 *db, const char *zSchema);
int hkvNewTempDir(HkvConn *c, const char *zSchema, char **pzDir, char **pzErr);
void hkvReclaimOnce(HkvConn *c, sqlite3 *db, const char *zSchema);
void hkvConnRelease(HkvConn *c);
void hkvConnFree(void *pArg);

/* dropped_txn.c: hashkv_txn, carrying a dropped table's transaction */
int hkvCarryTransaction(HkvVtab *p);
extern sqlite3_module hkvCarrierModule;

/* functions.c: commands and SQL functions */
int hkvRunCommand(HkvVtab *p, sqlite3_value *pCmd);
void hkvVersionFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void hkvReclaimFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv);
int hkvFindTable(HkvConn *c, sqlite3 *db, const char *zArg, HkvVtab **pp,
                 char **pzMsg);

/* backup.c: hashkv_backup, hashkv_backup_database */
void hkvBackupFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv);
void hkvBackupDbFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv);
extern sqlite3_module hkvFnModule;

#endif /* HKV_EXT_H */
