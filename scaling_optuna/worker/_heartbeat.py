"""A worker's background threads: beat its own trial, and re-queue the trials of dead workers.

Every interval one thread rewrites the heartbeat of the trial this worker is
running; another looks at the running trials of every study of the experiment
(not only the one this worker is busy with): a trial whose heartbeat has not
changed for the grace period lost its worker, and is ended and re-queued with
the same parameters. Since every live worker does this, a dead worker's trial
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
from optuna.trial import TrialState

from scaling_optuna.storages import HEARTBEAT_ATTR
from scaling_optuna.storages import LOST
from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages import StaleTrials
from scaling_optuna.storages import beat_value
from scaling_optuna.storages import describe_error
from scaling_optuna.storages import end_trial
from scaling_optuna.storages import queue_replacement

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
        # A sweep runs every interval; a longer gap (a slow store) restarts the watch.
        self.stale = StaleTrials(grace_s, max_gap_s=2 * interval_s + grace_s / 2)
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

    def sweep(self) -> int:
        """End and re-queue the stale trials of every study; how many were re-queued."""
        requeued = 0
        for size, study in self.studies.items():
            study_id = self._ids[size]
            running = self.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
            with self._lock:
                mine = self._watched
            for trial in self.stale.check(study_id, running):
                if mine == (study_id, trial.number):
                    continue  # our own trial, beating late because the store was slow
                if end_trial(self.storage, study_id, trial.number, LOST, self.who):
                    queue_replacement(study, trial)
                    requeued += 1
                    beat = trial.system_attrs.get(HEARTBEAT_ATTR)
                    owner = beat[2] if isinstance(beat, list) and len(beat) > 2 else "a worker"
                    _log.warning(
                        "trial %d of size %d: %s stopped beating for %.0f s; ended and queued to re-run",
                        trial.number, size, owner, self.stale.grace_s,
                        extra={"event": "trial_lost", "size": size, "trial": trial.number, "lost_worker": owner},
                    )
        return requeued

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
            self.stale.forget()
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
