"""An experiment in the store: one Optuna study per training-set size, and its budget.

Studies are named ``<experiment>-n<size:07d>`` and carry user attributes that
tie them to their experiment (name, size, data fingerprint, spec hash), so any
Optuna tool can read them and scaling-optuna can find them again from the spec
alone. Their one objective is named ``val_loss``.

**Budgets are queued, not counted.** A study's budget (``trials_per_size``) is
kept as that many trials that are queued (WAITING), running, complete or
pruned. Workers only ever claim a queued trial — an atomic step in every
Optuna store — and never create one, so however many workers race, no study
ends over its budget. A trial that fails is replaced by exactly one queued
trial (see :mod:`scaling_optuna.storages._recovery`), and the first queued
trial of every study is the untuned baseline.

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
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import FIXED_PARAMS_ATTR
from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.errors import StorageError
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import load_spec
from scaling_optuna.storages import EXPERIMENT_ATTR
from scaling_optuna.storages import HANDED_BACK
from scaling_optuna.storages import LOST
from scaling_optuna.storages import WITHDRAWN
from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages import check_url
from scaling_optuna.storages import end_trial
from scaling_optuna.storages import ended_reason
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage

if TYPE_CHECKING:
    import torch

    from scaling_optuna.data import Dataset

ATTR_BUDGET = "trials_per_size"
METRIC_NAME = "val_loss"
# Trials that hold a place in a study's budget.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)

_log = logging.getLogger("scaling_optuna.experiment")


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
    best_epoch: int | None = None

    def metric(self, name: str) -> float | None:
        """``test_error``, ``test_loss``, ``n_params`` (or any numeric field) by name."""
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class SizeStatus:
    """Trial counts of one size's study.

    ``failed`` counts trials that ended with an error of their own;
    ``handed_back`` those a stopped worker returned to the queue and ``lost``
    those whose worker vanished (both re-run with the same parameters).
    """

    size: int
    study_name: str
    budget: int
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    handed_back: int = 0
    lost: int = 0
    running: int = 0
    waiting: int = 0

    @property
    def finished(self) -> int:
        return self.complete + self.pruned

    @property
    def remaining(self) -> int:
        return max(0, self.budget - self.finished)


def study_name(experiment: str, size: int) -> str:
    return f"{experiment}-n{size:07d}"


class Experiment:
    """The studies of one experiment in one store. Open it with :func:`load_experiment`."""

    def __init__(self, spec: ExperimentSpec, storage: RetryingStorage, storage_url: str, sizes: Iterable[int]) -> None:
        self.spec = spec
        self.storage = storage
        self.storage_url = storage_url
        self.sizes: list[int] = sorted(sizes)
        self.studies: dict[int, optuna.Study] = {
            size: optuna.load_study(study_name=study_name(spec.name, size), storage=storage) for size in self.sizes
        }

    def __repr__(self) -> str:
        return f"Experiment({self.spec.name!r}, sizes={self.sizes}, storage={mask_url(self.storage_url)!r})"

    def budget(self, size: int) -> int:
        """The size's trial budget as the store has it (set by ``create``, ``run`` or ``worker --trials``)."""
        value = self.studies[size].user_attrs.get(ATTR_BUDGET)
        return int(value) if isinstance(value, int) else self.spec.trials_per_size

    def status(self) -> list[SizeStatus]:
        """Trials complete, pruned, failed, handed back, lost, running and waiting for every size."""
        return [self._status(size) for size in self.sizes]

    def _status(self, size: int) -> SizeStatus:
        counts = dict.fromkeys(("complete", "pruned", "failed", "handed_back", "lost", "running", "waiting"), 0)
        for trial in self.studies[size].get_trials(deepcopy=False):
            kind = trial_kind(trial)
            if kind is not None:
                counts[kind] += 1
        return SizeStatus(size=size, study_name=study_name(self.spec.name, size), budget=self.budget(size), **counts)

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

    def trials(self, size: int, states: tuple[TrialState, ...] = (TrialState.COMPLETE,)) -> list[FrozenTrial]:
        """The size's trials in the given states."""
        return self.studies[size].get_trials(deepcopy=False, states=states)

    def best_model(self, size: int, artifacts: str | None = None) -> "torch.nn.Module":
        """The best trial's trained model for ``size``, in eval mode on the CPU.

        Weights come from the artifact store (default: the spec's ``artifacts``,
        else the store's default location) and are loaded with ``weights_only=True``.

        Raises:
            StorageError: no complete trial yet, or its weights are not in the store.
        """
        from optuna.artifacts.exceptions import ArtifactNotFound

        from scaling_optuna.storages.artifacts import ATTR_ARTIFACT
        from scaling_optuna.storages.artifacts import artifact_location
        from scaling_optuna.storages.artifacts import load_state_dict
        from scaling_optuna.storages.artifacts import open_artifact_store
        from scaling_optuna.model import build_model

        if size not in self.studies:
            raise StorageError(f"size {size} is not one of this experiment's sizes {self.sizes}")
        best = self.best_trial(size)
        if best is None:
            raise StorageError(f"size {size} has no complete trial yet; run a worker first")
        study = self.studies[size]
        trial = next(t for t in study.get_trials(deepcopy=False) if t.number == best.trial_number)
        artifact_id = trial.user_attrs.get(ATTR_ARTIFACT)
        if artifact_id is None:
            raise StorageError(
                f"trial {best.trial_number} of size {size} has no saved weights (it ran with keep_models = 0, "
                "or its weights could not be written); re-run the size to keep them"
            )
        location = artifact_location(artifacts or self.spec.artifacts, self.storage_url)
        try:
            state = load_state_dict(open_artifact_store(location), artifact_id)
        except ArtifactNotFound:
            raise StorageError(
                f"weights {artifact_id} of trial {best.trial_number} (size {size}) are not in {mask_url(location)}; "
                "pass the artifact location the workers wrote to (--artifacts)"
            ) from None
        shape = tuple(study.user_attrs["input_shape"])
        model = build_model(self.spec.model, shape, int(study.user_attrs["num_classes"]), best.params)
        model.load_state_dict(state)
        return model.eval()


def trial_kind(trial: FrozenTrial) -> str | None:
    """Which :class:`SizeStatus` count ``trial`` belongs to (None: a withdrawn placeholder)."""
    if trial.state != TrialState.FAIL:
        return {
            TrialState.COMPLETE: "complete",
            TrialState.PRUNED: "pruned",
            TrialState.RUNNING: "running",
            TrialState.WAITING: "waiting",
        }[trial.state]
    reason = ended_reason(trial)
    return {HANDED_BACK: "handed_back", LOST: "lost", WITHDRAWN: None}.get(reason, "failed") if reason else "failed"


def load_experiment(spec: str | Path | ExperimentSpec, storage: str | None = None) -> Experiment:
    """Open an experiment's studies in ``storage`` (default: the spec's storage).

    Reads the store only (a store on a read-only file system can be read);
    the dataset is not loaded.

    Raises:
        SpecError: the spec is invalid.
        StorageError: the store cannot be opened or holds no study of the experiment.
        ExperimentMismatchError: the stored studies were created from an incompatible spec.
    """
    spec = _as_spec(spec)
    url = storage or spec.storage
    store = open_storage(url, create=False, read_only=True)
    sizes = find_sizes(spec, store)
    if not sizes:
        raise StorageError(
            f"store {mask_url(url)} holds no study of experiment {spec.name!r}; "
            f"run 'scaling-optuna create {spec.path or 'SPEC'} --storage {mask_url(url)}' first"
        )
    return Experiment(spec, store, url, sizes)


def find_sizes(spec: ExperimentSpec, storage: RetryingStorage) -> list[int]:
    """Sizes of the experiment's studies in ``storage``, checking they belong to it and match the spec.

    Raises:
        ExperimentMismatchError: a study has the experiment's name pattern but
            was not created by it, or was created from an incompatible spec.
    """
    sizes = []
    for study in storage.get_all_studies():
        attrs = study.user_attrs
        if attrs.get(EXPERIMENT_ATTR) != spec.name:
            check_not_foreign(spec, study.study_name, attrs)
            continue
        check_compatible(spec, study.study_name, attrs)
        sizes.append(int(attrs["size"]))
    return sorted(sizes)


def check_not_foreign(spec: ExperimentSpec, name: str, attrs: dict[str, Any]) -> None:
    """Refuse a study named like one of this experiment's that this experiment did not create."""
    if re.fullmatch(re.escape(spec.name) + r"-n\d{7}", name) and attrs.get(EXPERIMENT_ATTR) != spec.name:
        raise ExperimentMismatchError(
            f"study {name!r} has the name of one of experiment {spec.name!r}'s studies but was not created by "
            "scaling-optuna for it (it carries no experiment fingerprint); rename the experiment in the spec, "
            "or use another store"
        )


def check_compatible(spec: ExperimentSpec, name: str, attrs: dict[str, Any]) -> None:
    stored = attrs.get("spec_hash")
    if stored != spec.compatibility_hash():
        raise ExperimentMismatchError(
            f"study {name!r} was created from a different spec of experiment {spec.name!r} "
            f"(spec hash {stored}, this spec {spec.compatibility_hash()}): its data, model, search space "
            "or trainer changed; give the experiment a new name or use another store"
        )


def create_experiment(
    spec: str | Path | ExperimentSpec, storage: str | None = None, *, log: logging.Logger | None = None, device: str | None = None
) -> Experiment:
    """Create (or re-open) the experiment's studies, one per size, each with its budget queued.

    Safe to call repeatedly. Loads the dataset to resolve the sizes and
    fingerprint each subset, and checks everything a worker would trip on
    before anything is written. The first queued trial of every new study is
    the untuned default model (``default_params``), so the report can compare
    tuned and untuned curves. A budget that differs from the stored one
    (``trials_per_size``, or ``--trials``) is queued up, or its unstarted
    trials withdrawn. ``device`` is where this process's workers will train
    (``run``), checked here; None (``create``) leaves it to the workers.

    Raises:
        SpecError, DataError: bad spec or data (nothing is written).
        StorageError: the store cannot be opened.
        ExperimentMismatchError: the store holds studies of this name from another spec or data.
    """
    from scaling_optuna.data import load_dataset
    from scaling_optuna.preflight import check_runnable

    spec = _as_spec(spec)
    url = storage or spec.storage
    # Validate everything that can fail before the store is touched, so bad input writes nothing.
    check_url(url)
    data = load_dataset(spec)
    sizes = spec.sizes.resolve(data.pool_size)
    attrs = {size: _study_attrs(spec, data, size) for size in sizes}
    check_runnable(spec, data, device)

    store = open_storage(url, create=True)
    existing = {s.study_name: s.user_attrs for s in store.get_all_studies()}
    for size in sizes:
        name = study_name(spec.name, size)
        if name in existing:
            _check_reopen(spec, name, existing[name], attrs[size]["fingerprint"])
    for size in sizes:
        study = _create_study(spec, store, size, attrs[size])
        if log is not None:
            log.info("study %s ready (%d examples, fingerprint %s)", study.study_name, size, attrs[size]["fingerprint"])
    all_sizes = sorted(set(sizes) | set(find_sizes(spec, store)))
    return Experiment(spec, store, url, all_sizes)


def set_budget(storage: RetryingStorage, study: optuna.Study, budget: int, default_params: dict[str, Any] | None = None) -> None:
    """Queue or withdraw trials so that ``budget`` trials are queued, running or finished.

    The untuned baseline (``default_params``) is queued first in a new study.
    Only unstarted fresh trials are withdrawn (never the baseline, nor a trial
    queued to re-run one that was handed back or lost).
    """
    if study.user_attrs.get(ATTR_BUDGET) != budget:
        study.set_user_attr(ATTR_BUDGET, budget)
    trials = study.get_trials(deepcopy=False)
    held = sum(t.state in BUDGET_STATES for t in trials)
    if default_params and held < budget and not any(t.user_attrs.get("baseline") for t in trials):
        with warnings.catch_warnings():
            # The untuned baseline's widths lie outside the tuned range on purpose.
            warnings.simplefilter("ignore")
            study.enqueue_trial(dict(default_params), user_attrs={"baseline": True})
        held += 1
    for _ in range(budget - held):
        # A plain WAITING trial, not enqueue_trial({}): samplers such as GridSampler take a
        # trial with a (possibly empty) fixed_params attribute for a user's partial enqueue.
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))
    # Counted again, not from ``held``: workers started together with a new --trials each
    # queue what they found missing, and the surplus of that race must go back.
    _withdraw_beyond(storage, study, budget)


def _withdraw_beyond(storage: RetryingStorage, study: optuna.Study, budget: int) -> None:
    """Withdraw the fresh queued trials that rank beyond ``budget`` among the trials it holds.

    Trials rank by (plain, number): the baseline and re-runs of handed-back or
    lost trials first, then plain trials oldest first, so the newest fresh
    trials go and the baseline or a re-run never. A rank that depends on
    nothing a trial's state changes, unlike a count of the surplus, names the
    same trials to every process, also while others withdraw some: processes
    trimming together withdraw the surplus once, never more.
    """

    def plain(t: FrozenTrial) -> bool:
        return not t.system_attrs.get(FIXED_PARAMS_ATTR) and not t.user_attrs.get("baseline")

    held = sorted((t for t in study.get_trials(deepcopy=False) if t.state in BUDGET_STATES), key=lambda t: (plain(t), t.number))
    beyond = [t for t in held[budget:] if t.state == TrialState.WAITING and plain(t)]
    if not beyond:
        return
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in reversed(beyond):
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        # Claimed like any worker claims a trial, so a worker cannot start it meanwhile.
        try:
            claimed = storage.set_trial_state_values(trial_id, TrialState.RUNNING)
        except optuna.exceptions.UpdateFinishedTrialError:
            claimed = False  # another process withdrew it first
        if claimed:
            end_trial(storage, study_id, trial.number, WITHDRAWN, who="budget")


def _study_attrs(spec: ExperimentSpec, data: "Dataset", size: int) -> dict[str, Any]:
    return {
        EXPERIMENT_ATTR: spec.name,
        "size": size,
        "fingerprint": data.fingerprint(size),
        "spec_hash": spec.compatibility_hash(),
        "pool_size": data.pool_size,
        "dataset": spec.data.dataset,
        "model": spec.model,
        "majority_error": data.majority_error(),
        # how many examples every test error was measured on: the report's band for a measured value needs it
        "test_size": int(len(data.y_test)),
        "input_shape": list(data.input_shape),
        "num_classes": data.num_classes,
    }


def _check_reopen(spec: ExperimentSpec, name: str, attrs: dict[str, Any], fingerprint: str) -> None:
    check_not_foreign(spec, name, attrs)
    check_compatible(spec, name, attrs)
    if attrs.get("fingerprint") != fingerprint:
        raise ExperimentMismatchError(
            f"study {name!r} was created from other data (fingerprint {attrs.get('fingerprint')}, "
            f"local data {fingerprint}); use the same dataset files and seed, or a new experiment name"
        )


def _create_study(spec: ExperimentSpec, store: RetryingStorage, size: int, attrs: dict[str, Any]) -> optuna.Study:
    study = optuna.create_study(
        study_name=study_name(spec.name, size), storage=store, direction="minimize", load_if_exists=True
    )
    if study.metric_names != [METRIC_NAME]:
        with warnings.catch_warnings():
            # Metric names have been "experimental" since Optuna 3.2; optuna-dashboard shows them.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC_NAME])
    for key, value in attrs.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)
    set_budget(store, study, spec.trials_per_size, dict(spec.default_params))
    return study


def _as_spec(spec: str | Path | ExperimentSpec) -> ExperimentSpec:
    return spec if isinstance(spec, ExperimentSpec) else load_spec(spec)


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
        best_epoch=attrs.get("best_epoch"),
    )
