"""Opening the shared store from a URL, and keeping its password out of sight.

Supported URLs:

- ``sqlite:///path/to/file.db``: one machine, several local workers.
- ``postgresql://user:password@host:5432/db`` (or any SQLAlchemy URL): many machines.
- ``journal:///path/to/file.log``: Optuna's journal file, for a shared filesystem without a database.
- ``grpc://host:port``: an Optuna gRPC storage proxy (``scaling-optuna proxy``) in front of a database.

Stores opened for workers survive a flaky database: calls that are safe to
repeat (reads, reports, attributes, heartbeats) are retried with backoff for
up to :data:`RETRY_DEADLINE_S`; calls that are not (creating a trial, telling
its state) are left to the worker loop, which knows how to recover. Every
kind of store has heartbeats, so that the trials of a worker that died are
failed and re-queued with the same parameters.

Example::

    from scaling_optuna.storage import mask_url, open_storage

    storage = open_storage("sqlite:///scaling-optuna.db", create=True)
    print(mask_url("postgresql://me:secret@db/exp"))  # postgresql://me:***@db/exp
"""

from __future__ import annotations

import functools
import logging
import random
import re
import sqlite3
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import StorageError

HEARTBEAT_INTERVAL_S = 10
GRACE_FACTOR = 3
GRACE_PERIOD_S = GRACE_FACTOR * HEARTBEAT_INTERVAL_S
MAX_RETRY = 3
SQLITE_BUSY_TIMEOUT_S = 60
RETRY_DEADLINE_S = 60
HEARTBEAT_ATTR = "scaling_optuna:heartbeat"

_log = logging.getLogger("scaling_optuna.storage")
_T = TypeVar("_T")

# Greedy up to the last "@" before the path, so that a password holding an unescaped "@" is masked whole.
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^\s/]*)(?P<tail>@)")


def mask_url(text: str) -> str:
    """Replace the password of every URL in ``text`` with ``***``."""
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", str(text))


def check_url(url: str) -> None:
    """Raise :class:`StorageError` unless ``url`` has the form of a store URL.

    Cheap and offline: callers run it before loading data, so that a mistyped
    ``--storage`` is reported at once. Whether the store answers is for
    :func:`open_storage` to find out.
    """
    if not isinstance(url, str) or "://" not in url:
        raise StorageError(
            f"storage URL {mask_url(str(url))!r} is malformed; use sqlite:///file.db, "
            "postgresql://user@host/db, journal:///file.log or grpc://host:port"
        )


def open_storage(
    url: str,
    *,
    create: bool = False,
    heartbeat_interval: int | None = HEARTBEAT_INTERVAL_S,
    grace_period: int | None = None,
    pool_size: int | None = None,
) -> BaseStorage:
    """Open the store at ``url``.

    With ``create=False`` a SQLite or journal file that does not exist is an
    error rather than a new empty file, so that a mistyped path writes nothing.
    Heartbeats let any worker fail and retry the trials of a worker that died;
    pass ``heartbeat_interval=None`` for read-only use. ``grace_period``
    defaults to three heartbeat intervals. ``pool_size`` sizes the connection
    pool of a database (the gRPC proxy wants one connection per thread).

    Raises:
        StorageError: the URL is malformed or the store cannot be reached.
    """
    check_url(url)
    heartbeat = _Heartbeat.configure(heartbeat_interval, grace_period)
    scheme = url.split("://", 1)[0].lower()
    if scheme == "journal":
        return _open_journal(url, create=create, heartbeat=heartbeat)
    if scheme == "grpc":
        return _open_grpc(url, heartbeat=heartbeat)
    if scheme.startswith("sqlite"):
        _prepare_sqlite(url, create=create)
    try:
        with warnings.catch_warnings():
            # Heartbeats have been "experimental" since Optuna 2.8; they are what makes workers safe to kill.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            kwargs: dict[str, Any] = {}
            if heartbeat is not None:
                kwargs = {
                    "heartbeat_interval": heartbeat.interval,
                    "grace_period": heartbeat.grace,
                    "heartbeat_stale_trial_callback": heartbeat.callback,
                }
            storage = _RDBStorage(url, engine_kwargs=_engine_kwargs(scheme, pool_size), **kwargs)
    except ImportError as e:
        raise StorageError(f"storage {mask_url(url)}: driver missing ({e}); install it with pip") from None
    except Exception as e:  # SQLAlchemy raises many types for bad URLs and unreachable servers
        raise StorageError(
            f"cannot open storage {mask_url(url)}: {mask_url(_first_line(e))}; "
            "check the URL, that the server is running, and the credentials"
        ) from None
    storage._attach(heartbeat)
    return storage


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` (or what caused it) is a lost connection or a busy store, worth retrying.

    Example::

        try:
            study.tell(trial, value)
        except Exception as e:
            if not is_transient(e):
                raise
    """
    for cause in _causes(error):
        if _is_transient_one(cause):
            return True
    return False


def call_with_retries(fn: Callable[[], _T], *, what: str, deadline_s: float = RETRY_DEADLINE_S) -> _T:
    """Call ``fn`` until it succeeds, retrying transient store errors with backoff for ``deadline_s``.

    Only for calls that are safe to repeat. Other errors, and the last
    transient one, are raised.

    Example::

        trials = call_with_retries(lambda: study.get_trials(deepcopy=False), what="read trials")
    """
    start = time.monotonic()
    for attempt in range(1, 1_000_000):
        try:
            return fn()
        except Exception as e:
            if not is_transient(e):
                raise
            delay = backoff(attempt)
            if time.monotonic() - start + delay > deadline_s:
                raise
            _log.warning("%s failed (%s); retry %d in %.1f s", what, mask_url(_first_line(_root(e))), attempt, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def backoff(attempt: int, *, first_s: float = 0.25, cap_s: float = 15.0) -> float:
    """Exponential backoff with jitter: about 0.25, 0.5, 1, 2, ... seconds, at most ``cap_s``."""
    base = min(cap_s, first_s * 2 ** (attempt - 1))
    return base * random.uniform(0.75, 1.25)


class RetryTrial:
    """Queue a WAITING copy of a failed trial with the same parameters, at most ``max_retry`` times.

    Optuna's ``RetryHeartbeatStaleTrialCallback`` does the same but re-validates
    the parameters against their distributions, which fails for the untuned
    baseline (its widths lie outside the tuned range on purpose) and would then
    crash whichever worker noticed the stale trial. The copy here carries the
    parameters as fixed parameters, like ``study.enqueue_trial``, and the same
    ``failed_trial`` and ``retry_history`` system attributes as Optuna's, so
    ``RetryHeartbeatStaleTrialCallback.retried_trial_number`` still works.

    Example::

        storage = optuna.storages.RDBStorage(url, heartbeat_interval=10, heartbeat_stale_trial_callback=RetryTrial(3))
    """

    def __init__(self, max_retry: int | None = None) -> None:
        self.max_retry = max_retry

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        history = [*trial.system_attrs.get("retry_history", []), trial.number]
        if self.max_retry is not None and len(history) > self.max_retry:
            _log.warning("trial %d failed %d times; not retried again", history[0], len(history))
            return
        system_attrs = {k: v for k, v in trial.system_attrs.items() if k != HEARTBEAT_ATTR}
        system_attrs["failed_trial"] = trial.system_attrs.get("failed_trial", trial.number)
        system_attrs["retry_history"] = history
        # Parameters the trial had not suggested yet when it died stay fixed if they were queued so.
        system_attrs["fixed_params"] = {**trial.system_attrs.get("fixed_params", {}), **trial.params}
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=trial.user_attrs, system_attrs=system_attrs))


class _Heartbeat:
    """Heartbeat settings, and the skew-free staleness check of attribute heartbeats.

    Stores without Optuna's heartbeat table (journal, gRPC proxy) record a
    heartbeat as a trial system attribute holding ``[wall time, interval]``.
    The checker never compares clocks of two machines: a trial is stale when
    its attribute has not changed for ``grace`` seconds of the checker's own
    monotonic clock (or three of the beating worker's intervals, if longer).
    """

    def __init__(self, interval: int, grace: int) -> None:
        self.interval, self.grace = interval, grace
        self.callback = RetryTrial(max_retry=MAX_RETRY)
        self._seen: dict[int, tuple[str, float]] = {}
        self._silent: dict[int, float] = {}
        self._lock = threading.Lock()

    @classmethod
    def configure(cls, interval: int | None, grace: int | None) -> _Heartbeat | None:
        if interval is None:
            return None
        if int(interval) <= 0 or (grace is not None and int(grace) <= 0):
            raise StorageError(f"heartbeat interval {interval} and grace period {grace} must be positive whole seconds")
        grace = int(grace) if grace is not None else GRACE_FACTOR * int(interval)
        if grace <= int(interval):
            raise StorageError(
                f"grace period {grace} s must be longer than the heartbeat interval {interval} s "
                f"(use about {GRACE_FACTOR}×), or live trials would be failed"
            )
        return cls(int(interval), grace)

    def beat(self) -> list[float]:
        return [round(time.time(), 3), self.interval]

    def stale_by_attribute(self, running: list[FrozenTrial]) -> list[int]:
        now = time.monotonic()
        stale = []
        with self._lock:
            alive = set()
            for trial in running:
                beat = trial.system_attrs.get(HEARTBEAT_ATTR)
                if beat is None:
                    continue  # not a trial of an attribute-heartbeat worker
                alive.add(trial._trial_id)
                key = repr(beat)
                seen = self._seen.get(trial._trial_id)
                if seen is None or seen[0] != key:
                    self._seen[trial._trial_id] = (key, now)
                    continue
                their_interval = beat[1] if isinstance(beat, list) and len(beat) > 1 else self.interval
                if now - seen[1] > max(self.grace, GRACE_FACTOR * float(their_interval)):
                    stale.append(trial._trial_id)
            for trial_id in set(self._seen) - alive:
                del self._seen[trial_id]
        return stale

    def stale_without_beat(self, silent: list[int]) -> list[int]:
        """Trials RUNNING without any heartbeat: their worker died between creating the
        trial and its first beat. Stale once seen silent for two grace periods here."""
        now = time.monotonic()
        with self._lock:
            for trial_id in set(self._silent) - set(silent):
                del self._silent[trial_id]
            for trial_id in silent:
                self._silent.setdefault(trial_id, now)
            return [t for t in silent if now - self._silent[t] > 2 * self.grace]


class _AttributeHeartbeat(BaseHeartbeat):
    """Optuna's heartbeat interface on top of trial system attributes (see :class:`_Heartbeat`)."""

    _heartbeat: _Heartbeat | None = None

    def _attach(self, heartbeat: _Heartbeat | None) -> None:
        self._heartbeat = heartbeat

    def record_heartbeat(self, trial_id: int) -> None:
        assert self._heartbeat is not None
        try:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, self._heartbeat.beat())  # type: ignore[attr-defined]
        except Exception as e:
            # A missed beat is harmless; a heartbeat thread that dies would get a live trial failed.
            _log.warning("heartbeat of trial %d not recorded: %s", trial_id, mask_url(_first_line(_root(e))))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        assert self._heartbeat is not None
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))  # type: ignore[attr-defined]
        return self._heartbeat.stale_by_attribute(running)

    def get_heartbeat_interval(self) -> int | None:
        return None if self._heartbeat is None else self._heartbeat.interval

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return None if self._heartbeat is None else self._heartbeat.callback


# Calls that leave the store as one call would, however often they are repeated.
_REPEATABLE = (
    "get_study_id_from_name",
    "get_study_name_from_id",
    "get_study_directions",
    "get_study_user_attrs",
    "get_study_system_attrs",
    "get_all_studies",
    "get_trial",
    "get_all_trials",
    "_get_trials",
    "get_trial_id_from_study_id_trial_number",
    "get_trial_param",
    "get_best_trial",
    "_get_best_trial_id",
    "set_study_user_attr",
    "set_study_system_attr",
    "set_trial_param",
    "_set_trial_param",  # a repeat hits the unique key, which Optuna ignores here
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
)
# Calls that are repeatable only where a failed call surely did not commit (SQLite: no lost replies).
_REPEATABLE_IF_LOCAL = ("create_new_trial", "_create_new_trial", "set_trial_state_values", "create_new_study")


_in_retry = threading.local()


def _retrying(cls: type, names: tuple[str, ...], *, only_if_local: bool = False) -> None:
    for name in names:
        original = getattr(cls, name, None)
        if original is None:
            continue

        def method(self: Any, *args: Any, __original: Callable = original, __name: str = name, **kwargs: Any) -> Any:
            # A retried call that calls another (get_all_trials -> _get_trials) retries once, at the outside.
            if getattr(_in_retry, "active", False) or self._retry_deadline_s <= 0 or (only_if_local and not self._local):
                return __original(self, *args, **kwargs)
            _in_retry.active = True
            try:
                return call_with_retries(lambda: __original(self, *args, **kwargs), what=__name, deadline_s=self._retry_deadline_s)
            finally:
                _in_retry.active = False

        setattr(cls, name, functools.wraps(original)(method))


class _RDBStorage(RDBStorage):
    """RDBStorage that retries what is safe to retry, keeps beating through outages, and
    also fails the stale trials of workers behind a gRPC proxy (attribute heartbeats)."""

    _retry_deadline_s: float = RETRY_DEADLINE_S
    _heartbeat: _Heartbeat | None = None
    _local = False

    def _attach(self, heartbeat: _Heartbeat | None) -> None:
        self._heartbeat = heartbeat
        self._local = self.engine.name == "sqlite"
        if self._local:
            _serialise_sqlite_transactions(self.engine)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as e:
            # Optuna's heartbeat thread dies on the first error, after which a live trial would be failed.
            _log.warning("heartbeat of trial %d not recorded: %s", trial_id, mask_url(_first_line(_root(e))))

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        stale = super()._get_stale_trial_ids(study_id)
        if self._heartbeat is not None:
            running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            stale += [t for t in self._heartbeat.stale_by_attribute(running) if t not in stale]
            unbeaten = [t._trial_id for t in running if HEARTBEAT_ATTR not in t.system_attrs]
            silent = self._without_heartbeat_row(unbeaten)
            stale += [t for t in self._heartbeat.stale_without_beat(silent) if t not in stale]
        return stale

    def _without_heartbeat_row(self, trial_ids: list[int]) -> list[int]:
        if not trial_ids:
            return []
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self.scoped_session) as session:
            rows = (
                session.query(models.TrialHeartbeatModel.trial_id)
                .filter(models.TrialHeartbeatModel.trial_id.in_(trial_ids))
                .all()
            )
        beating = {row[0] for row in rows}
        return [t for t in trial_ids if t not in beating]


_retrying(_RDBStorage, _REPEATABLE)
_retrying(_RDBStorage, _REPEATABLE_IF_LOCAL, only_if_local=True)


def _serialise_sqlite_transactions(engine: Any) -> None:
    """Make every SQLite transaction ``BEGIN IMMEDIATE``.

    Python's sqlite3 starts a transaction only before a write, so Optuna's
    read-then-write steps (claiming a WAITING trial) are not atomic across
    processes: two workers can claim the same trial. With ``BEGIN IMMEDIATE``
    a transaction takes the write lock first and waits for it (busy timeout)
    instead of failing with "database is locked" on a late upgrade.
    """
    import sqlalchemy

    @sqlalchemy.event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below rule

    @sqlalchemy.event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the listeners would keep the old behaviour


def _engine_kwargs(scheme: str, pool_size: int | None) -> dict:
    if scheme.startswith("sqlite"):
        # Several local workers write to one file: wait for the lock instead of failing.
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    kwargs: dict[str, Any] = {
        # Survive a restarted server or a dropped connection: test connections before use.
        "pool_pre_ping": True,
        "pool_size": pool_size or 2,
        "max_overflow": 2,
    }
    if scheme.startswith("postgres"):
        # A vanished server must end in an error (then a retry), not a read that hangs forever.
        kwargs["connect_args"] = {
            "connect_timeout": 10,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
    return kwargs


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


def _open_journal(url: str, *, create: bool, heartbeat: _Heartbeat | None) -> BaseStorage:
    from optuna.storages.journal import JournalFileBackend
    from optuna.storages.journal import JournalFileOpenLock

    path = Path(url.split("://", 1)[1])
    if not str(path) or str(path) == ".":
        raise StorageError(f"storage URL {url!r} names no file; use journal:///path/to/file.log")
    if not create and not path.is_file():
        raise StorageError(f"no journal store at {path}; run 'scaling-optuna create' first, or check the path")
    if not path.parent.is_dir():
        raise StorageError(f"folder {path.parent} for the journal {path} does not exist; create it first")
    # The open-based lock works on NFS, where symlink locks may not.
    storage = _JournalStorage(JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path))))
    storage._attach(heartbeat)
    return storage


def _open_grpc(url: str, *, heartbeat: _Heartbeat | None) -> BaseStorage:
    parts = urlsplit(url)
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise StorageError(f"storage URL {url!r} needs a host and a port, e.g. grpc://127.0.0.1:13000")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            proxy = _GrpcStorage(host=host, port=port)
        proxy.wait_server_ready(timeout=10)
    except ImportError:
        raise StorageError("gRPC storage needs grpcio; pip install grpcio protobuf") from None
    except Exception as e:
        raise StorageError(f"cannot reach the gRPC storage proxy at {url}: {_first_line(e)}; start it with 'scaling-optuna proxy'") from None
    proxy._attach(heartbeat)
    return proxy


def _journal_class() -> type:
    from optuna.storages.journal import JournalStorage

    class _JournalStorage(_AttributeHeartbeat, JournalStorage):
        """Optuna's journal storage with attribute heartbeats."""

    return _JournalStorage


def _grpc_class() -> type:
    class _GrpcStorage(_AttributeHeartbeat, optuna.storages.GrpcStorageProxy):
        """Optuna's gRPC proxy client with attribute heartbeats and retries while the proxy restarts."""

        _retry_deadline_s: float = RETRY_DEADLINE_S
        _local = False

    _retrying(_GrpcStorage, _REPEATABLE)
    return _GrpcStorage


_JournalStorage: Any = _journal_class()
_GrpcStorage: Any = _grpc_class()


def _causes(error: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _root(error: BaseException) -> BaseException:
    """The most telling error of a chain: Optuna wraps database errors in StorageInternalError."""
    chain = list(_causes(error))
    return chain[-1] if isinstance(error, optuna.exceptions.StorageInternalError) and len(chain) > 1 else error


def _is_transient_one(error: BaseException) -> bool:
    try:
        import sqlalchemy.exc as sa_exc
    except ImportError:  # pragma: no cover - SQLAlchemy comes with Optuna's RDB storage
        sa_exc = None
    if sa_exc is not None:
        if isinstance(error, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
            return True
        if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
            return True
    if isinstance(error, sqlite3.OperationalError):
        return True
    try:
        import grpc
    except ImportError:
        return False
    if isinstance(error, grpc.RpcError) and hasattr(error, "code"):
        return error.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            # The proxy reports its own lost database connection as UNKNOWN.
            grpc.StatusCode.UNKNOWN,
        )
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
