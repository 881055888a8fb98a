/*
** index.c: the in-memory hash index and the loc map (the reader latch and
** the key hash are inline in hkvInt.h). It calls only the OS layer; keys
** are read back through the callbacks its callers pass.
**
** HkvIndex is open addressing with linear probing over 8-byte slots:
**
**     bits 63..48  fingerprint: the low 16 bits of the key's 64-bit hash
**     bits 47..0   HkvLoc of the key's newest record
**     0 = empty, 1 = tombstone (a removed key; probing goes past it)
**
** A key's home slot is the top log2(capacity) bits of its hash. Keys are not
** stored, so a fingerprint match is confirmed by the caller's xMatch, which
** reads the record. At most 75% of the slots are used (live + tombstones),
** and growing doubles the table, so a table is between 37.5% and 75% full of
** live keys: 10.7 to 21.3 bytes of index per live key.
**
** Growing is incremental, as in Redis's dict: the full table becomes `old`,
** a new `cur` is allocated (zero pages come lazily), and each
** insert moves the next HKV_MIGRATE_STEP slots of `old` into `cur`. The slot
** stores no position bits, so moving an entry re-hashes its key, read from
** the record through xHash: one record read per key per growth.
** Invariant while migrating: a key lives in exactly one of the two tables;
** lookups try cur, then old; an update of a key found in old moves it.
** (engine.c's lock-free readers try old first when the key's home slot
** there is not yet migrated: a freshly grown table then costs one probe,
** not two. iMigrate is stored atomically for them.) With 128 slots a
** step, a migration of C slots ends after C/128 inserts, about 1% of the
** 0.75 C inserts that fill the new table again; one insert's share of the
** work stays bounded.
**
** HkvLocMap is a plain loc -> loc map (open addressing, backward-shift
** deletion, 16-byte pairs) for the writer's before-images; see engine.c.
**
** Nothing here locks: the writer calls in holding HkvEngine.rw. Readers of
** engine.c also probe the tables without it (a sequence lock there), which
** is why every slot store is atomic (hkvSlotSet), a table's pointer is
** published last (tableSet) with its mask in the table's own header, and a
** table that leaves the index is retired (tableRetire), to be freed by
** hkvIndexReap once the engine knows no reader is in it.
*/
#include "hkvInt.h"

#define HKV_MIGRATE_STEP 128
#define HKV_MIN_BITS 4
#define HKV_FP_MASK 0xFFFF000000000000ull

/* Tables of 4 MiB and more are mapped on their own (anonymous memory, so
** zero pages come lazily), start on a 2 MiB boundary and are offered to
** the kernel for huge pages (madvise): a random probe then misses the TLB
** far less often. The mapping is trimmed to one 4 KiB page (the header)
** plus the slots; hkvIndexBytes counts exactly that. */
#define HKV_HUGE ((size_t)2 << 20)
#define HKV_HDR_PAGE ((size_t)4096)

static int tableAlloc(HkvTable *t, int nBits) {
  uint64_t n = (uint64_t)1 << nBits;
  size_t nByte = (size_t)n * sizeof(uint64_t);
  size_t nHdr = HKV_TAB_HDR * sizeof(uint64_t);
  uint8_t *pAlloc;
  size_t nMapped = 0;
  uint8_t *a;
  if (nByte >= 2 * HKV_HUGE) {
    size_t nRes = HKV_HDR_PAGE + nByte + HKV_HUGE;
    uint8_t *pRes = hkvEnv->xMapAnon(nRes);
    if (!pRes) return HKV_NOMEM;
    a = (uint8_t *)(((uintptr_t)pRes + HKV_HDR_PAGE + HKV_HUGE - 1) &
                    ~(uintptr_t)(HKV_HUGE - 1));
    pAlloc = a - HKV_HDR_PAGE;
    nMapped = HKV_HDR_PAGE + nByte;
    if (pAlloc > pRes) hkvEnv->xUnmapAnon(pRes, (size_t)(pAlloc - pRes));
    if (pRes + nRes > pAlloc + nMapped) {
      hkvEnv->xUnmapAnon(pAlloc + nMapped,
                         (size_t)(pRes + nRes - (pAlloc + nMapped)));
    }
    hkvAdviseHuge(a, nByte);
  } else {
    pAlloc = hkvCalloc(nHdr + nByte);
    if (!pAlloc) return HKV_NOMEM;
    a = pAlloc + nHdr;
  }
  t->a = (uint64_t *)a;
  t->a[HKV_TAB_MASK] = n - 1;
  t->a[HKV_TAB_ALLOC] = (uint64_t)(uintptr_t)pAlloc;
  t->a[HKV_TAB_MAPPED] = nMapped;
  t->mask = n - 1;
  t->nShift = 64 - nBits;
  t->nUsed = 0;
  t->nLive = 0;
  return HKV_OK;
}

static void tableFree(uint64_t *a) {
  void *pAlloc = (void *)(uintptr_t)a[HKV_TAB_ALLOC];
  size_t nMapped = (size_t)a[HKV_TAB_MAPPED];
  if (nMapped) {
    hkvEnv->xUnmapAnon(pAlloc, nMapped);
  } else {
    hkvFree(pAlloc);
  }
}

/* Bytes a table holds: slots and header (a page of it when mapped). */
static uint64_t tableBytes(const HkvTable *t) {
  if (!t->a) return 0;
  uint64_t nMapped = t->a[HKV_TAB_MAPPED];
  return nMapped ? nMapped : (t->mask + 1 + HKV_TAB_HDR) * sizeof(uint64_t);
}

/* Publishes *pFrom as *pTo: the slot pointer last, atomically, as readers
** without the lock load it. */
static void tableSet(HkvTable *pTo, const HkvTable *pFrom) {
  pTo->mask = pFrom->mask;
  pTo->nShift = pFrom->nShift;
  pTo->nUsed = pFrom->nUsed;
  pTo->nLive = pFrom->nLive;
  __atomic_store_n(&pTo->a, pFrom->a, __ATOMIC_RELEASE);
}

static void tableClear(HkvTable *t) {
  static const HkvTable empty;
  tableSet(t, &empty);
}

/* Hands a table no longer published to hkvIndexReap. */
static void tableRetire(HkvIndex *p, HkvTable *t) {
  uint64_t *a = t->a;
  if (!a) return;
  tableClear(t);
  uint64_t *pHead = atomic_load(&p->pRetired);
  do {
    a[HKV_TAB_NEXT] = (uint64_t)(uintptr_t)pHead;
  } while (!atomic_compare_exchange_weak(&p->pRetired, &pHead, a));
}

static int tableBits(const HkvTable *t) { return 64 - t->nShift; }

static uint64_t *tableFind(HkvTable *t, uint64_t h, HkvMatch xMatch,
                           void *pCtx) {
  if (!t->a) return NULL;
  uint64_t fp = HKV_FP(h);
  uint64_t i = h >> t->nShift;
  for (;;) {
    uint64_t s = t->a[i];
    if (s == HKV_SLOT_EMPTY) return NULL;
    if (s != HKV_SLOT_TOMB && (s & HKV_FP_MASK) == fp &&
        xMatch(pCtx, &t->a[i])) {
      return &t->a[i];
    }
    i = (i + 1) & t->mask;
  }
}

/* Stores a key known to be absent; the caller guarantees room. */
static void tablePut(HkvTable *t, uint64_t h, HkvLoc loc) {
  uint64_t i = h >> t->nShift;
  while (t->a[i] > HKV_SLOT_TOMB) i = (i + 1) & t->mask;
  if (t->a[i] == HKV_SLOT_EMPTY) t->nUsed++;
  hkvSlotSet(&t->a[i], HKV_FP(h) | loc);
  t->nLive++;
}

static int tableFull(const HkvTable *t, uint64_t nMore) {
  return (t->nUsed + nMore) * 4 > (t->mask + 1) * 3;
}

void hkvIndexInit(HkvIndex *p) {
  memset(p, 0, sizeof(*p));
  atomic_init(&p->pRetired, NULL);
}

void hkvIndexReset(HkvIndex *p) {
  tableRetire(p, &p->cur);
  tableRetire(p, &p->old);
  __atomic_store_n(&p->iMigrate, 0, __ATOMIC_RELAXED);
}

int hkvIndexHasRetired(HkvIndex *p) {
  return atomic_load_explicit(&p->pRetired, memory_order_relaxed) != NULL;
}

void hkvIndexReap(HkvIndex *p) {
  uint64_t *a = atomic_exchange(&p->pRetired, NULL);
  while (a) {
    uint64_t *pNext = (uint64_t *)(uintptr_t)a[HKV_TAB_NEXT];
    tableFree(a);
    a = pNext;
  }
}

void hkvIndexFree(HkvIndex *p) {
  hkvIndexReset(p);
  hkvIndexReap(p);
}

/* Moves the live slots among the next nSlot slots of the old table into
** the new one. Keys are not stored, so each move reads its record to hash
** the key: in batches, whose records and target slots are prefetched first
** so that the batch's cache misses overlap. */
static void migrateStep(HkvIndex *p, uint64_t nSlot, HkvHashAt xHash,
                        void *pCtx) {
  enum { BATCH = 32 };
  HkvTable *o = &p->old;
  uint64_t nCap = o->mask + 1;
  while (nSlot > 0 && p->iMigrate < nCap) {
    uint64_t aIdx[BATCH], aHash[BATCH];
    HkvLoc aLoc[BATCH];
    int n = 0;
    uint64_t i = p->iMigrate;
    for (; n < BATCH && nSlot > 0 && i < nCap; i++, nSlot--) {
      uint64_t s = o->a[i];
      if (s > HKV_SLOT_TOMB) {
        aIdx[n] = i;
        aLoc[n] = HKV_SLOT_LOC(s);
        xHash(pCtx, aLoc[n] | HKV_LOC_PREFETCH);
        n++;
      }
    }
    for (int k = 0; k < n; k++) {
      aHash[k] = xHash(pCtx, aLoc[k]);
      __builtin_prefetch(&p->cur.a[aHash[k] >> p->cur.nShift]);
    }
    for (int k = 0; k < n; k++) {
      tablePut(&p->cur, aHash[k], aLoc[k]);
      hkvSlotSet(&o->a[aIdx[k]], HKV_SLOT_TOMB);
      o->nLive--;
    }
    __atomic_store_n(&p->iMigrate, i, __ATOMIC_RELAXED);
  }
  if (p->iMigrate >= nCap) {
    tableRetire(p, o);
    __atomic_store_n(&p->iMigrate, 0, __ATOMIC_RELAXED);
  }
}

void hkvIndexFinishMigration(HkvIndex *p, HkvHashAt xHash, void *pCtx) {
  if (p->old.a) migrateStep(p, UINT64_MAX, xHash, pCtx);
}

/*
** Makes sure nMore inserts fit without allocating. May start a migration
** (allocating the new table) after finishing the one under way. On NOMEM
** nothing changed.
*/
int hkvIndexReserve(HkvIndex *p, uint64_t nMore, HkvHashAt xHash, void *pCtx) {
  if (!p->cur.a) {
    HkvTable t;
    if (tableAlloc(&t, HKV_MIN_BITS)) return HKV_NOMEM;
    tableSet(&p->cur, &t);
    return HKV_OK;
  }
  while (tableFull(&p->cur, nMore)) {
    HkvTable t;
    uint64_t nLive = p->cur.nLive + p->old.nLive + nMore;
    int nBits = tableBits(&p->cur);
    while (nLive * 2 > ((uint64_t)1 << nBits)) nBits++;
    if (tableAlloc(&t, nBits)) return HKV_NOMEM;
    hkvIndexFinishMigration(p, xHash, pCtx);
    tableSet(&p->old, &p->cur);
    tableSet(&p->cur, &t);
    __atomic_store_n(&p->iMigrate, 0, __ATOMIC_RELAXED);
    if (nMore > 1) hkvIndexFinishMigration(p, xHash, pCtx);
  }
  return HKV_OK;
}

/* Starts loading the home slot of hash h into the cache. */
void hkvIndexPrefetch(const HkvIndex *p, uint64_t h) {
  if (p->cur.a) __builtin_prefetch(&p->cur.a[h >> p->cur.nShift]);
  if (p->old.a) __builtin_prefetch(&p->old.a[h >> p->old.nShift]);
}

/* The slot at h's home position in the current table (0 if none): a guess
** at where h's key lives, for prefetching its record. */
uint64_t hkvIndexHomeSlot(const HkvIndex *p, uint64_t h) {
  return p->cur.a ? p->cur.a[h >> p->cur.nShift] : 0;
}

/* 1 if nMore inserts would allocate (hkvIndexReserve has work to do). */
int hkvIndexNeedsRoom(const HkvIndex *p, uint64_t nMore) {
  return !p->cur.a || tableFull(&p->cur, nMore);
}

uint64_t *hkvIndexFind(HkvIndex *p, uint64_t h, HkvMatch xMatch, void *pCtx) {
  uint64_t *pSlot = tableFind(&p->cur, h, xMatch, pCtx);
  if (!pSlot && p->old.a) pSlot = tableFind(&p->old, h, xMatch, pCtx);
  return pSlot;
}

/* Inserts a key that is in neither table. NOMEM leaves the index as it was. */
int hkvIndexInsert(HkvIndex *p, uint64_t h, HkvLoc loc, HkvHashAt xHash,
                   void *pCtx) {
  int rc = hkvIndexReserve(p, 1, xHash, pCtx);
  if (rc) return rc;
  tablePut(&p->cur, h, loc);
  if (p->old.a) migrateStep(p, HKV_MIGRATE_STEP, xHash, pCtx);
  return HKV_OK;
}

void hkvIndexRemove(HkvIndex *p, uint64_t *pSlot) {
  HkvTable *t = &p->cur;
  if (p->old.a && pSlot >= p->old.a && pSlot <= p->old.a + p->old.mask) {
    t = &p->old;
  }
  hkvSlotSet(pSlot, HKV_SLOT_TOMB);
  t->nLive--;
}

uint64_t hkvIndexLive(const HkvIndex *p) { return p->cur.nLive + p->old.nLive; }

uint64_t hkvIndexBytes(const HkvIndex *p) {
  return tableBytes(&p->cur) + tableBytes(&p->old);
}

int hkvIndexForEach(HkvIndex *p, int (*x)(void *, uint64_t *), void *pCtx) {
  HkvTable *aT[2] = {&p->cur, &p->old};
  for (int k = 0; k < 2; k++) {
    HkvTable *t = aT[k];
    if (!t->a) continue;
    for (uint64_t i = 0; i <= t->mask; i++) {
      if (t->a[i] > HKV_SLOT_TOMB) {
        int rc = x(pCtx, &t->a[i]);
        if (rc) return rc;
      }
    }
  }
  return 0;
}

uint64_t hkvIndexCollect(const HkvIndex *p, HkvLoc *a, uint64_t nMax) {
  const HkvTable *aT[2] = {&p->cur, &p->old};
  uint64_t n = 0;
  for (int k = 0; k < 2; k++) {
    const uint64_t *aSlot = aT[k]->a;
    if (!aSlot) continue;
    uint64_t nSlot = aT[k]->mask + 1;
    /* Without a branch on the slot (half the slots are live: a branch on
    ** it is mispredicted every other time): a[n] is written for every slot
    ** and kept for a live one. */
    uint64_t i = 0;
    for (; i < nSlot && n < nMax; i++) {
      uint64_t sl = aSlot[i];
      a[n] = HKV_SLOT_LOC(sl);
      n += sl > HKV_SLOT_TOMB;
    }
    /* Full: one more live slot would mean the counts are wrong. */
    for (; i < nSlot; i++) {
      if (aSlot[i] > HKV_SLOT_TOMB) return nMax + 1;
    }
  }
  return n;
}

/* ---- HkvLocMap ---- */

static uint64_t mapHome(const HkvLocMap *m, HkvLoc k) {
  return ((k * 0x9E3779B97F4A7C15ull) >> 20) & m->mask;
}

void hkvMapInit(HkvLocMap *m) { memset(m, 0, sizeof(*m)); }

void hkvMapFree(HkvLocMap *m) {
  hkvFree(m->a);
  memset(m, 0, sizeof(*m));
}

void hkvMapClear(HkvLocMap *m) {
  if (m->n == 0) return;
  if (m->mask >= 1024) {
    hkvMapFree(m);
  } else {
    memset(m->a, 0, (m->mask + 1) * 2 * sizeof(uint64_t));
    m->n = 0;
  }
}

int hkvMapNeedsRoom(const HkvLocMap *m, uint64_t nMore) {
  return !m->a || (m->n + nMore) * 2 > m->mask + 1;
}

int hkvMapReserve(HkvLocMap *m, uint64_t nMore) {
  uint64_t nCap = m->a ? m->mask + 1 : 0;
  if ((m->n + nMore) * 2 <= nCap) return HKV_OK;
  uint64_t nNew = nCap ? nCap : 16;
  while ((m->n + nMore) * 2 > nNew) nNew *= 2;
  uint64_t *aNew = hkvCalloc((size_t)nNew * 2 * sizeof(uint64_t));
  if (!aNew) return HKV_NOMEM;
  HkvLocMap old = *m;
  m->a = aNew;
  m->mask = nNew - 1;
  m->n = 0;
  for (uint64_t i = 0; i < nCap; i++) {
    if (old.a[2 * i]) hkvMapPut(m, old.a[2 * i], old.a[2 * i + 1]);
  }
  hkvFree(old.a);
  return HKV_OK;
}

void hkvMapPut(HkvLocMap *m, HkvLoc k, HkvLoc v) {
  uint64_t i = mapHome(m, k);
  while (m->a[2 * i] && m->a[2 * i] != k) i = (i + 1) & m->mask;
  if (!m->a[2 * i]) m->n++;
  m->a[2 * i] = k;
  m->a[2 * i + 1] = v;
}

HkvLoc hkvMapGet(const HkvLocMap *m, HkvLoc k) {
  if (!m->a) return 0;
  uint64_t i = mapHome(m, k);
  while (m->a[2 * i]) {
    if (m->a[2 * i] == k) return m->a[2 * i + 1];
    i = (i + 1) & m->mask;
  }
  return 0;
}

void hkvMapDel(HkvLocMap *m, HkvLoc k) {
  if (!m->a) return;
  uint64_t i = mapHome(m, k);
  while (m->a[2 * i] != k) {
    if (!m->a[2 * i]) return;
    i = (i + 1) & m->mask;
  }
  /* Backward-shift: pull later members of the cluster into the hole when
  ** the hole lies between their home and their slot. */
  uint64_t j = i;
  for (;;) {
    m->a[2 * i] = 0;
    for (;;) {
      j = (j + 1) & m->mask;
      if (!m->a[2 * j]) {
        m->n--;
        return;
      }
      uint64_t h = mapHome(m, m->a[2 * j]);
      int bStay = (i <= j) ? (i < h && h <= j) : (i < h || h <= j);
      if (!bStay) break;
    }
    m->a[2 * i] = m->a[2 * j];
    m->a[2 * i + 1] = m->a[2 * j + 1];
    i = j;
  }
}
