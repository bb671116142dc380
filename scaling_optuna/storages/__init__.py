"""The shared store: opening it from a URL, surviving its outages, keeping its password hidden.

Supported URLs:

- ``sqlite:///path/to/file.db``: one machine, several local workers.
- ``postgresql://user:password@host:5432/db`` (or any SQLAlchemy URL): many machines.
- ``journal:///path/to/file.log``: Optuna's journal file, for a shared filesystem without a database.
- ``grpc://host:port``: an Optuna gRPC storage proxy (``scaling-optuna proxy``) in front of a database.

Every store comes back as a :class:`RetryingStorage` around Optuna's own
storage for that URL: transient errors are retried, incurable ones named, and
Optuna's own errors (``KeyError`` for a missing record, …) passed through (see
:mod:`scaling_optuna.storages._retry`). Heartbeats and the recovery of trials
whose worker is gone work the same on every kind of store
(:mod:`scaling_optuna.storages._recovery`), and so does the sweep that every
worker and the gRPC proxy run over an experiment's studies
(:mod:`scaling_optuna.storages._sweep`). Processes that open a fresh
database together build its tables once (:mod:`scaling_optuna.storages._first_open`);
a journal file takes whole records only (:mod:`scaling_optuna.storages._journal`).
What the package's other parts share of all this (trial marks, recovery,
retries, the sweep) is in :mod:`scaling_optuna.storages._shared`, no user API.

Example::

    from scaling_optuna.storages import mask_url, open_storage

    storage = open_storage("sqlite:///scaling-optuna.db", create=True)
    print(mask_url("postgresql://me:secret@db/exp"))  # postgresql://me:***@db/exp
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage

from scaling_optuna._optuna import cached
from scaling_optuna.errors import StorageError
from scaling_optuna.storages import _sqlite
from scaling_optuna.storages._errors import describe_error
from scaling_optuna.storages._errors import fatal_reason
from scaling_optuna.storages._first_open import one_opener_at_a_time
from scaling_optuna.storages._journal import WholeRecordsBackend
from scaling_optuna.storages._journal import damaged_line
from scaling_optuna.storages._retry import RetryingStorage
from scaling_optuna.storages._url import check_url
from scaling_optuna.storages._url import grpc_address
from scaling_optuna.storages._url import mask_url
from scaling_optuna.storages._url import scheme
from scaling_optuna.storages._url import sqlite_path

# What a user calls. The names the package's other rooms share (trial marks, recovery,
# retries, the sweep) are in scaling_optuna.storages._shared, which is no user API.
__all__ = [
    "RetryingStorage",
    "StorageError",
    "check_url",
    "mask_url",
    "open_storage",
]


def open_storage(
    url: str,
    *,
    create: bool = False,
    read_only: bool = False,
    pool_size: int | None = None,
    stop: threading.Event | None = None,
) -> RetryingStorage:
    """Open the store at ``url``.

    With ``create=False`` a SQLite or journal file that does not exist is an
    error rather than a new empty file, so that a mistyped path writes
    nothing. ``read_only`` is for commands that only read (status, report,
    dashboard): a SQLite store on a read-only file system is then still read.
    ``pool_size`` sizes the connection pool of a database (the gRPC proxy wants
    one connection per thread). ``stop`` ends waits between retries at once.

    Raises:
        StorageError: the URL is malformed or the store cannot be opened.
    """
    check_url(url)
    kind = scheme(url)
    if kind == "journal":
        backend: BaseStorage = _open_journal(url, create=create)
    elif kind == "grpc":
        backend = _open_grpc(url)
    else:
        backend = _open_database(url, create=create, read_only=read_only, pool_size=pool_size)
    local = kind.startswith("sqlite")
    return RetryingStorage(backend, local=local, stop=stop, write_scope=_sqlite.writing if local else contextlib.nullcontext)


def _open_database(url: str, *, create: bool, read_only: bool, pool_size: int | None) -> BaseStorage:
    kind = scheme(url)
    engine_url, kwargs = url, _engine_kwargs(kind, pool_size)
    if kind.startswith("sqlite"):
        engine_url, kwargs = _sqlite.engine_options(url, create=create, read_only=read_only)
    # Only one process at a time builds a store's tables: workers may open a fresh database together.
    opening = contextlib.nullcontext() if read_only else one_opener_at_a_time(url, kwargs.get("connect_args"))
    try:
        with opening:
            if kind.startswith("sqlite") and not read_only:
                _sqlite.use_wal(Path(sqlite_path(url)))
            rdb = optuna.storages.RDBStorage(engine_url, engine_kwargs=kwargs, skip_table_creation=read_only)
    except StorageError:
        raise
    except ImportError as e:
        raise StorageError(f"storage {mask_url(url)}: driver missing ({e}); install it with pip") from None
    except Exception as e:  # SQLAlchemy raises many types for bad URLs and unreachable servers
        disk = _sqlite.failure_reason(url) if kind.startswith("sqlite") else None
        reason = disk or fatal_reason(e) or "check the URL, that the server is running, and the credentials"
        raise StorageError(f"cannot open storage {mask_url(url)}: {describe_error(e)}; {reason}") from None
    if kind.startswith("sqlite"):
        _sqlite.serialise_writes(rdb.engine)
    # Optuna's cache keeps finished trials in memory, so repeated reads fetch only what changed.
    return cached(rdb)


def _engine_kwargs(kind: str, pool_size: int | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        # Survive a restarted server or a dropped connection: test connections before use.
        "pool_pre_ping": True,
        "pool_size": pool_size or 2,
        "max_overflow": 2,
    }
    if kind.startswith("postgres"):
        # A vanished server must end in an error (then a retry), not a read that hangs forever.
        kwargs["connect_args"] = {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    return kwargs


def _open_journal(url: str, *, create: bool) -> BaseStorage:
    path = Path(url.split("://", 1)[1])
    if not str(path) or str(path) == ".":
        raise StorageError(f"storage URL {mask_url(url)!r} names no file; use journal:///path/to/file.log")
    if not create and not path.is_file():
        raise StorageError(f"no journal store at {path}; run 'scaling-optuna create' first, or check the path")
    if not path.parent.is_dir():
        raise StorageError(f"folder {path.parent} for the journal {path} does not exist; create it first")
    try:
        return optuna.storages.JournalStorage(WholeRecordsBackend(str(path)))
    except ValueError:  # json.JSONDecodeError among them: a damaged record before the end
        raise StorageError(
            f"journal {path} has a damaged record on line {damaged_line(path)} (one cut short, left by an earlier "
            "version); restore the file from a copy, or delete that line (what it recorded is lost)"
        ) from None
    except OSError as e:
        reason = fatal_reason(e) or "check the path and its permissions"
        raise StorageError(f"cannot open the journal {path}: {e.strerror or e}; {reason}") from None


def _open_grpc(url: str) -> BaseStorage:
    host, port = grpc_address(url)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            proxy = optuna.storages.GrpcStorageProxy(host=host, port=port)
        proxy.wait_server_ready(timeout=10)
    except ImportError:
        raise StorageError("gRPC storage needs grpcio; pip install grpcio protobuf") from None
    except Exception as e:
        raise StorageError(
            f"cannot reach the gRPC storage proxy at {mask_url(url)}: {describe_error(e)}; start it with 'scaling-optuna proxy'"
        ) from None
    return proxy
