"""hashkv: a Bitcask-style key-value store behind a SQLite virtual table.

This package carries the SQLite extension, built from the hashkv source
tree when the package is installed, and loads it into :mod:`sqlite3`
connections::

    import hashkv
    db = hashkv.connect("app.db")
    db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS kv USING hashkv")
    with db:
        db.execute("INSERT INTO kv VALUES(?, ?)", ("user:1", "Ada"))

or, for a connection made elsewhere::

    import sqlite3, hashkv
    db = sqlite3.connect("app.db")
    hashkv.load(db)

Extension loading needs a :mod:`sqlite3` module built with it (Debian's
``/usr/bin/python3`` is; many self-built Pythons are not, and
:func:`load` then raises :class:`sqlite3.NotSupportedError`).
"""
from __future__ import annotations

import os
import sqlite3
from importlib import metadata
from typing import Any, Union

__all__ = ["connect", "load", "loadable_path", "__version__"]

#: The version of the package, which is the extension's own
#: (``SELECT hashkv_version()``, ``HKV_VERSION_STRING`` in ``hashkv.h``).
try:
    __version__: str = metadata.version("hashkv")
except metadata.PackageNotFoundError:  # imported from a source tree
    __version__ = "unknown"

_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hashkv.so")

_Database = Union[str, bytes, "os.PathLike[str]", "os.PathLike[bytes]"]


def loadable_path() -> str:
    """Return the absolute path of the extension's shared library.

    The path names the file itself (``.../hashkv/hashkv.so``), so it can be
    passed to :meth:`sqlite3.Connection.load_extension`, to the ``sqlite3``
    shell's ``.load``, or to any other SQLite that loads extensions.

    Raises :class:`FileNotFoundError` if the library is not there (the
    package was imported from a source tree instead of being installed).
    """
    if not os.path.isfile(_LIBRARY):
        raise FileNotFoundError(
            f"hashkv: the extension {_LIBRARY} is missing; install the "
            "package (pip install ./python) rather than importing it from "
            "the source tree")
    return _LIBRARY


def load(conn: sqlite3.Connection) -> None:
    """Load the hashkv extension into ``conn``.

    Afterwards the connection has the ``hashkv`` module (``CREATE VIRTUAL
    TABLE ... USING hashkv``) and the ``hashkv_*`` functions. Extension
    loading is switched on for the call only and is off again when it
    returns, whether it succeeded or not, so SQL cannot load other
    libraries through ``load_extension()`` afterwards.

    Raises :class:`sqlite3.NotSupportedError` if this Python's
    :mod:`sqlite3` cannot load extensions, :class:`FileNotFoundError` if
    the library is missing, and :class:`sqlite3.OperationalError` if SQLite
    refuses it. On failure the connection is unchanged and usable.
    """
    enable = getattr(conn, "enable_load_extension", None)
    if enable is None:
        raise sqlite3.NotSupportedError(
            "hashkv: this Python's sqlite3 module cannot load extensions "
            "(it was built without --enable-loadable-sqlite-extensions); "
            "use one that can, such as Debian's /usr/bin/python3")
    path = loadable_path()
    enable(True)
    try:
        conn.load_extension(path)
    finally:
        enable(False)


def connect(database: _Database, **kwargs: Any) -> sqlite3.Connection:
    """Open a database like :func:`sqlite3.connect`, with hashkv loaded.

    ``database`` and every keyword argument (``timeout``,
    ``isolation_level``, ``uri``, ``factory``...) are passed to
    :func:`sqlite3.connect` unchanged. If loading fails the connection is
    closed and the error (see :func:`load`) is raised.
    """
    conn = sqlite3.connect(database, **kwargs)
    try:
        load(conn)
    except BaseException:
        conn.close()
        raise
    return conn
