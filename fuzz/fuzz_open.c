/*
** fuzz_open.c: libFuzzer target that opens a store made of arbitrary files
** (segments, compaction outputs, hints, a manifest: see fuzzfiles.h) and
** uses it. Whatever the bytes, the library must return a clean code, never
** crash, hang or leak, and a store it opens must be consistent: every entry
** a scan returns reads back the same through hkv_get, with the same expiry
** (a key that expires between the two reads, on the real clock, may be
** gone by then).
*/
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzzfiles.h"
#include "hashkv.h"

int LLVMFuzzerTestOneInput(const uint8_t *a, size_t n);

static char zDir[64];

static void clearDir(void) {
  DIR *d = opendir(zDir);
  if (!d) return;
  struct dirent *pEnt;
  char z[128];
  while ((pEnt = readdir(d)) != 0) {
    if (pEnt->d_name[0] == '.' &&
        (!pEnt->d_name[1] || (pEnt->d_name[1] == '.' && !pEnt->d_name[2]))) {
      continue;
    }
    snprintf(z, sizeof(z), "%s/%s", zDir, pEnt->d_name);
    unlink(z);
  }
  closedir(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *a, size_t n) {
  if (!zDir[0]) {
    snprintf(zDir, sizeof(zDir), "/tmp/hkvfuzz.XXXXXX");
    if (!mkdtemp(zDir)) abort();
  }
  clearDir();
  size_t i = 0;
  while (i < n) {
    size_t nName = a[i++];
    if (i + nName + 4 > n) break;
    char zName[32];
    if (!fuzzNameOk((const char *)a + i, nName)) break;
    memcpy(zName, a + i, nName);
    zName[nName] = 0;
    i += nName;
    uint32_t nData = (uint32_t)a[i] | ((uint32_t)a[i + 1] << 8) |
                     ((uint32_t)a[i + 2] << 16) | ((uint32_t)a[i + 3] << 24);
    i += 4;
    if (nData > n - i) nData = (uint32_t)(n - i);
    char zPath[128];
    snprintf(zPath, sizeof(zPath), "%s/%s", zDir, zName);
    FILE *f = fopen(zPath, "wb");
    if (!f) abort();
    if (nData && fwrite(a + i, 1, nData, f) != nData) abort();
    fclose(f);
    i += nData;
  }
  hkv_options o;
  hkv_options_init(&o);
  o.sync = HKV_SYNC_OFF;
  o.segment_size = 65536;
  o.flags = HKV_OPEN_NOCREATE;
  hkv_db *db = 0;
  int rc = hkv_open(zDir, &o, &db);
  if (rc == HKV_OK) {
    hkv_iter *it = 0;
    if (hkv_iter_open(db, &it) == HKV_OK) {
      const void *pK, *pV;
      size_t nK, nV;
      int nRows = 0;
      while (nRows++ < 100000 &&
             hkv_iter_next(it, &pK, &nK, &pV, &nV) == HKV_OK) {
        /* Copy: the next call on db may invalidate the iterator's pointers
        ** only at iter_next, but keep it simple and safe. */
        uint8_t *k = malloc(nK ? nK : 1), *v = malloc(nV ? nV : 1);
        memcpy(k, pK, nK);
        memcpy(v, pV, nV);
        const void *pV2;
        size_t nV2;
        int64_t iExp = 0, iExp2 = 0;
        if (hkv_iter_expiry(it, &iExp) != HKV_OK) abort();
        int r = hkv_get(db, k, nK, &pV2, &nV2);
        if (r == HKV_OK && (nV2 != nV || memcmp(pV2, v, nV) != 0)) abort();
        int r2 = hkv_get_expiry(db, k, nK, &iExp2);
        if (r == HKV_NOTFOUND && iExp != 0) r = HKV_OK; /* expired since */
        if (r != HKV_OK && r != HKV_CORRUPT) abort();
        if (r2 == HKV_OK && iExp2 != iExp) abort();
        /* Re-arm every other key far ahead (2100), which writes. */
        if (nRows % 2) (void)hkv_expire(db, k, nK, 4102444800000);
        free(k);
        free(v);
      }
      hkv_iter_close(it);
    }
    (void)hkv_integrity_check(db);
    (void)hkv_put(db, "fuzz", 4, "v", 1);
    (void)hkv_compact(db);
  }
  hkv_close(db);
  return 0;
}
