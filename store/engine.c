/*
** engine.c: the top of the store and the only caller of recovery and
** compaction: handles, the engine registry, transactions, reads, scans,
** epochs, stats and the integrity check. It owns the index's contents
** (recovery and compaction reach them only through the callbacks it hands
** them) and the handle-level state; the files below own the rest (see the
** groups of HkvEngine in hkvInt.h).
**
** One HkvEngine per store directory per process, found by the directory's
** device and inode and shared by every hkv_db opened on it. Other processes
** have engines of their own on the same files: see "sharing" below.
**
** Visibility without copying a transaction's writes
**   The writer applies each put/delete to the shared index at once, with the
**   loc of its new (uncommitted) record; a delete points the slot at its DEL
**   record. iCommitted is the log position (seq << 32 | offset) where the
**   committed log ends. A reader that meets a slot whose loc is at or past
**   iCommitted asks the loc map for the last committed loc of that key (no
**   entry: the key did not exist before the transaction). So:
**     - commit publishes by moving iCommitted (O(1), cannot fail), then
**       clears the map and drops the slots of committed DEL records;
**     - readers never read uncommitted records, which may still sit in the
**       writer's buffer;
**     - the writer keeps an undo log {new loc, previous loc} per write, which
**       rolls back a savepoint or the whole transaction without allocating.
**   Log records are never overwritten or truncated while the store is open
**   (a rollback appends ROLLBACK_TO or ABORT), so a loc names the same bytes
**   for the life of the engine and mappings stay valid.
**
** Locks
**   registryMu   the list of engines; held through open and close.
**   e->mu        the writer slot (pWriter), counters.
**   e->latch        index, loc map, iCommitted, bDirty. Readers: shared, for
**                the probe only (the record is read after unlocking; it
**                cannot move). Writer: exclusive around each change; it
**                reads the index without the lock, as nobody else changes it.
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

typedef struct HkvUndo {
  HkvLoc locNew;  /* record written */
  HkvLoc locPrev; /* what the key's slot held before (0: no slot) */
  uint32_t nNew;  /* bytes of the new record | HKV_UNDO_DEL if a DEL
                  ** | HKV_UNDO_EXP if it has an expiry */
  uint32_t nPrev; /* bytes of the previous record | the same flags */
} HkvUndo;
/* Records are under 2^30 bytes (HKV_MAX_VALUE + header + key + expiry),
** which leaves the two top bits for flags. */
#define HKV_UNDO_DEL 0x80000000u
#define HKV_UNDO_EXP 0x40000000u
#define HKV_UNDO_LEN(n) ((n) & ~(HKV_UNDO_DEL | HKV_UNDO_EXP))

typedef struct HkvMark {
  uint64_t iUndo;  /* undo entries before the savepoint */
  uint64_t iOrder; /* log position when it was taken */
} HkvMark;

struct hkv_db {
  HkvEngine *e;
  int iSync;
  int bReadonly;
  char *zPath; /* the directory as given to hkv_open */
  int rc;      /* code of the last call */
  char *zErr;  /* its message, if any */

  int bTxn;      /* a transaction is open */
  int bAuto;     /* it is the implicit one of a single put/delete */
  int bWriter;   /* holds e->pWriter */
  int bPrepared; /* hkv_prepare succeeded */
  int bWrote;    /* records appended in this transaction */
  uint64_t iTxn;
  HkvUndo *aUndo;
  uint64_t nUndo, nUndoAlloc;
  HkvMark *aMark;
  int nMark, nMarkAlloc;
  _Atomic uint64_t iEpoch; /* engine epoch when its last call began */
  _Atomic int bProbe;      /* probing the index without e->latch */
  hkv_db *pNextHandle;     /* e->pHandles */
};

struct hkv_iter {
  hkv_db *db;
  uint64_t iEpoch;     /* segments retired after this stay mapped */
  hkv_iter *pNextIter; /* e->pIters */
  HkvLoc *aLoc;        /* the snapshot, sorted by loc (sortLocs) */
  uint64_t nLoc, iNext;
  HkvLoc locCur;   /* the entry hkv_iter_next(_key) moved to; 0: none */
  int64_t iExpire; /* expiry of the entry last returned (0: none) */
  int bMayExpire;  /* the engine has held an expiring key: skip must read */
};

static pthread_mutex_t registryMu = PTHREAD_MUTEX_INITIALIZER;
static HkvEngine *pRegistry;

/* ---- codes and messages ---- */

const char *hkv_codename(int rc) {
  switch (rc) {
#define HKV_CODE_NAME(name, val, msg) \
  case val:                           \
    return "HKV_" #name;
    HKV_CODE_MAP(HKV_CODE_NAME)
#undef HKV_CODE_NAME
  }
  return "HKV_UNKNOWN";
}

const char *hkv_strerror(int rc) {
  switch (rc) {
#define HKV_CODE_MSG(name, val, msg) \
  case val:                          \
    return msg;
    HKV_CODE_MAP(HKV_CODE_MSG)
#undef HKV_CODE_MSG
  }
  return "unknown error";
}

/* Records rc and zMsg (taken; NULL: the generic message) as db's last. */
static int dbSet(hkv_db *db, int rc, char *zMsg) {
  if (db->zErr) hkvFree(db->zErr);
  db->zErr = zMsg;
  db->rc = rc;
  return rc;
}

static int dbErr(hkv_db *db, int rc, const char *zFmt, ...) HKV_PRINTF(3, 4);
static int dbErr(hkv_db *db, int rc, const char *zFmt, ...) {
  char *z = 0;
  if (zFmt) {
    va_list ap;
    va_start(ap, zFmt);
    int n = vsnprintf(NULL, 0, zFmt, ap);
    va_end(ap);
    if (n >= 0 && (z = hkvMalloc((size_t)n + 1)) != 0) {
      va_start(ap, zFmt);
      vsnprintf(z, (size_t)n + 1, zFmt, ap);
      va_end(ap);
    }
  }
  return dbSet(db, rc, z);
}

const char *hkv_errmsg(hkv_db *db) {
  if (!db) return hkv_strerror(HKV_NOMEM);
  return db->zErr ? db->zErr : hkv_strerror(db->rc);
}

int hkv_options_init(hkv_options *pOpts) {
  if (!pOpts) return HKV_MISUSE;
  memset(pOpts, 0, sizeof(*pOpts));
  pOpts->sync = HKV_SYNC_FULL;
  pOpts->segment_size = HKV_DEFAULT_SEGMENT_SIZE;
  pOpts->auto_compact = HKV_DEFAULT_AUTO_COMPACT;
  pOpts->auto_compact_min = HKV_DEFAULT_AUTO_COMPACT_MIN;
  return HKV_OK;
}

/* ---- hashing and matching against records ---- */

/* Hash of the record at loc; the writer's (or recovery's) view. */
static uint64_t hashAt(void *pCtx, HkvLoc loc) {
  HkvEngine *e = pCtx;
  if (loc & HKV_LOC_PREFETCH) {
    /* A prefetch never faults, even past the end of the file. */
    HkvSeg *s = e->apSeg[HKV_LOC_SLOT(loc)];
    if (s) __builtin_prefetch(s->pMap + HKV_LOC_OFF(loc));
    return 0;
  }
  /* Only the key is needed: no full decode (growth rehashes every key). A
  ** record too short to hold its key hashes to 0; the integrity check and
  ** reads report it. */
  uint64_t n;
  const uint8_t *p = hkvLogBytes(e, loc, 1, &n);
  if (n < HKV_REC_HDR) return 0;
  uint32_t nHdr = HKV_REC_HDR + ((p[5] & HKV_FLAG_EXPIRES) ? HKV_REC_EXP : 0);
  if (nHdr + (uint64_t)hkvGet16(p + 6) > n) return 0;
  return hkvKeyHash(p + nHdr, hkvGet16(p + 6));
}

/* ---- expiry ----
** An expiry lives in its record only (flag EXPIRES), never in the index:
** the 8-byte slots stay as they are, and a get, which reads the record to
** compare the key anyway, finds the expiry beside it. The clock is read only
** for records that have one, so keys without expiry never pay for it. */

static int64_t hkvNow(void) { return hkvEnv->xNow(1); }

/* Counts (iSign 1) or uncounts (-1) a record of nRec bytes at loc as live:
** the engine's bytes, its segment's, and the expiry bookkeeping that lets
** the auto_compact trigger count a segment's expired records as dead.
** Caller holds e->mu or is alone (recovery). */
static void countLive(HkvEngine *e, HkvLoc loc, uint32_t nRec, int bExp,
                      int iSign) {
  HkvSeg *s = e->apSeg[HKV_LOC_SLOT(loc)];
  if (iSign > 0) {
    e->nLiveBytes += nRec;
    s->nLive += nRec;
    if (bExp) {
      s->nExpLive += nRec;
      e->nExpiring++;
      e->bEverExpiring = 1;
    }
  } else {
    e->nLiveBytes -= nRec;
    s->nLive -= nRec;
    if (bExp) {
      /* A compaction output counts its records once sealed: never below 0. */
      s->nExpLive -= s->nExpLive < nRec ? s->nExpLive : nRec;
      if (e->nExpiring) e->nExpiring--;
    }
  }
}

/* Notes that segment of loc holds a record expiring at iExpire. */
static void noteExpiry(HkvEngine *e, HkvLoc loc, int64_t iExpire) {
  HkvSeg *s = e->apSeg[HKV_LOC_SLOT(loc)];
  if (iExpire > s->iMaxExpire) s->iMaxExpire = iExpire;
}

typedef struct Seek {
  HkvEngine *e;
  const void *pKey;
  uint32_t nKey;
  int bReader; /* resolve uncommitted slots through the loc map */
  int bOwn;    /* the writer (or recovery) asks: records may be buffered */
  uint64_t iCommitted;
  HkvLoc locExact; /* nonzero: match the slot holding exactly this loc */
  HkvLoc loc;      /* out: the record found */
  HkvRec rec;      /* out: its header */
  int rc;          /* out: CORRUPT if a record could not be decoded */
} Seek;

static int seekMatch(void *pCtx, uint64_t *pSlot) {
  Seek *k = pCtx;
  HkvLoc loc = HKV_SLOT_LOC(*pSlot);
  if (k->locExact) return loc == k->locExact;
  if (k->bReader && hkvLogOrder(k->e, loc) >= k->iCommitted) {
    loc = hkvMapGet(&k->e->map, loc);
    if (!loc) return 0; /* inserted by the open transaction: not ours yet */
  }
  HkvRec rec;
  if (hkvLogRead(k->e, loc, k->bOwn ? HKV_READ_OWN : 0, &rec, 0)) {
    k->rc = HKV_CORRUPT;
    k->loc = loc;
    return 1;
  }
  if (rec.nKey != k->nKey || memcmp(rec.pKey, k->pKey, k->nKey) != 0) {
    /* Another key with the same fingerprint, unless the record is damaged:
    ** a flipped bit in its key must be an error, never "not found". */
    if (hkvLogRead(k->e, loc, (k->bOwn ? HKV_READ_OWN : 0) | HKV_READ_VERIFY,
                   &rec, 0)) {
      k->rc = HKV_CORRUPT;
      k->loc = loc;
      return 1;
    }
    return 0;
  }
  k->loc = loc;
  k->rec = rec;
  return 1;
}

/* Slot of the record at exactly loc (which the writer may see). */
static uint64_t *findExact(HkvEngine *e, HkvLoc loc) {
  Seek k;
  memset(&k, 0, sizeof(k));
  k.e = e;
  k.locExact = loc;
  return hkvIndexFind(&e->idx, hashAt(e, loc), seekMatch, &k);
}

static int isCommitted(HkvEngine *e, HkvLoc loc) {
  return hkvLogOrder(e, loc) <
         atomic_load_explicit(&e->iCommitted, memory_order_acquire);
}

/* ---- services for compaction ---- */

/* The slot holding exactly loc, whose key hashes to h: compaction's
** e->xFindExact. */
static uint64_t *findExactHashed(HkvEngine *e, uint64_t h, HkvLoc loc) {
  Seek k;
  memset(&k, 0, sizeof(k));
  k.e = e;
  k.locExact = loc;
  return hkvIndexFind(&e->idx, h, seekMatch, &k);
}

int hkvEngineFastReads(hkv_db *db) { return db && db->e && db->e->bFastRead; }
int hkvEngineMigrating(hkv_db *db) {
  return db && db->e && db->e->idx.old.a != NULL;
}

/*
** Epochs. A pointer a call returns stays valid until the handle's next call;
** an iterator's locations until it closes. A segment retired by compaction
** at epoch R is unmapped once every handle has begun a call at epoch >= R
** and every iterator was opened at >= R. Caller holds e->mu.
*/
static uint64_t minEpoch(HkvEngine *e) {
  uint64_t m = UINT64_MAX;
  for (hkv_db *h = e->pHandles; h; h = h->pNextHandle) {
    uint64_t v = atomic_load(&h->iEpoch);
    if (v < m) m = v;
  }
  for (hkv_iter *it = e->pIters; it; it = it->pNextIter) {
    if (it->iEpoch < m) m = it->iEpoch;
  }
  return m;
}

/*
** Index tables retired while readers may probe them without e->latch. A
** reader raises its handle's bProbe, then (compiler barrier only) loads the
** table pointers; the writer unpublishes a table, then runs a membarrier,
** which puts a full barrier into every running thread, then waits for the
** bProbe flags it sees raised to fall. Either a reader's flag was visible
** or it started after the barrier and loaded the new pointers: the classic
** asymmetric fence, which keeps every fence off the readers' path. Caller
** holds e->mu (the handle list), not e->latch.
*/
static void reapTables(HkvEngine *e) {
  if (!hkvIndexHasRetired(&e->idx)) return;
  if (e->bFastRead) {
    if (hkvEnv->xBarrier(HKV_BARRIER_FENCE) != 0) return; /* keep them */
    for (hkv_db *h = e->pHandles; h; h = h->pNextHandle) {
      while (atomic_load_explicit(&h->bProbe, memory_order_acquire))
        hkvLatchPause();
    }
  }
  hkvIndexReap(&e->idx);
}

/* Frees what no reader can still be using. Caller holds e->mu. */
static void reapRetired(HkvEngine *e) {
  reapTables(e);
  if (e->nRetired) hkvLogReap(e, minEpoch(e));
}

/* Publishes the epoch a call starts in. The store (a full barrier on x86)
** happens only when the epoch moved, which is rare: an unconditional one
** on every get cost about 90 ns at 1,000,000 keys by stopping the CPU from
** overlapping one get's cache misses with the next. The acquire load makes
** everything done before the epoch moved (the index repointed away from the
** retired segments) visible to this call. A stale published value only
** keeps segments mapped longer. */
static void enterCall(hkv_db *db) {
  uint64_t v = atomic_load_explicit(&db->e->iEpoch, memory_order_acquire);
  if (v != atomic_load_explicit(&db->iEpoch, memory_order_relaxed)) {
    atomic_store(&db->iEpoch, v);
  }
}

/* The prologue of every public call on a handle: a NULL or closed handle
** is MISUSE (nothing else can be said: there is no handle to hold the
** message); then the call's epoch is published. */
#define API_ENTER(db)                         \
  do {                                        \
    if (!(db) || !(db)->e) return HKV_MISUSE; \
    enterCall(db);                            \
  } while (0)

/* ---- recovery ---- */

static int recoverReserve(void *pCtx, uint64_t n) {
  HkvEngine *e = pCtx;
  return hkvIndexReserve(&e->idx, n, hashAt, e);
}

/* A hint entry of a compacted segment: its keys are unique and come before
** everything else in the log, so they go straight into the index. */
static int recoverHint(void *pCtx, HkvLoc loc, uint64_t hKey, uint32_t nRec,
                       int64_t iExpire) {
  HkvEngine *e = pCtx;
  if (iExpire) {
    noteExpiry(e, loc, iExpire);
    if (hkvExpiredNow(iExpire)) { /* stays out */
      e->nExpired++;
      return HKV_OK;
    }
  }
  int rc = hkvIndexInsert(&e->idx, hKey, loc, hashAt, e);
  if (rc == HKV_OK) countLive(e, loc, nRec, iExpire != 0, 1);
  return rc;
}

static int recoverApply(void *pCtx, HkvLoc loc, const HkvRec *pRec) {
  HkvEngine *e = pCtx;
  Seek k;
  memset(&k, 0, sizeof(k));
  k.e = e;
  k.bOwn = 1;
  k.pKey = pRec->pKey;
  k.nKey = pRec->nKey;
  uint64_t h = pRec->hKey ? pRec->hKey : hkvKeyHash(pRec->pKey, pRec->nKey);
  uint64_t *pSlot = hkvIndexFind(&e->idx, h, seekMatch, &k);
  if (k.rc) return HKV_CORRUPT; /* a damaged record in the key's path */
  if (pSlot) countLive(e, k.loc, k.rec.nRec, k.rec.iExpire != 0, -1);
  /* A PUT that has expired by now deletes its key, as a DEL would: an
  ** older record of the key must not show through. */
  int bGone = pRec->kind == HKV_KIND_DEL;
  if (pRec->iExpire) {
    noteExpiry(e, loc, pRec->iExpire);
    if (!bGone && hkvExpiredNow(pRec->iExpire)) {
      bGone = 1;
      e->nExpired++;
    }
  }
  if (bGone) {
    if (pSlot) hkvIndexRemove(&e->idx, pSlot);
    return HKV_OK;
  }
  if (pSlot) {
    hkvSlotSet(pSlot, HKV_FP(h) | loc);
  } else {
    int rc = hkvIndexInsert(&e->idx, h, loc, hashAt, e);
    if (rc) return rc;
  }
  countLive(e, loc, pRec->nRec, pRec->iExpire != 0, 1);
  return HKV_OK;
}

/* Compaction's e->xDropExpired: the key of the expired record at loc (which
** its slot names) leaves the index. Compaction holds the writer slot and no
** transaction has written, so the slot is committed and the loc map empty;
** the record goes with its segment, and with it the key for good. */
static void dropExpired(HkvEngine *e, uint64_t *pSlot, const HkvRec *pRec,
                        HkvLoc loc) {
  hkvLatchWrite(&e->latch);
  hkvIndexRemove(&e->idx, pSlot);
  hkvLatchUnwrite(&e->latch);
  pthread_mutex_lock(&e->mu);
  countLive(e, loc, pRec->nRec, 1, -1);
  if (e->nLiveKeys) e->nLiveKeys--;
  e->nExpired++;
  pthread_mutex_unlock(&e->mu);
}

/* Builds the (empty) index from the log up to iBound (HKV_NO_BOUND: all of
** it, cutting a torn tail) and sets the committed end. */
static int recoverIndex(HkvEngine *e, uint64_t iBound, uint64_t iMustReach,
                        char **pzErr) {
  int rc = hkvRecover(e, recoverApply, recoverHint, recoverReserve, e, iBound,
                      iMustReach, pzErr);
  if (rc) return rc;
  hkvIndexFinishMigration(&e->idx, hashAt, e);
  e->nLiveKeys = hkvIndexLive(&e->idx);
  atomic_store(&e->iCommitted, hkvLogEnd(e));
  return HKV_OK;
}

/* ---- sharing the store with other processes ----
**
** Like SQLite's WAL mode: any number of processes read, one writes at a
** time. SHM (mapped by every process) holds the committed end of the log
** and a generation that each compaction switch moves. A call that reads
** compares both with what its engine has seen (two loads, no system call);
** when another process committed, it reads just the new records into its
** index (hkvLogCatchUp); after another process compacted, it rebuilds its
** index from the new file set, mostly from hint files (reloadFiles). A
** writer takes the write lock at the first write of a transaction, catches
** up to the end of the files (cutting what a writer that died left after
** its last commit), and publishes its end in SHM at commit.
*/

/* Makes this engine's committed end the one every process sees. */
static void shmPublish(HkvEngine *e) {
  hkvSharePublish(&e->sh, atomic_load(&e->iCommitted));
}

/* Another process compacted: rebuilds the index from the current file set,
** up to the committed end it publishes. Segments of the old set stay mapped
** for readers of this process until they move on (epochs). Caller holds
** e->mu and is not writing. */
static int reloadFiles(HkvEngine *e, char **pzErr) {
  /* Blocks a switch in another process while the set is read. */
  int r = hkvShareLockFiles(&e->sh, 0);
  if (r) {
    return hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot lock: %s", e->zDir, strerror(-r)));
  }
  uint64_t iGen = hkvShareGen(&e->sh);
  uint64_t iEnd = 0;
  int rcEnd = hkvShareReadEnd(&e->sh, &iEnd, pzErr);
  if (rcEnd) {
    hkvShareUnlockFiles(&e->sh);
    return rcEnd;
  }
  hkvLatchWrite(&e->latch);
  if (e->pCompact) {
    /* Its inputs were compacted by the other process: drop its outputs. */
    hkvCompactDiscard(e);
  }
  hkvHintFree(e);
  hkvLogForgetSealed(e);
  uint64_t iRetire = hkvLogRetireAll(e);
  hkvIndexReset(&e->idx); /* lock-free readers may be in its tables */
  hkvMapClear(&e->map);
  e->nLiveBytes = 0;
  e->nExpiring = 0;
  int rc = recoverIndex(e, iEnd, 0, pzErr);
  if (rc == HKV_OK) hkvShareSeen(&e->sh, iEnd, iGen);
  hkvLogPublishEpoch(e, iRetire);
  hkvLatchUnwrite(&e->latch);
  hkvShareUnlockFiles(&e->sh);
  return rc;
}

/* Brings this engine's view up to what other processes published; with
** bAll (the caller just took the write lock), to the end of the files.
** Caller holds e->mu and is not writing. */
static int catchUp(HkvEngine *e, int bAll, char **pzErr) {
  for (int nTry = 0;; nTry++) {
    int rc = HKV_OK;
    if (hkvShareGen(&e->sh) != atomic_load(&e->sh.iSeenGen)) {
      rc = reloadFiles(e, pzErr);
      if (rc) return rc;
    }
    /* With bAll the files decide, and SHM is published again after. */
    uint64_t iEnd = 0;
    if (!bAll) {
      rc = hkvShareReadEnd(&e->sh, &iEnd, pzErr);
      if (rc) return rc;
      if (iEnd == atomic_load(&e->sh.iSeenEnd)) return HKV_OK;
    }
    hkvLatchWrite(&e->latch);
    rc = hkvRecoverCatchUp(e, recoverApply, e, bAll ? HKV_NO_BOUND : iEnd,
                           pzErr);
    if (rc == HKV_OK) {
      e->nLiveKeys = hkvIndexLive(&e->idx);
      atomic_store_explicit(&e->iCommitted, hkvLogEnd(e), memory_order_release);
      hkvShareSeen(&e->sh, bAll ? hkvLogEnd(e) : iEnd,
                   atomic_load(&e->sh.iSeenGen));
    }
    hkvLatchUnwrite(&e->latch);
    /* A compaction in another process switched the files while this one
    ** read them (a segment it needed was gone, or the generation moved):
    ** what it read may stop short of iEnd, so rebuild from the new set. */
    int bSwitched =
        rc == HKV_SWITCHED ||
        (rc == HKV_OK && hkvShareGen(&e->sh) != atomic_load(&e->sh.iSeenGen));
    if (bSwitched && nTry < 5) {
      hkvSetErr(pzErr, HKV_OK, 0);
      continue;
    }
    if (rc == HKV_SWITCHED) rc = HKV_BUSY;
    if (rc && bAll) e->bFailed = 1;
    reapRetired(e);
    return rc;
  }
}

/* Called by every read: catches up when another process published. Costs
** two loads when nothing changed. */
static int syncViewSlow(hkv_db *db) {
  HkvEngine *e = db->e;
  int rc = HKV_OK;
  char *zErr = 0;
  pthread_mutex_lock(&e->mu);
  /* A writer of this process holds the write lock: what SHM says is its
  ** own doing, and this engine already shows it. */
  if (!e->sh.bWriteLock) rc = catchUp(e, 0, &zErr);
  pthread_mutex_unlock(&e->mu);
  return rc ? dbSet(db, rc, zErr) : HKV_OK;
}

static inline int syncView(hkv_db *db) {
  if (!hkvShareChanged(&db->e->sh)) return HKV_OK;
  return syncViewSlow(db);
}

/* Takes the store's write lock for this engine and catches up with the
** files. Caller holds e->mu. */
static int takeWriteLock(hkv_db *db) {
  HkvEngine *e = db->e;
  if (e->sh.bWriteLock || e->sh.lockFd < 0) return HKV_OK;
  char *zErr = 0;
  int rc = hkvShareLockWrite(&e->sh, &zErr);
  if (rc) return dbSet(db, rc, zErr);
  /* Marked first: what this writer publishes from here on may be read
  ** half stored (see share.c), and a crash leaves the flag set, which only
  ** makes the next writer read to the end of the files. */
  int bAllDirty = hkvShareDirty(&e->sh);
  hkvShareMarkWriting(&e->sh);
  /* A writer that died may have left bytes after its last commit: then
  ** read to the end of the files and cut them. SHM says so (bWriting);
  ** the first time after open the file size is checked too, in case SHM
  ** itself is stale (a power loss, a read-only process first). */
  int bAll = bAllDirty;
  uint64_t iEnd;
  if (!bAll && hkvShareReadEnd(&e->sh, &iEnd, 0)) {
    bAll = 1; /* SHM damaged: the files decide, and it is published anew */
  }
  if (!bAll && !e->bTailKnown) {
    uint64_t nFile = 0;
    HkvSeg *s = e->apSeg[e->iActive];
    bAll = hkvEnv->xFileSize(s->fd, &nFile) != 0 || nFile != e->iBufOff;
  }
  rc = catchUp(e, bAll, &zErr);
  if (rc == HKV_OK && bAll) shmPublish(e);
  if (rc) {
    hkvShareUnlockWrite(&e->sh, 0);
    return dbSet(db, rc, zErr);
  }
  e->bTailKnown = 1;
  return HKV_OK;
}

/* Releases the write lock once nothing unpublished is in the log. Caller
** holds e->mu. */
static void dropWriteLock(HkvEngine *e) {
  hkvShareUnlockWrite(&e->sh, !e->bFailed);
}

/* ---- engines ---- */

static void engineFree(HkvEngine *e) {
  if (!e) return;
  if (e->nBuf && !e->bFailed) hkvLogFlush(e, 0);
  hkvLogCloseAll(e);
  hkvIndexFree(&e->idx);
  hkvMapFree(&e->map);
  hkvFree(e->apSeg);
  hkvFree(e->aOrder);
  hkvFree(e->aRetired);
  hkvCompactFree(e->pCompact);
  hkvHintFree(e);
  hkvFree(e->aBuf);
  hkvFree(e->zDir);
  hkvShareClose(&e->sh);
  if (e->dirFd >= 0) hkvEnv->xClose(e->dirFd);
  pthread_mutex_destroy(&e->mu);
  hkvLatchFree(&e->latch);
  hkvFree(e);
}

static int engineOpen(hkv_db *db, const char *zDir, int dirFd, struct stat *pSt,
                      unsigned flags, uint64_t szSeg, HkvEngine **ppE) {
  char *zErr = 0;
  int rc;
  HkvEngine *e = hkvCalloc(sizeof(*e));
  if (!e) {
    hkvEnv->xClose(dirFd);
    return dbErr(db, HKV_NOMEM, 0);
  }
  pthread_mutex_init(&e->mu, 0);
  hkvLatchInit(&e->latch);
  e->dirFd = dirFd;
  hkvShareInit(&e->sh);
  e->dev = pSt->st_dev;
  e->ino = pSt->st_ino;
  e->bReadonly = (flags & HKV_OPEN_READONLY) != 0;
  e->bNoCreate = (flags & HKV_OPEN_NOCREATE) != 0;
  e->szSegment = szSeg;
  e->iNextTxn = 1;
  e->pid = getpid();
  e->iSyncWriter = db->iSync;
  /* Without membarrier (old kernels, some sandboxes) readers lock. */
  e->bFastRead = hkvEnv->xBarrier(HKV_BARRIER_REGISTER) == 0;
  hkvIndexInit(&e->idx);
  hkvMapInit(&e->map);
  e->zDir = hkvStrdup(zDir);
  e->apSeg = hkvCalloc(HKV_MAX_SEGSLOT * sizeof(HkvSeg *));
  e->aOrder = hkvCalloc(HKV_MAX_SEGSLOT * sizeof(uint32_t));
  e->aRetired = hkvCalloc(HKV_MAX_SEGSLOT * sizeof(uint32_t));
  atomic_store(&e->iEpoch, 1);
  e->xFindExact = findExactHashed;
  e->xDropExpired = dropExpired;
  if (!e->zDir || !e->apSeg || !e->aOrder || !e->aRetired) {
    rc = dbErr(db, HKV_NOMEM, 0);
    goto fail;
  }
  int bAlone;
  rc = hkvShareOpen(&e->sh, dirFd, e->zDir, e->bReadonly, &bAlone, &zErr);
  if (rc) {
    dbSet(db, rc, zErr);
    goto fail;
  }
  /* Beside other processes: read up to the end they published, cut nothing
  ** (a writer may be appending) and remove nothing (one may be compacting).
  ** A SHM never set up means no writer has it: read everything. */
  uint64_t iBound = HKV_NO_BOUND;
  if (!bAlone) {
    rc = hkvShareBound(&e->sh, &iBound, &zErr);
    if (rc) {
      dbSet(db, rc, zErr);
      goto fail;
    }
  }
  uint64_t iGen0 = hkvShareGen(&e->sh);
  rc = recoverIndex(e, iBound, bAlone ? hkvShareLastEnd(&e->sh) : 0, &zErr);
  if (rc) {
    dbSet(db, rc, zErr);
    goto fail;
  }
  hkvShareReady(&e->sh, bAlone, atomic_load(&e->iCommitted), e->iNextFile);
  if (!bAlone && iBound != HKV_NO_BOUND - 1)
    hkvShareSeen(&e->sh, iBound, iGen0);
  *ppE = e;
  return HKV_OK;
fail:
  engineFree(e);
  return rc;
}

/* Fsyncs the directory holding zPath (the working directory for a bare
** name): 0 or -errno. */
static int syncParentDir(const char *zPath) {
  size_t n = strlen(zPath);
  while (n > 1 && zPath[n - 1] == '/') n--; /* trailing slashes */
  while (n > 0 && zPath[n - 1] != '/') n--; /* then the last name */
  char *zParent = n == 0   ? hkvStrdup(".")
                  : n == 1 ? hkvStrdup("/")
                           : hkvMprintf("%.*s", (int)(n - 1), zPath);
  if (!zParent) return -ENOMEM;
  int fd = hkvEnv->xOpen(AT_FDCWD, zParent, O_RDONLY | O_DIRECTORY, 0);
  hkvFree(zParent);
  if (fd < 0) return fd;
  int r = hkvEnv->xSync(fd);
  hkvEnv->xClose(fd);
  return r;
}

int hkv_open(const char *zPath, const hkv_options *pOpts, hkv_db **ppDb) {
  hkv_options opts;
  if (!ppDb) return HKV_MISUSE;
  *ppDb = 0;
  hkv_db *db = hkvCalloc(sizeof(*db));
  if (!db) return HKV_NOMEM;
  *ppDb = db;
  if (pOpts) {
    opts = *pOpts;
  } else {
    hkv_options_init(&opts);
  }
  if (!zPath || !zPath[0]) return dbErr(db, HKV_MISUSE, "no store path");
  if (opts.sync < HKV_SYNC_OFF || opts.sync > HKV_SYNC_FULL) {
    return dbErr(db, HKV_MISUSE,
                 "sync must be 0 (off), 1 (normal) or 2 "
                 "(full), not %d",
                 opts.sync);
  }
  if (opts.segment_size == 0) opts.segment_size = HKV_DEFAULT_SEGMENT_SIZE;
  if (opts.segment_size < HKV_MIN_SEGMENT_SIZE ||
      opts.segment_size > HKV_MAX_SEGMENT_SIZE) {
    return dbErr(db, HKV_MISUSE, "segment_size must be between %u and %u bytes",
                 HKV_MIN_SEGMENT_SIZE, HKV_MAX_SEGMENT_SIZE);
  }
  if (!(opts.auto_compact >= 0.0 && opts.auto_compact < 1.0)) {
    return dbErr(db, HKV_MISUSE,
                 "auto_compact must be a dead-bytes ratio in [0, 1) (0: off)");
  }
  if (opts.flags & ~(unsigned)(HKV_OPEN_READONLY | HKV_OPEN_NOCREATE)) {
    return dbErr(db, HKV_MISUSE, "unknown open flags 0x%x", opts.flags);
  }
  db->iSync = opts.sync;
  db->zPath = hkvStrdup(zPath);
  if (!db->zPath) return dbErr(db, HKV_NOMEM, 0);
  db->bReadonly = (opts.flags & HKV_OPEN_READONLY) != 0;

  if (!(opts.flags & (HKV_OPEN_READONLY | HKV_OPEN_NOCREATE))) {
    int r = hkvEnv->xMkdir(zPath);
    if (r && r != -EEXIST) {
      return dbErr(db, HKV_CANTOPEN, "%s: cannot create directory: %s", zPath,
                   strerror(-r));
    }
    if (r == 0 && opts.sync == HKV_SYNC_FULL) {
      /* A new directory is an entry of its parent, durable once the parent
      ** is fsynced: without it a power cut can take the whole store. */
      r = syncParentDir(zPath);
      if (r) {
        return dbErr(db, hkvIoCode(-r), "%s: cannot fsync its parent: %s",
                     zPath, strerror(-r));
      }
    }
  }
  int dirFd = hkvEnv->xOpen(AT_FDCWD, zPath, O_RDONLY | O_DIRECTORY, 0);
  if (dirFd < 0) {
    return dbErr(db, HKV_CANTOPEN, "%s: cannot open store: %s", zPath,
                 strerror(-dirFd));
  }
  struct stat st;
  if (fstat(dirFd, &st) < 0) {
    int err = errno;
    hkvEnv->xClose(dirFd);
    return dbErr(db, HKV_CANTOPEN, "%s: %s", zPath, strerror(err));
  }

  int rc = HKV_OK;
  pthread_mutex_lock(&registryMu);
  HkvEngine *e = pRegistry;
  /* An engine inherited through fork() belongs to the parent: its lock and
  ** buffers are not ours, so a child opens the store as another process. */
  while (e &&
         !(e->dev == st.st_dev && e->ino == st.st_ino && e->pid == getpid())) {
    e = e->pNext;
  }
  if (e) {
    hkvEnv->xClose(dirFd);
    if (e->bReadonly && !db->bReadonly) {
      rc = dbErr(db, HKV_READONLY,
                 "%s: store is open read-only in this process", zPath);
    } else {
      e->nRef++;
      db->e = e;
    }
  } else {
    rc = engineOpen(db, zPath, dirFd, &st, opts.flags, opts.segment_size, &e);
    if (rc == HKV_OK) {
      e->nRef = 1;
      e->rAutoCompact = opts.auto_compact;
      e->nAutoMin = opts.auto_compact_min;
      e->pNext = pRegistry;
      pRegistry = e;
      db->e = e;
      if (e->nCutBytes) {
        /* Recovery cut a torn tail: say so, though the open succeeded. */
        dbErr(db, HKV_OK,
              "%s: recovery cut %llu bytes at offset %llu of "
              "the newest segment",
              zPath, (unsigned long long)e->nCutBytes,
              (unsigned long long)e->iCutOffset);
      }
    }
  }
  if (db->e) {
    pthread_mutex_lock(&db->e->mu);
    enterCall(db);
    db->pNextHandle = db->e->pHandles;
    db->e->pHandles = db;
    pthread_mutex_unlock(&db->e->mu);
  }
  pthread_mutex_unlock(&registryMu);
  return rc;
}

/* ---- the writer slot ---- */

static int acquireWriter(hkv_db *db) {
  HkvEngine *e = db->e;
  if (db->bWriter) return HKV_OK;
  if (db->bReadonly) return dbErr(db, HKV_READONLY, 0);
  int rc = HKV_OK;
  pthread_mutex_lock(&e->mu);
  if (e->bFailed) {
    rc = HKV_FAILED;
  } else if (e->pWriter) {
    rc = HKV_BUSY;
  } else {
    int rcLock = takeWriteLock(db);
    if (rcLock) {
      pthread_mutex_unlock(&e->mu);
      return rcLock;
    }
    e->pWriter = db;
    e->iSyncWriter = db->iSync;
    db->iTxn = e->iNextTxn++;
    db->bWriter = 1;
  }
  pthread_mutex_unlock(&e->mu);
  return rc ? dbErr(db, rc, 0) : HKV_OK;
}

static void releaseWriter(hkv_db *db) {
  HkvEngine *e = db->e;
  if (db->bWriter) {
    pthread_mutex_lock(&e->mu);
    e->pWriter = 0;
    dropWriteLock(e);
    reapRetired(e);
    pthread_mutex_unlock(&e->mu);
  }
  db->bWriter = 0;
  db->bTxn = 0;
  db->bAuto = 0;
  db->bPrepared = 0;
  db->bWrote = 0;
  db->nUndo = 0;
  db->nMark = 0;
  if (db->nUndoAlloc > 4096) {
    hkvFree(db->aUndo);
    db->aUndo = 0;
    db->nUndoAlloc = 0;
  }
}

/* ---- undo ---- */

/* Undoes aUndo[iTo..nUndo) in reverse. Cannot fail. Caller holds e->latch. */
static void undoTo(hkv_db *db, uint64_t iTo) {
  HkvEngine *e = db->e;
  while (db->nUndo > iTo) {
    HkvUndo *u = &db->aUndo[--db->nUndo];
    uint64_t *pSlot = findExact(e, u->locNew);
    if (pSlot) {
      if (u->locPrev) {
        hkvSlotSet(pSlot, (*pSlot & ~0xFFFFFFFFFFFFull) | u->locPrev);
      } else {
        hkvIndexRemove(&e->idx, pSlot);
      }
    }
    HkvLoc locOld = hkvMapGet(&e->map, u->locNew);
    if (locOld) {
      hkvMapDel(&e->map, u->locNew);
      if (u->locPrev && !isCommitted(e, u->locPrev)) {
        hkvMapPut(&e->map, u->locPrev, locOld); /* room: one was freed */
      }
    }
  }
}

/* ---- writes ---- */

static int checkKeySlow(hkv_db *db, const void *pKey, size_t nKey) {
  if (!db) return HKV_MISUSE;
  if (!db->e) return dbErr(db, HKV_MISUSE, "store not open");
  if (!pKey && nKey) return dbErr(db, HKV_MISUSE, "NULL key");
  if (nKey == 0) return dbErr(db, HKV_MISUSE, "empty key");
  if (nKey > HKV_MAX_KEY) {
    return dbErr(db, HKV_TOOBIG, "key is %zu bytes; the limit is %u", nKey,
                 HKV_MAX_KEY);
  }
  return HKV_OK;
}

static inline int checkKey(hkv_db *db, const void *pKey, size_t nKey) {
  if (db && db->e && pKey && nKey - 1 < HKV_MAX_KEY) return HKV_OK;
  return checkKeySlow(db, pKey, nKey);
}

#define HKV_KIND_INSERT 0x100 /* writeRecord: a PUT only if absent */
#define HKV_KIND_QUIET 0x200  /* ... a DEL of an absent key is no error */
#define HKV_KIND_REARM 0x400  /* ... a PUT of the key's own value */

/* Writes one PUT (expiring at iExpire, 0: never) or DEL of the open
** transaction. A key whose record has expired counts as absent. */
static int writeRecord(hkv_db *db, int kind, const void *pKey, uint32_t nKey,
                       const void *pVal, uint32_t nVal, int64_t iExpire) {
  int bInsert = (kind & HKV_KIND_INSERT) != 0;
  int bQuiet = (kind & HKV_KIND_QUIET) != 0;
  int bRearm = (kind & HKV_KIND_REARM) != 0;
  kind &= ~(HKV_KIND_INSERT | HKV_KIND_QUIET | HKV_KIND_REARM);
  HkvEngine *e = db->e;
  char *zErr = 0;
  int rc = acquireWriter(db);
  if (rc) return rc;
  if (e->bFailed) return dbErr(db, HKV_FAILED, 0);

  /* Everything that can fail for want of memory comes first. */
  if (db->nUndo == db->nUndoAlloc) {
    uint64_t nNew = db->nUndoAlloc ? db->nUndoAlloc * 2 : 64;
    HkvUndo *aNew = hkvRealloc(db->aUndo, nNew * sizeof(HkvUndo));
    if (!aNew) return dbErr(db, HKV_NOMEM, 0);
    db->aUndo = aNew;
    db->nUndoAlloc = nNew;
  }
  if (hkvIndexNeedsRoom(&e->idx, 1) || hkvMapNeedsRoom(&e->map, 1)) {
    hkvLatchWrite(&e->latch);
    rc = hkvIndexReserve(&e->idx, 1, hashAt, e);
    if (!rc) rc = hkvMapReserve(&e->map, 1);
    hkvLatchUnwrite(&e->latch);
    if (rc) return dbErr(db, rc, 0);
  }

  Seek k;
  memset(&k, 0, sizeof(k));
  k.e = e;
  k.bOwn = 1;
  k.pKey = pKey;
  k.nKey = nKey;
  uint64_t h = hkvKeyHash(pKey, nKey);
  uint64_t *pSlot = hkvIndexFind(&e->idx, h, seekMatch, &k);
  if (k.rc) return dbErr(db, k.rc, "corrupt record in the index's path");
  /* bPrevPut: the slot names a PUT (counted live, expired or not);
  ** bPrevLive: one the caller can still see. */
  int bPrevPut = pSlot && k.rec.kind == HKV_KIND_PUT;
  int bPrevLive =
      bPrevPut && !(k.rec.iExpire && hkvExpiredNow(k.rec.iExpire));
  if (bInsert && bPrevLive) return dbErr(db, HKV_EXISTS, 0);
  if ((kind == HKV_KIND_DEL || bRearm) && !bPrevLive) {
    return bQuiet ? HKV_OK : dbErr(db, HKV_NOTFOUND, 0);
  }
  if (bRearm) {
    /* The value is copied from the key's record. One still in the write
    ** buffer goes to the file first: appending may reuse the buffer. */
    uint64_t nAvail;
    const uint8_t *pAt = hkvLogBytes(e, k.loc, 1, &nAvail);
    if (e->aBuf && pAt >= e->aBuf && pAt < e->aBuf + e->nBufAlloc) {
      rc = hkvLogFlush(e, &zErr);
      if (!rc) rc = hkvLogRead(e, k.loc, HKV_READ_OWN, &k.rec, &zErr);
      if (rc) return dbSet(db, rc, zErr);
    }
    pVal = k.rec.pVal;
    nVal = k.rec.nVal;
  }

  HkvLoc loc;
  rc = hkvLogAppend(e, kind, db->bAuto ? HKV_FLAG_SELFCOMMIT : 0, db->iTxn,
                    pKey, nKey, pVal, nVal, iExpire, &loc, &zErr);
  if (rc) return dbSet(db, rc, zErr);
  db->bWrote = 1;
  if (iExpire) noteExpiry(e, loc, iExpire); /* kept if rolled back: harmless */

  HkvUndo *u = &db->aUndo[db->nUndo++];
  u->locNew = loc;
  u->nNew = (uint32_t)(HKV_REC_HDR + (iExpire ? HKV_REC_EXP : 0) + nKey +
                       nVal) |
            (kind == HKV_KIND_DEL ? HKV_UNDO_DEL : 0) |
            (iExpire ? HKV_UNDO_EXP : 0);
  u->locPrev = pSlot ? k.loc : 0;
  u->nPrev = pSlot ? (k.rec.nRec | (bPrevPut ? 0 : HKV_UNDO_DEL) |
                      (k.rec.iExpire ? HKV_UNDO_EXP : 0))
                   : 0;

  hkvLatchWrite(&e->latch);
  e->bDirty = 1;
  if (pSlot) {
    hkvSlotSet(pSlot, HKV_FP(h) | loc);
    if (isCommitted(e, k.loc)) {
      hkvMapPut(&e->map, loc, k.loc);
    } else {
      HkvLoc locOld = hkvMapGet(&e->map, k.loc);
      if (locOld) {
        hkvMapDel(&e->map, k.loc);
        hkvMapPut(&e->map, loc, locOld);
      }
    }
  } else {
    hkvIndexInsert(&e->idx, h, loc, hashAt, e); /* reserved: cannot fail */
  }
  hkvLatchUnwrite(&e->latch);
  if (hkvIndexHasRetired(&e->idx)) { /* a growth finished */
    pthread_mutex_lock(&e->mu);
    reapTables(e);
    pthread_mutex_unlock(&e->mu);
  }
  return HKV_OK;
}

static int prepareTxn(hkv_db *db) {
  HkvEngine *e = db->e;
  char *zErr = 0;
  int rc = HKV_OK;
  if (db->bPrepared || !db->bWriter) return HKV_OK;
  if (e->bFailed) return dbErr(db, HKV_FAILED, 0);
  if (db->bWrote && !db->bAuto) {
    HkvLoc loc;
    rc = hkvLogAppend(e, HKV_KIND_COMMIT, 0, db->iTxn, 0, 0, 0, 0, 0, &loc,
                      &zErr);
  }
  if (!rc) rc = hkvLogFlush(e, &zErr);
  if (!rc && db->bWrote && db->iSync == HKV_SYNC_FULL) {
    rc = hkvLogSync(e, &zErr);
  }
  if (rc) return dbSet(db, rc, zErr);
  db->bPrepared = 1;
  return HKV_OK;
}

/* Publishes a prepared transaction. Cannot fail. */
static void publishTxn(hkv_db *db) {
  HkvEngine *e = db->e;
  hkvLatchWrite(&e->latch);
  atomic_store_explicit(&e->iCommitted, hkvLogEnd(e), memory_order_release);
  shmPublish(e);
  for (uint64_t i = 0; i < db->nUndo; i++) {
    HkvUndo *u = &db->aUndo[i];
    if (u->nNew & HKV_UNDO_DEL) {
      uint64_t *pSlot = findExact(e, u->locNew);
      if (pSlot) hkvIndexRemove(&e->idx, pSlot);
    }
  }
  hkvMapClear(&e->map);
  e->bDirty = 0;
  hkvLatchUnwrite(&e->latch);

  pthread_mutex_lock(&e->mu);
  for (uint64_t i = 0; i < db->nUndo; i++) {
    HkvUndo *u = &db->aUndo[i];
    if (!(u->nNew & HKV_UNDO_DEL)) {
      countLive(e, u->locNew, HKV_UNDO_LEN(u->nNew),
                (u->nNew & HKV_UNDO_EXP) != 0, 1);
    }
    int bWasLive = u->locPrev && !(u->nPrev & HKV_UNDO_DEL);
    e->nLiveKeys += (u->nNew & HKV_UNDO_DEL) ? -bWasLive : !bWasLive;
    if (bWasLive) {
      countLive(e, u->locPrev, HKV_UNDO_LEN(u->nPrev),
                (u->nPrev & HKV_UNDO_EXP) != 0, -1);
    }
  }
  if (db->bWrote) e->nCommits++;
  pthread_mutex_unlock(&e->mu);
}

static int rollbackTxn(hkv_db *db) {
  HkvEngine *e = db->e;
  int rc = HKV_OK;
  if (db->bWriter) {
    hkvLatchWrite(&e->latch);
    undoTo(db, 0);
    hkvLogDiscard(e);
    hkvLatchUnwrite(&e->latch);
    if (db->bWrote && !e->bFailed) {
      /* Record the abort: it revokes a prepared commit, and tells recovery
      ** sooner that these records are void. */
      char *zErr = 0;
      HkvLoc loc;
      rc =
          hkvLogAppend(e, HKV_KIND_ABORT, 0, db->iTxn, 0, 0, 0, 0, 0, &loc,
                       &zErr);
      if (!rc) rc = hkvLogFlush(e, &zErr);
      if (!rc && db->bPrepared && db->iSync != HKV_SYNC_OFF) {
        rc = hkvLogSync(e, &zErr);
      }
      if (rc) dbSet(db, rc, zErr);
    } else if (e->nBuf) {
      hkvLogFlush(e, 0);
    }
    hkvLatchWrite(&e->latch);
    hkvMapClear(&e->map);
    e->bDirty = 0;
    atomic_store_explicit(&e->iCommitted, hkvLogEnd(e), memory_order_release);
    if (!e->bFailed) shmPublish(e);
    hkvLatchUnwrite(&e->latch);
  }
  releaseWriter(db);
  return rc;
}

/* Bytes of input one automatic compaction step reads: small enough that
** the commit it follows is not held up for long (about a millisecond). */
#define HKV_AUTO_STEP (64u << 10)

/* After a commit, while still the writer: a step of compaction if one is
** under way or due. Its errors are not the commit's (which has happened):
** an I/O error leaves the store FAILED and shows on the next write. */
static void autoCompact(hkv_db *db) {
  HkvEngine *e = db->e;
  if (e->bFailed) return;
  if (!e->pCompact) {
    if (e->rAutoCompact <= 0) return;
    uint64_t nTotal = 0, nDead = 0;
    int64_t iNow = 0; /* read once, and only if a segment has expiries */
    for (uint32_t i = 0; i + 1 < e->nSeg; i++) {
      HkvSeg *s = e->apSeg[e->aOrder[i]];
      nTotal += s->nFile;
      if (s->nFile > HKV_SEG_HDR + s->nLive) {
        nDead += s->nFile - HKV_SEG_HDR - s->nLive;
      }
      /* Past its latest expiry, a segment's expiring records are dead too
      ** (compaction drops them and their keys). */
      if (s->nExpLive && s->iMaxExpire) {
        if (!iNow) iNow = hkvNow();
        if (hkvExpired(s->iMaxExpire, iNow)) nDead += s->nExpLive;
      }
    }
    if (nTotal < e->nAutoMin ||
        (double)nDead < e->rAutoCompact * (double)nTotal) {
      return;
    }
    if (hkvCompactStart(e, 0) != HKV_OK) return;
  }
  char *zErr = 0;
  hkvCompactStep(e, HKV_AUTO_STEP, &zErr);
  hkvFree(zErr);
}

int hkv_compact(hkv_db *db) {
  if (!db || !db->e) return HKV_MISUSE;
  if (db->bReadonly) return dbErr(db, HKV_READONLY, 0);
  if (db->bWrote || db->bPrepared) {
    return dbErr(db, HKV_MISUSE,
                 "compact inside a transaction that has written");
  }
  HkvEngine *e = db->e;
  enterCall(db);
  int bWasWriter = db->bWriter;
  int rc = acquireWriter(db);
  if (rc) return rc;
  char *zErr = 0;
  if (e->bFailed) rc = HKV_FAILED;
  /* A run already under way (automatic) covers what was sealed when it
  ** began: finish it, then run again over everything. */
  for (int iRound = 0; rc == HKV_OK && iRound < 2; iRound++) {
    int bFresh = e->pCompact == 0;
    if (bFresh && e->iBufOff + e->nBuf > HKV_SEG_HDR) {
      rc = hkvLogRotate(e, 0, &zErr); /* seal the active segment */
      if (rc == HKV_OK) {
        /* Nothing uncommitted is in the log: the committed end moves into
        ** the new segment, above every input (and so every output). */
        hkvLatchWrite(&e->latch);
        atomic_store(&e->iCommitted, hkvLogEnd(e));
        shmPublish(e);
        hkvLatchUnwrite(&e->latch);
      }
    }
    if (rc == HKV_OK) rc = hkvCompactStart(e, &zErr);
    if (rc == HKV_OK && bFresh) rc = hkvCompactAll(e, &zErr);
    while (rc == HKV_OK) rc = hkvCompactStep(e, 4u << 20, &zErr);
    if (rc == HKV_DONE) rc = HKV_OK;
    if (bFresh) break;
  }
  pthread_mutex_lock(&e->mu);
  reapRetired(e);
  if (!bWasWriter) {
    e->pWriter = 0;
    dropWriteLock(e);
    db->bWriter = 0;
  }
  pthread_mutex_unlock(&e->mu);
  return rc ? dbSet(db, rc, zErr) : dbSet(db, HKV_OK, 0);
}

/* After a successful prepare: publishes, does a step of the background
** work that follows a commit, and ends the transaction. Cannot fail. */
static int commitTail(hkv_db *db) {
  if (db->bWriter) {
    publishTxn(db);
    autoCompact(db);
    hkvHintStep(db->e, HKV_AUTO_STEP);
  }
  releaseWriter(db);
  return dbSet(db, HKV_OK, 0);
}

static int endAuto(hkv_db *db, int rc) {
  if (rc == HKV_OK) rc = prepareTxn(db);
  if (rc == HKV_OK) return commitTail(db);
  char *zKeep = db->zErr;
  db->zErr = 0;
  rollbackTxn(db);
  return dbSet(db, rc, zKeep);
}

/* A put (expiring at iExpire; 0: never), insert, delete or re-arm. A put
** whose expiry is already past deletes the key instead, if it is there. */
static int putOrDelete(hkv_db *db, int kind, const void *pKey, size_t nKey,
                       const void *pVal, size_t nVal, int64_t iExpire) {
  int rc = checkKey(db, pKey, nKey);
  if (rc) return rc;
  enterCall(db);
  if ((kind & ~HKV_KIND_INSERT) == HKV_KIND_PUT) {
    if (!pVal && nVal) return dbErr(db, HKV_MISUSE, "NULL value");
    if (nVal > HKV_MAX_VALUE) {
      return dbErr(db, HKV_TOOBIG, "value is %zu bytes; the limit is %u", nVal,
                   HKV_MAX_VALUE);
    }
  }
  if (iExpire < 0) iExpire = 1; /* before 1970: as past as any */
  if (iExpire && hkvExpiredNow(iExpire)) {
    kind = HKV_KIND_DEL | HKV_KIND_QUIET | (kind & HKV_KIND_INSERT);
    iExpire = 0;
    pVal = 0;
    nVal = 0;
  }
  if (db->bReadonly) return dbErr(db, HKV_READONLY, 0);
  if (db->bPrepared) {
    return dbErr(db, HKV_MISUSE, "transaction already prepared");
  }
  if (!db->bTxn) {
    db->bTxn = 1;
    db->bAuto = 1;
    rc = writeRecord(db, kind, pKey, (uint32_t)nKey, pVal, (uint32_t)nVal,
                     iExpire);
    return endAuto(db, rc);
  }
  rc = writeRecord(db, kind, pKey, (uint32_t)nKey, pVal, (uint32_t)nVal,
                   iExpire);
  return rc ? rc : dbSet(db, HKV_OK, 0);
}

static const uint8_t aEmptyVal[1] = {0};

int hkv_put(hkv_db *db, const void *pKey, size_t nKey, const void *pVal,
            size_t nVal) {
  if (!pVal && nVal == 0) pVal = aEmptyVal;
  return putOrDelete(db, HKV_KIND_PUT, pKey, nKey, pVal, nVal, 0);
}

int hkv_insert(hkv_db *db, const void *pKey, size_t nKey, const void *pVal,
               size_t nVal) {
  if (!pVal && nVal == 0) pVal = aEmptyVal;
  return putOrDelete(db, HKV_KIND_PUT | HKV_KIND_INSERT, pKey, nKey, pVal,
                     nVal, 0);
}

int hkv_put_expiring(hkv_db *db, const void *pKey, size_t nKey,
                     const void *pVal, size_t nVal, int64_t iExpireAt) {
  if (!pVal && nVal == 0) pVal = aEmptyVal;
  return putOrDelete(db, HKV_KIND_PUT, pKey, nKey, pVal, nVal, iExpireAt);
}

int hkv_insert_expiring(hkv_db *db, const void *pKey, size_t nKey,
                        const void *pVal, size_t nVal, int64_t iExpireAt) {
  if (!pVal && nVal == 0) pVal = aEmptyVal;
  return putOrDelete(db, HKV_KIND_PUT | HKV_KIND_INSERT, pKey, nKey, pVal,
                     nVal, iExpireAt);
}

int hkv_expire(hkv_db *db, const void *pKey, size_t nKey, int64_t iExpireAt) {
  if (iExpireAt < 0) iExpireAt = 1;
  if (iExpireAt && db && db->e && hkvExpiredNow(iExpireAt)) {
    /* Past: the key goes, and NOTFOUND still says it was not there. */
    return putOrDelete(db, HKV_KIND_DEL, pKey, nKey, 0, 0, 0);
  }
  return putOrDelete(db, HKV_KIND_PUT | HKV_KIND_REARM, pKey, nKey, aEmptyVal,
                     0, iExpireAt);
}

int hkv_delete(hkv_db *db, const void *pKey, size_t nKey) {
  return putOrDelete(db, HKV_KIND_DEL, pKey, nKey, 0, 0, 0);
}

/* ---- reads ---- */

/* Compares a key with the record's copy: short keys (most) with two
** overlapping 8-byte loads, no call. */
static inline int keyEqual(const uint8_t *p, const uint8_t *q, uint32_t n) {
  if (n >= 8 && n <= 16) {
    uint64_t a0, a1, b0, b1;
    memcpy(&a0, p, 8);
    memcpy(&b0, q, 8);
    memcpy(&a1, p + n - 8, 8);
    memcpy(&b1, q + n - 8, 8);
    return ((a0 ^ b0) | (a1 ^ b1)) == 0;
  }
  return memcmp(p, q, n) == 0;
}

/*
** The reader's probe without e->latch (bFastRead): a sequence lock on the
** index (latch.iSeq, moved by hkvLatchWrite/hkvLatchUnwrite) detects a
** concurrent change and retries; tables stay allocated while the handle's bProbe is
** up (reapTables); only committed locations are followed, so the record is
** in the file and never in the writer's buffer. Anything unusual (a slot
** of the open transaction, a record that does not decode) goes to the
** locked path, which knows the answer or the error. Returns 1 and the
** record, 0 when the key is absent, -1 for the locked path.
**
** A probe ends: a table is at most 75% used and its slots only ever go from
** empty to used (removal leaves a tombstone), so an empty one is always
** ahead, whatever the writer does meanwhile.
*/
static inline __attribute__((always_inline)) int probeTable(
    HkvEngine *e, uint64_t *a, uint64_t h, const void *pKey, uint32_t nKey,
    uint64_t iCommitted, const uint8_t **ppRec, uint64_t *pnAvail,
    uint32_t *pnHdr) {
  uint64_t mask = a[HKV_TAB_MASK];
  uint64_t fp = HKV_FP(h);
  uint64_t i = h >> (__builtin_clzll(mask + 1) + 1);
  for (;; i = (i + 1) & mask) {
    uint64_t sl = __atomic_load_n(&a[i], __ATOMIC_RELAXED);
    if (sl == HKV_SLOT_EMPTY) return 0;
    if (sl == HKV_SLOT_TOMB || (sl & ~0xFFFFFFFFFFFFull) != fp) continue;
    HkvLoc loc = HKV_SLOT_LOC(sl);
    HkvSeg *sg =
        __atomic_load_n(&e->apSeg[HKV_LOC_SLOT(loc)], __ATOMIC_ACQUIRE);
    uint64_t off = HKV_LOC_OFF(loc);
    if (!sg || (((uint64_t)sg->iOrder << 32) | off) >= iCommitted) return -1;
    /* A committed record lies in the file (nFile), wherever the mapping
    ** ends: reading no further than nFile never faults. */
    uint64_t nEnd = atomic_load_explicit(&sg->nFile, memory_order_relaxed);
    if (nEnd > sg->nMap || off + HKV_REC_HDR + nKey > nEnd) return -1;
    const uint8_t *p = sg->pMap + off;
    /* The key follows the header, and the expiry if the record has one.
    ** The bound for a record without expiry is checked before its bytes
    ** arrive: making it wait on p[5] cost 8-10% of a random get here. */
    uint32_t nHdr = HKV_REC_HDR;
    if (p[5] & HKV_FLAG_EXPIRES) {
      nHdr += HKV_REC_EXP;
      if (off + nHdr + nKey > nEnd) return -1;
    }
    if (hkvGet16(p + 6) == nKey && keyEqual(p + nHdr, pKey, nKey)) {
      *ppRec = p;
      *pnAvail = nEnd - off;
      *pnHdr = nHdr;
      return 1;
    }
    /* The fingerprint matched and the key did not: a collision (1 in
    ** 65,536) or a damaged key. The locked path tells them apart. */
    return -1;
  }
}

static int probeFast(hkv_db *db, const void *pKey, uint32_t nKey, uint64_t h,
                     const uint8_t **ppRec, uint64_t *pnAvail,
                     uint32_t *pnHdr) {
  HkvEngine *e = db->e;
  for (int nTry = 0; nTry < 3; nTry++) {
    uint64_t v = atomic_load_explicit(&e->latch.iSeq, memory_order_acquire);
    if (v & 1) {
      hkvLatchPause();
      continue;
    }
    atomic_store_explicit(&db->bProbe, 1, memory_order_relaxed);
    atomic_signal_fence(memory_order_seq_cst);
    uint64_t iCommitted =
        atomic_load_explicit(&e->iCommitted, memory_order_acquire);
    uint64_t *aFirst = __atomic_load_n(&e->idx.cur.a, __ATOMIC_ACQUIRE);
    uint64_t *aThen = __atomic_load_n(&e->idx.old.a, __ATOMIC_ACQUIRE);
    if (aThen) {
      /* A key lives in one table or the other (index.c): look first where
      ** it most likely is, in old when its home there is not migrated. */
      uint64_t iHome = h >> (__builtin_clzll(aThen[HKV_TAB_MASK] + 1) + 1);
      if (iHome >= __atomic_load_n(&e->idx.iMigrate, __ATOMIC_RELAXED)) {
        uint64_t *aSwap = aFirst;
        aFirst = aThen;
        aThen = aSwap;
      }
    }
    int r = 0;
    if (aFirst) {
      r = probeTable(e, aFirst, h, pKey, nKey, iCommitted, ppRec, pnAvail,
                     pnHdr);
    }
    if (r == 0 && aThen) {
      r = probeTable(e, aThen, h, pKey, nKey, iCommitted, ppRec, pnAvail,
                     pnHdr);
    }
    atomic_thread_fence(memory_order_acquire);
    int bSame = atomic_load_explicit(&e->latch.iSeq, memory_order_relaxed) == v;
    atomic_store_explicit(&db->bProbe, 0, memory_order_release);
    if (bSame) return r;
  }
  return -1;
}

/* hkv_get's path under e->latch (or for the writer, which needs none);
** *piExpire gets the record's expiry. */
static int getLocked(hkv_db *db, const void *pKey, size_t nKey, uint64_t h,
                     const void **ppVal, size_t *pnVal, int64_t *piExpire) {
  HkvEngine *e = db->e;
  Seek k;
  memset(&k, 0, sizeof(k));
  k.e = e;
  k.pKey = pKey;
  k.nKey = (uint32_t)nKey;
  uint64_t *pSlot;
  if (db->bWriter) {
    k.bOwn = 1;
    pSlot = hkvIndexFind(&e->idx, h, seekMatch, &k);
  } else {
    hkvLatchRead(&e->latch);
    k.bReader = e->bDirty;
    k.iCommitted = atomic_load_explicit(&e->iCommitted, memory_order_acquire);
    pSlot = hkvIndexFind(&e->idx, h, seekMatch, &k);
    hkvLatchUnread(&e->latch);
  }
  if (!pSlot) return dbSet(db, HKV_NOTFOUND, 0);
  HkvRec rec;
  char *zErr = 0;
  /* After a probe that met a bad record (k.rc) this read fails again, with
  ** the message that names the file and offset. */
  int rc =
      hkvLogRead(e, k.loc, HKV_READ_VERIFY | (db->bWriter ? HKV_READ_OWN : 0),
                 &rec, &zErr);
  if (k.rc && !rc) rc = k.rc;
  if (rc) {
    if (!zErr)
      zErr = hkvMprintf("corrupt record in segment slot %u offset %u",
                        HKV_LOC_SLOT(k.loc), HKV_LOC_OFF(k.loc));
    return dbSet(db, HKV_CORRUPT, zErr);
  }
  if (rec.kind != HKV_KIND_PUT ||
      (rec.iExpire && hkvExpiredNow(rec.iExpire))) {
    return dbSet(db, HKV_NOTFOUND, 0);
  }
  *ppVal = rec.pVal;
  *pnVal = rec.nVal;
  *piExpire = rec.iExpire;
  return dbSet(db, HKV_OK, 0);
}

int hkv_get(hkv_db *db, const void *pKey, size_t nKey, const void **ppVal,
            size_t *pnVal) {
  HkvEngine *e;
  /* The common case first, in one test: a reader handle with lock-free
  ** probes, a valid key, output pointers. */
  if (db && (e = db->e) != 0 && pKey && nKey - 1 < HKV_MAX_KEY && ppVal &&
      pnVal && !db->bWriter && e->bFastRead) {
    enterCall(db);
    int rc = syncView(db);
    if (rc) {
      *ppVal = 0;
      *pnVal = 0;
      return rc;
    }
    uint64_t h = hkvKeyHash(pKey, nKey);
    const uint8_t *p = 0;
    uint64_t nAvail = 0;
    uint32_t nHdr = 0;
    int r = probeFast(db, pKey, (uint32_t)nKey, h, &p, &nAvail, &nHdr);
    if (r == 1) {
      /* A well-formed PUT whose checksum holds; anything else (a record
      ** that does not decode, a bad CRC) is for the locked path to report.
      ** The fields are those hkvDecodeRecord reads (log.c). */
      uint32_t nV = hkvGet32(p + 8);
      uint64_t nRec = (uint64_t)nHdr + nKey + nV;
      if (p[4] == HKV_KIND_PUT && !(p[5] & ~HKV_FLAG_KNOWN) &&
          nV <= HKV_MAX_VALUE && nRec <= nAvail &&
          hkvGet32(p) == hkvCrc32cInline(p + 4, (size_t)nRec - 4)) {
        /* An expiring key is gone once the clock reaches its time; a bad
        ** expiry (0 or below) is for the locked path to report. */
        int64_t iExp =
            nHdr == HKV_REC_HDR ? 0 : (int64_t)hkvGet64(p + HKV_REC_HDR);
        if (iExp == 0 || (iExp > 0 && !hkvExpiredNow(iExp))) {
          *ppVal = p + nHdr + nKey;
          *pnVal = nV;
          return dbSet(db, HKV_OK, 0);
        }
        if (iExp > 0) r = 0;
      }
    }
    *ppVal = 0;
    *pnVal = 0;
    if (r == 0) return dbSet(db, HKV_NOTFOUND, 0);
    int64_t iExp;
    return getLocked(db, pKey, nKey, h, ppVal, pnVal, &iExp);
  }
  int rc = checkKey(db, pKey, nKey);
  if (rc) return rc;
  if (!ppVal || !pnVal) return dbErr(db, HKV_MISUSE, "NULL output pointer");
  *ppVal = 0;
  *pnVal = 0;
  enterCall(db);
  if (!db->bWriter && (rc = syncView(db)) != HKV_OK) return rc;
  int64_t iExp;
  return getLocked(db, pKey, nKey, hkvKeyHash(pKey, nKey), ppVal, pnVal,
                   &iExp);
}

int hkv_get_expiry(hkv_db *db, const void *pKey, size_t nKey,
                   int64_t *piExpireAt) {
  int rc = checkKey(db, pKey, nKey);
  if (rc) return rc;
  if (!piExpireAt) return dbErr(db, HKV_MISUSE, "NULL output pointer");
  *piExpireAt = 0;
  enterCall(db);
  if (!db->bWriter && (rc = syncView(db)) != HKV_OK) return rc;
  const void *pVal;
  size_t nVal;
  return getLocked(db, pKey, nKey, hkvKeyHash(pKey, nKey), &pVal, &nVal,
                   piExpireAt);
}

/* ---- transactions ---- */

int hkv_begin(hkv_db *db) {
  API_ENTER(db);
  if (db->bTxn) return dbErr(db, HKV_MISUSE, "a transaction is open");
  db->bTxn = 1;
  return dbSet(db, HKV_OK, 0);
}

int hkv_in_transaction(hkv_db *db) { return db && db->bTxn; }

int hkv_txn_dirty(hkv_db *db) { return db && db->bTxn && db->nUndo > 0; }

int hkv_write_lock(hkv_db *db) {
  API_ENTER(db);
  if (!db->bTxn) return dbErr(db, HKV_MISUSE, "no transaction is open");
  int rc = acquireWriter(db);
  return rc ? rc : dbSet(db, HKV_OK, 0);
}

int hkv_prepare(hkv_db *db) {
  API_ENTER(db);
  if (!db->bTxn) return dbErr(db, HKV_MISUSE, "no transaction is open");
  int rc = prepareTxn(db);
  return rc ? rc : dbSet(db, HKV_OK, 0);
}

int hkv_commit(hkv_db *db) {
  API_ENTER(db);
  if (!db->bTxn) return dbErr(db, HKV_MISUSE, "no transaction is open");
  int rc = prepareTxn(db);
  return rc ? rc : commitTail(db);
}

int hkv_rollback(hkv_db *db) {
  API_ENTER(db);
  if (!db->bTxn) return dbErr(db, HKV_MISUSE, "no transaction is open");
  int rc = rollbackTxn(db);
  return rc ? rc : dbSet(db, HKV_OK, 0);
}

int hkv_savepoint(hkv_db *db, int iLevel) {
  API_ENTER(db);
  if (!db->bTxn || iLevel < 0) {
    return dbErr(db, HKV_MISUSE, "savepoint outside a transaction");
  }
  if (iLevel >= db->nMarkAlloc) {
    int nNew = iLevel + 8;
    HkvMark *aNew = hkvRealloc(db->aMark, (size_t)nNew * sizeof(HkvMark));
    if (!aNew) return dbErr(db, HKV_NOMEM, 0);
    db->aMark = aNew;
    db->nMarkAlloc = nNew;
  }
  HkvMark m = {db->nUndo, db->bWriter ? hkvLogEnd(db->e) : 0};
  /* Levels below iLevel that this handle never saw were opened before its
  ** transaction (SQLite's savepoints before a table joined it): they start
  ** where the transaction does, as level -1 does in hkv_rollback_to. */
  HkvMark mStart = {0, 0};
  for (int i = db->nMark; i < iLevel; i++) db->aMark[i] = mStart;
  db->aMark[iLevel] = m;
  db->nMark = iLevel + 1;
  return dbSet(db, HKV_OK, 0);
}

int hkv_rollback_to(hkv_db *db, int iLevel) {
  API_ENTER(db);
  if (!db->bTxn || iLevel < -1 || iLevel >= db->nMark) {
    return dbErr(db, HKV_MISUSE, "no savepoint %d", iLevel);
  }
  if (db->bPrepared) {
    return dbErr(db, HKV_MISUSE, "transaction already prepared");
  }
  /* Level -1 is the start of the transaction (SQLite's ROLLBACK TO of the
  ** savepoint that opened it). */
  HkvMark mStart = {0, 0};
  HkvMark *m = iLevel < 0 ? &mStart : &db->aMark[iLevel];
  HkvEngine *e = db->e;
  if (db->nUndo > m->iUndo) {
    /* Tell recovery first; if that fails the caller rolls back anyway. */
    uint8_t aPos[8];
    HkvLoc loc;
    char *zErr = 0;
    hkvPut64(aPos, m->iOrder);
    int rc = hkvLogAppend(e, HKV_KIND_ROLLBACK_TO, 0, db->iTxn, 0, 0, aPos, 8,
                          0, &loc, &zErr);
    if (rc) return dbSet(db, rc, zErr);
    hkvLatchWrite(&e->latch);
    undoTo(db, m->iUndo);
    hkvLatchUnwrite(&e->latch);
  }
  db->nMark = iLevel + 1;
  return dbSet(db, HKV_OK, 0);
}

int hkv_savepoint_levels(hkv_db *db) {
  return db && db->e && db->bTxn ? db->nMark : 0;
}

int hkv_release(hkv_db *db, int iLevel) {
  API_ENTER(db);
  if (!db->bTxn || iLevel < 0) {
    return dbErr(db, HKV_MISUSE, "no savepoint %d", iLevel);
  }
  if (iLevel < db->nMark) db->nMark = iLevel;
  return dbSet(db, HKV_OK, 0);
}

/* ---- iteration ---- */

/* Marks a collected loc that may name a DEL record (the writer's own,
** uncommitted): every other loc of a snapshot names a PUT, as a commit
** drops the slots of its DEL records. Above the 48 bits of a loc; it sorts
** those locs last, where the log has them anyway. */
#define HKV_ITER_MAYDEL (1ull << 62)

/* Turns the n locs the index holds (a[]) into the snapshot of a handle
** while a transaction is open: a reader sees the committed loc a slot of
** the transaction replaced (or nothing, for a key the transaction added);
** the writer's own slots are marked HKV_ITER_MAYDEL. Returns the new count.
** Caller holds the latch (reader) or is the writer. */
static uint64_t snapshotFix(HkvEngine *e, int bWriter, uint64_t iCommitted,
                            HkvLoc *a, uint64_t n) {
  uint64_t j = 0;
  for (uint64_t i = 0; i < n; i++) {
    HkvLoc loc = a[i];
    if (hkvLogOrder(e, loc) >= iCommitted) {
      if (bWriter) {
        loc |= HKV_ITER_MAYDEL;
      } else if ((loc = hkvMapGet(&e->map, loc)) == 0) {
        continue;
      }
    }
    a[j++] = loc;
  }
  return j;
}

/*
** Sorts a[0..n) ascending, using aTmp (n entries) as scratch: an LSD radix
** sort on 13-bit digits placed over the bits in which the locs differ, each
** pass a count and a stable scatter. A loc is slot << 32 | offset, and
** offsets of up to 2^26 bytes with a few segment slots take three passes
** (digits at bits 0, 13 and 32: the zero bits between are skipped). The
** order is each segment's records in file order: a scan then reads the
** log's pages sequentially instead of at random (SELECT sum(length(value))
** over 1,000,000 rows: about 300 ms in hash order, 100 ms in this one).
** Returns the sorted array (a or aTmp). aCount: 2^13 counters of scratch.
*/
#define HKV_SORT_BITS 13
static HkvLoc *sortLocs(HkvLoc *a, HkvLoc *aTmp, uint64_t n,
                        uint64_t *aCount) {
  if (n < 2) return a;
  HkvLoc diff = 0;
  for (uint64_t i = 1; i < n; i++) diff |= a[i] ^ a[0];
  const HkvLoc mask = (1u << HKV_SORT_BITS) - 1;
  while (diff) {
    int iShift = __builtin_ctzll(diff);
    diff &= ~(mask << iShift);
    memset(aCount, 0, sizeof(uint64_t) << HKV_SORT_BITS);
    for (uint64_t i = 0; i < n; i++) aCount[(a[i] >> iShift) & mask]++;
    uint64_t iSum = 0;
    for (uint32_t d = 0; d <= mask; d++) {
      uint64_t c = aCount[d];
      aCount[d] = iSum;
      iSum += c;
    }
    for (uint64_t i = 0; i < n; i++) {
      aTmp[aCount[(a[i] >> iShift) & mask]++] = a[i];
    }
    HkvLoc *t = a;
    a = aTmp;
    aTmp = t;
  }
  return a;
}

int hkv_iter_open(hkv_db *db, hkv_iter **ppIter) {
  if (!ppIter) return HKV_MISUSE;
  *ppIter = 0;
  if (!db || !db->e) return HKV_MISUSE;
  HkvEngine *e = db->e;
  enterCall(db);
  if (!db->bWriter) {
    int rcSync = syncView(db);
    if (rcSync) return rcSync;
  }
  hkv_iter *it = hkvCalloc(sizeof(*it));
  if (!it) return dbErr(db, HKV_NOMEM, 0);
  HkvLoc *a = 0;
  uint64_t n = 0;
  if (!db->bWriter) hkvLatchRead(&e->latch);
  /* The number of live slots cannot grow while the latch is held. */
  uint64_t nMax = hkvIndexLive(&e->idx);
  a = hkvMalloc((size_t)(nMax ? nMax : 1) * sizeof(HkvLoc));
  int rc = HKV_OK;
  if (a) {
    n = hkvIndexCollect(&e->idx, a, nMax);
    if (n > nMax) {
      n = 0;
      rc = HKV_CORRUPT; /* the index's count and its slots disagree */
    } else if (db->bWriter || e->bDirty) {
      uint64_t iCommitted =
          atomic_load_explicit(&e->iCommitted, memory_order_acquire);
      n = snapshotFix(e, db->bWriter, iCommitted, a, n);
    }
  }
  if (!db->bWriter) hkvLatchUnread(&e->latch);
  HkvLoc *aTmp = 0;
  uint64_t *aCount = 0;
  if (a && n > 1) {
    aTmp = hkvMalloc((size_t)n * sizeof(HkvLoc));
    aCount = hkvMalloc(sizeof(uint64_t) << HKV_SORT_BITS);
  }
  if (!rc && (!a || (n > 1 && (!aTmp || !aCount)))) rc = HKV_NOMEM;
  if (rc) {
    hkvFree(a);
    hkvFree(aTmp);
    hkvFree(aCount);
    hkvFree(it);
    return rc == HKV_CORRUPT
               ? dbErr(db, rc, "index: more live slots than it counts")
               : dbErr(db, rc, 0);
  }
  it->db = db;
  it->aLoc = sortLocs(a, aTmp, n, aCount);
  hkvFree(it->aLoc == a ? aTmp : a);
  hkvFree(aCount);
  it->nLoc = n;
  pthread_mutex_lock(&e->mu);
  it->iEpoch = atomic_load(&e->iEpoch);
  it->bMayExpire = e->bEverExpiring;
  it->pNextIter = e->pIters;
  e->pIters = it;
  pthread_mutex_unlock(&e->mu);
  *ppIter = it;
  return dbSet(db, HKV_OK, 0);
}

/* Moves it to its next PUT record, read with flags (HKV_READ_*): OK with
** *pRec, DONE, or CORRUPT. A slot of the writer's own transaction may name
** its DEL record: skipped. */
static int iterMove(hkv_iter *it, int flags, HkvRec *pRec) {
  hkv_db *db = it->db;
  if (db->bWriter) flags |= HKV_READ_OWN;
  while (it->iNext < it->nLoc) {
    char *zErr = 0;
    HkvLoc loc = it->aLoc[it->iNext++] & ~HKV_ITER_MAYDEL;
    int rc = hkvLogRead(db->e, loc, flags, pRec, &zErr);
    if (rc) {
      it->locCur = 0;
      return dbSet(db, rc, zErr);
    }
    if (pRec->kind != HKV_KIND_PUT) continue;
    if (pRec->iExpire && hkvExpiredNow(pRec->iExpire)) continue;
    it->locCur = loc;
    it->iExpire = pRec->iExpire;
    return HKV_OK;
  }
  it->locCur = 0;
  return HKV_DONE;
}

int hkv_iter_next(hkv_iter *it, const void **ppKey, size_t *pnKey,
                  const void **ppVal, size_t *pnVal) {
  if (!it || !ppKey || !pnKey || !ppVal || !pnVal) return HKV_MISUSE;
  HkvRec rec;
  int rc = iterMove(it, HKV_READ_VERIFY, &rec);
  if (rc) return rc;
  *ppKey = rec.pKey;
  *pnKey = rec.nKey;
  *ppVal = rec.pVal;
  *pnVal = rec.nVal;
  return HKV_OK;
}

int hkv_iter_next_key(hkv_iter *it, const void **ppKey, size_t *pnKey) {
  if (!it || !ppKey || !pnKey) return HKV_MISUSE;
  HkvRec rec;
  int rc = iterMove(it, 0, &rec);
  if (rc) return rc;
  *ppKey = rec.pKey;
  *pnKey = rec.nKey;
  return HKV_OK;
}

int hkv_iter_skip(hkv_iter *it) {
  if (!it) return HKV_MISUSE;
  /* A PUT without an expiry: nothing to read. Once the engine has held an
  ** expiring key, any entry may have expired, and its header says. */
  if (it->iNext < it->nLoc && !it->bMayExpire &&
      !(it->aLoc[it->iNext] & HKV_ITER_MAYDEL)) {
    it->locCur = it->aLoc[it->iNext++];
    it->iExpire = 0;
    return HKV_OK;
  }
  HkvRec rec;
  return iterMove(it, 0, &rec);
}

/* Reads the record again rather than keeping pointers from the move: a
** write on db in between may have flushed the writer's buffer they
** pointed into. The loc names the same bytes for the engine's life. */
int hkv_iter_current(hkv_iter *it, const void **ppKey, size_t *pnKey,
                     const void **ppVal, size_t *pnVal) {
  if (!it || !ppKey || !pnKey || !ppVal || !pnVal) return HKV_MISUSE;
  hkv_db *db = it->db;
  if (!it->locCur) return dbErr(db, HKV_MISUSE, "the iterator is on no entry");
  HkvRec rec;
  char *zErr = 0;
  int rc = hkvLogRead(db->e, it->locCur,
                      HKV_READ_VERIFY | (db->bWriter ? HKV_READ_OWN : 0), &rec,
                      &zErr);
  if (rc) return dbSet(db, rc, zErr);
  *ppKey = rec.pKey;
  *pnKey = rec.nKey;
  *ppVal = rec.pVal;
  *pnVal = rec.nVal;
  return HKV_OK;
}

int hkv_iter_expiry(hkv_iter *it, int64_t *piExpireAt) {
  if (!it || !piExpireAt || !it->locCur) return HKV_MISUSE;
  *piExpireAt = it->iExpire;
  return HKV_OK;
}

int hkv_iter_close(hkv_iter *it) {
  if (it) {
    HkvEngine *e = it->db->e;
    pthread_mutex_lock(&e->mu);
    hkv_iter **pp = &e->pIters;
    while (*pp && *pp != it) pp = &(*pp)->pNextIter;
    if (*pp) *pp = it->pNextIter;
    reapRetired(e);
    pthread_mutex_unlock(&e->mu);
    hkvFree(it->aLoc);
    hkvFree(it);
  }
  return HKV_OK;
}

/* ---- what a backup borrows (backup.c) ---- */

HkvEngine *hkvEngineOf(hkv_db *db) { return db ? db->e : 0; }

int hkvEngineSetErr(hkv_db *db, int rc, char *zMsg) {
  return dbSet(db, rc, zMsg);
}

/*
** The committed log as one commit left it. The segment list is read under
** e->mu, which compaction's switch and catch-up hold; the writer appends
** to the list without it, and publishes the count with release (log.c), so
** every segment up to the committed end loaded here (acquire) is in the
** count read after it. Bytes before the committed end are never written
** again while the engine is open, and the pin keeps every listed segment
** mapped after a compaction (of any process) removes its file.
*/
int hkvEngineSnapshot(hkv_db *db, HkvSnapshot *p) {
  if (!p) return HKV_MISUSE;
  memset(p, 0, sizeof(*p));
  API_ENTER(db);
  HkvEngine *e = db->e;
  if (!db->bWriter) {
    int rcSync = syncView(db);
    if (rcSync) return rcSync;
  }
  hkv_iter *pPin = hkvCalloc(sizeof(*pPin));
  if (!pPin) return dbErr(db, HKV_NOMEM, 0);
  pthread_mutex_lock(&e->mu);
  uint64_t iEnd = atomic_load_explicit(&e->iCommitted, memory_order_acquire);
  uint32_t nSeg = __atomic_load_n(&e->nSeg, __ATOMIC_ACQUIRE);
  uint32_t iSeq = (uint32_t)(iEnd >> 32);
  HkvSnapSeg *a = hkvMalloc((nSeg ? nSeg : 1) * sizeof(HkvSnapSeg));
  uint32_t n = 0;
  for (uint32_t k = 0; a && k < nSeg; k++) {
    const HkvSeg *s = e->apSeg[e->aOrder[k]];
    if (!s->bHkc && s->iOrder > iSeq) break; /* begun after the commit */
    a[n].pSeg = s;
    a[n].bWhole = s->bHkc || s->iOrder < iSeq;
    a[n].nCopy = a[n].bWhole ? atomic_load(&s->nFile) : (uint32_t)iEnd;
    n++;
  }
  if (a) {
    pPin->db = db;
    pPin->iEpoch = atomic_load(&e->iEpoch);
    pPin->pNextIter = e->pIters;
    e->pIters = pPin;
  }
  pthread_mutex_unlock(&e->mu);
  if (!a) {
    hkvFree(pPin);
    return dbErr(db, HKV_NOMEM, 0);
  }
  if (n == 0 || a[n - 1].bWhole) {
    p->pPin = pPin;
    p->aSeg = a;
    hkvEngineSnapshotEnd(p);
    return dbErr(db, HKV_CORRUPT, "%s: no segment holds the committed end",
                 e->zDir);
  }
  p->aSeg = a;
  p->nSeg = n;
  p->iEnd = iEnd;
  p->pPin = pPin;
  return HKV_OK;
}

void hkvEngineSnapshotEnd(HkvSnapshot *p) {
  if (p->pPin) hkv_iter_close(p->pPin);
  hkvFree(p->aSeg);
  memset(p, 0, sizeof(*p));
}

/* ---- maintenance ---- */

int hkv_stats_get(hkv_db *db, hkv_stats *p) {
  if (!db || !db->e || !p) return HKV_MISUSE;
  enterCall(db);
  HkvEngine *e = db->e;
  memset(p, 0, sizeof(*p));
  if (!db->bWriter) {
    int rcSync = syncView(db);
    if (rcSync) return rcSync;
  }
  hkvLatchRead(&e->latch);
  p->index_bytes = hkvIndexBytes(&e->idx);
  hkvLatchUnread(&e->latch);
  pthread_mutex_lock(&e->mu);
  uint64_t nHdr = 0;
  for (uint32_t i = 0; i < e->nSeg; i++) {
    HkvSeg *s = e->apSeg[e->aOrder[i]];
    p->total_bytes += s->nFile;
    nHdr += HKV_SEG_HDR;
  }
  p->segments = e->nSeg;
  p->live_bytes = e->nLiveBytes;
  p->dead_bytes = p->total_bytes - nHdr - e->nLiveBytes;
  p->recovered_cut_bytes = e->nCutBytes;
  p->recovered_cut_offset = e->iCutOffset;
  reapRetired(e);
  p->commits = e->nCommits;
  p->live_keys = e->nLiveKeys;
  p->compactions = e->nCompactions;
  p->reclaimed_bytes = e->nReclaimed;
  p->retired_segments = e->nRetired;
  p->expiring_keys = e->nExpiring;
  p->expired_keys = e->nExpired;
  pthread_mutex_unlock(&e->mu);
  return dbSet(db, HKV_OK, 0);
}

int hkv_integrity_check(hkv_db *db) {
  API_ENTER(db);
  HkvEngine *e = db->e;
  int rc = HKV_OK;
  uint64_t iCommitted = atomic_load(&e->iCommitted);
  uint64_t nRecords = 0;
  pthread_mutex_lock(&e->mu);
  for (uint32_t i = 0; i < e->nSeg && rc == HKV_OK; i++) {
    uint32_t iSlot = e->aOrder[i];
    HkvSeg *s = e->apSeg[iSlot];
    uint64_t nEnd = s->nFile;
    if (!s->bHkc && (iCommitted >> 32) == s->iOrder) {
      nEnd = (uint32_t)iCommitted;
    }
    uint64_t iOff = HKV_SEG_HDR;
    while (iOff < nEnd) {
      HkvRec rec;
      char *zErr = 0;
      rc = hkvLogRead(e, HKV_LOC(iSlot, iOff), HKV_READ_VERIFY, &rec, &zErr);
      if (rc) {
        dbSet(db, rc, zErr);
        break;
      }
      nRecords++;
      iOff += rec.nRec;
    }
  }
  pthread_mutex_unlock(&e->mu);
  if (rc) return rc;
  /* Every index entry must name a live record whose key hashes to it. */
  hkv_iter *it = 0;
  rc = hkv_iter_open(db, &it);
  if (rc) return rc;
  /* The iterator holds a snapshot; each get sees the newest commit. A key
  ** that another handle or process rewrote, deleted or compacted since
  ** leads elsewhere, which is no damage: a mismatch counts only while the
  ** store is as the snapshot saw it. */
  uint64_t iSnapEnd = atomic_load(&e->iCommitted);
  uint64_t iSnapEpoch = atomic_load(&e->iEpoch);
  const void *pK, *pV;
  size_t nK, nV;
  while ((rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) {
    const void *pV2;
    size_t nV2;
    int rc2 = hkv_get(db, pK, nK, &pV2, &nV2);
    /* A key may expire between the two reads. */
    if (rc2 == HKV_NOTFOUND && it->iExpire &&
        hkvExpiredNow(it->iExpire)) {
      continue;
    }
    if ((rc2 == HKV_OK || rc2 == HKV_NOTFOUND) && pV2 != pV &&
        (atomic_load(&e->iCommitted) != iSnapEnd ||
         atomic_load(&e->iEpoch) != iSnapEpoch)) {
      continue;
    }
    if (rc2 != HKV_OK || pV2 != pV) {
      rc = HKV_CORRUPT;
      dbErr(db, rc, "index entry does not lead back to its record");
      break;
    }
  }
  hkv_iter_close(it);
  if (rc == HKV_DONE) rc = HKV_OK;
  return rc ? rc : dbSet(db, HKV_OK, 0);
}

int hkv_clear(hkv_db *db) {
  API_ENTER(db);
  int bOwn = !db->bTxn;
  int rc = HKV_OK;
  if (bOwn) rc = hkv_begin(db);
  hkv_iter *it = 0;
  if (!rc) rc = hkv_iter_open(db, &it);
  const void *pK, *pV;
  size_t nK, nV;
  while (!rc && (rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) {
    rc = hkv_delete(db, pK, nK);
  }
  if (rc == HKV_DONE) rc = HKV_OK;
  char *zKeep = db->zErr;
  db->zErr = 0;
  hkv_iter_close(it);
  if (bOwn) {
    if (rc == HKV_OK) {
      rc = hkv_commit(db);
      hkvFree(zKeep);
      zKeep = db->zErr ? hkvStrdup(db->zErr) : 0;
    }
    if (rc) hkv_rollback(db);
  }
  return dbSet(db, rc, zKeep);
}

/* HKV_BUSY unless db is its store's only handle in any process; with
** bTake the other processes stay out (the presence byte is kept). */
static int soleHandle(hkv_db *db, int bTake) {
  HkvEngine *e = db->e;
  pthread_mutex_lock(&registryMu);
  int nRef = e->nRef;
  pthread_mutex_unlock(&registryMu);
  if (nRef > 1) {
    return dbErr(db, HKV_BUSY, "store is open in other handles");
  }
  if (hkvShareAlone(&e->sh, bTake)) {
    return dbErr(db, HKV_BUSY, "store is open in another process");
  }
  return HKV_OK;
}

int hkv_writable(const char *zPath) {
  if (!zPath) return HKV_OK;
  struct statvfs sv;
  if (statvfs(zPath, &sv) == 0 && (sv.f_flag & ST_RDONLY)) return HKV_READONLY;
  int r = access(zPath, W_OK);
  if (r == 0) {
    char zLock[PATH_MAX];
    int n = snprintf(zLock, sizeof(zLock), "%s/" HKV_LOCK_FILE, zPath);
    r = n > 0 && (size_t)n < sizeof(zLock) ? access(zLock, W_OK) : 0;
  }
  if (r != 0 && errno == EROFS) return HKV_READONLY;
  if (r != 0 && errno == EACCES) return HKV_CANTOPEN;
  return HKV_OK;
}

int hkv_sole_handle(hkv_db *db) {
  if (!db || !db->e) return HKV_MISUSE;
  int rc = soleHandle(db, 0);
  return rc ? rc : dbSet(db, HKV_OK, 0);
}

int hkv_destroy(hkv_db *db) {
  if (!db || !db->e) return HKV_MISUSE;
  HkvEngine *e = db->e;
  if (db->bReadonly) return dbErr(db, HKV_READONLY, 0);
  int rcSole = soleHandle(db, 1);
  if (rcSole) return rcSole;
  if (db->bTxn) rollbackTxn(db);
  char *zErr = 0;
  int rc = hkvLogRemoveAll(e, &zErr);
  hkvFree(zErr);
  if (rc == HKV_OK) {
    hkvEnv->xUnlink(e->dirFd, HKV_SHM_FILE);
    hkvEnv->xUnlink(e->dirFd, HKV_LOCK_FILE);
  }
  if (rc == HKV_OK) hkvEnv->xSync(e->dirFd);
  char *zDir = db->zPath;
  db->zPath = 0;
  hkv_close(db);
  if (zDir)
    hkvEnv->xRmdir(zDir); /* fails, harmlessly, if the user put files there */
  hkvFree(zDir);
  return rc;
}

int hkv_close(hkv_db *db) {
  if (!db) return HKV_OK;
  HkvEngine *e = db->e;
  if (e) {
    if (db->bTxn) rollbackTxn(db);
    pthread_mutex_lock(&e->mu);
    hkv_db **ppH = &e->pHandles;
    while (*ppH && *ppH != db) ppH = &(*ppH)->pNextHandle;
    if (*ppH) *ppH = db->pNextHandle;
    reapRetired(e);
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&registryMu);
    if (--e->nRef == 0) {
      HkvEngine **pp = &pRegistry;
      while (*pp != e) pp = &(*pp)->pNext;
      *pp = e->pNext;
      engineFree(e);
    }
    pthread_mutex_unlock(&registryMu);
  }
  hkvFree(db->aUndo);
  hkvFree(db->aMark);
  hkvFree(db->zErr);
  hkvFree(db->zPath);
  hkvFree(db);
  return HKV_OK;
}
