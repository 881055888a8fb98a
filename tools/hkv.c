/*
** hkv: the command-line tool for hashkv stores (LMDB's mdb_stat, mdb_dump,
** mdb_load and mdb_copy, in one program). A client of store/hashkv.h, and
** of ext/typed.c for the SQL layer's typed keys and values.
**
**   hkv stat DIR                the counters (online: read-only open)
**   hkv check DIR               every record's checksum, index and log agree
**   hkv dump [--typed] [--sql TABLE] DIR
**                               the live records, to stdout (online)
**   hkv load DIR                the records of a dump on stdin, in one
**                               transaction (takes the write lock; creates
**                               the store if it does not exist)
**   hkv copy SRC DEST           a consistent copy while others go on
**   hkv compact DIR             compacts (takes the write lock)
**   hkv help
** Exit status: 0, 1 with one message on stderr ("hkv: ..."), 2 for bad
** arguments (with the usage). Progress goes to stderr only when it is a
** terminal.
**
** Dump format (text, one record a line, in no particular order)
**   line 1: "hashkv-dump 1 raw" or "hashkv-dump 1 typed"
**   then:   KEY SP VALUE [SP EXPIRY] LF
** EXPIRY, present only for a key that expires: the Unix time in
** milliseconds at which it does (hkv_put_expiring); keys already expired
** are not dumped.
** raw: KEY and VALUE are X'<hex>' (upper-case hex, any bytes, X'' empty).
** typed (stores written through SQL): each is an SQL literal of its type,
**   NULL | integer (-?digits) | real (digits with '.' or 'e'; 9e999 and
**   -9e999 for the infinities; printed with 17 significant digits, so it
**   reads back bit for bit) | '<text>' (quotes doubled) | X'<hex>' |
**   CAST(X'<hex>' AS TEXT) (text holding a byte below 0x20 or 0x7F, so
**   that a record stays one line).
** --sql TABLE prints the typed literals as INSERT statements for a native
** table, between BEGIN and COMMIT, after CREATE TABLE IF NOT EXISTS
** TABLE(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID (hashkv's own
** schema): `hkv dump --sql kv DIR | sqlite3 other.db`. A native table does
** not expire rows: --sql writes the rows live at the dump, without expiry.
*/
#include <errno.h>
#include <float.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashkv.h"
#include "typed.h"

static const char zUsage[] =
    "usage: hkv COMMAND ...\n"
    "  hkv stat DIR                      print the store's counters\n"
    "  hkv check DIR                     verify every record (exit 1 if bad)\n"
    "  hkv dump [--typed] [--sql TABLE] DIR\n"
    "                                    print the records (raw bytes; typed:\n"
    "                                    as SQL wrote them; --sql: INSERTs)\n"
    "  hkv load DIR                      add the records of a dump on stdin\n"
    "                                    (creates the store if missing)\n"
    "  hkv copy SRC DEST                 consistent online copy to DEST\n"
    "  hkv compact DIR                   compact the store\n"
    "  hkv help                          this text\n"
    "A store in use by other processes can be read (stat, check, dump, copy);\n"
    "load and compact take its write lock, or fail with BUSY.\n";

static int usage(const char *zWhy) {
  if (zWhy) fprintf(stderr, "hkv: %s\n", zWhy);
  fputs(zUsage, stderr);
  return 2;
}

/* Prints "hkv: <message>" and returns 1. */
static int fail(const char *zFmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *zFmt, ...) {
  va_list ap;
  va_start(ap, zFmt);
  fputs("hkv: ", stderr);
  vfprintf(stderr, zFmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return 1;
}

/* "hkv: <what>: <message> (<code>)", without <what> when the message
** names it already. */
static int failStore(hkv_db *db, int rc, const char *zWhat) {
  const char *zMsg = db ? hkv_errmsg(db) : hkv_strerror(rc);
  size_t n = strlen(zWhat);
  if (!strncmp(zMsg, zWhat, n) && zMsg[n] == ':') {
    fail("%s (%s)", zMsg, hkv_codename(rc));
  } else {
    fail("%s: %s (%s)", zWhat, zMsg, hkv_codename(rc));
  }
  return 1;
}

/* Opens an existing store (bWrite 2: created if missing, for load). */
static int openStore(const char *zDir, int bWrite, hkv_db **ppDb) {
  hkv_options o;
  hkv_options_init(&o);
  o.flags = bWrite == 2 ? 0
            : bWrite    ? HKV_OPEN_NOCREATE
                        : HKV_OPEN_NOCREATE | HKV_OPEN_READONLY;
  int rc = hkv_open(zDir, &o, ppDb);
  if (rc) {
    failStore(*ppDb, rc, zDir);
    hkv_close(*ppDb);
    *ppDb = 0;
  }
  return rc;
}

/* ---- progress, on a terminal only; Ctrl-C stops a copy cleanly ---- */

static volatile sig_atomic_t bInterrupted;
static void onSignal(int sig) {
  (void)sig;
  bInterrupted = 1;
}

static int bTty;
static void progressLine(const char *zWhat, uint64_t nDone, uint64_t nTotal,
                         const char *zUnit) {
  if (!bTty) return;
  int iPct = nTotal ? (int)(nDone * 100 / nTotal) : 100;
  fprintf(stderr, "\r%s: %3d%% (%llu of %llu %s)", zWhat, iPct,
          (unsigned long long)nDone, (unsigned long long)nTotal, zUnit);
}
static void progressEnd(void) {
  if (bTty) fputs("\r\033[K", stderr);
}

static int copyProgress(void *pArg, uint64_t nDone, uint64_t nTotal) {
  (void)pArg;
  progressLine("copying", nDone >> 20, nTotal >> 20, "MiB");
  return bInterrupted;
}

/* ---- literals ---- */

static void putHex(FILE *f, const uint8_t *p, size_t n) {
  static const char aHex[] = "0123456789ABCDEF";
  fputs("X'", f);
  for (size_t i = 0; i < n; i++) {
    fputc(aHex[p[i] >> 4], f);
    fputc(aHex[p[i] & 15], f);
  }
  fputc('\'', f);
}

static void putReal(FILE *f, double r) {
  if (r != r) {
    fputs("NULL", f); /* SQLite stores no NaN; none can be here */
  } else if (r > DBL_MAX || r < -DBL_MAX) { /* the infinities only */
    fputs(r > 0 ? "9e999" : "-9e999", f);
  } else {
    char z[40];
    snprintf(z, sizeof(z), "%.17g", r);
    if (!strpbrk(z, ".eEn")) strcat(z, ".0"); /* stays REAL on reading */
    fputs(z, f);
  }
}

static void putTyped(FILE *f, const HkvTyped *v) {
  const uint8_t *p = v->p;
  switch (v->eType) {
    case HKV_TYPE_NULL:
      fputs("NULL", f);
      return;
    case HKV_TYPE_INTEGER:
      fprintf(f, "%lld", (long long)v->i);
      return;
    case HKV_TYPE_FLOAT:
      putReal(f, v->r);
      return;
    case HKV_TYPE_TEXT:
      for (size_t i = 0; i < v->n; i++) {
        if (p[i] < 0x20 || p[i] == 0x7F) {
          fputs("CAST(", f);
          putHex(f, p, v->n);
          fputs(" AS TEXT)", f);
          return;
        }
      }
      fputc('\'', f);
      for (size_t i = 0; i < v->n; i++) {
        if (p[i] == '\'') fputc('\'', f);
        fputc(p[i], f);
      }
      fputc('\'', f);
      return;
    default:
      putHex(f, p, v->n);
      return;
  }
}

/* ---- stat, check, compact, copy ---- */

static int cmdStat(const char *zDir) {
  hkv_db *db;
  if (openStore(zDir, 0, &db)) return 1;
  hkv_stats st;
  int rc = hkv_stats_get(db, &st);
  if (rc) {
    failStore(db, rc, zDir);
  } else {
#define HKV_PRINT_STAT(name, doc) \
  printf("%-22s %llu\n", #name, (unsigned long long)st.name);
    HKV_STATS_MAP(HKV_PRINT_STAT)
#undef HKV_PRINT_STAT
  }
  hkv_close(db);
  return rc ? 1 : 0;
}

static int cmdCheck(const char *zDir) {
  hkv_db *db;
  if (openStore(zDir, 0, &db)) return 1;
  int rc = hkv_integrity_check(db);
  if (rc) {
    failStore(db, rc, zDir);
  } else {
    puts("ok");
  }
  hkv_close(db);
  return rc ? 1 : 0;
}

static int cmdCompact(const char *zDir) {
  hkv_db *db;
  if (openStore(zDir, 1, &db)) return 1;
  int rc = hkv_compact(db);
  if (rc) failStore(db, rc, zDir);
  hkv_close(db);
  return rc ? 1 : 0;
}

static int cmdCopy(const char *zSrc, const char *zDest) {
  hkv_db *db;
  if (openStore(zSrc, 0, &db)) return 1;
  signal(SIGINT, onSignal);
  signal(SIGTERM, onSignal);
  int rc = hkv_backup(db, zDest, copyProgress, 0);
  progressEnd();
  if (rc) failStore(db, rc, "copy");
  hkv_close(db);
  return rc ? 1 : 0;
}

/* ---- dump ---- */

static int cmdDump(const char *zDir, int bTyped, const char *zTable) {
  hkv_db *db;
  if (openStore(zDir, 0, &db)) return 1;
  hkv_stats st;
  hkv_stats_get(db, &st);
  hkv_iter *it = 0;
  int rc = hkv_iter_open(db, &it);
  if (rc) {
    failStore(db, rc, zDir);
    hkv_close(db);
    return 1;
  }
  if (zTable) {
    printf("BEGIN;\nCREATE TABLE IF NOT EXISTS \"");
    for (const char *z = zTable; *z; z++) {
      if (*z == '"') putchar('"');
      putchar(*z);
    }
    printf("\"(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;\n");
  } else {
    printf("hashkv-dump 1 %s\n", bTyped ? "typed" : "raw");
  }
  const void *pK, *pV;
  size_t nK, nV;
  uint64_t nDone = 0;
  int bBad = 0;
  while ((rc = hkv_iter_next(it, &pK, &nK, &pV, &nV)) == HKV_OK) {
    HkvTyped k, v;
    if (bTyped) {
      const uint8_t *aV = pV;
      if (hkvTypedDecode(pV, nV, HKV_KEY_ASIS, &v) ||
          hkvTypedDecode(pK, nK, hkvValueKeyForm(aV[0]), &k) ||
          k.eType == HKV_TYPE_NULL) {
        fputs("hkv: a record is not in the SQL layer's encoding: key ", stderr);
        putHex(stderr, pK, nK);
        fputs(" (dump it without --typed or --sql)\n", stderr);
        bBad = 1;
        break;
      }
    } else {
      k.eType = v.eType = HKV_TYPE_BLOB;
      k.p = pK, k.n = nK, v.p = pV, v.n = nV;
    }
    if (zTable) {
      printf("INSERT INTO \"");
      for (const char *z = zTable; *z; z++) {
        if (*z == '"') putchar('"');
        putchar(*z);
      }
      printf("\"(key, value) VALUES(");
      putTyped(stdout, &k);
      putchar(',');
      putTyped(stdout, &v);
      printf(");\n");
    } else {
      int64_t iExp = 0;
      hkv_iter_expiry(it, &iExp);
      putTyped(stdout, &k);
      putchar(' ');
      putTyped(stdout, &v);
      if (iExp) printf(" %lld", (long long)iExp);
      putchar('\n');
    }
    if ((++nDone & 0xFFFF) == 0)
      progressLine("dumping", nDone, st.live_keys, "records");
  }
  progressEnd();
  if (!bBad && rc != HKV_DONE) failStore(db, rc, zDir);
  hkv_iter_close(it);
  hkv_close(db);
  if (bBad || rc != HKV_DONE) return 1;
  if (zTable) printf("COMMIT;\n");
  if (fflush(stdout) || ferror(stdout))
    return fail("writing: %s", strerror(errno));
  return 0;
}

/* ---- load ---- */

typedef struct Buf {
  uint8_t *a;
  size_t n, nAlloc;
} Buf;

static int bufAdd(Buf *b, const void *p, size_t n) {
  if (b->n + n > b->nAlloc) {
    size_t nNew = b->nAlloc ? b->nAlloc * 2 : 256;
    while (nNew < b->n + n) nNew *= 2;
    uint8_t *a = realloc(b->a, nNew);
    if (!a) return -1;
    b->a = a;
    b->nAlloc = nNew;
  }
  memcpy(b->a + b->n, p, n);
  b->n += n;
  return 0;
}

static int hexVal(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Parses X'<hex>' at *pz into b (appending); 0, or -1 if malformed. */
static int parseHex(const char **pz, Buf *b) {
  const char *z = *pz;
  if ((z[0] != 'X' && z[0] != 'x') || z[1] != '\'') return -1;
  z += 2;
  while (*z != '\'') {
    int h = hexVal(z[0]), l = h < 0 ? -1 : hexVal(z[1]);
    if (l < 0) return -1;
    uint8_t c = (uint8_t)(h << 4 | l);
    if (bufAdd(b, &c, 1)) return -1;
    z += 2;
  }
  *pz = z + 1;
  return 0;
}

/* Parses one literal of the dump format at *pz into *pV (bytes in b). */
static int parseLiteral(const char **pz, int bTyped, Buf *b, HkvTyped *pV) {
  const char *z = *pz;
  memset(pV, 0, sizeof(*pV));
  b->n = 0;
  if (!bTyped || z[0] == 'X' || z[0] == 'x') {
    if (parseHex(&z, b)) return -1;
    pV->eType = HKV_TYPE_BLOB;
  } else if (!strncmp(z, "NULL", 4)) {
    pV->eType = HKV_TYPE_NULL;
    z += 4;
  } else if (!strncmp(z, "CAST(", 5)) {
    z += 5;
    if (parseHex(&z, b) || strncmp(z, " AS TEXT)", 9)) return -1;
    z += 9;
    pV->eType = HKV_TYPE_TEXT;
  } else if (z[0] == '\'') {
    for (z++;; z++) {
      if (*z == 0 || *z == '\n') return -1;
      if (*z == '\'') {
        if (z[1] != '\'') break;
        z++;
      }
      if (bufAdd(b, z, 1)) return -1;
    }
    z++;
    pV->eType = HKV_TYPE_TEXT;
  } else {
    size_t n = strcspn(z, " \n");
    char zNum[64];
    if (n == 0 || n >= sizeof(zNum)) return -1;
    memcpy(zNum, z, n);
    zNum[n] = 0;
    char *zEnd;
    errno = 0;
    if (strpbrk(zNum, ".eE")) {
      pV->eType = HKV_TYPE_FLOAT;
      pV->r = strtod(zNum, &zEnd); /* 9e999 overflows to infinity */
    } else {
      pV->eType = HKV_TYPE_INTEGER;
      pV->i = strtoll(zNum, &zEnd, 10);
      if (errno) return -1;
    }
    if (*zEnd) return -1;
    z += n;
  }
  pV->p = b->a;
  pV->n = b->n;
  *pz = z;
  return 0;
}

/* The stored bytes of v (a key, or a value beside a key of form eForm). */
static int encodeTyped(const HkvTyped *v, int bKey, int *peForm, Buf *out) {
  uint8_t a[9];
  size_t nHead =
      bKey ? hkvTypedKeyHead(v, a, peForm) : hkvTypedValueHead(v, *peForm, a);
  out->n = 0;
  if (bufAdd(out, a, nHead)) return -1;
  return v->n ? bufAdd(out, v->p, v->n) : 0;
}

static int cmdLoad(const char *zDir) {
  char *zLine = 0;
  size_t nLine = 0;
  ssize_t n = getline(&zLine, &nLine, stdin);
  int bTyped;
  if (n > 0 && !strcmp(zLine, "hashkv-dump 1 raw\n")) {
    bTyped = 0;
  } else if (n > 0 && !strcmp(zLine, "hashkv-dump 1 typed\n")) {
    bTyped = 1;
  } else {
    free(zLine);
    return fail(
        "stdin: not a dump (its first line is not "
        "\"hashkv-dump 1 raw\" or \"hashkv-dump 1 typed\")");
  }
  hkv_db *db;
  if (openStore(zDir, 2, &db)) {
    free(zLine);
    return 1;
  }
  Buf kb = {0, 0, 0}, vb = {0, 0, 0}, ke = {0, 0, 0}, ve = {0, 0, 0};
  int rc = hkv_begin(db);
  if (!rc) rc = hkv_write_lock(db);
  long iLine = 1;
  int bBad = 0;
  while (!rc && (n = getline(&zLine, &nLine, stdin)) > 0) {
    iLine++;
    const char *z = zLine;
    HkvTyped k, v;
    int64_t iExp = 0;
    if (parseLiteral(&z, bTyped, &kb, &k) || *z++ != ' ' ||
        parseLiteral(&z, bTyped, &vb, &v) ||
        (bTyped && k.eType == HKV_TYPE_NULL)) {
      bBad = 1;
      break;
    }
    if (z[0] == ' ' && z[1] >= '1' && z[1] <= '9') {
      char *zEnd;
      errno = 0;
      long long x = strtoll(z + 1, &zEnd, 10);
      if (errno == 0) iExp = x, z = zEnd;
    }
    if (strcmp(z, "\n")) {
      bBad = 1;
      break;
    }
    if (bTyped) {
      int eForm;
      if (encodeTyped(&k, 1, &eForm, &ke) || encodeTyped(&v, 0, &eForm, &ve)) {
        rc = HKV_NOMEM;
        break;
      }
      rc = hkv_put_expiring(db, ke.a, ke.n, ve.a, ve.n, iExp);
    } else {
      rc = hkv_put_expiring(db, kb.a, kb.n, vb.a ? (const void *)vb.a : "",
                            vb.n, iExp);
    }
    if ((iLine & 0xFFFF) == 0)
      progressLine("loading", (uint64_t)iLine, 0, "lines");
  }
  progressEnd();
  int iRet = 0;
  if (bBad) {
    iRet = fail(
        "stdin, line %ld: not a record of the dump format; nothing "
        "loaded",
        iLine);
  } else if (rc || (rc = hkv_commit(db)) != HKV_OK) {
    iRet = failStore(db, rc, zDir);
    if (rc == HKV_BUSY) fputs("hkv: nothing loaded\n", stderr);
  }
  if (hkv_in_transaction(db)) hkv_rollback(db);
  hkv_close(db);
  free(zLine);
  free(kb.a);
  free(vb.a);
  free(ke.a);
  free(ve.a);
  return iRet;
}

int main(int argc, char **argv) {
  bTty = isatty(2);
  if (argc < 2) return usage(0);
  const char *zCmd = argv[1];
  if (!strcmp(zCmd, "help") || !strcmp(zCmd, "--help") || !strcmp(zCmd, "-h")) {
    fputs(zUsage, stdout);
    return 0;
  }
  if (!strcmp(zCmd, "dump")) {
    int bTyped = 0;
    const char *zTable = 0;
    int i = 2;
    for (; i < argc && argv[i][0] == '-'; i++) {
      if (!strcmp(argv[i], "--typed")) {
        bTyped = 1;
      } else if (!strcmp(argv[i], "--sql") && i + 1 < argc) {
        zTable = argv[++i];
        bTyped = 1;
      } else {
        return usage("dump: unknown option");
      }
    }
    if (i + 1 != argc) return usage("dump: name one store directory");
    return cmdDump(argv[i], bTyped, zTable);
  }
  if (!strcmp(zCmd, "copy")) {
    if (argc != 4) return usage("copy: name the store and the destination");
    return cmdCopy(argv[2], argv[3]);
  }
  int (*xCmd)(const char *) = !strcmp(zCmd, "stat")      ? cmdStat
                              : !strcmp(zCmd, "check")   ? cmdCheck
                              : !strcmp(zCmd, "load")    ? cmdLoad
                              : !strcmp(zCmd, "compact") ? cmdCompact
                                                         : 0;
  if (!xCmd) {
    char zMsg[200];
    snprintf(zMsg, sizeof(zMsg), "unknown command '%.100s'", zCmd);
    return usage(zMsg);
  }
  if (argc != 3) return usage("name one store directory");
  return xCmd(argv[2]);
}
