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
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor

import optuna

from scaling_optuna.errors import StorageError
from scaling_optuna.storage import HEARTBEAT_INTERVAL_S
from scaling_optuna.storage import is_transient
from scaling_optuna.storage import mask_url
from scaling_optuna.storage import open_storage

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
    backend = open_storage(
        storage, create=scheme.startswith("sqlite"), heartbeat_interval=heartbeat_interval, grace_period=grace_period, pool_size=threads
    )
    # Optuna's cache keeps finished trials in memory, so the many GetTrials calls read only what changed.
    cached = optuna.storages.get_storage(backend)
    stop = threading.Event()
    reaper = threading.Thread(target=_reap, args=(cached, heartbeat_interval, stop), name="reaper", daemon=True)
    reaper.start()
    _log.info("gRPC storage proxy on %s:%d for %s (%d threads)", host, port, mask_url(storage), threads)
    print(f"gRPC storage proxy listening on {host}:{port}; workers use --storage grpc://{host}:{port}", flush=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.run_grpc_proxy_server(cached, host=host, port=port, thread_pool=ThreadPoolExecutor(max_workers=threads))
    except RuntimeError as e:  # grpc's way of saying the address is taken or invalid
        raise StorageError(f"the proxy cannot listen on {host}:{port} ({e}); pick another --port or --host") from None
    finally:
        stop.set()


def _reap(storage: optuna.storages.BaseStorage, interval: int, stop: threading.Event) -> None:
    studies: dict[str, optuna.Study] = {}
    while not stop.wait(interval):
        try:
            for frozen in storage.get_all_studies():
                if frozen.study_name not in studies:
                    studies[frozen.study_name] = optuna.load_study(study_name=frozen.study_name, storage=storage)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    optuna.storages.fail_stale_trials(studies[frozen.study_name])
        except Exception as e:  # the reaper must outlive a database restart
            level = logging.WARNING if is_transient(e) else logging.ERROR
            _log.log(level, "reaping stale trials failed: %s", mask_url(f"{type(e).__name__}: {e}"))
