/*
** log.c: the log, and the only writer of the segment set: segment files,
** the record format, appending, syncing, rotating, the log order (which
** recovery and compaction change only by calling here), retiring segments
** that leave it, and the store directory's listing. It calls the OS layer,
** the share layer (file ids) and nothing above.
**
** A store is a directory. Its log is a sequence of segment files named
** "%08x.hkd" by sequence number; the highest is the active one, the others
** are sealed and never written again. All integers are little-endian.
**
** Segment header (32 bytes)
**   0   8  magic "hkvlog\r\n"
**   8   4  format version (3; 2 before records could carry an expiry, and
**          1 in files of 0.1.0, which read as 2 with a predecessor of 0;
**          all three are read, only 3 is written)
**   12  4  flags (0; a reader refuses bits it does not know)
**   16  4  file id (equals the file name's)
**   20  4  predecessor: the id of the log segment (".hkd") that was the
**          newest when this one was created, or a compacted-away id at or
**          below the manifest's retired mark; 0 for the first segment of a
**          store (and in compaction outputs, which are not in the chain)
**   24  4  capacity: bytes the file may grow to (its creator's segment size,
**          or more for one large record). Every process maps the segment
**          at this size and no writer appends past it. 0 in files written
**          before it existed: then the reader's own segment size applies.
**   28  4  CRC-32C of bytes 0..27
**
** Record (20-byte header, then the payload)
**   0   4  CRC-32C of bytes 4..end of the record
**   4   1  kind: 1 PUT, 2 DEL, 3 COMMIT, 4 ABORT, 5 ROLLBACK_TO
**   5   1  flags: 0x01 SELFCOMMIT (the record is a whole transaction);
**          0x02 EXPIRES (PUT only: an 8-byte expiry time follows the
**          header). Bits this version does not know make the record
**          unreadable, so a newer writer never misleads an older reader.
**   6   2  key length (PUT and DEL: 1..65535; others 0)
**   8   4  value length (PUT: 0..1e9; ROLLBACK_TO: 8; others 0)
**   12  8  transaction id
**   20  8  with EXPIRES only: the expiry, Unix time in milliseconds, signed,
**          above 0. The key is gone once the clock reads this or later.
**   ..  .  key bytes, then value bytes
** A ROLLBACK_TO record's value is the log position (sequence << 32 | offset)
** of the savepoint: records of its transaction at or after it are void.
**
** The rules that decide which records are valid, and what recovery does
** with the others, are in recover.c.
*/
#include "hkvInt.h"

#include <dirent.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const uint8_t aMagic[8] = {'h', 'k', 'v', 'l', 'o', 'g', '\r', '\n'};
#define HKV_FORMAT_VERSION 3
#define HKV_BUF_SIZE (1u << 20)

void hkvSegName(uint32_t iFile, int bHkc, char *zBuf) {
  hkvFileName(iFile, bHkc ? HKV_FILE_OUT : HKV_FILE_LOG, zBuf);
}

/* The path of a segment, for messages. */
char *hkvLogSegPath(HkvEngine *e, const HkvSeg *s) {
  char zName[16];
  hkvSegName(s->iFile, s->bHkc, zName);
  return hkvMprintf("%s/%s", e->zDir, zName);
}

void hkvEncodeSegHeader(uint8_t *a, uint32_t iFile, uint32_t iPred,
                        uint32_t nCap) {
  memset(a, 0, HKV_SEG_HDR);
  memcpy(a, aMagic, 8);
  hkvPut32(a + 8, HKV_FORMAT_VERSION);
  hkvPut32(a + 16, iFile);
  hkvPut32(a + 20, iPred);
  hkvPut32(a + 24, nCap);
  hkvPut32(a + 28, hkvCrc32c(0, a, 28));
}

/* 0 if the header is valid and names file iFile; else a message. */
const char *hkvCheckSegHeader(const uint8_t *a, uint64_t n, uint32_t iFile) {
  if (n < HKV_SEG_HDR) return "segment header incomplete";
  if (memcmp(a, aMagic, 8) != 0) return "bad segment magic";
  if (hkvGet32(a + 28) != hkvCrc32c(0, a, 28)) {
    return "segment header checksum mismatch";
  }
  uint32_t iVersion = hkvGet32(a + 8);
  if (iVersion < 1 || iVersion > HKV_FORMAT_VERSION) {
    return "unsupported format version";
  }
  if (hkvGet32(a + 12) != 0) return "unsupported segment flags";
  if (hkvGet32(a + 16) != iFile || (iVersion == 1 && hkvGet32(a + 20) != 0)) {
    return "segment sequence does not match name";
  }
  return 0;
}

/* The predecessor a valid header names (0: none, or a version 1 file). */
uint32_t hkvSegPred(const uint8_t *a) { return hkvGet32(a + 20); }

/* The id of the newest log segment (".hkd") of the log order, else the
** retired mark: the predecessor of a segment created now. */
static uint32_t newestLogId(HkvEngine *e) {
  for (uint32_t k = e->nSeg; k > 0; k--) {
    HkvSeg *s = e->apSeg[e->aOrder[k - 1]];
    if (!s->bHkc) return s->iFile;
  }
  return e->iMaxRetired;
}

/*
** Decodes the record at p (n bytes available). Returns 0 and fills *pRec,
** 1 if the header or lengths run past n (incomplete), 2 if it is invalid
** (bad kind, flags, lengths or checksum; *pRec->nRec is then its claimed
** length).
*/
int hkvDecodeRecord(const uint8_t *p, uint64_t n, HkvRec *pRec) {
  if (n < HKV_REC_HDR) return 1;
  pRec->hKey = 0;
  pRec->kind = p[4];
  pRec->flags = p[5];
  pRec->nKey = hkvGet16(p + 6);
  pRec->nVal = hkvGet32(p + 8);
  pRec->iTxn = hkvGet64(p + 12);
  pRec->iExpire = 0;
  uint32_t nExp = (pRec->flags & HKV_FLAG_EXPIRES) ? HKV_REC_EXP : 0;
  uint64_t nRec = (uint64_t)HKV_REC_HDR + nExp + pRec->nKey + pRec->nVal;
  pRec->nRec = (uint32_t)(nRec > UINT32_MAX ? UINT32_MAX : nRec);
  if (pRec->flags & ~HKV_FLAG_KNOWN) return 2;
  switch (pRec->kind) {
    case HKV_KIND_PUT:
      if (pRec->nKey == 0 || pRec->nVal > HKV_MAX_VALUE) return 2;
      if (nExp) {
        if (n < HKV_REC_HDR + HKV_REC_EXP) return 1;
        pRec->iExpire = (int64_t)hkvGet64(p + HKV_REC_HDR);
        if (pRec->iExpire <= 0) return 2;
      }
      break;
    case HKV_KIND_DEL:
      if (pRec->nKey == 0 || pRec->nVal != 0 || nExp) return 2;
      break;
    case HKV_KIND_ROLLBACK_TO:
      if (pRec->nKey != 0 || pRec->nVal != 8 || pRec->flags) return 2;
      break;
    case HKV_KIND_COMMIT:
    case HKV_KIND_ABORT:
      if (pRec->nKey != 0 || pRec->nVal != 0 || pRec->flags) return 2;
      break;
    default:
      return 2;
  }
  if (nRec > n) return 1;
  pRec->pKey = p + HKV_REC_HDR + nExp;
  pRec->pVal = pRec->pKey + pRec->nKey;
  return 0;
}

int hkvVerifyRecord(const uint8_t *p, const HkvRec *pRec) {
  return hkvGet32(p) == hkvCrc32c(0, p + 4, pRec->nRec - 4);
}

uint64_t hkvLogOrder(HkvEngine *e, HkvLoc loc) {
  return ((uint64_t)e->apSeg[HKV_LOC_SLOT(loc)]->iOrder << 32) |
         HKV_LOC_OFF(loc);
}

uint64_t hkvLogEnd(HkvEngine *e) {
  return ((uint64_t)e->apSeg[e->iActive]->iOrder << 32) |
         (e->iBufOff + e->nBuf);
}

/*
** Reads the record at loc. HKV_READ_OWN: the caller is the writer, and loc
** may lie in its unflushed buffer (readers never pass it: they only name
** committed records, which are always in the file). HKV_READ_VERIFY checks
** the CRC. Returns OK or CORRUPT (message names file and offset).
*/
int hkvLogRead(HkvEngine *e, HkvLoc loc, int flags, HkvRec *pRec,
               char **pzErr) {
  uint64_t n;
  const uint8_t *p = hkvLogBytes(e, loc, (flags & HKV_READ_OWN) != 0, &n);
  int r = hkvDecodeRecord(p, n, pRec);
  if (r == 0 && (flags & HKV_READ_VERIFY) && !hkvVerifyRecord(p, pRec)) r = 2;
  if (r) {
    char *zPath = hkvLogSegPath(e, e->apSeg[HKV_LOC_SLOT(loc)]);
    int rc = hkvSetErr(
        pzErr, HKV_CORRUPT,
        hkvMprintf("%s: bad record at offset %llu", zPath ? zPath : "segment",
                   (unsigned long long)HKV_LOC_OFF(loc)));
    hkvFree(zPath);
    return rc;
  }
  return HKV_OK;
}

/* ---- segments ---- */

static int allocSlot(HkvEngine *e, uint32_t *piSlot) {
  for (uint32_t i = 0; i < HKV_MAX_SEGSLOT; i++) {
    if (!e->apSeg[i]) {
      *piSlot = i;
      return HKV_OK;
    }
  }
  return HKV_TOOBIG;
}

/* Maps fd and registers it as the newest segment. Takes ownership of fd
** (closes it on failure). */
int hkvAddSegment(HkvEngine *e, int fd, uint32_t iFile, uint32_t iOrder,
                  int flags, uint64_t nFile, uint64_t nMap, uint32_t *piSlot,
                  char **pzErr) {
  uint32_t iSlot;
  HkvSeg *s = 0;
  int rc = allocSlot(e, &iSlot);
  if (rc) {
    rc = hkvSetErr(pzErr, rc, hkvMprintf("too many segment files"));
    goto fail;
  }
  s = hkvCalloc(sizeof(*s));
  if (!s) {
    rc = HKV_NOMEM;
    goto fail;
  }
  errno = 0;
  s->pMap = hkvEnv->xMmap(fd, nMap);
  if (!s->pMap) {
    char zName[16];
    hkvSegName(iFile, (flags & HKV_SEG_HKC) != 0, zName);
    rc = hkvSetErr(pzErr, HKV_IOERR,
                   hkvMprintf("%s/%s: cannot map %llu bytes: %s", e->zDir,
                              zName, (unsigned long long)nMap,
                              errno ? strerror(errno) : "mmap failed"));
    goto fail;
  }
  s->iOrder = iOrder;
  s->iFile = iFile;
  s->bHkc = (flags & HKV_SEG_HKC) != 0;
  s->fd = fd;
  s->nMap = nMap;
  s->nFile = nFile;
  /* Release: a reader probing without the lock (engine.c) loads the slot
  ** with acquire and then reads the fields above. */
  __atomic_store_n(&e->apSeg[iSlot], s, __ATOMIC_RELEASE);
  if (!(flags & HKV_SEG_UNLISTED)) {
    e->aOrder[e->nSeg] = iSlot;
    /* Release: a backup's snapshot (engine.c) reads the order beside the
    ** writer, which appends to it without e->mu. */
    __atomic_store_n(&e->nSeg, e->nSeg + 1, __ATOMIC_RELEASE);
  }
  *piSlot = iSlot;
  return HKV_OK;
fail:
  hkvFree(s);
  hkvEnv->xClose(fd);
  return rc;
}

void hkvFreeSegment(HkvEngine *e, uint32_t iSlot) {
  HkvSeg *s = e->apSeg[iSlot];
  if (!s) return;
  hkvEnv->xMunmap(s->pMap, s->nMap);
  if (s->fd >= 0) hkvEnv->xClose(s->fd);
  hkvFree(s);
  __atomic_store_n(&e->apSeg[iSlot], NULL, __ATOMIC_RELAXED);
}

/* Unmaps and closes every segment: listed, retired, or an abandoned
** compaction's output. */
void hkvLogCloseAll(HkvEngine *e) {
  if (!e->apSeg) return;
  for (uint32_t i = 0; i < HKV_MAX_SEGSLOT; i++) {
    if (e->apSeg[i]) hkvFreeSegment(e, i);
  }
  e->nSeg = 0;
  e->nRetired = 0;
}

/* ---- the log order, as recovery and catch-up leave it ---- */

int hkvLogDropAfter(HkvEngine *e, uint32_t nKeep, int bUnlink) {
  int rc = 0;
  while (e->nSeg > nKeep) {
    uint32_t iSlot = e->aOrder[--e->nSeg];
    char zName[16];
    hkvFileName(e->apSeg[iSlot]->iFile, HKV_FILE_LOG, zName);
    hkvFreeSegment(e, iSlot);
    int r = bUnlink ? hkvEnv->xUnlink(e->dirFd, zName) : 0;
    if (r && !rc) rc = r;
    if (rc) break;
  }
  return rc;
}

void hkvLogResume(HkvEngine *e, uint32_t iSlot, uint64_t iOff) {
  e->iActive = iSlot;
  e->iBufOff = iOff;
  e->nBuf = 0;
}

void hkvLogUseFileId(HkvEngine *e, uint32_t iFile) {
  if (iFile >= e->iNextFile) e->iNextFile = iFile + 1;
  hkvShareUsedFileId(&e->sh, iFile);
}

void hkvLogSetRetiredMark(HkvEngine *e, uint32_t iMaxRetired) {
  e->iMaxRetired = iMaxRetired;
}

/* ---- retiring segments ----
** A segment that leaves the log order (compaction's inputs; every segment
** when another process switched the file set) stays mapped until no
** reader can hold a pointer into it: it is retired at an epoch, and the
** engine, which knows the epochs its handles and iterators began at, has
** hkvLogReap free those older than all of them. */

uint64_t hkvLogRetireAll(HkvEngine *e) {
  uint64_t iRetire = atomic_load(&e->iEpoch) + 1;
  for (uint32_t i = 0; i < HKV_MAX_SEGSLOT; i++) {
    HkvSeg *sg = e->apSeg[i];
    if (!sg || sg->iRetire) continue;
    sg->iRetire = iRetire;
    if (sg->fd >= 0) hkvEnv->xClose(sg->fd);
    sg->fd = -1;
    e->aRetired[e->nRetired++] = i;
  }
  e->nSeg = 0;
  return iRetire;
}

void hkvLogPublishEpoch(HkvEngine *e, uint64_t iEpoch) {
  atomic_store(&e->iEpoch, iEpoch);
}

void hkvLogSwitch(HkvEngine *e, const uint32_t *aIn, uint32_t nIn,
                  const uint32_t *aOut, uint32_t nOut) {
  /* The log order becomes: outputs, then what was not an input. */
  memmove(e->aOrder + nOut, e->aOrder + nIn,
          (e->nSeg - nIn) * sizeof(uint32_t));
  for (uint32_t k = 0; k < nOut; k++) e->aOrder[k] = aOut[k];
  e->nSeg = e->nSeg - nIn + nOut;
  e->iActive = e->aOrder[e->nSeg - 1];
  for (uint32_t i = 0; i < nIn; i++) {
    uint32_t iSlot = aIn[i];
    HkvSeg *s = e->apSeg[iSlot];
    char zName[16];
    hkvSegName(s->iFile, s->bHkc, zName);
    hkvEnv->xUnlink(e->dirFd, zName);
    hkvFileName(s->iFile, HKV_FILE_HINT, zName); /* of either kind */
    hkvEnv->xUnlink(e->dirFd, zName);
    hkvEnv->xClose(s->fd);
    s->fd = -1;
    hkvTestCrashPoint("compact-unlink");
    s->iRetire = atomic_fetch_add(&e->iEpoch, 1) + 1;
    e->aRetired[e->nRetired++] = iSlot;
  }
}

void hkvLogReap(HkvEngine *e, uint64_t iMinEpoch) {
  uint32_t j = 0;
  for (uint32_t i = 0; i < e->nRetired; i++) {
    uint32_t iSlot = e->aRetired[i];
    if (e->apSeg[iSlot]->iRetire <= iMinEpoch) {
      hkvFreeSegment(e, iSlot);
    } else {
      e->aRetired[j++] = iSlot;
    }
  }
  e->nRetired = j;
}

int hkvSyncDir(HkvEngine *e, char **pzErr) {
  int r = hkvEnv->xSync(e->dirFd);
  if (r) {
    e->bFailed = 1;
    return hkvSetErr(
        pzErr, HKV_IOERR,
        hkvMprintf("%s: fsync of directory failed: %s", e->zDir, strerror(-r)));
  }
  return HKV_OK;
}

/* Creates segment iFile, mapped for at least nMin bytes, as the active one. */
int hkvLogCreateSegment(HkvEngine *e, uint32_t iFile, uint64_t nMin,
                        char **pzErr) {
  uint8_t aHdr[HKV_SEG_HDR];
  char zName[16];
  int fd;
  /* Ids come from the shared counter; an id taken anyway (a writer of
  ** another process that died before publishing it) is skipped. */
  iFile = hkvShareNextFileId(&e->sh, iFile);
  for (int nTry = 0;; nTry++, iFile++) {
    hkvFileName(iFile, HKV_FILE_LOG, zName);
    fd = hkvEnv->xOpen(e->dirFd, zName, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd != -EEXIST || nTry == 1000) break;
  }
  hkvLogUseFileId(e, iFile);
  char *zPath = hkvMprintf("%s/%s", e->zDir, zName);
  if (!zPath) {
    if (fd >= 0) {
      hkvEnv->xClose(fd);
      hkvEnv->xUnlink(e->dirFd, zName);
    }
    return HKV_NOMEM;
  }
  if (fd < 0) {
    int rc =
        hkvSetErr(pzErr, HKV_IOERR,
                  hkvMprintf("%s: cannot create: %s", zPath, strerror(-fd)));
    hkvFree(zPath);
    return rc;
  }
  uint64_t nMap = e->szSegment > nMin ? e->szSegment : nMin;
  hkvEncodeSegHeader(aHdr, iFile, newestLogId(e), (uint32_t)nMap);
  long w = hkvEnv->xWrite(fd, aHdr, HKV_SEG_HDR, 0);
  int rS = (w == HKV_SEG_HDR && e->iSyncWriter == HKV_SYNC_FULL)
               ? hkvEnv->xSync(fd)
               : 0;
  if (w != HKV_SEG_HDR || rS) {
    hkvEnv->xClose(fd);
    hkvEnv->xUnlink(e->dirFd, zName);
    e->bFailed = 1;
    int rc = hkvSetErr(pzErr,
                       hkvIoCode(w < 0 ? (int)-w
                                 : rS  ? -rS
                                       : ENOSPC),
                       hkvMprintf("%s: cannot write segment header: %s", zPath,
                                  w < 0 ? strerror((int)-w)
                                  : rS  ? strerror(-rS)
                                        : "short write"));
    hkvFree(zPath);
    return rc;
  }
  uint32_t iSlot;
  int rc =
      hkvAddSegment(e, fd, iFile, iFile, 0, HKV_SEG_HDR, nMap, &iSlot, pzErr);
  if (rc) {
    hkvEnv->xUnlink(e->dirFd, zName);
    hkvFree(zPath);
    return rc;
  }
  hkvFree(zPath);
  if (e->iSyncWriter == HKV_SYNC_FULL) {
    rc = hkvSyncDir(e, pzErr);
    if (rc) return rc;
  }
  e->iActive = iSlot;
  e->iBufOff = HKV_SEG_HDR;
  e->nBuf = 0;
  e->iNextFile = iFile + 1;
  return HKV_OK;
}

/* The size to map log segment fd (nFile bytes) at: the capacity its header
** names, else (older files) this engine's segment size; never less than
** the file. */
uint64_t hkvSegCapacity(HkvEngine *e, int fd, uint64_t nFile) {
  uint64_t nCap = 0;
  if (nFile >= HKV_SEG_HDR) {
    const uint8_t *a = hkvEnv->xMmap(fd, HKV_SEG_HDR);
    if (a) {
      if (memcmp(a, aMagic, 8) == 0 &&
          hkvGet32(a + 28) == hkvCrc32c(0, a, 28)) {
        nCap = hkvGet32(a + 24);
      }
      hkvEnv->xMunmap((void *)a, HKV_SEG_HDR);
    }
  }
  if (nCap == 0) nCap = e->szSegment;
  return nCap > nFile ? nCap : nFile;
}

/* ---- appending ---- */

/* Cuts the active segment back to iOff after a failed write, and marks the
** engine failed: the caller no longer knows what the file holds. */
static int writeFailed(HkvEngine *e, uint64_t iOff, long r, char **pzErr) {
  HkvSeg *s = e->apSeg[e->iActive];
  hkvEnv->xTruncate(s->fd, iOff);
  e->bFailed = 1;
  char *zPath = hkvLogSegPath(e, s);
  int rc =
      hkvSetErr(pzErr, hkvIoCode(r < 0 ? (int)-r : 0),
                hkvMprintf("%s: write at offset %llu failed: %s",
                           zPath ? zPath : "segment", (unsigned long long)iOff,
                           r < 0 ? strerror((int)-r) : "short write"));
  hkvFree(zPath);
  return rc;
}

static int writeAll(HkvEngine *e, const uint8_t *p, uint64_t n, uint64_t iOff,
                    uint64_t iCut, char **pzErr) {
  int r = hkvWriteAll(e->apSeg[e->iActive]->fd, p, n, iOff);
  return r ? writeFailed(e, iCut, r, pzErr) : HKV_OK;
}

/* Writes the buffer to the active segment. On failure the file is cut back
** to where the buffer starts and the engine is failed, but the buffered
** records stay readable (hkvLogBytes with bOwn): the writer's rollback finds
** their index slots through them, and must never read their offsets in the
** file, which hold nothing. hkvLogDiscard drops them after the rollback. */
int hkvLogFlush(HkvEngine *e, char **pzErr) {
  if (e->nBuf == 0) return HKV_OK;
  if (e->bFailed) return HKV_FAILED;
  int rc = writeAll(e, e->aBuf, e->nBuf, e->iBufOff, e->iBufOff, pzErr);
  if (rc) return rc;
  e->iBufOff += e->nBuf;
  e->nBuf = 0;
  e->apSeg[e->iActive]->nFile = e->iBufOff;
  return HKV_OK;
}

/* Drops what a failed flush left in the buffer: once the writer has undone
** its transaction, nothing names those records any more. */
void hkvLogDiscard(HkvEngine *e) {
  if (e->bFailed) e->nBuf = 0;
}

int hkvLogSync(HkvEngine *e, char **pzErr) {
  HkvSeg *s = e->apSeg[e->iActive];
  int r = hkvEnv->xSync(s->fd);
  if (r) {
    e->bFailed = 1;
    char *zPath = hkvLogSegPath(e, s);
    int rc = hkvSetErr(pzErr, hkvIoCode(-r),
                       hkvMprintf("%s: fsync failed: %s",
                                  zPath ? zPath : "segment", strerror(-r)));
    hkvFree(zPath);
    return rc;
  }
  return HKV_OK;
}

/* Seals the active segment and starts a new one with room for nRec. */
int hkvLogRotate(HkvEngine *e, uint64_t nRec, char **pzErr) {
  int rc = hkvLogFlush(e, pzErr);
  if (rc) return rc;
  if (e->iSyncWriter != HKV_SYNC_OFF) {
    rc = hkvLogSync(e, pzErr);
    if (rc) return rc;
  }
  uint32_t iSealed = e->apSeg[e->iActive]->iFile;
  rc = hkvLogCreateSegment(e, e->iNextFile, HKV_SEG_HDR + nRec, pzErr);
  if (rc == HKV_OK && e->nHintQ < (int)(sizeof(e->aHintQ) / 4)) {
    e->aHintQ[e->nHintQ++] = iSealed; /* its hint is written in steps */
  }
  return rc;
}

int hkvLogNextSealed(HkvEngine *e, uint32_t *piFile) {
  if (e->nHintQ == 0) return 0;
  *piFile = e->aHintQ[0];
  memmove(e->aHintQ, e->aHintQ + 1, (size_t)--e->nHintQ * 4);
  return 1;
}

void hkvLogForgetSealed(HkvEngine *e) { e->nHintQ = 0; }

/*
** Appends one record and returns its location. iExpire (a PUT's expiry,
** Unix ms; 0: none) sets EXPIRES. The record may stay in the buffer until
** hkvLogFlush. On failure nothing of it is in the log.
*/
int hkvLogAppend(HkvEngine *e, int kind, int flags, uint64_t iTxn,
                 const void *pKey, uint32_t nKey, const void *pVal,
                 uint32_t nVal, int64_t iExpire, HkvLoc *pLoc, char **pzErr) {
  int rc;
  if (e->bFailed) return HKV_FAILED;
  if (iExpire) flags |= HKV_FLAG_EXPIRES;
  uint32_t nHdr = HKV_REC_HDR + (iExpire ? HKV_REC_EXP : 0);
  uint64_t nRec = (uint64_t)nHdr + nKey + nVal;
  uint64_t iEnd = e->iBufOff + e->nBuf;
  HkvSeg *s = e->apSeg[e->iActive];
  if ((iEnd > HKV_SEG_HDR && iEnd + nRec > e->szSegment) ||
      iEnd + nRec > s->nMap) {
    rc = hkvLogRotate(e, nRec, pzErr);
    if (rc) return rc;
    iEnd = e->iBufOff + e->nBuf;
  }
  if (!e->aBuf) {
    e->aBuf = hkvMalloc(HKV_BUF_SIZE);
    if (!e->aBuf) return HKV_NOMEM;
    e->nBufAlloc = HKV_BUF_SIZE;
  }

  uint8_t aHdr[HKV_REC_HDR + HKV_REC_EXP];
  aHdr[4] = (uint8_t)kind;
  aHdr[5] = (uint8_t)flags;
  hkvPut16(aHdr + 6, (uint16_t)nKey);
  hkvPut32(aHdr + 8, nVal);
  hkvPut64(aHdr + 12, iTxn);
  /* Constant lengths in each branch: the common record (no expiry) keeps
  ** the inlined header checksum and copy it had before expiry existed. */
  uint32_t crc;
  if (iExpire) {
    hkvPut64(aHdr + HKV_REC_HDR, (uint64_t)iExpire);
    crc = hkvCrc32c(0, aHdr + 4, HKV_REC_HDR + HKV_REC_EXP - 4);
  } else {
    crc = hkvCrc32c(0, aHdr + 4, HKV_REC_HDR - 4);
  }
  crc = hkvCrc32c(crc, pKey, nKey);
  crc = hkvCrc32c(crc, pVal, nVal);
  hkvPut32(aHdr, crc);

  if (nRec > e->nBufAlloc - e->nBuf) {
    rc = hkvLogFlush(e, pzErr);
    if (rc) return rc;
  }
  if (nRec <= e->nBufAlloc - e->nBuf) {
    uint8_t *p = e->aBuf + e->nBuf;
    if (iExpire) {
      memcpy(p, aHdr, HKV_REC_HDR + HKV_REC_EXP);
    } else {
      memcpy(p, aHdr, HKV_REC_HDR);
    }
    if (nKey) memcpy(p + nHdr, pKey, nKey);
    if (nVal) memcpy(p + nHdr + nKey, pVal, nVal);
    e->nBuf += (size_t)nRec;
  } else {
    /* Larger than the buffer: straight to the file, behind the flush. */
    uint64_t iOff = e->iBufOff;
    memcpy(e->aBuf, aHdr, nHdr);
    memcpy(e->aBuf + nHdr, pKey, nKey);
    rc = writeAll(e, e->aBuf, nHdr + nKey, iOff, iOff, pzErr);
    if (!rc) {
      rc = writeAll(e, pVal, nVal, iOff + nHdr + nKey, iOff, pzErr);
    }
    if (rc) return rc;
    e->iBufOff += nRec;
    s = e->apSeg[e->iActive];
    s->nFile = e->iBufOff;
  }
  *pLoc = HKV_LOC(e->iActive, iEnd);
  return HKV_OK;
}

/* ---- the store directory ---- */

static int cmpU32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Ids of the files named "%08x<zExt>" in the store directory, sorted. */
int hkvLogListFiles(HkvEngine *e, const char *zExt, uint32_t **paId,
                    uint32_t *pn, char **pzErr) {
  int fd = dup(e->dirFd);
  DIR *pDir = fd >= 0 ? fdopendir(fd) : NULL;
  if (!pDir) {
    if (fd >= 0) close(fd);
    errno = errno ? errno : EBADF;
    return hkvSetErr(
        pzErr, HKV_CANTOPEN,
        hkvMprintf("%s: cannot list: %s", e->zDir, strerror(errno)));
  }
  rewinddir(pDir); /* the dup shares dirFd's offset */
  uint32_t *a = 0, n = 0, nAlloc = 0;
  struct dirent *pEnt;
  int rc = HKV_OK;
  while ((pEnt = readdir(pDir)) != 0) {
    const char *z = pEnt->d_name;
    unsigned int iId;
    char zTail[8];
    if (strlen(z) != 12 || sscanf(z, "%8x%7s", &iId, zTail) != 2 ||
        strcmp(zTail, zExt) != 0) {
      continue;
    }
    if (n == nAlloc) {
      uint32_t *aNew = hkvRealloc(a, (nAlloc ? nAlloc * 2 : 16) * 4);
      if (!aNew) {
        rc = HKV_NOMEM;
        break;
      }
      a = aNew;
      nAlloc = nAlloc ? nAlloc * 2 : 16;
    }
    a[n++] = iId;
  }
  closedir(pDir);
  if (rc == HKV_OK && n > HKV_MAX_SEGSLOT) {
    rc = hkvSetErr(pzErr, HKV_TOOBIG, hkvMprintf("too many segment files"));
  }
  if (rc) {
    hkvFree(a);
    return rc;
  }
  if (n) qsort(a, n, sizeof(uint32_t), cmpU32);
  *paId = a;
  *pn = n;
  return HKV_OK;
}

/* Removes every file of the store (the engine is being closed). */
int hkvLogRemoveAll(HkvEngine *e, char **pzErr) {
  static const char *azExt[] = {".hkd", ".hkc", ".hkh"};
  int rc = HKV_OK;
  for (int x = 0; x < 3 && rc == HKV_OK; x++) {
    uint32_t *aId = 0, nId = 0;
    rc = hkvLogListFiles(e, azExt[x], &aId, &nId, pzErr);
    for (uint32_t i = 0; rc == HKV_OK && i < nId; i++) {
      char zName[16];
      snprintf(zName, sizeof(zName), "%08x%s", aId[i], azExt[x]);
      int r = hkvEnv->xUnlink(e->dirFd, zName);
      if (r && r != -ENOENT) {
        rc = hkvSetErr(pzErr, HKV_IOERR,
                       hkvMprintf("%s/%s: cannot remove: %s", e->zDir, zName,
                                  strerror(-r)));
      }
    }
    hkvFree(aId);
  }
  if (rc == HKV_OK) {
    hkvEnv->xUnlink(e->dirFd, HKV_MANIFEST);
    hkvEnv->xUnlink(e->dirFd, HKV_MANIFEST_TMP);
  }
  return rc;
}
