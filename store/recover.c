/*
** recover.c: rebuilding an engine's view from the files. At open the log is
** replayed from the segments (or their hints) into the index; beside other
** processes, catch-up reads what they appended since. It reaches the index
** only through the callbacks the engine hands it (xApply, xHint,
** xReserve), and leaves the segment set as log.c's functions make it.
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

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

/* Replaying a batch of records: stage 0 fetches each key's home slot,
** stage 1 the record that slot names (the key is compared against it), so
** the batch's cache misses overlap instead of following one another. */
static void prefetch(HkvEngine *e, uint64_t h, int iStage) {
  if (iStage == 0) {
    hkvIndexPrefetch(&e->idx, h);
    return;
  }
  uint64_t v = hkvIndexHomeSlot(&e->idx, h);
  if (v > HKV_SLOT_TOMB && (v & 0xFFFF000000000000ull) == HKV_FP(h)) {
    HkvSeg *s = e->apSeg[HKV_LOC_SLOT(v)];
    if (s) __builtin_prefetch(s->pMap + HKV_LOC_OFF(v));
  }
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
      prefetch(r->e, aHash[k], 0);
    }
    for (int k = 0; k < nB; k++) prefetch(r->e, aHash[k], 1);
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

/* Replays sealed segment iSlot from its hint, if it has a usable one:
** returns 1 (and the offset after its last transaction end in *piEnd, 0 if
** none), 0 to read the segment instead, or -rc on an error from replay. */
static int replayFromHint(HkvEngine *e, uint32_t iSlot, Replay *r,
                          uint64_t *piEnd) {
  HkvHintIter it;
  int bOk = hkvHintSealedOpen(e, e->apSeg[iSlot], &it);
  int rc = HKV_OK;
  *piEnd = 0;
  for (uint32_t k = 0; bOk && rc == HKV_OK && k < it.nEntry; k++) {
    int bEnd;
    hkvHintSealedNext(&it);
    if (it.rec.iTxn >= e->iNextTxn) e->iNextTxn = it.rec.iTxn + 1;
    rc = replayRecord(r, HKV_LOC(iSlot, it.iOff), &it.rec, &bEnd);
    if (bEnd) *piEnd = it.iOff + it.rec.nRec;
  }
  hkvHintClose(&it);
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
/* What the messages about commits SHM records but the files lack say: the
** one loss that is no damage. */
static const char zAccept[] =
    " (after a power loss with sync=normal or off, remove SHM to open the "
    "store with what its files hold)";

int hkvRecover(HkvEngine *e, HkvApply xApply, HkvHintApply xHint,
               int (*xReserve)(void *, uint64_t), void *pCtx, uint64_t iBound,
               uint64_t iMustReach, char **pzErr) {
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
  int rc = hkvLogListFiles(e, ".hkd", &aHkd, &nHkd, pzErr);
  if (!rc) rc = hkvLogListFiles(e, ".hkc", &aHkc, &nHkc, pzErr);
  if (!rc) rc = hkvLogListFiles(e, ".hkh", &aHkh, &nHkh, pzErr);
  int bManifest = 0;
  if (!rc) {
    rc =
        hkvManifestRead(e, &aListed, &nListed, &iMaxRetired, &bManifest, pzErr);
  }
  if (!rc) {
    aPlan = hkvMalloc((nListed + nHkd + 1) * sizeof(HkvPlan));
    if (!aPlan) rc = HKV_NOMEM;
  }
  for (uint32_t k = 0; rc == HKV_OK && k < nListed; k++) {
    HkvPlan *q = &aListed[k];
    if (!hkvHasId(q->bHkc ? aHkc : aHkd, q->bHkc ? nHkc : nHkd, q->iFile)) {
      char zName[16];
      hkvFileName(q->iFile, q->bHkc ? HKV_FILE_OUT : HKV_FILE_LOG, zName);
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
      iBoundSeq > iMaxRetired && !hkvHasId(aHkd, nHkd, iBoundSeq)) {
    char zName[16];
    hkvFileName(iBoundSeq, HKV_FILE_LOG, zName);
    rc = hkvSetErr(pzErr, HKV_CORRUPT,
                   hkvMprintf("%s/%s: the committed end names %s, which does "
                              "not exist (SHM damaged, or a segment lost)",
                              e->zDir, HKV_SHM_FILE, zName));
  }
  if (rc == HKV_OK && iMustReach &&
      (uint32_t)(iMustReach >> 32) > iMaxRetired) {
    /* The last commit SHM recorded (a process crash keeps SHM): the files
    ** must reach it, or a segment was lost or cut. */
    uint32_t iFile = (uint32_t)(iMustReach >> 32);
    char zName[16];
    hkvFileName(iFile, HKV_FILE_LOG, zName);
    uint64_t nHave = 0;
    int bHave = hkvHasId(aHkd, nHkd, iFile);
    if (bHave) {
      int fd = hkvEnv->xOpen(e->dirFd, zName, O_RDONLY, 0);
      if (fd < 0 || hkvEnv->xFileSize(fd, &nHave)) nHave = 0;
      if (fd >= 0) hkvEnv->xClose(fd);
    }
    uint32_t iNewest = 0;
    for (uint32_t k = 0; k < nHkd; k++) {
      if (aHkd[k] > iNewest) iNewest = aHkd[k];
    }
    if (!bHave && iFile > iNewest) {
      rc = hkvSetErr(pzErr, HKV_CORRUPT,
                     hkvMprintf("%s/%s: missing: it held the newest "
                                "commit (SHM records its end)%s",
                                e->zDir, zName, zAccept));
    } else if (bHave && nHave < (uint32_t)iMustReach) {
      rc = hkvSetErr(
          pzErr, HKV_CORRUPT,
          hkvMprintf("%s/%s: %llu bytes, but a commit ends "
                     "at offset %llu (SHM records it): the file "
                     "was cut%s",
                     e->zDir, zName, (unsigned long long)nHave,
                     (unsigned long long)(uint32_t)iMustReach, zAccept));
    }
  }
  if (rc == HKV_OK && !bBound && nPlan > 0 && !aPlan[nPlan - 1].bHkc &&
      hkvHasId(aHkh, nHkh, aPlan[nPlan - 1].iFile)) {
    /* Its hint was written after a commit in a newer segment. */
    char zName[16];
    hkvFileName(aPlan[nPlan - 1].iFile, HKV_FILE_LOG, zName);
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
      if (aPlan[k].bHkc) nHinted += hkvHintCount(e, aPlan[k].iFile);
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
    hkvFileName(q->iFile, q->bHkc ? HKV_FILE_OUT : HKV_FILE_LOG, zName);
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
    rc = hkvAddSegment(e, fd, q->iFile, q->iOrder, q->bHkc ? HKV_SEG_HKC : 0,
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
    uint32_t iPred = q->bHkc ? 0 : hkvSegPred(s->pMap);
    if (iPred && iPred > iMaxRetired && !hkvHasId(aHkd, nHkd, iPred)) {
      char zPred[16];
      hkvFileName(iPred, HKV_FILE_LOG, zPred);
      rc = hkvSetErr(
          pzErr, HKV_CORRUPT,
          bManifest || nHkc == 0
              ? hkvMprintf("%s/%s: missing (%s follows it)", e->zDir, zPred,
                           zName)
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
      int h = hkvHintLoad(e, iSlot, xHint, pCtx);
      if (h < 0) {
        rc = -h;
        hkvFree(zPath);
        break;
      }
      if (h > 0) {
        /* xHint counted each entry's bytes live (or not, if expired). */
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
  hkvLogSetRetiredMark(e, iMaxRetired);

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
        hkvFileName(aPlan[k].iFile, aPlan[k].bHkc ? HKV_FILE_OUT : HKV_FILE_LOG,
                    zName);
        hkvEnv->xUnlink(e->dirFd, zName);
      }
      rc = hkvLogCreateSegment(e, iMaxId + 1, HKV_SEG_HDR, pzErr);
    }
    goto done;
  }
  if (rc) goto done;

  if (iMustReach && !bBound) {
    /* Replay must reach the last commit SHM recorded: never cut it away. */
    HkvSeg *sCut = e->apSeg[e->aOrder[iCutSeg]];
    uint64_t iPos = ((uint64_t)sCut->iOrder << 32) | iCutOff;
    if (iPos < iMustReach) {
      char zName[16];
      hkvFileName(sCut->iFile, sCut->bHkc ? HKV_FILE_OUT : HKV_FILE_LOG, zName);
      rc = hkvSetErr(
          pzErr, HKV_CORRUPT,
          hkvMprintf("%s/%s: the log's commits end at offset %llu, before the "
                     "last commit SHM records (%08x.hkd offset %llu): a "
                     "segment was lost or damaged%s",
                     e->zDir, zName, (unsigned long long)iCutOff,
                     (unsigned)(iMustReach >> 32),
                     (unsigned long long)(uint32_t)iMustReach, zAccept));
      goto done;
    }
  }

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
      hkvFileName(s->iFile, HKV_FILE_HINT, zHint);
      hkvEnv->xUnlink(e->dirFd, zHint);
    }
    hkvLogDropAfter(e, (uint32_t)iCutSeg + 1, 1);
    if (hkvSyncDir(e, pzErr)) {
      rc = HKV_IOERR;
      goto done;
    }
    e->bFailed = 0;
  }
  if (e->bReadonly || bBound) hkvLogDropAfter(e, (uint32_t)iCutSeg + 1, 0);

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
        hkvFileName(aHkd[k], HKV_FILE_LOG, zName);
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
        hkvFileName(aHkc[k], HKV_FILE_OUT, zName);
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
        hkvFileName(aHkh[k], HKV_FILE_HINT, zName);
        nGone += hkvEnv->xUnlink(e->dirFd, zName) == 0;
      }
    }
    nGone += hkvEnv->xUnlink(e->dirFd, HKV_MANIFEST_TMP) == 0;
    if (nGone && hkvSyncDir(e, pzErr)) {
      rc = HKV_IOERR;
      goto done;
    }
  }

  uint32_t iLast = e->aOrder[e->nSeg - 1];
  HkvSeg *sAct = e->apSeg[iLast];
  if (sAct->bHkc && bBound) {
    rc = hkvSetErr(pzErr, HKV_BUSY,
                   hkvMprintf("%s: another process is switching the store's "
                              "files; try again",
                              e->zDir));
    goto done;
  }
  hkvLogUseFileId(e, iMaxId);
  if (sAct->bHkc) {
    /* Only compacted data: appends go to a new segment. */
    rc = hkvLogCreateSegment(e, iMaxId + 1, HKV_SEG_HDR, pzErr);
    goto done;
  }
  hkvLogResume(e, iLast, (e->nSeg - 1 == iCutSeg) ? iCutOff : sAct->nFile);
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
** transaction end in the files (the start of a segment that no transaction
** spans into counts as one) and cuts everything after it, the tail of a
** writer that died mid-transaction: never a published end, which is always
** such a point. Caller holds e->mu and the index lock exclusively and has
** no transaction of its own under way. On HKV_OK, e->iActive and e->iBufOff
** name the new end.
*/
int hkvRecoverCatchUp(HkvEngine *e, HkvApply xApply, void *pCtx,
                      uint64_t iBound, char **pzErr) {
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
    if (iOff == HKV_SEG_HDR && r.nPend == r.nDefer) {
      /* A segment's start with no transaction open across it is a place
      ** the log may end, as at open. It may be a published end: hkv_compact
      ** seals the active segment and publishes the start of the new, empty
      ** one. A writer taking over from one killed after that must keep the
      ** segment, not cut it: a reader may already be reading to that end
      ** (the file missing, it would report damage), and one whose view
      ** reached it would go on committing into the unlinked file. */
      iEndSlot = iSlot;
      iEndOff = iOff;
    }
    uint64_t nLim = 0;
    int rF = hkvEnv->xFileSize(s->fd, &nLim);
    if (rF) {
      rc = hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot read segment size: %s", e->zDir,
                                strerror(-rF)));
      break;
    }
    if (!bCut && s->iOrder == iBoundSeq && nLim > (uint32_t)iBound) {
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
    if (!bCut && s->iOrder >= iBoundSeq) break;
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
      rc = hkvLogListFiles(e, ".hkd", &aHkd, &nHkd, pzErr);
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
    hkvFileName(iNext, HKV_FILE_LOG, zName);
    int fd =
        hkvEnv->xOpen(e->dirFd, zName, e->bReadonly ? O_RDONLY : O_RDWR, 0);
    uint64_t nFile = 0;
    if (fd == -ENOENT && !bCut) {
      /* Compacted away by another process since the listing: the caller
      ** rebuilds from the new file set. */
      rc = hkvSetErr(
          pzErr, HKV_SWITCHED,
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
    hkvLogUseFileId(e, iNext);
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
      (((uint64_t)e->apSeg[iSlot]->iOrder << 32) | iOff) < iBound) {
    /* Published, so written: the files or SHM were damaged. */
    char zName[16];
    hkvFileName(e->apSeg[iSlot]->iFile, HKV_FILE_LOG, zName);
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
    if (!rT) rT = hkvLogDropAfter(e, iPos, 1);
    for (uint32_t k = 0; !rT && k < nHkd; k++) {
      if (aHkd[k] > s->iFile) {
        char zName[16];
        hkvFileName(aHkd[k], HKV_FILE_LOG, zName);
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
  if (rc == HKV_OK) hkvLogResume(e, iEndSlot, iEndOff);
  hkvFree(aHkd);
  return rc;
}
