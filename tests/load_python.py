"""The extension loads into Debian's python3 sqlite3 module."""
import os
import sqlite3
import sys
import tempfile

so = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    db = sqlite3.connect(os.path.join(d, "t.db"))
    db.enable_load_extension(True)
    db.load_extension(so)
    db.enable_load_extension(False)
    db.execute("CREATE VIRTUAL TABLE kv USING hashkv(sync=normal)")
    with db:
        db.executemany("INSERT INTO kv VALUES(?, ?)",
                       [(i, "v%d" % i) for i in range(1000)])
    assert db.execute("SELECT value FROM kv WHERE key = 7").fetchone() == ("v7",)
    assert db.execute("SELECT count(*) FROM kv").fetchone() == (1000,)
    try:
        db.execute("INSERT INTO kv VALUES(7, 'dup')")
        raise SystemExit("duplicate key accepted")
    except sqlite3.IntegrityError as e:
        assert "UNIQUE constraint failed: kv.key" in str(e), e
    db.close()
    db = sqlite3.connect(os.path.join(d, "t.db"))
    db.enable_load_extension(True)
    db.load_extension(so)
    assert db.execute("SELECT count(*) FROM kv").fetchone() == (1000,)
    db.close()
print("python3: load_extension works")
