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
taken over                its replacement, unless one is queued already:
                          another process ended it as lost while this one
                          could not reach the store, or it was failed from
                          outside (a trial completed from outside just counts)
========================  ==================================================

A study's re-measure placeholders (:mod:`scaling_optuna.remeasure`) are claimed
only once its search has finished; a worker then fixes the configuration the
placeholder re-measures on the claimed trial, and trains it without pruning.

A store that stops answering is retried with backoff for ``outage_limit_s``;
a stop request (SIGTERM, Ctrl-C) ends the loop after the running trial is
handed back. A worker with nothing left to claim waits while trials of other
workers run, so that the last one alive re-runs the trial of a worker that died,
and says so every minute; it leaves once nothing runs anywhere and every ended
trial has its replacement. A trial ended from outside (failed or completed in
optuna-dashboard or through Optuna's API) while this worker trains it stops at
the next epoch, and its log line says what re-runs it; a study deleted from
the store is dropped. After each complete trial, the size's weights beyond the
best ``keep_models`` are removed (:class:`~scaling_optuna.storages.artifacts.WeightPruner`).
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

from scaling_optuna._optuna import RETRY_HISTORY_ATTR
from scaling_optuna.errors import DataError
from scaling_optuna.errors import StorageError
from scaling_optuna.errors import WorkerError
from scaling_optuna.experiment import rank_trials
from scaling_optuna.experiment import set_budget
from scaling_optuna.identity import study_name
from scaling_optuna.identity import survey
from scaling_optuna.remeasure import REMEASURE_OF_ATTR
from scaling_optuna.remeasure import fix_configuration
from scaling_optuna.remeasure import is_remeasure
from scaling_optuna.remeasure import placeholders_open
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.storages import RetryingStorage
from scaling_optuna.storages import mask_url
from scaling_optuna.storages._shared import BUDGET_ATTR
from scaling_optuna.storages._shared import ENDED_ATTR
from scaling_optuna.storages._shared import HANDED_BACK
from scaling_optuna.storages._shared import OUTSIDE
from scaling_optuna.storages._shared import QUEUED_BY_ATTR
from scaling_optuna.storages._shared import WITHDRAWN
from scaling_optuna.storages._shared import SweepResult
from scaling_optuna.storages._shared import backoff
from scaling_optuna.storages._shared import call_with_retries
from scaling_optuna.storages._shared import describe_error
from scaling_optuna.storages._shared import completed_outside
from scaling_optuna.storages._shared import end_trial
from scaling_optuna.storages._shared import ended_outside
from scaling_optuna.storages._shared import is_transient
from scaling_optuna.storages._shared import queue_replacement
from scaling_optuna.storages._shared import short_of_budget
from scaling_optuna.storages._shared import replacement_of
from scaling_optuna.storages._shared import superseded
from scaling_optuna.storages.artifacts import WeightPruner
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
# How often a worker that waits for other workers' trials says so.
WAITING_NOTE_S = 60.0

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
    # The original run's trial number when this trial re-measures a configuration (never pruned).
    remeasure_of: int | None = None


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
        pruner: WeightPruner | None = None,
        stop_deadline_s: float | None = None,
    ) -> None:
        self.spec, self.storage, self.url, self.runner, self.stop = spec, storage, url, runner, stop
        self.pruner, self.stop_deadline_s = pruner, stop_deadline_s
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
        # Weights a worker uploaded but did not live to prune go first.
        for entry in list(self.sizes.values()):
            self.prune(entry)
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
            # a re-run of a configuration trains as its original did: never pruned
            outcome = self.runner.run(trial.trial, entry.size, entry.prune_check, prune=trial.remeasure_of is None)
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
        """Claim a queued trial, waiting while trials run anywhere; None when nothing is left to wait for.

        With nothing queued and nothing running, a sweep replaces the trials
        that ended without a replacement (at once when they ended outside
        scaling-optuna, after the grace period when the process that ended
        them may still queue it); the worker leaves once none is left.
        """
        note = _WaitingNote(self.who, self.grace_s)
        while not self.stop.is_set():
            try:
                queued, running = self._counts()
                claimed = self._claim_largest(queued)
                idle = claimed is None and not any(queued.values()) and not any(running.values())
                swept = self.heartbeat.sweep() if idle else SweepResult()
            except Exception as e:
                self.outage.failed(e, "claim a trial")
                continue
            self.outage.recovered()
            if claimed is not None:
                return claimed
            if any(queued.values()) or swept.queued:
                continue  # other workers claimed those first, or the sweep just queued some: look again
            if idle and not swept.pending:
                if self._top_up() or self._anything_left():
                    continue  # a cut-off create or --trials left some of a budget unqueued, or a sweep queued one
                return None
            note.say(running, swept.pending)
            self.stop.wait(WAIT_POLL_S)
        return None

    def _anything_left(self) -> bool:
        """Whether a trial is queued or running now.

        The heartbeat thread sweeps too: a replacement it queued between this
        loop's counts and its own sweep is in neither, and must not be left behind.
        """
        queued, running = self._counts()
        return any(queued.values()) or any(running.values())

    def _counts(self) -> tuple[dict[int, int], dict[int, int]]:
        """Claimable queued trials and running trials per size (placeholders count once their search is done)."""
        queued, running = {}, {}
        for size, entry in list(self.sizes.items()):
            try:
                trials = self.storage.get_all_trials(entry.study_id, deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
            except KeyError:
                self._drop_deleted(entry)
                continue
            queued[size] = len(self._claimable(entry, trials))
            running[size] = sum(t.state == TrialState.RUNNING for t in trials)
        return queued, running

    def _drop_deleted(self, entry: _Size, trial: int | None = None) -> None:
        """Go on without ``entry``'s study, which was deleted from the store."""
        self.sizes.pop(entry.size, None)
        self.heartbeat.drop(entry.size)
        during = f" while this worker trained its trial {trial}" if trial is not None else ""
        _log.warning(
            "study %s (size %d) was deleted from the store%s, from outside scaling-optuna (%s); its queued trials "
            "will not run; this worker goes on with the other sizes (run 'scaling-optuna create' to bring the size back)",
            entry.study.study_name, entry.size, during, OUTSIDE,
            extra={"event": "study_deleted", "study": entry.study.study_name, "size": entry.size, "worker": self.who},
        )

    def _claimable(self, entry: _Size, active: list[FrozenTrial]) -> list[FrozenTrial]:
        """The queued trials among ``active`` (the study's WAITING and RUNNING trials) a worker may start now."""
        waiting = [t for t in active if t.state == TrialState.WAITING]
        if placeholders_open(active, lambda: self._search_progress(entry)):
            return waiting
        return [t for t in waiting if not is_remeasure(t)]

    def _search_progress(self, entry: _Size) -> tuple[int, int]:
        """Finished search trials of ``entry``'s study, and its search budget."""
        finished = self.storage.get_all_trials(entry.study_id, deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        budget = entry.study.user_attrs.get(BUDGET_ATTR)
        return sum(not is_remeasure(t) for t in finished), budget if isinstance(budget, int) else 0

    def _top_up(self) -> bool:
        """Queue the search trials of a budget that a cut-off ``create`` or ``--trials`` set but did not queue in full.

        Called when nothing is queued or running anywhere and no ended trial
        awaits its replacement; True when it queued something.
        """
        topped = False
        for size, entry in list(self.sizes.items()):
            trials = self.storage.get_all_trials(entry.study_id, deepcopy=False)
            budget = entry.study.user_attrs.get(BUDGET_ATTR)
            missing = short_of_budget(trials, budget)
            if missing:
                _log.warning(
                    "size %d: %d of its %d trials were never queued (a create or --trials was cut off); queuing them",
                    size, missing, budget, extra={"event": "budget_topped_up", "size": size},
                )
                set_budget(self.storage, entry.study, budget, stop=self.stop)
                topped = True
        return topped

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
        trials = self.storage.get_all_trials(entry.study_id, deepcopy=False)
        for frozen in self._claimable(entry, [t for t in trials if t.state in (TrialState.WAITING, TrialState.RUNNING)]):
            trial_id = self.storage.get_trial_id_from_study_id_trial_number(entry.study_id, frozen.number)
            try:
                if not self.storage.set_trial_state_values(trial_id, TrialState.RUNNING):
                    continue
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
            if superseded(frozen, trials):
                # Queued twice for one ended trial by processes that noticed it at once: the earlier one runs.
                end_trial(self.storage, entry.study_id, frozen.number, WITHDRAWN, self.who)
                continue
            # The first beat goes out before anything else, so that no one takes the trial for orphaned.
            self.heartbeat.watch(entry.study, frozen.number)
            try:
                original = None
                if is_remeasure(frozen):
                    original = self._fix_remeasure(entry, frozen, trial_id)
                    if original is None:
                        continue  # withdrawn: nothing to re-measure
                return _Claimed(optuna.Trial(entry.study, trial_id), trial_id, remeasure_of=original)
            except BaseException:
                self.heartbeat.watch(None)  # a trial we could not start must not look alive
                raise
        return None

    def _fix_remeasure(self, entry: _Size, placeholder: FrozenTrial, trial_id: int) -> int | None:
        """Make the claimed ``placeholder`` a re-run of its configuration; its original run's number.

        None, the placeholder withdrawn, when no search trial completed: there is nothing to re-measure.
        """
        complete = rank_trials(self.storage.get_all_trials(entry.study_id, deepcopy=False, states=(TrialState.COMPLETE,)))
        original = fix_configuration(self.storage, trial_id, placeholder, complete)
        if original is not None:
            return original.number
        self.heartbeat.watch(None)
        end_trial(self.storage, entry.study_id, placeholder.number, WITHDRAWN, self.who)
        _log.warning(
            "size %d: no search trial completed, so trial %d has no configuration to re-measure; withdrawn",
            entry.size, placeholder.number, extra={"event": "remeasure_withdrawn", "size": entry.size, "trial": placeholder.number},
        )
        return None

    # -- settling ---------------------------------------------------------------

    def _settle(self, entry: _Size, trial: _Claimed, outcome: Outcome) -> None:
        """Write ``outcome`` to the store (through outages), log it, count it, and prune the size's weights."""
        if outcome.state in (TrialState.COMPLETE, TrialState.PRUNED):
            settle = lambda: self._tell(entry, trial, outcome)  # noqa: E731
        else:
            settle = lambda: self._end(entry, trial, outcome)  # noqa: E731
        try:
            final = self._through_outage(settle, f"finish trial {trial.trial.number}")
        except KeyError:
            if not self._deleted(entry):
                raise
            self._drop_deleted(entry, trial.trial.number)
            return
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
        if kind == "complete":
            self.prune(entry)

    def _deleted(self, entry: _Size) -> bool:
        try:
            return self.storage.get_study_id_from_name(entry.study.study_name) != entry.study_id
        except KeyError:
            return True

    def prune(self, entry: _Size) -> None:
        """Keep the weights of the size's best ``keep_models`` trials only; a failure waits for the next trial."""
        if self.pruner is None:
            return
        try:
            self.pruner.prune(self.storage.get_all_trials(entry.study_id, deepcopy=False))
        except Exception as e:
            _log.warning(
                "weights of size %d beyond the best %d not removed yet (tried again after its next trial): %s",
                entry.size, self.pruner.keep, describe_error(e), extra={"event": "prune_failed", "size": entry.size},
            )

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
        """End the trial FAIL and queue its replacement; one taken over, or failed from outside, gets one too."""
        if outcome.hand_back != TAKEN_OVER:
            # False when it was ended meanwhile, by another process or from outside: it is replaced all the same.
            end_trial(self.storage, entry.study_id, trial.trial.number, HANDED_BACK if outcome.hand_back else f"error: {outcome.error}", self.who)
        final = self.storage.get_trial(trial.trial_id)
        if final.state == TrialState.FAIL or completed_outside(final):
            # A repeat after a lost reply, or a trial another process replaces too, adds nothing.
            queue_replacement(self.storage, entry.study_id, final, who=self.who)
        return final

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
        if outcome.hand_back == TAKEN_OVER:
            return "taken_over"  # ended by another process, or from outside, while this one trained it
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
            "remeasure_of": attrs.get(REMEASURE_OF_ATTR),
        }
        text = f"size {entry.size} trial {final.number} {kind.replace('_', ' ')}"
        if fields["remeasure_of"] is not None:
            text += f" (re-measure of trial {fields['remeasure_of']})"
        if final.value is not None:
            text += f" val_loss {final.value:.4f}"
        if fields["test_error"] is not None:
            text += f" test_error {fields['test_error']:.4f}"
        if fields["epochs"] is not None:
            text += f" epochs {fields['epochs']}"
        if fields["seconds"] is not None:
            text += f" in {fields['seconds']:.1f} s"
        if kind in ("handed_back", "taken_over", "failed"):
            text += f" ({self._why(entry, final, kind, outcome)})"
        _log.log(logging.WARNING if kind == "failed" else logging.INFO, "%s", text, extra=fields)

    def _why(self, entry: _Size, final: FrozenTrial, kind: str, outcome: Outcome) -> str:
        """Why a trial ended without a result, and what re-runs it, as the store has it."""
        if final.state == TrialState.PRUNED:
            return f"pruned outside scaling-optuna ({OUTSIDE}) while this worker trained it: it counts toward the budget as a pruned trial"
        if completed_outside(final):
            why = (
                f"completed outside scaling-optuna ({OUTSIDE}) while this worker trained it, without a measurement: "
                "the report leaves it out (it has no test error)"
            )
        elif kind == "handed_back":
            why = str(outcome.hand_back)
        elif kind == "failed":
            why = str(outcome.error)
        elif ended_outside(final):
            why = f"failed outside scaling-optuna ({OUTSIDE}) while this worker trained it"
        else:
            by = (final.system_attrs.get(ENDED_ATTR) or {}).get("by", "?")
            why = f"ended as lost by another process ({by}) while this worker could not reach the store"
        return f"{why}; {self._rerun(entry, final)}"

    def _rerun(self, entry: _Size, final: FrozenTrial) -> str:
        """What replaces the failed trial ``final``, as the store now has it."""
        try:
            standing = replacement_of(self.storage.get_all_trials(entry.study_id, deepcopy=False), final.number)
        except Exception as e:
            return f"its replacement could not be looked up ({describe_error(e)})"
        if standing is None:
            return "its study holds its budget, so nothing re-runs it"
        same = RETRY_HISTORY_ATTR in standing.system_attrs
        if standing.system_attrs.get(QUEUED_BY_ATTR) == self.who:
            return f"queued to re-run as trial {standing.number} with the same parameters" if same else f"queued trial {standing.number}, a fresh trial, in its place"
        by = standing.system_attrs.get(QUEUED_BY_ATTR, "another process")
        return f"trial {standing.number}, queued by {by}, re-runs it" + (" with the same parameters" if same else " as a fresh trial")


class _WaitingNote:
    """Says, at once and then every :data:`WAITING_NOTE_S`, what a worker with nothing to claim waits for."""

    def __init__(self, who: str, grace_s: float) -> None:
        self.who, self.grace_s = who, grace_s
        self._said_at: float | None = None

    def say(self, running: Mapping[int, int], pending: int) -> None:
        now = time.monotonic()
        if self._said_at is not None and now - self._said_at < WAITING_NOTE_S:
            return
        self._said_at = now
        if any(running.values()):
            where = ", ".join(f"size {size}: {n}" for size, n in running.items() if n)
            _log.info(
                "nothing queued; waiting for %d running trial(s) of other workers (%s): this worker leaves when they "
                "end, or re-runs one whose worker stops beating for %.0f s", sum(running.values()), where, self.grace_s,
                extra={"event": "waiting", "worker": self.who, "running": sum(running.values())},
            )
        else:
            _log.info(
                "nothing queued or running; waiting up to %.0f s for the replacement of %d ended trial(s) that the "
                "process which ended them has not queued yet, then queuing it", self.grace_s, pending,
                extra={"event": "waiting", "worker": self.who, "pending": pending},
            )


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

