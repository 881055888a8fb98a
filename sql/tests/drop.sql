-- DROP TABLE inside transactions: the store goes only when the DROP
-- commits; ROLLBACK and ROLLBACK TO bring the table back with every row,
-- as for a native table.
CREATE VIRTUAL TABLE kv USING hashkv;
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
INSERT INTO kv VALUES('a', 1), ('b', 2);
INSERT INTO n VALUES('a', 1), ('b', 2);
.echo -- dropped, rolled back
BEGIN;
DROP TABLE kv;
DROP TABLE n;
SELECT count(*) FROM sqlite_schema WHERE name IN ('kv', 'n');
ROLLBACK;
SELECT * FROM kv ORDER BY key;
SELECT * FROM n ORDER BY key;
.echo -- undone by ROLLBACK TO
SAVEPOINT s;
DROP TABLE kv;
ROLLBACK TO s;
RELEASE s;
SELECT count(*) FROM kv;
.echo -- created again in the dropping transaction: a new, empty table; undone whole
BEGIN;
DROP TABLE kv;
DROP TABLE n;
CREATE VIRTUAL TABLE kv USING hashkv;
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
SELECT count(*) FROM kv;
SELECT count(*) FROM n;
INSERT INTO kv VALUES('z', 26);
INSERT INTO n VALUES('z', 26);
ROLLBACK;
SELECT * FROM kv ORDER BY key;
SELECT * FROM n ORDER BY key;
.echo -- renamed, then dropped, all rolled back
BEGIN;
ALTER TABLE kv RENAME TO k2;
DROP TABLE k2;
ROLLBACK;
SELECT * FROM kv ORDER BY key;
.echo -- survives a reopen
.reopen
SELECT count(*) FROM kv;
.echo -- a named store, dropped and rolled back, then dropped for good: the
.echo -- directory is the user's, so its data stays for the next table on it
CREATE VIRTUAL TABLE p USING hashkv(path='p.hkv');
INSERT INTO p VALUES(1, 'one');
BEGIN;
DROP TABLE p;
ROLLBACK;
SELECT * FROM p;
DROP TABLE p;
CREATE VIRTUAL TABLE p USING hashkv(path='p.hkv');
SELECT count(*) FROM p;
.echo -- a path given with a trailing slash
CREATE VIRTUAL TABLE q USING hashkv(path='q.hkv/');
INSERT INTO q VALUES(1, 'one');
BEGIN;
DROP TABLE q;
ROLLBACK;
SELECT * FROM q;
.echo -- committed in a transaction: the next table of that name is empty
BEGIN;
DROP TABLE kv;
COMMIT;
CREATE VIRTUAL TABLE kv USING hashkv;
SELECT count(*) FROM kv;
.echo -- a temporary store
CREATE VIRTUAL TABLE temp.t USING hashkv;
INSERT INTO t VALUES(1, 1);
BEGIN;
DROP TABLE t;
ROLLBACK;
SELECT count(*) FROM t;
DROP TABLE t;
CREATE VIRTUAL TABLE temp.t USING hashkv;
SELECT count(*) FROM t;
.echo -- dropped and committed, created again inside a later transaction
CREATE VIRTUAL TABLE r USING hashkv;
INSERT INTO r VALUES(1, 1);
DROP TABLE r;
BEGIN;
CREATE VIRTUAL TABLE r USING hashkv;
SELECT count(*) FROM r;
COMMIT;
INSERT INTO r VALUES(2, 2);
BEGIN;
DROP TABLE r;
COMMIT;
BEGIN;
CREATE VIRTUAL TABLE r USING hashkv;
SELECT count(*) FROM r;
COMMIT;
.echo -- names in another case
CREATE VIRTUAL TABLE mixed USING hashkv;
INSERT INTO mixed VALUES(1, 1);
BEGIN;
ALTER TABLE MIXED RENAME TO Mixed2;
DROP TABLE mixed2;
ROLLBACK;
SELECT count(*) FROM Mixed;
DROP TABLE MIXED;
CREATE VIRTUAL TABLE mixed USING hashkv;
SELECT count(*) FROM mixed;
.echo -- a table written in the open transaction, dropped, undone by ROLLBACK TO
CREATE VIRTUAL TABLE w USING hashkv;
CREATE TABLE wn(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
BEGIN;
INSERT INTO w VALUES(1, 1);
INSERT INTO wn VALUES(1, 1);
SAVEPOINT s;
DROP TABLE w;
DROP TABLE wn;
ROLLBACK TO s;
SELECT count(*) FROM w;
SELECT count(*) FROM wn;
COMMIT;
SELECT count(*) FROM w;
SELECT count(*) FROM wn;
.echo -- created and dropped in a transaction that rolls back, then created again
BEGIN;
CREATE VIRTUAL TABLE f USING hashkv;
DROP TABLE f;
CREATE VIRTUAL TABLE f USING hashkv;
INSERT INTO f VALUES(1, 1);
ROLLBACK;
BEGIN;
CREATE VIRTUAL TABLE f USING hashkv;
DROP TABLE f;
ROLLBACK;
BEGIN;
CREATE VIRTUAL TABLE f USING hashkv;
INSERT INTO f VALUES(2, 2);
COMMIT;
SELECT * FROM f;
.echo -- created empty, renamed, committed: the store follows the name and stays
CREATE VIRTUAL TABLE g USING hashkv;
ALTER TABLE g RENAME TO g2;
CREATE VIRTUAL TABLE h USING hashkv;
INSERT INTO g2 VALUES(1, 1);
SELECT count(*) FROM g2;
.echo -- renamed, dropped, both undone by ROLLBACK TO: back under the old name
CREATE VIRTUAL TABLE rd USING hashkv;
CREATE VIRTUAL TABLE rp USING hashkv(path='rp.hkv');
CREATE TABLE rn(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
INSERT INTO rd VALUES(1, 1);
INSERT INTO rp VALUES(1, 1);
INSERT INTO rn VALUES(1, 1);
BEGIN;
SAVEPOINT s;
ALTER TABLE rd RENAME TO rd2;
ALTER TABLE rp RENAME TO rp2;
ALTER TABLE rn RENAME TO rn2;
DROP TABLE rd2;
DROP TABLE rp2;
DROP TABLE rn2;
ROLLBACK TO s;
SELECT count(*) FROM rd;
SELECT count(*) FROM rp;
SELECT count(*) FROM rn;
COMMIT;
SELECT count(*) FROM rd;
SELECT count(*) FROM rp;
SELECT count(*) FROM rn;
.echo -- written before and after a savepoint, dropped, ROLLBACK TO the savepoint
BEGIN;
INSERT INTO w VALUES(2, 2);
INSERT INTO wn VALUES(2, 2);
SAVEPOINT s;
INSERT INTO w VALUES(3, 3);
INSERT INTO wn VALUES(3, 3);
DROP TABLE w;
DROP TABLE wn;
ROLLBACK TO s;
SELECT group_concat(key) FROM (SELECT key FROM w ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM wn ORDER BY key);
INSERT INTO w VALUES(4, 4);
INSERT INTO wn VALUES(4, 4);
COMMIT;
SELECT group_concat(key) FROM (SELECT key FROM w ORDER BY key);
SELECT group_concat(key) FROM (SELECT key FROM wn ORDER BY key);
.echo -- written, dropped, rolled back whole; then written, dropped, committed
BEGIN;
INSERT INTO w VALUES(5, 5);
DROP TABLE w;
ROLLBACK;
SELECT group_concat(key) FROM (SELECT key FROM w ORDER BY key);
BEGIN;
INSERT INTO w VALUES(6, 6);
DROP TABLE w;
CREATE VIRTUAL TABLE w USING hashkv;
INSERT INTO w VALUES(7, 7);
COMMIT;
SELECT group_concat(key) FROM w;
.reopen
SELECT group_concat(key) FROM w;
