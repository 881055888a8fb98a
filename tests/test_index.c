/*
** test_index.c: the hash index and the loc map on their own, with a fake
** "log": loc i names key aKey[i], so matching and rehashing need no files.
*/
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "hkvInt.h"
#include "testutil.h"

#define NKEYS 200000
static uint64_t aKeyOf[NKEYS + 100]; /* loc - 32 -> key number */

static HkvLoc locOf(uint64_t i) { return HKV_LOC(0, 32 + i); }
static uint64_t hashKey(uint64_t k) { return XXH3_64bits(&k, sizeof(k)); }

static uint64_t fakeHash(void *pCtx, HkvLoc loc) {
  (void)pCtx;
  if (loc & HKV_LOC_PREFETCH) return 0; /* a prefetch request */
  return hashKey(aKeyOf[HKV_LOC_OFF(loc) - 32]);
}

typedef struct {
  uint64_t key;
} Want;
static int fakeMatch(void *pCtx, uint64_t *pSlot) {
  Want *w = pCtx;
  return aKeyOf[HKV_LOC_OFF(HKV_SLOT_LOC(*pSlot)) - 32] == w->key;
}

static uint64_t *findKey(HkvIndex *p, uint64_t k) {
  Want w = {k};
  return hkvIndexFind(p, hashKey(k), fakeMatch, &w);
}

START_TEST(insert_find_remove_across_growth) {
  HkvEnv env = hkvPosixEnv;
  env.xMapAnon = testMapAnon;
  env.xUnmapAnon = testUnmapAnon;
  hkvEnvInstall(&env);
  *testMappedBytes() = 0;
  HkvIndex idx;
  hkvIndexInit(&idx);
  for (uint64_t i = 0; i < NKEYS; i++) {
    aKeyOf[i] = i * 7919;
    ck_rc(hkvIndexInsert(&idx, hashKey(aKeyOf[i]), locOf(i), fakeHash, 0),
          HKV_OK);
    /* Every key stays findable while migrations are under way. */
    if (i % 9973 == 0) {
      for (uint64_t j = 0; j <= i; j += 101) {
        uint64_t *p = findKey(&idx, aKeyOf[j]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(HKV_SLOT_LOC(*p), locOf(j));
      }
    }
  }
  ck_assert_uint_eq(hkvIndexLive(&idx), NKEYS);
  ck_assert_ptr_null(findKey(&idx, 3)); /* never inserted */
  /* At most 24 bytes per live key once growth has settled. */
  hkvIndexFinishMigration(&idx, fakeHash, 0);
  ck_assert_uint_le(hkvIndexBytes(&idx), 24ull * NKEYS);
  /* 512K slots (4 MiB): mapped on a 2 MiB boundary, counted exactly (one
  ** page of header), and the smaller tables it replaced all unmapped. */
  ck_assert_uint_eq(idx.cur.mask + 1, 512 * 1024);
  ck_assert_uint_eq((uintptr_t)idx.cur.a % (2u << 20), 0);
  ck_assert_uint_eq(hkvIndexBytes(&idx), 4 * 1024 * 1024 + 4096);
  ck_assert(hkvIndexHasRetired(&idx)); /* the 2 MiB table: not yet freed */
  hkvIndexReap(&idx);
  ck_assert(!hkvIndexHasRetired(&idx));
  ck_assert_int_eq(*testMappedBytes(), 4 * 1024 * 1024 + 4096);
  for (uint64_t i = 0; i < NKEYS; i += 2) {
    uint64_t *p = findKey(&idx, aKeyOf[i]);
    ck_assert_ptr_nonnull(p);
    hkvIndexRemove(&idx, p);
  }
  ck_assert_uint_eq(hkvIndexLive(&idx), NKEYS / 2);
  for (uint64_t i = 0; i < NKEYS; i++) {
    uint64_t *p = findKey(&idx, aKeyOf[i]);
    if (i % 2) {
      ck_assert_ptr_nonnull(p);
    } else {
      ck_assert_ptr_null(p);
    }
  }
  hkvIndexFree(&idx);
  ck_assert_int_eq(*testMappedBytes(), 0);
  hkvEnvInstall(NULL);
}
END_TEST

static int countOne(void *pCtx, uint64_t *pSlot) {
  (void)pSlot;
  (*(uint64_t *)pCtx)++;
  return 0;
}

START_TEST(tombstones_are_reclaimed) {
  /* Insert and remove over and over: the table must not grow forever. */
  HkvIndex idx;
  hkvIndexInit(&idx);
  for (uint64_t i = 0; i < 100000; i++) {
    aKeyOf[i] = i;
    ck_rc(hkvIndexInsert(&idx, hashKey(i), locOf(i), fakeHash, 0), HKV_OK);
    if (i >= 100) {
      uint64_t *p = findKey(&idx, i - 100);
      ck_assert_ptr_nonnull(p);
      hkvIndexRemove(&idx, p);
    }
  }
  ck_assert_uint_eq(hkvIndexLive(&idx), 100);
  ck_assert_uint_le(hkvIndexBytes(&idx), 8 * 1024);
  uint64_t n = 0;
  hkvIndexForEach(&idx, countOne, &n);
  ck_assert_uint_eq(n, 100);
  hkvIndexFree(&idx);
}
END_TEST

START_TEST(locmap_against_model) {
  HkvLocMap m;
  hkvMapInit(&m);
  static uint64_t aModel[5000];
  memset(aModel, 0, sizeof(aModel));
  srand(11);
  for (int step = 0; step < 200000; step++) {
    uint64_t k = (uint64_t)(rand() % 5000);
    HkvLoc loc = HKV_LOC(k % 7, 32 + k);
    int op = rand() % 3;
    if (op == 0) {
      ck_rc(hkvMapReserve(&m, 1), HKV_OK);
      uint64_t v = (uint64_t)rand() + 1;
      hkvMapPut(&m, loc, v);
      aModel[k] = v;
    } else if (op == 1) {
      hkvMapDel(&m, loc);
      aModel[k] = 0;
    } else {
      ck_assert_uint_eq(hkvMapGet(&m, loc), aModel[k]);
    }
  }
  uint64_t n = 0;
  for (int k = 0; k < 5000; k++) {
    ck_assert_uint_eq(hkvMapGet(&m, HKV_LOC(k % 7, 32 + k)), aModel[k]);
    n += aModel[k] != 0;
  }
  ck_assert_uint_eq(m.n, n);
  hkvMapClear(&m);
  ck_assert_uint_eq(hkvMapGet(&m, HKV_LOC(1, 33)), 0);
  hkvMapFree(&m);
}
END_TEST

int main(void) {
  Suite *s = suite_create("index");
  TCase *tc = tcase_create("index");
  tcase_set_timeout(tc, 120);
  tcase_add_test(tc, insert_find_remove_across_growth);
  tcase_add_test(tc, tombstones_are_reclaimed);
  tcase_add_test(tc, locmap_against_model);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
