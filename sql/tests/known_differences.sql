-- Where kv and the native table differ, by design (README, "What is not
-- supported"): each claim there is checked here, beside the native table.
CREATE VIRTUAL TABLE kv USING hashkv(sync=off);
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
.echo -- a multi-row key UPDATE depends on the order rows are visited
INSERT INTO n VALUES(1, 'a'), (2, 'b'), (3, 'c'), (5, 'e'), (6, 'f'), (7, 'g');
-- kv visits rows in log order: written here from the highest key down
INSERT INTO kv SELECT * FROM n ORDER BY key DESC;
UPDATE n SET key = key - 1 WHERE key > 3;
UPDATE kv SET key = key - 1 WHERE key > 3;
SELECT 'n ', group_concat(key, ' ') FROM (SELECT key FROM n ORDER BY key);
SELECT 'kv', group_concat(key, ' ') FROM (SELECT key FROM kv ORDER BY key);
UPDATE n SET key = key + 1;
UPDATE kv SET key = key + 1;
SELECT 'n ', group_concat(key, ' ') FROM (SELECT key FROM n ORDER BY key);
SELECT 'kv', group_concat(key, ' ') FROM (SELECT key FROM kv ORDER BY key);
UPDATE n SET key = key + 10;
UPDATE kv SET key = key + 10;
SELECT 'n ', group_concat(key, ' ') FROM (SELECT key FROM n ORDER BY key);
SELECT 'kv', group_concat(key, ' ') FROM (SELECT key FROM kv ORDER BY key);
DELETE FROM n;
DELETE FROM kv;
INSERT INTO n VALUES(6, 'f'), (7, 'g');
INSERT INTO kv VALUES(7, 'g'), (6, 'f');
UPDATE n SET key = key + 1;
UPDATE kv SET key = key + 1;
SELECT 'n ', group_concat(key, ' ') FROM (SELECT key FROM n ORDER BY key);
SELECT 'kv', group_concat(key, ' ') FROM (SELECT key FROM kv ORDER BY key);
DELETE FROM n;
DELETE FROM kv;
.echo -- numeric affinity on the other side of = or IN: the text key '1'
INSERT INTO n VALUES('1', 'text'), (2, 'int');
INSERT INTO kv VALUES('1', 'text'), (2, 'int');
CREATE TABLE ints(i INTEGER);
INSERT INTO ints VALUES(1), (2);
SELECT 'n ', quote(key) FROM n WHERE key = CAST('1' AS INTEGER);
SELECT 'kv', quote(key) FROM kv WHERE key = CAST('1' AS INTEGER);
SELECT 'n ', quote(key) FROM n WHERE key = (SELECT i FROM ints WHERE i = 1);
SELECT 'kv', quote(key) FROM kv WHERE key = (SELECT i FROM ints WHERE i = 1);
SELECT 'n ', quote(key) FROM n WHERE key IN (SELECT i FROM ints) ORDER BY 2;
SELECT 'kv', quote(key) FROM kv WHERE key IN (SELECT i FROM ints) ORDER BY 2;
SELECT 'n ', quote(n.key) FROM ints JOIN n ON n.key = ints.i;
SELECT 'kv', quote(kv.key) FROM ints JOIN kv ON kv.key = ints.i;
EXPLAIN QUERY PLAN SELECT kv.key FROM ints JOIN kv ON kv.key = ints.i;
.echo -- (a plan that scans kv instead applies SQLite's comparison, and matches)
SELECT 'kv', quote(kv.key) FROM ints JOIN kv ON kv.key = ints.i ORDER BY 2;
EXPLAIN QUERY PLAN SELECT kv.key FROM ints JOIN kv ON kv.key = ints.i ORDER BY 1;
.echo -- ... and the same rows are missed by UPDATE and DELETE
UPDATE n SET value = 'seen' WHERE key = CAST('1' AS INTEGER);
UPDATE kv SET value = 'seen' WHERE key = CAST('1' AS INTEGER);
SELECT 'n ', quote(key), value FROM n WHERE key = '1';
SELECT 'kv', quote(key), value FROM kv WHERE key = '1';
DELETE FROM n WHERE key IN (SELECT i FROM ints);
DELETE FROM kv WHERE key IN (SELECT i FROM ints);
SELECT 'n ', count(*) FROM n;
SELECT 'kv', count(*) FROM kv;
DELETE FROM kv;
INSERT INTO n VALUES('1', 'text'), (2, 'int');
INSERT INTO kv VALUES('1', 'text'), (2, 'int');
.echo -- values of the same type, literals and untyped columns match alike
SELECT 'n ', quote(key) FROM n WHERE key = 1;
SELECT 'kv', quote(key) FROM kv WHERE key = 1;
SELECT 'n ', quote(key) FROM n WHERE key = '1';
SELECT 'kv', quote(key) FROM kv WHERE key = '1';
CREATE TABLE untyped(u);
INSERT INTO untyped VALUES(1), ('1');
SELECT 'n ', quote(key) FROM n WHERE key IN (SELECT u FROM untyped);
SELECT 'kv', quote(key) FROM kv WHERE key IN (SELECT u FROM untyped);
.echo -- a full scan applies SQLite's comparison itself and matches
SELECT 'n ', quote(key) FROM n WHERE key + 0 = 1 OR key > CAST('0' AS INTEGER);
SELECT 'kv', quote(key) FROM kv WHERE key + 0 = 1 OR key > CAST('0' AS INTEGER);
