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

Example::

    stale = StaleTrials(grace_s=30)
    for trial in stale.check(study_id, running_trials):
        if end_trial(storage, study_id, trial.number, LOST, who="host:123"):
            queue_replacement(study, trial)
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna._optuna import FAILED_TRIAL_ATTR
from scaling_optuna._optuna import FIXED_PARAMS_ATTR
from scaling_optuna._optuna import RETRY_HISTORY_ATTR

HEARTBEAT_ATTR = "scaling_optuna:heartbeat"
ENDED_ATTR = "scaling_optuna:ended"
REPLACES_ATTR = "scaling_optuna:replaces"
# Why a trial ended FAIL other than by its own error; status() counts each apart.
HANDED_BACK = "handed back"
LOST = "worker lost"
WITHDRAWN = "withdrawn"
MAX_RETRY = 3
# A worker writes its first beat right after it claims a trial; a RUNNING trial that never
# got one lost its worker in between. It is given this many grace periods.
SILENT_GRACE_FACTOR = 2

_log = logging.getLogger("scaling_optuna.recovery")


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


def queue_replacement(study: optuna.Study, failed: FrozenTrial, *, same_params: bool = True) -> bool:
    """Queue one WAITING trial in place of ``failed``; False when one was queued before.

    With ``same_params`` (a trial whose worker was lost or handed it back) the
    replacement re-runs the same parameters, at most :data:`MAX_RETRY` times;
    otherwise (and after that) it is a fresh trial the sampler fills in, so the
    study's budget is kept. The parameters are carried as fixed parameters,
    like ``study.enqueue_trial``: the untuned baseline's lie outside the search
    space on purpose, which ``RetryFailedTrialCallback``'s copy would reject.
    The copy keeps Optuna's ``failed_trial`` and ``retry_history`` system
    attributes, so ``RetryFailedTrialCallback.retried_trial_number`` works on it.
    """
    for other in study.get_trials(deepcopy=False):
        if other.system_attrs.get(REPLACES_ATTR) == failed.number:
            return False
    history = [*failed.system_attrs.get(RETRY_HISTORY_ATTR, []), failed.number]
    system_attrs: dict[str, Any] = {REPLACES_ATTR: failed.number}
    user_attrs: dict[str, Any] = {}
    if same_params and len(history) <= MAX_RETRY:
        system_attrs[FAILED_TRIAL_ATTR] = failed.system_attrs.get(FAILED_TRIAL_ATTR, failed.number)
        system_attrs[RETRY_HISTORY_ATTR] = history
        # Parameters the trial had not suggested yet when it ended stay fixed if they were queued so.
        system_attrs[FIXED_PARAMS_ATTR] = {**failed.system_attrs.get(FIXED_PARAMS_ATTR, {}), **failed.params}
        user_attrs = {k: v for k, v in failed.user_attrs.items() if k == "baseline"}
    else:
        if same_params:
            _log.warning("trial %d ended %d times; a fresh trial takes its place", history[0], len(history))
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, user_attrs=user_attrs, system_attrs=system_attrs))
    return True
