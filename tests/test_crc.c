/* test_crc.c: CRC-32C against published vectors, hardware (called and
** inline) against software. */
#include "hkvInt.h"
#include "testutil.h"

uint32_t hkvCrc32cSoft(uint32_t crc, const void *p, size_t n);

START_TEST(known_vectors) {
  /* RFC 3720 (iSCSI) B.4 and the classic check value. */
  ck_assert_uint_eq(hkvCrc32c(0, "123456789", 9), 0xE3069283u);
  uint8_t a[32];
  memset(a, 0, sizeof(a));
  ck_assert_uint_eq(hkvCrc32c(0, a, 32), 0x8A9136AAu);
  memset(a, 0xFF, sizeof(a));
  ck_assert_uint_eq(hkvCrc32c(0, a, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) a[i] = (uint8_t)i;
  ck_assert_uint_eq(hkvCrc32c(0, a, 32), 0x46DD794Eu);
  ck_assert_uint_eq(hkvCrc32c(0, a, 0), 0u);
}
END_TEST

START_TEST(hardware_matches_software) {
  uint8_t a[1000];
  srand(7);
  for (size_t i = 0; i < sizeof(a); i++) a[i] = (uint8_t)rand();
  for (size_t n = 0; n < sizeof(a); n += 7) {
    for (size_t off = 0; off < 9; off++) {
      if (off + n > sizeof(a)) break;
      ck_assert_uint_eq(hkvCrc32c(0, a + off, n), hkvCrc32cSoft(0, a + off, n));
      /* The read path's inline copy (assembly on x86-64). */
      ck_assert_uint_eq(hkvCrc32cInline(a + off, n),
                        hkvCrc32cSoft(0, a + off, n));
    }
  }
  /* Extending in pieces equals one pass. */
  uint32_t c = hkvCrc32c(0, a, 100);
  c = hkvCrc32c(c, a + 100, 900);
  ck_assert_uint_eq(c, hkvCrc32c(0, a, 1000));
}
END_TEST

int main(void) {
  Suite *s = suite_create("crc32c");
  TCase *tc = tcase_create("crc");
  tcase_add_test(tc, known_vectors);
  tcase_add_test(tc, hardware_matches_software);
  suite_add_tcase(s, tc);
  return runSuite(s);
}
