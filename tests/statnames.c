/*
** statnames.c: prints the names of hashkv's counters, one a line, from
** HKV_STATS_MAP: tests/readme_stats.sh checks the README's list against it.
*/
#include <stdio.h>

#include "hashkv.h"

int main(void) {
#define HKV_STATS_NAME(name, doc) puts(#name);
  HKV_STATS_MAP(HKV_STATS_NAME)
#undef HKV_STATS_NAME
  return 0;
}
