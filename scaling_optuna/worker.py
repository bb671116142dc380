"""A worker: pulls trials from an experiment's studies and trains them until every budget is met.

Any number of workers, on any number of machines, may run against one store.
Each picks the study with the largest remaining cost (trials left × examples),
which shortens the makespan, runs one trial there through
``study.optimize(n_trials=1)`` (so Optuna's heartbeat marks the trials of dead
workers failed and re-queues them), and repeats until every study has its
budget of finished trials. A worker with nothing left to start waits while
trials of other workers run, so that the last one alive re-runs the trial of a
worker that died. SIGTERM hands the running trial back; a lost store is
retried with backoff (see :mod:`scaling_optuna.storage`).

Example::

    from scaling_optuna.spec import load_spec
    from scaling_optuna.worker import run_worker

    summary = run_worker(load_spec("studies/digits.toml"), "sqlite:///scaling-optuna.db")
    print(summary)
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
import warnings
from typing import Any, Callable, Iterable, Mapping

import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from scaling_optuna.artifacts import artifact_location
from scaling_optuna.artifacts import open_artifact_store
from scaling_optuna.artifacts import prune_models
from scaling_optuna.artifacts import save_state_dict
from scaling_optuna.data import Dataset
from scaling_optuna.data import load_dataset
from scaling_optuna.errors import DataError
from scaling_optuna.errors import StorageError
from scaling_optuna.experiment import BUDGET_STATES
from scaling_optuna.experiment import find_sizes
from scaling_optuna.experiment import study_name
from scaling_optuna.model import build_model
from scaling_optuna.model import count_parameters
from scaling_optuna.preflight import check_runnable
from scaling_optuna.pruning import PruneCheck
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.storage import HEARTBEAT_INTERVAL_S
from scaling_optuna.storage import RetryTrial
from scaling_optuna.storage import backoff
from scaling_optuna.storage import check_url
from scaling_optuna.storage import call_with_retries
from scaling_optuna.storage import is_transient
from scaling_optuna.storage import mask_url
from scaling_optuna.storage import open_storage
from scaling_optuna.train import DivergedError
from scaling_optuna.train import StopRequested
from scaling_optuna.train import configure_process
from scaling_optuna.train import train_model

_log = logging.getLogger("scaling_optuna.worker")


class _NoTracebackForHandBacks(logging.Filter):
    """Optuna logs every exception that ends a trial with its traceback; an
    interrupted trial that is handed back is routine, so one line is enough."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], StopRequested):
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("optuna.study._optimize").addFilter(_NoTracebackForHandBacks())
MAX_CONSECUTIVE_FAILURES = 5
# How long a worker keeps retrying a store it lost before it gives up.
OUTAGE_LIMIT_S = 600
# How often a worker with nothing left to start looks at the store again.
WAIT_POLL_S = 1.0


@dataclasses.dataclass
class WorkerSummary:
    """What one worker did."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0
    stopped_by_signal: bool = False

    @property
    def trials(self) -> int:
        return self.complete + self.pruned + self.failed


def default_threads(workers: int) -> int:
    """Torch threads per worker so that ``workers`` processes share the cores without fighting."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


def run_worker(
    spec: ExperimentSpec,
    storage: str | None = None,
    *,
    threads: int | None = None,
    device: str | None = None,
    max_trials: int | None = None,
    stop: threading.Event | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int | None = None,
    outage_limit_s: float = OUTAGE_LIMIT_S,
    artifacts: str | None = None,
    seed_offset: int = 0,
) -> WorkerSummary:
    """Run trials of ``spec``'s experiment in ``storage`` until every study has its budget.

    A worker that finds nothing left to start while trials of other workers
    still run waits for them: if one of those workers died, its trial goes
    stale after ``grace_period`` seconds without a heartbeat, is failed and
    re-queued with the same parameters, and this worker runs it. A lost store
    is retried with backoff for ``outage_limit_s`` seconds.

    Args:
        threads: torch threads for this process (default: all cores).
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or ``auto`` (default: the spec's).
        max_trials: stop after this many trials even if budgets remain.
        stop: when set, the current trial stops at its next epoch boundary, is
            handed back to the queue, and the worker returns.
        heartbeat_interval: seconds between heartbeats of the running trial.
        grace_period: seconds without a heartbeat after which a trial counts
            as dead (default: three intervals).
        artifacts: where complete trials' weights go (default: the spec's
            ``artifacts``, else beside a SQLite store; see ``artifact_location``).
        seed_offset: added to the seed of a seeded sampler. Give every worker
            process its own, or they all propose the same parameters.

    Raises:
        StorageError: the store is unreachable or holds no study of the experiment.
        DataError: the local data differs from the data the studies were created with.
    """
    url = storage or spec.storage
    stop = stop or threading.Event()
    if threads is not None:
        torch.set_num_threads(threads)
    check_url(url)
    data = load_dataset(spec)
    target = check_runnable(spec, data, device or spec.trainer.device)
    configure_process(target)
    store = open_storage(url, create=False, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    sizes = call_with_retries(lambda: find_sizes(spec, store), what="find the studies")
    if not sizes:
        raise StorageError(f"store {mask_url(url)} holds no study of experiment {spec.name!r}; run 'scaling-optuna create' first")
    studies = call_with_retries(lambda: _load_studies(spec, store, sizes, seed_offset), what="load the studies")
    for size, study in studies.items():
        expected, local = study.user_attrs.get("fingerprint"), data.fingerprint(size)
        if expected != local:
            raise DataError(
                f"local data for size {size} has fingerprint {local} but study {study.study_name!r} "
                f"was created with {expected}: this machine holds different dataset files or another "
                "version of them; use the same files (and seed) as the machine that ran 'create'"
            )

    weights = open_artifact_store(artifact_location(artifacts or spec.artifacts, url)) if spec.keep_models > 0 else None
    tensors = _to_device(data, target)
    summary = WorkerSummary()
    failures_in_a_row = 0
    outage = _Outage(url, outage_limit_s, stop)
    waiting_logged = False
    prune_checks = {size: PruneCheck(study) for size, study in studies.items()}
    who = f"{socket.gethostname()}:{os.getpid()}"
    _log.info("worker %s on %s with %d threads, store %s", who, target, torch.get_num_threads(), mask_url(url))
    while not stop.is_set() and (max_trials is None or summary.trials < max_trials):
        try:
            counts = _count(studies)
        except Exception as e:
            outage.failed(e, "read the studies")
            continue
        size = _next_size(counts, spec.trials_per_size)
        if size is None:
            short = {s: c for s, c in counts.items() if c.finished < spec.trials_per_size}
            if not short:
                break
            # Trials of other workers still run: if one of them died, ours is the
            # process that must fail its trial once it is stale, and re-run it.
            if not waiting_logged:
                running = sum(c.running for c in short.values())
                _log.info("nothing to start; waiting for %d running trial(s) of other workers", running)
                waiting_logged = True
            try:
                _fail_stale(studies[s] for s in short)
            except Exception as e:
                outage.failed(e, "check for stale trials")
                continue
            outage.recovered()
            # Polled more often than the heartbeat, so that a worker leaves soon after the last trial ends.
            stop.wait(min(heartbeat_interval, WAIT_POLL_S))
            continue
        waiting_logged = False
        study = studies[size]
        objective = _Objective(spec, tensors, size, stop, who, prune_checks[size], weights)
        taken_over = False
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,))
        except KeyboardInterrupt:
            # A second Ctrl-C: leave at once, but still hand the trial back if the store answers.
            if objective.trial_number is not None:
                objective.hand_back = "interrupted"
                _settle(study, objective, deadline_s=5)
            raise
        except Exception as e:
            if objective.trial_number is None or not (is_transient(e) or _is_finished_elsewhere(e)):
                if not is_transient(e):
                    raise
                outage.failed(e, "start a trial")
                continue
            taken_over = _is_finished_elsewhere(e)
            if taken_over:
                _log.warning(
                    "trial %d of size %d was failed as stale by another process while this one could not reach "
                    "the store; its retry runs instead", objective.trial_number, size,
                )
            else:
                _log.warning("trial %d of size %d: %s; finishing it when the store answers", objective.trial_number, size, mask_url(_short(e)))
        try:
            state = _settle(study, objective, deadline_s=outage_limit_s)
        except Exception as e:
            # Still unsettled after the whole outage window: the heartbeat retries the trial.
            outage.failed(e, f"finish trial {objective.trial_number}")
            continue
        outage.recovered()
        if objective.hand_back == "interrupted":
            summary.stopped_by_signal = True
            break
        if state == TrialState.COMPLETE:
            summary.complete += 1
            failures_in_a_row = 0
            if weights is not None:
                _try(lambda: prune_models(study, weights, spec.keep_models))
        elif state == TrialState.PRUNED:
            summary.pruned += 1
            failures_in_a_row = 0
        elif objective.hand_back is None and not taken_over and state == TrialState.FAIL:
            summary.failed += 1
            failures_in_a_row += 1
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                raise RuntimeError(f"{failures_in_a_row} trials failed in a row; see the log above for their errors")
    return summary


@dataclasses.dataclass
class _Counts:
    finished: int = 0
    running: int = 0
    waiting: int = 0
    counted: int = 0


def _load_studies(spec: ExperimentSpec, store: Any, sizes: list[int], seed_offset: int = 0) -> dict[int, optuna.Study]:
    return {
        size: optuna.load_study(
            study_name=study_name(spec.name, size),
            storage=store,
            sampler=spec.create_sampler(seed_offset),
            pruner=spec.create_pruner(),
        )
        for size in sizes
    }


def _count(studies: Mapping[int, optuna.Study]) -> dict[int, _Counts]:
    counts = {}
    for size, study in studies.items():
        c = _Counts()
        for trial in study.get_trials(deepcopy=False):
            c.finished += trial.state in (TrialState.COMPLETE, TrialState.PRUNED)
            c.running += trial.state == TrialState.RUNNING
            c.waiting += trial.state == TrialState.WAITING
            c.counted += trial.state in BUDGET_STATES
        counts[size] = c
    return counts


def _next_size(counts: Mapping[int, _Counts], budget: int) -> int | None:
    """The size with the largest remaining cost (trials left × examples), or None if none is left."""
    best_size, best_cost = None, 0
    for size, c in counts.items():
        # A WAITING trial (a hand-back or a retry) must run even when the budget is already counted.
        remaining = max(0, budget - c.counted) + c.waiting
        cost = remaining * size
        if remaining > 0 and cost > best_cost:
            best_size, best_cost = size, cost
    return best_size


def _fail_stale(studies: Iterable[optuna.Study]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for study in studies:
            optuna.storages.fail_stale_trials(study)


def _settle(study: optuna.Study, objective: _Objective, *, deadline_s: float) -> TrialState | None:
    """Make sure the objective's trial ended in the store, and hand it back if it must be re-run.

    ``study.optimize`` tells the result itself; this repeats the tell when the
    store was unreachable at that moment. A trial that another worker already
    failed as stale was re-queued by that worker, and is left alone.
    """
    number = objective.trial_number
    if number is None:
        return None
    trial = call_with_retries(lambda: _trial(study, number), what=f"read trial {number}", deadline_s=deadline_s)
    if trial.state == TrialState.RUNNING:
        state = objective.final_state or TrialState.FAIL
        values = objective.value if state == TrialState.COMPLETE else None
        if objective.hand_back is not None:
            state, values = TrialState.FAIL, None
        call_with_retries(
            lambda: study.tell(number, values, state=state, skip_if_finished=True),
            what=f"tell trial {number}",
            deadline_s=deadline_s,
        )
        trial = call_with_retries(lambda: _trial(study, number), what=f"read trial {number}", deadline_s=deadline_s)
    if objective.hand_back is not None and trial.state == TrialState.FAIL:
        call_with_retries(lambda: _hand_back(study, trial), what=f"hand back trial {number}", deadline_s=deadline_s)
        _log.info("trial %d handed back to the queue (%s)", number, objective.hand_back)
    return trial.state


def _trial(study: optuna.Study, number: int) -> FrozenTrial:
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return study._storage.get_trial(trial_id)


def _hand_back(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue a copy of a failed trial (same parameters) so that some worker re-runs it, once."""
    for other in study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
        if trial.number in other.system_attrs.get("retry_history", ()):
            return  # the heartbeat of another worker already re-queued it
    RetryTrial()(study, trial)


def _is_finished_elsewhere(error: BaseException) -> bool:
    """The trial was finished by another process (failed as stale during an outage) before our tell."""
    return isinstance(error, optuna.exceptions.UpdateFinishedTrialError) or (
        isinstance(error, ValueError) and str(error).startswith("Cannot tell a ")
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
        if now - self.since > self.limit_s:
            raise StorageError(
                f"lost the store {mask_url(self.url)} for {now - self.since:.0f} s ({mask_url(_short(error))}); "
                "check that the database (or proxy) is up and reachable, then start the worker again"
            ) from None
        delay = backoff(self.attempts, first_s=0.5, cap_s=30)
        _log.warning("could not %s: %s; retrying in %.1f s", what, mask_url(_short(error)), delay)
        self.stop.wait(delay)

    def recovered(self) -> None:
        if self.since is not None:
            _log.info("store reachable again after %.1f s", time.monotonic() - self.since)
        self.since, self.attempts = None, 0


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    cause = error.__cause__
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    if cause is not None and isinstance(error, optuna.exceptions.StorageInternalError):
        text += f" ({_short(cause)})"
    return text


@dataclasses.dataclass
class _DeviceData:
    data: Dataset
    x_pool: torch.Tensor
    y_pool: torch.Tensor
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]


def _to_device(data: Dataset, device: torch.device) -> _DeviceData:
    return _DeviceData(
        data=data,
        x_pool=data.x_pool.to(device),
        y_pool=data.y_pool.to(device),
        val=(data.x_val.to(device), data.y_val.to(device)),
        test=(data.x_test.to(device), data.y_test.to(device)),
    )


class _Objective:
    """Train one trial on one size; report validation loss every epoch.

    Remembers what happened, so that the worker can finish the tell itself
    when the store was unreachable at the end of the trial, and hand the
    trial back when it was interrupted or lost its store mid-way.
    """

    def __init__(
        self, spec: ExperimentSpec, tensors: _DeviceData, size: int, stop: threading.Event, who: str,
        prune_check: PruneCheck, weights: Any = None,
    ) -> None:
        self.spec, self.tensors, self.size, self.stop, self.who = spec, tensors, size, stop, who
        self.weights, self.prune_check = weights, prune_check
        self.trial_number: int | None = None
        self.final_state: TrialState | None = None
        self.value: float | None = None
        self.hand_back: str | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.trial_number = trial.number
        self.final_state = TrialState.FAIL
        try:
            self.value = self._run(trial)
        except StopRequested as e:
            self.hand_back = "interrupted"
            reason = f"interrupted: {e}; handed back to the queue"
            _try(lambda: trial.set_user_attr("stopped_reason", reason))
            raise
        except optuna.TrialPruned:
            raise
        except Exception as e:
            if is_transient(e):
                # Not the trial's fault: someone re-runs it once the store answers again.
                self.hand_back = "lost the store"
            raise
        self.final_state = TrialState.COMPLETE
        return self.value

    def _run(self, trial: optuna.Trial) -> float:
        params = suggest(trial, self.spec.search_space)
        data = self.tensors.data
        device = self.tensors.x_pool.device
        seed = self.spec.seed * 1_000_003 + trial.number
        # The initial weights depend on the trial alone, not on what this process ran before.
        torch.manual_seed(seed)
        model = build_model(self.spec.model, data.input_shape, data.num_classes, params, data.input_stats(self.size)).to(device)
        batch_size = self.spec.batch_size_for(self.size, params)
        trial.set_user_attr("n_params", count_parameters(model))
        trial.set_user_attr("batch_size_used", batch_size)
        trial.set_user_attr("worker", self.who)
        epochs = [0]
        self.prune_check.start()

        def on_epoch(epoch: int, val_loss: float, val_error: float) -> None:
            epochs[0] = epoch
            self.prune_check.report(trial, val_loss, epoch)
            if self.prune_check.should_prune(trial):
                raise optuna.TrialPruned(f"pruned after epoch {epoch} at validation loss {val_loss:.4f}")

        try:
            result = train_model(
                model,
                (self.tensors.x_pool[: self.size], self.tensors.y_pool[: self.size]),
                self.tensors.val,
                self.tensors.test,
                lr=float(params["lr"]),
                momentum=float(params["momentum"]),
                weight_decay=float(params["weight_decay"]),
                batch_size=batch_size,
                max_epochs=self.spec.trainer.max_epochs,
                patience=self.spec.trainer.patience,
                eval_batch_size=self.spec.trainer.eval_batch_size,
                seed=seed,
                on_epoch=on_epoch,
                should_stop=self.stop.is_set,
            )
        except optuna.TrialPruned as e:
            trial.set_user_attr("epochs_run", epochs[0])
            trial.set_user_attr("stopped_reason", str(e))
            self.final_state = TrialState.PRUNED
            raise
        except DivergedError as e:
            # A learning rate too large for this size: a legitimate outcome of the search, not a crash.
            trial.set_user_attr("epochs_run", epochs[0])
            trial.set_user_attr("stopped_reason", f"diverged: {e}")
            self.final_state = TrialState.PRUNED
            raise optuna.TrialPruned(f"diverged: {e}") from None
        for key, value in (
            ("val_error", result.val_error),
            ("test_loss", result.test_loss),
            ("test_error", result.test_error),
            ("best_epoch", result.best_epoch),
            ("epochs_run", result.epochs_run),
            ("wall_time_s", round(result.wall_time_s, 3)),
            ("stopped_reason", result.stopped_reason),
        ):
            trial.set_user_attr(key, value)
        if self.weights is not None:
            save_state_dict(trial, result.state_dict, self.weights)
        return result.val_loss


def _try(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception as e:  # only a note for humans; the hand-back does not depend on it
        _log.debug("could not record a note: %s", mask_url(_short(e)))


def suggest(trial: optuna.Trial, space: Mapping[str, BaseDistribution]) -> dict[str, Any]:
    """Ask ``trial`` for every parameter of ``space``."""
    params: dict[str, Any] = {}
    with warnings.catch_warnings():
        # The untuned baseline's widths (the seed's 6, 16, 120, 84) lie outside the tuned range on purpose.
        warnings.filterwarnings("ignore", message="Fixed parameter")
        for name, dist in space.items():
            if isinstance(dist, FloatDistribution):
                params[name] = trial.suggest_float(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, IntDistribution):
                params[name] = trial.suggest_int(name, dist.low, dist.high, log=dist.log, step=dist.step)
            elif isinstance(dist, CategoricalDistribution):
                params[name] = trial.suggest_categorical(name, dist.choices)
    return params


def install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop``; a second SIGINT interrupts at once. Returns a restorer."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        _log.warning("received %s: finishing at the next epoch boundary", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
