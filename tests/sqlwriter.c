/*
** sqlwriter: a C program that writes a hashkv table through SQL (the module
** linked statically), for the tests that run it beside other processes.
**   sqlwriter DB SECONDS SQL
** runs SQL (one or more statements) in a loop until SECONDS have passed (at
** least once), with busy_timeout 10 s, and prints how many times it ran.
** Any error ends it with status 1 and the message on stderr.
*/
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int sqlite3_hashkv_init(sqlite3 *db, char **pzErrMsg, const void *pApi);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s DB SECONDS SQL\n", argv[0]);
    return 2;
  }
  sqlite3_auto_extension((void (*)(void))sqlite3_hashkv_init);
  sqlite3 *db = 0;
  if (sqlite3_open(argv[1], &db) != SQLITE_OK) {
    fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
    return 1;
  }
  sqlite3_busy_timeout(db, 10000);
  double tEnd = now() + atof(argv[2]);
  long n = 0;
  do {
    char *zErr = 0;
    if (sqlite3_exec(db, argv[3], 0, 0, &zErr) != SQLITE_OK) {
      fprintf(stderr, "run %ld: %s\n", n, zErr ? zErr : "?");
      sqlite3_free(zErr);
      sqlite3_close(db);
      return 1;
    }
    n++;
  } while (now() < tEnd);
  printf("%ld\n", n);
  sqlite3_close(db);
  return 0;
}
