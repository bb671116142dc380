"""Optuna's gRPC storage proxy in front of the database, for hundreds of workers.

Every worker that talks to PostgreSQL directly holds its own connections; a
proxy holds one pool (``threads`` connections) and the workers talk gRPC to
it with ``--storage grpc://HOST:PORT``. The proxy also sweeps every
experiment's studies every heartbeat interval, as every worker does
(:class:`~scaling_optuna.storages.Sweep`): it fails the stale trials of dead
workers and re-queues them, and replaces trials failed from outside, so a
vanished machine's trial is re-run even while every other worker is busy
with a long trial.

Example::

    from scaling_optuna.storages.proxy import serve

    serve("postgresql://optuna:secret@db/optuna", host="0.0.0.0", port=13000)  # blocks

:func:`start` runs one in the background (``Proxy.close`` ends it).
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import optuna

from scaling_optuna._optuna import add_proxy_service
from scaling_optuna.errors import StorageError
from scaling_optuna.storages import mask_url
from scaling_optuna.storages import open_storage
from scaling_optuna.storages._shared import EXPERIMENT_ATTR
from scaling_optuna.storages._shared import HEARTBEAT_INTERVAL_S
from scaling_optuna.storages._shared import OUTSIDE
from scaling_optuna.storages._shared import Sweep
from scaling_optuna.storages._shared import checked_grace_period
from scaling_optuna.storages._shared import describe_error
from scaling_optuna.storages._shared import is_transient

if TYPE_CHECKING:
    import grpc

_log = logging.getLogger("scaling_optuna.storages.proxy")


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
        StorageError: as :func:`start`.
    """
    proxy = start(storage, host=host, port=port, threads=threads, heartbeat_interval=heartbeat_interval, grace_period=grace_period)
    try:
        print(f"gRPC storage proxy listening on {host}:{proxy.port}; workers use --storage grpc://{host}:{proxy.port}", flush=True)
        proxy.server.wait_for_termination()
    finally:
        proxy.close()


class Proxy:
    """A running proxy: its gRPC server on ``port``, and the thread that reaps stale trials."""

    def __init__(self, server: "grpc.Server", port: int, stop: threading.Event) -> None:
        self.server, self.port, self._stop = server, port, stop

    def close(self) -> None:
        """Stop serving and reaping, at once."""
        self._stop.set()
        self.server.stop(grace=None)


def start(
    storage: str | None,
    *,
    host: str = "127.0.0.1",
    port: int = 13000,
    threads: int = 16,
    heartbeat_interval: int = HEARTBEAT_INTERVAL_S,
    grace_period: int | None = None,
) -> Proxy:
    """Start serving ``storage`` over gRPC in background threads; ``port`` 0 picks a free port.

    Example::

        proxy = start("sqlite:///scaling-optuna.db", port=0)
        storage = open_storage(f"grpc://127.0.0.1:{proxy.port}")
        ...
        proxy.close()

    Raises:
        StorageError: no URL, a URL the proxy cannot serve, a port already in use
            (checked before the store is touched), or an unreachable database.
    """
    if not storage:
        raise StorageError("the proxy needs the database URL; pass --storage postgresql://... or set SCALING_OPTUNA_STORAGE")
    scheme = storage.split("://", 1)[0].lower()
    if scheme == "grpc":
        raise StorageError(f"the proxy serves a database, not another proxy ({mask_url(storage)}); pass a postgresql:// URL")
    grace = checked_grace_period(heartbeat_interval, grace_period)
    # The port first: a proxy that cannot have it must not touch the store (nor create a SQLite file).
    server, port = _bind(host, port, threads)
    stop = threading.Event()
    try:
        store = open_storage(storage, create=scheme.startswith("sqlite"), pool_size=threads)
        # What optuna.storages.run_grpc_proxy_server does, on a server built here: Optuna's own
        # make_server takes no server options, and SO_REUSEPORT must be off.
        add_proxy_service(server, store)
        threading.Thread(target=_reap, args=(store, heartbeat_interval, grace, stop), name="reaper", daemon=True).start()
        server.start()
    except BaseException:
        stop.set()
        server.stop(grace=None)
        raise
    _log.info("gRPC storage proxy on %s:%d for %s (%d threads)", host, port, mask_url(storage), threads)
    return Proxy(server, port, stop)


def _bind(host: str, port: int, threads: int) -> tuple["grpc.Server", int]:
    """A gRPC server that holds ``host:port`` alone, and the port (the one chosen, for port 0).

    gRPC sets ``SO_REUSEPORT`` by default, so a second proxy on a taken port
    would start and the kernel would split the workers' requests between two
    proxies, possibly in front of two different databases. The port is tried
    with a plain socket first (gRPC would log its own failure in several
    lines), then bound by gRPC without ``SO_REUSEPORT``, so that even a
    proxy that wins a race for the port between the two holds it alone.
    """
    import grpc

    _check_port_free(host, port)
    server = grpc.server(ThreadPoolExecutor(max_workers=threads), options=[("grpc.so_reuseport", 0)])
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError:  # grpcio >= 1.56 raises instead of returning 0
        bound = 0
    if not bound:
        raise StorageError(f"the proxy cannot listen on {host}:{port}: the port is in use; stop the program that holds it or pick another --port")
    return server, bound


def _check_port_free(host: str, port: int) -> None:
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise StorageError(f"the proxy cannot listen on {host}:{port}: unknown host ({e.strerror}); pass an address of this machine with --host") from None
    for family, kind, proto, _, address in addresses:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gRPC does: a closed connection's TIME_WAIT is no owner
            try:
                probe.bind(address)
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    raise StorageError(
                        f"the proxy cannot listen on {host}:{port}: the port is in use (another proxy or program listens there); "
                        "stop it or pick another --port"
                    ) from None
                raise StorageError(f"the proxy cannot listen on {host}:{port}: {e.strerror}; pass an address of this machine with --host") from None


def _reap(storage: optuna.storages.BaseStorage, interval: int, grace: int, stop: threading.Event) -> None:
    """Every interval, sweep every experiment's study as the workers do (:class:`Sweep`), and note deleted ones."""
    sweep = Sweep(storage, grace_s=grace, interval_s=interval, who=f"proxy:{os.getpid()}", log=_log)
    watched: set[str] = set()
    while not stop.wait(interval):
        try:
            watched = _sweep_studies(storage, sweep, watched)
        except Exception as e:  # the reaper must outlive a database restart
            sweep.forget()  # what was seen before the outage says nothing about the beats missed during it
            level = logging.WARNING if is_transient(e) else logging.ERROR
            _log.log(level, "reaping stale trials failed: %s", describe_error(e))


def _sweep_studies(storage: optuna.storages.BaseStorage, sweep: Sweep, watched: set[str]) -> set[str]:
    """One sweep over the experiments' studies; returns their names, for the next sweep to notice deletions."""
    # Other studies behind the same proxy have no heartbeats: their trials are left alone.
    sizes = {s.study_name: s.user_attrs.get("size") for s in storage.get_all_studies() if s.user_attrs.get(EXPERIMENT_ATTR)}
    for name in sorted(watched - sizes.keys()):
        _log.warning(
            "study %s was deleted from the store from outside scaling-optuna (%s); its queued trials will not run",
            name, OUTSIDE, extra={"event": "study_deleted", "study": name},
        )
    for name, size in sorted(sizes.items()):
        try:
            sweep.study(storage.get_study_id_from_name(name), name, size=size)
        except KeyError:
            continue  # deleted since the list was read: the next sweep says so
    return set(sizes)
