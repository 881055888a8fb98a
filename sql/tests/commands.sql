-- The command column takes commands only as INSERT INTO kv(kv) VALUES(...),
-- and a command row carries nothing else.
CREATE VIRTUAL TABLE kv USING hashkv(sync=off);
INSERT INTO kv VALUES(1, 'a'), (2, 'b');
INSERT INTO kv(kv, key, value) VALUES('compact', 3, 'c');
INSERT INTO kv(kv, key) VALUES('clear', 3);
INSERT INTO kv(kv, value) VALUES('clear', 'c');
INSERT INTO kv(kv, key, value) VALUES('clear', NULL, NULL);
SELECT count(*) FROM kv;
INSERT INTO kv VALUES(1, 'a'), (2, 'b');
INSERT INTO kv(kv, key, value) VALUES(NULL, 3, 'c');
INSERT INTO kv(key, value, kv) VALUES(4, 'd', 'integrity-check');
SELECT count(*) FROM kv;
UPDATE kv SET kv = 'clear';
UPDATE kv SET kv = 'compact' WHERE key = 1;
UPDATE kv SET value = 'A', kv = 'clear' WHERE key = 1;
UPDATE kv SET kv = NULL WHERE key = 1;
SELECT key, value FROM kv ORDER BY key;
.echo -- in a transaction: the failing statement leaves nothing, the rest stays
BEGIN;
INSERT INTO kv VALUES(5, 'e');
INSERT INTO kv(kv, key, value) VALUES('clear', 6, 'f');
UPDATE kv SET kv = 'clear' WHERE key = 5;
COMMIT;
SELECT key, value FROM kv ORDER BY key;
