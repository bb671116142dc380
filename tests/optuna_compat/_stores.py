"""The stores the harness runs Optuna's storage tests on, as Optuna's ``StorageSupplier`` supplies its own.

Each mode is a fresh, empty store:

- ``sqlite``, ``postgresql``, ``journal``, ``grpc``: what ``open_storage`` returns for
  that kind of URL (PostgreSQL: a database of this process on the shared server,
  emptied for each test and dropped at exit; gRPC: the project's proxy, started in
  this process on a free port, in front of a SQLite file);
- ``wrapped_inmemory``, ``wrapped_rdb``: ``RetryingStorage`` around Optuna's own
  ``InMemoryStorage`` and bare ``RDBStorage`` on SQLite (``sqlite`` above is the
  wrapper around Optuna's cache around an ``RDBStorage``);
- ``wrapped_rdb``, ``wrapped_cached_rdb``: the heartbeat modes, ``RetryingStorage``
  around an ``RDBStorage`` with Optuna's own heartbeat, bare and cached.

Building Optuna's tables takes seconds, so each process builds them once and
gives every test a copy (SQLite) or the same database emptied (PostgreSQL).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest
from optuna.storages import BaseStorage

from scaling_optuna._optuna import cached
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._retry import RetryingStorage
from tests.conftest import admin_connect

OPEN_STORAGE_MODES = ["sqlite", "postgresql", "journal", "grpc"]
WRAPPED_MODES = ["wrapped_inmemory", "wrapped_rdb"]
STORAGE_MODES = OPEN_STORAGE_MODES + WRAPPED_MODES
# Optuna's own heartbeat lives in RDBStorage alone (its STORAGE_MODES_HEARTBEAT: sqlite, cached_sqlite).
HEARTBEAT_MODES = ["wrapped_rdb", "wrapped_cached_rdb"]
# The quick set, run without the slow ones: the wrapper alone, in memory (test_contract.py checks
# every kind of store quickly).
FAST_MODES = ["wrapped_inmemory"]


def modes(selected: list[str]) -> list[Any]:
    """``selected`` as pytest parameters, those outside :data:`FAST_MODES` marked slow."""
    return [m if m in FAST_MODES else pytest.param(m, marks=pytest.mark.slow) for m in selected]


def copy_pairs() -> list[Any]:
    """(from, to) pairs for copying a study: every store to the in-memory one and back."""
    pairs = sorted({(m, "wrapped_inmemory") for m in STORAGE_MODES} | {("wrapped_inmemory", m) for m in STORAGE_MODES})
    return [pair if set(pair) <= set(FAST_MODES) else pytest.param(*pair, marks=pytest.mark.slow) for pair in pairs]


@contextlib.contextmanager
def supply(mode: str, **rdb_kwargs: Any) -> Iterator[BaseStorage]:
    """A fresh store of ``mode``; ``rdb_kwargs`` go to ``RDBStorage`` (heartbeat modes only)."""
    with tempfile.TemporaryDirectory(prefix="optuna-compat-") as folder:
        path = Path(folder)
        if mode == "grpc":
            from scaling_optuna.storages.proxy import start

            proxy = start(f"sqlite:///{_fresh_sqlite(path)}", port=0, threads=4)
            try:
                yield open_storage(f"grpc://127.0.0.1:{proxy.port}")
            finally:
                proxy.close()
            return
        storage = _local(mode, path, rdb_kwargs)
        try:
            yield storage
        finally:
            _dispose(storage)


def _local(mode: str, path: Path, rdb_kwargs: dict[str, Any]) -> BaseStorage:
    if rdb_kwargs and mode not in HEARTBEAT_MODES:
        raise ValueError(f"{mode} takes no RDBStorage arguments")
    if mode == "sqlite":
        return open_storage(f"sqlite:///{_fresh_sqlite(path)}")
    if mode == "postgresql":
        return open_storage(_emptied_postgres())
    if mode == "journal":
        return open_storage(f"journal:///{path / 'store.log'}", create=True)
    if mode == "wrapped_inmemory":
        return RetryingStorage(optuna.storages.InMemoryStorage())
    if mode in ("wrapped_rdb", "wrapped_cached_rdb"):
        url = f"sqlite:///{_fresh_sqlite(path)}"
        rdb = optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 300}}, **rdb_kwargs)
        return RetryingStorage(cached(rdb) if mode == "wrapped_cached_rdb" else rdb, local=True)
    raise ValueError(f"unknown storage mode {mode!r}")


def inner(storage: BaseStorage) -> BaseStorage:
    """The storage inside the project's wrapper (and inside Optuna's cache): what Optuna's own tests check the class of."""
    backend = storage.backend if isinstance(storage, RetryingStorage) else storage
    return getattr(backend, "_backend", backend) if type(backend).__name__ == "_CachedStorage" else backend


def _dispose(storage: BaseStorage) -> None:
    """Close the database connections of ``storage``, so that its file or database can go."""
    engine = getattr(inner(storage), "engine", None)
    if engine is not None:
        engine.dispose()


# Building Optuna's tables takes seconds; each process builds them once and copies or empties them.
_template: dict[str, str] = {}


def _fresh_sqlite(folder: Path) -> Path:
    """A copy of an empty SQLite store (tables built once per process) in ``folder``."""
    if "sqlite" not in _template:
        made = Path(tempfile.mkdtemp(prefix="optuna-compat-template-")) / "empty.db"
        _dispose(open_storage(f"sqlite:///{made}", create=True))
        atexit.register(shutil.rmtree, made.parent, True)
        _template["sqlite"] = str(made)
    copy = folder / "store.db"
    shutil.copyfile(_template["sqlite"], copy)
    return copy


def _emptied_postgres() -> str:
    """This process's database on the shared server, its tables emptied (built on first use, dropped at exit)."""
    import psycopg2

    if "postgresql" not in _template:
        _template["postgresql"] = _create_postgres_database()
        _dispose(open_storage(_template["postgresql"], create=True))
    database = _template["postgresql"].rsplit("/", 1)[1]
    with contextlib.closing(psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=database)) as db:
        with db, db.cursor() as cur:
            # Optuna's version rows stay: they are what an empty store holds.
            cur.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ('alembic_version', 'version_info')"
            )
            tables = ", ".join(f'"{row[0]}"' for row in cur.fetchall())
            cur.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    return _template["postgresql"]


def _admin() -> Any:
    try:
        return admin_connect()
    except Exception as e:  # psycopg2.OperationalError and friends
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is unreachable under CI: {e}")
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {e}")


def _create_postgres_database() -> str:
    """A database of its own on the shared server at 127.0.0.1:5432, dropped when the process ends."""
    admin = _admin()
    name = f"so_compat_{uuid.uuid4().hex[:12]}"
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
    finally:
        admin.close()
    atexit.register(_drop_postgres_database, name)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def _drop_postgres_database(name: str) -> None:
    admin = admin_connect()
    try:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()
