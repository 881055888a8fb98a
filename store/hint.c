/*
** hint.c: the two hint formats, each with its reader and writer. A hint
** lists a segment's records without their values, so that an open can
** rebuild the index without reading the data. Hints are a cache: one that
** is missing, torn or inconsistent is ignored and the segment is read.
** Records replayed from a hint are not checksummed at open; every read of
** a value still is. Both kinds are named "%08x.hkh" after their segment
** and told apart by their magic. All integers are little-endian; varints
** are LEB128 (7 bits a byte, low first, high bit set on all but the last).
**
** Sealed-segment hint (of a ".hkd"), written a step at a time after the
** commits that follow its sealing (hkvHintStep), so no write waits for it:
**   0   8  magic "hkvloghn"
**   8   4  file id of the segment
**   12  .. per record: varint(offset - previous offset; the first from 32),
**          kind, flags, varint(key length), varint(value length),
**          varint(transaction id), with flag EXPIRES varint(expiry, Unix ms),
**          key bytes, and for ROLLBACK_TO its 8 value bytes
**          (the expiry field is new with log format 3; a hint of an older
**          segment never has it, so the magic stays)
**   ..  4  number of records
**   ..  4  CRC-32C of everything before
** The entries must cover the segment exactly.
**
** Compaction-output hint (of a ".hkc"), written with its output:
**   0   8  magic "hkvhint2" (version 2; "hkvhint\n", version 1, lacks the
**          expiry field and is still read)
**   8   4  file id of its segment
**   12  4  n: entries
**   16  ..  per record: varint(offset - previous offset; the first from 32),
**           varint(key length), varint(expiry, Unix ms; 0: none), key bytes
**   ..  4  CRC-32C of everything before
** Its keys are unique (a compaction output holds one live record a key),
** and its records are contiguous: each one's length is the distance to the
** next (the last's, to the end of the segment).
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>

#define HKV_HINTW_BUF (64u << 10)

/* ---- the varint codec ---- */

/* Writes v at a (room for 10 bytes); returns the bytes written. */
static size_t putVarint(uint8_t *a, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t b = v & 0x7F;
    v >>= 7;
    a[n++] = b | (v ? 0x80 : 0);
  } while (v);
  return n;
}

/* Reads a varint from p (no further than pEnd): *ppNext is past it, or NULL
** when it runs out or is too long. */
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

/* Maps the hint file of segment iFile (at least 20 bytes) read-only, or
** returns NULL. The caller unmaps *pn bytes. */
static const uint8_t *mapHint(HkvEngine *e, uint32_t iFile, uint64_t *pn) {
  char zName[16];
  hkvFileName(iFile, HKV_FILE_HINT, zName);
  int fd = hkvEnv->xOpen(e->dirFd, zName, O_RDONLY, 0);
  if (fd < 0) return NULL;
  const uint8_t *a = NULL;
  if (hkvEnv->xFileSize(fd, pn) == 0 && *pn >= 20) a = hkvEnv->xMmap(fd, *pn);
  hkvEnv->xClose(fd);
  return a;
}

/* 1 if a[0..n) is a whole hint of either kind for segment iFile: its magic,
** file id and checksum (a hint being written, or torn, is not). */
int hkvHintWhole(const uint8_t *a, uint64_t n, uint32_t iFile) {
  return n >= 20 &&
         (memcmp(a, "hkvloghn", 8) == 0 || memcmp(a, "hkvhint\n", 8) == 0) &&
         hkvGet32(a + 8) == iFile &&
         hkvGet32(a + n - 4) == hkvCrc32c(0, a, n - 4);
}

/* ---- sealed-segment hints: the writer ---- */

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
  hintwPut(w, a, putVarint(a, v));
}

static void hintwEnd(HkvEngine *e, int bKeep) {
  HkvHintW *w = e->pHintW;
  if (!w) return;
  if (w->fd >= 0) hkvEnv->xClose(w->fd);
  if (!bKeep) {
    char zName[16];
    hkvFileName(w->iFile, HKV_FILE_HINT, zName);
    hkvEnv->xUnlink(e->dirFd, zName);
  }
  hkvFree(w);
  e->pHintW = 0;
}

void hkvHintFree(HkvEngine *e) { hintwEnd(e, 0); }

/* Lists about nBudget bytes of the sealed segment being hinted; finishes
** its hint file, or starts the next one. Never fails: a hint that cannot
** be written is dropped. Returns DONE when nothing is left to do. */
int hkvHintStep(HkvEngine *e, uint64_t nBudget) {
  HkvHintW *w = e->pHintW;
  if (!w) {
    uint32_t iFile;
    if (!hkvLogNextSealed(e, &iFile)) return HKV_DONE;
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
    hkvFileName(iFile, HKV_FILE_HINT, zName);
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
    if (rec.flags & HKV_FLAG_EXPIRES) hintwVarint(w, (uint64_t)rec.iExpire);
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

/* ---- sealed-segment hints: the reader ---- */

/* Decodes the next entry into it->iOff and it->rec; 0 when there is none
** or it is inconsistent with a segment of nFile bytes. */
static int hintNext(HkvHintIter *h, uint64_t nFile) {
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
  int bExp = (h->rec.flags & HKV_FLAG_EXPIRES) != 0;
  uint64_t iExpire = q && bExp ? getVarint(q, h->pEnd, &q) : 0;
  if (!q || nKey > HKV_MAX_KEY || nVal > HKV_MAX_VALUE) return 0;
  if (bExp && (h->rec.kind != HKV_KIND_PUT || iExpire == 0 ||
               iExpire > (uint64_t)INT64_MAX)) {
    return 0;
  }
  h->rec.nKey = (uint32_t)nKey;
  h->rec.nVal = (uint32_t)nVal;
  h->rec.iTxn = iTxn;
  h->rec.iExpire = (int64_t)iExpire;
  h->rec.hKey = 0;
  h->rec.nRec = (uint32_t)(HKV_REC_HDR + (bExp ? HKV_REC_EXP : 0) + nKey + nVal);
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

int hkvHintSealedOpen(HkvEngine *e, const HkvSeg *s, HkvHintIter *it) {
  memset(it, 0, sizeof(*it));
  it->a = mapHint(e, s->iFile, &it->n);
  if (!it->a) return 0;
  const uint8_t *a = it->a;
  uint64_t n = it->n;
  int bOk = memcmp(a, "hkvloghn", 8) == 0 && hkvGet32(a + 8) == s->iFile &&
            hkvGet32(a + n - 4) == hkvCrc32c(0, a, n - 4);
  it->nFile = s->nFile;
  if (!bOk) return 0;
  /* Every entry is checked before the caller applies any, so a bad hint
  ** changes nothing. */
  it->nEntry = hkvGet32(a + n - 8);
  hkvHintSealedRewind(it);
  uint64_t iNext = HKV_SEG_HDR;
  for (uint32_t k = 0; bOk && k < it->nEntry; k++) {
    if (!hintNext(it, s->nFile) || it->iOff != iNext) bOk = 0;
    iNext = it->iOff + it->rec.nRec;
    /* The index takes each key from the segment: one that differs from
    ** the hint's was damaged after the hint was written, and reading the
    ** segment instead reports it. */
    const uint8_t *pSeg = s->pMap + it->iOff;
    size_t iKey = HKV_REC_HDR +
                  ((it->rec.flags & HKV_FLAG_EXPIRES) ? HKV_REC_EXP : 0);
    if (bOk && it->rec.nKey &&
        (hkvGet16(pSeg + 6) != it->rec.nKey || pSeg[5] != it->rec.flags ||
         memcmp(pSeg + iKey, it->rec.pKey, it->rec.nKey) != 0)) {
      bOk = 0;
    }
  }
  if (bOk && (it->p != it->pEnd || iNext != s->nFile)) bOk = 0;
  hkvHintSealedRewind(it);
  return bOk;
}

void hkvHintSealedRewind(HkvHintIter *it) {
  it->p = it->a + 12;
  it->pEnd = it->a + it->n - 8;
  it->iOff = HKV_SEG_HDR;
}

int hkvHintSealedNext(HkvHintIter *it) { return hintNext(it, it->nFile); }

void hkvHintClose(HkvHintIter *it) {
  if (it->a) hkvEnv->xMunmap((void *)it->a, it->n);
  it->a = 0;
}

/* ---- compaction-output hints: the reader ---- */

/* The number of entries a hint file says it has (0 if unreadable). */
/* The version of a compaction-output hint's magic: 2, 1, or 0 (not one). */
static int hintOutVersion(const uint8_t *a) {
  if (memcmp(a, "hkvhint2", 8) == 0) return 2;
  if (memcmp(a, "hkvhint\n", 8) == 0) return 1;
  return 0;
}

uint64_t hkvHintCount(HkvEngine *e, uint32_t iFile) {
  char zName[16];
  hkvFileName(iFile, HKV_FILE_HINT, zName);
  int fd = hkvEnv->xOpen(e->dirFd, zName, O_RDONLY, 0);
  if (fd < 0) return 0;
  uint64_t n = 0, nEntry = 0;
  if (hkvEnv->xFileSize(fd, &n) == 0 && n >= 20) {
    const uint8_t *a = hkvEnv->xMmap(fd, 16);
    if (a) {
      if (hintOutVersion(a)) nEntry = hkvGet32(a + 12);
      hkvEnv->xMunmap((void *)a, 16);
    }
  }
  hkvEnv->xClose(fd);
  return nEntry;
}

/* One entry of a compaction-output hint at *pp (no further than pEnd):
** advances *pp and *piOff, sets the key and expiry; 0 when it is bad. */
static int hintOutEntry(const uint8_t **pp, const uint8_t *pEnd, int iVersion,
                        uint64_t *piOff, const uint8_t **ppKey,
                        uint64_t *pnKey, uint64_t *piExpire) {
  const uint8_t *q;
  uint64_t d = getVarint(*pp, pEnd, &q);
  uint64_t nKey = q ? getVarint(q, pEnd, &q) : 0;
  *piExpire = q && iVersion >= 2 ? getVarint(q, pEnd, &q) : 0;
  if (!q || nKey == 0 || nKey > HKV_MAX_KEY || (uint64_t)(pEnd - q) < nKey ||
      *piExpire > (uint64_t)INT64_MAX) {
    return 0;
  }
  *piOff += d;
  *ppKey = q;
  *pnKey = nKey;
  *pp = q + nKey;
  return 1;
}

/* Loads the hint file of compacted segment s (slot iSlot) through xHint.
** Returns 1 when it did, 0 when the hint is missing or unusable (the caller
** then reads the segment itself). */
int hkvHintLoad(HkvEngine *e, uint32_t iSlot, HkvHintApply xHint, void *pCtx) {
  HkvSeg *s = e->apSeg[iSlot];
  uint64_t n = 0;
  const uint8_t *a = mapHint(e, s->iFile, &n);
  if (!a) return 0;
  int iVersion = hintOutVersion(a);
  int bOk = iVersion && hkvGet32(a + 8) == s->iFile &&
            hkvGet32(a + n - 4) == hkvCrc32c(0, a, n - 4);
  uint32_t nEntry = bOk ? hkvGet32(a + 12) : 0;
  /* Check every entry before applying any, so a bad hint changes nothing:
  ** each record must hold its header, expiry and key before the next. */
  const uint8_t *p = a + 16, *pEnd = a + n - 4;
  uint64_t iOff = HKV_SEG_HDR, iPrev = 0, nPrevMin = 0;
  for (uint32_t k = 0; bOk && k < nEntry; k++) {
    const uint8_t *pKey;
    uint64_t nKey, iExpire;
    if (!hintOutEntry(&p, pEnd, iVersion, &iOff, &pKey, &nKey, &iExpire) ||
        (k > 0 && iOff < iPrev + nPrevMin)) {
      bOk = 0;
      break;
    }
    iPrev = iOff;
    uint32_t nHdr = HKV_REC_HDR + (iExpire ? HKV_REC_EXP : 0);
    nPrevMin = nHdr + nKey;
    /* The entry must name its record: the key and expiry the record holds
    ** (as a sealed segment's hint is checked above). A hint that names
    ** another key, under a good checksum, would index the record under
    ** that key and hide it from its own: the segment is read instead. */
    const uint8_t *pRec = s->pMap + iOff;
    if (iOff + nPrevMin > s->nFile || iOff + nPrevMin > s->nMap ||
        hkvGet16(pRec + 6) != nKey ||
        ((pRec[5] & HKV_FLAG_EXPIRES) != 0) != (iExpire != 0) ||
        (iExpire && hkvGet64(pRec + HKV_REC_HDR) != iExpire) ||
        memcmp(pRec + nHdr, pKey, (size_t)nKey) != 0) {
      bOk = 0;
      break;
    }
  }
  if (bOk && (p != pEnd || (nEntry && iPrev + nPrevMin > s->nFile))) bOk = 0;
  if (bOk) {
    int rc = HKV_OK;
    p = a + 16;
    iOff = HKV_SEG_HDR;
    /* In batches: hash a batch and prefetch its index slots, then insert,
    ** so the inserts' cache misses overlap. A record's length is the
    ** distance to the next (the records are contiguous). */
    enum { BATCH = 32 };
    uint64_t aHash[BATCH + 1];
    HkvLoc aOff[BATCH + 1];
    int64_t aExp[BATCH + 1];
    int nB = 0;
    for (uint32_t k = 0; k <= nEntry && rc == HKV_OK; k++) {
      if (k < nEntry) {
        const uint8_t *pKey;
        uint64_t nKey, iExpire;
        hintOutEntry(&p, pEnd, iVersion, &iOff, &pKey, &nKey, &iExpire);
        aHash[nB] = hkvKeyHash(pKey, (size_t)nKey);
        aOff[nB] = iOff;
        aExp[nB] = (int64_t)iExpire;
        hkvIndexPrefetch(&e->idx, aHash[nB]);
        nB++;
      }
      if (nB == BATCH + 1 || (k == nEntry && nB > 0)) {
        /* Entries 0..nB-2 know their length; the last waits for the next
        ** entry, unless the segment ends it. */
        int nDo = k == nEntry ? nB : nB - 1;
        for (int i = 0; i < nDo && rc == HKV_OK; i++) {
          uint64_t iEnd = i + 1 < nB ? aOff[i + 1] : s->nFile;
          rc = xHint(pCtx, HKV_LOC(iSlot, aOff[i]), aHash[i],
                     (uint32_t)(iEnd - aOff[i]), aExp[i]);
        }
        if (nDo < nB) {
          aHash[0] = aHash[nB - 1];
          aOff[0] = aOff[nB - 1];
          aExp[0] = aExp[nB - 1];
        }
        nB -= nDo;
      }
    }
    if (rc) bOk = -rc;
  }
  hkvEnv->xMunmap((void *)a, n);
  return bOk;
}

/* ---- compaction-output hints: the writer ---- */

static int bufReserve(HkvHintBuf *b, size_t nMore) {
  if (b->n + nMore <= b->nAlloc) return HKV_OK;
  size_t nNew = b->nAlloc ? b->nAlloc * 2 : 4096;
  while (nNew < b->n + nMore) nNew *= 2;
  uint8_t *a = hkvRealloc(b->a, nNew);
  if (!a) return HKV_NOMEM;
  b->a = a;
  b->nAlloc = nNew;
  return HKV_OK;
}

int hkvHintBufStart(HkvHintBuf *b, uint32_t iFile) {
  b->n = 0;
  b->nEntry = 0;
  b->iLast = HKV_SEG_HDR;
  int rc = bufReserve(b, 16);
  if (rc) return rc;
  memcpy(b->a, "hkvhint2", 8);
  hkvPut32(b->a + 8, iFile);
  b->n = 16;
  return HKV_OK;
}

int hkvHintBufReserve(HkvHintBuf *b, uint32_t nKey) {
  return bufReserve(b, 30 + (size_t)nKey);
}

void hkvHintBufAdd(HkvHintBuf *b, uint64_t iOff, const void *pKey,
                   uint32_t nKey, int64_t iExpire) {
  b->n += putVarint(b->a + b->n, iOff - b->iLast);
  b->n += putVarint(b->a + b->n, nKey);
  b->n += putVarint(b->a + b->n, (uint64_t)iExpire);
  memcpy(b->a + b->n, pKey, nKey);
  b->n += nKey;
  b->nEntry++;
  b->iLast = iOff;
}

int hkvHintBufWrite(HkvEngine *e, HkvHintBuf *b, uint32_t iFile) {
  int rc = bufReserve(b, 4);
  if (rc) return -ENOMEM;
  hkvPut32(b->a + 12, b->nEntry);
  hkvPut32(b->a + b->n, hkvCrc32c(0, b->a, b->n));
  b->n += 4;
  char zName[16];
  hkvFileName(iFile, HKV_FILE_HINT, zName);
  int fd = hkvEnv->xOpen(e->dirFd, zName, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return fd;
  int r = hkvWriteAll(fd, b->a, b->n, 0);
  if (!r) r = hkvEnv->xSync(fd);
  hkvEnv->xClose(fd);
  return r;
}

void hkvHintBufFree(HkvHintBuf *b) {
  hkvFree(b->a);
  memset(b, 0, sizeof(*b));
}
