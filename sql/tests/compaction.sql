-- Compaction from SQL: the command, the options, the stats.
CREATE VIRTUAL TABLE kv USING hashkv(sync=normal, segment_size=16384, auto_compact=0);
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000)
INSERT INTO kv SELECT i, 'first ' || i FROM c;
UPDATE kv SET value = 'second ' || key;
UPDATE kv SET value = 'third ' || key WHERE key % 3 = 0;
DELETE FROM kv WHERE key % 2 = 0;
INSERT INTO n SELECT key, value FROM kv;
SELECT name, value > 0 FROM hashkv_stats('kv') WHERE name IN ('dead_bytes', 'compactions');
INSERT INTO kv(kv) VALUES('compact');
SELECT name, value FROM hashkv_stats('kv') WHERE name IN ('live_keys', 'compactions');
SELECT (SELECT value FROM hashkv_stats('kv') WHERE name = 'total_bytes') <
       (SELECT value FROM hashkv_stats('kv') WHERE name = 'live_bytes') * 13 / 10 + 2 * 16384;
SELECT count(*) FROM (SELECT key, value FROM kv EXCEPT SELECT key, value FROM n);
INSERT INTO kv(kv) VALUES('integrity-check');
.echo -- not inside a transaction that has written
BEGIN;
INSERT INTO kv VALUES('x', 1);
INSERT INTO kv(kv) VALUES('compact');
ROLLBACK;
.echo -- the same rows after a reopen (from the compacted files and hints)
.reopen
SELECT count(*), sum(length(value)) FROM kv;
SELECT count(*) FROM (SELECT key, value FROM kv EXCEPT SELECT key, value FROM n);
.echo -- bad options
CREATE VIRTUAL TABLE bad USING hashkv(auto_compact=1.5);
CREATE VIRTUAL TABLE bad USING hashkv(auto_compact=often);
CREATE VIRTUAL TABLE bad USING hashkv(auto_compact_min=-1);
