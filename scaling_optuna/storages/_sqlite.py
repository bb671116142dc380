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
opened read-only and immutable for reading; so is a store on a full disk
whose write-ahead log holds nothing, so that ``status`` still answers.

The write-ahead log is kept small: SQLite checkpoints it into the database
every :data:`WAL_CHECKPOINT_PAGES` pages (its default, 1000 pages, let it grow
to 4 MB beside a store of 140 KB) and trims it to :data:`WAL_SIZE_LIMIT`
bytes after each. When SQLite cannot grow the log or map its index it says
"disk I/O error": :func:`failure_reason` says whether the disk is full.

Example::

    url, kwargs = engine_options("sqlite:///scaling-optuna.db", create=False, read_only=False)
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
WAL_CHECKPOINT_PAGES = 128
WAL_SIZE_LIMIT = 512 * 1024
# Below this much free space, a write SQLite cannot make is a full disk.
FULL_BELOW_BYTES = 1 << 20
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
    if read_only and (not _writable(file) or (disk_full(file) and not _wal_holds_pages(file))):
        # Nothing may be written, not even SQLite's lock files: read the file as it is.
        return f"sqlite:///file:{file.resolve()}?mode=ro&immutable=1&uri=true", {"connect_args": connect_args}
    return url, {"connect_args": connect_args}


def serialise_writes(engine: Any) -> None:
    """Begin transactions of calls inside :func:`writing` with ``BEGIN IMMEDIATE``, others deferred."""
    import sqlalchemy

    @sqlalchemy.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the BEGIN below rule, not sqlite3's own
        dbapi_connection.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
        dbapi_connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if getattr(_state, "writing", False) else "BEGIN")

    engine.dispose()  # connections made before the listeners would keep the old behaviour


def disk_full(file: Path) -> bool:
    """Whether the file system holding ``file`` has (next to) no space left."""
    try:
        stats = os.statvfs(file.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < FULL_BELOW_BYTES


def failure_reason(url: str) -> str | None:
    """Why the SQLite store at ``url`` failed, when its disk is the cause ("disk I/O error" says it poorly)."""
    file = Path(sqlite_path(url))
    return f"the disk holding {file} is full; free space on it" if disk_full(file) else None


def _wal_holds_pages(file: Path) -> bool:
    wal = file.with_name(file.name + "-wal")
    return wal.exists() and wal.stat().st_size > 0


def _writable(file: Path) -> bool:
    # SQLite writes its -wal and -shm files beside the store, so the folder must be writable too.
    return os.access(file, os.W_OK) and os.access(file.parent, os.W_OK)


def use_wal(file: Path) -> None:
    """Switch the store to its write-ahead log (kept in the file): readers then proceed while a worker writes.

    Call it holding the open lock: two processes switching a fresh file at once may get "database is locked".

    Raises:
        StorageError: the file cannot be opened or written.
    """
    try:
        with contextlib.closing(sqlite3.connect(file, timeout=BUSY_TIMEOUT_S)) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as e:
        reason = failure_reason(f"sqlite:///{file}") or "check the path and its permissions"
        raise StorageError(f"cannot open SQLite store {file}: {e}; {reason}") from None
