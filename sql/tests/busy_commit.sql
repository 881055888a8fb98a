-- A COMMIT that gets SQLITE_BUSY (a reader holds the database file) keeps
-- the transaction open; it goes on taking writes, and the retried COMMIT
-- keeps them all, as for the native table beside it.
CREATE VIRTUAL TABLE kv USING hashkv(sync=normal);
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
.conn 1
BEGIN;
SELECT count(*) FROM n;
.conn 0
BEGIN;
INSERT INTO n VALUES(1, 'a');
INSERT INTO kv VALUES(1, 'a');
COMMIT;
INSERT INTO n VALUES(2, 'b');
INSERT INTO kv VALUES(2, 'b');
UPDATE n SET value = 'A' WHERE key = 1;
UPDATE kv SET value = 'A' WHERE key = 1;
SAVEPOINT s;
INSERT INTO n VALUES(3, 'c');
INSERT INTO kv VALUES(3, 'c');
ROLLBACK TO s;
RELEASE s;
COMMIT;
.conn 1
SELECT 'reader', (SELECT count(*) FROM n), (SELECT count(*) FROM kv);
COMMIT;
.conn 0
COMMIT;
SELECT 'n ', key, value FROM n ORDER BY key;
SELECT 'kv', key, value FROM kv ORDER BY key;
.echo -- only the table written
.conn 1
BEGIN;
SELECT count(*) FROM n;
.conn 0
BEGIN;
INSERT INTO kv VALUES(4, 'd');
COMMIT;
INSERT INTO kv VALUES(5, 'e');
.conn 1
COMMIT;
.conn 0
COMMIT;
SELECT 'kv', key, value FROM kv ORDER BY key;
.echo -- ROLLBACK after the busy COMMIT takes everything back
.conn 1
BEGIN;
SELECT count(*) FROM n;
.conn 0
BEGIN;
INSERT INTO n VALUES(6, 'f');
INSERT INTO kv VALUES(6, 'f');
COMMIT;
ROLLBACK;
.echo -- a write in autocommit mode fails whole, as the native one does
INSERT INTO n VALUES(7, 'g');
INSERT INTO kv VALUES(7, 'g');
.conn 1
COMMIT;
.conn 0
.reopen
SELECT 'n ', key, value FROM n ORDER BY key;
SELECT 'kv', key, value FROM kv ORDER BY key;
INSERT INTO kv(kv) VALUES('integrity-check');
.echo -- a reader of an attached database written in the same transaction
ATTACH 'aux.db' AS aux;
CREATE TABLE aux.m(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
.conn 1
ATTACH 'aux.db' AS aux;
BEGIN;
SELECT count(*) FROM aux.m;
.conn 0
BEGIN;
INSERT INTO aux.m VALUES(8, 'h');
INSERT INTO kv VALUES(8, 'h');
COMMIT;
INSERT INTO kv VALUES(9, 'i');
.conn 1
COMMIT;
.conn 0
COMMIT;
SELECT 'm ', key, value FROM aux.m ORDER BY key;
SELECT 'kv', key, value FROM kv WHERE key > 7 ORDER BY key;
.echo -- WAL mode: a reader does not hold up the commit
PRAGMA journal_mode = wal;
.conn 1
BEGIN;
SELECT count(*) FROM n;
.conn 0
BEGIN;
INSERT INTO n VALUES(10, 'j');
INSERT INTO kv VALUES(10, 'j');
COMMIT;
.conn 1
SELECT 'reader', count(*) FROM n;
COMMIT;
SELECT 'reader', (SELECT count(*) FROM n), (SELECT count(*) FROM kv WHERE key = 10);
