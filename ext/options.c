/*
** options.c: the CREATE VIRTUAL TABLE arguments, one grammar for all.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hkv_ext.h"

/* ---- options ----
**
** One grammar for every CREATE argument. SQLite splits the arguments at
** the commas outside quotes and parentheses, and trims the whitespace
** around each; an argument is then
**   option = name ws* "=" ws* value
**   name   = word | quoted        (a word here: letters, digits and '_')
**   value  = word | quoted        (a word here: no whitespace, no quote)
**   quoted = '...' or "...", a doubled quote standing for one
** with nothing but whitespace after the value (text there is most likely
** a missing comma: path='a' path='b'). Quotes only delimit: the value is
** the text between them and is checked as a bare one would be, so
** ' full' is not "full". Names ignore ASCII case; each option may be
** given once. Numbers are decimal digits, with a fraction for a ratio: no
** sign, exponent, hex or whitespace.
*/

#define HKV_OPT_PATH 0x01
#define HKV_OPT_SYNC 0x02
#define HKV_OPT_SEGMENT_SIZE 0x04
#define HKV_OPT_AUTO_COMPACT 0x08
#define HKV_OPT_AUTO_COMPACT_MIN 0x10

static const struct {
  const char *zName;
  int eOpt;
} aOption[] = {
    {"path", HKV_OPT_PATH},
    {"sync", HKV_OPT_SYNC},
    {"segment_size", HKV_OPT_SEGMENT_SIZE},
    {"auto_compact", HKV_OPT_AUTO_COMPACT},
    {"auto_compact_min", HKV_OPT_AUTO_COMPACT_MIN},
};

static int isSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
         c == '\v';
}

static int isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || c == '_';
}

/*
** Reads a word (bName: of name characters) or a quoted string at *pz
** into a new string *pzOut, and moves *pz past it. SQLITE_OK;
** SQLITE_ERROR if there is none there (*pzOut NULL; a string SQLite has
** tokenized always has its closing quote); SQLITE_NOMEM.
*/
static int optToken(const char **pz, int bName, char **pzOut) {
  const char *z = *pz;
  *pzOut = 0;
  if (*z == '\'' || *z == '"') {
    char q = *z++;
    char *zOut = sqlite3_malloc64(strlen(z) + 1);
    if (!zOut) return SQLITE_NOMEM;
    size_t n = 0;
    for (;; z++) {
      if (*z == 0) { /* no closing quote */
        sqlite3_free(zOut);
        return SQLITE_ERROR;
      }
      if (*z == q && *++z != q) break; /* a doubled one stands for one */
      zOut[n++] = *z;
    }
    zOut[n] = 0;
    *pz = z;
    *pzOut = zOut;
    return SQLITE_OK;
  }
  int n = 0;
  while (z[n] && (bName ? isNameChar(z[n])
                        : !isSpace(z[n]) && z[n] != '\'' && z[n] != '"')) {
    n++;
  }
  if (n == 0) return SQLITE_ERROR;
  *pzOut = sqlite3_mprintf("%.*s", n, z);
  *pz = z + n;
  return *pzOut ? SQLITE_OK : SQLITE_NOMEM;
}

/* A decimal integer of digits only; 0 if z is not one or overflows. */
static int parseUint(const char *z, unsigned long long *pn) {
  unsigned long long n = 0;
  if (!*z) return 0;
  for (; *z; z++) {
    if (*z < '0' || *z > '9') return 0;
    unsigned d = (unsigned)(*z - '0');
    if (n > (ULLONG_MAX - d) / 10) return 0;
    n = n * 10 + d;
  }
  *pn = n;
  return 1;
}

/* A decimal number: digits with an optional fraction (".5" and "5." too),
** no sign or exponent; 0 if z is not one. Locale-independent. */
static int parseDecimal(const char *z, double *pr) {
  double r = 0.0, rScale = 1.0;
  int nDigit = 0, bPoint = 0;
  for (; *z; z++) {
    if (*z == '.' && !bPoint) {
      bPoint = 1;
    } else if (*z >= '0' && *z <= '9') {
      r = r * 10.0 + (*z - '0');
      if (bPoint) rScale *= 10.0;
      nDigit++;
    } else {
      return 0;
    }
  }
  if (nDigit == 0) return 0;
  *pr = r / rScale;
  return 1;
}

/* Applies option eOpt = zVal to pA, or sets *pzErr naming it. */
static int applyOption(int eOpt, const char *zName, char **pzVal, HkvArgs *pA,
                       char **pzErr) {
  const char *zVal = *pzVal;
  unsigned long long n;
  double r;
  switch (eOpt) {
    case HKV_OPT_PATH:
      if (!zVal[0]) {
        *pzErr = sqlite3_mprintf("hashkv: path must not be empty");
        return SQLITE_ERROR;
      }
      pA->zPath = *pzVal;
      *pzVal = 0;
      return SQLITE_OK;
    case HKV_OPT_SYNC:
      if (!sqlite3_stricmp(zVal, "off") || !strcmp(zVal, "0")) {
        pA->opts.sync = HKV_SYNC_OFF;
      } else if (!sqlite3_stricmp(zVal, "normal") || !strcmp(zVal, "1")) {
        pA->opts.sync = HKV_SYNC_NORMAL;
      } else if (!sqlite3_stricmp(zVal, "full") || !strcmp(zVal, "2")) {
        pA->opts.sync = HKV_SYNC_FULL;
      } else {
        break;
      }
      return SQLITE_OK;
    case HKV_OPT_SEGMENT_SIZE:
      if (!parseUint(zVal, &n) || n < HKV_MIN_SEGMENT_SIZE ||
          n > HKV_MAX_SEGMENT_SIZE) {
        break;
      }
      pA->opts.segment_size = n;
      return SQLITE_OK;
    case HKV_OPT_AUTO_COMPACT:
      if (!parseDecimal(zVal, &r) || r >= 1.0) break;
      pA->opts.auto_compact = r;
      return SQLITE_OK;
    case HKV_OPT_AUTO_COMPACT_MIN:
      if (!parseUint(zVal, &n)) break;
      pA->opts.auto_compact_min = n;
      return SQLITE_OK;
  }
  const char *zWant =
      eOpt == HKV_OPT_SYNC ? "off, normal or full"
      : eOpt == HKV_OPT_SEGMENT_SIZE
          ? "bytes in decimal digits, 4096 to 1073741824"
      : eOpt == HKV_OPT_AUTO_COMPACT
          ? "a dead-bytes ratio in decimal, at least 0 and below 1; 0 turns "
            "it off"
          : "bytes in decimal digits";
  *pzErr = sqlite3_mprintf("hashkv: bad value for %s: '%s' (%s)", zName, zVal,
                           zWant);
  return SQLITE_ERROR;
}

/* Parses one argument z (the grammar above) into pA; *pmSeen has a bit
** per option given so far. */
static int parseOption(const char *z, HkvArgs *pA, int *pmSeen, char **pzErr) {
  const char *zArg = z;
  char *zName = 0, *zVal = 0;
  int eOpt = 0;
  while (isSpace(*z)) z++;
  int rc = optToken(&z, 1, &zName);
  if (rc == SQLITE_OK) {
    while (isSpace(*z)) z++;
    if (*z == 0) {
      *pzErr = sqlite3_mprintf("hashkv: option %s needs a value (option=value)",
                               zName);
      rc = SQLITE_ERROR;
      goto done;
    }
    if (*z != '=') rc = SQLITE_ERROR;
  }
  if (rc == SQLITE_ERROR) {
    *pzErr =
        sqlite3_mprintf("hashkv: malformed option: %s (option=value)", zArg);
  }
  if (rc) goto done;
  const char *zOpt = 0; /* the option's name as documented */
  for (size_t i = 0; i < sizeof(aOption) / sizeof(aOption[0]); i++) {
    if (!sqlite3_stricmp(zName, aOption[i].zName)) {
      eOpt = aOption[i].eOpt;
      zOpt = aOption[i].zName;
    }
  }
  if (!eOpt) {
    *pzErr = sqlite3_mprintf("hashkv: unknown option '%s'", zName);
    rc = SQLITE_ERROR;
    goto done;
  }
  if (*pmSeen & eOpt) {
    *pzErr = sqlite3_mprintf("hashkv: option %s is given twice", zOpt);
    rc = SQLITE_ERROR;
    goto done;
  }
  *pmSeen |= eOpt;
  z++;
  while (isSpace(*z)) z++;
  rc = optToken(&z, 0, &zVal);
  if (rc == SQLITE_ERROR) {
    *pzErr =
        sqlite3_mprintf("hashkv: option %s needs a value (option=value)", zOpt);
  }
  if (rc) goto done;
  while (isSpace(*z)) z++;
  if (*z) {
    *pzErr = sqlite3_mprintf(
        "hashkv: unexpected text after the value of %s: %s (a missing "
        "comma? quote a value with spaces)",
        zOpt, z);
    rc = SQLITE_ERROR;
    goto done;
  }
  rc = applyOption(eOpt, zOpt, &zVal, pA, pzErr);
done:
  sqlite3_free(zName);
  sqlite3_free(zVal);
  return rc;
}

int hkvParseArgs(int argc, const char *const *argv, HkvArgs *pA, char **pzErr) {
  int mSeen = 0;
  hkv_options_init(&pA->opts);
  for (int i = 3; i < argc; i++) {
    int rc = parseOption(argv[i], pA, &mSeen, pzErr);
    if (rc) return rc;
  }
  return SQLITE_OK;
}
