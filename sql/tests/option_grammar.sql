-- One grammar for every CREATE option: name = value, the name bare or
-- quoted, the value a bare word or one quoted string; whitespace only
-- around them; each option once; numbers in decimal digits only.
CREATE VIRTUAL TABLE a USING hashkv(path = 'a b.hkv' , sync = 'Normal');
CREATE VIRTUAL TABLE b USING hashkv("path"="it''s.hkv", 'segment_size'=65536);
CREATE VIRTUAL TABLE c USING hashkv(path='it''s too.hkv', auto_compact=.25, auto_compact_min='1024');
CREATE VIRTUAL TABLE d USING hashkv(path="q""d.hkv", auto_compact=0.5, sync=2);
CREATE VIRTUAL TABLE e USING hashkv(path=./e_1.hkv, auto_compact=0, auto_compact_min=0);
INSERT INTO a VALUES(1, 1);
INSERT INTO b VALUES(1, 1);
INSERT INTO c VALUES(1, 1);
INSERT INTO d VALUES(1, 1);
INSERT INTO e VALUES(1, 1);
.echo -- a missing comma
CREATE VIRTUAL TABLE x1 USING hashkv(path='a' path='b');
CREATE VIRTUAL TABLE x2 USING hashkv(sync=off segment_size=4096);
CREATE VIRTUAL TABLE x3 USING hashkv(path=a b);
.echo -- an option twice
CREATE VIRTUAL TABLE x4 USING hashkv(path='x1.hkv', path='x2.hkv');
CREATE VIRTUAL TABLE x5 USING hashkv(sync=off, SYNC=full);
CREATE VIRTUAL TABLE x6 USING hashkv(auto_compact=0.1, "auto_compact"=0.2);
.echo -- whitespace, signs and hex inside a value
CREATE VIRTUAL TABLE x7 USING hashkv(sync=' full');
CREATE VIRTUAL TABLE x8 USING hashkv(segment_size=' 4096');
CREATE VIRTUAL TABLE x9 USING hashkv(segment_size='4096 ');
CREATE VIRTUAL TABLE x10 USING hashkv(segment_size=0x1000);
CREATE VIRTUAL TABLE x11 USING hashkv(segment_size=+4096);
CREATE VIRTUAL TABLE x12 USING hashkv(segment_size=4e3);
CREATE VIRTUAL TABLE x13 USING hashkv(auto_compact=0x0.8);
CREATE VIRTUAL TABLE x14 USING hashkv(auto_compact=' 0.5');
CREATE VIRTUAL TABLE x15 USING hashkv(auto_compact=5e-1);
CREATE VIRTUAL TABLE x16 USING hashkv(auto_compact=-0);
CREATE VIRTUAL TABLE x17 USING hashkv(auto_compact=.);
CREATE VIRTUAL TABLE x18 USING hashkv(auto_compact_min=0x10);
CREATE VIRTUAL TABLE x19 USING hashkv(auto_compact_min=' 16');
CREATE VIRTUAL TABLE x20 USING hashkv(auto_compact_min=18446744073709551616);
.echo -- malformed names and quoting
CREATE VIRTUAL TABLE x21 USING hashkv(=full);
CREATE VIRTUAL TABLE x22 USING hashkv(sy nc=full);
CREATE VIRTUAL TABLE x23 USING hashkv(sync-mode=full);
CREATE VIRTUAL TABLE x24 USING hashkv(sync='full'x);
CREATE VIRTUAL TABLE x25 USING hashkv(path=ab'c');
CREATE VIRTUAL TABLE x26 USING hashkv(path="");
CREATE VIRTUAL TABLE x27 USING hashkv(sync);
CREATE VIRTUAL TABLE x28 USING hashkv(sync=);
.echo -- nothing was created by the refused statements
SELECT name FROM sqlite_schema ORDER BY name;
SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b) + (SELECT count(*) FROM c)
     + (SELECT count(*) FROM d) + (SELECT count(*) FROM e);
