"""Pruning decisions without a store round trip per epoch.

``trial.should_prune()`` re-reads every unfinished trial of the study from the
store, at every call: with one worker on SQLite those reads were 45% of a
trial's store time (``benchmarks/store_overhead.py``), and with several workers
they queue for the database with everyone else's writes. The pruners a spec
can name mostly only read the study's finished trials, which change once per
finished trial. So a worker keeps an in-memory copy of them, refreshed at the
start of every trial and at most every ``refresh_s`` seconds during one, and
asks the study's own pruner against that copy. Pruners that write to the store
while they decide (successive halving, Hyperband) keep Optuna's own path.

The decision can differ from Optuna's only by what finished in the last
``refresh_s`` seconds, as it may between any two workers anyway.

Example::

    check = PruneCheck(study)
    check.start()                       # at the start of a trial
    check.report(trial, 0.42, 1)        # the validation loss of epoch 1
    if check.should_prune(trial):
        raise optuna.TrialPruned()
"""

from __future__ import annotations

import datetime
import time
from typing import Callable

import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import pruner_inside

# Long trials (CIFAR-10's take minutes) still see trials that finished meanwhile.
REFRESH_S = 10.0
_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
# Pruners whose decision only reads the study and the trial.
_READ_ONLY = (
    optuna.pruners.NopPruner,
    optuna.pruners.PercentilePruner,  # MedianPruner too
    optuna.pruners.ThresholdPruner,
    optuna.pruners.WilcoxonPruner,
)


def decides_locally(pruner: BasePruner) -> bool:
    """Whether ``pruner`` can decide against a copy of the study (it writes nothing while deciding)."""
    if isinstance(pruner, optuna.pruners.PatientPruner):
        wrapped = pruner_inside(pruner)
        return wrapped is None or decides_locally(wrapped)
    return isinstance(pruner, _READ_ONLY)


class PruneCheck:
    """The study's pruner, asked against an in-memory copy of the study's finished trials."""

    def __init__(self, study: optuna.Study, refresh_s: float = REFRESH_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.study, self.refresh_s, self.clock = study, refresh_s, clock
        self.local = decides_locally(study.pruner)
        self._storage = optuna.storages.InMemoryStorage()
        self._copy_id = self._storage.create_new_study(study.directions, "copy")
        self._copy = optuna.load_study(study_name="copy", storage=self._storage, pruner=study.pruner, sampler=optuna.samplers.RandomSampler())
        self._copied: set[int] = set()
        self._refreshed_at = -float("inf")
        self._reported: dict[int, float] = {}

    def start(self) -> None:
        """Bring the copy up to date; call at the start of every trial."""
        self._reported = {}
        if self.local:
            self._refresh()

    def report(self, trial: optuna.Trial, value: float, step: int) -> None:
        """``trial.report(value, step)``, remembered for the decisions of this trial."""
        trial.report(value, step)
        self._reported[step] = value

    def should_prune(self, trial: optuna.Trial) -> bool:
        """The pruner's decision for ``trial``, from the values reported since ``start``."""
        if not self.local:
            return trial.should_prune()
        if self.clock() - self._refreshed_at >= self.refresh_s:
            self._refresh()
        running = FrozenTrial(
            number=trial.number,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=trial.datetime_start or datetime.datetime.now(),
            datetime_complete=None,
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            user_attrs={},
            system_attrs={},
            intermediate_values=dict(self._reported),
            trial_id=-1 - trial.number,  # not a row of the copy: nothing may be written for it
        )
        return self._copy.pruner.prune(self._copy, running)

    def _refresh(self) -> None:
        for trial in self.study.get_trials(deepcopy=False, states=_FINISHED):
            if trial.number not in self._copied:
                # Straight into the storage: Study.add_trial would reject the enqueued baseline,
                # whose parameters lie outside the search space on purpose.
                self._storage.create_new_trial(self._copy_id, template_trial=trial)
                self._copied.add(trial.number)
        self._refreshed_at = self.clock()
