"""Every use of Optuna's private names, in one place, each with the assumption it makes.

scaling-optuna keeps to Optuna's public API except where this module says
otherwise; ``tests/test_optuna_internals.py`` checks each assumption below
against the installed Optuna, so that an upgrade that breaks one fails there,
by name, rather than somewhere in a worker.

==============================  =====================================================
name here                       what it assumes of Optuna
==============================  =====================================================
:class:`ForwardedHeartbeat`     ``optuna.storages._heartbeat.BaseHeartbeat`` is what
                                ``is_heartbeat_enabled``, ``fail_stale_trials`` and
                                ``Study.optimize`` check a storage for, and its abstract
                                methods are the four forwarded here (one of them,
                                ``_get_stale_trial_ids``, private)
:func:`is_heartbeat_enabled`    ``optuna.storages._heartbeat.is_heartbeat_enabled``
:func:`cached`                  ``optuna.storages._CachedStorage(rdb)`` keeps finished
                                trials in memory (what ``get_storage``, "only for
                                internal usage", does to an ``RDBStorage``)
:func:`add_proxy_service`       ``optuna.storages._grpc``: the servicer that
                                ``run_grpc_proxy_server`` adds to its own server
:func:`pruner_inside`           ``PatientPruner`` keeps the pruner it wraps in
                                ``_wrapped_pruner``
:data:`FIXED_PARAMS_ATTR`       ``Study.enqueue_trial`` stores the parameters in this
                                trial system attribute, and ``Trial`` suggests them
:data:`FAILED_TRIAL_ATTR`,      ``RetryFailedTrialCallback`` reads a retried trial's
:data:`RETRY_HISTORY_ATTR`      original and history from these system attributes
``FrozenStudy``,                types only (``get_all_studies``, artifact stores),
``ArtifactStore``               never at run time
==============================  =====================================================

Example::

    from scaling_optuna._optuna import is_heartbeat_enabled
    from scaling_optuna.storages import open_storage

    assert not is_heartbeat_enabled(open_storage("sqlite:///scaling-optuna.db"))   # the project beats on its own
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import optuna
from optuna.pruners import BasePruner
from optuna.storages import BaseStorage
from optuna.storages import RDBStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages._heartbeat import is_heartbeat_enabled as _is_heartbeat_enabled
from optuna.trial import FrozenTrial

if TYPE_CHECKING:
    import grpc
    from optuna.artifacts._protocol import ArtifactStore  # noqa: F401 - re-exported for annotations
    from optuna.study._frozen import FrozenStudy  # noqa: F401 - re-exported for annotations

__all__ = [
    "FAILED_TRIAL_ATTR",
    "FIXED_PARAMS_ATTR",
    "RETRY_HISTORY_ATTR",
    "ForwardedHeartbeat",
    "add_proxy_service",
    "cached",
    "is_heartbeat_enabled",
    "pruner_inside",
]

FIXED_PARAMS_ATTR = "fixed_params"
FAILED_TRIAL_ATTR = "failed_trial"
RETRY_HISTORY_ATTR = "retry_history"


def is_heartbeat_enabled(storage: BaseStorage) -> bool:
    """Whether Optuna's own heartbeat is on for ``storage`` (its ``heartbeat_interval`` is set)."""
    return _is_heartbeat_enabled(storage)


def cached(rdb: RDBStorage) -> BaseStorage:
    """``rdb`` behind Optuna's in-process cache, which re-reads only the trials that changed."""
    return optuna.storages._CachedStorage(rdb)


def add_proxy_service(server: "grpc.Server", storage: BaseStorage) -> None:
    """Serve ``storage`` on ``server`` as Optuna's gRPC storage proxy does (``GrpcStorageProxy`` clients)."""
    import warnings

    from optuna.storages._grpc.auto_generated import api_pb2_grpc
    from optuna.storages._grpc.servicer import OptunaStorageProxyService

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        api_pb2_grpc.add_StorageServiceServicer_to_server(OptunaStorageProxyService(storage), server)


def pruner_inside(pruner: BasePruner) -> BasePruner | None:
    """The pruner a ``PatientPruner`` wraps (``None`` when it wraps none, or ``pruner`` is no ``PatientPruner``)."""
    if not isinstance(pruner, optuna.pruners.PatientPruner):
        return None
    return getattr(pruner, "_wrapped_pruner", None)


class ForwardedHeartbeat(BaseHeartbeat):
    """Optuna's heartbeat interface, forwarded to a wrapped storage that has one, as ``_CachedStorage`` does.

    A subclass says where to (:meth:`_heartbeat_backend`) and how to call it
    (:meth:`_heartbeat_call`, e.g. with retries). Around a storage without
    Optuna's heartbeat, ``get_heartbeat_interval`` is ``None``, so
    ``is_heartbeat_enabled`` is False, as for that storage itself.
    """

    def _heartbeat_backend(self) -> BaseStorage:
        raise NotImplementedError

    def _heartbeat_call(self, name: str, *args: Any) -> Any:
        return getattr(self._heartbeat_backend(), name)(*args)

    def _beating(self) -> BaseHeartbeat | None:
        backend = self._heartbeat_backend()
        return backend if isinstance(backend, BaseHeartbeat) else None

    def record_heartbeat(self, trial_id: int) -> None:
        if self._beating() is not None:
            self._heartbeat_call("record_heartbeat", trial_id)

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        return self._heartbeat_call("_get_stale_trial_ids", study_id) if self._beating() is not None else []

    def get_heartbeat_interval(self) -> int | None:
        beating = self._beating()
        return beating.get_heartbeat_interval() if beating is not None else None

    def get_heartbeat_stale_trial_callback(self) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        beating = self._beating()
        return beating.get_heartbeat_stale_trial_callback() if beating is not None else None
