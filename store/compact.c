/*
** compact.c: compaction, and its own state (HkvCompact). It reads the
** segments, repoints index slots that the engine's e->xFindExact names,
** writes outputs, hints (hint.c) and the MANIFEST (manifest.c), and has
** log.c switch the log order. The sealed prefix of the log (every segment but
** the active one) is rewritten into new segments holding only the live
** records, and the store switches to them atomically.
**
** Why a prefix: a DEL record only matters while an older PUT of its key
** exists. When the inputs are every segment older than the active one, no
** older record survives compaction, so every tombstone in them can be
** dropped without a deleted key coming back (the classic Bitcask mistake of
** dropping a tombstone while an older file still holds the key).
**
** Expired records are dead too: a PUT whose expiry has passed is not copied,
** and its key leaves the index (e->xDropExpired). The prefix makes that
** safe as it does for tombstones: every older record of the key is in the
** inputs, dead, and goes with them, so nothing can show through later.
** Once dropped, a key stays gone even if the clock is set back.
**
** Steps, each safe to interrupt by a crash:
**   1. Live PUT records are copied verbatim into output files
**      "%08x.hkc" (new ids), in small steps under the writer slot; after
**      each step the index points at the copies (readers in this process
**      read them from the page cache; nothing on disk has switched yet).
**      Automatic compaction reads the inputs in order and probes the index
**      for each record; hkv_compact, which holds the writer slot to the
**      end, takes the live records from the index instead, sorted by
**      location (hkvCompactAll): the same outputs, about 1.4x faster.
**   2. Each output is fsynced with its hint file "%08x.hkh".
**   3. MANIFEST.tmp is written and fsynced, renamed over MANIFEST, and the
**      directory fsynced: this rename is the switch.
**   4. The inputs are unlinked. Their mappings stay until every reader that
**      might hold a pointer into them has moved on (epochs, see engine.c).
** A crash before 3 leaves the old MANIFEST: recovery removes the outputs. A
** crash after 3 leaves inputs that recovery recognises as retired (a .hkd id
** at or below the manifest's mark that is not listed) and removes.
**
** The MANIFEST format is in manifest.c, the hint format in hint.c.
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

#define HKV_COMPACT_BUF \
  (64u << 10) /* small: the slots to repoint stay in cache */

struct HkvCompact {
  uint32_t *aIn; /* input slots, in log order */
  uint32_t nIn;
  uint32_t iIn;       /* input being read */
  uint64_t iOff;      /* next record in it (0: start) */
  uint32_t iOrderSeq; /* order of the outputs: that of the last input */
  uint32_t *aOut;     /* output slots */
  uint32_t nOut, nOutAlloc;
  uint8_t *aBuf; /* output buffer, for file offset iBufOff */
  size_t nBuf;
  uint64_t iBufOff;
  HkvHintBuf hint;   /* hint of the current output, being built */
  uint64_t **apSlot; /* index slots to point at aNew once flushed */
  HkvLoc *aNew;
  size_t nPend, nPendAlloc;
  uint64_t nInBytes; /* bytes of the inputs */
  int bRepointed;    /* index slots point into the outputs */
};

void hkvCompactFree(HkvCompact *c) {
  if (!c) return;
  hkvFree(c->aIn);
  hkvFree(c->aOut);
  hkvFree(c->aBuf);
  hkvHintBufFree(&c->hint);
  hkvFree(c->apSlot);
  hkvFree(c->aNew);
  hkvFree(c);
}

/* An I/O error is sticky, here too: the store refuses writes until it is
** reopened. */
static int ioErr(HkvEngine *e, char **pzErr, const char *zWhat, int r) {
  e->bFailed = 1;
  return hkvSetErr(pzErr, hkvIoCode(r < 0 ? -r : 0),
                   hkvMprintf("%s: compaction: %s: %s", e->zDir, zWhat,
                              strerror(r < 0 ? -r : EIO)));
}

/* Starts a new output file, mapped for at least nMin bytes. */
static int outOpen(HkvEngine *e, HkvCompact *c, uint64_t nMin, char **pzErr) {
  if (c->nOut == c->nOutAlloc) {
    uint32_t nNew = c->nOutAlloc ? c->nOutAlloc * 2 : 8;
    uint32_t *a = hkvRealloc(c->aOut, nNew * sizeof(uint32_t));
    if (!a) return HKV_NOMEM;
    c->aOut = a;
    c->nOutAlloc = nNew;
  }
  uint32_t iFile = hkvShareNextFileId(&e->sh, e->iNextFile);
  char zName[16];
  int fd;
  for (int nTry = 0;; nTry++, iFile++) {
    hkvSegName(iFile, 1, zName);
    fd = hkvEnv->xOpen(e->dirFd, zName, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd != -EEXIST || nTry == 1000) break;
  }
  hkvLogUseFileId(e, iFile);
  if (fd < 0) return ioErr(e, pzErr, "cannot create output", fd);
  uint8_t aHdr[HKV_SEG_HDR];
  hkvEncodeSegHeader(aHdr, iFile, 0, 0);
  int r = hkvWriteAll(fd, aHdr, HKV_SEG_HDR, 0);
  if (r) {
    hkvEnv->xClose(fd);
    return ioErr(e, pzErr, "cannot write output header", r);
  }
  uint64_t nMap = e->szSegment > nMin ? e->szSegment : nMin;
  uint32_t iSlot;
  int rc =
      hkvAddSegment(e, fd, iFile, c->iOrderSeq, HKV_SEG_HKC | HKV_SEG_UNLISTED,
                    HKV_SEG_HDR, nMap, &iSlot, pzErr);
  if (rc) return rc;
  c->aOut[c->nOut++] = iSlot;
  c->iBufOff = HKV_SEG_HDR;
  c->nBuf = 0;
  return hkvHintBufStart(&c->hint, iFile);
}

/* Writes the buffer to the current output, then points the index at the
** records just written. */
static int outFlush(HkvEngine *e, HkvCompact *c, char **pzErr) {
  if (c->nBuf) {
    HkvSeg *s = e->apSeg[c->aOut[c->nOut - 1]];
    int r = hkvWriteAll(s->fd, c->aBuf, c->nBuf, c->iBufOff);
    if (r) return ioErr(e, pzErr, "write failed", r);
    c->iBufOff += c->nBuf;
    s->nFile = c->iBufOff;
    c->nBuf = 0;
  }
  if (c->nPend) {
    hkvLatchWrite(&e->latch);
    for (size_t i = 0; i < c->nPend; i++) {
      hkvSlotSet(c->apSlot[i],
                 (*c->apSlot[i] & ~0xFFFFFFFFFFFFull) | c->aNew[i]);
    }
    hkvLatchUnwrite(&e->latch);
    c->nPend = 0;
    c->bRepointed = 1;
  }
  return HKV_OK;
}

/* Completes the current output: data and hint durable. */
static int outSeal(HkvEngine *e, HkvCompact *c, char **pzErr) {
  int rc = outFlush(e, c, pzErr);
  if (rc) return rc;
  HkvSeg *s = e->apSeg[c->aOut[c->nOut - 1]];
  s->nLive = s->nFile - HKV_SEG_HDR;
  int r = hkvHintBufWrite(e, &c->hint, s->iFile);
  if (r == -ENOMEM) return HKV_NOMEM;
  if (r) return ioErr(e, pzErr, "cannot write hint", r);
  r = hkvEnv->xSync(s->fd);
  if (r) return ioErr(e, pzErr, "cannot write output", r);
  return HKV_OK;
}

/* Copies the live record rec (index slot pSlot) into the outputs. */
static int outAppend(HkvEngine *e, HkvCompact *c, const HkvRec *pRec,
                     uint64_t *pSlot, char **pzErr) {
  int rc;
  uint64_t nRec = pRec->nRec;
  if (c->nOut == 0 || (c->iBufOff + c->nBuf > HKV_SEG_HDR &&
                       c->iBufOff + c->nBuf + nRec > e->szSegment)) {
    if (c->nOut) {
      rc = outSeal(e, c, pzErr);
      if (rc) return rc;
    }
    rc = outOpen(e, c, HKV_SEG_HDR + nRec, pzErr);
    if (rc) return rc;
  }
  if (c->nPend == c->nPendAlloc) {
    size_t nNew = c->nPendAlloc ? c->nPendAlloc * 2 : 1024;
    uint64_t **ap = hkvRealloc(c->apSlot, nNew * sizeof(uint64_t *));
    if (!ap) return HKV_NOMEM;
    c->apSlot = ap;
    HkvLoc *a = hkvRealloc(c->aNew, nNew * sizeof(HkvLoc));
    if (!a) return HKV_NOMEM;
    c->aNew = a;
    c->nPendAlloc = nNew;
  }
  rc = hkvHintBufReserve(&c->hint, pRec->nKey);
  if (rc) return rc;
  if (!c->aBuf) {
    c->aBuf = hkvMalloc(HKV_COMPACT_BUF);
    if (!c->aBuf) return HKV_NOMEM;
  }

  /* The record is copied verbatim (its checksum was just verified), expiry
  ** and all: in a compaction output every PUT counts as committed. */
  const uint8_t *pRaw = hkvRecStart(pRec);
  uint64_t iOff = c->iBufOff + c->nBuf;
  if (nRec > HKV_COMPACT_BUF - c->nBuf) {
    rc = outFlush(e, c, pzErr);
    if (rc) return rc;
  }
  if (nRec <= HKV_COMPACT_BUF - c->nBuf) {
    memcpy(c->aBuf + c->nBuf, pRaw, nRec);
    c->nBuf += nRec;
  } else {
    HkvSeg *s = e->apSeg[c->aOut[c->nOut - 1]];
    int r = hkvWriteAll(s->fd, pRaw, nRec, iOff);
    if (r) return ioErr(e, pzErr, "write failed", r);
    c->iBufOff = iOff + nRec;
    s->nFile = c->iBufOff;
  }
  hkvHintBufAdd(&c->hint, iOff, pRec->pKey, pRec->nKey, pRec->iExpire);
  if (pRec->iExpire) {
    HkvSeg *s = e->apSeg[c->aOut[c->nOut - 1]];
    s->nExpLive += nRec;
    if (pRec->iExpire > s->iMaxExpire) s->iMaxExpire = pRec->iExpire;
  }
  c->apSlot[c->nPend] = pSlot;
  c->aNew[c->nPend] = HKV_LOC(c->aOut[c->nOut - 1], iOff);
  c->nPend++;
  return HKV_OK;
}

/* Drops the compaction under way and removes its outputs, which no manifest
** lists and no index of any process uses any more (the caller is rebuilding
** this engine's index). Their slots are retired by the caller. */
void hkvCompactDiscard(HkvEngine *e) {
  HkvCompact *c = e->pCompact;
  if (!c) return;
  for (uint32_t k = 0; k < c->nOut; k++) {
    HkvSeg *s = e->apSeg[c->aOut[k]];
    char zName[16];
    hkvSegName(s->iFile, 1, zName);
    hkvEnv->xUnlink(e->dirFd, zName);
    hkvFileName(s->iFile, HKV_FILE_HINT, zName);
    hkvEnv->xUnlink(e->dirFd, zName);
  }
  e->pCompact = 0;
  hkvCompactFree(c);
}

/* Ends a run: finished (DONE), or abandoned on an error. The outputs of an
** abandoned run stay mapped until the engine closes, and a reopen discards
** them since no manifest lists them. If the index already points into them,
** a later compaction would not see those records among its inputs: the
** engine then refuses writes (FAILED) until it is reopened, whatever the
** error (even NOMEM). */
static void compactEnd(HkvEngine *e, HkvCompact *c, int rc) {
  if (rc != HKV_DONE && c->bRepointed) {
    e->bFailed = 1;
  } else if (rc != HKV_DONE && rc != HKV_OK) {
    /* Nothing names the outputs: they go now (a manifest never listed
    ** them, so a crash here leaves only what the next open removes). */
    for (uint32_t k = 0; k < c->nOut; k++) {
      HkvSeg *s = e->apSeg[c->aOut[k]];
      char zName[16];
      hkvFileName(s->iFile, HKV_FILE_OUT, zName);
      hkvEnv->xUnlink(e->dirFd, zName);
      hkvFileName(s->iFile, HKV_FILE_HINT, zName);
      hkvEnv->xUnlink(e->dirFd, zName);
      hkvFreeSegment(e, c->aOut[k]);
    }
  }
  e->pCompact = 0;
  hkvCompactFree(c);
}

int hkvCompactStart(HkvEngine *e, char **pzErr) {
  (void)pzErr;
  if (e->pCompact) return HKV_OK;
  if (e->nSeg < 2) return HKV_DONE;
  HkvCompact *c = hkvCalloc(sizeof(*c));
  if (!c) return HKV_NOMEM;
  c->nIn = e->nSeg - 1;
  c->aIn = hkvMalloc(c->nIn * sizeof(uint32_t));
  if (!c->aIn) {
    hkvFree(c);
    return HKV_NOMEM;
  }
  for (uint32_t i = 0; i < c->nIn; i++) {
    c->aIn[i] = e->aOrder[i];
    c->nInBytes += e->apSeg[c->aIn[i]]->nFile;
  }
  c->iOrderSeq = e->apSeg[c->aIn[c->nIn - 1]]->iOrder;
  e->pCompact = c;
  return HKV_OK;
}

/* Switches to the outputs and retires the inputs. */
static int finish(HkvEngine *e, HkvCompact *c, char **pzErr) {
  int rc = HKV_OK;
  if (c->nOut) rc = outSeal(e, c, pzErr);
  if (rc) return rc;
  uint32_t iMaxRetired = e->iMaxRetired;
  for (uint32_t i = 0; i < c->nIn; i++) {
    HkvSeg *s = e->apSeg[c->aIn[i]];
    if (!s->bHkc && s->iFile > iMaxRetired) iMaxRetired = s->iFile;
  }
  hkvTestCrashPoint("compact-before-manifest");
  /* No other process reads the file set while it switches. */
  int r = hkvShareLockFiles(&e->sh, 1);
  if (r) return ioErr(e, pzErr, "cannot lock for the switch", r);
  rc = hkvManifestWrite(e, c->aOut, c->nOut, iMaxRetired, pzErr);
  if (rc) {
    hkvShareUnlockFiles(&e->sh);
    return rc;
  }
  /* Other processes reload the file set: the generation moves before the
  ** first input is unlinked. Moved after the unlinks, a compactor killed
  ** among them left the switch unseen, and the others went on from a set
  ** whose inputs were partly gone: a catch-up stepped over an unlinked
  ** input to the next file there and missed its records. Unseen with every
  ** input still there (killed before this line) is harmless: the old set
  ** reads the same, and the next switch lists what it needs. Under the
  ** open lock, so no open or reload pairs the new generation with the
  ** files as they were before the switch. */
  hkvShareBumpGen(&e->sh);
  hkvTestCrashPoint("compact-after-manifest");
  hkvLogSetRetiredMark(e, iMaxRetired);

  uint64_t nOutBytes = 0;
  for (uint32_t k = 0; k < c->nOut; k++)
    nOutBytes += e->apSeg[c->aOut[k]]->nFile;
  pthread_mutex_lock(&e->mu);
  hkvLogSwitch(e, c->aIn, c->nIn, c->aOut, c->nOut);
  e->nCompactions++;
  e->nReclaimed += c->nInBytes > nOutBytes ? c->nInBytes - nOutBytes : 0;
  pthread_mutex_unlock(&e->mu);
  hkvShareUnlockFiles(&e->sh);
  return HKV_OK;
}

/*
** Runs compaction for about nBudget bytes of input. Caller holds the writer
** slot, and no transaction has written. Returns OK (more to do), DONE
** (finished, or nothing to do), or an error (CORRUPT, IOERR: the store is
** then FAILED; NOMEM), after which the compaction is abandoned: the index
** may point into its outputs, which stay mapped, and a reopen discards them.
*/
int hkvCompactStep(HkvEngine *e, uint64_t nBudget, char **pzErr) {
  HkvCompact *c = e->pCompact;
  int rc = HKV_OK;
  if (!c) return HKV_DONE;
  /* Records are taken in batches: decode and hash a batch, prefetch the
  ** index slots, then look each up. The probes are cache misses, and this
  ** lets them overlap. */
  enum { BATCH = 64 };
  HkvRec aRec[BATCH];
  uint64_t aHash[BATCH];
  HkvLoc aLoc[BATCH];
  int64_t iNow = 0; /* the clock, read at the first record with an expiry */
  while (rc == HKV_OK && c->iIn < c->nIn) {
    uint32_t iSlot = c->aIn[c->iIn];
    HkvSeg *s = e->apSeg[iSlot];
    if (c->iOff == 0) c->iOff = HKV_SEG_HDR;
    if (c->iOff >= s->nFile) {
      c->iIn++;
      c->iOff = 0;
      continue;
    }
    if (nBudget == 0) break;
    int n = 0;
    while (n < BATCH && c->iOff < s->nFile && nBudget > 0) {
      HkvLoc loc = HKV_LOC(iSlot, c->iOff);
      rc = hkvLogRead(e, loc, HKV_READ_VERIFY, &aRec[n], pzErr);
      if (rc) break;
      c->iOff += aRec[n].nRec;
      nBudget = nBudget > aRec[n].nRec ? nBudget - aRec[n].nRec : 0;
      if (aRec[n].kind != HKV_KIND_PUT) continue;
      aLoc[n] = loc;
      aHash[n] = hkvKeyHash(aRec[n].pKey, aRec[n].nKey);
      hkvIndexPrefetch(&e->idx, aHash[n]);
      n++;
    }
    for (int i = 0; rc == HKV_OK && i < n; i++) {
      uint64_t *pSlot = e->xFindExact(e, aHash[i], aLoc[i]);
      if (!pSlot) continue;
      if (aRec[i].iExpire) {
        if (!iNow) iNow = hkvEnv->xNow(1);
        if (hkvExpired(aRec[i].iExpire, iNow)) {
          e->xDropExpired(e, pSlot, &aRec[i], aLoc[i]);
          continue;
        }
      }
      rc = outAppend(e, c, &aRec[i], pSlot, pzErr);
    }
  }
  hkvTestCrashPoint("compact-step");
  if (rc == HKV_OK) rc = outFlush(e, c, pzErr);
  if (rc == HKV_OK && c->iIn == c->nIn) {
    rc = finish(e, c, pzErr);
    if (rc == HKV_OK) rc = HKV_DONE;
  }
  if (rc != HKV_OK) compactEnd(e, c, rc);
  return rc;
}

/* ---- a whole compaction at once ---- */

typedef struct LiveEnt {
  uint64_t iKey;   /* input position << 32 | offset: the log order */
  uint64_t *pSlot; /* the index slot naming the record */
} LiveEnt;

typedef struct Collect {
  const uint32_t *aPos; /* segment slot -> input position + 1, 0: not one */
  LiveEnt *a;
  uint64_t n;
} Collect;

static int collectLive(void *pCtx, uint64_t *pSlot) {
  Collect *k = pCtx;
  HkvLoc loc = HKV_SLOT_LOC(*pSlot);
  uint32_t iPos = k->aPos[HKV_LOC_SLOT(loc)];
  if (iPos) {
    if (k->a) {
      k->a[k->n].iKey = ((uint64_t)(iPos - 1) << 32) | HKV_LOC_OFF(loc);
      k->a[k->n].pSlot = pSlot;
    }
    k->n++;
  }
  return 0;
}

/* Sorts a[0..n) by iKey (48 bits) with three 16-bit radix passes. */
static void sortLive(LiveEnt *a, LiveEnt *aTmp, uint64_t n, uint64_t *aCount) {
  for (int sh = 0; sh < 48; sh += 16) {
    memset(aCount, 0, 65536 * sizeof(uint64_t));
    for (uint64_t i = 0; i < n; i++) aCount[(a[i].iKey >> sh) & 0xFFFF]++;
    uint64_t nSum = 0;
    for (int d = 0; d < 65536; d++) {
      uint64_t v = aCount[d];
      aCount[d] = nSum;
      nSum += v;
    }
    for (uint64_t i = 0; i < n; i++)
      aTmp[aCount[(a[i].iKey >> sh) & 0xFFFF]++] = a[i];
    LiveEnt *t = a;
    a = aTmp;
    aTmp = t;
  }
  /* Three passes: the sorted data ended in the buffer the caller passed
  ** as aTmp. */
}

/*
** Runs the compaction begun by hkvCompactStart to the end in one go, for
** hkv_compact: the caller holds the writer slot throughout, so nothing
** changes the index meanwhile. The result is the one hkvCompactStep would
** give, byte for byte, found with less work: instead of reading every input
** record and probing the index for each (the cost of step-wise compaction,
** half of it for records that turn out dead), the live records are taken
** from the index itself, sorted into log order, and copied, each one's
** checksum checked. Dead records are dropped unread (integrity-check reads
** them).
** Returns DONE or an error (as hkvCompactStep), or OK with nothing done
** when the memory for the list (32 bytes a live key) is not to be had: the
** caller then runs hkvCompactStep, which needs none.
*/
int hkvCompactAll(HkvEngine *e, char **pzErr) {
  HkvCompact *c = e->pCompact;
  if (!c) return HKV_DONE;
  int rc = HKV_OK;
  uint32_t *aPos = 0;
  LiveEnt *aEnt = 0, *aTmp = 0;
  uint64_t *aCount = 0;
  /* The live records of the inputs, in log order. Everything that can fail
  ** for want of memory comes before the first output. */
  Collect k;
  memset(&k, 0, sizeof(k));
  if (rc == HKV_OK) {
    aPos = hkvCalloc(HKV_MAX_SEGSLOT * sizeof(uint32_t));
    aCount = hkvMalloc(65536 * sizeof(uint64_t));
    if (!aPos || !aCount) rc = HKV_NOMEM;
  }
  if (rc == HKV_OK) {
    for (uint32_t i = 0; i < c->nIn; i++) aPos[c->aIn[i]] = i + 1;
    k.aPos = aPos;
    uint64_t n = hkvIndexLive(&e->idx); /* at least as many as in inputs */
    aEnt = hkvMalloc((n ? n : 1) * sizeof(LiveEnt));
    aTmp = hkvMalloc((n ? n : 1) * sizeof(LiveEnt));
    if (!aEnt || !aTmp) rc = HKV_NOMEM;
  }
  if (rc == HKV_NOMEM) {
    /* Not enough memory for the list (32 bytes a live key): nothing is
    ** written yet, so let the caller go on step by step instead. */
    hkvFree(aPos);
    hkvFree(aEnt);
    hkvFree(aTmp);
    hkvFree(aCount);
    return HKV_OK;
  }
  if (rc == HKV_OK) {
    k.a = aEnt;
    k.n = 0;
    hkvIndexForEach(&e->idx, collectLive, &k);
    sortLive(aEnt, aTmp, k.n, aCount);
    LiveEnt *aSorted = aTmp; /* see sortLive */
    int64_t iNow = hkvEnv->xNow(1);
    for (uint64_t j = 0; rc == HKV_OK && j < k.n; j++) {
      if (j + 8 < k.n) {
        LiveEnt *q = &aSorted[j + 8];
        HkvSeg *sq = e->apSeg[c->aIn[q->iKey >> 32]];
        __builtin_prefetch(sq->pMap + (uint32_t)q->iKey);
      }
      uint32_t iSlot = c->aIn[aSorted[j].iKey >> 32];
      HkvRec rec;
      rc = hkvLogRead(e, HKV_LOC(iSlot, (uint32_t)aSorted[j].iKey),
                      HKV_READ_VERIFY, &rec, pzErr);
      if (rc == HKV_OK && rec.kind != HKV_KIND_PUT) rc = HKV_CORRUPT;
      if (rc == HKV_OK && rec.iExpire && hkvExpired(rec.iExpire, iNow)) {
        e->xDropExpired(e, aSorted[j].pSlot, &rec,
                        HKV_LOC(iSlot, (uint32_t)aSorted[j].iKey));
      } else if (rc == HKV_OK) {
        rc = outAppend(e, c, &rec, aSorted[j].pSlot, pzErr);
      }
      if (j % 4096 == 4095) hkvTestCrashPoint("compact-step");
    }
  }
  hkvFree(aPos);
  hkvFree(aEnt);
  hkvFree(aTmp);
  hkvFree(aCount);
  if (rc == HKV_OK) {
    c->iIn = c->nIn;
    hkvTestCrashPoint("compact-step");
    rc = outFlush(e, c, pzErr);
  }
  if (rc == HKV_OK) rc = finish(e, c, pzErr);
  if (rc == HKV_OK) rc = HKV_DONE;
  compactEnd(e, c, rc);
  return rc;
}
