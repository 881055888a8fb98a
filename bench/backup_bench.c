/*
** backup_bench.c: build/hashkv-backup-bench [DIR [MB]]. Backup speed and
** how long writers wait, side by side with copying the files by hand.
**
** Makes a store of MB (default 1024) MiB in DIR/src (4 KiB values, 64 MiB
** segments, sync=off), then, with a writer thread committing single puts
** as fast as it can and timing each, copies it four ways, in one run:
**   hkv_backup to DIR (the same file system: sealed segments hard-linked),
**   hkv_backup to /dev/shm (another file system: every byte copied),
**   cp -r to DIR, and cp -r to /dev/shm (neither consistent while the
**   writer commits: shown for the speed of copying the bytes).
** Prints, per way: seconds, MB/s (store bytes / seconds), and the writer's
** commits during it with their median and longest latency. The writer's
** longest wait is what the backup blocks it for.
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hashkv.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static hkv_db *pStore;
static _Atomic int bStop;
static double aLat[4000000];
static _Atomic long nLat;

static void *writer(void *pArg) {
  (void)pArg;
  hkv_db *db = 0;
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.auto_compact = 0;
  if (hkv_open((const char *)pArg, &o, &db)) return 0;
  char k[32], v[100];
  memset(v, 'w', sizeof(v));
  for (long i = 0; !atomic_load(&bStop); i++) {
    snprintf(k, sizeof(k), "w%ld", i % 100000);
    double t0 = now();
    if (hkv_put(db, k, strlen(k), v, sizeof(v))) break;
    long n = atomic_load(&nLat);
    if (n < (long)(sizeof(aLat) / sizeof(aLat[0]))) {
      aLat[n] = now() - t0;
      atomic_store(&nLat, n + 1);
    }
  }
  hkv_close(db);
  return 0;
}

static int cmpD(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void report(const char *zWay, double sec, double mb) {
  long n = atomic_load(&nLat);
  qsort(aLat, (size_t)n, sizeof(double), cmpD);
  printf("| %s | %.2f | %.0f | %ld | %.1f | %.1f |\n", zWay, sec, mb / sec, n,
         n ? aLat[n / 2] * 1e6 : 0, n ? aLat[n - 1] * 1e3 : 0);
  fflush(stdout);
}

/* Runs one way of copying with the writer going; zCmd for cp, else hkv. */
static void run(const char *zWay, const char *zSrc, const char *zDest,
                const char *zCmd, double mb) {
  char z[2048];
  snprintf(z, sizeof(z),
           "rm -rf %s; sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null",
           zDest);
  if (system(z)) {
  }
  atomic_store(&bStop, 0);
  atomic_store(&nLat, 0);
  pthread_t t;
  pthread_create(&t, 0, writer, (void *)zSrc);
  usleep(200000);
  atomic_store(&nLat, 0);
  double t0 = now();
  if (zCmd) {
    if (system(zCmd)) fprintf(stderr, "%s failed\n", zCmd);
  } else {
    int rc = hkv_backup(pStore, zDest, 0, 0);
    if (rc) fprintf(stderr, "backup: %s\n", hkv_errmsg(pStore));
  }
  double sec = now() - t0;
  atomic_store(&bStop, 1);
  pthread_join(t, 0);
  report(zWay, sec, mb);
  snprintf(z, sizeof(z), "rm -rf %s", zDest);
  if (system(z)) {
  }
}

int main(int argc, char **argv) {
  const char *zDir = argc > 1 ? argv[1] : "/tmp/hkv-backup-bench";
  long nMb = argc > 2 ? atol(argv[2]) : 1024;
  char zSrc[512], zDest[600], zShm[128], zCmd[2048];
  snprintf(zSrc, sizeof(zSrc), "%s/src", zDir);
  snprintf(zCmd, sizeof(zCmd), "rm -rf %s; mkdir -p %s", zDir, zDir);
  if (system(zCmd)) return 1;
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.auto_compact = 0;
  o.segment_size = 64u << 20;
  if (hkv_open(zSrc, &o, &pStore)) return 1;
  static char v[4096];
  memset(v, 'v', sizeof(v));
  long nRec = nMb * 256;
  hkv_begin(pStore);
  for (long i = 0; i < nRec; i++) {
    char k[32];
    snprintf(k, sizeof(k), "key%ld", i);
    if (hkv_put(pStore, k, strlen(k), v, sizeof(v))) return 1;
    if (i % 10000 == 9999) {
      hkv_commit(pStore);
      hkv_begin(pStore);
    }
  }
  hkv_commit(pStore);
  hkv_stats st;
  hkv_stats_get(pStore, &st);
  double mb = st.total_bytes / 1048576.0;
  printf("store: %.0f MiB in %llu segments\n\n", mb,
         (unsigned long long)st.segments);
  printf(
      "| way | seconds | MB/s | writer commits meanwhile | writer median us | "
      "writer longest ms |\n");
  printf("|---|---|---|---|---|---|\n");
  snprintf(zDest, sizeof(zDest), "%s/copy", zDir);
  snprintf(zShm, sizeof(zShm), "/dev/shm/hkv-backup-bench");
  run("hkv_backup, same file system (links)", zSrc, zDest, 0, mb);
  snprintf(zCmd, sizeof(zCmd), "cp -r %s %s", zSrc, zDest);
  run("cp -r, same file system", zSrc, zDest, zCmd, mb);
  run("hkv_backup to /dev/shm (copies)", zSrc, zShm, 0, mb);
  snprintf(zCmd, sizeof(zCmd), "cp -r %s %s", zSrc, zShm);
  run("cp -r to /dev/shm", zSrc, zShm, zCmd, mb);
  /* No copy: the writer's latencies with nothing else going on. */
  atomic_store(&bStop, 0);
  atomic_store(&nLat, 0);
  pthread_t t;
  pthread_create(&t, 0, writer, zSrc);
  double t0 = now();
  sleep(2);
  atomic_store(&bStop, 1);
  pthread_join(t, 0);
  report("nothing (the writer alone, 2 s)", now() - t0, 0.000001);
  hkv_close(pStore);
  snprintf(zCmd, sizeof(zCmd), "rm -rf %s", zDir);
  return system(zCmd) ? 1 : 0;
}
