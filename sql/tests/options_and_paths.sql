-- CREATE options: key=value, quoted or not; unknown options and bad values
-- name themselves. Stores go beside the database file.
CREATE VIRTUAL TABLE a USING hashkv(path='a.hkv', sync=off, segment_size=65536);
CREATE VIRTUAL TABLE b USING hashkv("path"="sub dir.hkv", 'sync'='NORMAL');
CREATE VIRTUAL TABLE c USING hashkv(sync = full);
CREATE VIRTUAL TABLE d USING hashkv(colour=blue);
CREATE VIRTUAL TABLE d USING hashkv(sync=sometimes);
CREATE VIRTUAL TABLE d USING hashkv(segment_size=12);
CREATE VIRTUAL TABLE d USING hashkv(segment_size=lots);
CREATE VIRTUAL TABLE d USING hashkv(path);
CREATE VIRTUAL TABLE d USING hashkv(path='');
INSERT INTO a VALUES(1, 1);
INSERT INTO b VALUES(1, 1);
INSERT INTO c VALUES(1, 1);
SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b), (SELECT count(*) FROM c);
SELECT name FROM sqlite_schema ORDER BY name;
.echo -- the module cannot be used from views or triggers
CREATE VIEW v AS SELECT * FROM a;
SELECT * FROM v;
CREATE TABLE t(x);
CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO a VALUES(new.x, 0); END;
INSERT INTO t VALUES(2);
SELECT count(*) FROM a;
DROP VIEW v;
DROP TRIGGER tr;
.echo -- stats and version
SELECT value > 0 FROM hashkv_stats('a') WHERE name = 'index_bytes';
SELECT * FROM hashkv_stats('nosuch');
SELECT * FROM hashkv_stats;
SELECT typeof(hashkv_version());
.echo -- rename keeps the data; drop removes it (a path store keeps it: the user's)
ALTER TABLE c RENAME TO c2;
SELECT count(*) FROM c2;
.reopen
SELECT count(*) FROM c2;
INSERT INTO c2 VALUES(2, 2);
DROP TABLE c2;
CREATE VIRTUAL TABLE c2 USING hashkv;
SELECT count(*) FROM c2;
DROP TABLE a;
CREATE VIRTUAL TABLE a USING hashkv(path='a.hkv');
SELECT count(*) FROM a;
