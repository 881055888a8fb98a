-- hashkv_stats() and hashkv_check() open the table they name themselves,
-- take schema.table, and resolve a bare name as SQLite does: temp, main,
-- then the attached databases in the order they were attached.
CREATE VIRTUAL TABLE kv USING hashkv(sync=off);
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
INSERT INTO kv VALUES(1, 'a');
ATTACH 'aux.db' AS aux;
CREATE VIRTUAL TABLE aux.kv USING hashkv(sync=off);
INSERT INTO aux.kv VALUES(1, 'a'), (2, 'b');
ATTACH 'aux2.db' AS aux2;
CREATE VIRTUAL TABLE aux2.only2 USING hashkv(sync=off);
CREATE VIRTUAL TABLE aux.only2 USING hashkv(sync=off);
INSERT INTO aux2.only2 VALUES(1, 'a'), (2, 'b'), (3, 'c');
.echo -- as the connection's first statement
.reopen
SELECT 'stats', value FROM hashkv_stats('kv') WHERE name = 'live_keys';
.reopen
SELECT 'check', * FROM hashkv_check('kv');
.echo -- schema.table, and whichever was opened last does not matter
ATTACH 'aux.db' AS aux;
ATTACH 'aux2.db' AS aux2;
SELECT count(*) FROM aux.kv;
SELECT 'kv     ', value FROM hashkv_stats('kv') WHERE name = 'live_keys';
SELECT 'main.kv', value FROM hashkv_stats('main.kv') WHERE name = 'live_keys';
SELECT 'aux.kv ', value FROM hashkv_stats('aux.kv') WHERE name = 'live_keys';
SELECT 'AUX.KV ', value FROM hashkv_stats('AUX.KV') WHERE name = 'live_keys';
SELECT 'only2  ', value FROM hashkv_stats('only2') WHERE name = 'live_keys';
SELECT 'SQLite: only2', count(*) FROM only2;
SELECT 'aux2.only2', value FROM hashkv_stats('aux2.only2') WHERE name = 'live_keys';
SELECT 'check aux.kv', * FROM hashkv_check('aux.kv');
SELECT 'check aux2.only2', * FROM hashkv_check('aux2.only2');
.echo -- temp comes first
CREATE VIRTUAL TABLE temp.kv USING hashkv;
INSERT INTO temp.kv VALUES(1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
SELECT 'kv     ', value FROM hashkv_stats('kv') WHERE name = 'live_keys';
SELECT 'SQLite: kv', count(*) FROM kv;
SELECT 'main.kv', value FROM hashkv_stats('main.kv') WHERE name = 'live_keys';
SELECT 'temp.kv', value FROM hashkv_stats('temp.kv') WHERE name = 'live_keys';
SELECT 'check temp.kv', * FROM hashkv_check('temp.kv');
DROP TABLE temp.kv;
SELECT 'kv     ', value FROM hashkv_stats('kv') WHERE name = 'live_keys';
.echo -- what is not a hashkv table
SELECT * FROM hashkv_stats('nosuch');
SELECT * FROM hashkv_stats('aux.nosuch');
SELECT * FROM hashkv_stats('nosuchdb.kv');
SELECT * FROM hashkv_stats('n');
SELECT * FROM hashkv_check('main.n');
SELECT * FROM hashkv_check('sqlite_schema');
SELECT * FROM hashkv_stats(NULL);
SELECT * FROM hashkv_check;
SELECT * FROM hashkv_check('hashkv_stats');
.echo -- the columns
PRAGMA table_info(hashkv_check);
PRAGMA table_info(hashkv_stats);
.echo -- in a join, once per row
CREATE TABLE names(t);
INSERT INTO names VALUES('kv'), ('aux.kv'), ('aux2.only2'), ('aux.only2');
SELECT t, value FROM names, hashkv_stats(names.t) WHERE name = 'live_keys';
SELECT t, integrity_check FROM names, hashkv_check(names.t);
.echo -- not from views or triggers (they open the table they name)
CREATE VIEW v AS SELECT * FROM hashkv_check('kv');
SELECT * FROM v;
CREATE VIEW v2 AS SELECT value FROM hashkv_stats('kv') WHERE name = 'live_keys';
SELECT * FROM v2;
