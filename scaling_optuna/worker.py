"""A worker: pulls trials from an experiment's studies and trains them until every budget is met.

Any number of workers, on any number of machines, may run against one store.
Each picks the study with the largest remaining cost (trials left × examples),
which shortens the makespan, runs one trial there through
``study.optimize(n_trials=1)`` (so Optuna's heartbeat marks the trials of dead
workers failed and re-queues them), and repeats until no study has trials
left to start.

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
import warnings
from typing import Any, Callable, Mapping

import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution
from optuna.trial import TrialState

from scaling_optuna.data import Dataset
from scaling_optuna.data import load_dataset
from scaling_optuna.errors import DataError
from scaling_optuna.errors import StorageError
from scaling_optuna.experiment import BUDGET_STATES
from scaling_optuna.experiment import find_sizes
from scaling_optuna.experiment import study_name
from scaling_optuna.model import build_model
from scaling_optuna.model import count_parameters
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.storage import GRACE_PERIOD_S
from scaling_optuna.storage import HEARTBEAT_INTERVAL_S
from scaling_optuna.storage import mask_url
from scaling_optuna.storage import open_storage
from scaling_optuna.train import DivergedError
from scaling_optuna.train import StopRequested
from scaling_optuna.train import pick_device
from scaling_optuna.train import train_model

_log = logging.getLogger("scaling_optuna.worker")
MAX_CONSECUTIVE_FAILURES = 5


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
    grace_period: int = GRACE_PERIOD_S,
) -> WorkerSummary:
    """Run trials of ``spec``'s experiment in ``storage`` until every study has its budget.

    Args:
        threads: torch threads for this process (default: all cores).
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or ``auto`` (default: the spec's).
        max_trials: stop after this many trials even if budgets remain.
        stop: when set, the current trial stops at its next epoch boundary, is
            handed back to the queue, and the worker returns.

    Raises:
        StorageError: the store is unreachable or holds no study of the experiment.
        DataError: the local data differs from the data the studies were created with.
    """
    url = storage or spec.storage
    stop = stop or threading.Event()
    if threads is not None:
        torch.set_num_threads(threads)
    data = load_dataset(spec)
    store = open_storage(url, create=False, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    sizes = find_sizes(spec, store)
    if not sizes:
        raise StorageError(f"store {mask_url(url)} holds no study of experiment {spec.name!r}; run 'scaling-optuna create' first")
    studies = {
        size: optuna.load_study(
            study_name=study_name(spec.name, size),
            storage=store,
            sampler=spec.create_sampler(),
            pruner=spec.create_pruner(),
        )
        for size in sizes
    }
    for size, study in studies.items():
        expected, local = study.user_attrs.get("fingerprint"), data.fingerprint(size)
        if expected != local:
            raise DataError(
                f"local data for size {size} has fingerprint {local} but study {study.study_name!r} "
                f"was created with {expected}: this machine holds different dataset files or another "
                "version of them; use the same files (and seed) as the machine that ran 'create'"
            )

    target = pick_device(device or spec.trainer.device)
    tensors = _to_device(data, target)
    summary = WorkerSummary()
    failures_in_a_row = 0
    who = f"{socket.gethostname()}:{os.getpid()}"
    _log.info("worker %s on %s with %d threads, store %s", who, target, torch.get_num_threads(), mask_url(url))
    while not stop.is_set() and (max_trials is None or summary.trials < max_trials):
        size = _next_size(studies, spec.trials_per_size)
        if size is None:
            break
        study = studies[size]
        objective = _Objective(spec, tensors, size, stop, who)
        study.optimize(objective, n_trials=1, catch=(Exception,))
        state = objective.final_state
        if objective.interrupted_trial is not None:
            _hand_back(study, objective.interrupted_trial)
            summary.stopped_by_signal = True
            break
        if state == TrialState.COMPLETE:
            summary.complete += 1
            failures_in_a_row = 0
        elif state == TrialState.PRUNED:
            summary.pruned += 1
            failures_in_a_row = 0
        else:
            summary.failed += 1
            failures_in_a_row += 1
            if failures_in_a_row >= MAX_CONSECUTIVE_FAILURES:
                raise RuntimeError(f"{failures_in_a_row} trials failed in a row; see the log above for their errors")
    return summary


def _next_size(studies: Mapping[int, optuna.Study], budget: int) -> int | None:
    best_size, best_cost = None, 0
    for size, study in studies.items():
        counted = len(study.get_trials(deepcopy=False, states=BUDGET_STATES))
        waiting = len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        remaining = max(0, budget - counted) + waiting
        cost = remaining * size
        if remaining > 0 and cost > best_cost:
            best_size, best_cost = size, cost
    return best_size


def _hand_back(study: optuna.Study, number: int) -> None:
    """Queue a copy of an interrupted trial so that some worker re-runs it."""
    trial = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.storages.RetryHeartbeatStaleTrialCallback()(study, trial)


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
    """Train one trial on one size; report validation loss every epoch."""

    def __init__(self, spec: ExperimentSpec, tensors: _DeviceData, size: int, stop: threading.Event, who: str) -> None:
        self.spec, self.tensors, self.size, self.stop, self.who = spec, tensors, size, stop, who
        self.final_state: TrialState | None = None
        self.interrupted_trial: int | None = None

    def __call__(self, trial: optuna.Trial) -> float:
        self.final_state = TrialState.FAIL
        params = suggest(trial, self.spec.search_space)
        data = self.tensors.data
        device = self.tensors.x_pool.device
        model = build_model(self.spec.model, data.input_shape, data.num_classes, params).to(device)
        batch_size = self.spec.batch_size_for(self.size, params)
        trial.set_user_attr("n_params", count_parameters(model))
        trial.set_user_attr("batch_size_used", batch_size)
        trial.set_user_attr("worker", self.who)
        epochs = [0]

        def on_epoch(epoch: int, val_loss: float, val_error: float) -> None:
            epochs[0] = epoch
            trial.report(val_loss, epoch)
            if trial.should_prune():
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
                seed=self.spec.seed * 1_000_003 + trial.number,
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
        except StopRequested as e:
            trial.set_user_attr("stopped_reason", f"interrupted: {e}; handed back to the queue")
            self.interrupted_trial = trial.number
            raise
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
        self.final_state = TrialState.COMPLETE
        return result.val_loss


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
