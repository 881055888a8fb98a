-- ALTER TABLE RENAME, committed and rolled back. A store at the default
-- location (<db>-<table>.hkv) moves with the table; when the transaction
-- that renamed it rolls back, the table under its old name finds its store
-- again (the module moves it back), with every row.
CREATE VIRTUAL TABLE kv USING hashkv;
INSERT INTO kv VALUES('a', 1), ('b', 2);
.echo -- a rename rolled back
BEGIN;
ALTER TABLE kv RENAME TO kv2;
SELECT count(*) FROM kv2;
ROLLBACK;
SELECT * FROM kv ORDER BY key;
.echo -- two renames in one transaction, rolled back
BEGIN;
ALTER TABLE kv RENAME TO x1;
ALTER TABLE x1 RENAME TO x2;
ROLLBACK;
SELECT count(*) FROM kv;
.echo -- undone by ROLLBACK TO
SAVEPOINT s;
ALTER TABLE kv RENAME TO kv3;
ROLLBACK TO s;
RELEASE s;
SELECT count(*) FROM kv;
.echo -- the rolled-back rename survives a reopen
.reopen
SELECT count(*) FROM kv;
INSERT INTO kv VALUES('c', 3);
.echo -- committed, and renamed back
ALTER TABLE kv RENAME TO kv4;
SELECT count(*) FROM kv4;
BEGIN;
ALTER TABLE kv4 RENAME TO kv;
COMMIT;
SELECT count(*) FROM kv;
.echo -- committed; a new table under the old name gets a new store
ALTER TABLE kv RENAME TO kv5;
CREATE VIRTUAL TABLE kv USING hashkv;
SELECT count(*) FROM kv;
SELECT count(*) FROM kv5;
.echo -- a rolled-back rename of kv5 does not take kv's store
BEGIN;
ALTER TABLE kv5 RENAME TO kv6;
ROLLBACK;
SELECT count(*) FROM kv5;
SELECT count(*) FROM kv;
.reopen
SELECT count(*) FROM kv5;
.echo -- a second connection reads the committed name
.conn 1
SELECT count(*) FROM kv5;
.conn 0
.echo -- a temporary store moves back too
CREATE VIRTUAL TABLE temp.t USING hashkv;
INSERT INTO t VALUES(1, 1);
BEGIN;
ALTER TABLE t RENAME TO t2;
ROLLBACK;
SELECT count(*) FROM t;
ALTER TABLE t RENAME TO t3;
SELECT count(*) FROM t3;
