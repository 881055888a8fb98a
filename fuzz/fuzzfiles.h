/*
** fuzzfiles.h: the framing shared by fuzz_open and make_seeds: a fuzz input
** is a sequence of files, each [u8 name length][name][u32 LE size][bytes].
** Names are limited to [0-9A-Za-z.] and 24 characters.
*/
#ifndef HKV_FUZZFILES_H
#define HKV_FUZZFILES_H
#include <stddef.h>
#include <stdint.h>

static int fuzzNameOk(const char *z, size_t n) {
  if (n == 0 || n > 24) return 0;
  if (n == 1 && z[0] == '.') return 0;
  if (n == 2 && z[0] == '.' && z[1] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = z[i];
    int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
             (c >= 'A' && c <= 'Z') || c == '.';
    if (!ok) return 0;
  }
  return 1;
}
#endif
