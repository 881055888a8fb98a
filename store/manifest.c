/*
** manifest.c: the MANIFEST file, its reader and its writer. It is what makes
** a compaction's switch atomic: written to MANIFEST.tmp, fsynced, renamed
** over MANIFEST, and the directory fsynced (compact.c says when).
**
** MANIFEST (little-endian)
**   0   8  magic "hkvmanif"
**   8   4  version (1)
**   12  4  n: listed segments
**   16  4  retired mark: unlisted ".hkd" segments with ids <= this are gone
**   20  4  reserved (0)
**   24  12*n  per segment, in log order: file id, order, kind (1 .hkd, 2 .hkc)
**   ..  4  CRC-32C of everything before
** The log is the listed segments, then every ".hkd" above the mark, by id.
** A missing MANIFEST means no compaction ever switched (recover.c checks
** that against the segments' predecessors); a damaged one is CORRUPT.
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>

/* Reads the MANIFEST, if there is one. On HKV_OK *paPlan lists the
** compacted segments in log order (NULL and 0 without a manifest). */
int hkvManifestRead(HkvEngine *e, HkvPlan **paPlan, uint32_t *pnPlan,
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
        aPlan[k].iOrder = hkvGet32(p + 4);
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

uint8_t *hkvManifestEncode(const HkvPlan *aPlan, uint32_t nPlan,
                           uint32_t iMaxRetired, size_t *pn) {
  size_t n = 28 + 12 * (size_t)nPlan;
  uint8_t *a = hkvCalloc(n);
  if (!a) return 0;
  memcpy(a, "hkvmanif", 8);
  hkvPut32(a + 8, 1);
  hkvPut32(a + 12, nPlan);
  hkvPut32(a + 16, iMaxRetired);
  for (uint32_t k = 0; k < nPlan; k++) {
    hkvPut32(a + 24 + 12 * k, aPlan[k].iFile);
    hkvPut32(a + 28 + 12 * k, aPlan[k].iOrder);
    hkvPut32(a + 32 + 12 * k, aPlan[k].bHkc ? 2 : 1);
  }
  hkvPut32(a + n - 4, hkvCrc32c(0, a, n - 4));
  *pn = n;
  return a;
}

int hkvManifestWrite(HkvEngine *e, const uint32_t *aSlot, uint32_t nSlot,
                     uint32_t iMaxRetired, char **pzErr) {
  HkvPlan *aPlan = hkvMalloc((nSlot ? nSlot : 1) * sizeof(HkvPlan));
  if (!aPlan) return HKV_NOMEM;
  for (uint32_t k = 0; k < nSlot; k++) {
    HkvSeg *s = e->apSeg[aSlot[k]];
    aPlan[k].iFile = s->iFile;
    aPlan[k].iOrder = s->iOrder;
    aPlan[k].bHkc = 1; /* compaction's outputs, all of them */
  }
  size_t n = 0;
  uint8_t *a = hkvManifestEncode(aPlan, nSlot, iMaxRetired, &n);
  hkvFree(aPlan);
  if (!a) return HKV_NOMEM;
  int fd = hkvEnv->xOpen(e->dirFd, HKV_MANIFEST_TMP,
                         O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int r = fd < 0 ? fd : hkvWriteAll(fd, a, n, 0);
  if (!r) r = hkvEnv->xSync(fd);
  if (fd >= 0) hkvEnv->xClose(fd);
  hkvFree(a);
  /* The outputs' entries are made durable before the rename that puts
  ** them in force: a file system may keep a rename and lose a creation. */
  if (!r) r = hkvEnv->xSync(e->dirFd);
  if (!r) r = hkvEnv->xRename(e->dirFd, HKV_MANIFEST_TMP, HKV_MANIFEST);
  if (r) {
    e->bFailed = 1;
    return hkvSetErr(pzErr, hkvIoCode(-r),
                     hkvMprintf("%s/%s: cannot write: %s", e->zDir,
                                HKV_MANIFEST, strerror(-r)));
  }
  return hkvSyncDir(e, pzErr);
}
