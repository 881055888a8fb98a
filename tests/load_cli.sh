#!/usr/bin/env bash
# The extension loads into the system sqlite3 shell with ".load".
set -euo pipefail
so="$1"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
out=$(cd "$dir" && sqlite3 t.db <<SQL
.load ${so%.so}
CREATE VIRTUAL TABLE kv USING hashkv;
INSERT INTO kv VALUES('k', 'v'), (1, 2.5);
SELECT quote(key) || '=' || quote(value) FROM kv ORDER BY key;
SELECT hashkv_version() IS NOT NULL;
SQL
)
want=$'1=2.5\n\'k\'=\'v\'\n1'
if [ "$out" != "$want" ]; then
  printf 'got:\n%s\nwanted:\n%s\n' "$out" "$want"
  exit 1
fi
ls "$dir"/t.db-hashkv/*/00000001.hkd >/dev/null
echo "sqlite3 shell: .load works"
