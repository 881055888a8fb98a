-- hashkv demo: run by scripts/demo, then the shell is yours.
.load ./hashkv
.headers on
.mode box
CREATE VIRTUAL TABLE IF NOT EXISTS kv USING hashkv;
.print '-- put: INSERT (OR REPLACE to overwrite)'
INSERT OR REPLACE INTO kv VALUES('greeting', 'hello'), ('answer', 42), ('pi', 3.14159), ('blob', x'00ff');
.print '-- get: a point lookup goes through the hash index'
SELECT key, value, typeof(value) FROM kv WHERE key = 'answer';
EXPLAIN QUERY PLAN SELECT value FROM kv WHERE key = 'answer';
.print '-- delete'
DELETE FROM kv WHERE key = 'blob';
.print '-- a transaction: all or nothing'
BEGIN;
UPDATE kv SET value = value + 1 WHERE key = 'answer';
INSERT OR REPLACE INTO kv VALUES('temporary', 'gone after ROLLBACK');
ROLLBACK;
BEGIN;
INSERT OR REPLACE INTO kv VALUES('visits', coalesce((SELECT value FROM kv WHERE key = 'visits'), 0) + 1);
COMMIT;
.print '-- reopen the database: the data is still there'
.open demo.db
.load ./hashkv
SELECT key, quote(value) AS value FROM kv ORDER BY key;
SELECT name, value FROM hashkv_stats('kv');
.print 'Your turn: try SELECT * FROM kv; or INSERT INTO kv VALUES(...); (.quit to leave)'
