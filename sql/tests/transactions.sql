-- Transactions, savepoints and persistence, beside the native table.
CREATE VIRTUAL TABLE kv USING hashkv(sync=full);
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
BEGIN;
INSERT INTO kv VALUES(1, 'one'), (2, 'two');
INSERT INTO n VALUES(1, 'one'), (2, 'two');
SELECT count(*) FROM kv;
ROLLBACK;
SELECT count(*) FROM kv;
BEGIN;
INSERT INTO kv VALUES(1, 'one'), (2, 'two');
INSERT INTO n VALUES(1, 'one'), (2, 'two');
COMMIT;
.echo -- savepoints nest; ROLLBACK TO keeps the savepoint open
SAVEPOINT a;
INSERT INTO kv VALUES(3, 'three');
INSERT INTO n VALUES(3, 'three');
SAVEPOINT b;
UPDATE kv SET value = 'TWO' WHERE key = 2;
UPDATE n SET value = 'TWO' WHERE key = 2;
DELETE FROM kv WHERE key = 1;
DELETE FROM n WHERE key = 1;
SAVEPOINT c;
INSERT INTO kv VALUES(4, 'four');
INSERT INTO n VALUES(4, 'four');
ROLLBACK TO b;
SELECT 'kv', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);
SELECT 'n ', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM n ORDER BY key);
INSERT INTO kv VALUES(5, 'five');
INSERT INTO n VALUES(5, 'five');
RELEASE b;
ROLLBACK TO a;
SELECT 'kv', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);
SELECT 'n ', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM n ORDER BY key);
INSERT INTO kv VALUES(6, 'six');
INSERT INTO n VALUES(6, 'six');
RELEASE a;
.echo -- a statement that fails inside BEGIN leaves nothing of itself
BEGIN;
INSERT INTO kv VALUES(7, 'seven');
INSERT INTO n VALUES(7, 'seven');
INSERT INTO kv VALUES(8, 'eight'), (9, 'nine'), (1, 'dup');
INSERT INTO n VALUES(8, 'eight'), (9, 'nine'), (1, 'dup');
UPDATE kv SET key = key * 10 WHERE key >= 6;
UPDATE n SET key = key * 10 WHERE key >= 6;
COMMIT;
SELECT 'kv', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);
SELECT 'n ', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM n ORDER BY key);
.echo -- everything committed survives a reopen; nothing else does
BEGIN;
INSERT INTO kv VALUES('pending', 1);
.reopen
SELECT 'kv', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM kv ORDER BY key);
SELECT 'n ', group_concat(key || '=' || value, ' ') FROM (SELECT * FROM n ORDER BY key);
SELECT name, value FROM hashkv_stats('kv') WHERE name IN ('live_keys', 'recovered_cut_bytes');
INSERT INTO kv(kv) VALUES('integrity-check');
.echo -- clear removes every key, inside the transaction
BEGIN;
INSERT INTO kv(kv) VALUES('clear');
SELECT count(*) FROM kv;
ROLLBACK;
SELECT count(*) FROM kv;
INSERT INTO kv(kv) VALUES('clear');
SELECT count(*) FROM kv;
INSERT INTO kv(kv) VALUES('compact-please');
