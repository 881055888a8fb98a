/*
** fuzz_record.c: libFuzzer target for the record decoder. Any bytes: the
** decoder must never read past them, and what it accepts must lie inside.
*/
#include "hkvInt.h"

int LLVMFuzzerTestOneInput(const uint8_t *a, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *a, size_t n) {
  HkvRec rec;
  if (hkvDecodeRecord(a, n, &rec) == 0) {
    if (rec.nRec > n) __builtin_trap();
    if (rec.pKey < a || rec.pKey + rec.nKey > a + n) __builtin_trap();
    if (rec.pVal + rec.nVal > a + n) __builtin_trap();
    (void)hkvVerifyRecord(a, &rec);
  }
  return 0;
}
