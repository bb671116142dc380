"""Opening the shared store from a URL, and keeping its password out of sight.

Supported URLs:

- ``sqlite:///path/to/file.db``: one machine, several local workers.
- ``postgresql://user:password@host:5432/db`` (or any SQLAlchemy URL): many machines.
- ``journal:///path/to/file.log``: Optuna's journal file, for a shared filesystem without a database.
- ``grpc://host:port``: an Optuna gRPC storage proxy (``scaling-optuna proxy``) in front of a database.

Example::

    from scaling_optuna.storage import mask_url, open_storage

    storage = open_storage("sqlite:///scaling-optuna.db", create=True)
    print(mask_url("postgresql://me:secret@db/exp"))  # postgresql://me:***@db/exp
"""

from __future__ import annotations

import re
import sqlite3
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage

from scaling_optuna.errors import StorageError

HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 30
MAX_RETRY = 3
SQLITE_BUSY_TIMEOUT_S = 60

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]*)(?P<tail>@)")


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", str(text))


def open_storage(
    url: str,
    *,
    create: bool = False,
    heartbeat_interval: int | None = HEARTBEAT_INTERVAL_S,
    grace_period: int | None = GRACE_PERIOD_S,
) -> BaseStorage:
    """Open the store at ``url``.

    With ``create=False`` a SQLite or journal file that does not exist is an
    error rather than a new empty file, so that a mistyped path writes nothing.
    Heartbeats (RDB stores) let any worker fail and retry the trials of a
    worker that died; pass ``heartbeat_interval=None`` for read-only use.

    Raises:
        StorageError: the URL is malformed or the store cannot be reached.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"storage URL {mask_url(str(url))!r} is malformed; use sqlite:///file.db, "
            "postgresql://user:password@host/db, journal:///file.log or grpc://host:port"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme == "journal":
        return _open_journal(url, create=create)
    if scheme == "grpc":
        return _open_grpc(url)
    if scheme.startswith("sqlite"):
        _prepare_sqlite(url, create=create)
    engine_kwargs = _engine_kwargs(scheme)
    try:
        with warnings.catch_warnings():
            # Heartbeats have been "experimental" since Optuna 2.8; they are what makes workers safe to kill.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            kwargs: dict = {}
            if heartbeat_interval is not None:
                kwargs = {
                    "heartbeat_interval": heartbeat_interval,
                    "grace_period": grace_period,
                    "heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                }
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except ImportError as e:
        raise StorageError(f"storage {mask_url(url)}: driver missing ({e}); install it with pip") from None
    except Exception as e:  # SQLAlchemy raises many types for bad URLs and unreachable servers
        raise StorageError(
            f"cannot open storage {mask_url(url)}: {mask_url(_first_line(e))}; "
            "check the URL, that the server is running, and the credentials"
        ) from None


def _engine_kwargs(scheme: str) -> dict:
    if scheme.startswith("sqlite"):
        # Several local workers write to one file: wait for the lock instead of failing.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    # Survive a restarted server or a dropped connection: test connections before use.
    return {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}


def _prepare_sqlite(url: str, *, create: bool) -> None:
    path = url.split(":///", 1)[1] if ":///" in url else ""
    if not path or path == ":memory:":
        return
    file = Path(path)
    if not create and not file.is_file():
        raise StorageError(
            f"no store at {file} (from {url}); run 'scaling-optuna create SPEC --storage {url}' first, "
            "or check the path"
        )
    if create:
        if not file.parent.is_dir():
            raise StorageError(f"folder {file.parent} for the store {url} does not exist; create it first")
    try:
        # WAL lets readers (status, dashboard) proceed while a worker writes; the setting
        # is stored in the file, so every later connection uses it.
        with sqlite3.connect(file, timeout=SQLITE_BUSY_TIMEOUT_S) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as e:
        raise StorageError(f"cannot open SQLite store {file}: {e}; check the path and its permissions") from None


def _open_journal(url: str, *, create: bool) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import JournalFileOpenLock
    from optuna.storages.journal import JournalStorage

    path = Path(url.split("://", 1)[1])
    if not str(path) or str(path) == ".":
        raise StorageError(f"storage URL {url!r} names no file; use journal:///path/to/file.log")
    if not create and not path.is_file():
        raise StorageError(f"no journal store at {path}; run 'scaling-optuna create' first, or check the path")
    if not path.parent.is_dir():
        raise StorageError(f"folder {path.parent} for the journal {path} does not exist; create it first")
    # The open-based lock works on NFS, where symlink locks may not.
    return JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))


def _open_grpc(url: str) -> BaseStorage:
    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        raise StorageError(f"storage URL {url!r} needs a host and a port, e.g. grpc://127.0.0.1:13000")
    try:
        proxy = optuna.storages.GrpcStorageProxy(host=parts.hostname, port=parts.port)
        proxy.wait_server_ready(timeout=10)
    except ImportError:
        raise StorageError("gRPC storage needs grpcio; pip install grpcio protobuf") from None
    except Exception as e:
        raise StorageError(f"cannot reach the gRPC storage proxy at {url}: {_first_line(e)}; start it with 'scaling-optuna proxy'") from None
    return proxy


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
