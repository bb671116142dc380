"""SQLite as a store shared by a few local processes.

Writes take the database's write lock when their transaction begins
(``BEGIN IMMEDIATE``): Python's sqlite3 would otherwise start with a read
lock and upgrade at the first write, so two workers reading the same WAITING
trial could both try to claim it, and one would fail with "database is locked"
instead of waiting. Reads begin as plain deferred transactions and take no
write lock, so ``status``, the report and the dashboard never wait behind a
worker's write. :class:`~scaling_optuna.storages.RetryingStorage` says which
calls write (:func:`writing`).

A store that cannot be written (a read-only file system, an archive) is
opened read-only and immutable for reading.

Example::

    url, kwargs = engine_options("sqlite:///exp.db", create=True, read_only=False)
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from scaling_optuna.errors import StorageError
from scaling_optuna.storages._url import mask_url
from scaling_optuna.storages._url import sqlite_path

BUSY_TIMEOUT_S = 60
_state = threading.local()


@contextlib.contextmanager
def writing() -> Iterator[None]:
    """Transactions begun inside take the write lock at once (``BEGIN IMMEDIATE``)."""
    outer = getattr(_state, "writing", False)
    _state.writing = True
    try:
        yield
    finally:
        _state.writing = outer


def engine_options(url: str, *, create: bool, read_only: bool) -> tuple[str, dict[str, Any]]:
    """The URL SQLAlchemy should open and its engine arguments; checks the file first.

    Raises:
        StorageError: no file where one must exist, no folder for a new one, or not a SQLite file.
    """
    file = Path(sqlite_path(url))
    if not create and not file.is_file():
        raise StorageError(
            f"no store at {file} (from {mask_url(url)}); run 'scaling-optuna create SPEC --storage {mask_url(url)}' "
            "first, or check the path"
        )
    if create and not file.parent.is_dir():
        raise StorageError(f"folder {file.parent} for the store {mask_url(url)} does not exist; create it first")
    connect_args: dict[str, Any] = {"timeout": BUSY_TIMEOUT_S}
    if read_only and not _writable(file):
        # Nothing may be written, not even SQLite's lock files: read the file as it is.
        return f"sqlite:///file:{file.resolve()}?mode=ro&immutable=1&uri=true", {"connect_args": connect_args}
    if not read_only:
        _use_wal(file)
    return url, {"connect_args": connect_args}


def serialise_writes(engine: Any) -> None:
    """Begin transactions of calls inside :func:`writing` with ``BEGIN IMMEDIATE``, others deferred."""
    import sqlalchemy

    @sqlalchemy.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the BEGIN below rule, not sqlite3's own

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if getattr(_state, "writing", False) else "BEGIN")

    engine.dispose()  # connections made before the listeners would keep the old behaviour


def _writable(file: Path) -> bool:
    # SQLite writes its -wal and -shm files beside the store, so the folder must be writable too.
    return os.access(file, os.W_OK) and os.access(file.parent, os.W_OK)


def _use_wal(file: Path) -> None:
    """WAL lets readers proceed while a worker writes; the setting is kept in the file."""
    try:
        with contextlib.closing(sqlite3.connect(file, timeout=BUSY_TIMEOUT_S)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as e:
        raise StorageError(f"cannot open SQLite store {file}: {e}; check the path and its permissions") from None
