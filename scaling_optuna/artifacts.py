"""Keeping the trained weights of the best trials, through Optuna's artifact store.

Each complete trial uploads its best epoch's ``state_dict`` (tensors only, never a
pickled module) and records the artifact id in its ``model_artifact`` user
attribute. After each upload, only the ``keep`` best trials of the study keep
their weights, so disks do not fill. Weights are read back with
``torch.load(..., weights_only=True)``.

Example::

    store = open_artifact_store("scaling-optuna-artifacts")
    artifact_id = save_state_dict(trial, model.state_dict(), store)
    state = load_state_dict(store, artifact_id)
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import optuna
import torch
from optuna.artifacts import FileSystemArtifactStore
from optuna.artifacts import download_artifact
from optuna.artifacts import upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import TrialState

from scaling_optuna.errors import StorageError

ATTR_ARTIFACT = "model_artifact"
ARTIFACTS_ENV = "SCALING_OPTUNA_ARTIFACTS"
DEFAULT_KEEP = 3
_log = logging.getLogger(__name__)


def artifact_location(configured: str | None, storage_url: str) -> str:
    """Where weights go: ``configured``, else ``$SCALING_OPTUNA_ARTIFACTS``, else beside a
    file store, else ``./scaling-optuna-artifacts``.

    A SQLite or journal store ``path/x.db`` keeps its weights in ``path/x.db-artifacts``,
    so one experiment's files stay together. Workers on several machines need a
    shared folder or ``s3://…``, given with ``artifacts =`` in the spec or ``--artifacts``.
    """
    if configured or os.environ.get(ARTIFACTS_ENV):
        return configured or os.environ[ARTIFACTS_ENV]
    scheme, _, rest = storage_url.partition(":///")
    if scheme.startswith(("sqlite", "journal")) and rest and rest != ":memory:":
        return rest + "-artifacts"
    return "scaling-optuna-artifacts"


def open_artifact_store(location: str) -> "optuna.artifacts._protocol.ArtifactStore":
    """A folder (local or shared) or ``s3://bucket/prefix`` (needs boto3)."""
    if location.startswith("s3://"):
        bucket, _, _prefix = location[5:].partition("/")
        try:
            from optuna.artifacts import Boto3ArtifactStore

            return Boto3ArtifactStore(bucket)
        except ImportError:
            raise StorageError("artifact store s3:// needs boto3; pip install boto3") from None
    path = Path(location)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError(f"cannot create the artifact folder {path}: {e.strerror}; pass a writable --artifacts folder") from None
    if not os.access(path, os.W_OK):
        raise StorageError(f"artifact folder {path} is not writable; pass a writable --artifacts folder")
    return FileSystemArtifactStore(path)


def save_state_dict(trial: optuna.Trial, state_dict: dict[str, torch.Tensor], store) -> str:
    """Upload ``state_dict`` as the trial's model; returns the artifact id."""
    fd, tmp = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    try:
        torch.save(state_dict, tmp)
        artifact_id = upload_artifact(artifact_store=store, file_path=tmp, study_or_trial=trial, mimetype="application/x-pytorch")
    finally:
        os.unlink(tmp)
    trial.set_user_attr(ATTR_ARTIFACT, artifact_id)
    return artifact_id


def load_state_dict(store, artifact_id: str) -> dict[str, torch.Tensor]:
    """Download and load weights; only tensors are accepted (``weights_only=True``)."""
    fd, tmp = tempfile.mkstemp(suffix=".pt")
    os.close(fd)
    os.unlink(tmp)  # download_artifact refuses to overwrite an existing file
    try:
        download_artifact(artifact_store=store, file_path=tmp, artifact_id=artifact_id)
        return torch.load(tmp, map_location="cpu", weights_only=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def prune_models(study: optuna.Study, store, keep: int = DEFAULT_KEEP) -> list[str]:
    """Remove the weights of all but the ``keep`` best complete trials; returns removed ids."""
    complete = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if ATTR_ARTIFACT in t.user_attrs
    ]
    complete.sort(key=lambda t: t.value)
    removed = []
    for trial in complete[keep:]:
        artifact_id = trial.user_attrs[ATTR_ARTIFACT]
        try:
            store.remove(artifact_id)
            removed.append(artifact_id)
        except (ArtifactNotFound, FileNotFoundError):
            pass  # already removed by this or another worker
    if removed:
        _log.debug("removed %d model artifacts of %s", len(removed), study.study_name)
    return removed
