/*
** catalog.c: where a table's store is, kept in the database; shared store
** handles; reclaiming dropped stores; temporary stores; the connection's
** state.
*/
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

/* ---- store handles, shared within the connection ---- */

/* Opens the store at zDir, or shares the handle this connection has on
** it. On failure *ppStore is a handle for the message (hkv_open's rule). */
int hkvStoreOpen(HkvConn *c, const char *zDir, const hkv_options *pOpts,
                 hkv_db **ppStore) {
  struct stat st;
  if (stat(zDir, &st) == 0) {
    for (HkvOpen *o = c->pOpen; o; o = o->pNext) {
      if (o->dev == st.st_dev && o->ino == st.st_ino) {
        o->nRef++;
        *ppStore = o->pStore;
        return HKV_OK;
      }
    }
  }
  int rc = hkv_open(zDir, pOpts, ppStore);
  if (rc) return rc;
  HkvOpen *o = sqlite3_malloc(sizeof(*o));
  if (o && stat(zDir, &st) == 0) {
    o->dev = st.st_dev;
    o->ino = st.st_ino;
    o->pStore = *ppStore;
    o->nRef = 1;
    o->pNext = c->pOpen;
    c->pOpen = o;
  } else {
    sqlite3_free(o); /* the handle works all the same, unshared */
  }
  return HKV_OK;
}

/* Gives back one table instance's use of pStore; the last closes it. */
void hkvStoreRelease(HkvConn *c, hkv_db *pStore) {
  if (!pStore) return;
  for (HkvOpen **pp = &c->pOpen; *pp; pp = &(*pp)->pNext) {
    HkvOpen *o = *pp;
    if (o->pStore == pStore) {
      if (--o->nRef > 0) return;
      *pp = o->pNext;
      sqlite3_free(o);
      break;
    }
  }
  hkv_close(pStore);
}

/* Deletes the store directory zDir, or with bIfEmpty only a store that
** holds no live key. HKV_BUSY, nothing deleted, while a handle (of this
** connection, another, or another process) has it open; else HKV_OK. */
int hkvRemoveStore(const char *zDir, int bIfEmpty) {
  hkv_db *pStore = 0;
  hkv_options o;
  hkv_options_init(&o);
  o.flags = HKV_OPEN_NOCREATE;
  o.sync = HKV_SYNC_OFF;
  int rc = hkv_open(zDir, &o, &pStore);
  if (rc != HKV_OK) {
    hkv_close(pStore);
    if (rc == HKV_BUSY) return HKV_BUSY;
    rmdir(zDir); /* not a store: goes only if empty */
    return HKV_OK;
  }
  hkv_stats st;
  if (bIfEmpty && (hkv_stats_get(pStore, &st) != HKV_OK || st.live_keys)) {
    hkv_close(pStore);
    return HKV_OK;
  }
  rc = hkv_destroy(pStore);
  if (rc == HKV_BUSY) hkv_close(pStore);
  return rc == HKV_BUSY ? HKV_BUSY : HKV_OK;
}

/* ---- the catalog: where a table's store is ----
**
** A table finds its store through the database, not through its name. Each
** table has a shadow table (xShadowName: read-only to ordinary SQL under
** SQLITE_DBCONFIG_DEFENSIVE) holding one row, its link:
**   CREATE TABLE "<table>_hashkv"(kind TEXT, dir TEXT)
** made by CREATE TABLE ... AS SELECT, which (unlike an INSERT) leaves
** changes() and total_changes() as a native CREATE TABLE does.
**   kind    dir                    the store
**   'id'    16 hex digits          <database file>-hashkv/<dir>/, the module's
**   'path'  the path option        that directory, the user's
**   'temp'  an absolute directory  a temporary store (in-memory or temp db)
**   'legacy' a table name          <database file>-<dir>.hkv/, made by 0.1.0
** xCreate writes it, xRename renames the shadow table, xDestroy drops it,
** all with SQL inside the statement's transaction: a ROLLBACK, a ROLLBACK
** TO, a failed COMMIT or a crash undoes them with the rest, and there is
** nothing on disk to replay. A store's directory never moves. An id is 64
** random bits made into a directory with mkdir (never an existing one), so
** a new CREATE never meets an old store, and a copy of the database (a
** .backup, VACUUM INTO) looks for its stores beside itself.
**
** A table without a link was made by 0.1.0: its store is where 0.1.0 put
** it (its path option, else <database file>-<table>.hkv) and is used
** there; its first RENAME writes the link that keeps it there.
**
** DROP of a table whose store the module owns ('id', 'legacy') also
** records it as dropped, in the same transaction:
**   CREATE TABLE hashkv_dropped(kind TEXT NOT NULL, dir TEXT NOT NULL,
**                               PRIMARY KEY(kind, dir)) WITHOUT ROWID
** Nothing is deleted then. A store is reclaimed (hkvReclaimSchema: at a
** connection's first use of a schema, at each CREATE, and by SELECT
** hashkv_reclaim()) when no link of the committed schema names it, no
** handle of any process has it open, and either the committed schema
** records it as dropped or it holds no row (an undone CREATE). A 'path'
** store is never deleted: the directory is the user's. A temporary store
** goes when its connection closes, or earlier once no link names it; one
** left by a process that died is removed by the next temporary CREATE that
** finds it open by nobody.
*/

static void freeTemp(HkvTemp *t) {
  sqlite3_free(t->zSchema);
  sqlite3_free(t->zDir);
  sqlite3_free(t);
}

int hkvStep(sqlite3 *db, sqlite3_stmt *pStmt) {
  int rc = sqlite3_step(pStmt);
  int msLeft = -1, msStep = 1;
  while (rc == SQLITE_BUSY) {
    if (msLeft < 0) msLeft = hkvBusyTimeout(db);
    if (msLeft == 0) break;
    int ms = msStep < msLeft ? msStep : msLeft;
    sqlite3_sleep(ms);
    msLeft -= ms;
    if (msStep < 25) msStep *= 2;
    sqlite3_reset(pStmt);
    rc = sqlite3_step(pStmt);
  }
  return rc;
}

/* Runs zSql, which it frees (NULL: out of memory), on db. */
int hkvExecFree(sqlite3 *db, char *zSql, char **pzErr) {
  if (!zSql) return SQLITE_NOMEM;
  char *zErr = 0;
  int rc = sqlite3_exec(db, zSql, 0, 0, &zErr);
  sqlite3_free(zSql);
  if (rc && pzErr) {
    sqlite3_free(*pzErr);
    *pzErr = sqlite3_mprintf("hashkv: %s", zErr ? zErr : sqlite3_errstr(rc));
  }
  sqlite3_free(zErr);
  return rc;
}

int hkvSchemaHas(sqlite3 *db, const char *zSchema, const char *zName,
                 int bViews) {
  sqlite3_stmt *pStmt = 0;
  int r = -1;
  char *zSql = sqlite3_mprintf(
      "SELECT 1 FROM \"%w\".sqlite_schema WHERE type IN ('table', %Q) AND "
      "name = ?1 COLLATE NOCASE",
      zSchema, bViews ? "view" : "table");
  if (zSql && sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0) == SQLITE_OK &&
      sqlite3_bind_text(pStmt, 1, zName, -1, SQLITE_STATIC) == SQLITE_OK) {
    int rc = hkvStep(db, pStmt);
    r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
  }
  sqlite3_finalize(pStmt);
  sqlite3_free(zSql);
  return r;
}

/* Table zName's link in *pzKind and *pzDir (sqlite3_malloc'd), both NULL
** for a table of 0.1.0 (no shadow table). */
int hkvLinkRead(sqlite3 *db, const char *zSchema, const char *zName,
                char **pzKind, char **pzDir) {
  *pzKind = *pzDir = 0;
  char *zShadow = sqlite3_mprintf("%s_" HKV_SHADOW, zName);
  if (!zShadow) return SQLITE_NOMEM;
  int r = hkvSchemaHas(db, zSchema, zShadow, 0);
  int rc = r < 0 ? SQLITE_ERROR : SQLITE_OK;
  if (r == 1) {
    sqlite3_stmt *pStmt = 0;
    char *zSql = sqlite3_mprintf("SELECT kind, dir FROM \"%w\".\"%w\"", zSchema,
                                 zShadow);
    rc = zSql ? sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0) : SQLITE_NOMEM;
    sqlite3_free(zSql);
    if (rc == SQLITE_OK && hkvStep(db, pStmt) == SQLITE_ROW &&
        sqlite3_column_text(pStmt, 0) && sqlite3_column_text(pStmt, 1)) {
      *pzKind = sqlite3_mprintf("%s", sqlite3_column_text(pStmt, 0));
      *pzDir = sqlite3_mprintf("%s", sqlite3_column_text(pStmt, 1));
      if (!*pzKind || !*pzDir) rc = SQLITE_NOMEM;
    } else if (rc == SQLITE_OK) {
      rc = SQLITE_CORRUPT_VTAB; /* a shadow table without its row */
    }
    sqlite3_finalize(pStmt);
  }
  sqlite3_free(zShadow);
  if (rc) {
    sqlite3_free(*pzKind);
    sqlite3_free(*pzDir);
    *pzKind = *pzDir = 0;
  }
  return rc;
}

/* Writes table zName's link, creating its shadow table. */
int hkvLinkWrite(sqlite3 *db, const char *zSchema, const char *zName,
                 const char *zKind, const char *zDir, char **pzErr) {
  return hkvExecFree(
      db,
      sqlite3_mprintf("CREATE TABLE \"%w\".\"%w_" HKV_SHADOW "\" AS "
                      "SELECT CAST(%Q AS TEXT) AS kind, CAST(%Q AS TEXT) AS dir",
                      zSchema, zName, zKind, zDir),
      pzErr);
}

/* A path option's directory: relative to the database file's folder. */
char *hkvResolvePath(sqlite3 *db, const char *zSchema, const char *zPath) {
  const char *zFile = sqlite3_db_filename(db, zSchema);
  const char *zSlash = zFile && zFile[0] ? strrchr(zFile, '/') : 0;
  if (zPath[0] == '/' || !zSlash) return sqlite3_mprintf("%s", zPath);
  return sqlite3_mprintf("%.*s/%s", (int)(zSlash - zFile), zFile, zPath);
}

/* The directory a link names (see above), or NULL if out of memory. */
char *hkvLinkDir(sqlite3 *db, const char *zSchema, const char *zKind,
                 const char *zDir) {
  const char *zFile = sqlite3_db_filename(db, zSchema);
  if (!zFile) zFile = "";
  if (!strcmp(zKind, HKV_KIND_ID)) {
    return sqlite3_mprintf("%s" HKV_FOLDER "/%s", zFile, zDir);
  }
  if (!strcmp(zKind, HKV_KIND_LEGACY)) {
    return sqlite3_mprintf("%s-%s.hkv", zFile, zDir);
  }
  if (!strcmp(zKind, HKV_KIND_PATH)) return hkvResolvePath(db, zSchema, zDir);
  return sqlite3_mprintf("%s", zDir);
}

/* Makes a new, empty directory for a store with a fresh id beside database
** file zFile: its id in *pzId, its path in *pzDir. */
int hkvNewIdDir(const char *zFile, char **pzId, char **pzDir) {
  *pzId = *pzDir = 0;
  char *zFolder = sqlite3_mprintf("%s" HKV_FOLDER, zFile);
  if (!zFolder) return SQLITE_NOMEM;
  int rc = SQLITE_CANTOPEN;
  for (int i = 0; i < 100; i++) {
    sqlite3_uint64 u;
    sqlite3_randomness(sizeof(u), &u);
    char *zId = sqlite3_mprintf("%016llx", (unsigned long long)u);
    char *zDir = zId ? sqlite3_mprintf("%s/%s", zFolder, zId) : 0;
    if (!zDir) {
      sqlite3_free(zId);
      rc = SQLITE_NOMEM;
      break;
    }
    if (mkdir(zFolder, 0777) != 0 && errno != EEXIST) {
      sqlite3_free(zId);
      sqlite3_free(zDir);
      break;
    }
    if (mkdir(zDir, 0777) == 0) {
      *pzId = zId;
      *pzDir = zDir;
      rc = SQLITE_OK;
      break;
    }
    int e = errno;
    sqlite3_free(zId);
    sqlite3_free(zDir);
    if (e != EEXIST && e != ENOENT) break; /* ENOENT: folder reclaimed */
  }
  sqlite3_free(zFolder);
  return rc;
}

/* A set of (kind, dir) pairs. */
typedef struct HkvSet {
  char **az;
  int n, nAlloc;
} HkvSet;

static int setAdd(HkvSet *s, const char *zKind, const char *zDir) {
  if (s->n == s->nAlloc) {
    int nNew = s->nAlloc ? 2 * s->nAlloc : 16;
    char **az = sqlite3_realloc64(s->az, sizeof(char *) * (sqlite3_uint64)nNew);
    if (!az) return SQLITE_NOMEM;
    s->az = az;
    s->nAlloc = nNew;
  }
  s->az[s->n] = sqlite3_mprintf("%s/%s", zKind, zDir);
  return s->az[s->n++] ? SQLITE_OK : SQLITE_NOMEM;
}

static int setHas(const HkvSet *s, const char *zKind, const char *zDir) {
  size_t nKind = strlen(zKind);
  for (int i = 0; i < s->n; i++) {
    if (!strncmp(s->az[i], zKind, nKind) && s->az[i][nKind] == '/' &&
        !strcmp(s->az[i] + nKind + 1, zDir)) {
      return 1;
    }
  }
  return 0;
}

static void setFree(HkvSet *s) {
  for (int i = 0; i < s->n; i++) sqlite3_free(s->az[i]);
  sqlite3_free(s->az);
  memset(s, 0, sizeof(*s));
}

/* Adds the rows of query zSql (two text columns) to s. */
static int setQuery(sqlite3 *db, char *zSql, HkvSet *s) {
  sqlite3_stmt *pStmt = 0;
  int rc = zSql ? sqlite3_prepare_v2(db, zSql, -1, &pStmt, 0) : SQLITE_NOMEM;
  sqlite3_free(zSql);
  int bFirst = 1;
  while (rc == SQLITE_OK && (rc = bFirst ? hkvStep(db, pStmt)
                                         : sqlite3_step(pStmt)) == SQLITE_ROW) {
    bFirst = 0;
    const char *zKind = (const char *)sqlite3_column_text(pStmt, 0);
    const char *zDir = (const char *)sqlite3_column_text(pStmt, 1);
    rc = zKind && zDir ? setAdd(s, zKind, zDir) : SQLITE_OK;
  }
  sqlite3_finalize(pStmt);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Every store the schema's links name, in *pLive; a virtual table without
** a link counts as a 0.1.0 table ('legacy', its name). */
static int liveStores(sqlite3 *db, const char *zSchema, HkvSet *pLive) {
  HkvSet vt;
  memset(&vt, 0, sizeof(vt));
  /* ("vt", name) for each virtual table, ("sh", name) for each table */
  int rc = setQuery(
      db,
      sqlite3_mprintf("SELECT CASE WHEN sql LIKE 'CREATE VIRTUAL TABLE%%' "
                      "THEN 'vt' ELSE 'sh' END, name FROM \"%w\".sqlite_schema "
                      "WHERE type = 'table'",
                      zSchema),
      &vt);
  /* one query over every link: a statement each would cost a prepare and
  ** a read transaction each, at every connection's first table */
  sqlite3_str *pSql = sqlite3_str_new(db);
  int nLink = 0;
  for (int i = 0; rc == SQLITE_OK && i < vt.n; i++) {
    if (strncmp(vt.az[i], "vt/", 3)) continue;
    const char *zName = vt.az[i] + 3;
    char *zShadow = sqlite3_mprintf("%s_" HKV_SHADOW, zName);
    if (!zShadow) {
      rc = SQLITE_NOMEM;
      break;
    }
    int bShadow = 0;
    for (int j = 0; j < vt.n; j++) {
      if (!strncmp(vt.az[j], "sh/", 3) &&
          !sqlite3_stricmp(vt.az[j] + 3, zShadow)) {
        bShadow = 1;
      }
    }
    if (bShadow) {
      sqlite3_str_appendf(pSql, "%sSELECT kind, dir FROM \"%w\".\"%w\"",
                          nLink++ ? " UNION ALL " : "", zSchema, zShadow);
    } else {
      rc = setAdd(pLive, HKV_KIND_LEGACY, zName);
    }
    sqlite3_free(zShadow);
  }
  char *zSql = sqlite3_str_finish(pSql);
  if (rc == SQLITE_OK && nLink) {
    rc = setQuery(db, zSql, pLive); /* frees zSql */
  } else {
    sqlite3_free(zSql);
    if (rc == SQLITE_OK && !zSql && nLink) rc = SQLITE_NOMEM;
  }
  setFree(&vt);
  return rc;
}

/* 0 if no link of schema zSchema names the store (zKind, zLink), else 1
** (also when it cannot tell). */
int hkvStoreNamed(sqlite3 *db, const char *zSchema, const char *zKind,
                  const char *zLink) {
  HkvSet live;
  memset(&live, 0, sizeof(live));
  int rc = liveStores(db, zSchema, &live);
  int bLive = rc != SQLITE_OK || setHas(&live, zKind, zLink);
  setFree(&live);
  return bLive;
}

/* The stores the schema records as dropped. */
static int droppedStores(sqlite3 *db, const char *zSchema, HkvSet *pDead) {
  int r = hkvSchemaHas(db, zSchema, "hashkv_dropped", 0);
  if (r <= 0) return r < 0 ? SQLITE_ERROR : SQLITE_OK;
  return setQuery(
      db,
      sqlite3_mprintf("SELECT kind, dir FROM \"%w\".hashkv_dropped", zSchema),
      pDead);
}

/* 1 if db's view of its schemas is a committed state: autocommit mode,
** and no statement but at most nBusy running (a running statement may
** hold an older snapshot, or be a write). */
int hkvViewIsCommitted(sqlite3 *db, int nBusy) {
  if (!sqlite3_get_autocommit(db)) return 0;
  for (sqlite3_stmt *s = sqlite3_next_stmt(db, 0); s;
       s = sqlite3_next_stmt(db, s)) {
    if (sqlite3_stmt_busy(s) && --nBusy < 0) return 0;
  }
  return 1;
}

/* A candidate for reclaiming: a store held open while its fate is read. */
typedef struct HkvCand {
  char *zKind, *zName, *zDir;
  hkv_db *pStore;
} HkvCand;

/*
** Deletes the stores of schema zSchema that are dropped (see the section's
** comment); returns how many. Needs a committed view (hkvViewIsCommitted).
** Each candidate (an id directory no link names, a dropped 0.1.0 store) is
** opened first and kept only if it is the store's sole handle; the schema
** is then read again: a CREATE that committed meanwhile had the store open
** until then, so it is either seen by that read or has made the open fail.
*/
int hkvReclaimSchema(HkvConn *c, sqlite3 *db, const char *zSchema) {
  const char *zFile = sqlite3_db_filename(db, zSchema);
  int nDone = 0;
  if (c) { /* this connection's temporary stores no link names any more */
    HkvSet live;
    memset(&live, 0, sizeof(live));
    int bLive = 0;
    for (HkvTemp **pp = &c->pTemps; *pp;) {
      HkvTemp *t = *pp;
      if (sqlite3_stricmp(t->zSchema, zSchema)) {
        pp = &t->pNext;
        continue;
      }
      if (!bLive) {
        if (liveStores(db, zSchema, &live)) break;
        bLive = 1;
      }
      if (!setHas(&live, HKV_KIND_TEMP, t->zDir) &&
          hkvRemoveStore(t->zDir, 0) == HKV_OK) {
        *pp = t->pNext;
        freeTemp(t);
        nDone++;
      } else {
        pp = &t->pNext;
      }
    }
    setFree(&live);
  }
  if (!zFile || !zFile[0]) return nDone;
  HkvSet live, dead;
  memset(&live, 0, sizeof(live));
  memset(&dead, 0, sizeof(dead));
  HkvCand *aCand = 0;
  int nCand = 0, nAlloc = 0;
  char *zFolder = sqlite3_mprintf("%s" HKV_FOLDER, zFile);
  int rc = zFolder ? liveStores(db, zSchema, &live) : SQLITE_NOMEM;
  if (rc == SQLITE_OK) rc = droppedStores(db, zSchema, &dead);
  DIR *pDir = rc == SQLITE_OK ? opendir(zFolder) : 0;
  struct dirent *pEnt;
  /* the candidates: unnamed ids, then dropped 0.1.0 stores */
  for (int i = -1; rc == SQLITE_OK;) {
    const char *zKind, *zName;
    if (pDir && (pEnt = readdir(pDir)) != 0) {
      if (pEnt->d_name[0] == '.') continue;
      zKind = HKV_KIND_ID;
      zName = pEnt->d_name;
    } else {
      if (pDir) closedir(pDir);
      pDir = 0;
      if (++i >= dead.n) break;
      if (strncmp(dead.az[i], HKV_KIND_LEGACY "/", sizeof(HKV_KIND_LEGACY))) {
        continue;
      }
      zKind = HKV_KIND_LEGACY;
      zName = dead.az[i] + sizeof(HKV_KIND_LEGACY);
    }
    if (setHas(&live, zKind, zName)) continue;
    if (nCand == nAlloc) {
      nAlloc = nAlloc ? 2 * nAlloc : 8;
      HkvCand *a =
          sqlite3_realloc64(aCand, sizeof(*a) * (sqlite3_uint64)nAlloc);
      if (!a) {
        rc = SQLITE_NOMEM;
        break;
      }
      aCand = a;
    }
    HkvCand *pC = &aCand[nCand];
    memset(pC, 0, sizeof(*pC));
    pC->zKind = sqlite3_mprintf("%s", zKind);
    pC->zName = sqlite3_mprintf("%s", zName);
    pC->zDir = hkvLinkDir(db, zSchema, zKind, zName);
    nCand++;
    if (!pC->zKind || !pC->zName || !pC->zDir) {
      rc = SQLITE_NOMEM;
      break;
    }
    hkv_options o;
    hkv_options_init(&o);
    o.flags = HKV_OPEN_NOCREATE;
    o.sync = HKV_SYNC_OFF;
    int hrc = hkv_open(pC->zDir, &o, &pC->pStore);
    if (hrc == HKV_OK) hrc = hkv_sole_handle(pC->pStore);
    if (hrc != HKV_OK) {
      hkv_close(pC->pStore);
      pC->pStore = 0;
    }
  }
  if (pDir) closedir(pDir);
  setFree(&live);
  if (rc == SQLITE_OK && nCand) rc = liveStores(db, zSchema, &live);
  for (int i = 0; i < nCand; i++) {
    HkvCand *pC = &aCand[i];
    hkv_stats st;
    if (rc == SQLITE_OK && pC->pStore && !setHas(&live, pC->zKind, pC->zName) &&
        (setHas(&dead, pC->zKind, pC->zName) ||
         (hkv_stats_get(pC->pStore, &st) == HKV_OK && st.live_keys == 0))) {
      if (hkv_destroy(pC->pStore) != HKV_BUSY) {
        pC->pStore = 0;
        nDone++;
      }
    }
    hkv_close(pC->pStore);
    sqlite3_free(pC->zKind);
    sqlite3_free(pC->zName);
    sqlite3_free(pC->zDir);
  }
  sqlite3_free(aCand);
  setFree(&live);
  setFree(&dead);
  sqlite3_free(zFolder);
  return nDone;
}

/* Removes temporary stores of processes that died: directories named
** hashkv-temp-* in zTmp that hold a store nobody has open. */
static void reclaimStaleTemps(HkvConn *c, const char *zTmp) {
  DIR *pDir = opendir(zTmp);
  if (!pDir) return;
  struct dirent *pEnt;
  while ((pEnt = readdir(pDir)) != 0) {
    if (strncmp(pEnt->d_name, HKV_TEMP_PREFIX, strlen(HKV_TEMP_PREFIX)))
      continue;
    char *zDir = sqlite3_mprintf("%s/%s", zTmp, pEnt->d_name);
    int bOurs = 0;
    for (HkvTemp *t = c->pTemps; zDir && t; t = t->pNext) {
      if (!strcmp(t->zDir, zDir)) bOurs = 1;
    }
    if (zDir && !bOurs) hkvRemoveStore(zDir, 0);
    sqlite3_free(zDir);
  }
  closedir(pDir);
}

/* Makes a temporary store's directory, noted in c->pTemps; its path in
** *pzDir. */
int hkvNewTempDir(HkvConn *c, const char *zSchema, char **pzDir, char **pzErr) {
  const char *zTmp = getenv("TMPDIR");
  if (!zTmp || !zTmp[0]) zTmp = "/tmp";
  *pzDir = 0;
  reclaimStaleTemps(c, zTmp);
  HkvTemp *t = sqlite3_malloc(sizeof(*t));
  char *zTemplate = sqlite3_mprintf("%s/" HKV_TEMP_PREFIX "XXXXXX", zTmp);
  char *zCopy = zTemplate ? sqlite3_mprintf("%s", zSchema) : 0;
  if (!t || !zCopy) {
    sqlite3_free(t);
    sqlite3_free(zTemplate);
    sqlite3_free(zCopy);
    return SQLITE_NOMEM;
  }
  if (!mkdtemp(zTemplate)) {
    *pzErr =
        sqlite3_mprintf("hashkv: cannot create a temporary store in %s", zTmp);
    sqlite3_free(t);
    sqlite3_free(zTemplate);
    sqlite3_free(zCopy);
    return SQLITE_CANTOPEN;
  }
  *pzDir = sqlite3_mprintf("%s", zTemplate);
  if (!*pzDir) {
    rmdir(zTemplate);
    sqlite3_free(t);
    sqlite3_free(zTemplate);
    sqlite3_free(zCopy);
    return SQLITE_NOMEM;
  }
  t->zSchema = zCopy;
  t->zDir = zTemplate;
  t->pNext = c->pTemps;
  c->pTemps = t;
  return SQLITE_OK;
}

/* Reclaims, once per connection and schema, at its first table. */
void hkvReclaimOnce(HkvConn *c, sqlite3 *db, const char *zSchema) {
  const char *zFile = sqlite3_db_filename(db, zSchema);
  if (!zFile || !zFile[0] || !hkvViewIsCommitted(db, 0)) return;
  for (HkvSeen *s = c->pSeen; s; s = s->pNext) {
    if (!strcmp(s->zFile, zFile)) return;
  }
  size_t n = strlen(zFile);
  HkvSeen *s = sqlite3_malloc64(sizeof(*s) + n + 1);
  if (!s) return;
  s->zFile = (char *)(s + 1);
  memcpy(s->zFile, zFile, n + 1);
  s->pNext = c->pSeen;
  c->pSeen = s;
  hkvReclaimSchema(c, db, zSchema);
}

void hkvConnRelease(HkvConn *c) {
  while (c->pFreeRes) {
    HkvResBuf *b = c->pFreeRes;
    c->pFreeRes = b->pNext;
    sqlite3_free(b);
  }
  sqlite3_free(c);
}

void hkvConnFree(void *pArg) {
  HkvConn *c = pArg;
  while (c->pOpen) { /* every table is disconnected by now: none left */
    HkvOpen *o = c->pOpen;
    c->pOpen = o->pNext;
    hkv_close(o->pStore);
    sqlite3_free(o);
  }
  while (c->pTemps) {
    HkvTemp *t = c->pTemps;
    c->pTemps = t->pNext;
    hkvRemoveStore(t->zDir, 0);
    freeTemp(t);
  }
  while (c->pSeen) {
    HkvSeen *s = c->pSeen;
    c->pSeen = s->pNext;
    sqlite3_free(s);
  }
  if (c->nResOut > 0) {
    c->bClosing = 1; /* the last result buffer returned frees c */
  } else {
    hkvConnRelease(c);
  }
}
