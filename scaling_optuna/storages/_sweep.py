"""The sweep every worker and the gRPC proxy run each heartbeat interval over an experiment's studies.

One pass over one study does three things, each at most once however many
processes sweep at the same moment:

- a RUNNING trial whose heartbeat stopped for the grace period lost its
  worker: it is ended (:func:`~scaling_optuna.storages._recovery.end_trial`)
  and re-queued with the same parameters;
- a queued trial that failed *outside* scaling-optuna (by hand in
  optuna-dashboard, through Optuna's storage API, by another tool), or was
  completed that way without a measurement, has nobody to replace it: it is
  replaced at once, while the study is short of its budget;
- a trial that a process ended but did not live to replace (it died in
  between), or a running one failed from outside whose worker did not notice
  (it died too), is replaced once it has been seen so for the grace period,
  which leaves the process that ended it, or the worker that ran it, the time
  to do it itself and say so.

Each replacement is logged once, by the process whose replacement stands,
with what happened and who can tell more (the worker that ran the trial, or
the tools that end trials from outside).

Example::

    sweep = Sweep(storage, grace_s=30, interval_s=10, who="host:123", log=logging.getLogger("w"))
    result = sweep.study(study_id, "digits-n0000240", size=240)
    print(result.queued, result.pending)
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any, Callable

from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import RETRY_HISTORY_ATTR
from scaling_optuna.storages._recovery import BUDGET_ATTR
from scaling_optuna.storages._recovery import ENDED_ATTR
from scaling_optuna.storages._recovery import HEARTBEAT_ATTR
from scaling_optuna.storages._recovery import LOST
from scaling_optuna.storages._recovery import REMEASURE_ATTR
from scaling_optuna.storages._recovery import REPLACES_ATTR
from scaling_optuna.storages._recovery import WITHDRAWN
from scaling_optuna.storages._recovery import StaleTrials
from scaling_optuna.storages._recovery import completed_outside
from scaling_optuna.storages._recovery import end_trial
from scaling_optuna.storages._recovery import ended_outside
from scaling_optuna.storages._recovery import ended_reason
from scaling_optuna.storages._recovery import queue_replacement
from scaling_optuna.storages._recovery import replacement_of
from scaling_optuna.storages._recovery import reruns_params
from scaling_optuna.storages._recovery import short_of_budget

OUTSIDE = "optuna-dashboard, Optuna's storage API or another tool"


@dataclasses.dataclass
class SweepResult:
    """What one pass did: replacements ``queued``, and ended trials ``pending`` their grace period."""

    queued: int = 0
    pending: int = 0

    def add(self, other: SweepResult) -> None:
        self.queued += other.queued
        self.pending += other.pending


class Sweep:
    """Ends the trials of dead workers and replaces trials ended without a replacement, study by study.

    What it saw is kept per study, on this process's monotonic clock (see
    :class:`~scaling_optuna.storages._recovery.StaleTrials`); :meth:`forget`
    drops it after a failed pass. Passes from several threads of one process
    run one at a time.
    """

    def __init__(
        self, storage: BaseStorage, *, grace_s: float, interval_s: float, who: str, log: logging.Logger,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage, self.grace_s, self.who, self._log, self._clock = storage, grace_s, who, log, clock
        # A sweep runs every interval; a longer gap (a slow store) restarts the watch.
        self.stale = StaleTrials(grace_s, max_gap_s=2 * interval_s + grace_s / 2, clock=clock)
        self._unreplaced_since: dict[tuple[int, int], float] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Start watching afresh: nobody could beat or replace while the store was away."""
        with self._lock:
            self.stale.forget()
            self._unreplaced_since.clear()

    def study(self, study_id: int, name: str, *, size: Any = None, mine: int | None = None) -> SweepResult:
        """One pass over study ``study_id``; ``mine`` is the trial this process runs (never ended here)."""
        with self._lock:
            result = SweepResult()
            trials = self.storage.get_all_trials(study_id, deepcopy=False)
            running = [t for t in trials if t.state == TrialState.RUNNING]
            lost = [t for t in self.stale.check(study_id, running) if t.number != mine]
            for trial in lost:
                result.queued += self._end_lost(study_id, name, size, trial)
            if lost:
                trials = self.storage.get_all_trials(study_id, deepcopy=False)
            result.add(self._replace_ended(study_id, name, size, trials))
            return result

    def _end_lost(self, study_id: int, name: str, size: Any, trial: FrozenTrial) -> int:
        if not end_trial(self.storage, study_id, trial.number, LOST, self.who):
            return 0
        ended = self.storage.get_trial(self.storage.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        queued = queue_replacement(self.storage, study_id, ended, who=self.who)
        owner = _ran_by(trial) or "a worker"
        self._log.warning(
            "%s: %s stopped beating for %.0f s; ended it, %s", _where(name, size, trial.number), owner, self.stale.grace_s,
            self._what_replaces(study_id, trial.number, queued),
            extra=self._fields(name, size, trial.number, "trial_lost", lost_worker=owner, replaced_by=queued),
        )
        return int(queued is not None)

    def _replace_ended(self, study_id: int, name: str, size: Any, trials: list[FrozenTrial]) -> SweepResult:
        """Replace the failed trials that have none, oldest first, while the study is short of its budget."""
        unreplaced = _unreplaced(trials)
        # The budget is read only when there is something to replace: most passes find nothing.
        short = short_of_budget(trials, self.storage.get_study_user_attrs(study_id).get(BUDGET_ATTR)) if unreplaced else 0
        search = [t for t in unreplaced if REMEASURE_ATTR not in t.user_attrs][:short]
        # a re-measure trial's slot stands beside the search budget: it is always filled again
        eligible = sorted(search + [t for t in unreplaced if REMEASURE_ATTR in t.user_attrs], key=lambda t: t.number)
        now, result = self._clock(), SweepResult()
        waiting = {}
        for trial in eligible:
            key = (study_id, trial.number)
            waiting[key] = self._unreplaced_since.get(key, now)
            # The process that ended a trial replaces it, and the worker of a running trial failed from
            # outside notices at its next epoch: each is given the grace period to do it.
            has_owner = not _outside(trial) or _ran_by(trial) is not None
            if has_owner and now - waiting[key] <= self.grace_s:
                result.pending += 1
                continue
            queued = queue_replacement(self.storage, study_id, trial, who=self.who)
            if queued is not None:
                self._log_replaced(name, size, trial, queued)
                result.queued += 1
        self._unreplaced_since = {k: v for k, v in self._unreplaced_since.items() if k[0] != study_id} | waiting
        return result

    def _log_replaced(self, name: str, size: Any, trial: FrozenTrial, queued: int) -> None:
        how = "with the same parameters" if reruns_params(trial) else "a fresh trial"
        if _outside(trial):
            ran = _ran_by(trial)
            how_ended = "failed" if trial.state == TrialState.FAIL else "completed, without a measurement,"
            what = f"was {how_ended} outside scaling-optuna ({OUTSIDE}) while " + (f"running on {ran}" if ran else "queued")
            event = "trial_ended_outside"
        else:
            ended = trial.system_attrs.get(ENDED_ATTR) or {}
            what = f"was ended ({ended.get('reason')}) by {ended.get('by')}, which queued no replacement"
            event = "replacement_queued"
        self._log.warning(
            "%s %s; queued trial %d in its place, %s", _where(name, size, trial.number), what, queued, how,
            extra=self._fields(name, size, trial.number, event, replaced_by=queued),
        )

    def _what_replaces(self, study_id: int, number: int, queued: int | None) -> str:
        standing = replacement_of(self.storage.get_all_trials(study_id, deepcopy=False), number)
        if standing is None:
            return "its study holds its budget, so nothing re-runs it"
        how = "with the same parameters" if RETRY_HISTORY_ATTR in standing.system_attrs else "as a fresh trial"
        return f"queued trial {standing.number} to re-run it {how}" if queued is not None else f"trial {standing.number} re-runs it {how}"

    def _fields(self, name: str, size: Any, number: int, event: str, **more: Any) -> dict[str, Any]:
        return {"event": event, "study": name, "size": size, "trial": number, "worker": self.who, **more}


def _unreplaced(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The failed (or completed-outside) trials of ``trials`` (one study's) that no trial replaces, withdrawn placeholders aside."""
    replaced = {t.system_attrs.get(REPLACES_ATTR) for t in trials}
    ended = (t for t in trials if (t.state == TrialState.FAIL and ended_reason(t) != WITHDRAWN) or completed_outside(t))
    return [t for t in ended if t.number not in replaced]


def _outside(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was ended outside scaling-optuna: failed, or completed without a measurement."""
    return ended_outside(trial) or completed_outside(trial)


def _where(name: str, size: Any, number: int) -> str:
    return f"size {size} trial {number}" if size is not None else f"trial {number} of {name}"


def _ran_by(trial: FrozenTrial) -> str | None:
    """Who ran ``trial``: its heartbeat's writer, else the worker it records."""
    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
    if isinstance(beat, list) and len(beat) > 2:
        return str(beat[2])
    worker = trial.user_attrs.get("worker")
    return str(worker) if worker else None
