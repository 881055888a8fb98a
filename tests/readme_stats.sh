#!/usr/bin/env bash
# The README's list of hashkv_stats rows is HKV_STATS_MAP, in order.
#   bash tests/readme_stats.sh BUILD/statnames README.md
set -euo pipefail
want=$("$1" | paste -sd, - | sed 's/,/, /g')
have=$(grep -o 'the engine.s counters as (name, value) rows: [a-z_, ]*' "$2" |
       sed 's/.*rows: //; s/ *$//')
if [ "$want" != "$have" ]; then
  echo "README lists: $have"
  echo "hashkv.h has: $want"
  exit 1
fi
echo "README's hashkv_stats rows match HKV_STATS_MAP ($(echo "$want" | tr ',' '\n' | wc -l) counters)"
