/*
** codec.c: SQL values to and from their stored encoding (the layout and
** the byte work are typed.h's and typed.c's), and the result buffers lent
** to SQLite.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

/* ---- buffers and encoding ---- */

static int bufReserve(HkvBuf *b, sqlite3_int64 n) {
  if (n <= b->nAlloc) return SQLITE_OK;
  sqlite3_int64 nNew = b->nAlloc ? b->nAlloc * 2 : 64;
  while (nNew < n) nNew *= 2;
  unsigned char *a = sqlite3_realloc64(b->a, (sqlite3_uint64)nNew);
  if (!a) return SQLITE_NOMEM;
  b->a = a;
  b->nAlloc = nNew;
  return SQLITE_OK;
}

int hkvBufSet(HkvBuf *b, const void *p, size_t n) {
  if (bufReserve(b, (sqlite3_int64)n + 1)) return SQLITE_NOMEM;
  if (n) memcpy(b->a, p, n);
  b->n = (sqlite3_int64)n;
  b->a[n] = 0;
  return SQLITE_OK;
}

/* Appends n bytes of p (no terminator is added). */
int hkvBufAppend(HkvBuf *b, const void *p, size_t n) {
  if (bufReserve(b, b->n + (sqlite3_int64)n + 1)) return SQLITE_NOMEM;
  if (n) memcpy(b->a + b->n, p, n);
  b->n += (sqlite3_int64)n;
  return SQLITE_OK;
}

void hkvBufFree(HkvBuf *b) {
  sqlite3_free(b->a);
  memset(b, 0, sizeof(*b));
}

/* Sets b to the encoding head a[0..nHead), then n bytes of p, then the
** terminating 0. */
static int bufEncoded(HkvBuf *b, const uint8_t *a, size_t nHead, const void *p,
                      size_t n) {
  if (bufReserve(b, (sqlite3_int64)(nHead + n) + 1)) return SQLITE_NOMEM;
  memcpy(b->a, a, nHead);
  if (n) memcpy(b->a + nHead, p, n);
  b->n = (sqlite3_int64)(nHead + n);
  b->a[b->n] = 0;
  return SQLITE_OK;
}

/* v as an HkvTyped (typed.h). A TEXT value's bytes: in a UTF-8 database
** (bUtf8) every TEXT value SQLite passes is UTF-8 already, and
** sqlite3_value_blob gives its bytes as they are ("TEXT to BLOB: no
** change"), where sqlite3_value_text would copy a value that lacks a
** terminator (any parameter bound with its length) into a fresh allocation
** first. SQLITE_NOMEM if SQLite could not give them. */
static int typedOf(sqlite3_value *v, int bUtf8, HkvTyped *t) {
  memset(t, 0, sizeof(*t));
  t->eType = sqlite3_value_type(v);
  switch (t->eType) {
    case SQLITE_INTEGER:
      t->i = sqlite3_value_int64(v);
      break;
    case SQLITE_FLOAT:
      t->r = sqlite3_value_double(v);
      break;
    case SQLITE_TEXT:
      t->p = bUtf8 ? sqlite3_value_blob(v) : sqlite3_value_text(v);
      t->n = (size_t)sqlite3_value_bytes(v);
      if (!t->p && t->n > 0) return SQLITE_NOMEM;
      break;
    case SQLITE_BLOB:
      t->p = sqlite3_value_blob(v);
      t->n = (size_t)sqlite3_value_bytes(v);
      if (!t->p && t->n > 0) return SQLITE_NOMEM;
      break;
  }
  return SQLITE_OK;
}

/*
** Encodes an SQL value as a key. Returns SQLITE_OK, SQLITE_NOMEM, or
** SQLITE_EMPTY for NULL. *peForm is HKV_KEY_REAL when the value was a REAL
** stored in integer form, HKV_KEY_NEGZERO for -0.0 (stored as 0, as SQLite
** compares them equal), else HKV_KEY_ASIS.
*/
/* TEXT or BLOB v (eType) as tag, then its bytes (as typedOf reads them),
** then the terminating 0: the common case of both encoders, without the
** HkvTyped round trip. */
static int bufBytes(HkvBuf *b, sqlite3_value *v, int eType, int bUtf8,
                    int tag) {
  const void *p = eType == SQLITE_TEXT && !bUtf8 ? sqlite3_value_text(v)
                                                 : sqlite3_value_blob(v);
  size_t n = (size_t)sqlite3_value_bytes(v);
  if (!p && n > 0) return SQLITE_NOMEM;
  if (bufReserve(b, (sqlite3_int64)n + 2)) return SQLITE_NOMEM;
  b->a[0] = (unsigned char)tag;
  if (n) memcpy(b->a + 1, p, n);
  b->n = (sqlite3_int64)n + 1;
  b->a[b->n] = 0;
  return SQLITE_OK;
}

int hkvEncodeKey(HkvBuf *b, sqlite3_value *v, int bUtf8, int *peForm) {
  HkvTyped t;
  uint8_t a[9];
  *peForm = HKV_KEY_ASIS;
  int eType = sqlite3_value_type(v);
  if (eType == SQLITE_NULL) return SQLITE_EMPTY;
  if (eType == SQLITE_TEXT || eType == SQLITE_BLOB) {
    return bufBytes(b, v, eType, bUtf8,
                    eType == SQLITE_TEXT ? HKV_TAG_TEXT : HKV_TAG_BLOB);
  }
  if (typedOf(v, bUtf8, &t)) return SQLITE_NOMEM;
  size_t nHead = hkvTypedKeyHead(&t, a, peForm);
  return bufEncoded(b, a, nHead, t.p, t.n);
}

int hkvEncodeValue(HkvBuf *b, sqlite3_value *v, int bUtf8, int eForm) {
  HkvTyped t;
  uint8_t a[9];
  int eType = sqlite3_value_type(v);
  if (eType == SQLITE_TEXT || eType == SQLITE_BLOB) {
    return bufBytes(
        b, v, eType, bUtf8,
        hkvValueTag(eType == SQLITE_TEXT ? HKV_TAG_TEXT : HKV_TAG_BLOB, eForm));
  }
  if (typedOf(v, bUtf8, &t)) return SQLITE_NOMEM;
  size_t nHead = hkvTypedValueHead(&t, eForm, a);
  return bufEncoded(b, a, nHead, t.p, t.n);
}

/*
** TEXT and BLOB results of up to HKV_RES_SMALL bytes reach SQLite without
** SQLite copying them: in a buffer of the connection's that SQLite gives
** back through resultFree once it is done with the value (when the row
** moves on, or later: an aggregate may hold it). resultFree keeps a few
** for the next rows. With SQLITE_TRANSIENT, SQLite made its own copy with
** a malloc and a free under its memory mutex per row: 410 instructions
** of a point SELECT's 3,520 (287 -> 250 ns at 10,000 keys). SQLite calls
** the destructor from calls on the owning connection only, so the pool
** needs no lock; the connection's data outlives every statement
** (hkvConnFree), and if it ever did not, the last buffer returned frees it.
*/
#define HKV_RES_SMALL 240
#define HKV_RES_POOL 4

void hkvConnRelease(HkvConn *c);

static void resultFree(void *pData) {
  HkvResBuf *b = (HkvResBuf *)((char *)pData - sizeof(HkvResBuf));
  HkvConn *c = b->pConn;
  c->nResOut--;
  if (c->nFreeRes < HKV_RES_POOL && !c->bClosing) {
    b->pNext = c->pFreeRes;
    c->pFreeRes = b;
    c->nFreeRes++;
  } else {
    sqlite3_free(b);
  }
  if (c->bClosing && c->nResOut == 0) hkvConnRelease(c);
}

/* A buffer for n bytes and a terminator, or NULL (then the caller has
** SQLite copy, as before). */
static unsigned char *resultBuf(HkvConn *c, sqlite3_int64 n) {
  if (!c || n > HKV_RES_SMALL) return 0;
  HkvResBuf *b = c->pFreeRes;
  if (b) {
    c->pFreeRes = b->pNext;
    c->nFreeRes--;
  } else {
    b = sqlite3_malloc((int)(sizeof(HkvResBuf) + HKV_RES_SMALL + 1));
    if (!b) return 0;
    b->pConn = c;
  }
  c->nResOut++;
  return (unsigned char *)(b + 1);
}

/* The result TEXT of n bytes at z (z[n] == 0). Terminated and free of NULs:
** passed with length -1, it stays marked as terminated text in SQLite, and
** sqlite3_column_text need not copy it once more to add the terminator. */
static void resultText(sqlite3_context *ctx, HkvConn *c, const unsigned char *z,
                       sqlite3_int64 n) {
  if (n < INT_MAX && z[n] == 0 && !memchr(z, 0, (size_t)n)) {
    unsigned char *zCopy = resultBuf(c, n);
    if (zCopy) {
      memcpy(zCopy, z, (size_t)n + 1); /* with the terminator */
      sqlite3_result_text(ctx, (const char *)zCopy, -1, resultFree);
    } else {
      sqlite3_result_text(ctx, (const char *)z, -1, SQLITE_TRANSIENT);
    }
  } else {
    sqlite3_result_text64(ctx, (const char *)z, (sqlite3_uint64)n,
                          SQLITE_TRANSIENT, SQLITE_UTF8);
  }
}

static void resultBlob(sqlite3_context *ctx, HkvConn *c, const unsigned char *z,
                       sqlite3_int64 n) {
  unsigned char *zCopy = resultBuf(c, n);
  if (zCopy) {
    memcpy(zCopy, z, (size_t)n);
    sqlite3_result_blob(ctx, zCopy, (int)n, resultFree);
  } else {
    sqlite3_result_blob64(ctx, z, (sqlite3_uint64)n, SQLITE_TRANSIENT);
  }
}

/* Sets the result from an encoded key or value in an HkvBuf (terminated by
** a 0 byte after its n bytes). eKeyForm (HKV_KEY_*, from the value's tag
** byte) says how a key reads back; it is HKV_KEY_ASIS for a value. */
void hkvResultEncoded(sqlite3_context *ctx, HkvConn *c, const unsigned char *p,
                      sqlite3_int64 n, int eKeyForm) {
  if (n < 1) {
    sqlite3_result_error(ctx, "hashkv: empty encoded value", -1);
    return;
  }
  /* The common tags first, as typed.c reads them (a tag byte with the
  ** KEYREAL bit goes the long way). */
  if (p[0] == HKV_TAG_TEXT) {
    resultText(ctx, c, p + 1, n - 1);
    return;
  }
  if (p[0] == HKV_TAG_BLOB) {
    resultBlob(ctx, c, p + 1, n - 1);
    return;
  }
  HkvTyped t;
  if (hkvTypedDecode(p, (size_t)n, eKeyForm, &t) == 0) {
    switch (t.eType) {
      case HKV_TYPE_NULL:
        sqlite3_result_null(ctx);
        return;
      case HKV_TYPE_INTEGER:
        sqlite3_result_int64(ctx, t.i);
        return;
      case HKV_TYPE_FLOAT:
        sqlite3_result_double(ctx, t.r);
        return;
      case HKV_TYPE_TEXT:
        resultText(ctx, c, p + 1, n - 1);
        return;
      case HKV_TYPE_BLOB:
        resultBlob(ctx, c, p + 1, n - 1);
        return;
    }
  }
  sqlite3_result_error_code(ctx, SQLITE_CORRUPT_VTAB);
}

/* ---- expires_at ----
** The column holds Unix time in seconds, INTEGER or REAL, kept to the
** millisecond (the engine's unit); NULL is never. A time at or before the
** epoch is as past as any other (the engine's 0 means never, so it becomes
** 1 ms). A value the engine cannot hold, TEXT or a BLOB is an error naming
** the column, and nothing is written. */
#define HKV_EXPIRY_MAX_S 9e12 /* seconds either side of 1970 (year 287,000) */

int hkvEncodeExpiry(HkvVtab *p, sqlite3_value *v, int64_t *piMs) {
  double r;
  switch (sqlite3_value_type(v)) {
    case SQLITE_NULL:
      *piMs = 0;
      return SQLITE_OK;
    case SQLITE_INTEGER: {
      sqlite3_int64 i = sqlite3_value_int64(v);
      if (i > -(sqlite3_int64)HKV_EXPIRY_MAX_S &&
          i < (sqlite3_int64)HKV_EXPIRY_MAX_S) { /* ms then fit easily */
        *piMs = i * 1000 > 0 ? i * 1000 : 1;
        return SQLITE_OK;
      }
      break;
    }
    case SQLITE_FLOAT:
      r = sqlite3_value_double(v) * 1000.0;
      if (r > -HKV_EXPIRY_MAX_S * 1000 && r < HKV_EXPIRY_MAX_S * 1000) {
        /* (NaN fails both tests) */
        int64_t iMs = (int64_t)(r < 0 ? r - 0.5 : r + 0.5);
        *piMs = iMs > 0 ? iMs : 1;
        return SQLITE_OK;
      }
      break;
    default:
      hkvVtabErr(p, SQLITE_MISMATCH,
                 "%s.expires_at must be INTEGER or REAL seconds since "
                 "1970, or NULL",
                 p->zName);
      return SQLITE_MISMATCH;
  }
  hkvVtabErr(p, SQLITE_MISMATCH,
             "%s.expires_at is out of range (at most 9e12 seconds either "
             "side of 1970)",
             p->zName);
  return SQLITE_MISMATCH;
}

void hkvResultExpiry(sqlite3_context *ctx, int64_t iMs) {
  if (iMs == 0) {
    sqlite3_result_null(ctx);
  } else if (iMs % 1000 == 0) {
    sqlite3_result_int64(ctx, iMs / 1000);
  } else {
    sqlite3_result_double(ctx, (double)iMs / 1000.0);
  }
}
