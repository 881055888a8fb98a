/*
** scan.c: every plan that walks the snapshot (hkv_iter) rather than looking
** keys up: the full scan, and the filtered scan that drops rows by their
** key before it reads their values, returning them in key order when
** SQLite asks and the plan has a filter (the match set is then expected to
** be small, and sorted here).
**
** What a scan plan carries (idxStr, space-separated tokens, as EXPLAIN
** QUERY PLAN shows it after "INDEX 0:" or "INDEX 3:")
**   gt ge lt le   key > ?, >= ?, < ?, <= ? (also BETWEEN): one argv each,
**                 in argv order
**   glob like     key GLOB ?, key LIKE ? (two-argument LIKE only): one argv
**   cols:key+value | cols:key | cols:value | cols:none
**                 the columns SQLite reads (colUsed); count(*) reads none
**   order:asc | order:desc
**                 the rows come sorted by key (orderByConsumed)
**
** Exactness. Every pushed constraint stays SQLite's too (omit = 0): the
** filter here is a pre-filter that never drops a row SQLite would keep, and
** SQLite evaluates the constraint again on the few rows that pass. It is
** exact on almost every row, so SQLite's check costs little:
**   - Order across types is SQLite's (NULL < INTEGER and REAL, compared by
**     value < TEXT < BLOB; TEXT and BLOB by memcmp, then length: BINARY),
**     in a UTF-8 database only (BINARY compares UTF-16 elsewhere), for a
**     BINARY comparison only (sqlite3_vtab_collation). A NULL bound
**     matches nothing.
**   - A comparison whose other side has numeric affinity (a typed column,
**     a CAST) applies it to the key: TEXT keys that look like numbers
**     ('5', ' 1e3') compare as numbers then. xBestIndex cannot see that
**     affinity, so a TEXT key that may look like a number (its first
**     non-space byte is a digit, a sign or '.') always passes the range
**     filter; SQLite decides.
**   - GLOB and LIKE: the pattern's literal prefix, up to its first
**     wildcard ("*?[" or "%_"), its first non-ASCII byte (the built-in
**     functions compare decoded characters; ASCII ones decode from one
**     byte only) or a NUL. TEXT and BLOB keys must start with it (for LIKE,
**     ASCII case folded, as the built-in like() does unless PRAGMA
**     case_sensitive_like is on); INTEGER and REAL keys, which the
**     functions see as their text, pass. Which like() is in force is asked
**     of SQLite at each xFilter ('a' LIKE 'A', 'é' LIKE 'É'): if it is
**     neither built-in behaviour (an application's or ICU's like()), no
**     LIKE prefix filters. A pattern that is not TEXT filters nothing.
**   - The value is read (and the record's checksum checked) only for rows
**     that pass and whose columns SQLite reads: a filtered count(*) reads
**     headers and keys only, an unfiltered one no record (hkv_iter_skip).
** Order. With order:*, the rows that pass are copied and sorted by the
** same comparison (exact: ORDER BY key compares the column as stored, no
** affinity), so the claim holds for the rows SQLite keeps. A full scan
** never claims an order: its rows come in log order.
*/
#include <stdlib.h>
#include <string.h>

#include "hkv_ext.h"

/* ---- the order of encoded keys ---- */

static sqlite3_int64 getI64(const unsigned char *p) {
  sqlite3_uint64 v = 0;
  for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
  return (sqlite3_int64)v;
}

static double getReal(const unsigned char *p) {
  sqlite3_uint64 v = (sqlite3_uint64)getI64(p);
  double d;
  memcpy(&d, &v, 8);
  return d;
}

/* SQLite's place of a type in its order: numbers, TEXT, BLOB. */
static int typeRank(int tag) {
  return tag == HKV_TAG_TEXT ? 2 : tag == HKV_TAG_BLOB ? 3 : 1;
}

/* <0, 0, >0 as integer i compares with real r, exactly (not through a
** double, which rounds integers past 2^53). r is never NaN: SQLite stores
** none. */
static int cmpIntReal(sqlite3_int64 i, double r) {
  if (r < -9223372036854775808.0) return 1;
  if (r >= 9223372036854775808.0) return -1;
  sqlite3_int64 y = (sqlite3_int64)r; /* r truncated toward 0 */
  if (i != y) return i < y ? -1 : 1;
  /* i is r's integer part: r's fraction decides (exact: |i| <= 2^53 here
  ** or r is integral). */
  double s = (double)i;
  return s < r ? -1 : s > r ? 1 : 0;
}

int hkvKeyCompare(const unsigned char *a, sqlite3_int64 na,
                  const unsigned char *b, sqlite3_int64 nb) {
  int ta = a[0], tb = b[0];
  int ra = typeRank(ta), rb = typeRank(tb);
  if (ra != rb) return ra - rb;
  if (ra == 1) {
    if (na != 9 || nb != 9) return (int)(na - nb); /* corrupt: any order */
    if (ta == HKV_TAG_INT && tb == HKV_TAG_INT) {
      sqlite3_int64 x = getI64(a + 1), y = getI64(b + 1);
      return x < y ? -1 : x > y;
    }
    if (ta == HKV_TAG_REAL && tb == HKV_TAG_REAL) {
      double x = getReal(a + 1), y = getReal(b + 1);
      return x < y ? -1 : x > y;
    }
    if (ta == HKV_TAG_INT) return cmpIntReal(getI64(a + 1), getReal(b + 1));
    return -cmpIntReal(getI64(b + 1), getReal(a + 1));
  }
  sqlite3_int64 n = na < nb ? na : nb;
  int c = n > 1 ? memcmp(a + 1, b + 1, (size_t)n - 1) : 0;
  if (c) return c;
  return na < nb ? -1 : na > nb;
}

/* 1 if TEXT payload z (n bytes) may read as a number under numeric
** affinity: its first byte after white space is a digit, sign or '.'. */
static int mayBeNumber(const unsigned char *z, sqlite3_int64 n) {
  sqlite3_int64 i = 0;
  while (i < n && (z[i] == ' ' || (z[i] >= '\t' && z[i] <= '\r'))) i++;
  if (i == n) return 0;
  int c = z[i];
  return (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
}

/* ---- planning ---- */

/* The constraint operators pushed, by token. */
static const struct {
  const char *zTok;
  int op;
} aOp[] = {
    {"gt", SQLITE_INDEX_CONSTRAINT_GT},
    {"ge", SQLITE_INDEX_CONSTRAINT_GE},
    {"lt", SQLITE_INDEX_CONSTRAINT_LT},
    {"le", SQLITE_INDEX_CONSTRAINT_LE},
    {"glob", SQLITE_INDEX_CONSTRAINT_GLOB},
    {"like", SQLITE_INDEX_CONSTRAINT_LIKE},
};
#define NOP ((int)(sizeof(aOp) / sizeof(aOp[0])))

int hkvScanPlan(HkvVtab *p, sqlite3_index_info *pInfo, double nRows) {
  char *zStr = sqlite3_mprintf("%s", "");
  int nArg = 0, nRange = 0, nPrefix = 0;
  for (int i = 0; zStr && i < pInfo->nConstraint && nArg < HKV_MAX_TERMS; i++) {
    const struct sqlite3_index_constraint *pC = &pInfo->aConstraint[i];
    if (!pC->usable || pC->iColumn != HKV_COL_KEY) continue;
    int k = 0;
    while (k < NOP && aOp[k].op != pC->op) k++;
    if (k == NOP) continue;
    int bPrefix = pC->op == SQLITE_INDEX_CONSTRAINT_GLOB ||
                  pC->op == SQLITE_INDEX_CONSTRAINT_LIKE;
    if (!bPrefix) {
      const char *zColl = sqlite3_vtab_collation(pInfo, i);
      if (!p->bUtf8 || (zColl && sqlite3_stricmp(zColl, "BINARY") != 0)) {
        continue;
      }
    }
    pInfo->aConstraintUsage[i].argvIndex = ++nArg;
    pInfo->aConstraintUsage[i].omit = 0; /* a pre-filter: see the top */
    if (bPrefix) {
      nPrefix++;
    } else {
      nRange++;
    }
    char *z = sqlite3_mprintf("%s%s ", zStr, aOp[k].zTok);
    sqlite3_free(zStr);
    zStr = z;
  }
  sqlite3_uint64 mUsed = pInfo->colUsed;
  int bKey = (mUsed >> HKV_COL_KEY) & 1, bVal = (mUsed >> HKV_COL_VALUE) & 1;
  const char *zCols = bKey && bVal ? "key+value"
                      : bKey       ? "key"
                      : bVal       ? "value"
                                   : "none";
  /* The estimates: a filter reads keys, not values; a range keeps a
  ** quarter per bound, a prefix a hundredth (SQLite's own guesses are of
  ** this kind). Order is claimed only over a filter's (small) match. */
  double nOut = nRows;
  for (int i = 0; i < nRange; i++) nOut /= 4;
  for (int i = 0; i < nPrefix; i++) nOut /= 100;
  const char *zOrder = "";
  if (nArg > 0 && p->bUtf8 && pInfo->nOrderBy >= 1 &&
      pInfo->aOrderBy[0].iColumn == HKV_COL_KEY) {
    /* Later terms cannot matter: the key is unique. */
    zOrder = pInfo->aOrderBy[0].desc ? " order:desc" : " order:asc";
    pInfo->orderByConsumed = 1;
  }
  if (zStr) {
    char *z = sqlite3_mprintf("%scols:%s%s", zStr, zCols, zOrder);
    sqlite3_free(zStr);
    zStr = z;
  }
  if (!zStr) return SQLITE_NOMEM;
  pInfo->idxStr = zStr;
  pInfo->needToFreeIdxStr = 1;
  pInfo->idxNum = nArg ? HKV_PLAN_FILTER : HKV_PLAN_SCAN;
  pInfo->estimatedRows = (sqlite3_int64)(nOut < 1 ? 1 : nOut);
  pInfo->estimatedCost =
      100.0 + (nArg ? 1.0 : 2.0) * nRows + (zOrder[0] ? nOut : 0);
  return SQLITE_OK;
}

/* ---- the filter ---- */

/* Which like() is in force: 1 the built-in, ASCII case folded; 0 the
** built-in after PRAGMA case_sensitive_like = ON; -1 another (no LIKE
** prefix may filter). */
static int likeMode(sqlite3 *db) {
  sqlite3_stmt *pStmt = 0;
  int eMode = -1;
  if (sqlite3_prepare_v2(db,
                         "SELECT 'a' LIKE 'A', 'ab' LIKE 'a%', "
                         "'\xc3\xa9' LIKE '\xc3\x89', 'aB' LIKE 'A_', "
                         "'xab' LIKE 'ab%', 'ba' LIKE 'a%'",
                         -1, &pStmt, 0) == SQLITE_OK &&
      sqlite3_step(pStmt) == SQLITE_ROW) {
    int bFold = sqlite3_column_int(pStmt, 0);
    if (sqlite3_column_int(pStmt, 1) == 1 &&
        sqlite3_column_int(pStmt, 2) == 0 &&
        sqlite3_column_int(pStmt, 3) == bFold &&
        sqlite3_column_int(pStmt, 4) == 0 &&
        sqlite3_column_int(pStmt, 5) == 0) {
      eMode = bFold;
    }
  }
  sqlite3_finalize(pStmt);
  return eMode;
}

/* 1 if GLOB behaves as the built-in one on a few probes (case-sensitive,
** anchored at the start), so a pattern's literal prefix must begin every
** match; 0 for an application's own glob() that does not. */
static int globIsBuiltin(sqlite3 *db) {
  sqlite3_stmt *pStmt = 0;
  int bOk = 0;
  if (sqlite3_prepare_v2(db,
                         "SELECT 'ab' GLOB 'a*', 'a' GLOB 'A', "
                         "'xab' GLOB 'ab*', 'Ab' GLOB 'a*'",
                         -1, &pStmt, 0) == SQLITE_OK &&
      sqlite3_step(pStmt) == SQLITE_ROW) {
    bOk = sqlite3_column_int(pStmt, 0) == 1 &&
          sqlite3_column_int(pStmt, 1) == 0 &&
          sqlite3_column_int(pStmt, 2) == 0 &&
          sqlite3_column_int(pStmt, 3) == 0;
  }
  sqlite3_finalize(pStmt);
  return bOk;
}

static int asciiLower(int c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

/* Sets term t's prefix from pattern v: its literal bytes up to the first
** wildcard, non-ASCII byte or NUL. No prefix: the term filters nothing. */
static int termPrefix(HkvKeyTerm *t, sqlite3_value *v, int bLike, int bFold) {
  t->bNone = 1;
  if (sqlite3_value_type(v) != SQLITE_TEXT) return SQLITE_OK;
  const unsigned char *z = sqlite3_value_text(v);
  if (!z) return SQLITE_NOMEM;
  const char *zWild = bLike ? "%_" : "*?[";
  int n = 0;
  while (z[n] && z[n] < 0x80 && !strchr(zWild, z[n])) n++;
  if (n == 0) return SQLITE_OK;
  if (hkvBufSet(&t->bound, z, (size_t)n)) return SQLITE_NOMEM;
  if (bFold) {
    for (int i = 0; i < n; i++)
      t->bound.a[i] = (unsigned char)asciiLower(t->bound.a[i]);
  }
  t->bNone = 0;
  return SQLITE_OK;
}

/* Prepares the filter of a scan plan from idxStr and argv. *pbEmpty set:
** a NULL bound; no row can match. */
int hkvScanStart(HkvCursor *pCur, const char *idxStr, int argc,
                 sqlite3_value **argv, int *pbEmpty) {
  HkvVtab *p = (HkvVtab *)pCur->base.pVtab;
  *pbEmpty = 0;
  pCur->nTerm = 0;
  pCur->mCols = 0;
  pCur->eOrder = 0;
  int eLike = -2; /* not asked yet */
  int eGlob = -1; /* not asked yet; then 1 for the built-in GLOB */
  const char *z = idxStr ? idxStr : "";
  while (*z) {
    int n = 0;
    while (z[n] && z[n] != ' ') n++;
    if (n > 5 && !strncmp(z, "cols:", 5)) {
      if (!strncmp(z + 5, "key", 3)) pCur->mCols |= HKV_SCAN_KEY;
      if (strstr(z + 5, "value") != 0 && strstr(z + 5, "value") < z + n) {
        pCur->mCols |= HKV_SCAN_VALUE;
      }
    } else if (n > 6 && !strncmp(z, "order:", 6)) {
      pCur->eOrder = z[6] == 'd' ? -1 : 1;
    } else {
      int k = 0;
      while (k < NOP && !((int)strlen(aOp[k].zTok) == n &&
                          !strncmp(aOp[k].zTok, z, (size_t)n))) {
        k++;
      }
      if (k == NOP || pCur->nTerm >= argc || pCur->nTerm >= HKV_MAX_TERMS) {
        return SQLITE_ERROR; /* not a plan of ours */
      }
      HkvKeyTerm *t = &pCur->aTerm[pCur->nTerm];
      sqlite3_value *v = argv[pCur->nTerm++];
      t->op = aOp[k].op;
      t->bNone = 0;
      t->bFold = 0;
      if (t->op == SQLITE_INDEX_CONSTRAINT_GLOB) {
        if (eGlob < 0) eGlob = globIsBuiltin(p->db);
        if (!eGlob) {
          t->bNone = 1;
        } else {
          int rc = termPrefix(t, v, 0, 0);
          if (rc) return rc;
        }
      } else if (t->op == SQLITE_INDEX_CONSTRAINT_LIKE) {
        if (eLike == -2) eLike = likeMode(p->db);
        if (eLike < 0) {
          t->bNone = 1;
        } else {
          int rc = termPrefix(t, v, 1, eLike);
          if (rc) return rc;
          t->bFold = eLike;
        }
      } else {
        int eForm;
        int rc = hkvEncodeKey(&t->bound, v, p->bUtf8, &eForm);
        if (rc == SQLITE_EMPTY) {
          *pbEmpty = 1;
        } else if (rc) {
          return rc;
        }
      }
    }
    z += n;
    while (*z == ' ') z++;
  }
  return SQLITE_OK;
}

/* 1 if encoded key k (n bytes) may match every term of the filter. */
static int keyPasses(const HkvCursor *pCur, const unsigned char *k,
                     sqlite3_int64 n) {
  if (n < 1) return 1; /* let hkv_iter_current report it */
  int bText = k[0] == HKV_TAG_TEXT;
  int bMayNum = -1; /* not computed yet */
  for (int i = 0; i < pCur->nTerm; i++) {
    const HkvKeyTerm *t = &pCur->aTerm[i];
    if (t->bNone) continue;
    if (t->op == SQLITE_INDEX_CONSTRAINT_GLOB ||
        t->op == SQLITE_INDEX_CONSTRAINT_LIKE) {
      if (!bText && k[0] != HKV_TAG_BLOB) continue; /* seen as text: SQLite */
      if (!bText && !((HkvVtab *)pCur->base.pVtab)->bUtf8) continue;
      sqlite3_int64 m = t->bound.n;
      if (n - 1 < m) return 0;
      if (t->bFold) {
        for (sqlite3_int64 j = 0; j < m; j++) {
          if (asciiLower(k[1 + j]) != t->bound.a[j]) return 0;
        }
      } else if (memcmp(k + 1, t->bound.a, (size_t)m) != 0) {
        return 0;
      }
      continue;
    }
    if (bText) {
      if (bMayNum < 0) bMayNum = mayBeNumber(k + 1, n - 1);
      if (bMayNum) continue; /* numeric affinity may apply: SQLite */
    }
    int c = hkvKeyCompare(k, n, t->bound.a, t->bound.n);
    switch (t->op) {
      case SQLITE_INDEX_CONSTRAINT_GT:
        if (!(c > 0)) return 0;
        break;
      case SQLITE_INDEX_CONSTRAINT_GE:
        if (!(c >= 0)) return 0;
        break;
      case SQLITE_INDEX_CONSTRAINT_LT:
        if (!(c < 0)) return 0;
        break;
      default:
        if (!(c <= 0)) return 0;
        break;
    }
  }
  return 1;
}

/* ---- stepping ---- */

/* Keeps the current row's columns in mWant (HKV_SCAN_*): copies, as the
** store's pointers last only until its next call. scanLoad reads them
** first, checked by the record's checksum. */
static int scanKeep(HkvCursor *pCur, int mWant, const void *pK, size_t nK,
                    const void *pV, size_t nV) {
  if ((mWant & HKV_SCAN_KEY) && hkvBufSet(&pCur->key, pK, nK)) {
    return SQLITE_NOMEM;
  }
  if ((mWant & HKV_SCAN_VALUE) && hkvBufSet(&pCur->val, pV, nV)) {
    return SQLITE_NOMEM;
  }
  pCur->iValTag = nV > 0 ? ((const unsigned char *)pV)[0] : -1;
  pCur->mHave |= mWant | HKV_SCAN_TAG;
  return SQLITE_OK;
}

static int scanLoad(HkvCursor *pCur, int mWant) {
  const void *pK, *pV;
  size_t nK, nV;
  int rc = hkv_iter_current(pCur->pIter, &pK, &nK, &pV, &nV);
  if (rc) return hkvStoreErr((HkvVtab *)pCur->base.pVtab, rc);
  return scanKeep(pCur, mWant, pK, nK, pV, nV);
}

/* Moves to the next key that passes the filter: OK (pCur->bEof at the end)
** or an error. *ppK, *pnK: the key, valid until the next iterator call. */
static int nextMatch(HkvCursor *pCur, const void **ppK, size_t *pnK) {
  HkvVtab *p = (HkvVtab *)pCur->base.pVtab;
  for (;;) {
    int rc = hkv_iter_next_key(pCur->pIter, ppK, pnK);
    if (rc == HKV_DONE) {
      pCur->bEof = 1;
      return SQLITE_OK;
    }
    if (rc) return hkvStoreErr(p, rc);
    if (keyPasses(pCur, *ppK, (sqlite3_int64)*pnK)) return SQLITE_OK;
  }
}

static int cmpRow(const void *a, const void *b) {
  const HkvRow *x = a, *y = b;
  return hkvKeyCompare(x->pKey, x->nKey, y->pKey, y->nKey);
}

/* Sorted plans: reads every match into pCur->aRow now, sorted. */
static int collectSorted(HkvCursor *pCur) {
  HkvVtab *p = (HkvVtab *)pCur->base.pVtab;
  pCur->arena.n = 0;
  for (;;) {
    const void *pK, *pV;
    size_t nK, nV;
    int rc = nextMatch(pCur, &pK, &nK);
    if (rc) return rc;
    if (pCur->bEof) break;
    rc = hkv_iter_current(pCur->pIter, &pK, &nK, &pV, &nV);
    if (rc) return hkvStoreErr(p, rc);
    if (pCur->nRow == pCur->nRowAlloc) {
      sqlite3_int64 nNew = pCur->nRowAlloc ? pCur->nRowAlloc * 2 : 64;
      HkvRow *a =
          sqlite3_realloc64(pCur->aRow, (sqlite3_uint64)nNew * sizeof(HkvRow));
      if (!a) return SQLITE_NOMEM;
      pCur->aRow = a;
      pCur->nRowAlloc = nNew;
    }
    /* Offsets now (the arena moves as it grows), pointers after. Each
    ** copy is followed by a 0 byte (hkvResultEncoded's terminator). */
    HkvRow *r = &pCur->aRow[pCur->nRow++];
    r->nKey = (sqlite3_int64)nK;
    r->nVal = (sqlite3_int64)nV;
    r->iOff = pCur->arena.n;
    r->iExpire = 0;
    hkv_iter_expiry(pCur->pIter, &r->iExpire);
    if (hkvBufAppend(&pCur->arena, pK, nK) ||
        hkvBufAppend(&pCur->arena, "", 1) ||
        hkvBufAppend(&pCur->arena, pV, nV) ||
        hkvBufAppend(&pCur->arena, "", 1)) {
      return SQLITE_NOMEM;
    }
  }
  for (sqlite3_int64 i = 0; i < pCur->nRow; i++) {
    HkvRow *r = &pCur->aRow[i];
    r->pKey = pCur->arena.a + r->iOff;
    r->pVal = r->pKey + r->nKey + 1;
  }
  if (pCur->nRow > 1) {
    qsort(pCur->aRow, (size_t)pCur->nRow, sizeof(HkvRow), cmpRow);
  }
  pCur->bEof = 0;
  return SQLITE_OK;
}

int hkvScanFirst(HkvCursor *pCur) {
  pCur->nRow = pCur->iRowNext = 0;
  if (pCur->eOrder) {
    int rc = collectSorted(pCur);
    if (rc) return rc;
  }
  return hkvScanStep(pCur);
}

int hkvScanStep(HkvCursor *pCur) {
  if (pCur->eOrder) {
    if (pCur->iRowNext >= pCur->nRow) {
      pCur->bEof = 1;
      return SQLITE_OK;
    }
    sqlite3_int64 i = pCur->iRowNext++;
    pCur->pRow = &pCur->aRow[pCur->eOrder > 0 ? i : pCur->nRow - 1 - i];
    return SQLITE_OK;
  }
  const void *pK, *pV;
  size_t nK, nV;
  pCur->mHave = 0;
  if (pCur->nTerm == 0 && pCur->mCols) {
    /* No filter: one read of each record, checked, instead of two. */
    int rc = hkv_iter_next(pCur->pIter, &pK, &nK, &pV, &nV);
    if (rc == HKV_DONE) {
      pCur->bEof = 1;
      return SQLITE_OK;
    }
    if (rc) return hkvStoreErr((HkvVtab *)pCur->base.pVtab, rc);
    return scanKeep(pCur, pCur->mCols, pK, nK, pV, nV);
  }
  if (pCur->nTerm == 0) {
    /* count(*): no column, no filter: no record need be read. */
    int rc = hkv_iter_skip(pCur->pIter);
    if (rc == HKV_DONE) pCur->bEof = 1;
    return rc == HKV_OK || rc == HKV_DONE
               ? SQLITE_OK
               : hkvStoreErr((HkvVtab *)pCur->base.pVtab, rc);
  }
  int rc = nextMatch(pCur, &pK, &nK);
  if (rc || pCur->bEof || !pCur->mCols) return rc;
  return scanLoad(pCur, pCur->mCols);
}

void hkvScanColumn(HkvCursor *pCur, sqlite3_context *ctx, int i) {
  HkvConn *pConn = ((HkvVtab *)pCur->base.pVtab)->pConn;
  const unsigned char *pK, *pV;
  sqlite3_int64 nK, nV;
  if (pCur->eOrder) {
    pK = pCur->pRow->pKey;
    nK = pCur->pRow->nKey;
    pV = pCur->pRow->pVal;
    nV = pCur->pRow->nVal;
  } else {
    int mWant = i == HKV_COL_VALUE ? HKV_SCAN_VALUE : HKV_SCAN_KEY;
    if ((pCur->mHave & mWant) != mWant) {
      int rc = scanLoad(pCur, mWant);
      if (rc) {
        sqlite3_result_error_code(ctx, rc);
        return;
      }
    }
    pK = pCur->key.a;
    nK = pCur->key.n;
    pV = pCur->val.a;
    nV = pCur->val.n;
  }
  if (i == HKV_COL_KEY) {
    int iTag = pCur->eOrder ? (nV > 0 ? pV[0] : -1) : pCur->iValTag;
    int eForm = iTag >= 0 ? hkvValueKeyForm(iTag) : HKV_KEY_ASIS;
    hkvResultEncoded(ctx, pConn, pK, nK, eForm);
  } else {
    hkvResultEncoded(ctx, pConn, pV, nV, HKV_KEY_ASIS);
  }
}
