"""Optuna's gRPC storage proxy in front of the database, for hundreds of workers.

Every worker that talks to PostgreSQL directly holds its own connections; a
proxy holds one pool (``threads`` connections) and the workers talk gRPC to
it with ``--storage grpc://HOST:PORT``. The proxy also reaps: every heartbeat
interval it fails the stale trials of dead workers in every study and
re-queues them, so a vanished machine's trial is re-run even while every
other worker is busy with a long trial.

Example::

    from scaling_optuna.proxy import serve

    serve("postgresql://optuna:secret@db/optuna", host="0.0.0.0", port=13000)  # blocks
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import optuna

from scaling_optuna.errors import StorageError
from scaling_optuna.storages import EXPERIMENT_ATTR
from scaling_optuna.storages import HEARTBEAT_INTERVAL_S
from scaling_optuna.storages import LOST
from scaling_optuna.storages import StaleTrials
from scaling_optuna.storages import checked_grace_period
from scaling_optuna.storages import describe_error
from scaling_optuna.storages import end_trial
from scaling_optuna.storages import is_transient
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage
from scaling_optuna.storages import queue_replacement

_log = logging.getLogger("scaling_optuna.proxy")


def serve(
    storage: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 13000,
    threads: int = 16,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int | None = None,
) -> None:
    """Serve ``storage`` (a database URL) over gRPC on ``host:port`` until the process ends.

    Raises:
        StorageError: no URL, a URL the proxy cannot serve, or an unreachable database.
    """
    if not storage:
        raise StorageError("the proxy needs the database URL; pass --storage postgresql://... or set SCALING_OPTUNA_STORAGE")
    scheme = storage.split("://", 1)[0].lower()
    if scheme == "grpc":
        raise StorageError(f"the proxy serves a database, not another proxy ({mask_url(storage)}); pass a postgresql:// URL")
    grace = checked_grace_period(heartbeat_interval, grace_period)
    store = open_storage(storage, create=scheme.startswith("sqlite"), pool_size=threads)
    stop = threading.Event()
    reaper = threading.Thread(target=_reap, args=(store, heartbeat_interval, grace, stop), name="reaper", daemon=True)
    reaper.start()
    _log.info("gRPC storage proxy on %s:%d for %s (%d threads)", host, port, mask_url(storage), threads)
    print(f"gRPC storage proxy listening on {host}:{port}; workers use --storage grpc://{host}:{port}", flush=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.run_grpc_proxy_server(store, host=host, port=port, thread_pool=ThreadPoolExecutor(max_workers=threads))
    except RuntimeError as e:  # grpc's way of saying the address is taken or invalid
        raise StorageError(f"the proxy cannot listen on {host}:{port} ({e}); pick another --port or --host") from None
    finally:
        stop.set()


def _reap(storage: optuna.storages.BaseStorage, interval: int, grace: int, stop: threading.Event) -> None:
    """Every interval, end and re-queue the stale trials of every experiment's study (per-study state)."""
    stale = StaleTrials(grace)
    studies: dict[str, tuple[int, optuna.Study]] = {}
    who = f"proxy:{os.getpid()}"
    while not stop.wait(interval):
        try:
            for frozen in storage.get_all_studies():
                # Other studies behind the same proxy have no heartbeats: their trials are left alone.
                if not frozen.user_attrs.get(EXPERIMENT_ATTR):
                    continue
                if frozen.study_name not in studies:
                    study = optuna.load_study(study_name=frozen.study_name, storage=storage)
                    studies[frozen.study_name] = (storage.get_study_id_from_name(frozen.study_name), study)
                study_id, study = studies[frozen.study_name]
                running = storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
                for trial in stale.check(study_id, running):
                    if end_trial(storage, study_id, trial.number, LOST, who):
                        queue_replacement(study, trial)
                        _log.warning("trial %d of %s: its worker stopped beating; ended and queued to re-run", trial.number, frozen.study_name)
        except Exception as e:  # the reaper must outlive a database restart
            level = logging.WARNING if is_transient(e) else logging.ERROR
            _log.log(level, "reaping stale trials failed: %s", describe_error(e))
