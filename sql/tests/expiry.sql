-- The hidden column expires_at (README "Keys that expire"), with times that
-- do not depend on the clock: 2100 (ahead), 1970 and before (past). The
-- differential test under a test clock is tests/test_vtab_ttl.c.
CREATE VIRTUAL TABLE kv USING hashkv;
SELECT name, hidden FROM pragma_table_xinfo('kv');
INSERT INTO kv(key, value, expires_at) VALUES('a', 1, 4102444800), ('b', 2, 4102444800.125), ('c', 3, NULL);
INSERT INTO kv VALUES('d', 4);
SELECT * FROM kv ORDER BY key;
SELECT key, quote(expires_at), typeof(expires_at) FROM kv ORDER BY key;
.echo -- an UPDATE of the value or of the key keeps it; REPLACE without it clears it
UPDATE kv SET value = 10 WHERE key = 'a';
UPDATE kv SET key = 'bb' WHERE key = 'b';
SELECT key, value, quote(expires_at) FROM kv WHERE key IN ('a', 'bb') ORDER BY key;
REPLACE INTO kv(key, value) VALUES('a', 11);
SELECT key, value, quote(expires_at) FROM kv ORDER BY key;
.echo -- re-arm, persist
UPDATE kv SET expires_at = 4102444801 WHERE key = 'c';
UPDATE kv SET expires_at = NULL WHERE key = 'bb';
SELECT key, quote(expires_at) FROM kv WHERE expires_at IS NOT NULL ORDER BY key;
.echo -- a time already past deletes: 1970, before it, and an INSERT of one writes nothing
UPDATE kv SET expires_at = 1 WHERE key = 'c';
UPDATE kv SET expires_at = -100.5 WHERE key = 'd';
INSERT INTO kv(key, value, expires_at) VALUES('e', 5, 0);
SELECT group_concat(key) FROM (SELECT key FROM kv ORDER BY key);
SELECT count(*) FROM kv WHERE key IN ('c', 'd', 'e');
.echo -- so its key is free again: no UNIQUE error
INSERT INTO kv VALUES('c', 'again');
SELECT value, quote(expires_at) FROM kv WHERE key = 'c';
.echo -- bad times: an error naming the column, nothing written
INSERT INTO kv(key, value, expires_at) VALUES('f', 6, 'tomorrow');
INSERT INTO kv(key, value, expires_at) VALUES('f', 6, x'01');
UPDATE kv SET expires_at = '2100-01-01' WHERE key = 'a';
INSERT INTO kv(key, value, expires_at) VALUES('f', 6, 1e300);
INSERT INTO kv(key, value, expires_at) VALUES('f', 6, 9000000000000);
INSERT INTO kv(key, value, expires_at) VALUES('f', 6, 8999999999999.5);
SELECT key, quote(expires_at) FROM kv WHERE key IN ('a', 'f');
.echo -- plans: expires_at constraints are SQLite's to apply over a scan
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE expires_at > 4000000000;
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE key = 'a' AND expires_at IS NULL;
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE expires_at > 4000000000 ORDER BY key);
SELECT name, value FROM hashkv_stats('kv') WHERE name IN ('expiring_keys', 'expired_keys');
