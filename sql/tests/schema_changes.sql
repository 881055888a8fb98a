-- Schema changes inside transactions that write the table, beside the
-- native table. SQLite connects a virtual table again after some of them
-- (CREATE VIRTUAL TABLE, ALTER TABLE RENAME, ROLLBACK TO undoing a schema
-- change) while the old instance stays in the transaction; every instance
-- of a table in one connection shares one store handle, so each sees the
-- transaction's writes, may add its own, and a ROLLBACK takes all back.
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
.echo -- created and written in one transaction, rolled back
BEGIN;
CREATE VIRTUAL TABLE kv USING hashkv;
INSERT INTO kv VALUES(1, 1), (2, 2);
SELECT count(*) FROM kv;
ROLLBACK;
CREATE VIRTUAL TABLE kv USING hashkv;
SELECT count(*) FROM kv;
DROP TABLE kv;
.echo -- created and written in one transaction: statement rollback, savepoints
BEGIN;
CREATE VIRTUAL TABLE kv USING hashkv;
INSERT INTO kv VALUES(1, 1), (2, 2);
INSERT INTO n VALUES(1, 1), (2, 2);
INSERT INTO kv VALUES(3, 3), (1, 1);
INSERT INTO n VALUES(3, 3), (1, 1);
SELECT count(*) FROM kv;
SELECT count(*) FROM n;
SAVEPOINT s;
INSERT INTO kv VALUES(4, 4);
INSERT INTO n VALUES(4, 4);
ROLLBACK TO s;
SELECT count(*) FROM kv;
SELECT count(*) FROM n;
COMMIT;
SELECT * FROM kv ORDER BY key;
SELECT * FROM n ORDER BY key;
.echo -- ROLLBACK TO undoing a CREATE TABLE, then reads and writes
BEGIN;
INSERT INTO kv VALUES(5, 5);
INSERT INTO n VALUES(5, 5);
SAVEPOINT s;
CREATE TABLE t(x);
ROLLBACK TO s;
SELECT count(*) FROM kv;
SELECT count(*) FROM n;
INSERT INTO kv VALUES(6, 6);
INSERT INTO n VALUES(6, 6);
COMMIT;
SELECT count(*) FROM kv;
SELECT count(*) FROM n;
.echo -- renamed between writes, rolled back, then committed
BEGIN;
INSERT INTO kv VALUES(7, 7);
ALTER TABLE kv RENAME TO kv2;
INSERT INTO kv2 VALUES(8, 8);
SELECT count(*) FROM kv2;
ROLLBACK;
SELECT count(*) FROM kv;
BEGIN;
INSERT INTO kv VALUES(7, 7);
ALTER TABLE kv RENAME TO kv2;
INSERT INTO kv2 VALUES(8, 8);
COMMIT;
SELECT count(*) FROM kv2;
.reopen
SELECT count(*) FROM kv2;
INSERT INTO kv2(kv2) VALUES('integrity-check');
.echo -- two tables on one store share its transaction; dropping one keeps the other's data
CREATE VIRTUAL TABLE a USING hashkv(path='shared.hkv');
CREATE VIRTUAL TABLE b USING hashkv(path='shared.hkv');
BEGIN;
INSERT INTO a VALUES('x', 1);
INSERT INTO b VALUES('y', 2);
SELECT count(*) FROM b;
ROLLBACK;
SELECT count(*) FROM a;
INSERT INTO b VALUES('y', 2);
DROP TABLE a;
SELECT * FROM b;
SELECT hashkv_reclaim();
SELECT * FROM b;
.echo -- created inside a savepoint, written, undone by ROLLBACK TO: nothing kept
BEGIN;
SAVEPOINT s0;
CREATE VIRTUAL TABLE k3 USING hashkv;
CREATE TABLE n3(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
INSERT INTO k3 VALUES(1, 1);
INSERT INTO n3 VALUES(1, 1);
SAVEPOINT s1;
INSERT INTO k3 VALUES(2, 2);
INSERT INTO n3 VALUES(2, 2);
ROLLBACK TO s0;
COMMIT;
CREATE VIRTUAL TABLE k3 USING hashkv;
CREATE TABLE n3(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
SELECT count(*) FROM k3;
SELECT count(*) FROM n3;
.echo -- a savepoint opened before a rename keeps its place
BEGIN;
INSERT INTO k3 VALUES(1, 1);
INSERT INTO n3 VALUES(1, 1);
SAVEPOINT s0;
INSERT INTO k3 VALUES(2, 2);
INSERT INTO n3 VALUES(2, 2);
ALTER TABLE k3 RENAME TO k4;
ALTER TABLE n3 RENAME TO n4;
INSERT INTO k4 VALUES(3, 3);
INSERT INTO n4 VALUES(3, 3);
ROLLBACK TO s0;
SELECT * FROM k3 ORDER BY key;
SELECT * FROM n3 ORDER BY key;
COMMIT;
SELECT * FROM k3 ORDER BY key;
SELECT * FROM n3 ORDER BY key;
.echo -- created in a savepoint, undone, created again in the same transaction
BEGIN;
SAVEPOINT s0;
CREATE VIRTUAL TABLE k5 USING hashkv;
CREATE TABLE n5(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
INSERT INTO k5 VALUES(1, 1);
INSERT INTO n5 VALUES(1, 1);
ROLLBACK TO s0;
CREATE VIRTUAL TABLE k5 USING hashkv;
CREATE TABLE n5(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
INSERT INTO k5 VALUES(2, 2);
INSERT INTO n5 VALUES(2, 2);
COMMIT;
SELECT * FROM k5;
SELECT * FROM n5;
