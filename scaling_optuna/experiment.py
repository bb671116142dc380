"""An experiment in the store: one Optuna study per training-set size.

Studies are named ``<experiment>-n<size>`` and carry user attributes that tie
them to their experiment (name, size, data fingerprint, spec hash), so any
Optuna tool can read them and scaling-optuna can find them again from the
spec alone.

Example::

    import scaling_optuna

    exp = scaling_optuna.load_experiment("studies/digits.toml", storage="sqlite:///scaling-optuna.db")
    for best in exp.best_trials():
        print(best.size, best.test_error, best.params)
    study = exp.studies[exp.sizes[-1]]   # a plain optuna.Study
"""

from __future__ import annotations

import dataclasses
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.errors import StorageError
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import load_spec
from scaling_optuna.storage import check_url
from scaling_optuna.storage import mask_url
from scaling_optuna.storage import open_storage

if TYPE_CHECKING:
    import torch

# Trials in these states will finish (or already have) and count toward a study's budget.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
ATTR_EXPERIMENT = "experiment"


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One complete trial of one size: what it scored and how it ran.

    ``exp.best_trials()`` gives the best record of every size (by validation
    loss); ``exp.records(size)`` every complete trial of a size.
    """

    size: int
    study_name: str
    trial_number: int
    val_loss: float
    val_error: float | None
    test_loss: float | None
    test_error: float | None
    n_params: int | None
    params: dict[str, Any]
    baseline: bool = False
    epochs_run: int | None = None
    stopped_reason: str | None = None

    def metric(self, name: str) -> float | None:
        """``test_error``, ``test_loss``, ``n_params`` (or any numeric field) by name."""
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class SizeStatus:
    """Trial counts of one size's study."""

    size: int
    study_name: str
    budget: int
    complete: int
    pruned: int
    failed: int
    running: int
    waiting: int

    @property
    def counted(self) -> int:
        return self.complete + self.pruned + self.running + self.waiting

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.counted)

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


def study_name(experiment: str, size: int) -> str:
    return f"{experiment}-n{size:07d}"


class Experiment:
    """The studies of one experiment in one store. Open it with :func:`load_experiment`."""

    def __init__(self, spec: ExperimentSpec, storage: BaseStorage, storage_url: str, sizes: Iterable[int]) -> None:
        self.spec = spec
        self.storage = storage
        self.storage_url = storage_url
        self.sizes: list[int] = sorted(sizes)
        self.studies: dict[int, optuna.Study] = {
            size: optuna.load_study(study_name=study_name(spec.name, size), storage=storage)
            for size in self.sizes
        }

    def __repr__(self) -> str:
        return f"Experiment({self.spec.name!r}, sizes={self.sizes}, storage={mask_url(self.storage_url)!r})"

    def status(self) -> list[SizeStatus]:
        """Trials complete, pruned, failed, running and waiting for every size."""
        rows = []
        for size in self.sizes:
            study = self.studies[size]
            counts = {state: 0 for state in TrialState}
            for trial in study.get_trials(deepcopy=False):
                counts[trial.state] += 1
            rows.append(
                SizeStatus(
                    size=size,
                    study_name=study.study_name,
                    budget=self.spec.trials_per_size,
                    complete=counts[TrialState.COMPLETE],
                    pruned=counts[TrialState.PRUNED],
                    failed=counts[TrialState.FAIL],
                    running=counts[TrialState.RUNNING],
                    waiting=counts[TrialState.WAITING],
                )
            )
        return rows

    def records(self, size: int) -> list[TrialRecord]:
        """Every complete trial of ``size``, best (lowest validation loss) first."""
        study = self.studies[size]
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        records = [_record(size, study.study_name, t) for t in complete]
        return sorted(records, key=lambda r: (r.val_loss, r.trial_number))

    def best_trial(self, size: int) -> TrialRecord | None:
        """The size's best complete trial by validation loss, or ``None`` if none finished."""
        records = self.records(size)
        return records[0] if records else None

    def best_trials(self) -> list[TrialRecord]:
        """The best trial of every size that has one, smallest size first."""
        return [b for b in (self.best_trial(size) for size in self.sizes) if b is not None]

    def best_model(self, size: int, artifacts: str | None = None) -> "torch.nn.Module":
        """The best trial's trained model for ``size``, in eval mode on the CPU.

        Weights come from the artifact store (default: the spec's ``artifacts``,
        else the folder beside a SQLite store) and are loaded with ``weights_only=True``.

        Raises:
            StorageError: no complete trial yet, or its weights are not in the store.
        """
        from optuna.artifacts.exceptions import ArtifactNotFound

        from scaling_optuna.artifacts import ATTR_ARTIFACT
        from scaling_optuna.artifacts import artifact_location
        from scaling_optuna.artifacts import load_state_dict
        from scaling_optuna.artifacts import open_artifact_store
        from scaling_optuna.model import build_model

        if size not in self.studies:
            raise StorageError(f"size {size} is not one of this experiment's sizes {self.sizes}")
        best = self.best_trial(size)
        if best is None:
            raise StorageError(f"size {size} has no complete trial yet; run a worker first")
        study = self.studies[size]
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == best.trial_number)
        artifact_id = trial.user_attrs.get(ATTR_ARTIFACT)
        location = artifact_location(artifacts or self.spec.artifacts, self.storage_url)
        if artifact_id is None:
            raise StorageError(f"trial {best.trial_number} of size {size} has no saved weights (it ran with keep_models = 0, or before weights were kept); re-run the size to keep them")
        try:
            state = load_state_dict(open_artifact_store(location), artifact_id)
        except ArtifactNotFound:
            raise StorageError(
                f"weights {artifact_id} of trial {best.trial_number} (size {size}) are not in {location}; "
                "pass the artifact folder the workers wrote to (--artifacts)"
            ) from None
        shape = tuple(study.user_attrs["input_shape"])
        model = build_model(self.spec.model, shape, int(study.user_attrs["num_classes"]), best.params)
        model.load_state_dict(state)
        return model.eval()

    def trials(self, size: int, states: tuple[TrialState, ...] = (TrialState.COMPLETE,)) -> list[FrozenTrial]:
        """The size's trials in the given states."""
        return self.studies[size].get_trials(deepcopy=False, states=states)


def load_experiment(spec_path: str | Path | ExperimentSpec, storage: str | None = None) -> Experiment:
    """Open an experiment's studies in ``storage`` (default: the spec's storage).

    Reads the store only: the dataset is not loaded.

    Raises:
        SpecError: the spec is invalid.
        StorageError: the store cannot be opened or holds no study of the experiment.
        ExperimentMismatchError: the stored studies were created from an incompatible spec.
    """
    spec = spec_path if isinstance(spec_path, ExperimentSpec) else load_spec(spec_path)
    url = storage or spec.storage
    store = open_storage(url, create=False, heartbeat_interval=None)
    sizes = find_sizes(spec, store)
    if not sizes:
        raise StorageError(
            f"store {mask_url(url)} holds no study of experiment {spec.name!r}; "
            f"run 'scaling-optuna create {spec.path or 'SPEC'} --storage {mask_url(url)}' first"
        )
    return Experiment(spec, store, url, sizes)


def find_sizes(spec: ExperimentSpec, storage: BaseStorage) -> list[int]:
    """Sizes of the experiment's studies in ``storage``, checking they match the spec."""
    sizes = []
    for study in storage.get_all_studies():
        attrs = study.user_attrs
        if attrs.get(ATTR_EXPERIMENT) != spec.name:
            continue
        check_compatible(spec, study.study_name, attrs)
        sizes.append(int(attrs["size"]))
    return sorted(sizes)


def check_compatible(spec: ExperimentSpec, name: str, attrs: dict[str, Any]) -> None:
    stored = attrs.get("spec_hash")
    if stored is not None and stored != spec.compatibility_hash():
        raise ExperimentMismatchError(
            f"study {name!r} was created from a different spec of experiment {spec.name!r} "
            f"(spec hash {stored}, this spec {spec.compatibility_hash()}): its data, model, search space "
            "or trainer changed; give the experiment a new name or use another store"
        )


def create_experiment(
    spec: ExperimentSpec, storage: str | None = None, *, log: logging.Logger | None = None, device: str | None = None
) -> Experiment:
    """Create (or re-open) the experiment's studies, one per size; safe to call repeatedly.

    Loads the dataset to resolve the sizes and fingerprint each subset. The
    first trial of every new study is the seed's untuned default model
    (``default_params``), so the report can compare tuned and untuned curves.
    ``device``: where this process's workers will train (``run``), checked
    here; None (``create``) leaves it to the workers.
    """
    from scaling_optuna.data import load_dataset
    from scaling_optuna.preflight import check_runnable

    url = storage or spec.storage
    # Validate everything that can fail before the store is touched, so bad input writes nothing.
    check_url(url)
    data = load_dataset(spec)
    sizes = spec.sizes.resolve(data.pool_size)
    fingerprints = {size: data.fingerprint(size) for size in sizes}
    majority_error = data.majority_error()
    check_runnable(spec, data, device)

    store = open_storage(url, create=True, heartbeat_interval=None)
    existing = {s.study_name: s for s in store.get_all_studies()}
    for size in sizes:
        name = study_name(spec.name, size)
        if name in existing:
            attrs = existing[name].user_attrs
            check_compatible(spec, name, attrs)
            if attrs.get("fingerprint") not in (None, fingerprints[size]):
                raise ExperimentMismatchError(
                    f"study {name!r} was created from other data (fingerprint {attrs['fingerprint']}, "
                    f"local data {fingerprints[size]}); use the same dataset files and seed, or a new experiment name"
                )
    for size in sizes:
        name = study_name(spec.name, size)
        study = optuna.create_study(study_name=name, storage=store, direction="minimize", load_if_exists=True)
        attrs = {
            ATTR_EXPERIMENT: spec.name,
            "size": size,
            "fingerprint": fingerprints[size],
            "spec_hash": spec.compatibility_hash(),
            "pool_size": data.pool_size,
            "dataset": spec.data.dataset,
            "model": spec.model,
            "majority_error": majority_error,
            "input_shape": list(data.input_shape),
            "num_classes": data.num_classes,
        }
        for key, value in attrs.items():
            if study.user_attrs.get(key) != value:
                study.set_user_attr(key, value)
        if spec.default_params and not study.user_attrs.get("baseline_enqueued"):
            study.set_user_attr("baseline_enqueued", True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                study.enqueue_trial(dict(spec.default_params), user_attrs={"baseline": True})
        if log is not None:
            log.info("study %s ready (%d examples, fingerprint %s)", name, size, fingerprints[size])
    all_sizes = sorted(set(sizes) | set(find_sizes(spec, store)))
    return Experiment(spec, store, url, all_sizes)


def _record(size: int, name: str, trial: FrozenTrial) -> TrialRecord:
    attrs = trial.user_attrs
    return TrialRecord(
        size=size,
        study_name=name,
        trial_number=trial.number,
        val_loss=float(trial.value),
        val_error=attrs.get("val_error"),
        test_loss=attrs.get("test_loss"),
        test_error=attrs.get("test_error"),
        n_params=attrs.get("n_params"),
        params=dict(trial.params),
        baseline=bool(attrs.get("baseline", False)),
        epochs_run=attrs.get("epochs_run"),
        stopped_reason=attrs.get("stopped_reason"),
    )
