"""A worker's background threads: beat its own trial, and sweep the experiment's studies.

Every interval one thread rewrites the heartbeat of the trial this worker is
running; another sweeps every study of the experiment (not only the one this
worker is busy with) with the sweep the gRPC proxy runs too
(:class:`~scaling_optuna.storages.Sweep`): a trial whose heartbeat has not
changed for the grace period lost its worker, and is ended and re-queued with
the same parameters; a trial failed from outside (optuna-dashboard, Optuna's
API) is replaced. Since every live worker does this, a dead worker's trial
is re-run within the grace period and one interval, whatever the others are
doing. The two never wait for each other, so a slow sweep cannot delay a beat.
Missed beats and failed sweeps are logged and tried again at the next
interval; neither thread dies of a store error.

Example::

    beat = Heartbeat(storage, {240: study}, interval_s=10, grace_s=30, who="host:123")
    beat.start()
    beat.watch(study, trial_number)    # right after claiming a trial
    ...
    beat.watch(None)                   # the trial ended
    beat.close()
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Mapping

import optuna

from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages._shared import HEARTBEAT_ATTR
from scaling_optuna.storages._shared import Sweep
from scaling_optuna.storages._shared import SweepResult
from scaling_optuna.storages._shared import beat_value
from scaling_optuna.storages._shared import describe_error

_log = logging.getLogger("scaling_optuna.worker")


class Heartbeat:
    """Beats the watched trial, and sweeps every study for stale trials, in two daemon threads."""

    def __init__(
        self, storage: RetryingStorage, studies: Mapping[int, optuna.Study], *, interval_s: float, grace_s: float, who: str
    ) -> None:
        # No retries here: a beat or sweep that fails is simply done again at the next interval.
        self.storage = storage.without_retries()
        self.studies = dict(studies)
        self.interval_s, self.who = interval_s, who
        self.sweeper = Sweep(self.storage, grace_s=grace_s, interval_s=interval_s, who=who, log=_log)
        self._ids = {size: storage.get_study_id_from_name(study.study_name) for size, study in self.studies.items()}
        self._watched: tuple[int, int] | None = None  # (study id, trial number)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._missed = 0
        self._threads = [
            threading.Thread(target=self._every_interval, args=(self._beat,), name="heartbeat", daemon=True),
            threading.Thread(target=self._every_interval, args=(self._sweep_quietly,), name="stale-sweep", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def close(self) -> None:
        self._closed.set()
        for thread in self._threads:
            thread.join(timeout=self.interval_s + 5)

    def watch(self, study: optuna.Study | None, number: int | None = None) -> None:
        """Beat trial ``number`` of ``study`` from now on (once at once); ``None`` stops beating."""
        with self._lock:
            self._watched = None if study is None or number is None else (self._id(study), number)
        if self._watched is not None:
            self._beat()

    def sweep(self) -> SweepResult:
        """Sweep every study once (:class:`~scaling_optuna.storages.Sweep`): end stale trials, replace ended ones."""
        result = SweepResult()
        with self._lock:
            mine = self._watched
        for size, study in list(self.studies.items()):
            study_id = self._ids[size]
            try:
                result.add(self.sweeper.study(study_id, study.study_name, size=size, mine=mine[1] if mine and mine[0] == study_id else None))
            except KeyError:
                continue  # the study was deleted: the worker's loop notices and drops it
        return result

    def drop(self, size: int) -> None:
        """Stop watching ``size`` (its study was deleted)."""
        self.studies.pop(size, None)

    def _id(self, study: optuna.Study) -> int:
        return next(self._ids[s] for s, st in self.studies.items() if st is study)

    def _every_interval(self, action: Callable[[], Any]) -> None:
        while not self._closed.wait(self.interval_s):
            action()

    def _sweep_quietly(self) -> None:
        try:
            self.sweep()
        except Exception as e:  # a store outage: the next interval tries again
            # Nobody could beat while the store was away: what was seen before says nothing now.
            self.sweeper.forget()
            _log.debug("stale-trial sweep failed: %s", describe_error(e))

    def _beat(self) -> None:
        with self._lock:
            watched = self._watched
        if watched is None:
            return
        study_id, number = watched
        try:
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, number)
            self.storage.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, beat_value(self.interval_s, self.who))
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # it ended between the watch and the beat
        except Exception as e:
            # A missed beat is harmless; a dead heartbeat thread would get a live trial failed.
            self._missed += 1
            level = logging.WARNING if self._missed == 1 else logging.DEBUG  # once per outage, not every second
            _log.log(
                level, "heartbeat of trial %d not recorded: %s", number, describe_error(e),
                extra={"event": "heartbeat_missed", "trial": number, "worker": self.who},
            )
            return
        if self._missed:
            _log.info(
                "heartbeat of trial %d recorded again after %d missed", number, self._missed,
                extra={"event": "heartbeat_recovered", "trial": number, "worker": self.who, "missed": self._missed},
            )
            self._missed = 0
