/*
** make_seeds.c: writes a seed corpus for fuzz_open (stores made with the
** engine: plain puts, a transaction with a savepoint rolled back, deletes, a
** compacted store with manifest and hints, keys that expire (in 2100, and
** already), before and after compaction) and for fuzz_record.
**   make_seeds OPEN_CORPUS_DIR RECORD_CORPUS_DIR
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzzfiles.h"
#include "hashkv.h"

static void put(hkv_db *db, const char *k, const char *v) {
  if (hkv_put(db, k, strlen(k), v, strlen(v))) abort();
}

/* Serialises every file of store zStore as one seed. */
static void dumpStore(const char *zStore, const char *zOut) {
  FILE *out = fopen(zOut, "wb");
  if (!out) abort();
  DIR *d = opendir(zStore);
  struct dirent *pEnt;
  while ((pEnt = readdir(d)) != 0) {
    size_t nName = strlen(pEnt->d_name);
    if (!fuzzNameOk(pEnt->d_name, nName)) continue;
    char z[512];
    snprintf(z, sizeof(z), "%s/%s", zStore, pEnt->d_name);
    FILE *f = fopen(z, "rb");
    if (!f) continue;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *a = malloc((size_t)n + 1);
    if (fread(a, 1, (size_t)n, f) != (size_t)n) abort();
    fclose(f);
    uint8_t hdr[5] = {(uint8_t)nName};
    fwrite(hdr, 1, 1, out);
    fwrite(pEnt->d_name, 1, nName, out);
    hdr[0] = (uint8_t)n;
    hdr[1] = (uint8_t)(n >> 8);
    hdr[2] = (uint8_t)(n >> 16);
    hdr[3] = (uint8_t)(n >> 24);
    fwrite(hdr, 1, 4, out);
    fwrite(a, 1, (size_t)n, out);
    free(a);
  }
  closedir(d);
  fclose(out);
}

static hkv_db *fresh(const char *zStore) {
  char z[600];
  snprintf(z, sizeof(z), "rm -rf '%s'", zStore);
  if (system(z)) abort();
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.segment_size = 4096;
  o.auto_compact = 0;
  hkv_db *db = 0;
  if (hkv_open(zStore, &o, &db)) abort();
  return db;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s OPEN_CORPUS RECORD_CORPUS\n", argv[0]);
    return 2;
  }
  mkdir(argv[1], 0755);
  mkdir(argv[2], 0755);
  char zStore[256], zOut[600];
  snprintf(zStore, sizeof(zStore), "%s/seedstore", argv[1]);
  char v[300];
  memset(v, 'v', sizeof(v) - 1);
  v[sizeof(v) - 1] = 0;

  hkv_db *db = fresh(zStore);
  put(db, "a", "1");
  put(db, "b", "2");
  hkv_close(db);
  snprintf(zOut, sizeof(zOut), "%s/seed-puts", argv[1]);
  dumpStore(zStore, zOut);

  db = fresh(zStore);
  hkv_begin(db);
  put(db, "x", "1");
  hkv_savepoint(db, 0);
  put(db, "y", "2");
  hkv_rollback_to(db, 0);
  hkv_commit(db);
  hkv_begin(db);
  put(db, "z", "never");
  hkv_prepare(db);
  hkv_rollback(db);
  hkv_delete(db, "x", 1);
  hkv_close(db);
  snprintf(zOut, sizeof(zOut), "%s/seed-txn", argv[1]);
  dumpStore(zStore, zOut);

  db = fresh(zStore);
  for (int i = 0; i < 40; i++) {
    char k[16];
    snprintf(k, sizeof(k), "k%d", i);
    put(db, k, v);
    if (i % 3 == 0) hkv_delete(db, k, strlen(k));
  }
  if (hkv_compact(db)) abort();
  put(db, "after", "compaction");
  hkv_close(db);
  snprintf(zOut, sizeof(zOut), "%s/seed-compacted", argv[1]);
  dumpStore(zStore, zOut);

  /* Keys that expire: far ahead (2100), or already (1 ms after the epoch,
  ** which deletes), and re-armed; sealed segments with hints, then the same
  ** compacted (outputs and their version 2 hints carry the expiries). */
  const int64_t iFar = 4102444800000;
  db = fresh(zStore);
  for (int i = 0; i < 40; i++) {
    char k[16];
    snprintf(k, sizeof(k), "e%d", i);
    if (hkv_put_expiring(db, k, strlen(k), v, 40 + i, iFar + i)) abort();
    if (i % 5 == 0 && hkv_expire(db, k, strlen(k), 0)) abort();
    if (i % 7 == 0 && hkv_put_expiring(db, k, strlen(k), "x", 1, 1)) abort();
  }
  hkv_close(db);
  snprintf(zOut, sizeof(zOut), "%s/seed-expiring", argv[1]);
  dumpStore(zStore, zOut);
  hkv_options oSmall;
  hkv_options_init(&oSmall);
  oSmall.segment_size = 4096;
  if (hkv_open(zStore, &oSmall, &db) || hkv_compact(db)) abort();
  hkv_close(db);
  snprintf(zOut, sizeof(zOut), "%s/seed-expiring-compacted", argv[1]);
  dumpStore(zStore, zOut);

  /* Records alone, for fuzz_record: take a segment's bytes after the header. */
  db = fresh(zStore);
  put(db, "key", "value");
  if (hkv_put_expiring(db, "ttl", 3, "v", 1, iFar)) abort();
  hkv_begin(db);
  put(db, "t", "x");
  hkv_commit(db);
  hkv_close(db);
  char zSeg[600];
  snprintf(zSeg, sizeof(zSeg), "%s/00000001.hkd", zStore);
  FILE *f = fopen(zSeg, "rb");
  uint8_t a[4096];
  size_t n = f ? fread(a, 1, sizeof(a), f) : 0;
  if (f) fclose(f);
  if (n > 32) {
    snprintf(zOut, sizeof(zOut), "%s/seed-records", argv[2]);
    FILE *o = fopen(zOut, "wb");
    fwrite(a + 32, 1, n - 32, o);
    fclose(o);
  }
  snprintf(zOut, sizeof(zOut), "rm -rf '%s'", zStore);
  if (system(zOut)) abort();
  return 0;
}
