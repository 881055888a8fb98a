/*
** log.c: segment files, the record format, appending and recovery.
**
** A store is a directory. Its log is a sequence of segment files named
** "%08x.hkd" by sequence number; the highest is the active one, the others
** are sealed and never written again. All integers are little-endian.
**
** Segment header (32 bytes)
**   0   8  magic "hkvlog\r\n"
**   8   4  format version (2; 1 in files of 0.1.0, which read as 2 with
**          a predecessor of 0)
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
**   5   1  flags: 0x01 SELFCOMMIT (the record is a whole transaction).
**          Bits this version does not know make the record unreadable:
**          0x02 is reserved for an 8-byte expiry time after the header
**          (per-key TTL), so adding it will not break older readers silently.
**   6   2  key length (PUT and DEL: 1..65535; others 0)
**   8   4  value length (PUT: 0..1e9; ROLLBACK_TO: 8; others 0)
**   12  8  transaction id
**   20  .  key bytes, then value bytes
** A ROLLBACK_TO record's value is the log position (sequence << 32 | offset)
** of the savepoint: records of its transaction at or after it are void.
**
** Validity and recovery
**   A record is valid when its kind and flags are known, its lengths fit the
**   file and its CRC matches. A transaction's records are contiguous from its
**   first record to its COMMIT or ABORT (one writer at a time). At open the
**   log is replayed in order; a transaction takes effect at its COMMIT unless
**   the record right after is an ABORT of the same id (a commit revoked after
**   it was made durable). Records of transactions that never committed are
**   ignored.
**   In the newest segment, an invalid record (incomplete, or failing any
**   check) after which no valid record starts at any byte offset is a torn
**   tail: the log is cut back to the end of the last COMMIT, ABORT or
**   SELFCOMMIT record, and the number of bytes cut and the offset are
**   reported (stats and the open's message). An invalid record with a valid
**   one somewhere after it, or anything invalid in a sealed segment, is
**   HKV_CORRUPT naming the file and offset: never a silent loss.
**   The store knows its own file set: each log segment names its
**   predecessor, which must be there or be accounted for by the manifest
**   (compacted away); and a log segment with a hint (".hkh", written only
**   once it is sealed, after a commit in its successor) is never the
**   newest. A missing segment or MANIFEST fails the open with HKV_CORRUPT
**   naming what is missing, and nothing is cleaned up.
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
#define HKV_FORMAT_VERSION 2
#define HKV_BUF_SIZE (1u << 20)

/* The file name of segment iFile inside the store directory: ".hkd" for a
** log segment, ".hkc" for a compaction output. */
void hkvSegName(uint32_t iFile, int bHkc, char *zBuf) {
  snprintf(zBuf, 16, "%08x.%s", iFile, bHkc ? "hkc" : "hkd");
}

static void segName(uint32_t iFile, char *zBuf) { hkvSegName(iFile, 0, zBuf); }

/* The path of a segment, for messages. */
char *hkvLogSegPath(HkvEngine *e, const HkvSeg *s) {
  char zName[16];
  hkvSegName(s->iFile, s->bHkc, zName);
  return hkvMprintf("%s/%s", e->zDir, zName);
}

void hkvEncodeSegHeader(uint8_t *a, uint32_t iSeq, uint32_t iPred,
                        uint32_t nCap) {
  memset(a, 0, HKV_SEG_HDR);
  memcpy(a, aMagic, 8);
  hkvPut32(a + 8, HKV_FORMAT_VERSION);
  hkvPut32(a + 16, iSeq);
  hkvPut32(a + 20, iPred);
  hkvPut32(a + 24, nCap);
  hkvPut32(a + 28, hkvCrc32c(0, a, 28));
}

/* 0 if the header is valid and names file iSeq; else a message. */
const char *hkvCheckSegHeader(const uint8_t *a, uint64_t n, uint32_t iSeq) {
  if (n < HKV_SEG_HDR) return "segment header incomplete";
  if (memcmp(a, aMagic, 8) != 0) return "bad segment magic";
  if (hkvGet32(a + 28) != hkvCrc32c(0, a, 28)) {
    return "segment header checksum mismatch";
  }
  uint32_t iVersion = hkvGet32(a + 8);
  if (iVersion != 1 && iVersion != HKV_FORMAT_VERSION) {
    return "unsupported format version";
  }
  if (hkvGet32(a + 12) != 0) return "unsupported segment flags";
  if (hkvGet32(a + 16) != iSeq || (iVersion == 1 && hkvGet32(a + 20) != 0)) {
    return "segment sequence does not match name";
  }
  return 0;
}

/* The predecessor a valid header names (0: none, or a version 1 file). */
static uint32_t segPred(const uint8_t *a) { return hkvGet32(a + 20); }

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
  uint64_t nRec = (uint64_t)HKV_REC_HDR + pRec->nKey + pRec->nVal;
  pRec->nRec = (uint32_t)(nRec > UINT32_MAX ? UINT32_MAX : nRec);
  if (pRec->flags & ~HKV_FLAG_KNOWN) return 2;
  switch (pRec->kind) {
    case HKV_KIND_PUT:
      if (pRec->nKey == 0 || pRec->nVal > HKV_MAX_VALUE) return 2;
      break;
    case HKV_KIND_DEL:
      if (pRec->nKey == 0 || pRec->nVal != 0) return 2;
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
  pRec->pKey = p + HKV_REC_HDR;
  pRec->pVal = pRec->pKey + pRec->nKey;
  return 0;
}

int hkvVerifyRecord(const uint8_t *p, const HkvRec *pRec) {
  return hkvGet32(p) == hkvCrc32c(0, p + 4, pRec->nRec - 4);
}

uint64_t hkvLogOrder(HkvEngine *e, HkvLoc loc) {
  return ((uint64_t)e->apSeg[HKV_LOC_SLOT(loc)]->iSeq << 32) | HKV_LOC_OFF(loc);
}

uint64_t hkvLogEnd(HkvEngine *e) {
  return ((uint64_t)e->apSeg[e->iActive]->iSeq << 32) | (e->iBufOff + e->nBuf);
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
int hkvAddSegment(HkvEngine *e, int fd, uint32_t iFile, uint32_t iSeq,
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
  s->iSeq = iSeq;
  s->iFile = iFile;
  s->bHkc = (flags & HKV_SEG_HKC) != 0;
  s->fd = fd;
  s->nMap = nMap;
  s->nFile = nFile;
  /* Release: a reader probing without the lock (engine.c) loads the slot
  ** with acquire and then reads the fields above. */
  __atomic_store_n(&e->apSeg[iSlot], s, __ATOMIC_RELEASE);
  if (!(flags & HKV_SEG_UNLISTED)) e->aOrder[e->nSeg++] = iSlot;
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
    snprintf(zName, sizeof(zName), "%08x.hkh", s->iFile); /* any kind */
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

/* Creates segment iSeq, mapped for at least nMin bytes, as the active one. */
static int createSegment(HkvEngine *e, uint32_t iSeq, uint64_t nMin,
                         char **pzErr) {
  uint8_t aHdr[HKV_SEG_HDR];
  char zName[16];
  int fd;
  /* Ids come from the shared counter; an id taken anyway (a writer of
  ** another process that died before publishing it) is skipped. */
  iSeq = hkvShareNextFileId(&e->sh, iSeq);
  for (int nTry = 0;; nTry++, iSeq++) {
    segName(iSeq, zName);
    fd = hkvEnv->xOpen(e->dirFd, zName, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd != -EEXIST || nTry == 1000) break;
  }
  if (iSeq >= e->iNextSeq) e->iNextSeq = iSeq + 1;
  hkvShareUsedFileId(&e->sh, iSeq);
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
  hkvEncodeSegHeader(aHdr, iSeq, newestLogId(e), (uint32_t)nMap);
  long w = hkvEnv->xWrite(fd, aHdr, HKV_SEG_HDR, 0);
  int rS = (w == HKV_SEG_HDR && e->iSyncWriter == HKV_SYNC_FULL)
               ? hkvEnv->xSync(fd)
               : 0;
  if (w != HKV_SEG_HDR || rS) {
    hkvEnv->xClose(fd);
    hkvEnv->xUnlink(e->dirFd, zName);
    e->bFailed = 1;
    int rc = hkvSetErr(pzErr, HKV_IOERR,
                       hkvMprintf("%s: cannot write segment header: %s", zPath,
                                  w < 0 ? strerror((int)-w)
                                  : rS  ? strerror(-rS)
                                        : "short write"));
    hkvFree(zPath);
    return rc;
  }
  uint32_t iSlot;
  int rc =
      hkvAddSegment(e, fd, iSeq, iSeq, 0, HKV_SEG_HDR, nMap, &iSlot, pzErr);
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
  e->iNextSeq = iSeq + 1;
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
  HkvSeg *s = e->apSeg[e->iActive];
  while (n > 0) {
    size_t nChunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
    long w = hkvEnv->xWrite(s->fd, p, nChunk, iOff);
    if (w <= 0) return writeFailed(e, iCut, w, pzErr);
    p += w;
    n -= (uint64_t)w;
    iOff += (uint64_t)w;
  }
  return HKV_OK;
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
  rc = createSegment(e, e->iNextSeq, HKV_SEG_HDR + nRec, pzErr);
  if (rc == HKV_OK && e->nHintQ < (int)(sizeof(e->aHintQ) / 4)) {
    e->aHintQ[e->nHintQ++] = iSealed; /* its hint is written in steps */
  }
  return rc;
}

/*
** Appends one record and returns its location. The record may stay in the
** buffer until hkvLogFlush. On failure nothing of it is in the log.
*/
int hkvLogAppend(HkvEngine *e, int kind, int flags, uint64_t iTxn,
                 const void *pKey, uint32_t nKey, const void *pVal,
                 uint32_t nVal, HkvLoc *pLoc, char **pzErr) {
  int rc;
  if (e->bFailed) return HKV_FAILED;
  uint64_t nRec = (uint64_t)HKV_REC_HDR + nKey + nVal;
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

  uint8_t aHdr[HKV_REC_HDR];
  aHdr[4] = (uint8_t)kind;
  aHdr[5] = (uint8_t)flags;
  hkvPut16(aHdr + 6, (uint16_t)nKey);
  hkvPut32(aHdr + 8, nVal);
  hkvPut64(aHdr + 12, iTxn);
  uint32_t crc = hkvCrc32c(0, aHdr + 4, HKV_REC_HDR - 4);
  crc = hkvCrc32c(crc, pKey, nKey);
  crc = hkvCrc32c(crc, pVal, nVal);
  hkvPut32(aHdr, crc);

  if (nRec > e->nBufAlloc - e->nBuf) {
    rc = hkvLogFlush(e, pzErr);
    if (rc) return rc;
  }
  if (nRec <= e->nBufAlloc - e->nBuf) {
    uint8_t *p = e->aBuf + e->nBuf;
    memcpy(p, aHdr, HKV_REC_HDR);
    if (nKey) memcpy(p + HKV_REC_HDR, pKey, nKey);
    if (nVal) memcpy(p + HKV_REC_HDR + nKey, pVal, nVal);
    e->nBuf += (size_t)nRec;
  } else {
    /* Larger than the buffer: straight to the file, behind the flush. */
    uint64_t iOff = e->iBufOff;
    memcpy(e->aBuf, aHdr, HKV_REC_HDR);
    memcpy(e->aBuf + HKV_REC_HDR, pKey, nKey);
    rc = writeAll(e, e->aBuf, HKV_REC_HDR + nKey, iOff, iOff, pzErr);
    if (!rc) {
      rc = writeAll(e, pVal, nVal, iOff + HKV_REC_HDR + nKey, iOff, pzErr);
    }
    if (rc) return rc;
    e->iBufOff += nRec;
    s = e->apSeg[e->iActive];
    s->nFile = e->iBufOff;
  }
  *pLoc = HKV_LOC(e->iActive, iEnd);
  return HKV_OK;
}

/* ---- hints of sealed segments ----
**
** When a segment is sealed, its hint "%08x.hkh" is written a step at a time
** after later commits (hkvLogHintStep), so no write waits for it. It lists
** every record without its value, enough for recovery to replay the segment
** without reading it:
**   0   8  magic "hkvloghn"
**   8   4  file id of the segment
**   12  .. per record: varint(offset - previous offset; the first from 32),
**          kind, flags, varint(key length), varint(value length),
**          varint(transaction id), key bytes, and for ROLLBACK_TO its 8
**          value bytes
**   ..  4  number of records
**   ..  4  CRC-32C of everything before
** The entries must cover the segment exactly. Hints are a cache: one that
** is missing, torn or inconsistent is ignored and the segment is read.
** Records replayed from a hint are not checksummed at open; every read of
** a value still is.
*/

#define HKV_HINTW_BUF (64u << 10)

static uint64_t getVarint(const uint8_t *p, const uint8_t *pEnd,
                          const uint8_t **ppNext);

struct HkvHintW {
  uint32_t iFile; /* segment being hinted */
  uint32_t iSlot;
  int fd;          /* its hint file */
  uint64_t iOff;   /* next record to list */
  uint64_t iLast;  /* offset of the previous one */
  uint64_t iWrite; /* bytes written to the hint file */
  uint32_t nEntry;
  uint32_t crc; /* of everything written or buffered */
  int bBad;     /* give up */
  size_t nBuf;
  uint8_t aBuf[HKV_HINTW_BUF];
};

static void hintwPut(HkvHintW *w, const void *p, size_t n) {
  if (w->bBad) return;
  if (w->nBuf + n > HKV_HINTW_BUF) {
    if (hkvEnv->xWrite(w->fd, w->aBuf, w->nBuf, w->iWrite) != (long)w->nBuf) {
      w->bBad = 1;
      return;
    }
    w->iWrite += w->nBuf;
    w->nBuf = 0;
  }
  memcpy(w->aBuf + w->nBuf, p, n);
  w->nBuf += n;
  w->crc = hkvCrc32c(w->crc, p, n);
}

static void hintwVarint(HkvHintW *w, uint64_t v) {
  uint8_t a[10];
  size_t n = 0;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    a[n++] = b | (v ? 0x80 : 0);
  } while (v);
  hintwPut(w, a, n);
}

static void hintwEnd(HkvEngine *e, int bKeep) {
  HkvHintW *w = e->pHintW;
  if (!w) return;
  if (w->fd >= 0) hkvEnv->xClose(w->fd);
  if (!bKeep) {
    char zName[16];
    snprintf(zName, sizeof(zName), "%08x.hkh", w->iFile);
    hkvEnv->xUnlink(e->dirFd, zName);
  }
  hkvFree(w);
  e->pHintW = 0;
}

void hkvLogHintFree(HkvEngine *e) { hintwEnd(e, 0); }

/* Lists about nBudget bytes of the sealed segment being hinted; finishes
** its hint file, or starts the next one. Never fails: a hint that cannot
** be written is dropped. Returns DONE when nothing is left to do. */
int hkvLogHintStep(HkvEngine *e, uint64_t nBudget) {
  HkvHintW *w = e->pHintW;
  if (!w) {
    if (e->nHintQ == 0) return HKV_DONE;
    uint32_t iFile = e->aHintQ[0];
    memmove(e->aHintQ, e->aHintQ + 1, (size_t)--e->nHintQ * 4);
    uint32_t iSlot = HKV_MAX_SEGSLOT;
    for (uint32_t i = 0; i + 1 < e->nSeg; i++) {
      HkvSeg *s = e->apSeg[e->aOrder[i]];
      if (!s->bHkc && s->iFile == iFile) iSlot = e->aOrder[i];
    }
    if (iSlot == HKV_MAX_SEGSLOT) return HKV_OK; /* compacted away */
    w = hkvMalloc(sizeof(*w));
    if (!w) return HKV_OK;
    memset(w, 0, offsetof(HkvHintW, aBuf));
    char zName[16];
    snprintf(zName, sizeof(zName), "%08x.hkh", iFile);
    w->fd = hkvEnv->xOpen(e->dirFd, zName, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    w->iFile = iFile;
    w->iSlot = iSlot;
    w->iOff = HKV_SEG_HDR;
    w->iLast = HKV_SEG_HDR;
    e->pHintW = w;
    if (w->fd < 0) {
      hintwEnd(e, 0);
      return HKV_OK;
    }
    uint8_t aHdr[12];
    memcpy(aHdr, "hkvloghn", 8);
    hkvPut32(aHdr + 8, iFile);
    hintwPut(w, aHdr, sizeof(aHdr));
  }
  HkvSeg *s = e->apSeg[w->iSlot];
  if (!s || s->iFile != w->iFile || s->bHkc || s->iRetire) {
    hintwEnd(e, 0);
    return HKV_OK;
  }
  while (!w->bBad && w->iOff < s->nFile && nBudget > 0) {
    HkvRec rec;
    const uint8_t *p = s->pMap + w->iOff;
    if (hkvDecodeRecord(p, s->nFile - w->iOff, &rec) ||
        !hkvVerifyRecord(p, &rec)) {
      w->bBad = 1;
      break;
    }
    hintwVarint(w, w->iOff - w->iLast);
    uint8_t aKF[2] = {rec.kind, rec.flags};
    hintwPut(w, aKF, 2);
    hintwVarint(w, rec.nKey);
    hintwVarint(w, rec.nVal);
    hintwVarint(w, rec.iTxn);
    if (rec.nKey) hintwPut(w, rec.pKey, rec.nKey);
    if (rec.kind == HKV_KIND_ROLLBACK_TO) hintwPut(w, rec.pVal, 8);
    w->nEntry++;
    w->iLast = w->iOff;
    w->iOff += rec.nRec;
    nBudget = nBudget > rec.nRec ? nBudget - rec.nRec : 0;
  }
  if (w->bBad) {
    hintwEnd(e, 0);
  } else if (w->iOff >= s->nFile) {
    uint8_t a[4];
    hkvPut32(a, w->nEntry);
    hintwPut(w, a, 4);
    hkvPut32(a, w->crc);
    w->crc = 0;
    size_t n = w->nBuf;
    if (!w->bBad && n + 4 <= HKV_HINTW_BUF) {
      memcpy(w->aBuf + n, a, 4);
      n += 4;
      w->bBad = hkvEnv->xWrite(w->fd, w->aBuf, n, w->iWrite) != (long)n;
    } else {
      w->bBad = 1;
    }
    hintwEnd(e, !w->bBad);
  }
  return HKV_OK;
}

/* One entry of a segment hint, decoded. */
typedef struct HintEntry {
  const uint8_t *p, *pEnd; /* what is left to read */
  uint64_t iOff;           /* offset of the entry's record */
  HkvRec rec;
} HintEntry;

static int hintNext(HintEntry *h, uint64_t nFile) {
  const uint8_t *q;
  uint64_t d = getVarint(h->p, h->pEnd, &q);
  if (!q || h->pEnd - q < 2) return 0;
  h->iOff += d;
  h->rec.kind = q[0];
  h->rec.flags = q[1];
  q += 2;
  uint64_t nKey = getVarint(q, h->pEnd, &q);
  uint64_t nVal = q ? getVarint(q, h->pEnd, &q) : 0;
  uint64_t iTxn = q ? getVarint(q, h->pEnd, &q) : 0;
  if (!q || nKey > HKV_MAX_KEY || nVal > HKV_MAX_VALUE) return 0;
  h->rec.nKey = (uint32_t)nKey;
  h->rec.nVal = (uint32_t)nVal;
  h->rec.iTxn = iTxn;
  h->rec.nRec = (uint32_t)(HKV_REC_HDR + nKey + nVal);
  if ((uint64_t)(h->pEnd - q) < nKey) return 0;
  h->rec.pKey = q;
  q += nKey;
  h->rec.pVal = q;
  if (h->rec.kind == HKV_KIND_ROLLBACK_TO) {
    if (nVal != 8 || nKey != 0 || h->pEnd - q < 8) return 0;
    q += 8;
  }
  if (h->rec.kind < HKV_KIND_PUT || h->rec.kind > HKV_KIND_ROLLBACK_TO)
    return 0;
  if (h->rec.flags & ~HKV_FLAG_KNOWN) return 0;
  if (h->iOff + h->rec.nRec > nFile) return 0;
  h->p = q;
  return 1;
}

/* ---- recovery ---- */

static int cmpU32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Ids of the files named "%08x<zExt>" in the store directory, sorted. */
static int listFiles(HkvEngine *e, const char *zExt, uint32_t **paId,
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

static int hasId(const uint32_t *a, uint32_t n, uint32_t iId) {
  return bsearch(&iId, a, n, sizeof(uint32_t), cmpU32) != NULL;
}

/* Removes every file of the store (the engine is being closed). */
int hkvLogRemoveAll(HkvEngine *e, char **pzErr) {
  static const char *azExt[] = {".hkd", ".hkc", ".hkh"};
  int rc = HKV_OK;
  for (int x = 0; x < 3 && rc == HKV_OK; x++) {
    uint32_t *aId = 0, nId = 0;
    rc = listFiles(e, azExt[x], &aId, &nId, pzErr);
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

/* The replay state: the open transaction's records, and a committed one
** whose COMMIT may still be revoked by the next record. */
typedef struct Replay {
  HkvEngine *e;
  HkvApply xApply;
  void *pCtx;
  HkvLoc *aPend; /* records of the open transaction, log order */
  uint64_t nPend, nPendAlloc;
  uint64_t iPendTxn;
  uint64_t nDefer; /* aPend[0..nDefer) committed, apply unless revoked */
  uint64_t iDeferTxn;
} Replay;

/* Applies aPend[0..n) in batches, prefetching what each will touch. */
static int replayApply(Replay *r, uint64_t n) {
  enum { BATCH = 16 };
  HkvRec aRec[BATCH];
  uint64_t aHash[BATCH];
  for (uint64_t i0 = 0; i0 < n; i0 += BATCH) {
    int nB = n - i0 < BATCH ? (int)(n - i0) : BATCH;
    for (int k = 0; k < nB; k++) {
      /* Checked when first met; a failure here is a bug, not a file. */
      if (hkvLogRead(r->e, r->aPend[i0 + k], 0, &aRec[k], 0)) {
        return HKV_CORRUPT;
      }
      aHash[k] = hkvKeyHash(aRec[k].pKey, aRec[k].nKey);
      aRec[k].hKey = aHash[k];
      hkvEnginePrefetch(r->e, aHash[k], 0);
    }
    for (int k = 0; k < nB; k++) hkvEnginePrefetch(r->e, aHash[k], 1);
    for (int k = 0; k < nB; k++) {
      int rc = r->xApply(r->pCtx, r->aPend[i0 + k], &aRec[k]);
      if (rc) return rc;
    }
  }
  return HKV_OK;
}

static int replayFlushDefer(Replay *r) {
  if (r->nDefer == 0) return HKV_OK;
  int rc = replayApply(r, r->nDefer);
  r->nDefer = 0;
  r->nPend = 0;
  return rc;
}

static int replayPush(Replay *r, HkvLoc loc) {
  if (r->nPend == r->nPendAlloc) {
    uint64_t nNew = r->nPendAlloc ? r->nPendAlloc * 2 : 1024;
    HkvLoc *aNew = hkvRealloc(r->aPend, nNew * sizeof(HkvLoc));
    if (!aNew) return HKV_NOMEM;
    r->aPend = aNew;
    r->nPendAlloc = nNew;
  }
  r->aPend[r->nPend++] = loc;
  return HKV_OK;
}

/* Feeds one valid record; *pbEnd set if it ends a transaction. */
static int replayRecord(Replay *r, HkvLoc loc, const HkvRec *pRec, int *pbEnd) {
  int rc = HKV_OK;
  *pbEnd = 0;
  if (pRec->kind == HKV_KIND_ABORT && r->nDefer && r->iDeferTxn == pRec->iTxn) {
    r->nDefer = 0; /* a revoked commit */
    r->nPend = 0;
    *pbEnd = 1;
    return HKV_OK;
  }
  rc = replayFlushDefer(r);
  if (rc) return rc;
  if (r->nPend && r->iPendTxn != pRec->iTxn) r->nPend = 0; /* never ended */
  switch (pRec->kind) {
    case HKV_KIND_PUT:
    case HKV_KIND_DEL:
      if (pRec->flags & HKV_FLAG_SELFCOMMIT) {
        r->nPend = 0;
        *pbEnd = 1;
        return r->xApply(r->pCtx, loc, pRec);
      }
      r->iPendTxn = pRec->iTxn;
      return replayPush(r, loc);
    case HKV_KIND_COMMIT:
      if (r->nPend) {
        r->nDefer = r->nPend;
        r->iDeferTxn = pRec->iTxn;
      }
      *pbEnd = 1;
      return HKV_OK;
    case HKV_KIND_ABORT:
      r->nPend = 0;
      *pbEnd = 1;
      return HKV_OK;
    case HKV_KIND_ROLLBACK_TO: {
      uint64_t iMark = hkvGet64(pRec->pVal);
      while (r->nPend && hkvLogOrder(r->e, r->aPend[r->nPend - 1]) >= iMark) {
        r->nPend--;
      }
      return HKV_OK;
    }
  }
  return HKV_OK;
}

static int allZero(const uint8_t *p, uint64_t n) {
  for (uint64_t i = 0; i < n; i++) {
    if (p[i]) return 0;
  }
  return 1;
}

/* The offset of the first valid record in a[iFrom+1 .. n), or 0 if none.
** Random bytes pass the kind and flag checks rarely and the CRC almost
** never. */
static uint64_t validRecordAfter(const uint8_t *a, uint64_t n, uint64_t iFrom) {
  for (uint64_t i = iFrom + 1; i + HKV_REC_HDR <= n; i++) {
    HkvRec rec;
    if (hkvDecodeRecord(a + i, n - i, &rec) == 0 &&
        hkvVerifyRecord(a + i, &rec)) {
      return i;
    }
  }
  return 0;
}

#define HKV_SECTOR 512

/*
** 1 if the damage in a[iFrom .. iTo) looks like writes lost in a power
** failure rather than corruption: somewhere in it, the bytes before a
** sector boundary are zero back to the sector's start (or to iFrom), at
** least 64 of them. Unsynced sectors of a file reach the disk in any order,
** and one that did not reads as zeros; decay or a stray write does not zero
** the end of a sector. Used only in the newest segment, where the last
** transaction's unsynced writes live.
*/
static int lostWrites(const uint8_t *a, uint64_t iFrom, uint64_t iTo) {
  for (uint64_t b = (iFrom / HKV_SECTOR + 1) * HKV_SECTOR; b <= iTo;
       b += HKV_SECTOR) {
    uint64_t iStart = b - HKV_SECTOR > iFrom ? b - HKV_SECTOR : iFrom;
    if (b - iStart >= 64 && allZero(a + iStart, b - iStart)) return 1;
  }
  return 0;
}

/* ---- manifest and hints ---- */

/* Reads the MANIFEST, if there is one. On HKV_OK *paPlan lists the
** compacted segments in log order (NULL and 0 without a manifest). */
static int readManifest(HkvEngine *e, HkvPlan **paPlan, uint32_t *pnPlan,
                        uint32_t *piMaxRetired, int *pbFound, char **pzErr) {
  *paPlan = 0;
  *pnPlan = 0;
  *piMaxRetired = 0;
  *pbFound = 0;
  int fd = hkvEnv->xOpen(e->dirFd, HKV_MANIFEST, O_RDONLY, 0);
  if (fd == -ENOENT) return HKV_OK;
  *pbFound = 1;
  uint64_t n = 0;
  if (fd < 0 || hkvEnv->xFileSize(fd, &n)) {
    if (fd >= 0) hkvEnv->xClose(fd);
    return hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s/%s: cannot read", e->zDir, HKV_MANIFEST));
  }
  const uint8_t *a = n >= 28 ? hkvEnv->xMmap(fd, n) : NULL;
  hkvEnv->xClose(fd);
  const char *zBad = 0;
  uint32_t nEntry = 0;
  if (!a) {
    zBad = "too short";
  } else if (memcmp(a, "hkvmanif", 8) != 0) {
    zBad = "bad magic";
  } else if (hkvGet32(a + 8) != 1) {
    zBad = "unsupported version";
  } else {
    nEntry = hkvGet32(a + 12);
    if (nEntry > HKV_MAX_SEGSLOT || n != 28 + 12ull * nEntry) {
      zBad = "bad length";
    } else if (hkvGet32(a + n - 4) != hkvCrc32c(0, a, n - 4)) {
      zBad = "checksum mismatch";
    }
  }
  int rc = HKV_OK;
  if (zBad) {
    rc = hkvSetErr(pzErr, HKV_CORRUPT,
                   hkvMprintf("%s/%s: %s", e->zDir, HKV_MANIFEST, zBad));
  } else {
    HkvPlan *aPlan = hkvMalloc((nEntry ? nEntry : 1) * sizeof(HkvPlan));
    if (!aPlan) {
      rc = HKV_NOMEM;
    } else {
      for (uint32_t k = 0; k < nEntry; k++) {
        const uint8_t *p = a + 24 + 12 * k;
        aPlan[k].iFile = hkvGet32(p);
        aPlan[k].iSeq = hkvGet32(p + 4);
        aPlan[k].bHkc = hkvGet32(p + 8) == 2;
      }
      *paPlan = aPlan;
      *pnPlan = nEntry;
      *piMaxRetired = hkvGet32(a + 16);
    }
  }
  if (a) hkvEnv->xMunmap((void *)a, n);
  return rc;
}

static uint64_t getVarint(const uint8_t *p, const uint8_t *pEnd,
                          const uint8_t **ppNext) {
  uint64_t v = 0;
  for (int sh = 0; p < pEnd && sh < 64; sh += 7) {
    uint8_t b = *p++;
    v |= (uint64_t)(b & 0x7F) << sh;
    if (!(b & 0x80)) {
      *ppNext = p;
      return v;
    }
  }
  *ppNext = 0;
  return 0;
}

/* The number of entries a hint file says it has (0 if unreadable). */
static uint64_t hintCount(HkvEngine *e, uint32_t iFile) {
  char zName[16];
  snprintf(zName, sizeof(zName), "%08x.hkh", iFile);
  int fd = hkvEnv->xOpen(e->dirFd, zName, O_RDONLY, 0);
  if (fd < 0) return 0;
  uint64_t n = 0, nEntry = 0;
  if (hkvEnv->xFileSize(fd, &n) == 0 && n >= 20) {
    const uint8_t *a = hkvEnv->xMmap(fd, 16);
    if (a) {
      if (memcmp(a, "hkvhint\n", 8) == 0) nEntry = hkvGet32(a + 12);
      hkvEnv->xMunmap((void *)a, 16);
    }
  }
  hkvEnv->xClose(fd);
  return nEntry;
}

/* Maps the hint file of segment iFile (at least 20 bytes) read-only, or
** returns NULL. The caller unmaps *pn bytes. */
static const uint8_t *mapHint(HkvEngine *e, uint32_t iFile, uint64_t *pn) {
  char zName[16];
  snprintf(zName, sizeof(zName), "%08x.hkh", iFile);
  int fd = hkvEnv->xOpen(e->dirFd, zName, O_RDONLY, 0);
  if (fd < 0) return NULL;
  const uint8_t *a = NULL;
  if (hkvEnv->xFileSize(fd, pn) == 0 && *pn >= 20) a = hkvEnv->xMmap(fd, *pn);
  hkvEnv->xClose(fd);
  return a;
}

/* Loads the hint file of compacted segment s (slot iSlot) through xHint.
** Returns 1 when it did, 0 when the hint is missing or unusable (the caller
** then reads the segment itself). */
static int loadHint(HkvEngine *e, uint32_t iSlot, HkvHintApply xHint,
                    void *pCtx) {
  HkvSeg *s = e->apSeg[iSlot];
  uint64_t n = 0;
  const uint8_t *a = mapHint(e, s->iFile, &n);
  if (!a) return 0;
  int bOk = memcmp(a, "hkvhint\n", 8) == 0 && hkvGet32(a + 8) == s->iFile &&
            hkvGet32(a + n - 4) == hkvCrc32c(0, a, n - 4);
  uint32_t nEntry = bOk ? hkvGet32(a + 12) : 0;
  /* Check every entry before applying any, so a bad hint changes nothing. */
  const uint8_t *p = a + 16, *pEnd = a + n - 4;
  uint64_t iOff = HKV_SEG_HDR;
  for (uint32_t k = 0; bOk && k < nEntry; k++) {
    const uint8_t *q;
    iOff += getVarint(p, pEnd, &q);
    uint64_t nKey = q ? getVarint(q, pEnd, &p) : 0;
    if (!q || !p || nKey == 0 || nKey > HKV_MAX_KEY ||
        (uint64_t)(pEnd - p) < nKey || iOff + HKV_REC_HDR + nKey > s->nFile) {
      bOk = 0;
      break;
    }
    p += nKey;
  }
  if (bOk && p != pEnd) bOk = 0;
  if (bOk) {
    int rc = HKV_OK;
    p = a + 16;
    iOff = HKV_SEG_HDR;
    /* In batches: hash a batch and prefetch its index slots, then insert,
    ** so the inserts' cache misses overlap. */
    enum { BATCH = 32 };
    uint64_t aHash[BATCH];
    HkvLoc aLoc[BATCH];
    for (uint32_t k = 0; k < nEntry && rc == HKV_OK;) {
      int nB = 0;
      for (; nB < BATCH && k < nEntry; nB++, k++) {
        const uint8_t *q;
        iOff += getVarint(p, pEnd, &q);
        uint64_t nKey = getVarint(q, pEnd, &p);
        aHash[nB] = hkvKeyHash(p, (size_t)nKey);
        aLoc[nB] = HKV_LOC(iSlot, iOff);
        hkvIndexPrefetch(&e->idx, aHash[nB]);
        p += nKey;
      }
      for (int i = 0; i < nB && rc == HKV_OK; i++) {
        rc = xHint(pCtx, aLoc[i], aHash[i]);
      }
    }
    if (rc) bOk = -rc;
  }
  hkvEnv->xMunmap((void *)a, n);
  return bOk;
}

/* Replays sealed segment iSlot from its hint, if it has a usable one:
** returns 1 (and the offset after its last transaction end in *piEnd, 0 if
** none), 0 to read the segment instead, or -rc on an error from replay. */
static int replayFromHint(HkvEngine *e, uint32_t iSlot, Replay *r,
                          uint64_t *piEnd) {
  HkvSeg *s = e->apSeg[iSlot];
  uint64_t n = 0;
  const uint8_t *a = mapHint(e, s->iFile, &n);
  if (!a) return 0;
  int bOk = memcmp(a, "hkvloghn", 8) == 0 && hkvGet32(a + 8) == s->iFile &&
            hkvGet32(a + n - 4) == hkvCrc32c(0, a, n - 4);
  uint32_t nEntry = bOk ? hkvGet32(a + n - 8) : 0;
  HintEntry h = {a + 12, a + n - 8, HKV_SEG_HDR, {0}};
  uint64_t iNext = HKV_SEG_HDR;
  for (uint32_t k = 0; bOk && k < nEntry; k++) {
    if (!hintNext(&h, s->nFile) || h.iOff != iNext) bOk = 0;
    iNext = h.iOff + h.rec.nRec;
  }
  if (bOk && (h.p != h.pEnd || iNext != s->nFile)) bOk = 0;
  int rc = HKV_OK;
  *piEnd = 0;
  if (bOk) {
    HintEntry g = {a + 12, a + n - 8, HKV_SEG_HDR, {0}};
    for (uint32_t k = 0; rc == HKV_OK && k < nEntry; k++) {
      int bEnd;
      hintNext(&g, s->nFile);
      if (g.rec.iTxn >= e->iNextTxn) e->iNextTxn = g.rec.iTxn + 1;
      rc = replayRecord(r, HKV_LOC(iSlot, g.iOff), &g.rec, &bEnd);
      if (bEnd) *piEnd = g.iOff + g.rec.nRec;
    }
  }
  hkvEnv->xMunmap((void *)a, n);
  return rc ? -rc : bOk;
}

/*
** Opens every segment, replays the log (xApply is called for each record of
** each committed transaction, in log order; xHint for each entry of a
** compacted segment's hint file), cuts a torn tail, removes what an
** interrupted compaction left behind, and leaves the newest segment active
** (creating the first one for a new store). On failure the caller closes
** what was opened.
**
** Log order: the segments the MANIFEST lists (compaction outputs), then every
** ".hkd" segment whose id is above the manifest's retired mark, by id. A
** ".hkd" at or below the mark that is not listed, a ".hkc" that is not
** listed and MANIFEST.tmp are leftovers of a compaction and are removed.
*/
int hkvLogRecover(HkvEngine *e, HkvApply xApply, HkvHintApply xHint,
                  int (*xReserve)(void *, uint64_t), void *pCtx,
                  uint64_t iBound, uint64_t iSynced, char **pzErr) {
  const int bBound = iBound != HKV_NO_BOUND;
  const uint32_t iBoundSeq = (uint32_t)(iBound >> 32);
  uint32_t *aHkd = 0, nHkd = 0, *aHkc = 0, nHkc = 0, *aHkh = 0, nHkh = 0;
  HkvPlan *aListed = 0, *aPlan = 0;
  uint32_t nListed = 0, nPlan = 0, iMaxRetired = 0, iMaxId = 0;
  Replay r;
  memset(&r, 0, sizeof(r));
  r.e = e;
  r.xApply = xApply;
  r.pCtx = pCtx;
  uint64_t iCutSeg = 0, iCutOff = 0; /* index in aOrder, offset: last end */
  int bHaveCut = 0;
  int rc = listFiles(e, ".hkd", &aHkd, &nHkd, pzErr);
  if (!rc) rc = listFiles(e, ".hkc", &aHkc, &nHkc, pzErr);
  if (!rc) rc = listFiles(e, ".hkh", &aHkh, &nHkh, pzErr);
  int bManifest = 0;
  if (!rc) {
    rc = readManifest(e, &aListed, &nListed, &iMaxRetired, &bManifest, pzErr);
  }
  if (!rc) {
    aPlan = hkvMalloc((nListed + nHkd + 1) * sizeof(HkvPlan));
    if (!aPlan) rc = HKV_NOMEM;
  }
  for (uint32_t k = 0; rc == HKV_OK && k < nListed; k++) {
    HkvPlan *q = &aListed[k];
    if (!hasId(q->bHkc ? aHkc : aHkd, q->bHkc ? nHkc : nHkd, q->iFile)) {
      char zName[16];
      hkvSegName(q->iFile, q->bHkc, zName);
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s/%s: listed in the manifest but missing",
                                e->zDir, zName));
    }
    aPlan[nPlan++] = *q;
  }
  for (uint32_t k = 0; rc == HKV_OK && k < nHkd; k++) {
    if (aHkd[k] > iMaxRetired && (!bBound || aHkd[k] <= iBoundSeq)) {
      HkvPlan q = {aHkd[k], aHkd[k], 0};
      aPlan[nPlan++] = q;
    }
  }
  if (rc == HKV_OK && bBound && iBoundSeq != UINT32_MAX &&
      iBoundSeq > iMaxRetired && !hasId(aHkd, nHkd, iBoundSeq)) {
    char zName[16];
    segName(iBoundSeq, zName);
    rc = hkvSetErr(pzErr, HKV_CORRUPT,
                   hkvMprintf("%s/%s: the committed end names %s, which does "
                              "not exist (SHM damaged, or a segment lost)",
                              e->zDir, HKV_SHM_FILE, zName));
  }
  if (rc == HKV_OK && iSynced && (uint32_t)(iSynced >> 32) > iMaxRetired) {
    /* A commit known durable: the files must reach it. */
    uint32_t iSeq = (uint32_t)(iSynced >> 32);
    char zName[16];
    segName(iSeq, zName);
    uint64_t nHave = 0;
    int bHave = hasId(aHkd, nHkd, iSeq);
    if (bHave) {
      int fd = hkvEnv->xOpen(e->dirFd, zName, O_RDONLY, 0);
      if (fd < 0 || hkvEnv->xFileSize(fd, &nHave)) nHave = 0;
      if (fd >= 0) hkvEnv->xClose(fd);
    }
    uint32_t iNewest = 0;
    for (uint32_t k = 0; k < nHkd; k++) {
      if (aHkd[k] > iNewest) iNewest = aHkd[k];
    }
    if (!bHave && iSeq > iNewest) {
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s/%s: missing: it held the newest durable "
                                "commit (SHM records its end)",
                                e->zDir, zName));
    } else if (bHave && nHave < (uint32_t)iSynced) {
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s/%s: %llu bytes, but a durable commit ends "
                                "at offset %llu (SHM records it): the file "
                                "was cut",
                                e->zDir, zName, (unsigned long long)nHave,
                                (unsigned long long)(uint32_t)iSynced));
    }
  }
  if (rc == HKV_OK && !bBound && nPlan > 0 && !aPlan[nPlan - 1].bHkc &&
      hasId(aHkh, nHkh, aPlan[nPlan - 1].iFile)) {
    /* Its hint was written after a commit in a newer segment. */
    char zName[16];
    segName(aPlan[nPlan - 1].iFile, zName);
    rc = hkvSetErr(pzErr, HKV_CORRUPT,
                   hkvMprintf("%s: the newest segment is missing: %s was "
                              "sealed (it has a hint) but no segment follows",
                              e->zDir, zName));
  }
  if (rc == HKV_OK && xReserve) {
    /* Size the index once for every hinted key, so loading hints never
    ** grows it (growing re-reads keys from the segments). */
    uint64_t nHinted = 0;
    for (uint32_t k = 0; k < nPlan; k++) {
      if (aPlan[k].bHkc) nHinted += hintCount(e, aPlan[k].iFile);
    }
    if (nHinted) rc = xReserve(pCtx, nHinted);
  }
  for (uint32_t k = 0; k < nHkd; k++)
    iMaxId = aHkd[k] > iMaxId ? aHkd[k] : iMaxId;
  for (uint32_t k = 0; k < nHkc; k++)
    iMaxId = aHkc[k] > iMaxId ? aHkc[k] : iMaxId;
  if (iMaxRetired > iMaxId) iMaxId = iMaxRetired;

  for (uint32_t k = 0; k < nPlan && rc == HKV_OK; k++) {
    HkvPlan *q = &aPlan[k];
    int bLast = (k + 1 == nPlan) && !q->bHkc;
    char zName[16];
    hkvSegName(q->iFile, q->bHkc, zName);
    char *zPath = hkvMprintf("%s/%s", e->zDir, zName);
    if (!zPath) {
      rc = HKV_NOMEM;
      break;
    }
    int fd = hkvEnv->xOpen(e->dirFd, zName,
                           e->bReadonly || q->bHkc ? O_RDONLY : O_RDWR, 0);
    uint64_t nFile = 0;
    if (fd < 0 || hkvEnv->xFileSize(fd, &nFile)) {
      rc = hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot open: %s", zPath,
                                strerror(fd < 0 ? -fd : errno)));
      if (fd >= 0) hkvEnv->xClose(fd);
      hkvFree(zPath);
      break;
    }
    if (bBound && !q->bHkc && q->iFile == iBoundSeq &&
        nFile > (uint32_t)iBound) {
      nFile = (uint32_t)iBound; /* past it: another process's writes */
    }
    uint64_t nMap = q->bHkc ? nFile : hkvSegCapacity(e, fd, nFile);
    if (nMap < HKV_SEG_HDR) nMap = HKV_SEG_HDR;
    uint32_t iSlot;
    rc = hkvAddSegment(e, fd, q->iFile, q->iSeq, q->bHkc ? HKV_SEG_HKC : 0,
                       nFile, nMap, &iSlot, pzErr);
    if (rc) {
      hkvFree(zPath);
      break;
    }
    HkvSeg *s = e->apSeg[iSlot];
    const char *zBad = hkvCheckSegHeader(s->pMap, nFile, q->iFile);
    if (zBad) {
      if (bLast && (nFile < HKV_SEG_HDR || allZero(s->pMap, nFile))) {
        /* Torn while being created: nothing committed can be in it. */
        hkvFree(zPath);
        break;
      }
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s: %s at offset 0", zPath, zBad));
      hkvFree(zPath);
      break;
    }
    uint32_t iPred = q->bHkc ? 0 : segPred(s->pMap);
    if (iPred && iPred > iMaxRetired && !hasId(aHkd, nHkd, iPred)) {
      char zPred[16];
      segName(iPred, zPred);
      rc = hkvSetErr(
          pzErr, HKV_CORRUPT,
          bManifest ? hkvMprintf("%s/%s: missing (%s follows it)", e->zDir,
                                 zPred, zName)
                    : hkvMprintf("%s/%s: missing (%s follows %s, which only a "
                                 "manifest could account for)",
                                 e->zDir, HKV_MANIFEST, zName, zPred));
      hkvFree(zPath);
      break;
    }
    if (!bHaveCut || r.nPend == r.nDefer) {
      /* No transaction open across the boundary: a segment's start is a
      ** place the log may end. */
      bHaveCut = 1;
      iCutSeg = e->nSeg - 1;
      iCutOff = HKV_SEG_HDR;
    }
    if (q->bHkc && r.nPend == 0) {
      int h = loadHint(e, iSlot, xHint, pCtx);
      if (h < 0) {
        rc = -h;
        hkvFree(zPath);
        break;
      }
      if (h > 0) {
        s->nLive = nFile - HKV_SEG_HDR;
        e->nLiveBytes += s->nLive;
        iCutSeg = e->nSeg - 1;
        iCutOff = nFile;
        hkvFree(zPath);
        continue;
      }
    }
    if (!q->bHkc && k + 1 < nPlan) {
      uint64_t iEnd;
      int h = replayFromHint(e, iSlot, &r, &iEnd);
      if (h < 0) {
        rc = -h;
        hkvFree(zPath);
        break;
      }
      if (h > 0) {
        if (iEnd) {
          iCutSeg = e->nSeg - 1;
          iCutOff = iEnd;
        }
        hkvFree(zPath);
        continue;
      }
    }
    uint64_t iOff = HKV_SEG_HDR;
    while (iOff < nFile) {
      HkvRec rec;
      const uint8_t *p = s->pMap + iOff;
      int d = hkvDecodeRecord(p, nFile - iOff, &rec);
      if (d == 0 && !hkvVerifyRecord(p, &rec)) d = 2;
      if (d == 0 && q->bHkc && rec.kind != HKV_KIND_PUT) {
        d = 2; /* a compaction output holds committed puts only */
      }
      if (d) {
        /* A torn tail: nothing valid after the damage, or the damage is
        ** lost writes (then what follows was never synced either: with
        ** sync=full every commit before it was). */
        uint64_t iNext = bLast ? validRecordAfter(s->pMap, nFile, iOff) : 0;
        int bTorn = bLast && (iNext == 0 || lostWrites(s->pMap, iOff, iNext));
        if (!bTorn) {
          rc = hkvSetErr(pzErr, HKV_CORRUPT,
                         hkvMprintf("%s: corrupt record at offset %llu", zPath,
                                    (unsigned long long)iOff));
        }
        break;
      }
      int bEnd = 1;
      HkvLoc loc = HKV_LOC(iSlot, iOff);
      if (rec.iTxn >= e->iNextTxn) e->iNextTxn = rec.iTxn + 1;
      if (q->bHkc) {
        /* Copied verbatim from committed transactions: each stands alone. */
        rc = xApply(pCtx, loc, &rec);
      } else {
        rc = replayRecord(&r, loc, &rec, &bEnd);
      }
      if (rc) break;
      iOff += rec.nRec;
      if (bEnd) {
        iCutSeg = e->nSeg - 1;
        iCutOff = iOff;
      }
    }
    hkvFree(zPath);
  }
  if (rc == HKV_OK) rc = replayFlushDefer(&r);
  hkvFree(r.aPend);
  hkvFree(aListed);
  e->iMaxRetired = iMaxRetired;

  if (rc == HKV_OK && !bHaveCut && (e->bReadonly || e->bNoCreate) &&
      nPlan == 0) {
    rc = hkvSetErr(pzErr, HKV_NOTSTORE,
                   hkvMprintf("%s: no hashkv segment files", e->zDir));
  }
  if (rc == HKV_OK && !bHaveCut) {
    /* No valid segment at all: a new store (or only a torn first file). */
    if (e->bReadonly || bBound) {
      rc = hkvSetErr(pzErr, HKV_NOTSTORE,
                     hkvMprintf("%s: no hashkv segment files", e->zDir));
    } else {
      hkvLogCloseAll(e);
      for (uint32_t k = 0; k < nPlan; k++) {
        char zName[16];
        hkvSegName(aPlan[k].iFile, aPlan[k].bHkc, zName);
        hkvEnv->xUnlink(e->dirFd, zName);
      }
      rc = createSegment(e, iMaxId + 1, HKV_SEG_HDR, pzErr);
    }
    goto done;
  }
  if (rc) goto done;

  /* Cut everything after the last transaction end. Segments after the cut go
  ** even when they hold no bytes at all: a segment whose creation was torn
  ** before its header was written is empty, and must not become the active
  ** one. */
  uint64_t nCut = 0;
  for (uint32_t k = (uint32_t)iCutSeg; k < e->nSeg; k++) {
    HkvSeg *s = e->apSeg[e->aOrder[k]];
    nCut += s->nFile - (k == iCutSeg ? iCutOff : 0);
  }
  if (!bBound) {
    e->nCutBytes = nCut;
    e->iCutOffset = nCut ? iCutOff : 0;
  }
  if ((nCut || e->nSeg > iCutSeg + 1) && !e->bReadonly && !bBound) {
    HkvSeg *s = e->apSeg[e->aOrder[iCutSeg]];
    if (s->bHkc) {
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s: log ends inside compacted data", e->zDir));
      goto done;
    }
    int r1 = hkvEnv->xTruncate(s->fd, iCutOff);
    int r2 = r1 ? r1 : hkvEnv->xSync(s->fd);
    if (r2) {
      rc = hkvSetErr(
          pzErr, HKV_IOERR,
          hkvMprintf("%s: cannot cut torn tail: %s", e->zDir, strerror(-r2)));
      goto done;
    }
    s->nFile = iCutOff;
    if (e->nSeg > iCutSeg + 1) {
      /* The cut segment is the newest again: it is no longer sealed. */
      char zHint[16];
      snprintf(zHint, sizeof(zHint), "%08x.hkh", s->iFile);
      hkvEnv->xUnlink(e->dirFd, zHint);
    }
    while (e->nSeg > iCutSeg + 1) {
      uint32_t iSlot = e->aOrder[--e->nSeg];
      char zName[16];
      segName(e->apSeg[iSlot]->iFile, zName);
      hkvFreeSegment(e, iSlot);
      hkvEnv->xUnlink(e->dirFd, zName);
    }
    if (hkvSyncDir(e, pzErr)) {
      rc = HKV_IOERR;
      goto done;
    }
    e->bFailed = 0;
  }
  while ((e->bReadonly || bBound) && e->nSeg > iCutSeg + 1) {
    hkvFreeSegment(e, e->aOrder[--e->nSeg]);
  }

  /* Leftovers of an interrupted or finished compaction (only when no other
  ** process has the store open: one may be compacting now). */
  if (!e->bReadonly && !bBound) {
    int nGone = 0;
    for (uint32_t k = 0; k < nHkd; k++) {
      int bListed = 0;
      for (uint32_t j = 0; j < nPlan; j++) {
        bListed |= !aPlan[j].bHkc && aPlan[j].iFile == aHkd[k];
      }
      if (aHkd[k] <= iMaxRetired && !bListed) {
        char zName[16];
        segName(aHkd[k], zName);
        nGone += hkvEnv->xUnlink(e->dirFd, zName) == 0;
      }
    }
    for (uint32_t k = 0; k < nHkc; k++) {
      int bListed = 0;
      for (uint32_t j = 0; j < nPlan; j++) {
        bListed |= aPlan[j].bHkc && aPlan[j].iFile == aHkc[k];
      }
      if (!bListed) {
        char zName[16];
        hkvSegName(aHkc[k], 1, zName);
        nGone += hkvEnv->xUnlink(e->dirFd, zName) == 0;
      }
    }
    for (uint32_t k = 0; k < nHkh; k++) {
      int bListed = 0;
      for (uint32_t j = 0; j < nPlan; j++) {
        bListed |= aPlan[j].iFile == aHkh[k];
      }
      if (!bListed) {
        char zName[16];
        snprintf(zName, sizeof(zName), "%08x.hkh", aHkh[k]);
        nGone += hkvEnv->xUnlink(e->dirFd, zName) == 0;
      }
    }
    nGone += hkvEnv->xUnlink(e->dirFd, HKV_MANIFEST_TMP) == 0;
    if (nGone && hkvSyncDir(e, pzErr)) {
      rc = HKV_IOERR;
      goto done;
    }
  }

  e->iActive = e->aOrder[e->nSeg - 1];
  HkvSeg *sAct = e->apSeg[e->iActive];
  if (sAct->bHkc && bBound) {
    rc = hkvSetErr(pzErr, HKV_BUSY,
                   hkvMprintf("%s: another process is switching the store's "
                              "files; try again",
                              e->zDir));
    goto done;
  }
  if (sAct->bHkc) {
    /* Only compacted data: appends go to a new segment. */
    e->iNextSeq = iMaxId + 1;
    rc = createSegment(e, iMaxId + 1, HKV_SEG_HDR, pzErr);
    goto done;
  }
  e->iBufOff = (e->nSeg - 1 == iCutSeg) ? iCutOff : sAct->nFile;
  e->nBuf = 0;
  e->iNextSeq = iMaxId + 1;
done:
  hkvFree(aPlan);
  hkvFree(aHkd);
  hkvFree(aHkc);
  hkvFree(aHkh);
  return rc;
}

/*
** Catching up with other processes. Reads the records appended after this
** engine's view (e->iActive at e->iBufOff, a transaction boundary) and
** applies each committed transaction through xApply, up to iBound, a
** committed end another process published (sequence << 32 | offset). With
** HKV_NO_BOUND the caller holds the store's write lock: it reads to the last
** transaction end in the files and cuts everything after it, the tail of a
** writer that died mid-transaction. Caller holds e->mu and the index lock
** exclusively and has no transaction of its own under way. On HKV_OK,
** e->iActive and e->iBufOff name the new end.
*/
int hkvLogCatchUp(HkvEngine *e, HkvApply xApply, void *pCtx, uint64_t iBound,
                  char **pzErr) {
  const int bCut = iBound == HKV_NO_BOUND;
  const uint32_t iBoundSeq = (uint32_t)(iBound >> 32);
  Replay r;
  memset(&r, 0, sizeof(r));
  r.e = e;
  r.xApply = xApply;
  r.pCtx = pCtx;
  uint32_t *aHkd = 0, nHkd = 0;
  int bListed = 0, rc = HKV_OK;
  uint32_t iSlot = e->iActive, iEndSlot = e->iActive;
  uint64_t iOff = e->iBufOff, iEndOff = e->iBufOff;
  for (;;) {
    HkvSeg *s = e->apSeg[iSlot];
    uint64_t nLim = 0;
    int rF = hkvEnv->xFileSize(s->fd, &nLim);
    if (rF) {
      rc = hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot read segment size: %s", e->zDir,
                                strerror(-rF)));
      break;
    }
    if (!bCut && s->iSeq == iBoundSeq && nLim > (uint32_t)iBound) {
      nLim = (uint32_t)iBound;
    }
    if (nLim > s->nMap) nLim = s->nMap; /* a writer never goes past it */
    int bStop = 0;
    while (iOff < nLim) {
      HkvRec rec;
      const uint8_t *p = s->pMap + iOff;
      int d = hkvDecodeRecord(p, nLim - iOff, &rec);
      if (d == 0 && !hkvVerifyRecord(p, &rec)) d = 2;
      if (d) {
        /* Past the last write a live writer finished, or the torn tail of
        ** one that died: the end of what can be read. */
        bStop = 1;
        break;
      }
      if (rec.iTxn >= e->iNextTxn) e->iNextTxn = rec.iTxn + 1;
      /* Checked, so in the file: deferred records are read back by loc. */
      if (iOff + rec.nRec > s->nFile) s->nFile = iOff + rec.nRec;
      int bEnd;
      rc = replayRecord(&r, HKV_LOC(iSlot, iOff), &rec, &bEnd);
      if (rc) break;
      iOff += rec.nRec;
      if (bEnd) {
        iEndSlot = iSlot;
        iEndOff = iOff;
      }
    }
    if (iOff > s->nFile) s->nFile = iOff;
    if (rc || bStop) break;
    if (!bCut && s->iSeq >= iBoundSeq) break;
    /* On to the next segment: one already open (a bound that stopped short
    ** of its end earlier), else the next ".hkd" file by id. */
    uint32_t iPos = e->nSeg;
    while (iPos > 0 && e->aOrder[iPos - 1] != iSlot) iPos--;
    if (iPos > 0 && iPos < e->nSeg) {
      iSlot = e->aOrder[iPos];
      iOff = HKV_SEG_HDR;
      continue;
    }
    if (!bListed) {
      rc = listFiles(e, ".hkd", &aHkd, &nHkd, pzErr);
      if (rc) break;
      bListed = 1;
    }
    uint32_t iNext = 0;
    for (uint32_t k = 0; k < nHkd; k++) {
      if (aHkd[k] > s->iFile && (iNext == 0 || aHkd[k] < iNext))
        iNext = aHkd[k];
    }
    if (iNext == 0) break;
    char zName[16];
    segName(iNext, zName);
    int fd =
        hkvEnv->xOpen(e->dirFd, zName, e->bReadonly ? O_RDONLY : O_RDWR, 0);
    uint64_t nFile = 0;
    if (fd == -ENOENT && !bCut) {
      /* Compacted away by another process since the listing: the caller
      ** rebuilds from the new file set. */
      rc = hkvSetErr(
          pzErr, HKV_NOTFOUND,
          hkvMprintf("%s/%s: gone (the files were switched)", e->zDir, zName));
      break;
    }
    if (fd < 0 || hkvEnv->xFileSize(fd, &nFile)) {
      rc = hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s/%s: cannot open: %s", e->zDir, zName,
                                strerror(fd < 0 ? -fd : errno)));
      if (fd >= 0) hkvEnv->xClose(fd);
      break;
    }
    uint32_t iNew;
    rc = hkvAddSegment(e, fd, iNext, iNext, 0, nFile,
                       hkvSegCapacity(e, fd, nFile), &iNew, pzErr);
    if (rc) break;
    if (iNext >= e->iNextSeq) e->iNextSeq = iNext + 1;
    if (hkvCheckSegHeader(e->apSeg[iNew]->pMap, nFile, iNext)) {
      if (bCut) break; /* torn while being created: the cut removes it */
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s/%s: bad segment header", e->zDir, zName));
      break;
    }
    e->apSeg[iNew]->nFile = HKV_SEG_HDR;
    iSlot = iNew;
    iOff = HKV_SEG_HDR;
  }
  if (rc == HKV_OK && !bCut &&
      (((uint64_t)e->apSeg[iSlot]->iSeq << 32) | iOff) < iBound) {
    /* Published, so written: the files or SHM were damaged. */
    char zName[16];
    segName(e->apSeg[iSlot]->iFile, zName);
    rc = hkvSetErr(pzErr, HKV_CORRUPT,
                   hkvMprintf("%s/%s: ends at offset %llu before the committed "
                              "end SHM publishes (%08x.hkd offset %llu): SHM "
                              "or the segment is damaged",
                              e->zDir, zName, (unsigned long long)iOff,
                              iBoundSeq, (unsigned long long)(uint32_t)iBound));
  }
  if (rc == HKV_OK) rc = replayFlushDefer(&r);
  hkvFree(r.aPend);
  if (rc == HKV_OK && bCut) {
    /* Nothing after the last transaction end was published: cut it. */
    HkvSeg *s = e->apSeg[iEndSlot];
    uint64_t nFile = 0;
    int rT = hkvEnv->xFileSize(s->fd, &nFile);
    if (!rT && nFile > iEndOff) {
      e->nCutBytes += nFile - iEndOff;
      e->iCutOffset = iEndOff;
      rT = hkvEnv->xTruncate(s->fd, iEndOff);
    }
    uint32_t iPos = e->nSeg;
    while (iPos > 0 && e->aOrder[iPos - 1] != iEndSlot) iPos--;
    while (!rT && e->nSeg > iPos) {
      uint32_t iGone = e->aOrder[--e->nSeg];
      char zName[16];
      segName(e->apSeg[iGone]->iFile, zName);
      hkvFreeSegment(e, iGone);
      rT = hkvEnv->xUnlink(e->dirFd, zName);
    }
    for (uint32_t k = 0; !rT && k < nHkd; k++) {
      if (aHkd[k] > s->iFile) {
        char zName[16];
        segName(aHkd[k], zName);
        int rU = hkvEnv->xUnlink(e->dirFd, zName);
        if (rU != -ENOENT) rT = rU;
      }
    }
    if (rT) {
      rc = hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot cut a dead writer's tail: %s",
                                e->zDir, strerror(-rT)));
    }
    s->nFile = iEndOff;
  }
  if (rc == HKV_OK) {
    e->iActive = iEndSlot;
    e->iBufOff = iEndOff;
    e->nBuf = 0;
  }
  hkvFree(aHkd);
  return rc;
}
