"""Workers: claim queued trials from an experiment's studies and train them until no budget is left.

Any number of workers, on any number of machines, may run against one store.
Each claims a queued trial (see :mod:`scaling_optuna.experiment` on budgets),
trains it, and settles how it ended; a background thread beats its running
trial and re-queues the trials of workers that died
(:mod:`scaling_optuna.worker._heartbeat`). SIGTERM hands the running trial
back; a lost store is retried with backoff.

Example::

    from scaling_optuna.worker import run_worker

    summary = run_worker("studies/digits.toml", "sqlite:///scaling-optuna.db", threads=1)
    print(summary)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any, Callable

import torch

from scaling_optuna.errors import UserError
from scaling_optuna.experiment import PLUGINS_ATTR
from scaling_optuna.experiment import check_budget
from scaling_optuna.experiment import check_plugins
from scaling_optuna.experiment import find_sizes
from scaling_optuna.experiment import rank_trials
from scaling_optuna.experiment import study_name
from scaling_optuna.plugins import load_plugins
from scaling_optuna.signals import StopOnSignals
from scaling_optuna.spec import ExperimentSpec
from scaling_optuna.spec import check_queued_trials
from scaling_optuna.spec import check_trials
from scaling_optuna.spec import load_spec
from scaling_optuna.storages import check_url
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import HEARTBEAT_INTERVAL_S
from scaling_optuna.storages._shared import checked_grace_period
from scaling_optuna.storages.artifacts import WeightPruner
from scaling_optuna.worker._loop import OUTAGE_LIMIT_S
from scaling_optuna.worker._loop import Worker
from scaling_optuna.worker._loop import WorkerSummary
from scaling_optuna.worker._loop import check_fingerprints
from scaling_optuna.worker._loop import default_threads
from scaling_optuna.worker._objective import DeviceData
from scaling_optuna.worker._objective import Outcome
from scaling_optuna.worker._objective import TrialRunner
from scaling_optuna.worker.pruning import PruneCheck

__all__ = [
    "Outcome",
    "PruneCheck",
    "Worker",
    "WorkerSummary",
    "check_threads",
    "default_threads",
    "install_signal_handlers",
    "run_worker",
]

_log = logging.getLogger("scaling_optuna.worker")
# Torch threads per core beyond which a worker is refused: more only wait for each other.
MAX_THREADS_PER_CORE = 4


def run_worker(
    spec: str | Path | ExperimentSpec,
    storage: str | None = None,
    *,
    threads: int | None = None,
    device: str | None = None,
    trials: int | None = None,
    max_trials: int | None = None,
    stop: threading.Event | None = None,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int | None = None,
    outage_limit_s: float = OUTAGE_LIMIT_S,
    artifacts: str | None = None,
    seed_offset: int = 0,
    allow_lower_budget: bool = False,
    stop_deadline_s: float | None = None,
) -> WorkerSummary:
    """Run trials of ``spec``'s experiment in ``storage`` until no study has a queued or running trial.

    Args:
        threads: torch threads for this process (default: torch's own choice, all cores).
        device: ``cpu``, ``cuda``, ``cuda:1``, ``mps`` or ``auto`` (default: the spec's).
        trials: set every study's budget to this many trials first (like ``create --trials``).
        allow_lower_budget: let ``trials`` fall below the trials a study has already
            finished (refused otherwise, and the budget stays).
        max_trials: stop after this many trials even if budgets remain.
        stop: when set, the current trial stops at its next training step, is
            handed back to the queue, and the worker returns.
        heartbeat_interval: seconds between heartbeats of the running trial.
        grace_period: seconds without a heartbeat after which another worker's
            trial counts as dead (default: three intervals).
        outage_limit_s: how long a lost store is retried before the worker gives up.
        artifacts: where complete trials' weights go (default: the spec's
            ``artifacts``, else the store's default; see ``artifact_location``).
        seed_offset: added to the seed of a seeded sampler. Give every worker
            process its own, or they all propose the same parameters.
        stop_deadline_s: a trial whose training step has not reached the
            next stop check this long after ``stop`` was set (one step of a
            wide model can take minutes) is handed back from a side thread,
            and the process exits with status 0. For a worker process of its
            own (the CLI gives 5 s); None waits for the step.

    Raises:
        StorageError: the store is unreachable, holds no study of the experiment, or cannot be written.
        DataError: the local data differs from the data the studies were created with.
        SpecError: ``trials`` is below what a study has finished (without ``allow_lower_budget``).
        UserError: ``threads`` is more than this machine's cores can use.
        WorkerError: trials keep failing.
    """
    spec = spec if isinstance(spec, ExperimentSpec) else load_spec(spec)
    url = storage or spec.storage
    grace = _checked_numbers(heartbeat_interval, grace_period, trials)
    data, target = _prepare(spec, url, threads, device, artifacts)
    worker = _ready_worker(
        spec, url, data, target, stop or threading.Event(), trials=trials, allow_lower_budget=allow_lower_budget,
        artifacts=artifacts, heartbeat_interval=heartbeat_interval, grace_s=grace, outage_limit_s=outage_limit_s,
        seed_offset=seed_offset, stop_deadline_s=stop_deadline_s,
    )
    return _run_logged(worker, max_trials, target, url, heartbeat_interval, grace)


def _checked_numbers(heartbeat_interval: int, grace_period: int | None, trials: int | None) -> int:
    """The grace period, with it and ``trials`` checked first: a bad number fails before any data loads."""
    grace = checked_grace_period(heartbeat_interval, grace_period)
    if trials is not None:
        check_trials(trials, "trials")
    return grace


def _ready_worker(
    spec: ExperimentSpec,
    url: str,
    data: Any,
    target: Any,
    stop: threading.Event,
    *,
    trials: int | None,
    allow_lower_budget: bool,
    artifacts: str | None,
    heartbeat_interval: int,
    grace_s: int,
    outage_limit_s: float,
    seed_offset: int,
    stop_deadline_s: float | None,
) -> Worker:
    """A worker on the opened store, its data and plug-ins checked against the studies', with ``trials`` as budget.

    A budget below what a study finished is refused before the worker opens its studies.
    """
    store = open_storage(url, stop=stop)
    if trials is not None:
        names = [study_name(spec.name, size) for size in find_sizes(spec, store)]
        check_budget(store, names, trials, allow_lower=allow_lower_budget)
    weights, pruner = _weights(spec, artifacts, url)
    who = f"{socket.gethostname()}:{os.getpid()}"
    runner = TrialRunner(spec, DeviceData.on(data, target), stop, who, weights)
    worker = Worker(
        spec, store, url, runner, stop=stop, heartbeat_interval=heartbeat_interval, grace_s=grace_s,
        outage_limit_s=outage_limit_s, seed_offset=seed_offset, who=who, pruner=pruner, stop_deadline_s=stop_deadline_s,
    )
    _check_same_data_and_code(worker, spec, data)
    if trials is not None:
        check_queued_trials(len(worker.sizes), trials, "trials")
        worker.set_budget(trials)
    return worker


def _run_logged(
    worker: Worker, max_trials: int | None, target: Any, url: str, heartbeat_interval: int, grace: int
) -> WorkerSummary:
    """``worker.run``, between the log lines that say what the worker runs on and how it ended."""
    _log.info(
        "worker %s: %d sizes on %s with %d torch thread(s); store %s; heartbeat %d s, grace %d s",
        worker.who, len(worker.sizes), target, torch.get_num_threads(), mask_url(url), heartbeat_interval, grace,
        extra={"event": "worker_started", "worker": worker.who},
    )
    summary = worker.run(max_trials)
    _log.info(
        "worker %s done: %d complete, %d pruned, %d failed, %d handed back, %d taken over", worker.who,
        summary.complete, summary.pruned, summary.failed, summary.handed_back, summary.taken_over,
        extra={"event": "worker_done", "worker": worker.who},
    )
    return summary


def _check_same_data_and_code(worker: Worker, spec: ExperimentSpec, data: Any) -> None:
    """Refuse local data, or plug-in versions, other than those the studies were created with."""
    check_fingerprints(worker.sizes, data.fingerprint)
    plugins = {key: p.fingerprint() for key, p in load_plugins(spec.plugin_paths, spec.python_path).items()}
    for entry in worker.sizes.values():
        check_plugins(entry.study.study_name, entry.study.user_attrs.get(PLUGINS_ATTR), plugins)


def _prepare(spec: ExperimentSpec, url: str, threads: int | None, device: str | None, artifacts: str | None) -> tuple[Any, Any]:
    """Everything checked before the store is touched: the URL, the threads, the data, the device and the weights' folder.

    Returns the dataset and the device it trains on, with this process set up for it.
    """
    from scaling_optuna.data import load_dataset
    from scaling_optuna.preflight import check_runnable
    from scaling_optuna.storages.artifacts import artifact_location
    from scaling_optuna.storages.artifacts import check_artifact_location
    from scaling_optuna.train import configure_process

    check_url(url)
    if threads is not None:
        check_threads(threads)
        torch.set_num_threads(threads)
    data = load_dataset(spec)
    target = check_runnable(spec, data, device or spec.trainer.device)
    if spec.keep_models > 0:
        check_artifact_location(artifact_location(artifacts or spec.artifacts, url))
    configure_process(target)
    return data, target


def _weights(spec: ExperimentSpec, artifacts: str | None, url: str) -> tuple[Any, WeightPruner]:
    """The store complete trials upload their weights to (None with ``keep_models = 0``), and their pruner.

    With ``keep_models = 0`` nothing is uploaded, and the store is opened only
    to remove weights that an earlier run with a larger ``keep_models`` left.
    """
    from scaling_optuna.storages.artifacts import artifact_location
    from scaling_optuna.storages.artifacts import open_artifact_store

    location = artifact_location(artifacts or spec.artifacts, url)
    store = open_artifact_store(location) if spec.keep_models > 0 else None
    opener = (lambda: store) if store is not None else (lambda: open_artifact_store(location))
    return store, WeightPruner(opener, spec.keep_models, rank_trials)


def check_threads(threads: int) -> None:
    """Refuse more torch threads than :data:`MAX_THREADS_PER_CORE` per core of this machine.

    Beyond that, threads only wait for each other: a trial of a second took
    minutes, and a stop request as long to be heard.

    Raises:
        UserError: ``threads`` is above the limit (the message names the cores and what to pass).
    """
    cores = default_threads(1)
    if threads > MAX_THREADS_PER_CORE * cores:
        raise UserError(
            f"--threads {threads} is more than {MAX_THREADS_PER_CORE} × the {cores} core(s) this process may use; "
            f"pass --threads {cores} or fewer (one per core; several workers share the cores)"
        )


def install_signal_handlers(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop`` at once, also mid-step; a second SIGINT interrupts at once. Returns a restorer.

    See :class:`scaling_optuna.signals.StopOnSignals`.
    """

    def said(name: str) -> None:
        _log.warning(
            "received %s: stopping the running trial at its next training step and handing it back", name,
            extra={"event": "stop_requested", "signal": name},
        )

    signals = StopOnSignals(stop, said).__enter__()
    return lambda: signals.__exit__(None, None, None)
