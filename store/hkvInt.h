/*
** hkvInt.h: declarations shared by the files of store/. Not installed; only
** the engine and its unit tests include it.
**
** Concepts
**   HkvLoc     where a record starts: segment slot (16 bits) << 32 | offset.
**              Offsets are >= HKV_SEG_HDR, so 0 never names a record.
**   HkvSeg     one segment file, mapped read-only at a fixed size for its
**              whole life, so readers never see the mapping move.
**   HkvIndex   open-addressing table of 8-byte slots: 16-bit hash
**              fingerprint << 48 | 48-bit HkvLoc. Keys are not stored; they
**              are compared against the record.
**   HkvLocMap  loc -> loc map: for each key the writer has changed in its open
**              transaction, the newest loc maps to the last committed one.
**              Readers use it to see past uncommitted index slots.
**   HkvEngine  one per store directory per process, shared by handles.
**
** Locking (see engine.c for the whole story)
**   HkvEngine.mu      writer slot, segment list, counters.
**   HkvEngine.latch   index, loc map and iCommitted; readers take it shared,
**                     the writer takes it exclusive to change them.
*/
#ifndef HKVINT_H
#define HKVINT_H

#include "hashkv.h"

#include <pthread.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

typedef uint64_t HkvLoc;

#define HKV_LOC(iSlot, iOff) (((uint64_t)(iSlot) << 32) | (uint32_t)(iOff))
#define HKV_LOC_SLOT(loc) ((uint32_t)((loc) >> 32) & 0xFFFFu)
#define HKV_LOC_OFF(loc) ((uint32_t)(loc))
#define HKV_MAX_SEGSLOT 65536u

/* ---- checksums (crc32c.c) ---- */
uint32_t hkvCrc32c(uint32_t crc, const void *p, size_t n);
extern atomic_int hkvCrcMode; /* crc32c.c: 0 unknown, 1 software, 2 SSE4.2 */

/* CRC-32C of p[0..n) from 0, inlined for the hot read path: with SSE4.2
** the crc32 instruction through inline assembly (which, unlike the
** intrinsics, needs no target attribute in the caller); else the call. */
static inline uint32_t hkvCrc32cInline(const uint8_t *p, size_t n) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (atomic_load_explicit(&hkvCrcMode, memory_order_relaxed) == 2) {
    uint64_t c = 0xFFFFFFFFu;
    for (; n >= 8; p += 8, n -= 8) {
      uint64_t v;
      memcpy(&v, p, 8);
      __asm__("crc32q %1, %0" : "+r"(c) : "rm"(v));
    }
    uint32_t c32 = (uint32_t)c;
    if (n & 4) {
      uint32_t v;
      memcpy(&v, p, 4);
      __asm__("crc32l %1, %0" : "+r"(c32) : "rm"(v));
      p += 4;
    }
    if (n & 2) {
      uint16_t v;
      memcpy(&v, p, 2);
      __asm__("crc32w %1, %0" : "+r"(c32) : "rm"(v));
      p += 2;
    }
    if (n & 1) {
      uint8_t b = *p;
      __asm__("crc32b %1, %0" : "+r"(c32) : "rm"(b));
    }
    return ~c32;
  }
#endif
  return hkvCrc32c(0, p, n);
}

/* ---- little-endian helpers ---- */
static inline void hkvPut16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}
static inline void hkvPut32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void hkvPut64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t hkvGet16(const uint8_t *p) {
  return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t hkvGet32(const uint8_t *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
         ((uint32_t)p[3] << 24);
}
static inline uint64_t hkvGet64(const uint8_t *p) {
  return (uint64_t)hkvGet32(p) | ((uint64_t)hkvGet32(p + 4) << 32);
}

/* ---- the OS layer (os.c): every system call goes through here ---- */
typedef struct HkvEnv HkvEnv;
struct HkvEnv {
  /* Paths are relative to dirFd (AT_FDCWD for the process's directory), so
  ** the engine keeps working after its directory is renamed. */
  int (*xOpen)(int dirFd, const char *zPath, int flags, int mode); /* fd */
  int (*xClose)(int fd);
  long (*xWrite)(int fd, const void *p, size_t n, uint64_t off); /* pwrite */
  int (*xSync)(int fd);                   /* 0 or -errno */
  int (*xTruncate)(int fd, uint64_t n);   /* 0 or -errno */
  int (*xFileSize)(int fd, uint64_t *pn); /* 0 or -errno */
  void *(*xMmap)(int fd, uint64_t n);     /* NULL on error */
  void (*xMunmap)(void *p, uint64_t n);
  int (*xUnlink)(int dirFd, const char *zPath);
  int (*xRename)(int dirFd, const char *zFrom, const char *zTo);
  int (*xMkdir)(const char *zPath); /* 0, -EEXIST.. */
  int (*xRmdir)(const char *zPath);
  int (*xLock)(int fd, int iByte, int op); /* 0, -EWOULDBLOCK.. */
  /* iByte HKV_BYTE_FLOCK: flock() the file; else an OFD lock on the byte */
  void *(*xMalloc)(size_t n);
  void *(*xCalloc)(size_t nElem, size_t nSize);
  void *(*xRealloc)(void *p, size_t n);
  void (*xFree)(void *p);
  void *(*xShmMap)(int fd, uint64_t n, int bWrite); /* shared, NULL on error */
  /* HKV_BARRIER_REGISTER once, then HKV_BARRIER_FENCE: a full memory
  ** barrier on every running thread of the process (Linux membarrier). */
  int (*xBarrier)(int op); /* 0 or -errno */
  /* Zeroed anonymous memory, page-aligned; NULL on error. */
  void *(*xMapAnon)(size_t n);
  void (*xUnmapAnon)(void *p, size_t n);
  /* Gives the file blocks for its first n bytes, keeping what is there:
  ** a later store through a shared mapping then cannot fault for want of
  ** space (posix_fallocate). 0 or -errno. */
  int (*xAllocate)(int fd, uint64_t n);
  /* The wall clock: milliseconds since the Unix epoch (CLOCK_REALTIME).
  ** Every expiry decision reads it here, so tests set the time. With
  ** bExact 0 it may answer a cheaper time up to HKV_CLOCK_SLACK ms behind,
  ** never ahead (CLOCK_REALTIME_COARSE): see hkvExpiredNow. */
  int64_t (*xNow)(int bExact);
  /* A second name for a file, in another directory (linkat): 0 or -errno
  ** (EXDEV across file systems). NULL: never link, copy. */
  int (*xLink)(int fromDirFd, const char *zFrom, int toDirFd, const char *zTo);
};
#define HKV_BARRIER_REGISTER 0
#define HKV_BARRIER_FENCE 1

/* xLock operations on one byte of the lock file (OFD locks). */
#define HKV_LOCK_UN 0
#define HKV_LOCK_SH 1
#define HKV_LOCK_EX 2
#define HKV_LOCK_WAIT 4  /* block until granted */
#define HKV_LOCK_PROBE 8 /* 0 if EX could be granted now; takes nothing */

extern const HkvEnv *hkvEnv;            /* the one in use */
extern const HkvEnv hkvPosixEnv;        /* the default */
void hkvEnvInstall(const HkvEnv *pEnv); /* tests only; NULL = default */

void *hkvMalloc(size_t n);
void *hkvCalloc(size_t n);
void *hkvRealloc(void *p, size_t n);
void hkvFree(void *p);
char *hkvStrdup(const char *z);
void hkvAdviseHuge(void *p, size_t n); /* a hint; never fails */
#if defined(__GNUC__) || defined(__clang__)
#define HKV_PRINTF(i, j) __attribute__((format(printf, i, j)))
#else
#define HKV_PRINTF(i, j)
#endif
char *hkvMprintf(const char *zFmt, ...) HKV_PRINTF(1, 2);
/* Replaces *pzErr with zMsg (taking it); pzErr may be NULL. Returns rc. */
int hkvSetErr(char **pzErr, int rc, char *zMsg);
/* Writes n bytes at iOff, in as many writes as it takes: 0 or -errno (a
** write that makes no progress counts as ENOSPC, as write(2) documents). */
int hkvWriteAll(int fd, const void *p, uint64_t n, uint64_t iOff);
/* The code of a failed write or fsync's errno: FULL for ENOSPC and EDQUOT,
** else IOERR. */
int hkvIoCode(int iErrno);

/* ---- sharing a store between processes (share.c) ----
** The write lock is flock() on the store directory, exclusive while a
** process writes (a transaction, a compaction step); a second writer gets
** BUSY. (flock costs about 250 ns a lock and unlock here, an OFD byte lock
** 400 ns; every transaction pays one pair.)
** LOCK holds open-file-description locks on two bytes:
**   HKV_BYTE_OPEN     exclusive while a writable open recovers (and may cut
**                     or clean up), shared while a read-only open or a reload
**                     reads the file set; a compaction's switch takes it
**                     exclusive, so no one reads a half-switched set.
**   HKV_BYTE_PRESENT  shared by every process with the store open; an open
**                     that gets it exclusive is alone.
** SHM is mapped shared by every process: the wal-index of this store. */
#define HKV_LOCK_FILE "LOCK"
#define HKV_SHM_FILE "SHM"
#define HKV_BYTE_FLOCK (-1) /* xLock: flock() the whole file instead */
#define HKV_BYTE_OPEN 1
#define HKV_BYTE_PRESENT 2
#define HKV_SHM_SIZE 4096

typedef struct HkvShm {
  uint8_t aMagic[8];          /* "hkvshm\0\2" */
  _Atomic uint64_t iEnd;      /* committed end of the log, seq << 32 | off */
  _Atomic uint64_t iGen;      /* moved by each compaction switch */
  _Atomic uint64_t iNextFile; /* next segment file id */
  _Atomic uint64_t bWriting;  /* a writer may have left unpublished bytes */
  _Atomic uint64_t iEndCheck; /* hkvShmCheck(iEnd), written after it */
} HkvShm;

/* The check value stored beside a SHM position: a damaged or overwritten
** position (or one from another version) does not match its check. */
static inline uint64_t hkvShmCheck(uint64_t v) {
  v ^= v >> 31;
  v *= 0x9E3779B97F4A7C15ull;
  return v ^ (v >> 29) ^ 0x686B7673686D3032ull;
}

/* One engine's part in the sharing: written only by share.c. */
typedef struct HkvShare {
  int dirFd;        /* the store directory (borrowed): the write lock */
  const char *zDir; /* for messages (borrowed) */
  int lockFd;       /* LOCK, or -1 (a read-only store no one else can write) */
  int shmFd;        /* SHM, or -1 */
  HkvShm *pShm;     /* mapped SHM, or &shmOwn */
  HkvShm shmOwn;    /* stands in when SHM cannot be mapped */
  int bShmWritable; /* pShm may be written */
  int bWriteLock;   /* holds the write lock (caller serialises, e->mu) */
  _Atomic uint64_t iSeenEnd; /* SHM iEnd the engine's view matches */
  _Atomic uint64_t iSeenGen; /* SHM iGen its file set matches */
} HkvShare;

void hkvShareInit(HkvShare *sh); /* closed, SHM standing in unmapped */
/* At open: opens LOCK and SHM and takes the open lock; *pbAlone when no
** other process has the store open (recovery may then cut and clean up). */
int hkvShareOpen(HkvShare *sh, int dirFd, const char *zDir, int bReadonly,
                 int *pbAlone, char **pzErr);
/* The bound an open beside other processes reads to: SHM's committed end,
** or HKV_NO_BOUND - 1 when SHM was never set up (read everything, cut
** nothing). CORRUPT if SHM is damaged. */
int hkvShareBound(HkvShare *sh, uint64_t *piBound, char **pzErr);
/* The committed end SHM last recorded, 0 if it knows none (never set up,
** or unmatched). Read once, without waiting: for an open that is alone. */
uint64_t hkvShareLastEnd(HkvShare *sh);
/* After recovery: sets SHM up when alone (or never set up), then lets other
** opens in. */
void hkvShareReady(HkvShare *sh, int bAlone, uint64_t iCommitted,
                   uint32_t iNextFile);
void hkvShareClose(HkvShare *sh);
/* The write lock: OK, BUSY (another process writes), IOERR. */
int hkvShareLockWrite(HkvShare *sh, char **pzErr);
/* Marks SHM "a writer may leave unpublished bytes" (once locked). */
void hkvShareMarkWriting(HkvShare *sh);
/* Releases the write lock; with bClean, nothing unpublished is left. */
void hkvShareUnlockWrite(HkvShare *sh, int bClean);
/* SHM says a writer may have left unpublished bytes. */
int hkvShareDirty(HkvShare *sh);
/* SHM's committed end, checked (CORRUPT if it does not match its check). */
int hkvShareReadEnd(HkvShare *sh, uint64_t *piEnd, char **pzErr);
/* Publishes iEnd as the committed end. */
void hkvSharePublish(HkvShare *sh, uint64_t iEnd);
uint64_t hkvShareGen(HkvShare *sh);
/* Notes what the engine's view now matches. */
void hkvShareSeen(HkvShare *sh, uint64_t iEnd, uint64_t iGen);
/* A compaction switched the file set (caller holds the write lock). */
void hkvShareBumpGen(HkvShare *sh);
/* The open byte: shared while a file set is read, exclusive for a switch.
** Waits. 0 or -errno. */
int hkvShareLockFiles(HkvShare *sh, int bExclusive);
void hkvShareUnlockFiles(HkvShare *sh);
/* HKV_OK if no other process has the store open; with bTake the others
** stay out. BUSY otherwise. */
int hkvShareAlone(HkvShare *sh, int bTake);
/* File ids: the next free one (at least iMin), and one taken. */
uint32_t hkvShareNextFileId(HkvShare *sh, uint32_t iMin);
void hkvShareUsedFileId(HkvShare *sh, uint32_t iFile);

/* Two loads: did another process publish or switch since hkvShareSeen? */
static inline int hkvShareChanged(HkvShare *sh) {
  return atomic_load_explicit(&sh->pShm->iEnd, memory_order_relaxed) !=
             atomic_load_explicit(&sh->iSeenEnd, memory_order_relaxed) ||
         atomic_load_explicit(&sh->pShm->iGen, memory_order_relaxed) !=
             atomic_load_explicit(&sh->iSeenGen, memory_order_relaxed);
}

/* ---- file names: one helper for every kind of file ---- */
#define HKV_FILE_LOG 0  /* "%08x.hkd": a log segment */
#define HKV_FILE_OUT 1  /* "%08x.hkc": a compaction output */
#define HKV_FILE_HINT 2 /* "%08x.hkh": the hint of either */
static inline void hkvFileName(uint32_t iFile, int iKind, char *zBuf) {
  static const char *const azExt[] = {"hkd", "hkc", "hkh"};
  snprintf(zBuf, 16, "%08x.%s", iFile, azExt[iKind]);
}
static inline int hkvHasId(const uint32_t *a, uint32_t n, uint32_t iId) {
  for (uint32_t k = 0; k < n; k++) {
    if (a[k] == iId) return 1;
  }
  return 0;
}

/* ---- the log (log.c) ---- */
#define HKV_SEG_HDR 32 /* bytes of the segment header */
#define HKV_REC_HDR 20 /* bytes of a record header */

#define HKV_KIND_PUT 1
#define HKV_KIND_DEL 2
#define HKV_KIND_COMMIT 3
#define HKV_KIND_ABORT 4
#define HKV_KIND_ROLLBACK_TO 5

#define HKV_FLAG_SELFCOMMIT 0x01 /* the record is a transaction by itself */
#define HKV_FLAG_EXPIRES 0x02    /* a PUT with an 8-byte expiry time */
#define HKV_FLAG_KNOWN 0x03      /* flag bits this version understands */
#define HKV_REC_EXP 8            /* bytes of the expiry after the header */

/* Expiry times are Unix milliseconds; 0 means never. A key whose expiry is
** not after now is gone for every reader (the same rule in every process,
** each on its own clock). */
static inline int hkvExpired(int64_t iExpire, int64_t iNow) {
  return iExpire != 0 && iExpire <= iNow;
}

/* Whether iExpire (nonzero) has passed by the exact clock, reading it only
** when the cheap one cannot tell: a coarse time at or past the expiry is
** past it; one more than the slack before it is before it. A precise read
** cost 40 ns in a loop and about 300 ns amid random gets here (kvm-clock),
** more than the rest of a get; the coarse one 8 ns. */
#define HKV_CLOCK_SLACK 100 /* ms the coarse clock may lag (a tick: 1-10) */
static inline int hkvExpiredNow(int64_t iExpire) {
  int64_t t = hkvEnv->xNow(0);
  if (iExpire <= t) return 1;
  if (iExpire > t + HKV_CLOCK_SLACK) return 0;
  return iExpire <= hkvEnv->xNow(1);
}

typedef struct HkvRec {
  uint8_t kind;
  uint8_t flags;
  uint32_t nKey;
  uint32_t nVal;
  uint64_t iTxn;
  const uint8_t *pKey;
  const uint8_t *pVal;
  uint32_t nRec;   /* whole record in bytes */
  uint64_t hKey;   /* its key's hash when a caller computed it, else 0 */
  int64_t iExpire; /* PUT: expiry time, Unix ms; 0: never */
} HkvRec;

/* The first byte of a decoded record (its CRC field). */
static inline const uint8_t *hkvRecStart(const HkvRec *pRec) {
  return pRec->pKey - HKV_REC_HDR -
         ((pRec->flags & HKV_FLAG_EXPIRES) ? HKV_REC_EXP : 0);
}

typedef struct HkvSeg {
  uint32_t iOrder;  /* its place in the log: its file id, or for a
                    ** compaction output the id of the last segment it
                    ** replaced (log positions are iOrder << 32 | offset) */
  uint32_t iFile;   /* file id: "%08x.hkd" or "%08x.hkc" */
  int bHkc;         /* a compaction output (sealed, committed puts only) */
  uint64_t iRetire; /* epoch at which compaction retired it; 0 = in use */
  int fd;           /* read-write (or read-only) descriptor */
  uint8_t *pMap;    /* read-only map of nMap bytes */
  uint64_t nMap;    /* bytes mapped (>= file size, fixed) */
  _Atomic uint64_t nFile; /* bytes known to be in the file (the writer
                          ** sets it; stats read it from other threads) */
  uint64_t nLive;         /* bytes of records live in the index */
  uint64_t nExpLive;      /* ... of them, bytes of records with an expiry */
  int64_t iMaxExpire;     /* latest expiry of a record in it (Unix ms): past
                          ** it, nExpLive bytes are dead as well */
} HkvSeg;

typedef struct HkvEngine HkvEngine;

typedef int (*HkvApply)(void *pCtx, HkvLoc loc, const HkvRec *pRec);
/* A compaction output's hint entry: the record at loc, nRec bytes, whose
** key hashes to hKey, expiring at iExpire (0: never). */
typedef int (*HkvHintApply)(void *pCtx, HkvLoc loc, uint64_t hKey,
                            uint32_t nRec, int64_t iExpire);
#define HKV_NO_BOUND UINT64_MAX
uint64_t hkvSegCapacity(HkvEngine *e, int fd, uint64_t nFile);

/* One segment of the log order being rebuilt at open. */
typedef struct HkvPlan {
  uint32_t iFile;  /* file id */
  uint32_t iOrder; /* its place in the log (HkvSeg.iOrder) */
  int bHkc;        /* a compaction output */
} HkvPlan;

#define HKV_MANIFEST "MANIFEST"
#define HKV_MANIFEST_TMP "MANIFEST.tmp"
#define HKV_SEG_HKC 0x01      /* hkvAddSegment: a compaction output */
#define HKV_SEG_UNLISTED 0x02 /* hkvAddSegment: not (yet) in the log order */
int hkvAddSegment(HkvEngine *e, int fd, uint32_t iFile, uint32_t iOrder,
                  int flags, uint64_t nFile, uint64_t nMap, uint32_t *piSlot,
                  char **pzErr);
void hkvFreeSegment(HkvEngine *e, uint32_t iSlot);
void hkvSegName(uint32_t iFile, int bHkc, char *zBuf);
void hkvEncodeSegHeader(uint8_t *a, uint32_t iFile, uint32_t iPred,
                        uint32_t nCap);
const char *hkvCheckSegHeader(const uint8_t *a, uint64_t n, uint32_t iFile);
int hkvSyncDir(HkvEngine *e, char **pzErr);
int hkvVerifyRecord(const uint8_t *p, const HkvRec *pRec);
int hkvLogRotate(HkvEngine *e, uint64_t nRec, char **pzErr);
typedef struct HkvHintW HkvHintW;
/* The queue of sealed segments awaiting a hint: the next, or 0 if none. */
int hkvLogNextSealed(HkvEngine *e, uint32_t *piFile);
void hkvLogForgetSealed(HkvEngine *e);
int hkvLogCreateSegment(HkvEngine *e, uint32_t iFile, uint64_t nMin,
                        char **pzErr);
uint32_t hkvSegPred(const uint8_t *a); /* of a valid header */
int hkvLogListFiles(HkvEngine *e, const char *zExt, uint32_t **paId,
                    uint32_t *pnId, char **pzErr);
void hkvLogCloseAll(HkvEngine *e);
/* Retiring (see log.c): every segment, at the next epoch, returned (the
** caller publishes it once the index no longer names them); compaction's
** inputs replaced by its outputs in the log order; freeing those retired
** at or before iMinEpoch. */
/* The log order as recovery leaves it: the segments after the first nKeep
** closed (and with bUnlink removed: 0 or the first -errno); appends to
** resume in iSlot at iOff; a file id in use; the manifest's retired mark. */
int hkvLogDropAfter(HkvEngine *e, uint32_t nKeep, int bUnlink);
void hkvLogResume(HkvEngine *e, uint32_t iSlot, uint64_t iOff);
void hkvLogUseFileId(HkvEngine *e, uint32_t iFile);
void hkvLogSetRetiredMark(HkvEngine *e, uint32_t iMaxRetired);
uint64_t hkvLogRetireAll(HkvEngine *e);
void hkvLogPublishEpoch(HkvEngine *e, uint64_t iEpoch);
void hkvLogSwitch(HkvEngine *e, const uint32_t *aIn, uint32_t nIn,
                  const uint32_t *aOut, uint32_t nOut);
void hkvLogReap(HkvEngine *e, uint64_t iMinEpoch);
int hkvLogRemoveAll(HkvEngine *e, char **pzErr);
int hkvLogAppend(HkvEngine *e, int kind, int flags, uint64_t iTxn,
                 const void *pKey, uint32_t nKey, const void *pVal,
                 uint32_t nVal, int64_t iExpire, HkvLoc *pLoc, char **pzErr);
int hkvLogFlush(HkvEngine *e, char **pzErr);
void hkvLogDiscard(HkvEngine *e);
int hkvLogSync(HkvEngine *e, char **pzErr);
#define HKV_READ_VERIFY 1 /* check the CRC */
#define HKV_READ_OWN 2    /* writer: loc may be in the write buffer */
int hkvLogRead(HkvEngine *e, HkvLoc loc, int flags, HkvRec *pRec, char **pzErr);
uint64_t hkvLogEnd(HkvEngine *e); /* (seq << 32) | offset of the end */
uint64_t hkvLogOrder(HkvEngine *e, HkvLoc loc); /* same scale as hkvLogEnd */
char *hkvLogSegPath(HkvEngine *e, const HkvSeg *s);
int hkvDecodeRecord(const uint8_t *p, uint64_t n, HkvRec *pRec);

/* ---- the index (index.c) ---- */
typedef struct HkvTable {
  uint64_t *a;    /* slots: 0 empty, 1 tombstone, else fp << 48 | loc */
  uint64_t mask;  /* capacity - 1 (capacity is a power of two) */
  int nShift;     /* 64 - log2(capacity): home = hash >> nShift */
  uint64_t nUsed; /* live + tombstones */
  uint64_t nLive;
} HkvTable;

typedef struct HkvIndex {
  HkvTable cur;      /* where inserts go */
  HkvTable old;      /* being migrated into cur; a == NULL when none */
  uint64_t iMigrate; /* next slot of old to migrate */
  /* Tables no longer published, which lock-free readers may still be
  ** probing: freed by hkvIndexReap once none can be (see engine.c). */
  _Atomic(uint64_t *) pRetired;
} HkvIndex;

/* Words before a table's slot 0. Lock-free readers load `a` once and take
** the mask from a[HKV_TAB_MASK], so they never pair one table's slots with
** another's size. */
#define HKV_TAB_HDR 8       /* words (64 bytes) */
#define HKV_TAB_MASK (-1)   /* capacity - 1 */
#define HKV_TAB_ALLOC (-2)  /* the allocation, for free() */
#define HKV_TAB_NEXT (-3)   /* next retired table */
#define HKV_TAB_MAPPED (-4) /* bytes mapped at ALLOC (0: from the heap) */

/* Every slot store the writer makes is atomic: lock-free readers load slots
** while it writes (a plain mov on x86 either way). */
static inline void hkvSlotSet(uint64_t *pSlot, uint64_t v) {
  __atomic_store_n(pSlot, v, __ATOMIC_RELAXED);
}

#define HKV_SLOT_EMPTY 0u
#define HKV_SLOT_TOMB 1u
#define HKV_SLOT_LOC(s) ((s)&0xFFFFFFFFFFFFull)
#define HKV_FP(h) ((uint64_t)((h)&0xFFFFu) << 48)

/* Callback giving the hash of the key of the record at loc. With
** HKV_LOC_PREFETCH or'd into loc it only starts loading the record into the
** cache (and returns 0). */
typedef uint64_t (*HkvHashAt)(void *pCtx, HkvLoc loc);
#define HKV_LOC_PREFETCH (1ull << 63)
/* Callback: 1 if the record at loc (maybe resolved) holds the sought key. */
typedef int (*HkvMatch)(void *pCtx, uint64_t *pSlot);

void hkvIndexInit(HkvIndex *p);
void hkvIndexFree(HkvIndex *p);  /* no reader may be probing */
void hkvIndexReset(HkvIndex *p); /* empties it; the tables are retired */
int hkvIndexHasRetired(HkvIndex *p);
void hkvIndexReap(HkvIndex *p); /* frees retired tables: no reader probes */
uint64_t *hkvIndexFind(HkvIndex *p, uint64_t h, HkvMatch xMatch, void *pCtx);
int hkvIndexInsert(HkvIndex *p, uint64_t h, HkvLoc loc, HkvHashAt xHash,
                   void *pCtx);
void hkvIndexRemove(HkvIndex *p, uint64_t *pSlot);
int hkvIndexReserve(HkvIndex *p, uint64_t nMore, HkvHashAt xHash, void *pCtx);
int hkvIndexNeedsRoom(const HkvIndex *p, uint64_t nMore);
void hkvIndexPrefetch(const HkvIndex *p, uint64_t h);
uint64_t hkvIndexHomeSlot(const HkvIndex *p, uint64_t h);
void hkvIndexFinishMigration(HkvIndex *p, HkvHashAt xHash, void *pCtx);
uint64_t hkvIndexLive(const HkvIndex *p);
uint64_t hkvIndexBytes(const HkvIndex *p);
/* Calls x for every live slot (both tables). Stops if x returns nonzero. */
int hkvIndexForEach(HkvIndex *p, int (*x)(void *, uint64_t *), void *pCtx);
/* Copies the location of every live slot (both tables) into a, at most
** nMax of them; returns how many, or nMax + 1 if there were more. A plain
** loop: a scan's snapshot. */
uint64_t hkvIndexCollect(const HkvIndex *p, HkvLoc *a, uint64_t nMax);

/* The key hash every part of the store uses: XXH3, inlined into the get
** path. */
static inline uint64_t hkvKeyHash(const void *p, size_t n) {
  return XXH3_64bits(p, n);
}

/* The reader latch of the index: a reader-writer lock, and iSeq, a
** sequence lock for readers that probe without the lock (odd while the
** writer changes the index). Critical sections last a fraction of a
** microsecond, far less than a futex sleep and wake-up, so both sides spin
** on the try-lock (with a pause, no yield) for up to about 100 us before
** blocking. Measured with one reader thread beside a writer on two cores:
** yielding or sleeping early made each get cost 6 us and held the writer to
** 0.1 M puts/s; spinning gives 0.6 us and 1.4 M puts/s. */
typedef struct HkvLatch {
  pthread_rwlock_t rw;
  _Atomic uint64_t iSeq;
} HkvLatch;

#define HKV_SPIN 2048 /* tries, about 100 us, before sleeping on the lock */

static inline void hkvLatchPause(void) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
static inline void hkvLatchInit(HkvLatch *l) {
  pthread_rwlock_init(&l->rw, 0);
  atomic_store(&l->iSeq, 0);
}
static inline void hkvLatchFree(HkvLatch *l) { pthread_rwlock_destroy(&l->rw); }
static inline void hkvLatchRead(HkvLatch *l) {
  for (int i = 0; i < HKV_SPIN; i++) {
    if (pthread_rwlock_tryrdlock(&l->rw) == 0) return;
    hkvLatchPause();
  }
  pthread_rwlock_rdlock(&l->rw);
}
static inline void hkvLatchUnread(HkvLatch *l) {
  pthread_rwlock_unlock(&l->rw);
}
/* The writer's side also moves iSeq: odd from here to hkvLatchUnwrite. */
static inline void hkvLatchWrite(HkvLatch *l) {
  int bLocked = 0;
  for (int i = 0; i < HKV_SPIN && !bLocked; i++) {
    bLocked = pthread_rwlock_trywrlock(&l->rw) == 0;
    if (!bLocked) hkvLatchPause();
  }
  if (!bLocked) pthread_rwlock_wrlock(&l->rw);
  uint64_t v = atomic_load_explicit(&l->iSeq, memory_order_relaxed);
  atomic_store_explicit(&l->iSeq, v + 1, memory_order_relaxed);
  atomic_thread_fence(memory_order_release);
}
static inline void hkvLatchUnwrite(HkvLatch *l) {
  uint64_t v = atomic_load_explicit(&l->iSeq, memory_order_relaxed);
  atomic_store_explicit(&l->iSeq, v + 1, memory_order_release);
  pthread_rwlock_unlock(&l->rw);
}

typedef struct HkvLocMap {
  uint64_t *a;   /* pairs: key loc, value loc; key 0 = empty */
  uint64_t mask; /* capacity - 1, in pairs */
  uint64_t n;
} HkvLocMap;

void hkvMapInit(HkvLocMap *m);
void hkvMapFree(HkvLocMap *m);
void hkvMapClear(HkvLocMap *m);
int hkvMapReserve(HkvLocMap *m, uint64_t nMore);
int hkvMapNeedsRoom(const HkvLocMap *m, uint64_t nMore);
void hkvMapPut(HkvLocMap *m, HkvLoc k, HkvLoc v); /* after Reserve */
HkvLoc hkvMapGet(const HkvLocMap *m, HkvLoc k);   /* 0 if absent */
void hkvMapDel(HkvLocMap *m, HkvLoc k);

/* ---- hints (hint.c) ---- */
/* Writes about nBudget bytes of the next sealed segment's hint; DONE when
** none is left. Never fails: a hint that cannot be written is dropped. */
int hkvHintStep(HkvEngine *e, uint64_t nBudget);
void hkvHintFree(HkvEngine *e); /* drops the one being written */

/* A sealed segment's hint, read: each entry's offset and record header. */
typedef struct HkvHintIter {
  const uint8_t *a; /* the mapped file */
  uint64_t n;
  const uint8_t *p, *pEnd; /* what is left of the entries */
  uint64_t nFile;          /* bytes of the segment */
  uint32_t nEntry;
  uint64_t iOff; /* out: the entry's record offset */
  HkvRec rec;    /* out: its header (key, and ROLLBACK_TO's value) */
} HkvHintIter;
/* 1 if segment s has a hint that covers it exactly, every entry checked
** (then nEntry hkvHintSealedNext calls give them in order); 0 if not.
** Either way hkvHintClose after. */
int hkvHintSealedOpen(HkvEngine *e, const HkvSeg *s, HkvHintIter *it);
int hkvHintSealedNext(HkvHintIter *it);
void hkvHintSealedRewind(HkvHintIter *it);
void hkvHintClose(HkvHintIter *it);

/* 1 if a[0..n) is a whole hint (either kind) of segment iFile. */
int hkvHintWhole(const uint8_t *a, uint64_t n, uint32_t iFile);

/* A compaction output's hint: its entry count (0: none, or unreadable), and
** its entries through xHint (1 if loaded, 0 if missing or unusable: read the
** segment; -rc if xHint failed). */
uint64_t hkvHintCount(HkvEngine *e, uint32_t iFile);
int hkvHintLoad(HkvEngine *e, uint32_t iSlot, HkvHintApply xHint, void *pCtx);
/* ... and its writer: start, reserve room for a key, add, write + fsync
** (0 or -errno). */
typedef struct HkvHintBuf {
  uint8_t *a;
  size_t n, nAlloc;
  uint32_t nEntry;
  uint64_t iLast; /* offset of the previous entry's record */
} HkvHintBuf;
int hkvHintBufStart(HkvHintBuf *b, uint32_t iFile);
int hkvHintBufReserve(HkvHintBuf *b, uint32_t nKey);
void hkvHintBufAdd(HkvHintBuf *b, uint64_t iOff, const void *pKey,
                   uint32_t nKey, int64_t iExpire);
int hkvHintBufWrite(HkvEngine *e, HkvHintBuf *b, uint32_t iFile);
void hkvHintBufFree(HkvHintBuf *b);

/* ---- the manifest (manifest.c) ---- */
/* On OK *paPlan lists the manifest's segments in log order (NULL, 0 and
** *pbFound 0 without a manifest). CORRUPT if damaged. */
int hkvManifestRead(HkvEngine *e, HkvPlan **paPlan, uint32_t *pnPlan,
                    uint32_t *piMaxRetired, int *pbFound, char **pzErr);
/* The bytes of a manifest listing aPlan (allocated; *pn bytes; NULL for no
** memory): what hkvManifestWrite writes, and a backup too. */
uint8_t *hkvManifestEncode(const HkvPlan *aPlan, uint32_t nPlan,
                           uint32_t iMaxRetired, size_t *pn);
/* Writes a manifest listing segments aSlot, durably (the switch). */
int hkvManifestWrite(HkvEngine *e, const uint32_t *aSlot, uint32_t nSlot,
                     uint32_t iMaxRetired, char **pzErr);

/* ---- recovery (recover.c) ---- */
/* Catch-up's code, never returned by the API: another process's compaction
** switched the file set under it, so the caller rebuilds from the new set. */
#define HKV_SWITCHED 1000
int hkvRecover(HkvEngine *e, HkvApply xApply, HkvHintApply xHint,
               int (*xReserve)(void *, uint64_t), void *pCtx, uint64_t iBound,
               uint64_t iMustReach, char **pzErr);
int hkvRecoverCatchUp(HkvEngine *e, HkvApply xApply, void *pCtx,
                      uint64_t iBound, char **pzErr);

/* ---- compaction (compact.c) ---- */
typedef struct HkvCompact HkvCompact;
int hkvCompactStart(HkvEngine *e, char **pzErr);
int hkvCompactStep(HkvEngine *e, uint64_t nBudget, char **pzErr);
int hkvCompactAll(HkvEngine *e, char **pzErr);
void hkvCompactFree(HkvCompact *c);
void hkvCompactDiscard(HkvEngine *e);

/* ---- test hooks (engine.c, compact.c) ---- */
int hkvEngineFastReads(hkv_db *db); /* tests: gets probe without e->rw */
int hkvEngineMigrating(hkv_db *db); /* tests: the index is growing */

/* Test hook: when set, called at named points of compaction, so a test can
** end the process there (a crash). NULL in production. */
extern void (*hkvTestCrashHook)(const char *zWhere);
#define hkvTestCrashPoint(z)                   \
  do {                                         \
    if (hkvTestCrashHook) hkvTestCrashHook(z); \
  } while (0)

/* ---- what the engine lends a backup (engine.c, for backup.c) ---- */
typedef struct HkvSnapSeg {
  const HkvSeg *pSeg; /* mapped until hkvEngineSnapshotEnd */
  uint64_t nCopy;     /* bytes of it the snapshot holds */
  int bWhole;         /* sealed: all of it, never written again */
} HkvSnapSeg;
typedef struct HkvSnapshot {
  HkvSnapSeg *aSeg; /* the log order as of one commit */
  uint32_t nSeg;
  uint64_t iEnd;  /* that commit's end: seq << 32 | offset */
  hkv_iter *pPin; /* an empty iterator: keeps retired segments mapped */
} HkvSnapshot;
/* Takes db's view of the committed log (caught up with other processes)
** and pins its segments' mappings. OK, MISUSE, NOMEM, or catch-up's code
** (CORRUPT, IOERR); on failure nothing is pinned. */
int hkvEngineSnapshot(hkv_db *db, HkvSnapshot *p);
void hkvEngineSnapshotEnd(HkvSnapshot *p);
/* db's engine, and its last code and message (zMsg taken). */
HkvEngine *hkvEngineOf(hkv_db *db);
int hkvEngineSetErr(hkv_db *db, int rc, char *zMsg);

/* ---- the engine (engine.c): each group of fields names the file that
** writes it; the others only read it or call that file ---- */
struct HkvEngine {
  /* engine.c: identity, handles, the writer slot, epochs of its calls */
  HkvEngine *pNext; /* registry list */
  dev_t dev;        /* identity of the directory */
  ino_t ino;
  int nRef;  /* handles open on it */
  pid_t pid; /* process that opened it */
  char *zDir;
  int dirFd;      /* directory: fsync() */
  int bTailKnown; /* checked once since open that no unpublished bytes
                  ** follow the view's end */
  int bReadonly;
  int bNoCreate;       /* at open: refuse to start a new store */
  uint64_t szSegment;  /* seal a segment at this size, bytes */
  pthread_mutex_t mu;  /* the writer slot, the handle lists, counters */
  int bFastRead;       /* readers probe without the latch */
  hkv_db *pWriter;     /* handle holding the write transaction */
  uint64_t iNextTxn;   /* also raised by recovery past every id it meets */
  int iSyncWriter;     /* sync mode of the writer's handle */
  hkv_db *pHandles;    /* every handle on the engine, under mu */
  hkv_iter *pIters;    /* every open iterator, under mu */
  double rAutoCompact; /* dead/total ratio of sealed data that starts one */
  uint64_t nAutoMin;   /* ... once sealed data is at least this big */
  /* The engine's lookup for compaction: the slot holding exactly loc,
  ** whose key hashes to h (NULL: the record is dead). */
  uint64_t *(*xFindExact)(HkvEngine *e, uint64_t h, HkvLoc loc);
  /* ... and for a record compaction found expired while its slot still
  ** names it: the engine drops the key from the index (a committed
  ** delete that needs no tombstone: the record is gone from the log). */
  void (*xDropExpired)(HkvEngine *e, uint64_t *pSlot, const HkvRec *pRec,
                       HkvLoc loc);

  /* share.c */
  HkvShare sh; /* LOCK, SHM, the write lock */

  /* The index (index.c's structures), changed by the engine and, through
  ** its callbacks, by recovery; compaction repoints slots to its copies. */
  HkvLatch latch;              /* over idx, map, iCommitted, bDirty */
  _Atomic uint64_t iCommitted; /* log position where the committed log ends */
  HkvIndex idx;
  HkvLocMap map;
  int bDirty; /* index holds uncommitted slots (under the latch) */

  /* log.c: the segment set, the log order, the append point, retirement */
  HkvSeg **apSeg;       /* HKV_MAX_SEGSLOT slots, NULL when free */
  uint32_t nSeg;        /* segments in use */
  uint32_t *aOrder;     /* slots of segments in log order */
  uint32_t iActive;     /* slot of the segment being appended */
  uint32_t iNextFile;   /* next file id */
  uint32_t iMaxRetired; /* manifest: unlisted .hkd ids up to this are gone */
  uint8_t *aBuf;        /* write buffer of the active segment */
  size_t nBufAlloc;
  size_t nBuf; /* bytes buffered, to go at file offset iBufOff */
  uint64_t iBufOff;
  uint32_t aHintQ[16]; /* file ids of sealed segments awaiting a hint */
  int nHintQ;
  uint32_t *aRetired; /* slots of retired segments still mapped */
  uint32_t nRetired;
  _Atomic uint64_t iEpoch; /* advanced at each retirement */

  /* hint.c and compact.c: their work under way */
  HkvHintW *pHintW;     /* the hint being written, a step at a time */
  HkvCompact *pCompact; /* compaction under way (writer slot holder's) */

  /* The sticky I/O error: set by whichever file's write or fsync failed
  ** (log, manifest, compaction), cleared only by a recovery that cut. */
  _Atomic int bFailed;

  /* Counters, under mu: the engine's, but for what recovery found at open
  ** (nCutBytes, iCutOffset) and compaction's own two. */
  uint64_t nCompactions;
  uint64_t nReclaimed;
  uint64_t nLiveKeys;
  uint64_t nLiveBytes;
  uint64_t nCommits;
  uint64_t nCutBytes;
  uint64_t iCutOffset;
  uint64_t nExpiring; /* keys in the index whose record has an expiry */
  int bEverExpiring;   /* set once any key with an expiry was counted */
  uint64_t nExpired;  /* keys dropped from the index because they expired */
};

/* The bytes at loc and how many follow it in the mapping or, with bOwn
** (the writer's view), in the write buffer when loc is still there. */
static inline const uint8_t *hkvLogBytes(HkvEngine *e, HkvLoc loc, int bOwn,
                                         uint64_t *pn) {
  uint32_t iSlot = HKV_LOC_SLOT(loc);
  uint64_t iOff = HKV_LOC_OFF(loc);
  if (bOwn && iSlot == e->iActive && iOff >= e->iBufOff &&
      iOff < e->iBufOff + e->nBuf) {
    *pn = e->nBuf - (iOff - e->iBufOff);
    return e->aBuf + (iOff - e->iBufOff);
  }
  HkvSeg *s = e->apSeg[iSlot];
  /* Bounded by the bytes known to be in the file, not the mapping, which
  ** may run far past the end of the file: a length field damaged after
  ** open then reads as a bad record instead of faulting (SIGBUS). Files
  ** grow a whole record at a time, so a record that begins before nFile
  ** ends by it; one that begins at or after it holds nothing readable (a
  ** write that failed), and reads as 0 bytes: never a fault. */
  uint64_t nEnd = atomic_load_explicit(&s->nFile, memory_order_relaxed);
  if (nEnd > s->nMap) nEnd = s->nMap;
  *pn = nEnd > iOff ? nEnd - iOff : 0;
  return s->pMap + iOff;
}

#endif /* HKVINT_H */
