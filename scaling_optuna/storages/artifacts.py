"""Keeping the trained weights of the best trials, through Optuna's artifact store.

Each complete trial uploads its best epoch's ``state_dict`` (tensors only, never a
pickled module) and records the artifact id in its ``model_artifact`` user
attribute. After each upload, and when a worker starts, only the ``keep`` best
trials of the study keep their weights (:class:`WeightPruner`), so disks do not
fill. Weights are read back with ``torch.load(..., weights_only=True)``.

Where the weights go (see :func:`artifact_location`):

- a PostgreSQL (or any other database) store keeps them in a table of its own
  database, so every machine that reaches the store reaches the weights;
- a SQLite or journal store keeps them in a folder beside its file;
- ``artifacts =`` in the spec, ``--artifacts`` or ``$SCALING_OPTUNA_ARTIFACTS`` name
  a folder, ``s3://bucket/prefix`` or a database URL instead.

A weight write that fails (a full disk, a lost database) costs the trial its
weights, never its result: the trial stays complete, a warning is logged, and
no partial file is left behind.

Example::

    store = open_artifact_store("scaling-optuna-artifacts")
    artifact_id = save_state_dict(trial, model.state_dict(), store)
    state = load_state_dict(store, artifact_id)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Iterable, Sequence

import optuna
import torch
from optuna.artifacts import ArtifactMeta
from optuna.artifacts import Backoff
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import StorageError
from scaling_optuna.storages import mask_url
from scaling_optuna.storages._shared import describe_error

if TYPE_CHECKING:
    from scaling_optuna._optuna import ArtifactStore

ATTR_ARTIFACT = "model_artifact"
ARTIFACTS_ENV = "SCALING_OPTUNA_ARTIFACTS"
DEFAULT_KEEP = 3
DEFAULT_FOLDER = "scaling-optuna-artifacts"
# The system attribute that optuna.artifacts.upload_artifact writes and optuna-dashboard lists
# artifacts by. Written here after the weights, where upload_artifact writes it before them,
# so that no trial lists weights whose write failed.
DASHBOARD_ATTR_PREFIX = "artifacts:"
TABLE = "scaling_optuna_artifacts"
# The system attribute naming the weights a trial is uploading, written before them.
UPLOAD_ATTR = "scaling_optuna:upload"
# Schemes that name a place for files rather than a SQLAlchemy database.
_NOT_DATABASES = ("s3", "gs", "file", "grpc", "journal", "http", "https")
_log = logging.getLogger(__name__)


def artifact_location(configured: str | None, storage_url: str) -> str:
    """Where weights go: ``configured``, else ``$SCALING_OPTUNA_ARTIFACTS``, else the store's own place.

    A SQLite or journal store ``path/x.db`` keeps its weights in the folder
    ``path/x.db-artifacts``, so one experiment's files stay together; a
    PostgreSQL (or other database) store keeps them in its own database, which
    every worker already reaches. A gRPC proxy hides its database, so its
    workers fall back to ``./scaling-optuna-artifacts``: give them a shared
    folder or ``s3://…`` instead.

    Example::

        >>> artifact_location(None, "sqlite:///runs/exp.db")
        'runs/exp.db-artifacts'
        >>> artifact_location(None, "postgresql://me@db/exp")
        'postgresql://me@db/exp'
        >>> artifact_location("s3://bucket/exp", "postgresql://me@db/exp")
        's3://bucket/exp'
    """
    if configured or os.environ.get(ARTIFACTS_ENV):
        return configured or os.environ[ARTIFACTS_ENV]
    scheme, _, rest = storage_url.partition(":///")
    if scheme.startswith(("sqlite", "journal")) and rest and rest != ":memory:":
        return rest + "-artifacts"
    if is_database_url(storage_url) and not storage_url.startswith("sqlite"):
        return storage_url
    return DEFAULT_FOLDER


def is_database_url(location: str) -> bool:
    """Whether ``location`` is a SQLAlchemy database URL (``postgresql://…``, ``sqlite:///…``)."""
    scheme, sep, _ = location.partition("://")
    return bool(sep) and scheme.split("+", 1)[0].lower() not in _NOT_DATABASES and scheme.replace("+", "").isalnum()


def open_artifact_store(location: str) -> "ArtifactStore":
    """The artifact store at ``location``: a folder, ``s3://bucket/prefix`` (needs boto3) or a database URL.

    Database and S3 stores retry failed calls with backoff (Optuna's ``Backoff``).

    Raises:
        StorageError: the folder cannot be created or written, or boto3 is missing.
    """
    if location.startswith("s3://"):
        bucket, _, prefix = location[len("s3://"):].partition("/")
        if not bucket:
            raise StorageError(f"artifact location {location!r} names no bucket; use s3://bucket or s3://bucket/prefix")
        try:
            from optuna.artifacts import Boto3ArtifactStore

            s3: ArtifactStore = Boto3ArtifactStore(bucket)
        except ImportError:
            raise StorageError("artifact store s3:// needs boto3; pip install boto3") from None
        return _Backoff(PrefixedArtifactStore(s3, prefix) if prefix.strip("/") else s3)
    if is_database_url(location):
        return _Backoff(DatabaseArtifactStore(location))
    path = Path(location)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the artifact folder {path}: {e.strerror}; pass a writable --artifacts folder") from None
    if not os.access(path, os.W_OK):
        raise StorageError(f"artifact folder {path} is not writable; pass a writable --artifacts folder")
    return FolderArtifactStore(path)


def check_artifact_location(location: str) -> None:
    """Refuse an artifact folder that cannot be created or written, leaving nothing behind.

    ``create`` calls it before it writes a study, so that a folder such as
    ``/proc/nope`` is not found out by every worker after the studies exist.
    S3 and database locations are reached only by the workers, and pass.

    Raises:
        StorageError: the folder, or the nearest folder above it that exists, cannot be written.
    """
    if location.startswith("s3://") or is_database_url(location):
        return
    path = Path(location)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "not a folder")
        # A folder made and removed again: os.access says yes to root also where nothing can be made (/proc).
        os.rmdir(tempfile.mkdtemp(prefix=".scaling-optuna-check-", dir=existing))
    except OSError as e:
        raise StorageError(
            f"artifact folder {path} cannot be written (making a folder in {existing}: {e.strerror}); pass a writable folder "
            "(artifacts = \"…\" in the spec, or --artifacts)"
        ) from None


class _Backoff:
    """Optuna's ``Backoff`` (five tries over about 8 s) around a store, with a ``remove`` that stops once it succeeds.

    Optuna's own ``remove`` calls the store again after a success, so every
    removal would end in ``ArtifactNotFound`` after a pause (or, on S3, where
    removing a missing key succeeds, in every retry and every pause).
    """

    _TRIES = 5

    def __init__(self, backend: "ArtifactStore") -> None:
        self._backend = backend
        self._backoff = Backoff(backend, max_retries=self._TRIES, min_delay=0.5, max_delay=8)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._backoff.open_reader(artifact_id)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self._backoff.write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        for attempt in range(1, self._TRIES + 1):
            try:
                self._backend.remove(artifact_id)
                return
            except ArtifactNotFound:
                raise
            except Exception as e:
                if attempt == self._TRIES:
                    raise
                _log.warning("removing artifact %s failed (retry %d): %s", artifact_id, attempt, describe_error(e))
            time.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))


class FolderArtifactStore:
    """Artifacts as files of one folder, each written whole or not at all.

    Like Optuna's ``FileSystemArtifactStore``, except that a file is written
    under a temporary name in the same folder and renamed when complete, so a
    full disk or a killed process never leaves a truncated or empty artifact,
    and that a file gets the folder's read and write bits (:func:`file_mode`):
    whoever may read the folder (a report or dashboard run by another user of
    the group) may read the weights, and nobody else may change them.

    Example::

        store = FolderArtifactStore("weights")
        store.write("a1", io.BytesIO(b"..."))
        data = store.open_reader("a1").read()
    """

    def __init__(self, base_path: str | Path) -> None:
        self._base = Path(base_path)

    def _path(self, artifact_id: str) -> Path:
        path = (self._base / artifact_id).resolve()
        if os.path.isabs(artifact_id) or not path.is_relative_to(self._base.resolve()):
            raise ValueError(f"artifact id {artifact_id!r} points outside the artifact folder {self._base}")
        return path

    def open_reader(self, artifact_id: str) -> BinaryIO:
        try:
            return open(self._path(artifact_id), "rb")
        except FileNotFoundError as e:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in {self._base}") from e

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        target = self._path(artifact_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
        try:
            # mkstemp makes the file private (0600); weights are for whoever may read the folder.
            os.fchmod(fd, file_mode(self._base.stat().st_mode))
            with os.fdopen(fd, "wb") as f:
                shutil.copyfileobj(content_body, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
            raise

    def remove(self, artifact_id: str) -> None:
        try:
            os.remove(self._path(artifact_id))
        except FileNotFoundError as e:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in {self._base}") from e


def file_mode(folder_mode: int) -> int:
    """The mode of a weight file in a folder of mode ``folder_mode``: its read and write bits, never world-writable.

    Example::

        >>> oct(file_mode(0o40775)), oct(file_mode(0o40750)), oct(file_mode(0o40777))
        ('0o664', '0o640', '0o664')
    """
    return folder_mode & 0o666 & ~0o002


class PrefixedArtifactStore:
    """Another artifact store with every key under ``prefix/``: ``s3://bucket/runs/a`` keeps
    artifact ``X`` at key ``runs/a/X`` of the bucket.

    Example::

        store = PrefixedArtifactStore(FolderArtifactStore("weights"), "runs/a")   # or Boto3ArtifactStore("bucket")
    """

    def __init__(self, store: "ArtifactStore", prefix: str) -> None:
        self._store = store
        self.prefix = prefix.strip("/")

    def key(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}"

    def open_reader(self, artifact_id: str) -> BinaryIO:
        return self._store.open_reader(self.key(artifact_id))

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        self._store.write(self.key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self._store.remove(self.key(artifact_id))


class DatabaseArtifactStore:
    """Artifacts as rows of the table ``scaling_optuna_artifacts`` in a SQLAlchemy database.

    The default for PostgreSQL stores: the weights live in the same database
    as the studies, so any machine whose workers reach the store can load any
    trial's model. Each write is one transaction (all of it or nothing); the
    table is created on the first write.

    Example::

        store = DatabaseArtifactStore("sqlite:///scaling-optuna.db")   # or postgresql://me@db/exp: a table of the store
        store.write("a1", io.BytesIO(b"..."))
        data = store.open_reader("a1").read()
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._table_ready = False

    @property
    def _engine(self) -> Any:
        return _engine(self.url)

    def open_reader(self, artifact_id: str) -> BinaryIO:
        import sqlalchemy

        table = _table()
        with self._engine.connect() as conn:
            try:
                row = conn.execute(sqlalchemy.select(table.c.content).where(table.c.artifact_id == artifact_id)).first()
            except sqlalchemy.exc.ProgrammingError as e:
                if _table_missing(conn):
                    raise ArtifactNotFound(f"artifact {artifact_id} is not in the database (no artifact table yet)") from e
                raise
        if row is None:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in the database")
        return io.BytesIO(row[0])

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        import sqlalchemy

        content = content_body.read()
        table = self._ready_table()
        with self._engine.begin() as conn:
            # A retry after a commit whose reply was lost finds its own row: replace it.
            conn.execute(sqlalchemy.delete(table).where(table.c.artifact_id == artifact_id))
            conn.execute(sqlalchemy.insert(table).values(artifact_id=artifact_id, content=content, size=len(content)))

    def remove(self, artifact_id: str) -> None:
        import sqlalchemy

        table = _table()
        with self._engine.connect() as conn:
            try:
                removed = conn.execute(sqlalchemy.delete(table).where(table.c.artifact_id == artifact_id)).rowcount
                conn.commit()
            except sqlalchemy.exc.ProgrammingError as e:
                if _table_missing(conn):
                    raise ArtifactNotFound(f"artifact {artifact_id} is not in the database (no artifact table yet)") from e
                raise
        if not removed:
            raise ArtifactNotFound(f"artifact {artifact_id} is not in the database")

    def artifact_ids(self) -> list[str]:
        """Every artifact id in the table (none before the first write)."""
        import sqlalchemy

        table = _table()
        with self._engine.connect() as conn:
            if _table_missing(conn):
                return []
            return [row[0] for row in conn.execute(sqlalchemy.select(table.c.artifact_id))]

    def _ready_table(self) -> Any:
        import sqlalchemy

        table = _table()
        if not self._table_ready:
            try:
                table.metadata.create_all(self._engine, checkfirst=True)
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                # Two workers created it at the same moment (PostgreSQL reports a duplicate type).
                with self._engine.connect() as conn:
                    if _table_missing(conn):
                        raise
            self._table_ready = True
        return table


@functools.lru_cache(maxsize=None)
def _table() -> Any:
    import sqlalchemy
    from sqlalchemy.dialects import mysql

    return sqlalchemy.Table(
        TABLE,
        sqlalchemy.MetaData(),
        sqlalchemy.Column("artifact_id", sqlalchemy.String(255), primary_key=True),
        # MySQL's plain BLOB stops at 64 KiB; weights are megabytes.
        sqlalchemy.Column("content", sqlalchemy.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb"), nullable=False),
        sqlalchemy.Column("size", sqlalchemy.BigInteger, nullable=False),
        sqlalchemy.Column("created_at", sqlalchemy.DateTime(timezone=True), server_default=sqlalchemy.func.now(), nullable=False),
    )


@functools.lru_cache(maxsize=None)
def _engine(url: str) -> Any:
    """One engine per database and process: every store and every ``best_model`` call shares its pool."""
    import sqlalchemy

    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgres"):
        # A vanished server must end in an error (then a retry), not a read that hangs forever.
        kwargs["connect_args"] = {"connect_timeout": 10}
    try:
        return sqlalchemy.create_engine(url, **kwargs)
    except ImportError as e:
        raise StorageError(f"artifact store {mask_url(url)}: driver missing ({e}); install it with pip") from None
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(f"artifact store URL {mask_url(url)} is malformed ({e}); use postgresql://user@host/db") from None


def _table_missing(conn: Any) -> bool:
    import sqlalchemy

    if conn.in_transaction():
        conn.rollback()  # PostgreSQL refuses every statement of a transaction after an error
    return not sqlalchemy.inspect(conn).has_table(TABLE)


def save_state_dict(trial: optuna.Trial, state_dict: dict[str, torch.Tensor], store: "ArtifactStore") -> str | None:
    """Upload ``state_dict`` as the trial's model; returns the artifact id, or ``None`` if it could not be kept.

    The weights are written first and only then recorded on the trial (the
    ``model_artifact`` user attribute and Optuna's artifact list), so a trial
    never points at weights that are not there; the id they will have is noted
    on the trial before (:data:`UPLOAD_ATTR`), for pruning. A failed write is
    logged as a warning: the trial keeps its result, without weights.
    """
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    buffer.seek(0)
    artifact_id = str(uuid.uuid4())
    storage = trial.storage
    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial.study.study_name), trial.number)
    # The id goes on the trial before the weights go out: a worker that dies mid-upload leaves
    # weights that pruning can still find and remove.
    storage.set_trial_system_attr(trial_id, UPLOAD_ATTR, artifact_id)
    try:
        store.write(artifact_id, buffer)
    except Exception as e:
        _log.warning("weights of trial %d not kept (the trial keeps its result): %s", trial.number, describe_error(e))
        return None
    meta = ArtifactMeta(artifact_id=artifact_id, filename="model.pt", mimetype="application/x-pytorch", encoding=None)
    try:
        storage.set_trial_system_attr(trial_id, DASHBOARD_ATTR_PREFIX + artifact_id, json.dumps(dataclasses.asdict(meta)))
        trial.set_user_attr(ATTR_ARTIFACT, artifact_id)
    except BaseException:
        with contextlib.suppress(Exception):
            store.remove(artifact_id)  # no trial will ever point at it
        raise
    return artifact_id


def load_state_dict(store: "ArtifactStore", artifact_id: str) -> dict[str, torch.Tensor]:
    """Read and load weights; only tensors are accepted (``weights_only=True``).

    Raises:
        ArtifactNotFound: no artifact ``artifact_id`` in ``store``.
    """
    with contextlib.closing(store.open_reader(artifact_id)) as reader:
        content = reader.read()
    return torch.load(io.BytesIO(content), map_location="cpu", weights_only=True)


class WeightPruner:
    """Keeps the weights of a study's best ``keep`` trials and removes every other finished trial's.

    ``rank`` orders complete trials best first; pass the one ranking the report
    uses (``scaling_optuna.experiment.rank_trials``), so that the weights kept
    are those of the trials the report and ``best_model`` pick. The store is
    opened on the first removal (``open_store``): a worker with
    ``keep_models = 0`` opens none unless earlier weights are left to remove.
    Removed ids are remembered, so that each pass removes only what is new.

    Pruning from several workers at once, each on its own view of the study,
    removes no weights it should keep: a trial beyond the best ``keep`` among
    some of the complete trials is beyond them among all of them.

    Example::

        from scaling_optuna.experiment import rank_trials

    store = open_artifact_store(artifact_location(None, "sqlite:///scaling-optuna.db"))
    pruner = WeightPruner(lambda: store, keep=3, rank=rank_trials)
        pruner.prune(study.get_trials(deepcopy=False))
    """

    def __init__(
        self, open_store: Callable[[], "ArtifactStore"], keep: int, rank: Callable[[Iterable[FrozenTrial]], list[FrozenTrial]]
    ) -> None:
        self.keep, self.rank = keep, rank
        self._open_store = open_store
        self._store: ArtifactStore | None = None
        self._gone: set[str] = set()

    def prune(self, trials: Sequence[FrozenTrial]) -> list[str]:
        """Remove the weights of ``trials`` (one study's) beyond the best ``keep``; returns the ids removed."""
        doomed = [a for a in weights_beyond(trials, self.keep, self.rank) if a not in self._gone]
        if not doomed:
            return []
        if self._store is None:
            self._store = self._open_store()
        removed = []
        for artifact_id in doomed:
            try:
                self._store.remove(artifact_id)
                removed.append(artifact_id)
            except (ArtifactNotFound, FileNotFoundError):
                pass  # removed by another worker, or its write never finished
            self._gone.add(artifact_id)
        if removed:
            _log.debug("removed the weights of %d trial(s) beyond the best %d", len(removed), self.keep)
        return removed


def weights_beyond(
    trials: Sequence[FrozenTrial], keep: int, rank: Callable[[Iterable[FrozenTrial]], list[FrozenTrial]]
) -> list[str]:
    """The weights of finished ``trials`` that are not among the ``keep`` best complete trials with weights.

    That is also the weights of trials that did not complete (taken over after
    their upload) and of uploads whose trial never recorded them (the worker
    died in between: the id it was about to write is on the trial). Weights of
    running trials are left alone: their upload may be under way.

    Example::

        >>> weights_beyond([], keep=3, rank=sorted)
        []
    """
    complete = [t for t in trials if t.state == TrialState.COMPLETE and ATTR_ARTIFACT in t.user_attrs]
    kept = {t.user_attrs[ATTR_ARTIFACT] for t in rank(complete)[: max(0, keep)]}
    beyond: list[str] = []
    for trial in trials:
        if not trial.state.is_finished():
            continue
        for artifact_id in (trial.user_attrs.get(ATTR_ARTIFACT), trial.system_attrs.get(UPLOAD_ATTR)):
            if isinstance(artifact_id, str) and artifact_id not in kept and artifact_id not in beyond:
                beyond.append(artifact_id)
    return beyond
