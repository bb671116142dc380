"""Trials whose worker is gone: heartbeats, noticing them stale, ending and replacing them once.

Every store (database, journal file, gRPC proxy) gets the same heartbeat: the
worker running a trial rewrites the trial's system attribute
:data:`HEARTBEAT_ATTR` every interval. Any process watching the studies
(every worker, and the proxy) notes when it last saw each running trial's
beat change, on its own monotonic clock, per study: a trial whose beat has not
changed for the grace period is stale. Clocks of two machines are never
compared.

Ending a trial and queuing its replacement must happen exactly once, however
many processes notice it at the same moment and whatever replies get lost on
the way. :func:`end_trial` claims the trial by writing who ends it before
failing it; only the process whose name the failed trial carries queues the
replacement (:func:`queue_replacement`), which looks for an earlier
replacement first, so a repeated call after a lost reply adds nothing.

A trial can also end without any of this: failed by hand in optuna-dashboard,
through Optuna's storage API or by another tool (:func:`ended_outside`: it
carries no end mark), or completed that way with a value but no measurement
(:func:`completed_outside`). Such a trial has no owner, and every watching process may notice it
at the same moment. So a replacement is only queued while the study is short
of its budget, and when two processes queue one at once, the lower-numbered
replacement stands and the other is withdrawn (:func:`superseded`), by the
process that queued it or by the worker that claims it: every process applies
the same rule, so exactly one runs.

Example::

    stale = StaleTrials(grace_s=30)
    for trial in stale.check(study_id, running_trials):
        if end_trial(storage, study_id, trial.number, LOST, who="host:123"):
            queue_replacement(storage, study_id, trial, who="host:123")
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Sequence

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import FAILED_TRIAL_ATTR
from scaling_optuna._optuna import FIXED_PARAMS_ATTR
from scaling_optuna._optuna import RETRY_HISTORY_ATTR
from scaling_optuna.errors import StorageError

HEARTBEAT_INTERVAL_S = 10
# The grace period, in heartbeat intervals, unless one is given.
GRACE_FACTOR = 3
# The study user attribute naming the experiment a study belongs to: stale-trial sweeps
# (workers, the proxy) touch only such studies, never other studies in the same store.
EXPERIMENT_ATTR = "experiment"
HEARTBEAT_ATTR = "scaling_optuna:heartbeat"
ENDED_ATTR = "scaling_optuna:ended"
REPLACES_ATTR = "scaling_optuna:replaces"
# On a replacement: the process that queued it.
QUEUED_BY_ATTR = "scaling_optuna:queued_by"
# The user attribute of a re-measure trial: {"rank": k, "repeat": j}, the slot it fills.
REMEASURE_ATTR = "remeasure"
# Why a trial ended FAIL other than by its own error; status() counts each apart.
HANDED_BACK = "handed back"
LOST = "worker lost"
WITHDRAWN = "withdrawn"
# The study user attribute holding its budget: trials queued, running or finished.
BUDGET_ATTR = "trials_per_size"
# Trials that hold a place in a study's budget.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
# Every trial a worker completes records its test error (a plug-in objective must return one).
MEASURED_ATTR = "test_error"
MAX_RETRY = 3
# A worker writes its first beat right after it claims a trial; a RUNNING trial that never
# got one lost its worker in between. It is given this many grace periods.
SILENT_GRACE_FACTOR = 2

_log = logging.getLogger("scaling_optuna.recovery")


def checked_grace_period(heartbeat_s: int, grace_s: int | None) -> int:
    """The grace period for ``heartbeat_s`` (default three intervals), checked.

    Raises:
        StorageError: not positive, or not longer than the interval (live trials would be failed).
    """
    if int(heartbeat_s) <= 0 or (grace_s is not None and int(grace_s) <= 0):
        raise StorageError(f"heartbeat interval {heartbeat_s} and grace period {grace_s} must be positive whole seconds")
    grace = int(grace_s) if grace_s is not None else GRACE_FACTOR * int(heartbeat_s)
    if grace <= int(heartbeat_s):
        raise StorageError(
            f"grace period {grace} s must be longer than the heartbeat interval {heartbeat_s} s "
            f"(use about {GRACE_FACTOR}×), or live trials would be failed"
        )
    return grace


def beat_value(interval_s: float, who: str) -> list[Any]:
    """What a heartbeat writes: it must differ at every beat (the wall time does)."""
    return [round(time.time(), 3), interval_s, who]


class StaleTrials:
    """Notices running trials whose heartbeat stopped changing, keeping what it saw per study.

    The state is per study: checking the studies of an experiment one after
    the other must not reset what was seen in the others. A beat counts as
    unchanged only over checks no further apart than ``max_gap_s`` (default:
    the grace period), and :meth:`forget` drops everything seen (call it when
    a check failed): while the store was away, nobody could beat, and a
    worker's silence then is no sign that it died.
    """

    def __init__(self, grace_s: float, *, max_gap_s: float | None = None, clock: Any = time.monotonic) -> None:
        self.grace_s, self._clock = grace_s, clock
        self.max_gap_s = grace_s if max_gap_s is None else max_gap_s
        # study id → trial number → (the beat last seen, when it was first seen on our clock)
        self._seen: dict[int, dict[int, tuple[str, float]]] = {}
        self._checked_at: dict[int, float] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Start watching afresh, as after a failed check."""
        with self._lock:
            self._seen.clear()
            self._checked_at.clear()

    def check(self, study_id: int, running: list[FrozenTrial]) -> list[FrozenTrial]:
        """The trials of ``running`` (one study's RUNNING trials) that are stale now."""
        now = self._clock()
        stale = []
        with self._lock:
            watched = now - self._checked_at.get(study_id, -float("inf")) <= self.max_gap_s
            self._checked_at[study_id] = now
            before = self._seen.get(study_id, {}) if watched else {}
            seen: dict[int, tuple[str, float]] = {}
            for trial in running:
                beat = trial.system_attrs.get(HEARTBEAT_ATTR)
                key = repr(beat)
                first = before.get(trial.number)
                since = first[1] if first is not None and first[0] == key else now
                seen[trial.number] = (key, since)
                if now - since > self._limit(beat):
                    stale.append(trial)
            self._seen[study_id] = seen
        return stale

    def _limit(self, beat: Any) -> float:
        if beat is None:
            return SILENT_GRACE_FACTOR * self.grace_s
        # A worker that beats more slowly than our grace expects is given three of its intervals.
        interval = beat[1] if isinstance(beat, list) and len(beat) > 1 and isinstance(beat[1], (int, float)) else 0
        return max(self.grace_s, 3 * float(interval))


def end_trial(storage: BaseStorage, study_id: int, number: int, reason: str, who: str) -> bool:
    """Fail the running trial ``number`` for ``reason``; True when ``who`` must queue its replacement.

    False when the trial had already ended (finished by its worker, or ended
    by another process, which then queues the replacement).
    """
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    try:
        storage.set_trial_system_attr(trial_id, ENDED_ATTR, {"reason": reason, "by": who})
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    try:
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        pass  # ended meanwhile, by its worker or by another process: the re-read below says who
    trial = storage.get_trial(trial_id)
    ended = trial.system_attrs.get(ENDED_ATTR) or {}
    return trial.state == TrialState.FAIL and ended.get("by") == who


def ended_reason(trial: FrozenTrial) -> str | None:
    """Why a FAIL trial was ended by scaling-optuna (handed back, worker lost, withdrawn), or None."""
    ended = trial.system_attrs.get(ENDED_ATTR)
    return ended.get("reason") if isinstance(ended, dict) else None


def ended_outside(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed without scaling-optuna's end mark: by hand, Optuna's API or another tool."""
    return trial.state == TrialState.FAIL and not isinstance(trial.system_attrs.get(ENDED_ATTR), dict)


def completed_outside(trial: FrozenTrial) -> bool:
    """Whether ``trial`` was completed without a worker's measurement: by hand, Optuna's API or another tool.

    optuna-dashboard's "complete" sets a value a user typed; the trial has no
    test error to put on the learning curve and no weights. So it holds no
    place in the budget, and is replaced like a trial failed by hand.
    """
    return trial.state == TrialState.COMPLETE and MEASURED_ATTR not in trial.user_attrs


def holds_place(trial: FrozenTrial) -> bool:
    """Whether ``trial`` holds a place in its study's search budget: queued, running or finished by a worker.

    Re-measure trials (:data:`REMEASURE_ATTR`) hold places of their own beside the search budget.
    """
    return trial.state in BUDGET_STATES and REMEASURE_ATTR not in trial.user_attrs and not completed_outside(trial)


def reruns_params(trial: FrozenTrial) -> bool:
    """Whether a replacement of the failed ``trial`` re-runs its parameters.

    Yes when it was handed back, its worker was lost, or it was ended from
    outside (as a stuck trial failed by hand), and it has parameters to re-run,
    for at most :data:`MAX_RETRY` times; otherwise (after an error of its own,
    say) a fresh trial from the sampler replaces it.
    """
    params = trial.params or trial.system_attrs.get(FIXED_PARAMS_ATTR)
    retries = len(trial.system_attrs.get(RETRY_HISTORY_ATTR, [])) + 1
    return ended_reason(trial) in (HANDED_BACK, LOST, None) and bool(params) and retries <= MAX_RETRY


def replacement_of(trials: Sequence[FrozenTrial], number: int) -> FrozenTrial | None:
    """The trial that replaces trial ``number``: the lowest-numbered one queued for it, if any."""
    return min((t for t in trials if t.system_attrs.get(REPLACES_ATTR) == number), key=lambda t: t.number, default=None)


def superseded(trial: FrozenTrial, trials: Sequence[FrozenTrial]) -> bool:
    """Whether ``trial`` replaces a trial that an earlier-numbered trial already replaces.

    Two processes that notice the same end at once may each queue a
    replacement; the lower-numbered one stands, the other is withdrawn.
    """
    replaces = trial.system_attrs.get(REPLACES_ATTR)
    if replaces is None:
        return False
    first = replacement_of(trials, replaces)
    return first is not None and first.number < trial.number


def short_of_budget(trials: Sequence[FrozenTrial], budget: Any) -> int:
    """How many search trials ``trials`` (one study's) lack for ``budget`` (:func:`holds_place`); 0 when whole or without a budget."""
    if not isinstance(budget, int) or isinstance(budget, bool):
        return 0
    return max(0, budget - sum(map(holds_place, trials)))


def queue_replacement(storage: BaseStorage, study_id: int, failed: FrozenTrial, *, who: str) -> int | None:
    """Queue one WAITING trial in place of ``failed``; its number, or None when this call queued none.

    None when a replacement was queued before (a repeated call after a lost
    reply adds nothing), when the study already holds its budget (it was
    lowered, say), or when another process queued one at the same moment
    (this call's own is then withdrawn). Find the standing one with
    :func:`replacement_of`.

    A trial that was handed back, lost its worker or was ended from outside
    re-runs the same parameters (:func:`reruns_params`), at most
    :data:`MAX_RETRY` times; otherwise, and after that, it is a fresh trial the
    sampler fills in, so the study's budget is kept. The parameters are carried
    as fixed parameters, like ``study.enqueue_trial``: the untuned baseline's
    lie outside the search space on purpose, which
    ``RetryFailedTrialCallback``'s copy would reject. The copy keeps Optuna's
    ``failed_trial`` and ``retry_history`` system attributes, so
    ``RetryFailedTrialCallback.retried_trial_number`` works on it. A
    re-measure trial is replaced by a placeholder of its slot whichever way it
    ended: the worker that claims it resolves its configuration again.
    """
    trials = storage.get_all_trials(study_id, deepcopy=False)
    budget = storage.get_study_user_attrs(study_id).get(BUDGET_ATTR)
    if replacement_of(trials, failed.number) is not None:
        return None
    # a re-measure trial's slot is kept beside the search budget, whichever way it ended
    if budget is not None and REMEASURE_ATTR not in failed.user_attrs and not short_of_budget(trials, budget):
        return None
    trial_id = storage.create_new_trial(study_id, template_trial=_replacement(failed, who))
    number = storage.get_trial_number_from_id(trial_id)
    trials = storage.get_all_trials(study_id, deepcopy=False)
    mine = next(t for t in trials if t.number == number)
    if superseded(mine, trials):
        withdraw(storage, study_id, number, who)
        return None
    return number


def withdraw(storage: BaseStorage, study_id: int, number: int, who: str) -> bool:
    """End the queued trial ``number`` unstarted (claimed first, as a worker claims one); False if it had started."""
    trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, number)
    try:
        claimed = storage.set_trial_state_values(trial_id, TrialState.RUNNING)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    return bool(claimed) and end_trial(storage, study_id, number, WITHDRAWN, who)


def _replacement(failed: FrozenTrial, who: str) -> FrozenTrial:
    system_attrs: dict[str, Any] = {REPLACES_ATTR: failed.number, QUEUED_BY_ATTR: who}
    user_attrs: dict[str, Any] = {}
    if REMEASURE_ATTR in failed.user_attrs:
        # a placeholder of its slot: the worker that claims it resolves the configuration again
        return optuna.trial.create_trial(
            state=TrialState.WAITING, user_attrs={REMEASURE_ATTR: failed.user_attrs[REMEASURE_ATTR]}, system_attrs=system_attrs
        )
    if reruns_params(failed):
        system_attrs[FAILED_TRIAL_ATTR] = failed.system_attrs.get(FAILED_TRIAL_ATTR, failed.number)
        system_attrs[RETRY_HISTORY_ATTR] = [*failed.system_attrs.get(RETRY_HISTORY_ATTR, []), failed.number]
        # Parameters the trial had not suggested yet when it ended stay fixed if they were queued so.
        system_attrs[FIXED_PARAMS_ATTR] = {**failed.system_attrs.get(FIXED_PARAMS_ATTR, {}), **failed.params}
        user_attrs = {k: v for k, v in failed.user_attrs.items() if k == "baseline"}
    elif ended_reason(failed) in (HANDED_BACK, LOST, None) and len(failed.system_attrs.get(RETRY_HISTORY_ATTR, [])) >= MAX_RETRY:
        first = failed.system_attrs.get(FAILED_TRIAL_ATTR, failed.number)
        _log.warning("trial %d ended %d times; a fresh trial takes its place", first, MAX_RETRY + 1)
    return optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=user_attrs, system_attrs=system_attrs)
