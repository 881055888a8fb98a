/*
** backup.c: hkv_backup, the consistent online copy of a store. The top
** layer: a client of the engine's snapshot (engine.c lends it the log order
** as of one commit, with the mappings pinned), of the file formats below
** (manifest.c encodes the copy's MANIFEST, hint.c says whether a hint is
** whole) and of the OS layer. Nothing below calls it.
**
** What the copy holds, file by file
**   ".hkc" (compaction outputs) and sealed ".hkd" segments: immutable once
**     in the log order, so they are hard-linked, or copied from the mapping
**     when linking fails (another file system, or a compaction of any
**     process removed the file meanwhile: the pin keeps it mapped);
**   the segment holding the committed end: copied up to that end, from the
**     mapping (the bytes before it are never written again). It is the
**     copy's active segment;
**   ".hkh": the hint of each whole segment, if it is whole (a hint being
**     written is left out: the copy's open reads the segment instead), never
**     of the last segment (a sealed segment with a hint and nothing after it
**     is a missing segment to recovery);
**   MANIFEST: written anew, listing the copied compaction outputs, with the
**     retired mark just below the first copied ".hkd" (every predecessor not
**     copied was compacted away). Not LOCK or SHM: the copy's first open
**     makes them.
** The copy is built in "<dest>.partial", every file fsynced, then the
** directory, renamed to dest, and dest's parent fsynced.
*/
#include "hkvInt.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#define HKV_BACKUP_CHUNK (4u << 20) /* bytes copied between progress calls */

typedef struct Backup {
  hkv_db *db;
  HkvEngine *e;
  HkvSnapshot snap;
  char *zDest;    /* as given, without trailing slashes */
  char *zPartial; /* "<zDest>.partial" */
  int destFd;     /* zPartial, opened */
  hkv_progress xProgress;
  void *pArg;
  uint64_t nDone, nTotal; /* bytes, for xProgress */
  char *zErr;
} Backup;

static int progress(Backup *b) {
  if (b->xProgress && b->xProgress(b->pArg, b->nDone, b->nTotal)) {
    return hkvSetErr(
        &b->zErr, HKV_ABORTED,
        hkvMprintf("backup to %s: stopped by the caller", b->zDest));
  }
  return HKV_OK;
}

static int ioErr(Backup *b, const char *zName, const char *zWhat, int r) {
  return hkvSetErr(&b->zErr, hkvIoCode(-r),
                   hkvMprintf("%s/%s: cannot %s: %s", b->zPartial, zName, zWhat,
                              strerror(-r)));
}

/* Writes a[0..n) as a new file zName of the copy, fsynced. */
static int writeFile(Backup *b, const char *zName, const uint8_t *a,
                     uint64_t n) {
  int fd = hkvEnv->xOpen(b->destFd, zName, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) return ioErr(b, zName, "create", fd);
  int rc = HKV_OK;
  for (uint64_t i = 0; rc == HKV_OK && i < n; i += HKV_BACKUP_CHUNK) {
    uint64_t nChunk = n - i < HKV_BACKUP_CHUNK ? n - i : HKV_BACKUP_CHUNK;
    int r = hkvWriteAll(fd, a + i, nChunk, i);
    if (r) {
      rc = ioErr(b, zName, "write", r);
    } else {
      b->nDone += nChunk;
      if (nChunk == HKV_BACKUP_CHUNK) rc = progress(b);
    }
  }
  if (rc == HKV_OK) {
    int r = hkvEnv->xSync(fd);
    if (r) rc = ioErr(b, zName, "fsync", r);
  }
  hkvEnv->xClose(fd);
  return rc;
}

/* A whole segment: linked, else copied. A linked file is fsynced too (a
** store with sync=off may never have). */
static int copySegment(Backup *b, const HkvSnapSeg *pS) {
  char zName[16];
  hkvSegName(pS->pSeg->iFile, pS->pSeg->bHkc, zName);
  if (pS->bWhole && hkvEnv->xLink &&
      hkvEnv->xLink(b->e->dirFd, zName, b->destFd, zName) == 0) {
    int fd = hkvEnv->xOpen(b->destFd, zName, O_RDONLY, 0);
    uint64_t n = 0;
    int r = fd < 0 ? fd : hkvEnv->xFileSize(fd, &n);
    if (r == 0 && n == pS->nCopy) r = hkvEnv->xSync(fd);
    if (fd >= 0) hkvEnv->xClose(fd);
    if (r) return ioErr(b, zName, "fsync", r);
    if (n == pS->nCopy) {
      b->nDone += pS->nCopy;
      return HKV_OK;
    }
    /* Not the size the snapshot names (it cannot be, but never keep a file
    ** unchecked): copy from the mapping instead. */
    hkvEnv->xUnlink(b->destFd, zName);
  }
  return writeFile(b, zName, pS->pSeg->pMap, pS->nCopy);
}

/* The hint of a whole segment, if the source has a whole one. */
static int copyHint(Backup *b, const HkvSnapSeg *pS) {
  char zName[16];
  hkvFileName(pS->pSeg->iFile, HKV_FILE_HINT, zName);
  int fd = hkvEnv->xOpen(b->e->dirFd, zName, O_RDONLY, 0);
  if (fd < 0) return HKV_OK; /* none (yet), or compacted away */
  uint64_t n = 0;
  const uint8_t *a = 0;
  if (hkvEnv->xFileSize(fd, &n) == 0 && n >= 20) a = hkvEnv->xMmap(fd, n);
  hkvEnv->xClose(fd);
  int rc = HKV_OK;
  if (a && hkvHintWhole(a, n, pS->pSeg->iFile)) {
    b->nTotal += n;
    rc = writeFile(b, zName, a, n);
  }
  if (a) hkvEnv->xMunmap((void *)a, n);
  return rc;
}

static int writeManifest(Backup *b) {
  HkvPlan *aPlan = hkvMalloc(b->snap.nSeg * sizeof(HkvPlan));
  if (!aPlan) return HKV_NOMEM;
  uint32_t nPlan = 0, iMark = UINT32_MAX;
  for (uint32_t k = 0; k < b->snap.nSeg; k++) {
    const HkvSeg *s = b->snap.aSeg[k].pSeg;
    if (s->bHkc) {
      aPlan[nPlan].iFile = s->iFile;
      aPlan[nPlan].iOrder = s->iOrder;
      aPlan[nPlan].bHkc = 1;
      nPlan++;
    } else if (iMark == UINT32_MAX) {
      iMark = s->iFile - 1; /* the first ".hkd": the log order's last part */
    }
  }
  size_t n = 0;
  uint8_t *a = hkvManifestEncode(aPlan, nPlan, iMark, &n);
  hkvFree(aPlan);
  if (!a) return HKV_NOMEM;
  int rc = writeFile(b, HKV_MANIFEST, a, n);
  hkvFree(a);
  return rc;
}

/* Removes what the backup made in its directory (destFd), and it, named
** zDir ("<dest>.partial", or dest once renamed). */
static void removePartial(Backup *b, const char *zDir) {
  char zName[16];
  for (uint32_t k = 0; k < b->snap.nSeg; k++) {
    const HkvSeg *s = b->snap.aSeg[k].pSeg;
    hkvSegName(s->iFile, s->bHkc, zName);
    hkvEnv->xUnlink(b->destFd, zName);
    hkvFileName(s->iFile, HKV_FILE_HINT, zName);
    hkvEnv->xUnlink(b->destFd, zName);
  }
  hkvEnv->xUnlink(b->destFd, HKV_MANIFEST);
  hkvEnv->xRmdir(zDir);
}

/* OK if zDest does not exist or is an empty directory (which the rename
** of the finished copy replaces). */
static int checkDest(Backup *b) {
  struct stat st;
  if (stat(b->zDest, &st) != 0) {
    if (errno == ENOENT) return HKV_OK;
    return hkvSetErr(&b->zErr, HKV_CANTOPEN,
                     hkvMprintf("%s: %s", b->zDest, strerror(errno)));
  }
  int bEmpty = 0;
  DIR *pDir = S_ISDIR(st.st_mode) ? opendir(b->zDest) : NULL;
  if (pDir) {
    struct dirent *pEnt;
    bEmpty = 1;
    while (bEmpty && (pEnt = readdir(pDir)) != 0) {
      bEmpty = !strcmp(pEnt->d_name, ".") || !strcmp(pEnt->d_name, "..");
    }
    closedir(pDir);
  }
  if (bEmpty) return HKV_OK;
  return hkvSetErr(
      &b->zErr, HKV_CANTOPEN,
      hkvMprintf("%s: exists and is not an empty directory", b->zDest));
}

/* Fsyncs the directory holding zPath: 0 or -errno. */
static int syncParent(const char *zPath) {
  const char *zSlash = strrchr(zPath, '/');
  char *zParent = !zSlash ? hkvStrdup(".")
                  : zSlash == zPath
                      ? hkvStrdup("/")
                      : hkvMprintf("%.*s", (int)(zSlash - zPath), zPath);
  if (!zParent) return -ENOMEM;
  int fd = hkvEnv->xOpen(AT_FDCWD, zParent, O_RDONLY | O_DIRECTORY, 0);
  hkvFree(zParent);
  if (fd < 0) return fd;
  int r = hkvEnv->xSync(fd);
  hkvEnv->xClose(fd);
  return r;
}

static int runBackup(Backup *b) {
  int rc = hkvEngineSnapshot(b->db, &b->snap);
  if (rc) return rc; /* the engine set the message */
  for (uint32_t k = 0; k < b->snap.nSeg; k++) {
    b->nTotal += b->snap.aSeg[k].nCopy;
  }
  rc = checkDest(b);
  if (rc) return rc;
  int r = hkvEnv->xMkdir(b->zPartial);
  if (r) {
    return hkvSetErr(
        &b->zErr, r == -EEXIST ? HKV_CANTOPEN : hkvIoCode(-r),
        r == -EEXIST
            ? hkvMprintf("%s: exists: a backup to %s is under way or was "
                         "interrupted (remove it)",
                         b->zPartial, b->zDest)
            : hkvMprintf("%s: cannot create: %s", b->zPartial, strerror(-r)));
  }
  b->destFd = hkvEnv->xOpen(AT_FDCWD, b->zPartial, O_RDONLY | O_DIRECTORY, 0);
  if (b->destFd < 0) {
    r = b->destFd;
    hkvEnv->xRmdir(b->zPartial);
    return hkvSetErr(
        &b->zErr, HKV_CANTOPEN,
        hkvMprintf("%s: cannot open: %s", b->zPartial, strerror(-r)));
  }
  rc = progress(b);
  for (uint32_t k = 0; rc == HKV_OK && k < b->snap.nSeg; k++) {
    const HkvSnapSeg *pS = &b->snap.aSeg[k];
    rc = copySegment(b, pS);
    if (rc == HKV_OK && pS->bWhole && k + 1 < b->snap.nSeg) {
      rc = copyHint(b, pS);
    }
    if (rc == HKV_OK) rc = progress(b);
  }
  if (rc == HKV_OK) rc = writeManifest(b);
  if (rc == HKV_OK) {
    r = hkvEnv->xSync(b->destFd);
    if (r) rc = ioErr(b, ".", "fsync", r);
  }
  if (rc == HKV_OK) {
    r = hkvEnv->xRename(AT_FDCWD, b->zPartial, b->zDest);
    if (r) {
      rc = hkvSetErr(
          &b->zErr,
          r == -ENOTEMPTY || r == -EEXIST ? HKV_CANTOPEN : hkvIoCode(-r),
          hkvMprintf("%s: cannot rename to %s: %s", b->zPartial, b->zDest,
                     strerror(-r)));
    }
  }
  if (rc) {
    removePartial(b, b->zPartial);
    return rc;
  }
  r = syncParent(b->zDest);
  if (r) {
    removePartial(b, b->zDest); /* whole, but its name may not last */
    return hkvSetErr(
        &b->zErr, hkvIoCode(-r),
        hkvMprintf("%s: cannot fsync its parent: %s", b->zDest, strerror(-r)));
  }
  return HKV_OK;
}

int hkv_backup(hkv_db *db, const char *zDest, hkv_progress xProgress,
               void *pArg) {
  HkvEngine *e = hkvEngineOf(db);
  if (!e) return HKV_MISUSE;
  if (!zDest || !zDest[0]) {
    return hkvEngineSetErr(db, HKV_MISUSE, hkvMprintf("no backup directory"));
  }
  Backup b;
  memset(&b, 0, sizeof(b));
  b.db = db;
  b.e = e;
  b.destFd = -1;
  b.xProgress = xProgress;
  b.pArg = pArg;
  size_t n = strlen(zDest);
  while (n > 1 && zDest[n - 1] == '/') n--;
  b.zDest = hkvMprintf("%.*s", (int)n, zDest);
  b.zPartial = hkvMprintf("%.*s.partial", (int)n, zDest);
  int rc = b.zDest && b.zPartial ? runBackup(&b) : HKV_NOMEM;
  if (b.destFd >= 0) hkvEnv->xClose(b.destFd);
  hkvEngineSnapshotEnd(&b.snap);
  hkvFree(b.zDest);
  hkvFree(b.zPartial);
  if (b.zErr || rc == HKV_OK || rc == HKV_NOMEM) {
    return hkvEngineSetErr(db, rc, b.zErr);
  }
  return rc; /* the snapshot's own code and message */
}
