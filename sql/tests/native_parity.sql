-- Results that must equal the native WITHOUT ROWID table's, side by side.
CREATE VIRTUAL TABLE kv USING hashkv(sync=off);
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
CREATE TABLE r(x);
.echo -- last_insert_rowid(): no write to either table moves it
INSERT INTO r VALUES('a'), ('b'), ('c');
INSERT INTO n VALUES(1, 'one');
SELECT 'n ', last_insert_rowid();
INSERT INTO r VALUES('d');
INSERT INTO kv VALUES(1, 'one');
SELECT 'kv', last_insert_rowid();
INSERT INTO r VALUES('e');
INSERT INTO n VALUES(2, 'two'), (3, 'three');
INSERT OR REPLACE INTO n VALUES(1, 'uno');
INSERT INTO n SELECT key + 10, value FROM n;
UPDATE n SET value = 'UNO' WHERE key = 1;
DELETE FROM n WHERE key = 13;
INSERT OR IGNORE INTO n VALUES(1, 'ignored');
SELECT 'n ', last_insert_rowid(), changes();
INSERT INTO r VALUES('f');
INSERT INTO kv VALUES(2, 'two'), (3, 'three');
INSERT OR REPLACE INTO kv VALUES(1, 'uno');
INSERT INTO kv SELECT key + 10, value FROM n WHERE key < 10;
UPDATE kv SET value = 'UNO' WHERE key = 1;
DELETE FROM kv WHERE key = 13;
INSERT INTO kv(kv) VALUES('integrity-check');
INSERT OR IGNORE INTO kv VALUES(1, 'ignored');
SELECT 'kv', last_insert_rowid(), changes();
DELETE FROM kv;
DELETE FROM n;
.echo -- -0.0: one key with 0 and 0.0; the form last written is the one read back
INSERT INTO n VALUES(-0.0, 'a');
INSERT INTO kv VALUES(-0.0, 'a');
SELECT 'n ', atan2(key, -1) < 0, typeof(key), quote(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), quote(key), value FROM kv;
INSERT INTO n VALUES(0, 'b');
INSERT INTO kv VALUES(0, 'b');
INSERT OR IGNORE INTO n VALUES(0.0, 'c');
INSERT OR IGNORE INTO kv VALUES(0.0, 'c');
UPDATE n SET value = 'u' WHERE key = 0;
UPDATE kv SET value = 'u' WHERE key = 0;
SELECT 'n ', atan2(key, -1) < 0, typeof(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), value FROM kv;
SELECT 'n ', count(*) FROM n WHERE key = 0 AND key = -0.0 AND key IN (0.0);
SELECT 'kv', count(*) FROM kv WHERE key = 0 AND key = -0.0 AND key IN (0.0);
UPDATE n SET key = 0.0 WHERE key = 0;
UPDATE kv SET key = 0.0 WHERE key = 0;
SELECT 'n ', atan2(key, -1) < 0, typeof(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), value FROM kv;
UPDATE n SET key = -0.0;
UPDATE kv SET key = -0.0;
SELECT 'n ', atan2(key, -1) < 0, typeof(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), value FROM kv;
REPLACE INTO n VALUES(0, 'r');
REPLACE INTO kv VALUES(0, 'r');
SELECT 'n ', atan2(key, -1) < 0, typeof(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), value FROM kv;
REPLACE INTO n VALUES(-0.0, 's');
REPLACE INTO kv VALUES(-0.0, 's');
UPDATE n SET value = value || '!';
UPDATE kv SET value = value || '!';
SELECT 'n ', atan2(key, -1) < 0, typeof(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), value FROM kv;
UPDATE n SET key = 0 WHERE key = 0;
UPDATE kv SET key = 0 WHERE key = 0;
SELECT 'n ', atan2(key, -1) < 0, typeof(key), value FROM n;
SELECT 'kv', atan2(key, -1) < 0, typeof(key), value FROM kv;
.echo -- a -0.0 value keeps its sign too; after a reopen as well
INSERT INTO n VALUES(5, -0.0);
INSERT INTO kv VALUES(5, -0.0);
UPDATE n SET key = -0.0 WHERE key = 0;
UPDATE kv SET key = -0.0 WHERE key = 0;
.reopen
SELECT 'n ', key, atan2(key, -1) < 0, typeof(key), atan2(value, -1) < 0 FROM n WHERE key = 5
UNION ALL SELECT 'n ', key, atan2(key, -1) < 0, typeof(key), value FROM n WHERE key = 0;
SELECT 'kv', key, atan2(key, -1) < 0, typeof(key), atan2(value, -1) < 0 FROM kv WHERE key = 5
UNION ALL SELECT 'kv', key, atan2(key, -1) < 0, typeof(key), value FROM kv WHERE key = 0;
SELECT 'kv', atan2(key, -1) < 0 FROM kv WHERE key = 0;
SELECT 'kv', key, atan2(key, -1) < 0 FROM kv WHERE key IN (0, 5) ORDER BY key;
SELECT 'kv', key, atan2(key, -1) < 0 FROM kv WHERE key > -1 ORDER BY key;
.echo -- changes() and total_changes(): CREATE and RENAME move neither, as natively
INSERT INTO r VALUES('g'), ('h');
SELECT 'before', changes(), total_changes();
CREATE TABLE n2(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
SELECT 'n ', changes(), total_changes();
CREATE VIRTUAL TABLE kv2 USING hashkv(sync=off);
SELECT 'kv', changes(), total_changes();
ALTER TABLE kv2 RENAME TO kv3;
SELECT 'kv', changes(), total_changes();
