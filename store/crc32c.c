/*
** crc32c.c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), the
** checksum of every header and record on disk.
**
** On x86-64 CPUs with SSE4.2 the crc32 instruction does 8 bytes a cycle or
** so; elsewhere a byte-at-a-time table (slice-by-8) is used. The choice is
** made once, at the first call, from cpuid. Both give the same result; the
** unit tests check them against each other and against known vectors.
*/
#include "hkvInt.h"

#include <stdatomic.h>

static uint32_t aCrcTable[8][256];
atomic_int hkvCrcMode; /* 0 unknown, 1 software, 2 hardware */

static void crcBuildTable(void) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
    aCrcTable[0][i] = c;
  }
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = aCrcTable[0][i];
    for (int t = 1; t < 8; t++) {
      c = aCrcTable[0][c & 0xFF] ^ (c >> 8);
      aCrcTable[t][i] = c;
    }
  }
}

/* Software CRC over n bytes; crc is the running (already inverted) value. */
static uint32_t crcSoft(uint32_t crc, const uint8_t *p, size_t n) {
  while (n >= 8) {
    uint32_t lo = crc ^ hkvGet32(p);
    uint32_t hi = hkvGet32(p + 4);
    crc = aCrcTable[7][lo & 0xFF] ^ aCrcTable[6][(lo >> 8) & 0xFF] ^
          aCrcTable[5][(lo >> 16) & 0xFF] ^ aCrcTable[4][lo >> 24] ^
          aCrcTable[3][hi & 0xFF] ^ aCrcTable[2][(hi >> 8) & 0xFF] ^
          aCrcTable[1][(hi >> 16) & 0xFF] ^ aCrcTable[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) crc = aCrcTable[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>
#define HKV_HAVE_HWCRC 1
__attribute__((target("sse4.2"))) static uint32_t crcHard(uint32_t crc,
                                                          const uint8_t *p,
                                                          size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t v;
    memcpy(&v, p, 8); /* x86 is little-endian, as the format wants */
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = (uint32_t)c;
  while (n--) c32 = _mm_crc32_u8(c32, *p++);
  return c32;
}
#endif

static int crcPick(void) {
  int m = atomic_load_explicit(&hkvCrcMode, memory_order_acquire);
  if (m) return m;
  crcBuildTable();
  m = 1;
#ifdef HKV_HAVE_HWCRC
  if (__builtin_cpu_supports("sse4.2")) m = 2;
#endif
  atomic_store_explicit(&hkvCrcMode, m, memory_order_release);
  return m;
}

/* Extends crc (0 to start) over p[0..n). */
uint32_t hkvCrc32c(uint32_t crc, const void *p, size_t n) {
  int m = atomic_load_explicit(&hkvCrcMode, memory_order_relaxed);
#ifdef HKV_HAVE_HWCRC
  if (m == 2) return ~crcHard(~crc, p, n); /* the common case, first */
#endif
  if (m == 0) m = crcPick();
#ifdef HKV_HAVE_HWCRC
  if (m == 2) return ~crcHard(~crc, p, n);
#endif
  return ~crcSoft(~crc, p, n);
}

/* The software path alone, for tests that compare both. */
uint32_t hkvCrc32cSoft(uint32_t crc, const void *p, size_t n);
uint32_t hkvCrc32cSoft(uint32_t crc, const void *p, size_t n) {
  crcPick();
  return ~crcSoft(~crc, p, n);
}
