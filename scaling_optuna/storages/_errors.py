"""What a store's error means: worth retrying, or a fault a person must fix.

Only a busy or locked store, a lost or refused connection and a server that
is restarting are *transient*: the same call will succeed if repeated later.
A full disk, a read-only store, a missing table, a wrong password or an
unknown database will not go away by waiting; :func:`fatal_reason` names them
in words, so that a worker stops at once with one line instead of retrying
for minutes.

Example::

    trial = study.ask()
    try:
        study.tell(trial, 0.25)
    except Exception as e:
        if not is_transient(e):
            raise
"""

from __future__ import annotations

import errno
import sqlite3
from typing import Iterator

import optuna

from scaling_optuna.storages._url import mask_url

# Substrings of driver messages, lower-case. Checked before the transient ones:
# "could not connect ... database "x" does not exist" is a connection error that waiting will not fix.
_FATAL = (
    ("database or disk is full", "the store's disk is full; free space on it"),
    ("no space left on device", "the store's disk is full; free space on it"),
    ("could not extend file", "the database server's disk is full; free space on it"),
    ("disk full", "the store's disk is full; free space on it"),
    # SQLite's words when it cannot grow its write-ahead log or map its index: a full disk, mostly.
    ("disk i/o error", "the store's disk refused a write (full, or failing); free space on it or check the disk"),
    ("attempt to write a readonly database", "the store is read-only; give the workers a writable store"),
    ("read-only file system", "the store is on a read-only file system; give the workers a writable store"),
    ("read_only_sql_transaction", "the database is read-only (a standby?); point the workers at the primary"),
    ("cannot execute", "the database refuses writes; point the workers at a writable database"),
    ("no such table", "the store lacks Optuna's tables; run 'scaling-optuna create' against it"),
    ("undefinedtable", "the database lacks Optuna's tables; run 'scaling-optuna create' against it"),
    ("does not exist", "the database or a table does not exist; check the URL, or run 'scaling-optuna create'"),
    ("password authentication failed", "the database refused the password; check the credentials in the URL"),
    ("authentication failed", "the database refused the credentials; check the user and password in the URL"),
    ("no pg_hba.conf entry", "the database server does not accept this machine; allow it in pg_hba.conf"),
    ("permission denied", "the store refuses this user; check the credentials and permissions"),
    ("syntax error", "the store rejected a statement; the database and Optuna versions may not match"),
    ("unable to open database file", "the SQLite file cannot be opened; check the path and its permissions"),
    ("file is not a database", "the file is not a SQLite store; check the path"),
)
_TRANSIENT = (
    # Any failure to establish a connection that no _FATAL entry explains (a role barred from
    # logging in for a while, a server still starting) is worth waiting out.
    "connection failed",
    "connection to server",
    "not currently accepting connections",
    "database is locked",
    "database table is locked",
    "database schema has changed",
    "connection refused",
    "could not connect",
    "connection reset",
    "connection timed out",
    "timeout expired",
    "server closed the connection",
    "terminating connection",
    "the database system is starting up",
    "the database system is shutting down",
    "the database system is in recovery mode",
    "connection already closed",
    "lost connection",
    "broken pipe",
    "ssl syscall error",
    "could not receive data",
    "could not send data",
    "no connection to the server",
    "connection is closed",
    "too many connections",
    "remaining connection slots",
    "deadlock detected",
    "could not serialize access",
    "failed to connect to all addresses",
    "socket closed",
    "stream removed",
)
# PostgreSQL SQLSTATEs: connection exceptions (08…), shutdown and restart (57P0…),
# serialisation failures and deadlocks, too many connections.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03", "40001", "40P01", "53300")
_FATAL_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM)
# What Optuna's storages raise by contract: a missing study or trial (KeyError), a taken study
# name, a write to a finished trial, an invalid argument. Callers catch them (optuna.load_study,
# Study.tell), so they are neither transient nor a fault, whatever caused them: through gRPC a
# KeyError is caused by a NOT_FOUND reply whose words ("does not exist") would read as a missing table.
OPTUNA_ERRORS = (
    KeyError,
    optuna.exceptions.DuplicatedStudyError,
    optuna.exceptions.UpdateFinishedTrialError,
    ValueError,
)


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a busy store or a lost connection, worth retrying."""
    if isinstance(error, OPTUNA_ERRORS) or fatal_reason(error) is not None:
        return False
    return any(_is_transient_one(e) for e in causes(error))


def fatal_reason(error: BaseException) -> str | None:
    """What to fix, in words, when ``error`` is a store fault that retrying cannot cure; else ``None``."""
    if isinstance(error, OPTUNA_ERRORS):
        return None
    for e in causes(error):
        if isinstance(e, OSError) and e.errno in _FATAL_ERRNOS:
            return _FATAL[0][1] if e.errno in (errno.ENOSPC, errno.EDQUOT) else "the store's files cannot be written; check the path and its permissions"
        if not _is_store_error(e):
            continue
        text = _text(e)
        for needle, reason in _FATAL:
            if needle in text:
                return reason
    return None


def describe_error(error: BaseException) -> str:
    """One line naming ``error`` and, where Optuna wrapped a driver's error, the driver's own words.

    A gRPC error's text is a multi-line repr whose first line says nothing;
    its status code and details say what happened.
    """
    chain = list(causes(error))
    telling = chain[-1] if isinstance(error, optuna.exceptions.StorageInternalError) and len(chain) > 1 else error
    status = _grpc_status(telling)
    if status:
        return mask_url(f"{type(telling).__name__}: {status}")
    lines = str(telling).strip().splitlines()
    return mask_url(f"{type(telling).__name__}: {lines[0] if lines else ''}".strip())


def _grpc_status(error: BaseException) -> str | None:
    """``UNAVAILABLE: failed to connect to all addresses; …`` for a gRPC error; None for any other."""
    code, details = getattr(error, "code", None), getattr(error, "details", None)
    if not (_is_store_error(error) and callable(code) and callable(details)):
        return None
    try:
        name = getattr(code(), "name", code())
        text = " ".join(str(details() or "").split())
    except Exception:  # an RpcError that carries no status
        return None
    return f"{name}: {text}" if text else str(name)


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error``, then what caused it, and so on (each once)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_store_error(error: BaseException) -> bool:
    if isinstance(error, (sqlite3.Error, optuna.exceptions.StorageInternalError)):
        return True
    module = type(error).__module__ or ""
    return module.startswith(("sqlalchemy", "psycopg", "psycopg2", "grpc", "pymysql", "MySQLdb"))


def _is_transient_one(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError)):
        return True
    if not _is_store_error(error):
        return False
    try:
        import sqlalchemy.exc as sa_exc

        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, sa_exc.TimeoutError):  # the connection pool is exhausted for now
            return True
    except ImportError:  # pragma: no cover - SQLAlchemy comes with Optuna
        pass
    state = getattr(error, "pgcode", None) or getattr(error, "sqlstate", None)
    if isinstance(state, str) and state.startswith(_TRANSIENT_SQLSTATE_PREFIXES):
        return True
    if _grpc_code_is_transient(error):
        return True
    text = _text(error)
    return any(needle in text for needle in _TRANSIENT)


def _grpc_code_is_transient(error: BaseException) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpcio is a dependency
        return False
    if not (isinstance(error, grpc.RpcError) and hasattr(error, "code")):
        return False
    # UNKNOWN is how the proxy reports its own lost database; its details say which.
    return error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) or (
        error.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL)
        and any(needle in _text(error) for needle in _TRANSIENT)
    )


def _text(error: BaseException) -> str:
    details = getattr(error, "details", None)
    extra = details() if callable(details) else ""
    return f"{type(error).__name__} {error} {extra or ''}".lower()
