#!/bin/bash
# Several processes on one hashkv table through SQL: two C programs write it
# at once (one moves units from x to y in transactions, one counts), while
# the sqlite3 shell reads it through a read-only connection. The shell must always see x + y = 1000 (each
# scan is a snapshot of committed data), must see the writers' progress, and
# at the end every write the programs reported is there: busy_timeout made
# the two writers wait for each other instead of failing.
#   procs_sql.sh BUILD_DIR
set -eu
build=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
db=$dir/t.db
"$build/sqlwriter" "$db" 0 "CREATE VIRTUAL TABLE kv USING hashkv(sync='normal');
  INSERT INTO kv VALUES('x', 1000), ('y', 0), ('n', 0);" >/dev/null

"$build/sqlwriter" "$db" 2 "BEGIN;
  UPDATE kv SET value = value - 1 WHERE key = 'x';
  UPDATE kv SET value = value + 1 WHERE key = 'y';
  COMMIT;" >"$dir/moves" &
mover=$!
"$build/sqlwriter" "$db" 2 "UPDATE kv SET value = value + 1 WHERE key = 'n';" \
  >"$dir/counts" &
counter=$!

for _ in $(seq 400); do
  echo ".shell sleep 0.004"
  echo "SELECT sum(value), max(CASE key WHEN 'y' THEN value END) FROM kv WHERE key <> 'n';"
done >"$dir/reads.sql"
# .timeout: the database file itself is in rollback-journal mode, where
# SQLite's own lock on it makes a reader wait briefly during each commit.
# -readonly: the shell's connection, and so its store, is read-only.
sqlite3 -batch -bail -readonly -cmd ".load $build/hashkv" -cmd ".timeout 5000" \
  "$db" <"$dir/reads.sql" >"$dir/seen"
wait "$mover"
wait "$counter"

fail() { echo "FAIL: $*" >&2; exit 1; }
bad=$(awk -F'|' '$1 != 1000' "$dir/seen" | head -3)
[ -z "$bad" ] || fail "the shell saw x + y != 1000: $bad"
awk -F'|' 'NR > 1 && $2 < last { exit 1 } { last = $2 }' "$dir/seen" ||
  fail "y went backwards in the shell's reads"
distinct=$(cut -d'|' -f2 "$dir/seen" | sort -u | wc -l)
[ "$distinct" -ge 2 ] || fail "the shell never saw the writers' progress"
moves=$(cat "$dir/moves")
counts=$(cat "$dir/counts")
final=$(sqlite3 -batch -cmd ".load $build/hashkv" -cmd ".timeout 5000" "$db" \
  "SELECT group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);")
[ "$final" = "n=$counts x=$((1000 - moves)) y=$moves" ] ||
  fail "final '$final', wanted n=$counts x=$((1000 - moves)) y=$moves"
echo "ok: $moves moves, $counts counts, $(wc -l <"$dir/seen") snapshots, $distinct values of y seen"
