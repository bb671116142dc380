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
trial of every study is the untuned baseline. Besides its search budget, a
study queues the placeholders of its re-measured configurations
(:mod:`scaling_optuna.remeasure`), which workers claim once the search is done.

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
import math
import statistics
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import FIXED_PARAMS_ATTR
from scaling_optuna.errors import ExperimentMismatchError
from scaling_optuna.errors import SpecError
from scaling_optuna.errors import StorageError
from scaling_optuna.errors import UnknownSizeError
from scaling_optuna.identity import PLUGINS_ATTR
from scaling_optuna.identity import Survey
from scaling_optuna.identity import check_reopen
from scaling_optuna.identity import commit
from scaling_optuna.identity import find_sizes
from scaling_optuna.identity import is_whole
from scaling_optuna.identity import study_attrs
from scaling_optuna.identity import study_name
from scaling_optuna.identity import survey
from scaling_optuna.identity import write_identity
from scaling_optuna.remeasure import REMEASURE_OF_ATTR
from scaling_optuna.remeasure import configuration_groups
from scaling_optuna.remeasure import is_remeasure
from scaling_optuna.remeasure import set_placeholders
from scaling_optuna.remeasure import slots
from scaling_optuna.remeasure import stored_setting
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import RemeasureSpec
from scaling_optuna.spec import check_queued_trials
from scaling_optuna.spec import load_spec
from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages import check_url
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import BUDGET_ATTR
from scaling_optuna.storages._shared import BUDGET_STATES
from scaling_optuna.storages._shared import HANDED_BACK
from scaling_optuna.storages._shared import HEARTBEAT_ATTR
from scaling_optuna.storages._shared import LOST
from scaling_optuna.storages._shared import REPLACES_ATTR
from scaling_optuna.storages._shared import WITHDRAWN
from scaling_optuna.storages._shared import completed_outside
from scaling_optuna.storages._shared import end_trial
from scaling_optuna.storages._shared import ended_reason
from scaling_optuna.storages._shared import holds_place
from scaling_optuna.storages._shared import withdraw

if TYPE_CHECKING:
    import torch

__all__ = [
    "ATTR_BUDGET", "BUDGET_STATES", "METRIC_NAME", "PLUGINS_ATTR", "Configuration", "CreationStopped", "Experiment",
    "SizeStatus", "TrialCounts", "TrialRecord", "check_budget", "check_plugins", "create_experiment", "find_sizes",
    "load_experiment", "rank_trials", "set_budget", "study_name", "trial_kind",
]
ATTR_BUDGET = BUDGET_ATTR
METRIC_NAME = "val_loss"

_log = logging.getLogger("scaling_optuna.experiment")


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One complete trial of one size, or one configuration over its runs: what it scored and how it ran.

    ``exp.records(size)`` gives every complete trial of a size (``runs`` 1; a
    re-run names the trial it repeats in ``remeasure_of``).
    ``exp.best_trials()`` gives the chosen configuration of every size, its
    ``val_loss``, ``val_error``, ``test_loss`` and ``test_error`` the means over
    its ``runs`` with the standard deviations beside them (None for one run),
    ``trial_number`` its original run.
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
    remeasure_of: int | None = None
    runs: int = 1
    val_loss_sd: float | None = None
    test_error_sd: float | None = None
    test_loss_sd: float | None = None

    def metric(self, name: str) -> float | None:
        """``test_error``, ``test_loss``, ``n_params`` (or any numeric field) by name."""
        return getattr(self, name)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrialCounts:
    """How many trials are in each state (:func:`trial_kind`): one size's, or summed over several.

    ``failed`` counts trials that ended with an error of their own;
    ``handed_back`` those a stopped worker returned to the queue and ``lost``
    those whose worker vanished (both re-run with the same parameters).

    Example::

        >>> TrialCounts(complete=3, pruned=1) + TrialCounts(complete=2, running=1)
        TrialCounts(complete=5, pruned=1, failed=0, handed_back=0, lost=0, running=1, waiting=0)
    """

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    handed_back: int = 0
    lost: int = 0
    running: int = 0
    waiting: int = 0

    @classmethod
    def kinds(cls) -> tuple[str, ...]:
        """The counted kinds, as :func:`trial_kind` names them."""
        return tuple(f.name for f in dataclasses.fields(TrialCounts))

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial]) -> "TrialCounts":
        counts = dict.fromkeys(cls.kinds(), 0)
        for kind in filter(None, map(trial_kind, trials)):
            counts[kind] += 1
        return TrialCounts(**counts)

    def counts(self) -> "TrialCounts":
        """Just the counts (of a :class:`SizeStatus`, say)."""
        return TrialCounts(**{k: getattr(self, k) for k in self.kinds()})

    def __add__(self, other: "TrialCounts") -> "TrialCounts":
        return TrialCounts(**{k: getattr(self, k) + getattr(other, k) for k in self.kinds()})

    @property
    def finished(self) -> int:
        return self.complete + self.pruned


@dataclasses.dataclass(frozen=True)
class SizeStatus(TrialCounts):
    """Trial counts of one size's study (:class:`TrialCounts`), with its budget.

    ``budget`` is the search's; ``repeats`` the re-runs of its best
    configurations planned besides (``repeats_finished`` of them finished);
    the counts hold search trials and re-runs alike.
    """

    size: int
    study_name: str
    budget: int
    repeats: int = 0
    repeats_finished: int = 0

    @property
    def total(self) -> int:
        """The study's trials: its search budget and its planned re-runs."""
        return self.budget + self.repeats

    @property
    def remaining(self) -> int:
        """Search trials and re-runs that must still finish."""
        return max(0, self.total - self.finished)


@dataclasses.dataclass(frozen=True)
class Configuration:
    """One parameter set of a size's search with all its complete runs: the original and its re-runs.

    ``val_loss``, ``test_error`` and ``test_loss`` are means over ``runs``,
    each ``_sd`` the sample standard deviation (None for one run).
    ``remeasured`` says whether a re-run has finished.

    Example::

        for config in exp.configurations(exp.sizes[-1]):
            print(config.trial_number, config.n_runs, config.test_error, config.test_error_sd)
    """

    size: int
    trial_number: int
    params: dict[str, Any]
    baseline: bool
    runs: tuple[TrialRecord, ...]
    val_loss: float
    val_loss_sd: float | None
    test_error: float | None
    test_error_sd: float | None
    test_loss: float | None
    test_loss_sd: float | None

    @classmethod
    def of(cls, original: TrialRecord, runs: Iterable[TrialRecord]) -> "Configuration":
        runs = tuple(runs)
        val = _mean_sd([r.val_loss for r in runs])
        error, loss = _mean_sd([r.test_error for r in runs]), _mean_sd([r.test_loss for r in runs])
        return cls(
            size=original.size, trial_number=original.trial_number, params=original.params, baseline=original.baseline,
            runs=runs, val_loss=val[0] if val[0] is not None else original.val_loss, val_loss_sd=val[1],
            test_error=error[0], test_error_sd=error[1], test_loss=loss[0], test_loss_sd=loss[1],
        )

    @property
    def n_runs(self) -> int:
        return len(self.runs)

    @property
    def remeasured(self) -> bool:
        return any(r.remeasure_of is not None for r in self.runs)

    def record(self) -> TrialRecord:
        """The configuration as one record: its original run with the means and spreads over its runs."""
        original = next(r for r in self.runs if r.trial_number == self.trial_number)
        return dataclasses.replace(
            original, val_loss=self.val_loss, val_error=_mean_sd([r.val_error for r in self.runs])[0],
            test_error=self.test_error, test_loss=self.test_loss, runs=self.n_runs,
            val_loss_sd=self.val_loss_sd, test_error_sd=self.test_error_sd, test_loss_sd=self.test_loss_sd,
        )


def _mean_sd(values: Iterable[Any]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation of the finite numbers among ``values`` (sd None below two)."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


class Experiment:
    """The studies of one experiment in one store. Open it with :func:`load_experiment`.

    Every method taking a size, and ``studies[size]``, raises
    :class:`~scaling_optuna.errors.UnknownSizeError` for a size that is not
    one of :attr:`sizes`.
    """

    def __init__(self, spec: ExperimentSpec, storage: RetryingStorage, storage_url: str, sizes: Iterable[int]) -> None:
        self.spec = spec
        self.storage = storage
        self.storage_url = storage_url
        self.sizes: list[int] = sorted(sizes)
        self.studies: dict[int, optuna.Study] = _Studies(
            (size, optuna.load_study(study_name=study_name(spec.name, size), storage=storage)) for size in self.sizes
        )

    def __repr__(self) -> str:
        return f"Experiment({self.spec.name!r}, sizes={self.sizes}, storage={mask_url(self.storage_url)!r})"

    def _study(self, size: int) -> optuna.Study:
        """The size's study: every method taking a size asks here, so a wrong one reads the same everywhere.

        Raises:
            UnknownSizeError: ``size`` is not one of the experiment's sizes.
        """
        try:
            return dict.__getitem__(self.studies, size)
        except (KeyError, TypeError):  # TypeError: unhashable, a list of sizes say
            raise _unknown_size(size, self.sizes) from None

    def budget(self, size: int) -> int:
        """The size's trial budget as the store has it (set by ``create``, ``run`` or ``worker --trials``)."""
        value = self._study(size).user_attrs.get(ATTR_BUDGET)
        return int(value) if isinstance(value, int) else self.spec.trials_per_size

    def status(self) -> list[SizeStatus]:
        """Trials complete, pruned, failed, handed back, lost, running and waiting for every size.

        A size whose study was deleted from the store meanwhile (optuna-dashboard can) is left out.
        """
        rows = []
        for size in self.sizes:
            try:
                rows.append(self._status(size))
            except KeyError:
                continue
        return rows

    def _status(self, size: int) -> SizeStatus:
        trials = self._study(size).get_trials(deepcopy=False)
        budget, setting = self.budget(size), self.remeasure_setting(size)
        return SizeStatus(
            size=size, study_name=study_name(self.spec.name, size), budget=budget, **vars(TrialCounts.of(trials)),
            repeats=len(slots(setting, budget, trials)),
            repeats_finished=sum(is_remeasure(t) and t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials),
        )

    def remeasure_setting(self, size: int) -> RemeasureSpec:
        """How the size's best configurations are re-measured, as the store has it (``repeats`` 0: not at all)."""
        return stored_setting(self._study(size).user_attrs)

    def records(self, size: int) -> list[TrialRecord]:
        """Every complete trial of ``size`` (re-runs included), best (lowest validation loss) first."""
        study = self._study(size)
        return [_record(size, study.study_name, t) for t in rank_trials(study.get_trials(deepcopy=False))]

    def configurations(self, size: int) -> list[Configuration]:
        """The size's configurations with their runs, the chosen one first.

        The chosen configuration is, among those re-measured, the one with the
        lowest mean validation loss over its runs; before any re-run finished,
        the best single run. The re-measured follow by mean validation loss,
        then the others by theirs.
        """
        study = self._study(size)
        # the measured trials only (rank_trials): one completed by hand has no test error to show
        groups = configuration_groups(rank_trials(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))))
        configs = [
            Configuration.of(_record(size, study.study_name, original), [_record(size, study.study_name, t) for t in runs])
            for original, runs in groups
        ]
        return sorted(configs, key=lambda c: (not c.remeasured, c.val_loss, c.trial_number))

    def best_trial(self, size: int) -> TrialRecord | None:
        """The size's chosen configuration as one record (means over its runs), or ``None`` if no trial finished.

        See :meth:`configurations` for how it is chosen.
        """
        configs = self.configurations(size)
        return configs[0].record() if configs else None

    def best_trials(self) -> list[TrialRecord]:
        """The chosen configuration of every size that has one, smallest size first."""
        return [b for b in (self.best_trial(size) for size in self.sizes) if b is not None]

    def trials(self, size: int, states: tuple[TrialState, ...] = (TrialState.COMPLETE,)) -> list[FrozenTrial]:
        """The size's trials in the given states."""
        return self._study(size).get_trials(deepcopy=False, states=states)

    def best_model(self, size: int, artifacts: str | None = None) -> "torch.nn.Module":
        """The chosen configuration's trained model for ``size``, in eval mode on the CPU.

        Of the configuration's runs that kept weights, the one with the lowest
        validation loss. Weights come from the artifact store (default: the
        spec's ``artifacts``, else the store's default location) and are loaded
        with ``weights_only=True``. A ``[model] builder`` model is rebuilt
        through the builder (imported as the workers import it), the user's
        network being its ``net``.

        Raises:
            UnknownSizeError: ``size`` is not one of the experiment's sizes.
            StorageError: no complete trial yet, or its weights are not in the store.
        """
        from optuna.artifacts.exceptions import ArtifactNotFound

        from scaling_optuna.storages.artifacts import ATTR_ARTIFACT
        from scaling_optuna.storages.artifacts import artifact_location
        from scaling_optuna.storages.artifacts import load_state_dict
        from scaling_optuna.storages.artifacts import open_artifact_store
        from scaling_optuna.model import build_model
        from scaling_optuna.plugins import load_plugin

        study = self._study(size)
        configs = self.configurations(size)
        if not configs:
            raise StorageError(f"size {size} has no complete trial yet; run a worker first")
        best, trial = _run_with_weights(study, configs[0], ATTR_ARTIFACT)
        artifact_id = trial.user_attrs.get(ATTR_ARTIFACT)
        if artifact_id is None:
            raise StorageError(
                f"trial {best.trial_number} of size {size} has no saved weights (it ran with keep_models = 0, "
                "its weights could not be written, or its objective built its own model); re-run the size to keep them"
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
        builder = load_plugin(self.spec.builder, key="model.builder", search_path=self.spec.python_path) if self.spec.builder else None
        model = build_model(self.spec.model, shape, int(study.user_attrs["num_classes"]), best.params, builder=builder)
        model.load_state_dict(state)
        return model.eval()


class _Studies(dict[int, optuna.Study]):
    """An experiment's studies by size: a plain dict, except that a size not among them is named as such.

    ``exp.studies[123]`` then raises the same :class:`UnknownSizeError` as
    ``exp.records(123)`` and every other method taking a size.
    """

    def __getitem__(self, size: Any) -> optuna.Study:
        try:
            return super().__getitem__(size)
        except (KeyError, TypeError):  # TypeError: unhashable, a list of sizes say
            raise _unknown_size(size, sorted(self)) from None


def _unknown_size(size: Any, sizes: list[int]) -> UnknownSizeError:
    return UnknownSizeError(f"size {size!r} is not one of this experiment's sizes {sizes}")


def rank_trials(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The complete trials a worker measured among ``trials`` (one study's), best first.

    Best is the lowest validation loss, the earlier trial on a tie. A trial
    completed by hand (optuna-dashboard's "complete", Optuna's storage API) has
    no test error to put on the learning curve, and no weights, so it is left
    out. This is the one ranking of trials: the report's best trial per size,
    ``best_model`` and the weights workers keep (``keep_models``) all follow it.

    Example::

        >>> measured = {"test_error": 0.2}
        >>> trials = [optuna.trial.create_trial(value=v, user_attrs=measured) for v in (0.3, 0.1, 0.3)]
        >>> trials.append(optuna.trial.create_trial(value=0.05))   # completed by hand
        >>> for number, trial in enumerate(trials):
        ...     trial.number = number
        >>> [t.number for t in rank_trials(trials)]
        [1, 0, 2]
    """
    measured = (t for t in trials if t.state == TrialState.COMPLETE and not completed_outside(t))
    return sorted(measured, key=lambda t: (t.value, t.number))


def _run_with_weights(study: optuna.Study, config: Configuration, attr: str) -> tuple[TrialRecord, FrozenTrial]:
    """The configuration's run with the lowest validation loss that kept weights (else its best run) and its trial."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    runs = sorted(config.runs, key=lambda r: (r.val_loss, r.trial_number))
    best = next((r for r in runs if attr in by_number[r.trial_number].user_attrs), runs[0])
    return best, by_number[best.trial_number]


def trial_kind(trial: FrozenTrial) -> str | None:
    """Which :class:`SizeStatus` count ``trial`` belongs to (None: a withdrawn placeholder, or one completed outside)."""
    if completed_outside(trial):
        return None  # no measurement: it is replaced, and counted as its replacement
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
    the dataset is not loaded. Studies whose creation was cut off are left
    out until ``create`` finishes them.

    Raises:
        SpecError: the spec is invalid.
        StorageError: the store cannot be opened or holds no study of the experiment.
        ExperimentMismatchError: the stored studies were created from an incompatible spec.
    """
    spec = _as_spec(spec)
    url = storage or spec.storage
    store = open_storage(url, create=False, read_only=True)
    found = survey(spec, store)
    if not found.ready:
        begun = " was cut off before any study was whole" if found.interrupted else ""
        raise StorageError(
            f"store {mask_url(url)} holds no study of experiment {spec.name!r}{' (its creation' + begun + ')' if begun else ''}; "
            f"run 'scaling-optuna create {spec.path or 'SPEC'} --storage {mask_url(url)}' first"
        )
    return Experiment(spec, store, url, found.sizes())


class CreationStopped(Exception):
    """:func:`create_experiment` was stopped (its ``stop`` event set) before every study was whole.

    The studies made whole so far are usable; the next ``create`` finishes the rest.
    """

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"stopped after {done} of {total} studies")
        self.done, self.total = done, total


# Called as progress(studies done, studies in all, trials queued so far) during create_experiment.
CreationProgress = Callable[[int, int, int], None]


def create_experiment(
    spec: str | Path | ExperimentSpec,
    storage: str | None = None,
    *,
    log: logging.Logger | None = None,
    device: str | None = None,
    workers: int = 1,
    artifacts: str | None = None,
    stop: threading.Event | None = None,
    progress: CreationProgress | None = None,
    allow_lower_budget: bool = False,
) -> Experiment:
    """Create (or re-open) the experiment's studies, one per size, each with its budget queued.

    Safe to call repeatedly, and to cut off anywhere: a study becomes visible
    to workers and readers only once its identity and budget are written
    (see :mod:`scaling_optuna.identity`), and the next call finishes what an
    interrupted one began. Loads the dataset to resolve the sizes and
    fingerprint each subset, and checks everything a worker would trip on
    before anything is written. The first queued trial of every new study is
    the untuned default model (``default_params``), so the report can compare
    tuned and untuned curves. A budget that differs from the stored one
    (``trials_per_size``, or ``--trials``) is queued up, or its unstarted
    trials withdrawn.

    Args:
        device: where this process's ``workers`` will train (``run``), checked
            here with the memory the largest model needs; None (``create``)
            leaves the device to the workers and checks the memory of this machine.
        artifacts: where the workers keep trained weights (default: the spec's);
            a folder that cannot be written is refused.
        stop: when set, creation stops before the next study (or queued trial)
            and raises :class:`CreationStopped`.
        progress: called as ``progress(studies done, studies, trials queued)``
            before the first study, then after every study and every queued trial.
        allow_lower_budget: set a budget below the trials a study has already
            finished (refused otherwise, and nothing is written).

    Raises:
        SpecError, DataError: bad spec or data, or a budget below what is finished (nothing is written).
        StorageError: the store cannot be opened.
        ExperimentMismatchError: the store holds studies of this name from another spec or data.
        CreationStopped: ``stop`` was set.
    """
    spec = _as_spec(spec)
    url = storage or spec.storage
    sizes, attrs = _prepare(spec, url, device=device, workers=workers, artifacts=artifacts)
    store = open_storage(url, create=True)
    _check_stored(spec, store, survey(spec, store), sizes, attrs, allow_lower_budget=allow_lower_budget)
    _create_studies(spec, store, sizes, attrs, log=log, stop=stop, progress=progress)
    return Experiment(spec, store, url, sorted(set(sizes) | set(find_sizes(spec, store))))


def _check_stored(
    spec: ExperimentSpec,
    store: RetryingStorage,
    found: Survey,
    sizes: list[int],
    attrs: dict[int, dict[str, Any]],
    *,
    allow_lower_budget: bool,
) -> None:
    """Refuse, before anything is written, what the store holds that this creation must not change.

    That is a study of another spec, data or plug-in version, or one that finished more trials than the new budget.
    """
    for size in sizes:
        name = study_name(spec.name, size)
        stored = found.ready.get(name, found.interrupted.get(name, {}))
        check_reopen(spec, name, stored, attrs[size]["fingerprint"])
        if stored:
            check_plugins(name, stored.get(PLUGINS_ATTR), attrs[size].get(PLUGINS_ATTR, {}))
    check_budget(store, [n for n in map(lambda size: study_name(spec.name, size), sizes) if n in found.ready], spec.trials_per_size,
                 allow_lower=allow_lower_budget)


def _create_studies(
    spec: ExperimentSpec,
    store: RetryingStorage,
    sizes: list[int],
    attrs: dict[int, dict[str, Any]],
    *,
    log: logging.Logger | None,
    stop: threading.Event | None,
    progress: CreationProgress | None,
) -> None:
    """Make every size's study whole, in order, telling ``progress`` after each study and each queued trial.

    Raises:
        CreationStopped: ``stop`` was set before a study (or one of its queued trials).
    """
    count = {"done": 0, "queued": 0}

    def tell(queued: int = 0) -> None:
        count["queued"] += queued
        if progress is not None:
            progress(count["done"], len(sizes), count["queued"])

    tell()
    for size in sizes:
        study = None if stop is not None and stop.is_set() else _create_study(spec, store, size, attrs[size], stop, lambda: tell(1))
        if study is None:
            raise CreationStopped(count["done"], len(sizes))
        count["done"] += 1
        tell()
        if log is not None:
            log.info("study %s ready (%d examples, fingerprint %s)", study.study_name, size, attrs[size]["fingerprint"])


def _prepare(
    spec: ExperimentSpec, url: str, *, device: str | None, workers: int, artifacts: str | None
) -> tuple[list[int], dict[int, dict[str, Any]]]:
    """Everything ``create`` checks before it touches the store: the sizes and each study's identity."""
    from scaling_optuna.data import load_dataset
    from scaling_optuna.plugins import load_plugins
    from scaling_optuna.preflight import check_runnable
    from scaling_optuna.storages.artifacts import artifact_location
    from scaling_optuna.storages.artifacts import check_artifact_location

    check_url(url)
    data = load_dataset(spec)
    sizes = spec.sizes.resolve(data.pool_size)
    check_queued_trials(len(sizes), spec.trials_per_size + spec.remeasure.trials(spec.trials_per_size))
    plugins = {key: p.fingerprint() for key, p in load_plugins(spec.plugin_paths, spec.python_path).items()}
    attrs = {size: study_attrs(spec, data, size, plugins) for size in sizes}
    check_runnable(spec, data, device, workers=workers)
    if spec.keep_models > 0:
        check_artifact_location(artifact_location(artifacts or spec.artifacts, url))
    return sizes, attrs


def check_plugins(name: str, stored: Any, local: dict[str, dict[str, Any]]) -> None:
    """Refuse plug-ins of another version than the ones study ``name`` was created with.

    ``stored`` is the study's ``plugins`` attribute (absent: an experiment
    without plug-ins, or one created before they existed), ``local`` what
    this process imported (``Plugin.fingerprint`` by spec key).

    Raises:
        ExperimentMismatchError: a plug-in's module or package version differs.
    """
    for key, here in local.items():
        there = (stored or {}).get(key)
        if there is not None and there != here:
            raise ExperimentMismatchError(
                f"{key}: this machine has {here['module']} at {here['version'] or 'no version'} but study {name!r} "
                f"was created with {there['module']} at {there['version'] or 'no version'}; install that version here "
                "(every worker must run the same code), or give the experiment a new name"
            )


def check_budget(storage: RetryingStorage, names: Iterable[str], budget: int, *, allow_lower: bool = False) -> None:
    """Refuse to change the budget of studies ``names`` to ``budget`` where that is below what they finished.

    A study keeps the trials it finished whatever its budget, so such a budget
    would say the study is done while its count says otherwise; ``allow_lower``
    sets it all the same. A study whose budget is ``budget`` already passes.

    Raises:
        SpecError: ``budget`` is below the complete and pruned trials of a study (the largest named).
    """
    if allow_lower:
        return
    over: list[tuple[int, str, Any]] = []
    for name in names:
        study_id = storage.get_study_id_from_name(name)
        stored = storage.get_study_user_attrs(study_id).get(BUDGET_ATTR)
        if stored != budget:
            done = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            finished = sum(not is_remeasure(t) for t in done)  # re-runs hold places beside the search budget
            if finished > budget:
                over.append((finished, name, stored))
    if over:
        finished, name, stored = max(over)
        raise SpecError(
            f"a budget of {budget} trials per size is below the {finished} trials study {name!r} has already finished, "
            f"so the budget stays {stored if stored is not None else 'as it is'}; pass --trials {finished} or more (or set trials_per_size), "
            "or add --allow-lower-budget (allow_lower_budget=True in Python) to set it anyway"
        )


def set_budget(
    storage: RetryingStorage,
    study: optuna.Study,
    budget: int,
    default_params: dict[str, Any] | None = None,
    remeasure: RemeasureSpec | None = None,
    *,
    stop: threading.Event | None = None,
    on_queued: Callable[[], None] | None = None,
) -> bool:
    """Queue or withdraw trials so that ``budget`` search trials are queued, running or finished.

    The untuned baseline (``default_params``) is queued first in a new study.
    Only unstarted fresh trials are withdrawn (never the baseline, nor a trial
    queued to re-run one that was handed back or lost), and a second baseline
    that a process creating the study at the same time queued. Then the
    re-measure placeholders are queued or withdrawn to match ``remeasure``
    (default: the setting the study has stored) and the new budget. Returns
    False when ``stop`` was set before the budget was queued (the next call
    queues the rest); ``on_queued`` is called after every trial queued.
    """
    if study.user_attrs.get(ATTR_BUDGET) != budget:
        study.set_user_attr(ATTR_BUDGET, budget)
    trials = study.get_trials(deepcopy=False)
    held = sum(map(holds_place, trials))
    if default_params and held < budget and not any(t.user_attrs.get("baseline") for t in trials):
        with warnings.catch_warnings():
            # The untuned baseline's widths lie outside the tuned range on purpose.
            warnings.simplefilter("ignore")
            study.enqueue_trial(dict(default_params), user_attrs={"baseline": True})
        held += 1
        if on_queued is not None:
            on_queued()
    for _ in range(budget - held):
        if stop is not None and stop.is_set():
            return False
        # A plain WAITING trial, not enqueue_trial({}): samplers such as GridSampler take a
        # trial with a (possibly empty) fixed_params attribute for a user's partial enqueue.
        study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING))
        if on_queued is not None:
            on_queued()
    # Counted again, not from ``held``: workers started together with a new --trials each
    # queue what they found missing, and the surplus of that race must go back.
    _withdraw_beyond(storage, study, budget)
    set_placeholders(storage, study, budget, remeasure)
    return True


def _withdraw_beyond(storage: RetryingStorage, study: optuna.Study, budget: int) -> None:
    """Withdraw the fresh queued trials that rank beyond ``budget`` among the trials it holds, and spare baselines.

    Trials rank by (plain, number): the baseline and re-runs of handed-back or
    lost trials first, then plain trials oldest first, so the newest fresh
    trials go and the baseline or a re-run never. A rank that depends on
    nothing a trial's state changes, unlike a count of the surplus, names the
    same trials to every process, also while others withdraw some: processes
    trimming together withdraw the surplus once, never more. The same holds
    for the baselines: the oldest is kept, later queued ones go.
    """
    trials = study.get_trials(deepcopy=False)
    spare = _spare_baselines(trials)
    held = sorted(
        (t for t in trials if holds_place(t) and t.number not in spare),
        key=lambda t: (_plain(t), t.number),
    )
    beyond = [t.number for t in held[budget:] if t.state == TrialState.WAITING and _plain(t)]
    queued_spares = [t.number for t in trials if t.number in spare and t.state == TrialState.WAITING]
    if beyond or queued_spares:
        study_id = storage.get_study_id_from_name(study.study_name)
        for number in [*reversed(beyond), *queued_spares]:
            # Claimed like any worker claims a trial, so a worker cannot start it meanwhile (nor another process withdraw it).
            withdraw(storage, study_id, number, who="budget")


def _finish_withdrawals(storage: RetryingStorage, study: optuna.Study) -> None:
    """End the trials of a study not yet whole that a creation claimed to withdraw and did not live to end.

    No worker runs a trial of a study that is not whole (workers see whole studies only),
    so a RUNNING trial there is a withdrawal that was cut off; one that beats is left
    alone all the same, in case the study became whole since it was read.
    """
    running = [
        t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if HEARTBEAT_ATTR not in t.system_attrs
    ]
    if running:
        study_id = storage.get_study_id_from_name(study.study_name)
        for trial in running:
            end_trial(storage, study_id, trial.number, WITHDRAWN, who="budget")


def _plain(trial: FrozenTrial) -> bool:
    return not trial.system_attrs.get(FIXED_PARAMS_ATTR) and not trial.user_attrs.get("baseline")


def _spare_baselines(trials: list[FrozenTrial]) -> set[int]:
    """Baselines queued after the study's first one: two processes that create a study at once each queue one.

    Whatever their state: one that another process is withdrawing is RUNNING for a moment, and
    counting it then would shift the rank of every trial after it (and withdraw one too many).
    """
    fresh = sorted(t.number for t in trials if t.user_attrs.get("baseline") and REPLACES_ATTR not in t.system_attrs)
    return set(fresh[1:])


def _create_study(
    spec: ExperimentSpec, store: RetryingStorage, size: int, attrs: dict[str, Any],
    stop: threading.Event | None, on_queued: Callable[[], None],
) -> optuna.Study | None:
    """Create (or finish, or re-open) one size's study; None when ``stop`` cut it off (it is not whole yet)."""
    study = optuna.create_study(
        study_name=study_name(spec.name, size), storage=store, direction="minimize", load_if_exists=True
    )
    if study.metric_names != [METRIC_NAME]:
        with warnings.catch_warnings():
            # Metric names have been "experimental" since Optuna 3.2; optuna-dashboard shows them.
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names([METRIC_NAME])
    write_identity(study, attrs)
    if not is_whole(spec, study.user_attrs):
        _finish_withdrawals(store, study)
    if not set_budget(store, study, spec.trials_per_size, dict(spec.default_params), spec.remeasure, stop=stop, on_queued=on_queued):
        return None
    commit(study, spec.name)
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
        remeasure_of=attrs.get(REMEASURE_OF_ATTR),
    )
