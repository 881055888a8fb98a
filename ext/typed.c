/*
** typed.c: the stored encoding of typed keys and values (layout in
** typed.h), pure byte work shared by the module and the hkv tool.
*/
#include "typed.h"

#include <string.h>

static void put64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return v;
}

/* 1 if d is integral and exactly representable as an int64. */
static int realIsInt(double d, int64_t *pi) {
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) return 0;
  int64_t i = (int64_t)d;
  if ((double)i != d) return 0;
  *pi = i;
  return 1;
}

int hkvValueTag(int tag, int eForm) {
  if (eForm == HKV_KEY_REAL) return tag | HKV_TAG_KEYREAL;
  if (eForm == HKV_KEY_NEGZERO) return (tag & ~HKV_TAG_LOWER) | HKV_TAG_KEYREAL;
  return tag;
}

int hkvValueKeyForm(int tag) {
  if (!(tag & HKV_TAG_KEYREAL)) return HKV_KEY_ASIS;
  return (tag & HKV_TAG_LOWER) ? HKV_KEY_REAL : HKV_KEY_NEGZERO;
}

int hkvTypedDecode(const uint8_t *a, size_t n, int eKeyForm, HkvTyped *pV) {
  memset(pV, 0, sizeof(*pV));
  if (n < 1) return -1;
  int tag = a[0] & 0x7F;
  if (a[0] & HKV_TAG_KEYREAL) tag |= HKV_TAG_LOWER;
  uint64_t u;
  switch (tag) {
    case HKV_TAG_NULL:
      if (n != 1) return -1;
      pV->eType = HKV_TYPE_NULL;
      return 0;
    case HKV_TAG_INT:
      if (n != 9) return -1;
      u = get64(a + 1);
      if (eKeyForm == HKV_KEY_NEGZERO && u == 0) {
        pV->eType = HKV_TYPE_FLOAT;
        pV->r = -0.0;
      } else if (eKeyForm != HKV_KEY_ASIS) {
        pV->eType = HKV_TYPE_FLOAT;
        pV->r = (double)(int64_t)u;
      } else {
        pV->eType = HKV_TYPE_INTEGER;
        pV->i = (int64_t)u;
      }
      return 0;
    case HKV_TAG_REAL:
      if (n != 9) return -1;
      u = get64(a + 1);
      pV->eType = HKV_TYPE_FLOAT;
      memcpy(&pV->r, &u, 8);
      return 0;
    case HKV_TAG_TEXT:
    case HKV_TAG_BLOB:
      pV->eType = tag == HKV_TAG_TEXT ? HKV_TYPE_TEXT : HKV_TYPE_BLOB;
      pV->p = a + 1;
      pV->n = n - 1;
      return 0;
  }
  return -1;
}

size_t hkvTypedKeyHead(const HkvTyped *v, uint8_t *a, int *peForm) {
  int64_t i = v->i;
  *peForm = HKV_KEY_ASIS;
  uint64_t u;
  switch (v->eType) {
    case HKV_TYPE_FLOAT:
      memcpy(&u, &v->r, 8);
      if (!realIsInt(v->r, &i)) {
        a[0] = HKV_TAG_REAL;
        put64(a + 1, u);
        return 9;
      }
      /* Stored as the integer it equals. */
      *peForm = u == (uint64_t)1 << 63 ? HKV_KEY_NEGZERO : HKV_KEY_REAL;
      a[0] = HKV_TAG_INT;
      put64(a + 1, (uint64_t)i);
      return 9;
    case HKV_TYPE_INTEGER:
      a[0] = HKV_TAG_INT;
      put64(a + 1, (uint64_t)i);
      return 9;
    case HKV_TYPE_TEXT:
      a[0] = HKV_TAG_TEXT;
      return 1;
    default:
      a[0] = HKV_TAG_BLOB;
      return 1;
  }
}

size_t hkvTypedValueHead(const HkvTyped *v, int eForm, uint8_t *a) {
  uint64_t u;
  switch (v->eType) {
    case HKV_TYPE_NULL:
      a[0] = (uint8_t)hkvValueTag(HKV_TAG_NULL, eForm);
      return 1;
    case HKV_TYPE_INTEGER:
      a[0] = (uint8_t)hkvValueTag(HKV_TAG_INT, eForm);
      put64(a + 1, (uint64_t)v->i);
      return 9;
    case HKV_TYPE_FLOAT:
      memcpy(&u, &v->r, 8);
      a[0] = (uint8_t)hkvValueTag(HKV_TAG_REAL, eForm);
      put64(a + 1, u);
      return 9;
    case HKV_TYPE_TEXT:
      a[0] = (uint8_t)hkvValueTag(HKV_TAG_TEXT, eForm);
      return 1;
    default:
      a[0] = (uint8_t)hkvValueTag(HKV_TAG_BLOB, eForm);
      return 1;
  }
}
