#!/bin/bash
# Several processes on one hashkv table through SQL: two writers (C
# programs, tests/sqlwriter) write it at once, one moving units from x to y
# in transactions, one counting, while the sqlite3 shell reads it through a
# read-only connection (and so a read-only store). Checked:
#   - every scan the shell makes sums x + y to 1000 (a snapshot of
#     committed data), and y never goes back;
#   - the shell read while the writers wrote: the writers run until the
#     shell has finished, then once more, and the shell starts once y > 0,
#     so every y it saw lies strictly between 0 and the final y; half way
#     through its reads it waits until y has moved on, so it saw at least
#     two values (no timing assumed: each wait fails after 60 s);
#   - at the end every write the writers reported is there (busy_timeout
#     made them take turns instead of failing).
# Each writer is a loop of sqlwriter runs of 0.3 s (a run prints how many
# times it ran its SQL), so the script decides when they stop.
#   procs_sql.sh BUILD_DIR
set -eu
build=$1
dir=$(mktemp -d)
trap 'touch "$dir/stop"; wait; rm -rf "$dir"' EXIT
db=$dir/t.db
fail() { echo "FAIL: $*" >&2; exit 1; }
# A read-only query through the shell. .timeout: the database file itself
# is in rollback-journal mode, where SQLite's own lock on it makes a reader
# wait briefly during each commit.
roQuery() {
  sqlite3 -batch -readonly -cmd ".load $build/hashkv" -cmd ".timeout 5000" \
    "$db" "$1"
}
# Polls until roQuery "$1" prints 1: at most 60 s, then fails.
waitFor() {
  local end=$((SECONDS + 60))
  while [ "$SECONDS" -lt "$end" ]; do
    [ "$(roQuery "$1")" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}

"$build/sqlwriter" "$db" 0 "CREATE VIRTUAL TABLE kv USING hashkv(sync='normal');
  INSERT INTO kv VALUES('x', 1000), ('y', 0), ('n', 0);" >/dev/null

# writer OUT SQL: runs SQL until $dir/stop exists, then once more.
writer() {
  until [ -e "$dir/stop" ]; do
    "$build/sqlwriter" "$db" 0.3 "$2" >>"$1"
  done
  "$build/sqlwriter" "$db" 0 "$2" >>"$1"
}
# The SELECT first: a table first opened inside a deferred BEGIN reads its
# link there, and the write that follows may then get SQLITE_BUSY at once in
# rollback-journal mode, as after any read (README, What is not supported).
writer "$dir/moves" "SELECT count(*) FROM kv WHERE 0; BEGIN;
  UPDATE kv SET value = value - 1 WHERE key = 'x';
  UPDATE kv SET value = value + 1 WHERE key = 'y';
  COMMIT;" &
mover=$!
writer "$dir/counts" "UPDATE kv SET value = value + 1 WHERE key = 'n';" &
counter=$!

waitFor "SELECT value > 0 FROM kv WHERE key = 'y'" ||
  fail "the writers never moved a unit"
cat >"$dir/progress.sh" <<EOF
# Waits until y is above what it is now (60 s at most).
y0=\$(sqlite3 -batch -readonly -cmd ".load $build/hashkv" -cmd ".timeout 5000" \
  "$db" "SELECT value FROM kv WHERE key = 'y'")
end=\$((\$(date +%s) + 60))
while [ "\$(date +%s)" -lt "\$end" ]; do
  y=\$(sqlite3 -batch -readonly -cmd ".load $build/hashkv" -cmd ".timeout 5000" \
    "$db" "SELECT value FROM kv WHERE key = 'y'")
  [ "\$y" -gt "\$y0" ] && exit 0
  sleep 0.1
done
touch "$dir/noprogress"
EOF
for i in $(seq 400); do
  [ "$i" = 200 ] && echo ".shell sh $dir/progress.sh"
  echo ".shell sleep 0.004"
  echo "SELECT sum(value), max(CASE key WHEN 'y' THEN value END) FROM kv WHERE key <> 'n';"
done >"$dir/reads.sql"
# -readonly: the shell's connection, and so its store, is read-only.
sqlite3 -batch -bail -readonly -cmd ".load $build/hashkv" -cmd ".timeout 5000" \
  "$db" <"$dir/reads.sql" >"$dir/seen"
touch "$dir/stop"
wait "$mover" || fail "the mover failed"
wait "$counter" || fail "the counter failed"

[ -e "$dir/noprogress" ] && fail "y did not move on in 60 s"
[ "$(wc -l <"$dir/seen")" = 400 ] || fail "the shell made $(wc -l <"$dir/seen") of 400 reads"
bad=$(awk -F'|' '$1 != 1000' "$dir/seen" | head -3)
[ -z "$bad" ] || fail "the shell saw x + y != 1000: $bad"
awk -F'|' 'NR > 1 && $2 < last { exit 1 } { last = $2 }' "$dir/seen" ||
  fail "y went backwards in the shell's reads"
moves=$(awk '{ s += $1 } END { print s + 0 }' "$dir/moves")
counts=$(awk '{ s += $1 } END { print s + 0 }' "$dir/counts")
outside=$(awk -F'|' -v f="$moves" '$2 <= 0 || $2 >= f' "$dir/seen" | head -3)
[ -z "$outside" ] ||
  fail "the shell read outside the writers' run (final y = $moves): $outside"
distinct=$(cut -d'|' -f2 "$dir/seen" | sort -u | wc -l)
[ "$distinct" -ge 2 ] || fail "the shell never saw the writers' progress"
final=$(sqlite3 -batch -cmd ".load $build/hashkv" -cmd ".timeout 5000" "$db" \
  "SELECT group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);")
[ "$final" = "n=$counts x=$((1000 - moves)) y=$moves" ] ||
  fail "final '$final', wanted n=$counts x=$((1000 - moves)) y=$moves"
echo "ok: $moves moves, $counts counts, $(wc -l <"$dir/seen") snapshots, $distinct values of y seen"
