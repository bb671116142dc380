"""Opening a fresh database from many processes at once: Optuna's tables are created once.

``RDBStorage`` creates its tables, its version row and alembic's version
stamp, each after a check of its own. Processes that open a new database at
the same moment (a fleet of workers starting) race through those checks: on
PostgreSQL one fails with a duplicate key in ``pg_type_typname_nsp_index``, on
SQLite with "table … already exists", and two stamps could both be written.
So opening is one process at a time per database:

- PostgreSQL: a session advisory lock, held on a connection of its own while
  ``RDBStorage`` is built (released by the server should the process die);
- SQLite: an exclusive ``flock`` on a lock file beside the database
  (``<file>-lock``), held also while the file is switched to its write-ahead
  log (two processes switching a fresh file at once may get "database is
  locked"). Never on the database file itself: closing any descriptor of a
  file drops every POSIX lock the process holds on it, SQLite's own among
  them, and a database whose locks vanish mid-write is corrupted.

Other databases open as before. The lock is held for as long as one open
takes, and only there: the store is then used without it.

Example::

    with one_opener_at_a_time(url, connect_args={}):
        rdb = optuna.storages.RDBStorage(url)
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

from scaling_optuna.storages._url import scheme
from scaling_optuna.storages._url import sqlite_path

# Any 64-bit number: advisory locks are per database, and only scaling-optuna's openers take this one.
ADVISORY_LOCK_KEY = 0x5CA1_1AB0_0F7A


@contextlib.contextmanager
def one_opener_at_a_time(url: str, connect_args: dict[str, Any] | None = None) -> Iterator[None]:
    """Hold the store's open lock (see the module docstring) while the block runs."""
    kind = scheme(url)
    if kind.startswith("sqlite"):
        with _file_lock(sqlite_path(url)):
            yield
    elif kind.startswith("postgresql"):
        with _advisory_lock(url, connect_args or {}):
            yield
    else:
        yield


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: SQLite's busy timeout is all there is
        yield
        return
    fd = os.open(f"{path}-lock", os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def _advisory_lock(url: str, connect_args: dict[str, Any]) -> Iterator[None]:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f"SELECT pg_advisory_lock({ADVISORY_LOCK_KEY})")
            connection.commit()  # no transaction left open on the server while we wait for the others
            try:
                yield
            finally:
                # Closing the connection releases the lock as well, should the server be gone by now.
                with contextlib.suppress(Exception):
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({ADVISORY_LOCK_KEY})")
                    connection.commit()
    finally:
        engine.dispose()
