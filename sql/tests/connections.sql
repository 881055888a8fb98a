-- Several connections to one store share one engine: each sees the others'
-- committed changes and none of their uncommitted ones; a second writer
-- gets SQLITE_BUSY at once; readers never wait for a writer.
CREATE VIRTUAL TABLE kv USING hashkv(sync=normal);
INSERT INTO kv VALUES('a', 1);
.conn 1
SELECT quote(value) FROM kv WHERE key = 'a';
.conn 0
BEGIN;
UPDATE kv SET value = 2 WHERE key = 'a';
INSERT INTO kv VALUES('b', 1);
SELECT count(*), sum(value) FROM kv;
.conn 1
SELECT count(*), sum(value) FROM kv;
SELECT quote(value) FROM kv WHERE key = 'a';
SELECT quote(value) FROM kv WHERE key = 'b';
INSERT INTO kv VALUES('c', 1);
BEGIN;
SELECT count(*) FROM kv;
UPDATE kv SET value = 3 WHERE key = 'a';
ROLLBACK;
.conn 0
COMMIT;
.conn 1
SELECT count(*), sum(value) FROM kv;
INSERT INTO kv VALUES('c', 1);
.conn 2
SELECT group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);
