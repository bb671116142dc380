"""The worker's loop: claim a queued trial, train it, settle how it ended, repeat.

Each round claims one queued trial of the study with the most remaining work
(queued trials × examples), which shortens the makespan; trains it; and
settles its :class:`~scaling_optuna.worker._objective.Outcome` in the store:

========================  ==================================================
outcome                   what the store gets
========================  ==================================================
complete / pruned         ``study.tell`` with the value or the pruned state
failed (its own error)    ended FAIL with the error, a fresh trial queued
handed back               ended FAIL "handed back", the same parameters queued
taken over                nothing: another process ended it as lost while this
                          one could not reach the store, and queued its re-run
========================  ==================================================

A store that stops answering is retried with backoff for ``outage_limit_s``;
a stop request (SIGTERM, Ctrl-C) ends the loop after the running trial is
handed back. A worker with nothing left to claim waits while trials of other
workers run, so that the last one alive re-runs the trial of a worker that died.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
from typing import Any, Mapping

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.errors import DataError
from scaling_optuna.errors import StorageError
from scaling_optuna.errors import WorkerError
from scaling_optuna.experiment import ATTR_BUDGET
from scaling_optuna.experiment import BUDGET_STATES
from scaling_optuna.experiment import set_budget
from scaling_optuna.identity import study_name
from scaling_optuna.identity import survey
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.storages import ENDED_ATTR
from scaling_optuna.storages import HANDED_BACK
from scaling_optuna.storages import LOST
from scaling_optuna.storages import REPLACES_ATTR
from scaling_optuna.storages import WITHDRAWN
from scaling_optuna.storages import ended_reason
from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages import backoff
from scaling_optuna.storages import call_with_retries
from scaling_optuna.storages import describe_error
from scaling_optuna.storages import end_trial
from scaling_optuna.storages import is_transient
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import queue_replacement
from scaling_optuna.worker._heartbeat import Heartbeat
from scaling_optuna.worker._objective import STOP_REQUESTED
from scaling_optuna.worker._objective import TAKEN_OVER
from scaling_optuna.worker._objective import Outcome
from scaling_optuna.worker._objective import TrialRunner
from scaling_optuna.worker.pruning import PruneCheck

MAX_CONSECUTIVE_FAILURES = 5
# How long a worker keeps retrying a store it lost before it gives up.
OUTAGE_LIMIT_S = 600
# How long a stopping worker still tries to hand its trial back.
STOPPING_LIMIT_S = 5
# How often a worker with nothing left to claim looks at the store again.
WAIT_POLL_S = 1.0

_log = logging.getLogger("scaling_optuna.worker")


@dataclasses.dataclass
class WorkerSummary:
    """What one worker did."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    handed_back: int = 0
    taken_over: int = 0
    stopped_by_signal: bool = False

    @property
    def trials(self) -> int:
        return self.complete + self.pruned + self.failed + self.handed_back + self.taken_over


@dataclasses.dataclass(frozen=True)
class _Size:
    size: int
    study: optuna.Study
    study_id: int
    prune_check: PruneCheck


@dataclasses.dataclass(frozen=True)
class _Claimed:
    trial: optuna.Trial
    trial_id: int


class Worker:
    """One worker process's view of an experiment; :meth:`run` pulls trials until no budget is left."""

    def __init__(
        self,
        spec: ExperimentSpec,
        storage: RetryingStorage,
        url: str,
        runner: TrialRunner,
        *,
        stop: threading.Event,
        heartbeat_interval: float,
        grace_s: float,
        outage_limit_s: float = OUTAGE_LIMIT_S,
        seed_offset: int = 0,
        who: str | None = None,
        stop_deadline_s: float | None = None,
    ) -> None:
        self.spec, self.storage, self.url, self.runner, self.stop = spec, storage, url, runner, stop
        self.stop_deadline_s = stop_deadline_s
        self._training: tuple[_Size, _Claimed] | None = None
        self.who = who or f"{socket.gethostname()}:{os.getpid()}"
        self.sizes = _open_sizes(spec, storage, seed_offset)
        self.heartbeat = Heartbeat(
            storage, {s.size: s.study for s in self.sizes.values()}, interval_s=heartbeat_interval, grace_s=grace_s, who=self.who
        )
        self.grace_s = grace_s
        self.outage = _Outage(url, outage_limit_s, stop)
        self.summary = WorkerSummary()
        self._failures_in_a_row = 0

    def set_budget(self, trials: int) -> None:
        """Give every study a budget of ``trials`` (``worker --trials``); a stop request ends the queuing."""
        for entry in self.sizes.values():
            if self.stop.is_set():
                return
            call_with_retries(
                lambda: set_budget(self.storage, entry.study, trials, stop=self.stop), what="setting the budget", stop=self.stop
            )

    def run(self, max_trials: int | None = None) -> WorkerSummary:
        self.heartbeat.start()
        done = threading.Event()
        if self.stop_deadline_s is not None:
            threading.Thread(target=self._hand_back_when_stuck, args=(done,), name="stop-deadline", daemon=True).start()
        try:
            while not self.stop.is_set() and (max_trials is None or self.summary.trials < max_trials):
                claimed = self._claim_next()
                if claimed is None:
                    break
                outcome = self._train(*claimed)
                if outcome.hand_back == STOP_REQUESTED:
                    self.summary.stopped_by_signal = True
                    break
        finally:
            done.set()
            self.heartbeat.close()
        if self.stop.is_set():
            self.summary.stopped_by_signal = True
        return self.summary

    def _train(self, entry: _Size, trial: _Claimed) -> Outcome:
        """Train the claimed trial and settle how it ended."""
        self._training = (entry, trial)
        try:
            outcome = self.runner.run(trial.trial, entry.size, entry.prune_check)
        except KeyboardInterrupt:
            # A second Ctrl-C: leave at once, but still hand the trial back if the store answers.
            self.stop.set()
            self._settle(entry, trial, Outcome(TrialState.FAIL, hand_back=STOP_REQUESTED))
            raise
        finally:
            self._training = None
            self.heartbeat.watch(None)
        self._settle(entry, trial, outcome)
        return outcome

    def _hand_back_when_stuck(self, done: threading.Event) -> None:
        """Once a stop is requested: a trial still training ``stop_deadline_s`` later is handed back, and the process exits.

        The training loop checks the stop request at every step, but one step
        of a wide model can take minutes, and Python cannot interrupt it.
        """
        while not self.stop.wait(0.5):
            if done.is_set():
                return
        if done.wait(self.stop_deadline_s) or self._training is None:
            return
        entry, trial = self._training
        _log.warning(
            "size %d trial %d: its training step still runs %.0f s after the stop request; handing the trial back and exiting",
            entry.size, trial.trial.number, self.stop_deadline_s,
            extra={"event": "stop_deadline", "size": entry.size, "trial": trial.trial.number, "worker": self.who},
        )
        code = 0
        try:
            self._settle(entry, trial, Outcome(TrialState.FAIL, hand_back=STOP_REQUESTED))
        except Exception as e:  # the process ends either way: say what becomes of the trial
            _log.error("could not hand trial %d back (%s); its heartbeat stops, so another worker re-runs it", trial.trial.number, describe_error(e))
            code = 1
        logging.shutdown()
        os._exit(code)

    # -- claiming ---------------------------------------------------------------

    def _claim_next(self) -> tuple[_Size, _Claimed] | None:
        """Claim a queued trial, waiting while other workers' trials run; None when nothing is left."""
        said_waiting = False
        short_since: float | None = None
        while not self.stop.is_set():
            try:
                queued, running = self._counts()
                claimed = self._claim_largest(queued)
                short = {} if any(queued.values()) or any(running.values()) else self._short_of_budget()
            except Exception as e:
                self.outage.failed(e, "claim a trial")
                continue
            self.outage.recovered()
            if claimed is not None:
                return claimed
            if any(queued.values()):
                continue  # other workers claimed those first: look again
            if not any(running.values()):
                if not short:
                    return None
                # A trial just ended and its replacement is on its way from the process that ended it.
                short_since = short_since if short_since is not None else time.monotonic()
                if time.monotonic() - short_since > self.grace_s:
                    self._replace_orphans(short)
                    self._top_up(short)
                    short_since = None
            elif not said_waiting:
                _log.info(
                    "nothing queued; waiting for %d running trial(s) of other workers", sum(running.values()),
                    extra={"event": "waiting", "worker": self.who},
                )
                said_waiting = True
            self.stop.wait(WAIT_POLL_S)
        return None

    def _counts(self) -> tuple[dict[int, int], dict[int, int]]:
        queued, running = {}, {}
        for size, entry in self.sizes.items():
            trials = self.storage.get_all_trials(entry.study_id, deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
            queued[size] = sum(t.state == TrialState.WAITING for t in trials)
            running[size] = len(trials) - queued[size]
        return queued, running

    def _short_of_budget(self) -> dict[int, int]:
        """Sizes with fewer finished trials than their budget (and nothing queued or running)."""
        short = {}
        for size, entry in self.sizes.items():
            budget = entry.study.user_attrs.get(ATTR_BUDGET)
            finished = len(self.storage.get_all_trials(entry.study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
            if isinstance(budget, int) and finished < budget:
                short[size] = budget - finished
        return short

    def _replace_orphans(self, short: Mapping[int, int]) -> None:
        """Queue the replacements that the process which ended a trial did not live to queue."""
        for size in short:
            study = self.sizes[size].study
            trials = study.get_trials(deepcopy=False)
            replaced = {t.system_attrs.get(REPLACES_ATTR) for t in trials}
            for trial in trials:
                reason = ended_reason(trial) if trial.state == TrialState.FAIL else None
                if reason is not None and reason != WITHDRAWN and trial.number not in replaced:
                    if queue_replacement(study, trial, same_params=reason in (HANDED_BACK, LOST)):
                        _log.warning(
                            "size %d: trial %d was ended without a replacement; queued one", size, trial.number,
                            extra={"event": "replacement_queued", "size": size, "trial": trial.number},
                        )

    def _top_up(self, short: Mapping[int, int]) -> None:
        """Queue the trials of a budget that a cut-off ``create`` or ``--trials`` set but did not queue in full."""
        for size in short:
            study = self.sizes[size].study
            budget = study.user_attrs.get(ATTR_BUDGET)
            held = sum(t.state in BUDGET_STATES for t in study.get_trials(deepcopy=False))
            if isinstance(budget, int) and held < budget:
                _log.warning(
                    "size %d: %d of its %d trials were never queued (a create or --trials was cut off); queuing them",
                    size, budget - held, budget, extra={"event": "budget_topped_up", "size": size},
                )
                set_budget(self.storage, study, budget, stop=self.stop)

    def _claim_largest(self, queued: Mapping[int, int]) -> tuple[_Size, _Claimed] | None:
        for size in sorted(queued, key=lambda s: queued[s] * s, reverse=True):
            if queued[size] == 0:
                break
            trial = self._claim(self.sizes[size])
            if trial is not None:
                return self.sizes[size], trial
        return None

    def _claim(self, entry: _Size) -> _Claimed | None:
        """Claim one queued trial of ``entry``'s study: WAITING → RUNNING is atomic in every store."""
        for frozen in self.storage.get_all_trials(entry.study_id, deepcopy=False, states=(TrialState.WAITING,)):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(entry.study_id, frozen.number)
            try:
                if not self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            # The first beat goes out before anything else, so that no one takes the trial for orphaned.
            self.heartbeat.watch(entry.study, frozen.number)
            return _Claimed(optuna.Trial(entry.study, trial_id), trial_id)
        return None

    # -- settling ---------------------------------------------------------------

    def _settle(self, entry: _Size, trial: _Claimed, outcome: Outcome) -> None:
        """Write ``outcome`` to the store (through outages), log it, and count it."""
        if outcome.state in (TrialState.COMPLETE, TrialState.PRUNED):
            settle = lambda: self._tell(entry, trial, outcome)  # noqa: E731
        else:
            settle = lambda: self._end(entry, trial, outcome)  # noqa: E731
        final = self._through_outage(settle, f"finish trial {trial.trial.number}")
        if final is None:
            _log.warning(
                "trial %d of size %d could not be finished in the store; it is re-run once its heartbeat goes stale",
                trial.trial.number, entry.size,
                extra={"event": "trial_unsettled", "study": entry.study.study_name, "size": entry.size, "trial": trial.trial.number, "worker": self.who},
            )
            return
        kind = self._kind(final, outcome)
        self._log_trial(entry, final, kind, outcome)
        self._count(kind, outcome)

    def _tell(self, entry: _Size, trial: _Claimed, outcome: Outcome) -> FrozenTrial:
        values = outcome.value if outcome.state == TrialState.COMPLETE else None
        try:
            # skip_if_finished: a repeated tell after a lost reply finds its own first tell done.
            entry.study.tell(trial.trial, values, state=outcome.state, skip_if_finished=True)
        except RuntimeError:
            # A sampler's after_trial hook may raise after the state is stored (GridSampler calls
            # study.stop() once its grid is used up, which only works inside study.optimize).
            if not self.storage.get_trial(trial.trial_id).state.is_finished():
                raise
        return self.storage.get_trial(trial.trial_id)

    def _end(self, entry: _Size, trial: _Claimed, outcome: Outcome) -> FrozenTrial:
        if outcome.hand_back == TAKEN_OVER:
            return self.storage.get_trial(trial.trial_id)
        reason = HANDED_BACK if outcome.hand_back else f"error: {outcome.error}"
        if end_trial(self.storage, entry.study_id, trial.trial.number, reason, self.who):
            frozen = self.storage.get_trial(trial.trial_id)
            queue_replacement(entry.study, frozen, same_params=outcome.hand_back is not None)
        return self.storage.get_trial(trial.trial_id)

    def _through_outage(self, fn: Any, what: str) -> Any:
        """``fn()`` retried through a store outage; None when the store stayed away (or we must stop)."""
        start = time.monotonic()
        while True:
            try:
                result = fn()
            except Exception as e:
                if not is_transient(e):
                    raise
                stopping = self.stop.is_set() and time.monotonic() - start > STOPPING_LIMIT_S
                if stopping:
                    return None
                try:
                    self.outage.failed(e, what)
                except StorageError:
                    return None
                continue
            self.outage.recovered()
            return result

    def _kind(self, final: FrozenTrial, outcome: Outcome) -> str:
        """How the trial ended, as the store now has it: complete, pruned, failed, handed_back or taken_over."""
        if final.state == TrialState.COMPLETE:
            return "complete"
        if final.state == TrialState.PRUNED:
            return "pruned"
        ended = final.system_attrs.get(ENDED_ATTR) or {}
        if ended.get("by") != self.who:
            return "taken_over"  # ended as lost by another process while this one could not reach the store
        return "handed_back" if outcome.hand_back else "failed"

    def _count(self, kind: str, outcome: Outcome) -> None:
        setattr(self.summary, kind, getattr(self.summary, kind) + 1)
        self._failures_in_a_row = self._failures_in_a_row + 1 if kind == "failed" else 0
        if self._failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
            raise WorkerError(
                f"{self._failures_in_a_row} trials failed in a row (last: {outcome.error}); "
                "fix the cause shown in the log, then start the worker again"
            )

    def _log_trial(self, entry: _Size, final: FrozenTrial, kind: str, outcome: Outcome) -> None:
        attrs = final.user_attrs
        fields = {
            # A hand-back or take-over is no result: a collector counting finished trials must not count it.
            "event": "trial_finished" if kind in ("complete", "pruned", "failed") else f"trial_{kind}",
            "study": entry.study.study_name,
            "size": entry.size,
            "trial": final.number,
            "state": kind,
            "val_loss": final.value,
            "test_error": attrs.get("test_error"),
            "epochs": attrs.get("epochs_run"),
            # Training time where the trial recorded it (complete ones), else start to end in the store.
            "seconds": attrs.get("wall_time_s") or (round(final.duration.total_seconds(), 3) if final.duration else None),
            "worker": self.who,
        }
        text = f"size {entry.size} trial {final.number} {kind.replace('_', ' ')}"
        if final.value is not None:
            text += f" val_loss {final.value:.4f}"
        if fields["test_error"] is not None:
            text += f" test_error {fields['test_error']:.4f}"
        if fields["epochs"] is not None:
            text += f" epochs {fields['epochs']}"
        if fields["seconds"] is not None:
            text += f" in {fields['seconds']:.1f} s"
        text += {
            "handed_back": f" ({outcome.hand_back}; queued to re-run with the same parameters)",
            "taken_over": " (ended as lost by another process while this one could not reach the store; its re-run is queued)",
            "failed": f" ({outcome.error}; a fresh trial is queued)",
        }.get(kind, "")
        _log.log(logging.WARNING if kind == "failed" else logging.INFO, "%s", text, extra=fields)


class _Outage:
    """Backoff while the store is unreachable; give up after ``limit_s`` seconds without success."""

    def __init__(self, url: str, limit_s: float, stop: threading.Event) -> None:
        self.url, self.limit_s, self.stop = url, limit_s, stop
        self.since: float | None = None
        self.attempts = 0

    def failed(self, error: BaseException, what: str) -> None:
        if not is_transient(error):
            raise error
        now = time.monotonic()
        self.since = self.since if self.since is not None else now
        self.attempts += 1
        if now - self.since > self.limit_s or self.stop.is_set():
            raise StorageError(
                f"lost the store {mask_url(self.url)} for {now - self.since:.0f} s ({describe_error(error)}); "
                "check that the database (or proxy) is up and reachable, then start the worker again"
            ) from None
        delay = backoff(self.attempts, first_s=0.5, cap_s=10)
        _log.warning(
            "store unreachable, could not %s: %s; retrying in %.1f s", what, describe_error(error), delay,
            extra={"event": "store_unreachable", "retry_in_s": round(delay, 1)},
        )
        self.stop.wait(delay)

    def recovered(self) -> None:
        if self.since is not None:
            _log.info(
                "store reachable again after %.1f s", time.monotonic() - self.since,
                extra={"event": "store_reachable", "outage_s": round(time.monotonic() - self.since, 1)},
            )
        self.since, self.attempts = None, 0


def _open_sizes(spec: ExperimentSpec, storage: RetryingStorage, seed_offset: int) -> dict[int, _Size]:
    found = survey(spec, storage)
    for name in sorted(found.interrupted):
        _log.warning(
            "study %s: its creation was cut off; this worker passes it over until 'scaling-optuna create' finishes it", name,
            extra={"event": "study_unfinished", "study": name},
        )
    sizes = found.sizes()
    if not sizes:
        raise StorageError(f"the store holds no study of experiment {spec.name!r}; run 'scaling-optuna create' first")
    entries = {}
    for size in sizes:
        name = study_name(spec.name, size)
        study = optuna.load_study(
            study_name=name, storage=storage, sampler=spec.create_sampler(seed_offset), pruner=spec.create_pruner()
        )
        entries[size] = _Size(size, study, storage.get_study_id_from_name(name), PruneCheck(study))
    return entries


def check_fingerprints(sizes: Mapping[int, _Size], fingerprint: Any) -> None:
    """Refuse to run on local data that differ from the data the studies were created with."""
    for size, entry in sizes.items():
        expected, local = entry.study.user_attrs.get("fingerprint"), fingerprint(size)
        if expected != local:
            raise DataError(
                f"local data for size {size} has fingerprint {local} but study {entry.study.study_name!r} "
                f"was created with {expected}: this machine holds different dataset files or another "
                "version of them; use the same files (and seed) as the machine that ran 'create'"
            )


def default_threads(workers: int) -> int:
    """Torch threads per worker so that ``workers`` processes share this machine's cores without fighting."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))

