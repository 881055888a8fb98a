/*
** typed.h: how the SQL layer stores a typed key or value as bytes, and
** back, with no SQLite in sight: ext/codec.c (the module) and tools/hkv.c
** (dump and load) both compile typed.c, so the layout is written once.
**
** Stored encoding (the engine sees bytes)
**   key:   1 tag byte + payload. 'i' + 8-byte little-endian int64 (also for
**          a REAL with an exact int64 value, so 1 and 1.0 collide as in
**          SQLite), 'r' + 8-byte IEEE double, 't' + UTF-8 bytes, 'b' + bytes.
**   value: 1 tag byte + payload: the type letter ('n' NULL, 'i', 'r', 't',
**          'b' as above) in bits 0..6; bit 0x80 set when the key was given
**          as a REAL, so it reads back as a REAL; with it, the letter in
**          upper case (bit 0x20 clear) when that REAL was -0.0, which is
**          the key 0 like 0.0 but reads back with its sign.
*/
#ifndef HKV_TYPED_H
#define HKV_TYPED_H

#include <stddef.h>
#include <stdint.h>

#define HKV_TAG_NULL 'n'
#define HKV_TAG_INT 'i'
#define HKV_TAG_REAL 'r'
#define HKV_TAG_TEXT 't'
#define HKV_TAG_BLOB 'b'
#define HKV_TAG_KEYREAL 0x80 /* value tag: the key was a REAL */
#define HKV_TAG_LOWER 0x20   /* cleared beside KEYREAL: the key was -0.0 */

/* How a key was given, beyond its encoding (kept in the value's tag). */
#define HKV_KEY_ASIS 0    /* reads back as encoded */
#define HKV_KEY_REAL 1    /* a REAL with an int64 value: reads back as REAL */
#define HKV_KEY_NEGZERO 2 /* -0.0: reads back as -0.0 */

/* Types, numbered as SQLite numbers them (SQLITE_INTEGER ... SQLITE_NULL). */
#define HKV_TYPE_INTEGER 1
#define HKV_TYPE_FLOAT 2
#define HKV_TYPE_TEXT 3
#define HKV_TYPE_BLOB 4
#define HKV_TYPE_NULL 5

/* A typed SQL value; p and n point into the bytes it was decoded from (or
** are the caller's, to encode). */
typedef struct HkvTyped {
  int eType;     /* HKV_TYPE_* */
  int64_t i;     /* INTEGER */
  double r;      /* FLOAT */
  const void *p; /* TEXT (UTF-8, no terminator) and BLOB bytes */
  size_t n;
} HkvTyped;

/* Decodes a stored key (eKeyForm from its value's tag: hkvValueKeyForm) or
** value (HKV_KEY_ASIS) into *pV. 0, or -1 if the bytes are no encoding. */
int hkvTypedDecode(const uint8_t *a, size_t n, int eKeyForm, HkvTyped *pV);

/* The head of v's encoding as a key: the tag and, for INTEGER and FLOAT,
** 8 bytes, in a[0..9); returns its length (TEXT and BLOB: 1, the payload
** v->p, v->n follows). *peForm: HKV_KEY_* (a REAL with an exact int64
** value is stored as that INTEGER). v may not be NULL. */
size_t hkvTypedKeyHead(const HkvTyped *v, uint8_t *a, int *peForm);
/* The same for a value beside a key of form eForm. */
size_t hkvTypedValueHead(const HkvTyped *v, int eForm, uint8_t *a);

/* The value's tag byte for type letter tag (lower case) beside a key of
** form eForm; and the key form a value's tag byte keeps. */
int hkvValueTag(int tag, int eForm);
int hkvValueKeyForm(int tag);

#endif /* HKV_TYPED_H */
