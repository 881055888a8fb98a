/*
** share.c: the cross-process contract of a store, and nothing else: the
** LOCK file's bytes, the write lock, SHM (the store's wal-index) and the
** shared counter of file ids. It owns HkvShare; the engine calls it, and it
** calls only the OS layer.
**
** Like SQLite's WAL mode: any number of processes read, one writes at a
** time. SHM, mapped by every process, holds the committed end of the log
** and a generation that each compaction switch moves; a read compares both
** with what its engine has seen (hkvShareChanged: two loads, no system
** call). The positions in SHM are stored with a check value (hkvShmCheck)
** written after them: a reader that finds a position and its check
** unmatched reads again (a writer may be between the two stores), and after
** that calls it damage. The layout is in hkvInt.h; version 2 added the
** checks and the durable end.
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <time.h>

/* Version 2 added the checks; processes on one store run one version. */
static const uint8_t aShmMagic[8] = {'h', 'k', 'v', 's', 'h', 'm', 0, 2};

static int shmKnown(const HkvShare *sh) {
  return memcmp(sh->pShm->aMagic, aShmMagic, 8) == 0;
}

void hkvShareInit(HkvShare *sh) {
  memset(sh, 0, sizeof(*sh));
  sh->dirFd = sh->lockFd = sh->shmFd = -1;
  sh->pShm = &sh->shmOwn;
  sh->bShmWritable = 1;
}

int hkvShareOpen(HkvShare *sh, int dirFd, const char *zDir, int bRo,
                 int *pbAlone, char **pzErr) {
  sh->dirFd = dirFd;
  sh->zDir = zDir;
  *pbAlone = 1;
  sh->lockFd = hkvEnv->xOpen(dirFd, HKV_LOCK_FILE,
                             bRo ? O_RDONLY : O_RDWR | O_CREAT, 0644);
  if (sh->lockFd < 0) {
    int err = -sh->lockFd;
    sh->lockFd = -1;
    /* A read-only store without LOCK (or one this user cannot open) is
    ** read alone. */
    if (bRo) return HKV_OK;
    return hkvSetErr(pzErr, HKV_CANTOPEN,
                     hkvMprintf("%s/%s: cannot open: %s", zDir, HKV_LOCK_FILE,
                                strerror(err)));
  }
  int r = hkvEnv->xLock(sh->lockFd, HKV_BYTE_OPEN,
                        (bRo ? HKV_LOCK_SH : HKV_LOCK_EX) | HKV_LOCK_WAIT);
  if (r) {
    return hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot lock: %s", zDir, strerror(-r)));
  }
  *pbAlone = hkvEnv->xLock(sh->lockFd, HKV_BYTE_PRESENT,
                           bRo ? HKV_LOCK_PROBE : HKV_LOCK_EX) == 0;
  sh->shmFd = hkvEnv->xOpen(dirFd, HKV_SHM_FILE,
                            bRo ? O_RDONLY : O_RDWR | O_CREAT, 0644);
  HkvShm *p = 0;
  if (sh->shmFd >= 0) {
    uint64_t n = 0;
    if (hkvEnv->xFileSize(sh->shmFd, &n) != 0) n = 0;
    if (!bRo) {
      /* Blocks, not a hole: on a full disk a store through the mapping
      ** into a hole would kill the process (SIGBUS). */
      r = hkvEnv->xAllocate ? hkvEnv->xAllocate(sh->shmFd, HKV_SHM_SIZE) : 0;
      if (r) {
        return hkvSetErr(pzErr, hkvIoCode(-r),
                         hkvMprintf("%s/%s: cannot allocate: %s", zDir,
                                    HKV_SHM_FILE, strerror(-r)));
      }
      n = HKV_SHM_SIZE;
    }
    if (n >= HKV_SHM_SIZE) p = hkvEnv->xShmMap(sh->shmFd, HKV_SHM_SIZE, !bRo);
  }
  if (p) {
    sh->pShm = p;
    sh->bShmWritable = !bRo;
  } else if (!bRo) {
    return hkvSetErr(pzErr, HKV_CANTOPEN,
                     hkvMprintf("%s/%s: cannot map", zDir, HKV_SHM_FILE));
  }
  return HKV_OK;
}

/* Reads a SHM position and its check (see the header comment). A pair
** that does not match while a writer holds the store (bWriting) may be
** one it is between storing: read again, for as long as 5 s. Unmatched
** with no writer (bWriting is cleared only after a publish is whole), or
** for longer than that, is damage. */
static int shmRead(HkvShare *sh, _Atomic uint64_t *pV, _Atomic uint64_t *pC,
                   uint64_t *pOut, char **pzErr) {
  struct timespec t0 = {0, 0};
  for (int nTry = 0;; nTry++) {
    uint64_t v = atomic_load_explicit(pV, memory_order_acquire);
    if (atomic_load_explicit(pC, memory_order_acquire) == hkvShmCheck(v)) {
      *pOut = v;
      return HKV_OK;
    }
    if (!atomic_load_explicit(&sh->pShm->bWriting, memory_order_acquire)) {
      v = atomic_load_explicit(pV, memory_order_acquire);
      if (atomic_load_explicit(pC, memory_order_acquire) == hkvShmCheck(v)) {
        *pOut = v;
        return HKV_OK;
      }
      break;
    }
    if (nTry < 100) continue;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (nTry == 100) t0 = t;
    if (t.tv_sec - t0.tv_sec > 5) break;
    sched_yield();
  }
  return hkvSetErr(pzErr, HKV_CORRUPT,
                   hkvMprintf("%s/%s: damaged (a position does not match its "
                              "check); close every handle on the store to "
                              "rebuild it",
                              sh->zDir, HKV_SHM_FILE));
}

int hkvShareReadEnd(HkvShare *sh, uint64_t *piEnd, char **pzErr) {
  return shmRead(sh, &sh->pShm->iEnd, &sh->pShm->iEndCheck, piEnd, pzErr);
}

int hkvShareBound(HkvShare *sh, uint64_t *piBound, char **pzErr) {
  *piBound = HKV_NO_BOUND - 1;
  return shmKnown(sh) ? hkvShareReadEnd(sh, piBound, pzErr) : HKV_OK;
}

uint64_t hkvShareLastEnd(HkvShare *sh) {
  if (!shmKnown(sh)) return 0;
  uint64_t v = atomic_load(&sh->pShm->iEnd);
  return atomic_load(&sh->pShm->iEndCheck) == hkvShmCheck(v) ? v : 0;
}

void hkvShareReady(HkvShare *sh, int bAlone, uint64_t iCommitted,
                   uint32_t iNextFile) {
  HkvShm *m = sh->pShm;
  if (sh->bShmWritable && (bAlone || !shmKnown(sh))) {
    uint64_t iGen = shmKnown(sh) ? m->iGen + 1 : 1;
    memcpy(m->aMagic, aShmMagic, 8);
    atomic_store(&m->iGen, iGen);
    atomic_store(&m->iEnd, iCommitted);
    atomic_store(&m->iEndCheck, hkvShmCheck(iCommitted));
    atomic_store(&m->iNextFile, iNextFile);
    atomic_store(&m->bWriting, 0);
  }
  atomic_store(&sh->iSeenGen, atomic_load(&m->iGen));
  atomic_store(&sh->iSeenEnd, iCommitted);
  if (sh->lockFd >= 0) {
    hkvEnv->xLock(sh->lockFd, HKV_BYTE_PRESENT, HKV_LOCK_SH | HKV_LOCK_WAIT);
    hkvEnv->xLock(sh->lockFd, HKV_BYTE_OPEN, HKV_LOCK_UN);
  }
}

void hkvShareClose(HkvShare *sh) {
  if (sh->pShm && sh->pShm != &sh->shmOwn) {
    hkvEnv->xMunmap(sh->pShm, HKV_SHM_SIZE);
  }
  sh->pShm = &sh->shmOwn;
  if (sh->shmFd >= 0) hkvEnv->xClose(sh->shmFd);
  if (sh->lockFd >= 0) hkvEnv->xClose(sh->lockFd); /* drops its locks */
  sh->shmFd = sh->lockFd = -1;
}

int hkvShareLockWrite(HkvShare *sh, char **pzErr) {
  if (sh->bWriteLock || sh->lockFd < 0) return HKV_OK;
  int r = hkvEnv->xLock(sh->dirFd, HKV_BYTE_FLOCK, HKV_LOCK_EX);
  if (r == -EWOULDBLOCK || r == -EAGAIN) {
    return hkvSetErr(pzErr, HKV_BUSY,
                     hkvMprintf("another process is writing the store"));
  }
  if (r) {
    return hkvSetErr(pzErr, HKV_IOERR,
                     hkvMprintf("%s: cannot lock: %s", sh->zDir, strerror(-r)));
  }
  sh->bWriteLock = 1;
  return HKV_OK;
}

void hkvShareMarkWriting(HkvShare *sh) {
  if (sh->bShmWritable &&
      !atomic_load_explicit(&sh->pShm->bWriting, memory_order_relaxed)) {
    atomic_store(&sh->pShm->bWriting, 1);
  }
}

void hkvShareUnlockWrite(HkvShare *sh, int bClean) {
  if (!sh->bWriteLock) return;
  if (sh->bShmWritable && bClean) atomic_store(&sh->pShm->bWriting, 0);
  hkvEnv->xLock(sh->dirFd, HKV_BYTE_FLOCK, HKV_LOCK_UN);
  sh->bWriteLock = 0;
}

int hkvShareDirty(HkvShare *sh) {
  return atomic_load(&sh->pShm->bWriting) != 0;
}

void hkvSharePublish(HkvShare *sh, uint64_t iEnd) {
  atomic_store(&sh->iSeenEnd, iEnd);
  if (!sh->bShmWritable) return;
  atomic_store(&sh->pShm->iEnd, iEnd);
  atomic_store(&sh->pShm->iEndCheck, hkvShmCheck(iEnd));
}

uint64_t hkvShareGen(HkvShare *sh) { return atomic_load(&sh->pShm->iGen); }

void hkvShareSeen(HkvShare *sh, uint64_t iEnd, uint64_t iGen) {
  atomic_store(&sh->iSeenEnd, iEnd);
  atomic_store(&sh->iSeenGen, iGen);
}

void hkvShareBumpGen(HkvShare *sh) {
  if (!sh->bShmWritable) return;
  uint64_t v = atomic_fetch_add(&sh->pShm->iGen, 1) + 1;
  atomic_store(&sh->iSeenGen, v);
}

int hkvShareLockFiles(HkvShare *sh, int bExclusive) {
  if (sh->lockFd < 0) return 0;
  return hkvEnv->xLock(
      sh->lockFd, HKV_BYTE_OPEN,
      (bExclusive ? HKV_LOCK_EX : HKV_LOCK_SH) | HKV_LOCK_WAIT);
}

void hkvShareUnlockFiles(HkvShare *sh) {
  if (sh->lockFd >= 0) hkvEnv->xLock(sh->lockFd, HKV_BYTE_OPEN, HKV_LOCK_UN);
}

int hkvShareAlone(HkvShare *sh, int bTake) {
  if (sh->lockFd >= 0 &&
      hkvEnv->xLock(sh->lockFd, HKV_BYTE_PRESENT,
                    bTake ? HKV_LOCK_EX : HKV_LOCK_PROBE) != 0) {
    return HKV_BUSY;
  }
  return HKV_OK;
}

uint32_t hkvShareNextFileId(HkvShare *sh, uint32_t iMin) {
  uint64_t v = atomic_load(&sh->pShm->iNextFile);
  return v > iMin && v < UINT32_MAX ? (uint32_t)v : iMin;
}

void hkvShareUsedFileId(HkvShare *sh, uint32_t iFile) {
  if (sh->bShmWritable && atomic_load(&sh->pShm->iNextFile) <= iFile) {
    atomic_store(&sh->pShm->iNextFile, (uint64_t)iFile + 1);
  }
}
