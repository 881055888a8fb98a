#!/usr/bin/env bash
# The hkv tool, command by command.
#   hkv_tool.sh raw HKV            stores of raw bytes (no SQLite involved):
#                                  usage and errors, load, dump | load, check,
#                                  stat, copy, compact, BUSY beside a writer
#   hkv_tool.sh sql HKV HASHKV_SO  stores written through SQL (the sqlite3
#                                  shell with the built extension): typed
#                                  dump | load and dump --sql | sqlite3 give
#                                  back every row, types included; copy and
#                                  stat beside a writer committing
set -euo pipefail
mode=$1
hkv=$2
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
cd "$dir"
fails=0
check() { # check NAME: a failed expectation is reported, then counted
  echo "FAIL: $1" >&2
  fails=$((fails + 1))
}
expect_status() { # expect_status WANT NAME CMD...
  local want=$1 name=$2
  shift 2
  local got=0
  "$@" >out.txt 2>err.txt || got=$?
  [ "$got" = "$want" ] || { check "$name: exit $got, wanted $want"; cat err.txt >&2; }
}

if [ "$mode" = raw ]; then
  # ---- usage and errors ----
  expect_status 0 "help" "$hkv" help
  grep -q "hkv dump" out.txt || check "help prints the usage"
  expect_status 2 "no command" "$hkv"
  grep -q "^usage: hkv" err.txt || check "no command prints the usage"
  expect_status 2 "unknown command" "$hkv" frobnicate s
  grep -q "unknown command 'frobnicate'" err.txt || check "unknown command named"
  expect_status 2 "missing directory" "$hkv" stat
  expect_status 2 "dump: bad option" "$hkv" dump --nope s
  expect_status 2 "copy: one argument" "$hkv" copy s
  expect_status 1 "stat of a missing store" "$hkv" stat nosuch
  [ "$(wc -l <err.txt)" = 1 ] && grep -q "^hkv: nosuch" err.txt ||
    check "one message naming the store"
  [ ! -e nosuch ] || check "stat created a store"

  # ---- load: every byte, empty values, long values ----
  long=$(head -c 3000 /dev/zero | tr '\0' 'A' | od -An -v -tx1 | tr -d ' \n' | tr a-f A-F)
  {
    echo "hashkv-dump 1 raw"
    echo "X'00' X''"
    echo "X'0A0D' X'0A'"
    echo "X'FF00FF' X'$long'"
    echo "X'6B6579' X'76616C7565'"
    for i in $(seq 1 500); do printf "X'%08X' X'%04X'\n" "$i" "$i"; done
  } >dump1.txt
  expect_status 0 "load a dump" "$hkv" load s1 <dump1.txt
  "$hkv" dump s1 >dump1b.txt
  [ "$(head -1 dump1b.txt)" = "hashkv-dump 1 raw" ] || check "dump header"
  diff <(tail -n +2 dump1.txt | sort) <(tail -n +2 dump1b.txt | sort) >/dev/null ||
    check "dump gives back what load took"
  expect_status 0 "check" "$hkv" check s1
  [ "$(cat out.txt)" = ok ] || check "check says ok"
  expect_status 0 "stat" "$hkv" stat s1
  grep -q "^live_keys  *504$" out.txt || check "stat: live_keys 504"

  # ---- dump | load ----
  "$hkv" dump s1 | "$hkv" load s2
  diff <("$hkv" dump s1 | sort) <("$hkv" dump s2 | sort) >/dev/null ||
    check "dump | load round trip"

  # ---- keys that expire: the expiry (Unix ms) rides along; past ones go ----
  {
    echo "hashkv-dump 1 raw"
    echo "X'65' X'31' 4102444800000"
    echo "X'70' X'32' 1000"
    echo "X'6E' X'33'"
  } >exp.txt
  expect_status 0 "load with expiries" "$hkv" load se <exp.txt
  "$hkv" dump se | tail -n +2 | sort >exp.out
  printf "X'65' X'31' 4102444800000\nX'6E' X'33'\n" | diff - exp.out >/dev/null ||
    { check "expiry kept, past key absent"; cat exp.out >&2; }
  "$hkv" dump se | "$hkv" load se2
  diff <("$hkv" dump se | sort) <("$hkv" dump se2 | sort) >/dev/null ||
    check "dump | load keeps expiries"

  # ---- load: bad input loads nothing ----
  printf 'hashkv-dump 1 raw\nX%s01%s X%s%s\nnot a record\n' "'" "'" "'" "'" >bad.txt
  expect_status 1 "load of a bad line" "$hkv" load s2 <bad.txt
  grep -q "line 3" err.txt || check "bad line named"
  "$hkv" dump s2 | grep -q "^X'01' " && check "a bad load left a record"
  echo "garbage" >bad2.txt
  expect_status 1 "load of no dump" "$hkv" load s2 <bad2.txt
  grep -q "not a dump" err.txt || check "not a dump said"

  # ---- copy ----
  expect_status 0 "copy" "$hkv" copy s1 c1
  diff <("$hkv" dump s1 | sort) <("$hkv" dump c1 | sort) >/dev/null ||
    check "copy holds the same records"
  "$hkv" check c1 >/dev/null || check "copy passes check"
  expect_status 1 "copy onto a store" "$hkv" copy s1 c1
  grep -q "not an empty directory" err.txt || check "copy refusal said"

  # ---- compact ----
  "$hkv" dump s1 | "$hkv" load s1 # every record written twice: dead bytes
  expect_status 0 "compact" "$hkv" compact s1
  "$hkv" stat s1 | grep -q "^dead_bytes  *0$" || check "compact leaves no dead bytes"
  diff <(sort dump1b.txt) <("$hkv" dump s1 | sort) >/dev/null ||
    check "compact keeps the records"

  # ---- quiet in pipes: no progress on a stderr that is not a terminal ----
  "$hkv" copy s1 c2 2>err.txt
  [ ! -s err.txt ] || check "copy printed progress into a file"
else
  so=${3%.so}
  # ---- a table written through SQL, every type ----
  sqlite3 t.db >/dev/null <<SQL
.load $so
CREATE VIRTUAL TABLE kv USING hashkv(path='st');
INSERT INTO kv VALUES
  (1, 'one'), (-9223372036854775808, 9223372036854775807), (2.5, -0.0),
  (3.0, 1e300), (-0.0, 'negative zero key'), ('text', 'it''s "quoted"'),
  ('new
line', 'tab	and' || char(13)), (x'00ff', x''), ('', NULL),
  ('nul' || char(0) || 'inside', 'v'), (1e20, 9e999), ('inf', -9e999),
  (x'', 'empty blob'), ('unicode é ü', 0.1), (4, 123456789.123456789),
  (5, 1.7976931348623157e308), (6, -1.01e308);
SQL
  rows() { # rows DB TABLE: every row with its types, in a stable order
    sqlite3 "$1" <<SQL
.load $so
SELECT typeof(key), quote(key), typeof(value), quote(value),
       hex(CAST(value AS BLOB))
  FROM "$2" ORDER BY typeof(key), quote(key);
SQL
  }
  rows t.db kv >want.txt
  [ "$(sqlite3 t.db ".load $so" "SELECT count(*) FROM kv")" = 17 ] ||
    check "17 rows written"

  # ---- dump --typed | load ----
  "$hkv" dump --typed st >typed.txt
  [ "$(head -1 typed.txt)" = "hashkv-dump 1 typed" ] || check "typed header"
  [ "$(wc -l <typed.txt)" = 18 ] || check "one record a line"
  "$hkv" load st2 <typed.txt
  sqlite3 t.db ".load $so" "CREATE VIRTUAL TABLE k2 USING hashkv(path='st2')"
  diff want.txt <(rows t.db k2) || check "dump --typed | load keeps every row and type"
  # REAL keys keep their form and -0.0 its sign (quote() hides it)
  grep -q "^-0.0 'negative zero key'$" typed.txt || check "-0.0 key dumped with its sign"
  grep -q "^3.0 1.0000000000000001e+300$" typed.txt || check "3.0 key dumped as REAL"

  # ---- dump --sql | sqlite3 ----
  "$hkv" dump --sql kv st | sqlite3 other.db
  sqlite3 other.db "SELECT typeof(key), quote(key), typeof(value), quote(value), hex(CAST(value AS BLOB)) FROM kv ORDER BY typeof(key), quote(key)" >native.txt
  diff want.txt native.txt || check "dump --sql | sqlite3 gives the same rows"

  # ---- typed dump of a store that SQL did not write ----
  printf 'hashkv-dump 1 raw\nX%sZZ%s X%s%s\n' "'" "'" "'" "'" >raw.txt
  printf "hashkv-dump 1 raw\nX'7A' X''\n" | "$hkv" load raw
  expect_status 1 "typed dump of raw bytes" "$hkv" dump --typed raw
  grep -q "not in the SQL layer's encoding" err.txt || check "raw store named as such"

  # ---- beside a writer: copy, stat and dump work; load and compact BUSY ----
  mkfifo hold
  (echo ".load $so"; echo "BEGIN; INSERT INTO kv VALUES('held', 1);";
   echo "SELECT 'holding';"; cat hold) | sqlite3 t.db >holder.txt &
  for _ in $(seq 1 200); do grep -q holding holder.txt 2>/dev/null && break; sleep 0.05; done
  grep -q holding holder.txt || check "the writer holds its transaction"
  expect_status 1 "load beside a writer" "$hkv" load st <typed.txt
  grep -q "HKV_BUSY" err.txt || check "load says BUSY"
  expect_status 1 "compact beside a writer" "$hkv" compact st
  grep -q "HKV_BUSY" err.txt || check "compact says BUSY"
  expect_status 0 "stat beside a writer" "$hkv" stat st
  expect_status 0 "copy beside a writer" "$hkv" copy st c1
  "$hkv" dump --typed c1 | grep -q "'held'" && check "copy holds an uncommitted row"
  echo ".quit" >hold
  wait
  # a writer committing as fast as it can while copies are taken
  (for i in $(seq 1 30); do
     sqlite3 t.db ".load $so" "INSERT INTO kv SELECT 'w$i-' || value, value FROM generate_series(1, 200)"
   done) 2>/dev/null &
  w=$!
  n=0
  while kill -0 $w 2>/dev/null && [ $n -lt 10 ]; do
    n=$((n + 1))
    "$hkv" copy st "busy$n" || check "copy $n beside a writer"
    "$hkv" check "busy$n" >/dev/null || check "copy $n passes check"
    # whole transactions only: each writer statement adds 200 rows
    c=$("$hkv" dump --typed "busy$n" | grep -c "^'w" || true)
    [ $((c % 200)) = 0 ] || check "copy $n holds part of a transaction ($c rows)"
  done
  wait $w || true
fi
if [ "$fails" != 0 ]; then
  echo "$fails failure(s)" >&2
  exit 1
fi
echo "hkv $mode: all passed"
