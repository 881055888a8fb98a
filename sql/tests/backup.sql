-- hashkv_backup('table', 'dir') copies a table's store as of one commit;
-- the copy opens with path= (relative to the database's folder, as the
-- path option is) and is a store of its own.
CREATE VIRTUAL TABLE kv USING hashkv(sync=off);
INSERT INTO kv VALUES(1, 'a'), ('k', x'00ff'), (2.5, NULL), (3, -0.0), (x'01', 1e300);
ATTACH 'aux.db' AS aux;
CREATE VIRTUAL TABLE aux.kv USING hashkv(sync=off);
INSERT INTO aux.kv VALUES('aux', 1);
.echo -- as the connection's first statement
.reopen
SELECT hashkv_backup('kv', 'copy1') LIKE '%/copy1';
CREATE VIRTUAL TABLE c1 USING hashkv(path='copy1');
SELECT typeof(key), quote(key), quote(value) FROM c1 ORDER BY quote(key);
SELECT * FROM hashkv_check('c1');
SELECT count(*) FROM (SELECT key, value FROM kv EXCEPT SELECT key, value FROM c1);
.echo -- the copy is its own store
INSERT INTO c1 VALUES(4, 'd');
DELETE FROM kv WHERE key = 1;
SELECT 'kv', count(*) FROM kv;
SELECT 'c1', count(*) FROM c1;
.echo -- schema.table, inside a transaction that wrote: the committed state
ATTACH 'aux.db' AS aux;
BEGIN;
INSERT INTO aux.kv VALUES('uncommitted', 2);
SELECT hashkv_backup('aux.kv', 'copy2') LIKE '%/copy2';
COMMIT;
CREATE VIRTUAL TABLE c2 USING hashkv(path='copy2');
SELECT quote(key), quote(value) FROM c2;
.echo -- errors
SELECT hashkv_backup('kv', 'copy1');
SELECT hashkv_backup('nosuch', 'copy3');
SELECT hashkv_backup(NULL, 'copy3');
SELECT hashkv_backup('kv', '');
SELECT hashkv_backup('kv');
CREATE TABLE n(a);
SELECT hashkv_backup('n', 'copy3');
CREATE VIEW v AS SELECT hashkv_backup('kv', 'copy3');
SELECT * FROM v;
SELECT hashkv_backup('kv', 'copy3') LIKE '%/copy3';
