-- Keys and values keep their SQLite type; keys compare as in a native
-- WITHOUT ROWID table with an untyped primary key: 1 = 1.0, but 1, '1' and
-- x'31' are three keys. Every statement runs on kv and on the native n.
CREATE VIRTUAL TABLE kv USING hashkv;
CREATE TABLE n(key PRIMARY KEY NOT NULL, value) WITHOUT ROWID;
SELECT name, type, pk, "notnull", hidden FROM pragma_table_xinfo('kv');
SELECT name, type, pk, "notnull", hidden FROM pragma_table_xinfo('n');
.echo -- mixed types
INSERT INTO kv VALUES(1, 'int'), ('1', 'text'), (x'31', 'blob'), (1.5, 2.5), (-0.25, NULL), (9223372036854775807, -9223372036854775808), ('', x''), (x'', ''), ('nul' || char(0) || 'x', 'zero');
INSERT INTO n VALUES(1, 'int'), ('1', 'text'), (x'31', 'blob'), (1.5, 2.5), (-0.25, NULL), (9223372036854775807, -9223372036854775808), ('', x''), (x'', ''), ('nul' || char(0) || 'x', 'zero');
SELECT quote(key), typeof(key), quote(value), typeof(value) FROM kv ORDER BY key;
SELECT quote(key), typeof(key), quote(value), typeof(value) FROM n ORDER BY key;
.echo -- 1.0 is the key 1
INSERT INTO kv VALUES(1.0, 'again');
INSERT INTO n VALUES(1.0, 'again');
SELECT quote(value) FROM kv WHERE key = 1.0;
SELECT quote(value) FROM n WHERE key = 1.0;
SELECT quote(value) FROM kv WHERE key = '1';
SELECT quote(value) FROM kv WHERE key = x'31';
.echo -- a REAL key keeps its type
INSERT INTO kv VALUES(2.0, 'two');
INSERT INTO n VALUES(2.0, 'two');
SELECT quote(key), typeof(key) FROM kv WHERE key = 2;
SELECT quote(key), typeof(key) FROM n WHERE key = 2;
.echo -- NULL keys, NULL lookups
INSERT INTO kv VALUES(NULL, 1);
INSERT INTO n VALUES(NULL, 1);
SELECT count(*) FROM kv WHERE key = NULL;
SELECT count(*) FROM kv WHERE key IN (NULL, 1.5);
SELECT count(*) FROM kv WHERE key IS NULL;
.echo -- large values round-trip
INSERT INTO kv VALUES('big', zeroblob(3000000));
SELECT length(value), typeof(value) FROM kv WHERE key = 'big';
INSERT INTO kv VALUES('bigtext', printf('%.*c', 70000, 'x'));
SELECT length(value), typeof(value) FROM kv WHERE key = 'bigtext';
.echo -- a key over the limit is a clean error and writes nothing
INSERT INTO kv VALUES(zeroblob(70000), 1);
SELECT count(*) FROM kv;
.echo -- the same rows after a reopen
.reopen
SELECT quote(key), quote(value) FROM kv WHERE key NOT IN ('big', 'bigtext') EXCEPT SELECT quote(key), quote(value) FROM n;
SELECT count(*) FROM kv;
SELECT hashkv_version();
