-- Plans: key = ? and key IN (...) go through the hash; everything else
-- scans, and SQLite applies the constraint. Every order of range
-- constraints returns the native table's rows.
CREATE VIRTUAL TABLE kv USING hashkv;
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 8)
INSERT INTO kv SELECT i, 'v' || i FROM c;
INSERT INTO n SELECT key, value FROM kv;
CREATE TABLE t(k);
INSERT INTO t VALUES(2), (5), (42);
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key = 3;
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key IN (1, 3, 5);
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key IN (SELECT k FROM t);
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key > 2 AND key <= 4;
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE value = 'v3';
EXPLAIN QUERY PLAN SELECT * FROM kv WHERE key = 'A' COLLATE NOCASE;
EXPLAIN QUERY PLAN SELECT * FROM t JOIN kv ON kv.key = t.k;
EXPLAIN QUERY PLAN SELECT * FROM kv ORDER BY key;
EXPLAIN QUERY PLAN UPDATE kv SET value = 1 WHERE key = 3;
EXPLAIN QUERY PLAN DELETE FROM kv WHERE key = 3;
SELECT value FROM kv WHERE key = 3;
SELECT group_concat(value) FROM (SELECT value FROM kv WHERE key IN (1, 3, 5, 99, NULL) ORDER BY 1);
SELECT group_concat(value) FROM (SELECT value FROM kv WHERE key IN (SELECT k FROM t) ORDER BY 1);
SELECT group_concat(k || ':' || v) FROM (SELECT t.k AS k, kv.value AS v FROM t JOIN kv ON kv.key = t.k ORDER BY 1);
.echo -- ranges in every order: kv, then n
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key > 2 AND key <= 4 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE key > 2 AND key <= 4 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key <= 4 AND key > 2 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE key <= 4 AND key > 2 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE 4 >= key AND 2 < key ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE 4 >= key AND 2 < key ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key BETWEEN 3 AND 5 AND key = 4);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE key BETWEEN 3 AND 5 AND key = 4);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key = 4 AND key > 5);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE key = 4 AND key > 5);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key != 4 AND key < 4 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE key != 4 AND key < 4 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key IS 4);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key LIKE '%3%');
SELECT count(*) FROM kv WHERE key = 3 OR key = 5;
SELECT key, value FROM kv WHERE key = 5 LIMIT 1 OFFSET 0;
.echo -- scans read only the columns SQLite uses (cols:), in log order
EXPLAIN QUERY PLAN SELECT count(*) FROM kv;
EXPLAIN QUERY PLAN SELECT sum(length(value)) FROM kv;
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE value = 'v3';
.echo -- key ranges, GLOB and LIKE filter the keys (INDEX 3:), SQLite checks too
EXPLAIN QUERY PLAN SELECT count(*) FROM kv WHERE key BETWEEN 2 AND 5;
EXPLAIN QUERY PLAN SELECT value FROM kv WHERE key >= 'a' AND key < 'b';
EXPLAIN QUERY PLAN SELECT count(*) FROM kv WHERE key GLOB 'user:*';
EXPLAIN QUERY PLAN SELECT count(*) FROM kv WHERE key LIKE 'user:%';
EXPLAIN QUERY PLAN SELECT count(*) FROM kv WHERE key > 'a' COLLATE NOCASE;
EXPLAIN QUERY PLAN SELECT count(*) FROM kv WHERE key LIKE 'a%' ESCAPE '\';
EXPLAIN QUERY PLAN SELECT value FROM kv WHERE key > 2 AND key = 3;
.echo -- a filtered scan sorts its matches for ORDER BY key; a full scan does not
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE key > 2 ORDER BY key;
EXPLAIN QUERY PLAN SELECT key FROM kv WHERE key > 2 ORDER BY key DESC LIMIT 2;
EXPLAIN QUERY PLAN SELECT key FROM kv ORDER BY key LIMIT 2;
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key > 2 ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key > 2 ORDER BY key DESC LIMIT 3);
SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key BETWEEN 2.5 AND '5' ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM n WHERE key BETWEEN 2.5 AND '5' ORDER BY key);
SELECT count(*), sum(length(value)) FROM kv;
