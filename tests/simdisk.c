/*
** simdisk.c: the simulated disk of simdisk.h.
**
** Files are nodes (so a rename moves the content and a file unlinked and
** brought back keeps it); the directory is a list of name -> node. The
** model keeps the directory as of its last good fsync and the changes made
** since, in order; a node keeps its bytes as of its last good fsync. A
** node's current bytes are read from the real file when asked for, or, once
** the real file is gone, from the copy taken when it went.
*/
#include "simdisk.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIM_NAME 64     /* bytes of a name in the store directory */
#define SIM_NODES 512   /* files a test may create over one model */
#define SIM_NAMES 256   /* entries of the directory at once */
#define SIM_CHANGES 512 /* directory changes between two directory fsyncs */
#define SIM_FDS 1024
#define SIM_SECTOR 512

typedef struct SimBuf {
  uint8_t *a; /* malloc'd, or NULL when n == 0 */
  size_t n;
} SimBuf;

typedef struct SimNode {
  char zReal[SIM_NAME]; /* its name in the real directory; "" once gone */
  SimBuf gone;          /* its bytes when it left the real directory */
  SimBuf synced;        /* its bytes at its last good fsync */
  int bLost;            /* an fsync failed: shadow is what the disk has */
  SimBuf shadow;        /* synced bytes, then every write since the failure */
} SimNode;

typedef struct SimName {
  char z[SIM_NAME];
  int iNode;
} SimName;

typedef struct SimDir {
  SimName a[SIM_NAMES];
  int n;
} SimDir;

typedef struct SimChange {
  char cKind; /* 'c' create zA as iNode, 'r' rename zA to zB, 'u' unlink zA */
  char zA[SIM_NAME];
  char zB[SIM_NAME];
  int iNode;
} SimChange;

typedef struct SimImage {
  char zName[SIM_NAME];
  SimBuf b;
} SimImage;

static struct {
  char zDir[512];
  char zParent[512];
  HkvEnv env;
  SimNode aNode[SIM_NODES];
  int nNode;
  SimDir synced; /* the directory at its last good fsync */
  SimChange aChange[SIM_CHANGES];
  int nChange;      /* changes since then */
  int aFd[SIM_FDS]; /* node + 1; -1 the directory, -2 its parent; 0 */
  int bModelParent; /* the directory's entry in its parent is modelled */
  int bDirNew;      /* ... and it was created, its parent not fsynced */
  int bAnyLoss;     /* a failed fsync lost something */
  long nCutAt, nEvents;
  int iHow;
  unsigned iRand;
  int bOff;     /* the power went: the picture is in aImage */
  int bDirGone; /* ... without the directory */
  SimImage aImage[SIM_NAMES];
  int nImage;
} sim;

static unsigned simRand(void) {
  sim.iRand = sim.iRand * 1103515245u + 12345u;
  return sim.iRand >> 16;
}

static void bufFree(SimBuf *p) {
  free(p->a);
  p->a = 0;
  p->n = 0;
}

static void bufSet(SimBuf *p, const uint8_t *a, size_t n) {
  uint8_t *aNew = malloc(n + 1);
  ck_assert_ptr_nonnull(aNew);
  if (n) memcpy(aNew, a, n);
  free(p->a);
  p->a = aNew;
  p->n = n;
}

/* Writes n bytes at iOff into p, growing it with zeros. */
static void bufWrite(SimBuf *p, const void *a, size_t n, uint64_t iOff) {
  if (iOff + n > p->n) {
    uint8_t *aNew = realloc(p->a, (size_t)iOff + n + 1);
    ck_assert_ptr_nonnull(aNew);
    memset(aNew + p->n, 0, (size_t)iOff + n - p->n);
    p->a = aNew;
    p->n = (size_t)iOff + n;
  }
  memcpy(p->a + iOff, a, n);
}

static void bufResize(SimBuf *p, size_t n) {
  if (n > p->n) {
    uint8_t z = 0;
    if (n) bufWrite(p, &z, 1, n - 1);
  } else {
    p->n = n;
  }
}

/* The real file zName's bytes (none if it is not a regular file). */
static void readReal(const char *zName, SimBuf *p) {
  char zPath[600];
  snprintf(zPath, sizeof(zPath), "%s/%s", sim.zDir, zName);
  p->a = 0;
  p->n = 0;
  int fd = open(zPath, O_RDONLY);
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    p->a = malloc((size_t)st.st_size + 1);
    ck_assert_ptr_nonnull(p->a);
    ssize_t r = pread(fd, p->a, (size_t)st.st_size, 0);
    ck_assert(r == (ssize_t)st.st_size);
    p->n = (size_t)r;
  }
  close(fd);
}

/* What node i holds now, had the power stayed on (the caller frees it). */
static SimBuf nodeNow(int i) {
  SimNode *p = &sim.aNode[i];
  SimBuf b = {0, 0};
  if (p->bLost) {
    bufSet(&b, p->shadow.a, p->shadow.n);
  } else if (p->zReal[0]) {
    readReal(p->zReal, &b);
  } else {
    bufSet(&b, p->gone.a, p->gone.n);
  }
  return b;
}

static int nodeOfReal(const char *zName) {
  for (int i = 0; i < sim.nNode; i++) {
    if (!strcmp(sim.aNode[i].zReal, zName)) return i;
  }
  return -1;
}

static int newNode(const char *zName) {
  ck_assert_int_lt(sim.nNode, SIM_NODES);
  SimNode *p = &sim.aNode[sim.nNode];
  memset(p, 0, sizeof(*p));
  snprintf(p->zReal, sizeof(p->zReal), "%s", zName);
  return sim.nNode++;
}

/* The real file zName goes away (unlinked, or replaced by a rename): its
** node keeps its bytes, in case a power cut brings its entry back. */
static void realGone(const char *zName) {
  int i = nodeOfReal(zName);
  if (i < 0) return;
  SimBuf b = {0, 0};
  readReal(zName, &b);
  bufFree(&sim.aNode[i].gone);
  sim.aNode[i].gone = b;
  sim.aNode[i].zReal[0] = 0;
}

/* ---- the directory ---- */

static int dirFind(const SimDir *d, const char *z) {
  for (int i = 0; i < d->n; i++) {
    if (!strcmp(d->a[i].z, z)) return i;
  }
  return -1;
}

static void dirRemove(SimDir *d, const char *z) {
  int i = dirFind(d, z);
  if (i >= 0) d->a[i] = d->a[--d->n];
}

static void dirSet(SimDir *d, const char *z, int iNode) {
  int i = dirFind(d, z);
  if (i < 0) {
    ck_assert_int_lt(d->n, SIM_NAMES);
    i = d->n++;
    snprintf(d->a[i].z, sizeof(d->a[i].z), "%s", z);
  }
  d->a[i].iNode = iNode;
}

/* The directory after its last good fsync and the first nKeep changes. */
static void dirReplay(SimDir *d, int nKeep) {
  *d = sim.synced;
  for (int k = 0; k < nKeep; k++) {
    const SimChange *c = &sim.aChange[k];
    if (c->cKind == 'c') {
      dirSet(d, c->zA, c->iNode);
    } else if (c->cKind == 'u') {
      dirRemove(d, c->zA);
    } else {
      int i = dirFind(d, c->zA);
      if (i < 0) continue; /* its creation was lost */
      int iNode = d->a[i].iNode;
      dirRemove(d, c->zA);
      dirSet(d, c->zB, iNode);
    }
  }
}

static void addChange(char cKind, const char *zA, const char *zB, int iNode) {
  ck_assert_int_lt(sim.nChange, SIM_CHANGES);
  SimChange *c = &sim.aChange[sim.nChange++];
  c->cKind = cKind;
  snprintf(c->zA, sizeof(c->zA), "%s", zA);
  snprintf(c->zB, sizeof(c->zB), "%s", zB ? zB : "");
  c->iNode = iNode;
}

/* ---- the power cut ---- */

/* What the disk holds of a file whose bytes are c and whose last fsync
** covered d. */
static SimBuf lossImage(const SimBuf *c, const SimBuf *d) {
  size_t nOut = c->n;
  if (sim.iHow == SIM_LOSE_ALL ||
      (sim.iHow == SIM_LOSE_RANDOM && simRand() % 2))
    nOut = d->n;
  SimBuf b = {calloc(nOut + 1, 1), nOut};
  ck_assert_ptr_nonnull(b.a);
  for (size_t i = 0, k = 0; i < nOut; i += SIM_SECTOR, k++) {
    size_t m = nOut - i < SIM_SECTOR ? nOut - i : SIM_SECTOR;
    int bSame =
        i + m <= d->n && i + m <= c->n && !memcmp(c->a + i, d->a + i, m);
    int bKeep = bSame || (sim.iHow == SIM_LOSE_ALTERNATE ? k % 2 == 1
                          : sim.iHow == SIM_LOSE_RANDOM  ? simRand() % 2
                                                         : 0);
    if (bKeep && i < c->n) {
      memcpy(b.a + i, c->a + i, m <= c->n - i ? m : c->n - i);
    } else if (i < d->n) {
      memcpy(b.a + i, d->a + i, m <= d->n - i ? m : d->n - i);
    }
  }
  return b;
}

static void powerCut(void) {
  int nKeep = 0; /* how many of the directory changes persist */
  if (sim.iHow == SIM_LOSE_ALTERNATE) nKeep = sim.nChange;
  if (sim.iHow == SIM_LOSE_RANDOM) {
    nKeep = (int)(simRand() % (unsigned)(sim.nChange + 1));
  }
  static SimDir d;
  dirReplay(&d, nKeep);
  sim.nImage = 0;
  sim.bDirGone = sim.bModelParent && sim.bDirNew;
  for (int i = 0; i < d.n && !sim.bDirGone; i++) {
    SimNode *p = &sim.aNode[d.a[i].iNode];
    SimBuf c = nodeNow(d.a[i].iNode);
    SimImage *pImg = &sim.aImage[sim.nImage++];
    snprintf(pImg->zName, sizeof(pImg->zName), "%s", d.a[i].z);
    pImg->b = lossImage(&c, &p->synced);
    bufFree(&c);
  }
  sim.bOff = 1;
}

/* An event: 1 if it must fail because the power is (now) off. */
static int tick(void) {
  if (sim.bOff) return 1;
  sim.nEvents++;
  if (sim.nCutAt && sim.nEvents == sim.nCutAt) {
    powerCut();
    return 1;
  }
  return 0;
}

/* ---- the hooks ---- */

static int isOurDir(int fd) {
  return fd >= 0 && fd < SIM_FDS && sim.aFd[fd] == -1;
}
static int nodeOfFd(int fd) {
  return fd >= 0 && fd < SIM_FDS && sim.aFd[fd] > 0 ? sim.aFd[fd] - 1 : -1;
}

static int sameFile(int fd, const char *zPath) {
  struct stat a, b;
  return fstat(fd, &a) == 0 && stat(zPath, &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

static int simOpen(int dirFd, const char *zPath, int flags, int mode) {
  if (!isOurDir(dirFd) || strchr(zPath, '/')) {
    int fd = hkvPosixEnv.xOpen(dirFd, zPath, flags, mode);
    if (fd >= 0 && fd < SIM_FDS) {
      sim.aFd[fd] = 0;
      if (flags & O_DIRECTORY) {
        if (sameFile(fd, sim.zDir))
          sim.aFd[fd] = -1;
        else if (sameFile(fd, sim.zParent))
          sim.aFd[fd] = -2;
      }
    }
    return fd;
  }
  struct stat st;
  int bExists = fstatat(dirFd, zPath, &st, 0) == 0;
  int bCreate = !bExists && (flags & O_CREAT);
  int bTrunc = bExists && (flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY;
  if ((bCreate || bTrunc) && tick()) return -EIO;
  int fd = hkvPosixEnv.xOpen(dirFd, zPath, flags, mode);
  if (fd < 0) return fd;
  int iNode = nodeOfReal(zPath);
  if (bCreate) {
    iNode = newNode(zPath);
    addChange('c', zPath, 0, iNode);
  } else if (iNode < 0) {
    /* Made behind the model's back (not by the engine): count it durable. */
    iNode = newNode(zPath);
    readReal(zPath, &sim.aNode[iNode].synced);
    dirSet(&sim.synced, zPath, iNode);
  }
  if (bTrunc && sim.aNode[iNode].bLost) bufResize(&sim.aNode[iNode].shadow, 0);
  if (fd < SIM_FDS) sim.aFd[fd] = iNode + 1;
  return fd;
}

static int simClose(int fd) {
  if (fd >= 0 && fd < SIM_FDS) sim.aFd[fd] = 0;
  return hkvPosixEnv.xClose(fd);
}

static long simWrite(int fd, const void *p, size_t n, uint64_t off) {
  int iNode = nodeOfFd(fd);
  if (iNode < 0) return hkvPosixEnv.xWrite(fd, p, n, off);
  if (tick()) return -EIO;
  long r = hkvPosixEnv.xWrite(fd, p, n, off);
  if (r > 0 && sim.aNode[iNode].bLost) {
    bufWrite(&sim.aNode[iNode].shadow, p, (size_t)r, off);
  }
  return r;
}

static int simTruncate(int fd, uint64_t n) {
  int iNode = nodeOfFd(fd);
  if (iNode < 0) return hkvPosixEnv.xTruncate(fd, n);
  if (tick()) return -EIO;
  int r = hkvPosixEnv.xTruncate(fd, n);
  if (r == 0 && sim.aNode[iNode].bLost) {
    bufResize(&sim.aNode[iNode].shadow, (size_t)n);
  }
  return r;
}

static int simSync(int fd) {
  int iNode = nodeOfFd(fd);
  if (fd >= 0 && fd < SIM_FDS && sim.aFd[fd] == -2) {
    if (tick()) return -EIO;
    sim.bDirNew = 0;
    return 0;
  }
  if (isOurDir(fd)) {
    if (tick()) return -EIO;
    static SimDir d;
    dirReplay(&d, sim.nChange);
    sim.synced = d;
    sim.nChange = 0;
    return 0;
  }
  if (iNode < 0) return hkvPosixEnv.xSync(fd);
  if (tick()) return -EIO;
  SimBuf b = nodeNow(iNode);
  bufFree(&sim.aNode[iNode].synced);
  sim.aNode[iNode].synced = b;
  return 0;
}

static int simUnlink(int dirFd, const char *zPath) {
  if (!isOurDir(dirFd)) return hkvPosixEnv.xUnlink(dirFd, zPath);
  struct stat st;
  int bExists = fstatat(dirFd, zPath, &st, 0) == 0;
  if (bExists && tick()) return -EIO; /* removing nothing is no event */
  if (bExists) realGone(zPath);
  int r = hkvPosixEnv.xUnlink(dirFd, zPath);
  if (r == 0) addChange('u', zPath, 0, -1);
  return r;
}

static int simRename(int dirFd, const char *zFrom, const char *zTo) {
  if (!isOurDir(dirFd)) return hkvPosixEnv.xRename(dirFd, zFrom, zTo);
  if (tick()) return -EIO;
  int iFrom = nodeOfReal(zFrom);
  struct stat st;
  if (iFrom >= 0 && fstatat(dirFd, zTo, &st, 0) == 0) realGone(zTo);
  int r = hkvPosixEnv.xRename(dirFd, zFrom, zTo);
  if (r == 0) {
    if (iFrom >= 0) {
      snprintf(sim.aNode[iFrom].zReal, SIM_NAME, "%s", zTo);
    }
    addChange('r', zFrom, zTo, iFrom);
  }
  return r;
}

static int simMkdir(const char *zPath) {
  int r = hkvPosixEnv.xMkdir(zPath);
  if (r == 0) {
    struct stat a, b;
    if (stat(zPath, &a) == 0 && stat(sim.zDir, &b) == 0 &&
        a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      sim.bDirNew = 1;
    }
  }
  return r;
}

/* ---- the interface ---- */

static void freeImage(void) {
  for (int i = 0; i < sim.nImage; i++) bufFree(&sim.aImage[i].b);
  sim.nImage = 0;
}

void simDiskFree(void) {
  for (int i = 0; i < sim.nNode; i++) {
    bufFree(&sim.aNode[i].gone);
    bufFree(&sim.aNode[i].synced);
    bufFree(&sim.aNode[i].shadow);
  }
  sim.nNode = 0;
  freeImage();
}

void simDiskInstall(const char *zDir) {
  simDiskFree();
  int bModelParent = sim.bModelParent;
  memset(&sim, 0, sizeof(sim));
  sim.bModelParent = bModelParent;
  snprintf(sim.zDir, sizeof(sim.zDir), "%s", zDir);
  snprintf(sim.zParent, sizeof(sim.zParent), "%s", zDir);
  char *zSlash = strrchr(sim.zParent, '/');
  if (zSlash) *zSlash = 0;
  DIR *pDir = opendir(zDir);
  struct dirent *pEnt;
  while (pDir && (pEnt = readdir(pDir)) != 0) {
    if (pEnt->d_name[0] == '.' || strlen(pEnt->d_name) >= SIM_NAME) continue;
    int i = newNode(pEnt->d_name);
    readReal(pEnt->d_name, &sim.aNode[i].synced);
    dirSet(&sim.synced, pEnt->d_name, i);
  }
  if (pDir) closedir(pDir);
  sim.env = hkvPosixEnv;
  sim.env.xOpen = simOpen;
  sim.env.xClose = simClose;
  sim.env.xWrite = simWrite;
  sim.env.xSync = simSync;
  sim.env.xTruncate = simTruncate;
  sim.env.xUnlink = simUnlink;
  sim.env.xRename = simRename;
  sim.env.xMkdir = simMkdir;
  hkvEnvInstall(&sim.env);
}

const HkvEnv *simDiskEnv(void) { return &sim.env; }

void simDiskCutAt(long nAt, int iHow, unsigned iSeed) {
  sim.nCutAt = nAt;
  sim.nEvents = 0;
  sim.iHow = iHow;
  sim.iRand = iSeed;
}

void simDiskCutNow(int iHow) {
  if (sim.bOff) return;
  sim.iHow = iHow;
  powerCut();
}

long simDiskEvents(void) { return sim.nEvents; }
int simDiskIsOff(void) { return sim.bOff; }
void simDiskModelParent(int bOn) { sim.bModelParent = bOn; }

void simDiskSyncFailed(int fd) {
  if (isOurDir(fd)) {
    /* The entries changed since the last good fsync are lost. */
    sim.bAnyLoss |= sim.nChange > 0;
    sim.nChange = 0;
    return;
  }
  int iNode = nodeOfFd(fd);
  if (iNode < 0) return;
  SimNode *p = &sim.aNode[iNode];
  if (!p->bLost) {
    bufSet(&p->shadow, p->synced.a, p->synced.n);
    p->bLost = 1;
    sim.bAnyLoss = 1;
  }
}

const char *simDiskFdName(int fd) {
  if (isOurDir(fd)) return ".";
  int iNode = nodeOfFd(fd);
  return iNode < 0 ? "" : sim.aNode[iNode].zReal;
}

static int rmOneFile(const char *zPath, const struct stat *pSt, int flag,
                     struct FTW *pFtw) {
  (void)pSt;
  (void)flag;
  (void)pFtw;
  return remove(zPath);
}

int simDiskSettle(void) {
  hkvEnvInstall(NULL);
  if (!sim.bOff && !sim.bAnyLoss) {
    /* Nothing lost: the files are what the disk holds. */
    int nFile = -1;
    DIR *pDir = opendir(sim.zDir);
    struct dirent *pEnt;
    if (pDir) {
      nFile = 0;
      while ((pEnt = readdir(pDir)) != 0) nFile += pEnt->d_name[0] != '.';
      closedir(pDir);
    }
    simDiskFree();
    return nFile;
  }
  if (!sim.bOff) {
    /* No cut: the directory as the model has it, each file less what a
    ** failed fsync lost. */
    static SimDir d;
    dirReplay(&d, sim.nChange);
    freeImage();
    for (int i = 0; i < d.n; i++) {
      SimImage *pImg = &sim.aImage[sim.nImage++];
      snprintf(pImg->zName, sizeof(pImg->zName), "%s", d.a[i].z);
      pImg->b = nodeNow(d.a[i].iNode);
    }
  }
  DIR *pDir = opendir(sim.zDir);
  struct dirent *pEnt;
  while (pDir && (pEnt = readdir(pDir)) != 0) {
    if (pEnt->d_name[0] == '.') continue;
    char zPath[600];
    snprintf(zPath, sizeof(zPath), "%s/%.80s", sim.zDir, pEnt->d_name);
    ck_assert_int_eq(unlink(zPath), 0);
  }
  if (pDir) closedir(pDir);
  int nFile = sim.nImage;
  if (sim.bDirGone) {
    nftw(sim.zDir, rmOneFile, 16, FTW_DEPTH | FTW_PHYS);
    nFile = -1;
  }
  for (int i = 0; i < sim.nImage && nFile >= 0; i++) {
    char zPath[600];
    snprintf(zPath, sizeof(zPath), "%s/%s", sim.zDir, sim.aImage[i].zName);
    int fd = open(zPath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ck_assert_int_ge(fd, 0);
    ssize_t n = (ssize_t)sim.aImage[i].b.n;
    ck_assert(n == 0 || write(fd, sim.aImage[i].b.a, (size_t)n) == n);
    close(fd);
  }
  simDiskFree();
  return nFile;
}
