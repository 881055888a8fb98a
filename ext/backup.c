/*
** backup.c (ext/): the SQL functions that back up hashkv tables with their
** data, which SQLite's own .backup, backup API and VACUUM INTO cannot (they
** copy the CREATE VIRTUAL TABLE and the link, not the store).
**
**   SELECT hashkv_backup('kv', 'dest-dir')
**   SELECT hashkv_backup_database('copy.db' [, 'schema'])
*/
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

/*
** SELECT hashkv_backup('kv', 'dest-dir'): copies the store of table kv, as
** of one commit, to a new store in dest-dir (hkv_backup: readers and
** writers go on). The table is named as hashkv_stats names it; a relative
** dest-dir is relative to the folder of the table's database file, as the
** path option is, so CREATE VIRTUAL TABLE t USING hashkv(path='dest-dir')
** beside it opens the copy. Returns the directory written. Only reads the
** table: works on a read-only connection. Inside a transaction that has
** written the table, the copy holds what was committed, not the
** transaction's writes.
*/
void hkvBackupFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  (void)argc;
  sqlite3 *db = sqlite3_context_db_handle(ctx);
  const char *zTable = (const char *)sqlite3_value_text(argv[0]);
  const char *zDest = (const char *)sqlite3_value_text(argv[1]);
  if (!zTable || !zDest || !zDest[0]) {
    if ((!zTable && sqlite3_value_type(argv[0]) != SQLITE_NULL) ||
        (!zDest && sqlite3_value_type(argv[1]) != SQLITE_NULL)) {
      sqlite3_result_error_nomem(ctx);
    } else {
      sqlite3_result_error(ctx,
                           "hashkv_backup: name a table and a directory: "
                           "hashkv_backup('kv', 'dest-dir')",
                           -1);
    }
    return;
  }
  HkvVtab *p = 0;
  char *zMsg = 0;
  int rc = hkvFindTable(sqlite3_user_data(ctx), db, zTable, &p, &zMsg);
  char *zDir = 0;
  if (rc == SQLITE_OK && !p->pStore) {
    rc = SQLITE_CANTOPEN;
    zMsg = sqlite3_mprintf("%s", p->zMissing);
  }
  if (rc == SQLITE_OK) {
    zDir = hkvResolvePath(db, p->zSchema, zDest);
    if (!zDir) rc = SQLITE_NOMEM;
  }
  if (rc == SQLITE_OK) {
    int hrc = hkv_backup(p->pStore, zDir, 0, 0);
    if (hrc) {
      rc = hkvSqliteCode(hrc);
      /* Messages name the directory as the caller gave it. */
      const char *zE = hkv_errmsg(p->pStore);
      size_t n = strlen(zDir);
      zMsg = strncmp(zE, zDir, n) == 0 ? sqlite3_mprintf("%s%s", zDest, zE + n)
                                       : sqlite3_mprintf("%s", zE);
    }
  }
  if (rc == SQLITE_OK) {
    sqlite3_result_text(ctx, zDir, -1, SQLITE_TRANSIENT);
  } else if (rc == SQLITE_NOMEM || !zMsg) {
    sqlite3_result_error_nomem(ctx);
  } else {
    char *zErr = sqlite3_mprintf("hashkv_backup: %s", zMsg);
    sqlite3_result_error(ctx, zErr ? zErr : zMsg, -1);
    sqlite3_result_error_code(ctx, rc);
    sqlite3_free(zErr);
  }
  sqlite3_free(zMsg);
  sqlite3_free(zDir);
}

/* ---- hashkv_backup_database ----
**
** SELECT hashkv_backup_database('copy.db' [, 'schema']) writes a copy of
** the database file of schema (default main) to copy.db, and of the store
** of each of its hashkv tables to copy.db-hashkv/<id>/, the copy's links
** rewritten to name them (kind 'id': the copy owns its stores, whatever the
** original's links were), so that opening copy.db with the extension shows
** every table as of one instant. A relative copy.db is relative to the
** database file's folder.
**
** The instant: a second connection takes the database's write lock (BEGIN
** IMMEDIATE, waiting up to busy_timeout), so no transaction of any
** connection or process commits meanwhile (a hashkv commit takes the
** database file's lock before it writes its commit record). Then, for each
** store, its write lock is taken on a handle of its own (waiting up to
** busy_timeout): a transaction that committed the database file but has
** not yet published its store commit (SQLite commits the file before it
** calls xCommit) is waited for, and one still open keeps the backup waiting
** (SQLITE_BUSY when the time is up: it cannot commit before the lock goes).
** A third connection reads the database file in a read transaction begun
** under the lock, and the backup API copies it. The lock is held until
** every store is copied: writers of this database wait that long.
**
** Not inside a transaction (as VACUUM INTO). copy.db must not exist. On a
** read-only connection, or a store this process has open read-only, the
** store's write lock is not taken: a commit published in the instant after
** its database commit may then be missing from the copy's store.
*/

/* Opens a connection on zFile with flags, busy_timeout ms. */
static int openConn(const char *zFile, int flags, int ms, sqlite3 **pp) {
  int rc = sqlite3_open_v2(zFile, pp, flags, 0);
  if (rc == SQLITE_OK) sqlite3_busy_timeout(*pp, ms);
  return rc;
}

/* Takes the write lock of pStore's store on a handle of its own, waiting
** up to ms: *ppLock holds it (NULL when it could not be opened writable:
** the snapshot is then taken without it). */
static int lockStore(hkv_db *pStore, const char *zDir, int ms,
                     hkv_db **ppLock) {
  *ppLock = 0;
  (void)pStore;
  hkv_options o;
  hkv_options_init(&o);
  o.flags = HKV_OPEN_NOCREATE;
  hkv_db *h = 0;
  int rc = hkv_open(zDir, &o, &h);
  if (rc == HKV_READONLY || rc == HKV_CANTOPEN) {
    hkv_close(h);
    return HKV_OK; /* read-only here: see above */
  }
  if (rc == HKV_OK) rc = hkv_begin(h);
  for (int nWait = 0; rc == HKV_OK;) {
    rc = hkv_write_lock(h);
    if (rc != HKV_BUSY || nWait >= ms) break;
    sqlite3_sleep(1);
    nWait++;
    rc = HKV_OK;
  }
  if (rc) {
    hkv_close(h);
    return rc;
  }
  *ppLock = h;
  return HKV_OK;
}

typedef struct DbBackup {
  sqlite3_context *ctx;
  sqlite3 *db;     /* the caller's connection */
  const char *zDb; /* its schema backed up */
  sqlite3 *pLock;  /* holds the database's write lock */
  sqlite3 *pRead;  /* reads it in a transaction begun under the lock */
  sqlite3 *pCopy;  /* the copy, built under zTmp */
  char *zCopy;     /* its final path */
  char *zTmp;      /* where it is built (created here, exclusively) */
  char *zErr;      /* the message, sqlite3_malloc'd */
  char *zFolder;   /* copy.db-hashkv/, when this call created it */
  char **azDir;    /* the store directories this call created */
  int nDir;
} DbBackup;

/* Notes that this call created directory zDir (taken over): on failure it
** goes, with what was copied into it. */
static int madeDir(DbBackup *b, char *zDir) {
  char **a = sqlite3_realloc64(b->azDir, (sqlite3_uint64)(b->nDir + 1) *
                                             sizeof(char *));
  if (!a) {
    sqlite3_free(zDir);
    return SQLITE_NOMEM;
  }
  b->azDir = a;
  b->azDir[b->nDir++] = zDir;
  return SQLITE_OK;
}

static int rmOne(const char *zPath, const struct stat *pSt, int flag,
                 struct FTW *pFtw) {
  (void)pSt, (void)flag, (void)pFtw;
  return remove(zPath);
}

static int dbErr(DbBackup *b, int rc, char *zMsg) {
  sqlite3_free(b->zErr);
  b->zErr = zMsg;
  return zMsg ? rc : SQLITE_NOMEM;
}

/* Backs up the store of table zName (linked as zKind, zLink) and rewrites
** the copy's link to it. */
static int backupTable(DbBackup *b, const char *zName, const char *zKind,
                       const char *zLink) {
  HkvVtab *p = 0;
  char *zMsg = 0;
  char *zArg = sqlite3_mprintf("%s.%s", b->zDb, zName);
  if (!zArg) return SQLITE_NOMEM;
  int rc = hkvFindTable(sqlite3_user_data(b->ctx), b->db, zArg, &p, &zMsg);
  sqlite3_free(zArg);
  if (rc) return dbErr(b, rc, zMsg);
  if (!p->pStore)
    return dbErr(b, SQLITE_CANTOPEN, sqlite3_mprintf("%s", p->zMissing));
  char *zId = 0, *zDir = 0;
  if (!strcmp(zKind, HKV_KIND_ID)) {
    /* The same id as the original's. A directory this call did not make
    ** is another's: hkv_backup refuses it unless it is empty, and it is
    ** never removed here. */
    zId = sqlite3_mprintf("%s", zLink);
    zDir = sqlite3_mprintf("%s" HKV_FOLDER "/%s", b->zCopy, zLink);
    if (!zId || !zDir) {
      rc = SQLITE_NOMEM;
    } else if (mkdir(zDir, 0777) == 0) {
      char *z = sqlite3_mprintf("%s", zDir);
      rc = z ? madeDir(b, z) : SQLITE_NOMEM;
    }
  } else {
    rc = hkvNewIdDir(b->zCopy, &zId, &zDir);
    if (rc == SQLITE_OK) {
      char *z = sqlite3_mprintf("%s", zDir);
      rc = z ? madeDir(b, z) : SQLITE_NOMEM;
    }
  }
  hkv_db *pHold = 0;
  int hrc = HKV_OK;
  if (rc == SQLITE_OK) {
    hrc = lockStore(p->pStore, p->zDir, hkvBusyTimeout(b->db), &pHold);
    if (hrc == HKV_OK) hrc = hkv_backup(pHold ? pHold : p->pStore, zDir, 0, 0);
    if (hrc) {
      rc = dbErr(b, hkvSqliteCode(hrc),
                 sqlite3_mprintf("%s: %s", zName,
                                 hkv_errmsg(pHold ? pHold : p->pStore)));
      if (hrc == HKV_BUSY) {
        rc = dbErr(b, SQLITE_BUSY,
                   sqlite3_mprintf("%s: a transaction on it is open", zName));
      }
    }
    hkv_close(pHold);
  }
  if (rc == SQLITE_OK) {
    rc =
        hkvExecFree(b->pCopy,
                    sqlite3_mprintf("UPDATE \"%w_" HKV_SHADOW "\" SET kind=%Q, "
                                    "dir=%Q",
                                    zName, HKV_KIND_ID, zId),
                    &b->zErr);
  }
  sqlite3_free(zId);
  sqlite3_free(zDir);
  return rc;
}

static int runDbBackup(DbBackup *b, const char *zDest) {
  const char *zFile = sqlite3_db_filename(b->db, b->zDb);
  if (!zFile || !zFile[0]) {
    return dbErr(b, SQLITE_ERROR,
                 sqlite3_mprintf("%s is not a database file", b->zDb));
  }
  if (!sqlite3_get_autocommit(b->db)) {
    return dbErr(b, SQLITE_ERROR, sqlite3_mprintf("not inside a transaction"));
  }
  b->zCopy = hkvResolvePath(b->db, b->zDb, zDest);
  if (!b->zCopy) return SQLITE_NOMEM;
  struct stat st;
  if (stat(b->zCopy, &st) == 0 || errno != ENOENT) {
    return dbErr(b, SQLITE_CANTOPEN,
                 sqlite3_mprintf("%s: exists already", zDest));
  }
  /* The copy is built under a name of its own, created exclusively, and
  ** renamed to copy.db only when complete (never over a file that appeared
  ** meanwhile): a copy killed half-way is never taken for one, and a file
  ** this call did not create is never written or removed. */
  b->zTmp = sqlite3_mprintf("%s.partial-%d", b->zCopy, (int)getpid());
  if (!b->zTmp) return SQLITE_NOMEM;
  int fd = open(b->zTmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    int e = errno;
    sqlite3_free(b->zTmp);
    b->zTmp = 0;
    return dbErr(b, SQLITE_CANTOPEN,
                 sqlite3_mprintf("cannot create %s.partial-%d: %s", zDest,
                                 (int)getpid(), strerror(e)));
  }
  close(fd);
  char *zFolder = sqlite3_mprintf("%s" HKV_FOLDER, b->zCopy);
  if (!zFolder) return SQLITE_NOMEM;
  if (mkdir(zFolder, 0777) == 0) {
    b->zFolder = zFolder;
  } else {
    sqlite3_free(zFolder);
  }
  /* Every hashkv table opened first (recovery can take a while), so the
  ** lock below is held only for the copying. Errors are reported later. */
  char *zSql = sqlite3_mprintf(
      "SELECT name FROM \"%w\".sqlite_schema WHERE type = 'table' AND "
      "rootpage = 0 AND sql LIKE 'CREATE VIRTUAL TABLE%%USING hashkv%%'",
      b->zDb);
  sqlite3_stmt *pOpen = 0;
  if (zSql && sqlite3_prepare_v2(b->db, zSql, -1, &pOpen, 0) == SQLITE_OK) {
    while (hkvStep(b->db, pOpen) == SQLITE_ROW) {
      HkvVtab *p = 0;
      char *zMsg = 0;
      char *zArg =
          sqlite3_mprintf("%s.%s", b->zDb, sqlite3_column_text(pOpen, 0));
      if (zArg) hkvFindTable(sqlite3_user_data(b->ctx), b->db, zArg, &p, &zMsg);
      sqlite3_free(zArg);
      sqlite3_free(zMsg);
    }
  }
  sqlite3_finalize(pOpen);
  sqlite3_free(zSql);
  int ms = hkvBusyTimeout(b->db);
  int rc = openConn(zFile, SQLITE_OPEN_READWRITE, ms, &b->pLock);
  if (rc == SQLITE_OK) rc = sqlite3_exec(b->pLock, "BEGIN IMMEDIATE", 0, 0, 0);
  if (rc) {
    return dbErr(
        b, rc,
        sqlite3_mprintf("cannot lock %s: %s", zFile, sqlite3_errmsg(b->pLock)));
  }
  rc = openConn(zFile, SQLITE_OPEN_READONLY, ms, &b->pRead);
  if (rc == SQLITE_OK) {
    rc = sqlite3_exec(b->pRead, "BEGIN; SELECT count(*) FROM sqlite_schema", 0,
                      0, 0);
  }
  if (rc == SQLITE_OK) {
    rc = openConn(b->zTmp, SQLITE_OPEN_READWRITE, ms, &b->pCopy);
  }
  if (rc == SQLITE_OK) {
    sqlite3_backup *pB =
        sqlite3_backup_init(b->pCopy, "main", b->pRead, "main");
    if (!pB) {
      rc = sqlite3_errcode(b->pCopy);
    } else {
      rc = sqlite3_backup_step(pB, -1);
      if (rc == SQLITE_DONE) rc = SQLITE_OK;
      int rc2 = sqlite3_backup_finish(pB);
      if (rc == SQLITE_OK) rc = rc2;
    }
  }
  if (rc) {
    return dbErr(
        b, rc,
        sqlite3_mprintf("copying %s: %s", zFile,
                        sqlite3_errmsg(b->pCopy ? b->pCopy : b->pRead)));
  }
  /* The hashkv tables, as the copied file has them. */
  sqlite3_stmt *pStmt = 0;
  rc = sqlite3_prepare_v2(
      b->pCopy,
      "SELECT name FROM sqlite_schema WHERE type = 'table' AND rootpage = 0 "
      "AND sql LIKE 'CREATE VIRTUAL TABLE%USING hashkv%'",
      -1, &pStmt, 0);
  while (rc == SQLITE_OK && sqlite3_step(pStmt) == SQLITE_ROW) {
    const char *zName = (const char *)sqlite3_column_text(pStmt, 0);
    char *zKind = 0, *zLink = 0;
    rc = zName ? hkvLinkRead(b->pCopy, "main", zName, &zKind, &zLink)
               : SQLITE_NOMEM;
    if (rc == SQLITE_OK && !zKind) {
      rc = dbErr(b, SQLITE_ERROR,
                 sqlite3_mprintf("%s has no link (a table of hashkv 0.1.0): "
                                 "rename it once to write one",
                                 zName));
    }
    if (rc == SQLITE_OK) rc = backupTable(b, zName, zKind, zLink);
    sqlite3_free(zKind);
    sqlite3_free(zLink);
  }
  int rcF = sqlite3_finalize(pStmt);
  if (rc == SQLITE_OK && rcF) {
    rc = dbErr(b, rcF, sqlite3_mprintf("%s", sqlite3_errmsg(b->pCopy)));
  }
  return rc;
}

/* Gives the finished copy its name, unless something took the name since
** the call began (then an error: nothing is replaced). */
static int publishCopy(DbBackup *b, const char *zDest) {
  int r = renameat2(AT_FDCWD, b->zTmp, AT_FDCWD, b->zCopy, RENAME_NOREPLACE);
  if (r != 0 && (errno == EINVAL || errno == ENOSYS)) {
    /* A file system without RENAME_NOREPLACE: a hard link fails as well
    ** when the name is taken. */
    r = link(b->zTmp, b->zCopy);
    if (r == 0) unlink(b->zTmp);
  }
  if (r != 0) {
    int e = errno;
    return dbErr(b, SQLITE_CANTOPEN,
                 e == EEXIST ? sqlite3_mprintf("%s: exists already", zDest)
                             : sqlite3_mprintf("cannot name the copy %s: %s",
                                               zDest, strerror(e)));
  }
  return SQLITE_OK;
}

void hkvBackupDbFunc(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
  DbBackup b;
  memset(&b, 0, sizeof(b));
  b.ctx = ctx;
  b.db = sqlite3_context_db_handle(ctx);
  const char *zDest = (const char *)sqlite3_value_text(argv[0]);
  b.zDb = argc > 1 ? (const char *)sqlite3_value_text(argv[1]) : "main";
  int rc;
  if (!zDest || !zDest[0] || !b.zDb) {
    rc = dbErr(
        &b, SQLITE_ERROR,
        sqlite3_mprintf("name the copy: "
                        "hashkv_backup_database('copy.db' [, 'schema'])"));
  } else {
    int iDb = 0;
    const char *z;
    while ((z = sqlite3_db_name(b.db, iDb)) && sqlite3_stricmp(z, b.zDb)) iDb++;
    rc = z ? runDbBackup(&b, zDest)
           : dbErr(&b, SQLITE_ERROR,
                   sqlite3_mprintf("no such database: %s", b.zDb));
  }
  if (sqlite3_close(b.pCopy) != SQLITE_OK && rc == SQLITE_OK) {
    rc = dbErr(&b, SQLITE_IOERR, sqlite3_mprintf("closing the copy failed"));
  }
  sqlite3_close(b.pRead);
  if (rc == SQLITE_OK) rc = publishCopy(&b, zDest);
  sqlite3_close(b.pLock); /* rolls the lock's transaction back */
  if (rc && b.zTmp) {
    /* What this call made goes, and nothing else: its file, the stores it
    ** copied, the folder if it made it and nothing else is in it. */
    unlink(b.zTmp);
    for (int i = 0; i < b.nDir; i++) {
      nftw(b.azDir[i], rmOne, 16, FTW_DEPTH | FTW_PHYS);
    }
    if (b.zFolder) rmdir(b.zFolder);
  } else if (rc == SQLITE_OK && b.zFolder && b.nDir == 0) {
    rmdir(b.zFolder); /* no hashkv table: no folder */
  }
  for (int i = 0; i < b.nDir; i++) sqlite3_free(b.azDir[i]);
  sqlite3_free(b.azDir);
  sqlite3_free(b.zFolder);
  sqlite3_free(b.zTmp);
  if (rc == SQLITE_OK) {
    sqlite3_result_text(ctx, b.zCopy, -1, SQLITE_TRANSIENT);
  } else if (rc == SQLITE_NOMEM || !b.zErr) {
    sqlite3_result_error_code(ctx, rc);
  } else {
    char *zMsg = sqlite3_mprintf("hashkv_backup_database: %s", b.zErr);
    sqlite3_result_error(ctx, zMsg ? zMsg : b.zErr, -1);
    sqlite3_result_error_code(ctx, rc);
    sqlite3_free(zMsg);
  }
  sqlite3_free(b.zErr);
  sqlite3_free(b.zCopy);
}
