"""The installed hashkv package: loading, SQL through it, the helpers.

Run against an installed package (tests/python_package.sh makes a fresh
venv, installs ./python and runs these from outside the source tree).
"""
from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import hashkv

SOURCE = Path(__file__).resolve().parents[2]  # the repository


@pytest.fixture
def db(tmp_path: Path):
    conn = hashkv.connect(tmp_path / "t.db")
    conn.execute("CREATE VIRTUAL TABLE kv USING hashkv(sync=normal)")
    yield conn
    conn.close()


def test_imported_from_the_installed_package_not_the_source_tree():
    pkg = Path(hashkv.__file__).resolve().parent
    assert pkg != SOURCE / "python" / "hashkv"
    assert (pkg / "hashkv.so").is_file()
    assert (pkg / "py.typed").is_file()


def test_loadable_path_is_the_library_in_the_package():
    path = hashkv.loadable_path()
    assert os.path.isabs(path)
    assert os.path.isfile(path)
    assert Path(path).parent == Path(hashkv.__file__).resolve().parent
    # SQLite names the entry point after the file: sqlite3_hashkv_init.
    assert os.path.basename(path) == "hashkv.so"


def test_version_is_the_headers_and_the_extensions():
    header = (SOURCE / "store" / "hashkv.h").read_text()
    want = re.search(r'#define HKV_VERSION_STRING "([^"]+)"', header).group(1)
    assert hashkv.__version__ == want
    conn = hashkv.connect(":memory:")
    assert conn.execute("SELECT hashkv_version()").fetchone() == (want,)
    conn.close()


def test_load_into_a_plain_connection(tmp_path: Path):
    conn = sqlite3.connect(tmp_path / "t.db")
    with pytest.raises(sqlite3.OperationalError, match="no such module: hashkv"):
        conn.execute("CREATE VIRTUAL TABLE kv USING hashkv")
    hashkv.load(conn)
    conn.execute("CREATE VIRTUAL TABLE kv USING hashkv")
    conn.execute("INSERT INTO kv VALUES('k', 'v')")
    conn.commit()
    assert conn.execute("SELECT value FROM kv WHERE key = 'k'").fetchone() == ("v",)
    # The store is the module's, beside the database file.
    assert list((tmp_path / "t.db-hashkv").iterdir())
    conn.close()


def test_load_leaves_extension_loading_off():
    conn = sqlite3.connect(":memory:")
    hashkv.load(conn)
    with pytest.raises(sqlite3.OperationalError, match="not authorized"):
        conn.execute("SELECT load_extension(?)", (hashkv.loadable_path(),))
    conn.close()


def test_put_and_get_every_type_through_sql(db: sqlite3.Connection):
    rows = [
        (1, 2.5),
        (2.5, "text"),
        ("k", b"\x00\xffbytes"),
        (b"\x01\x02", None),
        ("big", "x" * 100_000),
    ]
    with db:
        db.executemany("INSERT INTO kv VALUES(?, ?)", rows)
    for key, value in rows:
        got = db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        assert got == (value,), key
    types = db.execute(
        "SELECT typeof(key), typeof(value) FROM kv ORDER BY key").fetchall()
    assert types == [("integer", "real"), ("real", "text"), ("text", "text"),
                     ("text", "blob"), ("blob", "null")]
    with pytest.raises(sqlite3.IntegrityError,
                       match="UNIQUE constraint failed: kv.key"):
        db.execute("INSERT INTO kv VALUES(1, 'dup')")
    with db:
        db.execute("INSERT OR REPLACE INTO kv VALUES(1, 'new')")
        db.execute("DELETE FROM kv WHERE key = 'big'")
    assert db.execute("SELECT value FROM kv WHERE key = 1").fetchone() == ("new",)
    assert db.execute("SELECT count(*) FROM kv").fetchone() == (4,)


def test_transactions(db: sqlite3.Connection, tmp_path: Path):
    other = hashkv.connect(tmp_path / "t.db")
    count = "SELECT count(*) FROM kv"
    # Python's implicit transaction: rollback() undoes the INSERT.
    db.execute("INSERT INTO kv VALUES(1, 'a')")
    db.rollback()
    assert db.execute(count).fetchone() == (0,)
    # A with-block commits; another connection sees the rows.
    with db:
        db.executemany("INSERT INTO kv VALUES(?, ?)", [(i, i) for i in range(100)])
    assert other.execute(count).fetchone() == (100,)
    # An exception in the block rolls it all back.
    with pytest.raises(ZeroDivisionError):
        with db:
            db.execute("DELETE FROM kv")
            1 / 0
    assert db.execute(count).fetchone() == (100,)
    assert other.execute(count).fetchone() == (100,)
    # Savepoints, with Python's transaction handling off.
    db.isolation_level = None
    db.execute("BEGIN")
    db.execute("INSERT INTO kv VALUES('s', 1)")
    db.execute("SAVEPOINT sp")
    db.execute("UPDATE kv SET value = 2 WHERE key = 's'")
    db.execute("DELETE FROM kv WHERE key < 50")
    db.execute("ROLLBACK TO sp")
    db.execute("COMMIT")
    assert other.execute("SELECT value FROM kv WHERE key = 's'").fetchone() == (1,)
    assert other.execute(count).fetchone() == (101,)
    other.close()


def test_rows_survive_reopening(tmp_path: Path):
    conn = hashkv.connect(tmp_path / "t.db")
    conn.execute("CREATE VIRTUAL TABLE kv USING hashkv")
    with conn:
        conn.executemany("INSERT INTO kv VALUES(?, ?)",
                         [(i, f"v{i}") for i in range(1000)])
    conn.close()
    conn = hashkv.connect(str(tmp_path / "t.db"))
    assert conn.execute("SELECT count(*) FROM kv").fetchone() == (1000,)
    assert conn.execute("SELECT value FROM kv WHERE key = 7").fetchone() == ("v7",)
    conn.close()


class _Counted(sqlite3.Connection):
    pass


def test_connect_passes_arguments_through(tmp_path: Path):
    conn = hashkv.connect(tmp_path / "t.db", factory=_Counted,
                          isolation_level=None, timeout=1.5)
    assert isinstance(conn, _Counted)
    assert conn.isolation_level is None
    conn.execute("CREATE VIRTUAL TABLE kv USING hashkv")
    conn.execute("INSERT INTO kv VALUES(1, 1)")  # autocommit: no commit()
    conn.close()
    ro = hashkv.connect(f"file:{tmp_path / 't.db'}?mode=ro", uri=True)
    assert ro.execute("SELECT value FROM kv").fetchall() == [(1,)]
    with pytest.raises(sqlite3.OperationalError):
        ro.execute("INSERT INTO kv VALUES(2, 2)")
    ro.close()


def test_a_store_path_that_cannot_be_made_is_an_error(db: sqlite3.Connection,
                                                      tmp_path: Path):
    missing = tmp_path / "no" / "such" / "dir"
    with pytest.raises(sqlite3.OperationalError,
                       match="cannot create directory"):
        db.execute(f"CREATE VIRTUAL TABLE t USING hashkv(path='{missing}')")
    assert not missing.parent.exists()
    assert db.execute(
        "SELECT count(*) FROM sqlite_schema WHERE name = 't'").fetchone() == (0,)
    # The connection and its other table go on.
    with db:
        db.execute("INSERT INTO kv VALUES(1, 1)")
    assert db.execute("SELECT count(*) FROM kv").fetchone() == (1,)


def test_a_missing_library_is_an_error(monkeypatch, tmp_path: Path):
    gone = str(tmp_path / "gone" / "hashkv.so")
    monkeypatch.setattr(hashkv, "_LIBRARY", gone)
    with pytest.raises(FileNotFoundError, match=re.escape(gone)):
        hashkv.loadable_path()
    conn = sqlite3.connect(":memory:")
    with pytest.raises(FileNotFoundError):
        hashkv.load(conn)
    assert conn.execute("SELECT 1").fetchone() == (1,)
    conn.close()
    with pytest.raises(FileNotFoundError):
        hashkv.connect(":memory:")


class _NoExtensions(sqlite3.Connection):
    """A connection as a sqlite3 module built without extension loading
    makes it (no enable_load_extension)."""
    opened: list[sqlite3.Connection] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _NoExtensions.opened.append(self)

    @property
    def enable_load_extension(self):
        raise AttributeError("enable_load_extension")


def test_a_sqlite3_without_extension_loading_is_an_error():
    with pytest.raises(sqlite3.NotSupportedError, match="cannot load extensions"):
        hashkv.connect(":memory:", factory=_NoExtensions)
    # connect() closed the connection it made.
    (conn,) = _NoExtensions.opened
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        conn.execute("SELECT 1")


def test_works_in_a_fresh_process_outside_the_source_tree(tmp_path: Path):
    script = textwrap.dedent("""
        import hashkv, sys
        db = hashkv.connect("fresh.db")
        db.execute("CREATE VIRTUAL TABLE kv USING hashkv")
        with db:
            db.execute("INSERT INTO kv VALUES('where', ?)", (hashkv.__file__,))
        print(db.execute("SELECT value FROM kv").fetchone()[0])
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert Path(out.strip()).resolve() == Path(hashkv.__file__).resolve()
    assert (tmp_path / "fresh.db").is_file()
