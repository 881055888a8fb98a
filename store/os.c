/*
** os.c: the POSIX layer. Every system call and allocation of the engine goes
** through the table hkvEnv points at, so that tests can fail the Nth write,
** fsync or allocation, or simulate a power loss, by installing their own.
** Functions return 0 / a descriptor / a byte count, or -errno.
*/
#include "hkvInt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/membarrier.h>
#endif

static int posixOpen(int dirFd, const char *zPath, int flags, int mode) {
  int fd;
  do {
    fd = openat(dirFd, zPath, flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  return fd < 0 ? -errno : fd;
}

static int posixClose(int fd) { return close(fd) < 0 ? -errno : 0; }

static long posixWrite(int fd, const void *p, size_t n, uint64_t off) {
  ssize_t r;
  do {
    r = pwrite(fd, p, n, (off_t)off);
  } while (r < 0 && errno == EINTR);
  return r < 0 ? -errno : (long)r;
}

static int posixSync(int fd) { return fdatasync(fd) < 0 ? -errno : 0; }

static int posixTruncate(int fd, uint64_t n) {
  return ftruncate(fd, (off_t)n) < 0 ? -errno : 0;
}

static int posixFileSize(int fd, uint64_t *pn) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  *pn = (uint64_t)st.st_size;
  return 0;
}

static void *posixMmap(int fd, uint64_t n) {
  void *p = mmap(0, (size_t)n, PROT_READ, MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void posixMunmap(void *p, uint64_t n) { munmap(p, (size_t)n); }

static void *posixShmMap(int fd, uint64_t n, int bWrite) {
  void *p = mmap(0, (size_t)n, bWrite ? PROT_READ | PROT_WRITE : PROT_READ,
                 MAP_SHARED, fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

static int posixUnlink(int dirFd, const char *zPath) {
  return unlinkat(dirFd, zPath, 0) < 0 ? -errno : 0;
}

static int posixMkdir(const char *zPath) {
  return mkdir(zPath, 0777) < 0 ? -errno : 0;
}

static int posixRename(int dirFd, const char *zFrom, const char *zTo) {
  return renameat(dirFd, zFrom, dirFd, zTo) < 0 ? -errno : 0;
}

static int posixLink(int fromDirFd, const char *zFrom, int toDirFd,
                     const char *zTo) {
  return linkat(fromDirFd, zFrom, toDirFd, zTo, 0) < 0 ? -errno : 0;
}

static int posixRmdir(const char *zPath) {
  return rmdir(zPath) < 0 ? -errno : 0;
}

/* Open-file-description locks on one byte of the lock file: they belong to
** the descriptor, not the process (so two engines of a forked child and its
** parent conflict, and a thread closing another descriptor of the file
** drops nothing), and the kernel releases them when the process dies. */
static int posixLock(int fd, int iByte, int op) {
  if (iByte == HKV_BYTE_FLOCK) {
    int mode = op & 3, r;
    int how = mode == HKV_LOCK_EX   ? LOCK_EX
              : mode == HKV_LOCK_SH ? LOCK_SH
                                    : LOCK_UN;
    do {
      r = flock(fd, how | ((op & HKV_LOCK_WAIT) ? 0 : LOCK_NB));
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : 0;
  }
  struct flock fl;
  memset(&fl, 0, sizeof(fl));
  fl.l_whence = SEEK_SET;
  fl.l_start = iByte;
  fl.l_len = 1;
  int mode = op & 3;
  fl.l_type = mode == HKV_LOCK_EX   ? F_WRLCK
              : mode == HKV_LOCK_SH ? F_RDLCK
                                    : F_UNLCK;
  if (op & HKV_LOCK_PROBE) {
    fl.l_type = F_WRLCK;
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) return -errno;
    return fl.l_type == F_UNLCK ? 0 : -EWOULDBLOCK;
  }
  int r;
  do {
    r = fcntl(fd, (op & HKV_LOCK_WAIT) ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && errno == EACCES) return -EWOULDBLOCK;
  return r < 0 ? -errno : 0;
}

static int posixBarrier(int op) {
#ifdef SYS_membarrier
  int cmd = op == HKV_BARRIER_REGISTER
                ? MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED
                : MEMBARRIER_CMD_PRIVATE_EXPEDITED;
  return syscall(SYS_membarrier, cmd, 0, 0) < 0 ? -errno : 0;
#else
  (void)op;
  return -ENOSYS;
#endif
}

static void *posixMapAnon(size_t n) {
  void *p = mmap(0, n, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

static void posixUnmapAnon(void *p, size_t n) { munmap(p, n); }

static int posixAllocate(int fd, uint64_t n) {
  int r = posix_fallocate(fd, 0, (off_t)n);
  return r == EINVAL || r == EOPNOTSUPP ? 0 : -r; /* a file system without */
}

static int64_t posixNow(int bExact) {
  struct timespec ts;
  if (bExact || clock_gettime(CLOCK_REALTIME_COARSE, &ts) != 0) {
    clock_gettime(CLOCK_REALTIME, &ts);
  }
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const HkvEnv hkvPosixEnv = {
    posixOpen,      posixClose,    posixWrite,  posixSync,    posixTruncate,
    posixFileSize,  posixMmap,     posixMunmap, posixUnlink,  posixRename,
    posixMkdir,     posixRmdir,    posixLock,   malloc,       calloc,
    realloc,        free,          posixShmMap, posixBarrier, posixMapAnon,
    posixUnmapAnon, posixAllocate, posixNow, posixLink};

const HkvEnv *hkvEnv = &hkvPosixEnv;
void (*hkvTestCrashHook)(const char *zWhere);

void hkvEnvInstall(const HkvEnv *pEnv) { hkvEnv = pEnv ? pEnv : &hkvPosixEnv; }

void *hkvMalloc(size_t n) { return hkvEnv->xMalloc(n ? n : 1); }

/* Large zeroed blocks come from calloc so the kernel supplies zero pages
** lazily: a 256 MiB index table costs no memset pause. */
void *hkvCalloc(size_t n) { return hkvEnv->xCalloc(1, n ? n : 1); }

void *hkvRealloc(void *p, size_t n) { return hkvEnv->xRealloc(p, n ? n : 1); }

void hkvFree(void *p) {
  if (p) hkvEnv->xFree(p);
}

void hkvAdviseHuge(void *p, size_t n) {
#ifdef MADV_HUGEPAGE
  madvise(p, n, MADV_HUGEPAGE);
#else
  (void)p;
  (void)n;
#endif
}

char *hkvStrdup(const char *z) {
  size_t n = strlen(z) + 1;
  char *zCopy = hkvMalloc(n);
  if (zCopy) memcpy(zCopy, z, n);
  return zCopy;
}

char *hkvMprintf(const char *zFmt, ...) {
  va_list ap;
  va_start(ap, zFmt);
  int n = vsnprintf(NULL, 0, zFmt, ap);
  va_end(ap);
  if (n < 0) return NULL;
  char *z = hkvMalloc((size_t)n + 1);
  if (!z) return NULL;
  va_start(ap, zFmt);
  vsnprintf(z, (size_t)n + 1, zFmt, ap);
  va_end(ap);
  return z;
}

int hkvIoCode(int iErrno) {
  return iErrno == ENOSPC || iErrno == EDQUOT ? HKV_FULL : HKV_IOERR;
}

/* Replaces *pzErr with zMsg (taking it); pzErr may be NULL. */
int hkvSetErr(char **pzErr, int rc, char *zMsg) {
  if (pzErr) {
    hkvFree(*pzErr);
    *pzErr = zMsg;
  } else {
    hkvFree(zMsg);
  }
  return rc;
}

int hkvWriteAll(int fd, const void *p, uint64_t n, uint64_t iOff) {
  const uint8_t *a = p;
  while (n > 0) {
    size_t nChunk = n > (1u << 30) ? (1u << 30) : (size_t)n;
    long w = hkvEnv->xWrite(fd, a, nChunk, iOff);
    if (w < 0) return (int)w;
    if (w == 0) return -ENOSPC; /* a write that makes no progress */
    a += w;
    n -= (uint64_t)w;
    iOff += (uint64_t)w;
  }
  return 0;
}
